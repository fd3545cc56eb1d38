#include "stablelearn/models/snode.h"

#include <string>

#include <torch/csrc/autograd/autograd.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/node_mlp.h"

namespace stablelearn::models {

void SNodeOptions::validate() const {
  SL_CHECK(dim_ > 0, ConfigError, "SNodeOptions: dim must be positive, got ", dim_);
  SL_CHECK(hidden_ > 0, ConfigError, "SNodeOptions: hidden (lsddm_h) must be positive, got ", hidden_);
  SL_CHECK(fhat_layers_ >= 1, ConfigError, "SNodeOptions: fhat_layers must be >= 1, got ", fhat_layers_);
  SL_CHECK(icnn_hidden_ > 0, ConfigError, "SNodeOptions: icnn_hidden (lsddm_hp) must be positive, got ",
           icnn_hidden_);
  SL_CHECK(alpha_ >= 0, ConfigError, "SNodeOptions: alpha must be >= 0, got ", alpha_);
  SL_CHECK(eps_ >= 0, ConfigError, "SNodeOptions: eps must be >= 0, got ", eps_);
  SL_CHECK(rehu_ > 0, ConfigError, "SNodeOptions: rehu must be positive, got ", rehu_);
  SL_CHECK(condition_dim_ >= 0, ConfigError, "SNodeOptions: condition_dim must be >= 0, got ",
           condition_dim_);
  SL_CHECK(psd_rehu_ > 0, ConfigError, "SNodeOptions: psd_rehu must be positive, got ", psd_rehu_);
}

WeightLayout snode_layout(const SNodeOptions& o) {
  o.validate();
  const auto n = o.input_dim(), h = o.hidden(), hp = o.icnn_hidden(), L = o.fhat_layers();
  WeightLayout layout;
  layout.add("fhat.layer_0.weight", {h, o.fhat_input_dim()});
  layout.add("fhat.layer_0.bias", {h});
  for (std::int64_t l = 1; l < L; ++l) {
    layout.add("fhat.layer_" + std::to_string(l) + ".weight", {h, h});
    layout.add("fhat.layer_" + std::to_string(l) + ".bias", {h});
  }
  layout.add("fhat.layer_out.weight", {o.dim(), h});
  layout.add("fhat.layer_out.bias", {o.dim()});
  layout.add("V.f.W.0", {hp, n});
  layout.add("V.f.W.1", {hp, n});
  layout.add("V.f.W.2", {1, n});
  layout.add("V.f.U.0", {hp, hp});
  layout.add("V.f.U.1", {1, hp});
  layout.add("V.f.bias.0", {hp});
  layout.add("V.f.bias.1", {hp});
  layout.add("V.f.bias.2", {1});
  return layout;
}

std::vector<std::int64_t> snode_fan_in(const SNodeOptions& o) {
  const auto n = o.input_dim(), h = o.hidden(), hp = o.icnn_hidden();
  std::vector<std::int64_t> fan{o.fhat_input_dim(), o.fhat_input_dim()};
  for (std::int64_t l = 1; l < o.fhat_layers(); ++l) {
    fan.push_back(h);
    fan.push_back(h);
  }
  fan.push_back(h);
  fan.push_back(h);
  // W.0, W.1, W.2 (fan-in n), U.0, U.1 (fan-in hp), bias.i (bounded by W.i's fan-in n).
  for (auto f : {n, n, n, hp, hp, n, n, n}) fan.push_back(f);
  return fan;
}

namespace {

/// Named views of the weight list (indices of snode_layout), with per-call shape checks.
struct SNodeWeights {
  const std::vector<torch::Tensor>& w;
  std::int64_t L;
  const torch::Tensor& fhat_w(std::int64_t k) const { return w[2 * k]; }  // k = 0 .. L (L = out)
  const torch::Tensor& fhat_b(std::int64_t k) const { return w[2 * k + 1]; }
  std::size_t base() const { return static_cast<std::size_t>(2 * L + 2); }
  const torch::Tensor& W0() const { return w[base()]; }
  const torch::Tensor& W1() const { return w[base() + 1]; }
  const torch::Tensor& W2() const { return w[base() + 2]; }
  const torch::Tensor& U0() const { return w[base() + 3]; }
  const torch::Tensor& U1() const { return w[base() + 4]; }
  const torch::Tensor& b0() const { return w[base() + 5]; }
  const torch::Tensor& b1() const { return w[base() + 6]; }
  const torch::Tensor& b2() const { return w[base() + 7]; }
};

void expect_shape(const torch::Tensor& t, std::vector<std::int64_t> shape, const char* name) {
  SL_CHECK(t.defined() && t.sizes() == torch::IntArrayRef(shape), ShapeError, "sNODE: weight ",
           name, " must be ", shape_string(shape), ", got ",
           t.defined() ? shape_string(t.sizes()) : std::string("undefined"));
}

SNodeWeights view_weights(const std::vector<torch::Tensor>& w, const SNodeOptions& o) {
  const auto L = o.fhat_layers(), n = o.input_dim(), h = o.hidden(), hp = o.icnn_hidden();
  SL_CHECK(static_cast<std::int64_t>(w.size()) == 2 * L + 10, ShapeError, "sNODE: expected ",
           2 * L + 10, " weight tensors (fhat_layers = ", L, "), got ", w.size());
  SNodeWeights v{w, L};
  expect_shape(v.fhat_w(0), {h, o.fhat_input_dim()}, "fhat.layer_0.weight");
  expect_shape(v.fhat_b(0), {h}, "fhat.layer_0.bias");
  for (std::int64_t l = 1; l < L; ++l) {
    expect_shape(v.fhat_w(l), {h, h}, "fhat.layer_l.weight");
    expect_shape(v.fhat_b(l), {h}, "fhat.layer_l.bias");
  }
  expect_shape(v.fhat_w(L), {o.dim(), h}, "fhat.layer_out.weight");
  expect_shape(v.fhat_b(L), {o.dim()}, "fhat.layer_out.bias");
  expect_shape(v.W0(), {hp, n}, "V.f.W.0");
  expect_shape(v.W1(), {hp, n}, "V.f.W.1");
  expect_shape(v.W2(), {1, n}, "V.f.W.2");
  expect_shape(v.U0(), {hp, hp}, "V.f.U.0");
  expect_shape(v.U1(), {1, hp}, "V.f.U.1");
  expect_shape(v.b0(), {hp}, "V.f.bias.0");
  expect_shape(v.b1(), {hp}, "V.f.bias.1");
  expect_shape(v.b2(), {1}, "V.f.bias.2");
  return v;
}

void expect_state(const torch::Tensor& z, const SNodeOptions& o, const char* who) {
  SL_CHECK(z.dim() == 2 && z.size(1) == o.input_dim(), ShapeError, who, ": z must be [B, ",
           o.input_dim(), "], got ", shape_string(z.sizes()));
}

/// ICNN pre-activations and output (and the softplus'd U, reused by the analytic ∇V).
struct IcnnParts {
  torch::Tensor a1, a2, g;     // [B, hp], [B, hp], [B]
  torch::Tensor sp_U0, sp_U1;  // softplus(U0) [hp, hp], softplus(U1) [1, hp]
};

IcnnParts icnn_parts(const torch::Tensor& z, const SNodeWeights& v, const SNodeOptions& o) {
  const double r = o.rehu();
  const double hp = static_cast<double>(v.U0().size(0));  // U.shape[0] as in the reference
  IcnnParts p;
  p.sp_U0 = torch::softplus(v.U0());
  p.sp_U1 = torch::softplus(v.U1());
  p.a1 = torch::linear(z, v.W0(), v.b0());
  auto z1 = F::rehu(p.a1, r);
  p.a2 = torch::linear(z, v.W1(), v.b1()) + torch::linear(z1, p.sp_U0) / hp;
  auto z2 = F::rehu(p.a2, r);
  // The reference divides by U1.shape[0] = 1: a no-op, kept implicit.
  p.g = (torch::linear(z, v.W2(), v.b2()) + torch::linear(z2, p.sp_U1)).squeeze(1);
  return p;
}

/// f̂'s input: z, or [cond, z] with a conditioning vector.
torch::Tensor fhat_input(const torch::Tensor& z, const torch::Tensor& cond, const SNodeOptions& o) {
  const auto c = o.condition_dim();
  SL_CHECK((c > 0) == cond.defined(), ShapeError, "sNODE: condition_dim is ", c,
           " but a conditioning vector was ", cond.defined() ? "" : "not ", "given");
  if (c == 0) return z;
  SL_CHECK(cond.size(-1) == c, ShapeError, "sNODE: cond must have ", c, " columns, got ",
           shape_string(cond.sizes()));
  return torch::cat({cond.reshape({-1, c}).to(z.dtype()).expand({z.size(0), c}), z}, 1);
}

torch::Tensor fhat_of(const torch::Tensor& z, const SNodeWeights& v) {
  torch::Tensor h = z;
  for (std::int64_t k = 0; k < v.L; ++k) h = torch::relu(torch::linear(h, v.fhat_w(k), v.fhat_b(k)));
  return torch::linear(h, v.fhat_w(v.L), v.fhat_b(v.L));
}

/// f̂ as the options define it: the MLP at f̂'s input, minus its value at z = 0_n with center_fhat
/// (evaluated in the same batched pass: one extra row without a conditioning vector, the B rows
/// [cond, 0] with one).
torch::Tensor nominal_field(const torch::Tensor& z, const torch::Tensor& cond, const SNodeWeights& v,
                            const SNodeOptions& o) {
  const auto in = fhat_input(z, cond, o);
  if (!o.center_fhat()) return fhat_of(in, v);
  const auto B = z.size(0);
  // One reference row unless the conditioning vector differs between rows.
  const bool one_row = !cond.defined() || cond.dim() == 1 || cond.size(0) == 1;
  const auto ref = fhat_input(torch::zeros({one_row ? 1 : B, z.size(1)}, z.options()), cond, o);
  const auto out = fhat_of(torch::cat({in, ref}, 0), v);
  return out.narrow(0, 0, B) - out.narrow(0, B, one_row ? 1 : B);
}

struct VAndGrad {
  torch::Tensor V, grad;
};

/// V(z) [B]; with parts_out, also the ICNN parts at z with g replaced by s = g(z) − g(0).
/// g(0) is evaluated in the same batched pass, as an extra row of zeros (rows are independent).
torch::Tensor lyapunov_of(const torch::Tensor& z, const SNodeWeights& v, const SNodeOptions& o,
                          IcnnParts* parts_out) {
  const auto B = z.size(0);
  auto parts = icnn_parts(torch::cat({z, torch::zeros({1, z.size(1)}, z.options())}, 0), v, o);
  auto s = parts.g.narrow(0, 0, B) - parts.g.narrow(0, B, 1);
  auto V = F::rehu(s, o.psd_rehu()) + o.eps() * (z * z).sum(1);
  if (parts_out) {
    parts.a1 = parts.a1.narrow(0, 0, B);
    parts.a2 = parts.a2.narrow(0, 0, B);
    parts.g = s;
    *parts_out = std::move(parts);
  }
  return V;
}

VAndGrad lyapunov_and_grad(const torch::Tensor& z, const SNodeWeights& v, const SNodeOptions& o,
                           LyapunovGradMode mode) {
  if (mode == LyapunovGradMode::Analytic) {
    IcnnParts p;
    auto V = lyapunov_of(z, v, o, &p);
    const double r = o.rehu();
    const double hp = static_cast<double>(v.U0().size(0));
    auto q2 = F::rehu_derivative(p.a2, r) * p.sp_U1;              // [B, hp]
    auto q1 = F::rehu_derivative(p.a1, r) * (q2.mm(p.sp_U0) / hp);  // [B, hp]
    auto grad_g = v.W2() + q2.mm(v.W1()) + q1.mm(v.W0());                         // [B, n]
    auto grad = F::rehu_derivative(p.g, o.psd_rehu()).unsqueeze(1) * grad_g + (2.0 * o.eps()) * z;
    return {V, grad};
  }
  // Reference path: ∇V = autograd::grad(V, z, create_graph = true).
  const bool outer_grad = torch::GradMode::is_enabled();
  torch::AutoGradMode enable(true);
  torch::Tensor zz = z.requires_grad() ? z : z.detach().requires_grad_(true);
  auto V = lyapunov_of(zz, v, o, nullptr);
  auto grad = torch::autograd::grad({V.sum()}, {zz}, /*grad_outputs=*/{},
                                    /*retain_graph=*/outer_grad, /*create_graph=*/outer_grad)[0];
  if (!outer_grad) return {V.detach(), grad.detach()};
  return {V, grad};
}

}  // namespace

namespace functional {

torch::Tensor rehu(const torch::Tensor& s, double delta) {
  return torch::maximum(torch::clamp(torch::sign(s) * s * s / (2.0 * delta), 0.0, delta / 2.0),
                        s - delta / 2.0);
}

torch::Tensor rehu_derivative(const torch::Tensor& s, double delta) {
  return torch::clamp(s / delta, 0.0, 1.0);
}

torch::Tensor snode_fhat(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                         const SNodeOptions& o, const torch::Tensor& cond) {
  expect_state(z, o, "snode_fhat");
  return nominal_field(z, cond, view_weights(weights, o), o);
}

torch::Tensor snode_icnn(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                         const SNodeOptions& o) {
  expect_state(z, o, "snode_icnn");
  return icnn_parts(z, view_weights(weights, o), o).g;
}

torch::Tensor snode_lyapunov(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                             const SNodeOptions& o) {
  expect_state(z, o, "snode_lyapunov");
  return lyapunov_of(z, view_weights(weights, o), o, nullptr);
}

torch::Tensor snode_lyapunov_grad(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                                  const SNodeOptions& o, LyapunovGradMode mode) {
  expect_state(z, o, "snode_lyapunov_grad");
  return lyapunov_and_grad(z, view_weights(weights, o), o, mode).grad;
}

SNodeEval snode_eval(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                     const SNodeOptions& o, const torch::Tensor& cond) {
  expect_state(z, o, "snode_eval");
  const auto v = view_weights(weights, o);
  SNodeEval e;
  auto fhat = nominal_field(z, cond, v, o);
  e.fhat_aug = o.explicit_time() ? torch::cat({fhat, torch::ones({z.size(0), 1}, fhat.options())}, 1)
                                 : fhat;
  auto vg = lyapunov_and_grad(z, v, o, o.grad_mode());
  e.V = vg.V;
  e.grad_V = vg.grad;
  // Manek & Kolter eq. 10: f = f̂ − ∇V · ReLU(∇Vᵀ f̂ + αV) / ‖∇V‖² (no epsilon, as the reference).
  auto violation = torch::relu((e.grad_V * e.fhat_aug).sum(1) + o.alpha() * e.V);
  e.f = e.fhat_aug - e.grad_V * (violation / (e.grad_V * e.grad_V).sum(1)).unsqueeze(1);
  return e;
}

torch::Tensor snode_field(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                          const SNodeOptions& o, const torch::Tensor& cond) {
  return snode_eval(z, weights, o, cond).f;
}

torch::Tensor snode_rhs(const torch::Tensor& t, const torch::Tensor& x,
                        const std::vector<torch::Tensor>& weights, const SNodeOptions& o,
                        const torch::Tensor& cond) {
  SL_CHECK(x.dim() == 2 && x.size(1) == o.dim(), ShapeError, "snode_rhs: x must be [B, ", o.dim(),
           "], got ", shape_string(x.sizes()));
  auto z = o.explicit_time() ? append_time(x, t) : x;
  return snode_field(z, weights, o, cond).narrow(1, 0, o.dim());
}

}  // namespace functional

SNodeImpl::SNodeImpl(SNodeOptions options_) : options(std::move(options_)) { reset(); }

void SNodeImpl::reset() {
  layout_ = snode_layout(options);
  weights_ = register_layout_parameters(*this, layout_, snode_fan_in(options));
}

torch::Tensor SNodeImpl::forward(const torch::Tensor& t, const torch::Tensor& x) {
  return F::snode_rhs(t, x, weights_, options);
}

F::SNodeEval SNodeImpl::eval(const torch::Tensor& z) const { return F::snode_eval(z, weights_, options); }

torch::Tensor SNodeImpl::lyapunov(const torch::Tensor& z) const {
  return F::snode_lyapunov(z, weights_, options);
}

void SNodeImpl::pretty_print(std::ostream& stream) const {
  stream << "stablelearn::models::SNode(dim=" << options.dim() << ", h=" << options.hidden()
         << ", fhat_layers=" << options.fhat_layers() << ", hp=" << options.icnn_hidden()
         << ", alpha=" << options.alpha() << ", eps=" << options.eps() << ", rehu=" << options.rehu()
         << ", explicit_time=" << options.explicit_time()
         << (options.center_fhat() ? ", center_fhat=1" : "") << ", params=" << layout_.numel() << ")";
}

}  // namespace stablelearn::models
