#include "stablelearn/models/gka.h"

#include <cmath>
#include <limits>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/normalization.h>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

namespace gka {

namespace {

// Rounds to the emulated type and back (identity without one).
struct Rounder {
  std::optional<torch::ScalarType> to;
  torch::Tensor operator()(const torch::Tensor& t) const { return to ? t.to(*to).to(t.scalar_type()) : t; }
};

void check_system(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda, const char* who) {
  SL_CHECK(h.dim() >= 2 && h.size(-1) == h.size(-2), ShapeError, who, ": expected H [..., D, D], got ", h.sizes());
  SL_CHECK(q.dim() == h.dim() - 1 && q.sizes() == h.sizes().slice(0, h.dim() - 1), ShapeError, who, ": expected q [..., D] = ",
           h.sizes().slice(0, h.dim() - 1), " to match H ", h.sizes(), ", got ", q.sizes());
  SL_CHECK(lambda.sizes() == h.sizes().slice(0, h.dim() - 2), ShapeError, who, ": expected lambda of shape ",
           h.sizes().slice(0, h.dim() - 2), ", got ", lambda.sizes());
}

// (H + λI) x for batched x [..., D].
torch::Tensor apply(const torch::Tensor& h, const torch::Tensor& lambda, const torch::Tensor& x) {
  return torch::matmul(h, x.unsqueeze(-1)).squeeze(-1) + lambda.unsqueeze(-1) * x;
}

}  // namespace

torch::Tensor adaptive_ridge(const torch::Tensor& h, double a) {
  return a * torch::sqrt((h * h).sum({-2, -1}));
}

torch::Tensor chebyshev_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                              std::int64_t iterations, std::optional<torch::ScalarType> round_to) {
  check_system(h, q, lambda, "gka::chebyshev_solve");
  SL_CHECK(iterations >= 1, ConfigError, "model.iterations: must be >= 1, got ", iterations);
  const Rounder rd{round_to};
  const auto H = rd(h), b = rd(q), lam = rd(lambda);
  const auto fro = rd(torch::sqrt(rd((H * H).sum({-2, -1}))));
  const auto step = rd(2.0 / (2.0 * lam + fro)).unsqueeze(-1);
  const auto rho = rd(fro / (2.0 * lam + fro));
  const auto r = rd(rho * rho / 4.0);
  auto x_prev = torch::zeros_like(b);
  auto x = rd(step * b);
  auto omega = torch::full_like(r, 2.0);
  for (std::int64_t i = 0; i < iterations; ++i) {
    omega = rd(1.0 / rd(1.0 - rd(r * omega)));
    const auto res = rd(rd(apply(H, lam, x)) - b);
    const auto w = omega.unsqueeze(-1);
    const auto x_new = rd(rd(w * rd(x - rd(step * res))) - rd((w - 1.0) * x_prev));
    x_prev = x;
    x = x_new;
  }
  return x;
}

torch::Tensor conjugate_gradient_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                                       std::int64_t iterations, std::optional<torch::ScalarType> round_to) {
  check_system(h, q, lambda, "gka::conjugate_gradient_solve");
  SL_CHECK(iterations >= 1, ConfigError, "iterations: must be >= 1, got ", iterations);
  const Rounder rd{round_to};
  const auto H = rd(h), b = rd(q), lam = rd(lambda);
  auto x = torch::zeros_like(b);
  auto res = b.clone();
  auto p = res.clone();
  auto rr = rd((res * res).sum(-1));
  // A system whose residual has reached exactly zero stops (α = β = 0) instead of dividing 0 by 0.
  auto safe_div = [](const torch::Tensor& a, const torch::Tensor& b) {
    const auto ok = b.ne(0);
    return torch::where(ok, a / torch::where(ok, b, torch::ones_like(b)), torch::zeros_like(a));
  };
  for (std::int64_t i = 0; i < iterations; ++i) {
    const auto ap = rd(apply(H, lam, p));
    const auto alpha = rd(safe_div(rr, rd((p * ap).sum(-1)))).unsqueeze(-1);
    x = rd(x + rd(alpha * p));
    res = rd(res - rd(alpha * ap));
    const auto rr_new = rd((res * res).sum(-1));
    const auto beta = rd(safe_div(rr_new, rr)).unsqueeze(-1);
    p = rd(res + rd(beta * p));
    rr = rr_new;
  }
  return x;
}

torch::Tensor exact_solve(const torch::Tensor& h, const torch::Tensor& q, const torch::Tensor& lambda,
                          std::optional<torch::ScalarType> round_to) {
  check_system(h, q, lambda, "gka::exact_solve");
  const Rounder rd{round_to};
  const auto eye = torch::eye(h.size(-1), h.options());
  const auto a = rd(rd(h) + rd(lambda).unsqueeze(-1).unsqueeze(-1) * eye);
  return rd(torch::linalg_solve(a, rd(q).unsqueeze(-1)).squeeze(-1));
}

}  // namespace gka

void GkaOptions::fields(options::Visitor& v) {
  v("d_model", d_model, "model width d (a multiple of heads)").at_least(1);
  v("heads", heads, "heads h (state D x D per head, D = d_model / heads)").at_least(1);
  v("ridge", ridge, "a of the adaptive regularisation lambda_t = a ||H_t||_F").above(0.0);
  v("iterations", iterations, "Chebyshev steps per solve").at_least(1);
  v("chunk", chunk, "tokens per chunk of the chunked evaluation").at_least(1);
  v("solver", solver, "chebyshev: the Chebyshev iteration; exact: torch::linalg_solve").one_of({"chebyshev", "exact"});
  v("mixer", mixer, "gka: the ridge-regression read-out; linear: gated linear attention; delta: the gated delta rule")
      .one_of({"gka", "linear", "delta"});
}

void GkaOptions::cross_check() const {
  SL_CHECK(d_model % heads == 0, ConfigError, "model.heads: must divide d_model = ", d_model, ", got ", heads);
}

WeightLayout gka_layout(const GkaOptions& o) {
  const auto d = o.d_model, h = o.heads;
  WeightLayout l;
  l.add("q_proj.weight", {d, d});
  l.add("k_proj.weight", {d, d});
  l.add("v_proj.weight", {d, d});
  l.add("beta_proj.weight", {h, d});
  l.add("beta_proj.bias", {h});
  l.add("gate_proj.weight", {h, d});
  l.add("gate.dt_bias", {h});
  l.add("gate.A_log", {h});
  l.add("alpha_proj.weight", {h, d});
  l.add("alpha_proj.bias", {h});
  l.add("o_proj.weight", {d, d});
  return l;
}

namespace functional {

namespace {

// The per-head inputs of the recurrence, [B, h, T, ...].
struct Streams {
  torch::Tensor q, k, v;     // [B, h, T, D]; k and v scaled by β + 1e-6 (gka, linear), unscaled (delta)
  torch::Tensor beta;        // [B, h, T]: the delta rule's write strength (delta only)
  torch::Tensor log_gamma;   // [B, h, T]
  torch::Tensor alpha;       // [B, h, T]
};

Streams streams(const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o, const char* who) {
  SL_CHECK(x.dim() == 3 && x.size(2) == o.d_model, ShapeError, who, ": expected x [B, T, d_model = ", o.d_model, "], got ",
           x.sizes());
  const auto B = x.size(0), T = x.size(1), h = o.heads, D = o.head_dim();
  auto heads = [&](const torch::Tensor& y) { return y.view({B, T, h, D}).transpose(1, 2); };
  auto per_head = [&](const torch::Tensor& y) { return y.transpose(1, 2); };  // [B, T, h] -> [B, h, T]
  const auto norm = F::NormalizeFuncOptions().dim(-1).eps(1e-6);
  Streams s;
  s.q = F::normalize(heads(F::linear(x, w[0])), norm);
  if (o.mixer == "delta") {
    s.beta = per_head(torch::sigmoid(F::linear(x, w[3], w[4])));
    s.k = F::normalize(heads(F::linear(x, w[1])), norm);
    s.v = heads(F::linear(x, w[2]));
  } else {
    const auto beta = per_head(torch::sigmoid(F::linear(x, w[3], w[4]))).unsqueeze(-1) + 1e-6;
    s.k = F::normalize(heads(F::linear(x, w[1])), norm) * beta;
    s.v = heads(F::linear(x, w[2])) * beta;
  }
  s.log_gamma = -torch::exp(w[7]).view({1, h, 1}) * F::softplus(per_head(F::linear(x, w[5], w[6])));
  s.alpha = per_head(torch::sigmoid(F::linear(x, w[8], w[9])));
  return s;
}

torch::Tensor solve(const torch::Tensor& H, const torch::Tensor& q, const GkaOptions& o) {
  const auto lam = gka::adaptive_ridge(H, o.ridge);
  return o.solver == "exact" ? gka::exact_solve(H, q, lam) : gka::chebyshev_solve(H, q, lam, o.iterations);
}

torch::Tensor output(const torch::Tensor& o_heads, const torch::Tensor* w, const GkaOptions& o) {
  const auto B = o_heads.size(0), T = o_heads.size(2);
  return F::linear(o_heads.transpose(1, 2).reshape({B, T, o.d_model}), w[10]);
}

// One chunk [c0, c1) of the streams with its cumulative log-decay G [B, h, C] and the decay matrix
// M_ti = e^{G_t − G_i} for i ≤ t, 0 for i > t ([B, h, C, C]).
struct Chunk {
  torch::Tensor q, k, v, G, M;
};
Chunk chunk_of(const Streams& s, std::int64_t c0, std::int64_t c1) {
  const auto C = c1 - c0;
  Chunk c{s.q.slice(2, c0, c1), s.k.slice(2, c0, c1), s.v.slice(2, c0, c1), s.log_gamma.slice(2, c0, c1).cumsum(-1), {}};
  const auto later = torch::ones({C, C}, torch::TensorOptions().dtype(torch::kBool).device(s.q.device())).triu(1);
  c.M = torch::exp((c.G.unsqueeze(-1) - c.G.unsqueeze(-2)).masked_fill(later, -std::numeric_limits<double>::infinity()));
  return c;
}

// Gated linear attention, chunked: within a chunk o_t = D^{−1/2}(Σ_{i≤t} e^{G_t−G_i}(q_t·k_i) v_i + e^{G_t} U₀ q_t).
torch::Tensor linear_attention(const Streams& s, const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o) {
  const auto B = x.size(0), T = x.size(1), h = o.heads, D = o.head_dim();
  auto U = torch::zeros({B, h, D, D}, s.k.options());
  std::vector<torch::Tensor> outs;
  for (std::int64_t c0 = 0; c0 < T; c0 += o.chunk) {
    const auto c1 = std::min(T, c0 + o.chunk), C = c1 - c0;
    const auto [q, k, v, G, M] = chunk_of(s, c0, c1);
    const auto A = torch::matmul(q, k.transpose(-1, -2)) * M;  // [B, h, C, C]
    const auto carried = torch::matmul(q, U.transpose(-1, -2)) * torch::exp(G).unsqueeze(-1);
    outs.push_back((torch::matmul(A, v) + carried) / std::sqrt(double(D)));
    const auto last = G.select(-1, C - 1);
    const auto decay = torch::exp(last.unsqueeze(-1) - G).unsqueeze(-1);  // e^{G_C − G_i}, [B, h, C, 1]
    U = torch::exp(last).unsqueeze(-1).unsqueeze(-1) * U + torch::matmul((v * decay).transpose(-1, -2), k);
  }
  return output(torch::cat(outs, 2), w, o);
}

// The gated delta rule, token by token: S ← γS; S ← S + β(v − S k̂)k̂ᵀ; o = D^{−1/2} S q.
torch::Tensor delta_rule(const Streams& s, const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o) {
  const auto B = x.size(0), T = x.size(1), h = o.heads, D = o.head_dim();
  auto S = torch::zeros({B, h, D, D}, s.k.options());
  const auto gamma = torch::exp(s.log_gamma);
  std::vector<torch::Tensor> outs;
  for (std::int64_t t = 0; t < T; ++t) {
    const auto k = s.k.select(2, t), v = s.v.select(2, t), q = s.q.select(2, t);  // [B, h, D]
    S = gamma.select(2, t).unsqueeze(-1).unsqueeze(-1) * S;
    const auto err = (v - torch::matmul(S, k.unsqueeze(-1)).squeeze(-1)) * s.beta.select(2, t).unsqueeze(-1);
    S = S + err.unsqueeze(-1) * k.unsqueeze(-2);
    outs.push_back(torch::matmul(S, q.unsqueeze(-1)).squeeze(-1) / std::sqrt(double(D)));
  }
  return output(torch::stack(outs, 2), w, o);
}

}  // namespace

torch::Tensor gka(const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o) {
  const auto s = streams(x, w, o, "functional::gka");
  if (o.mixer == "linear") return linear_attention(s, x, w, o);
  if (o.mixer == "delta") return delta_rule(s, x, w, o);
  const auto B = x.size(0), T = x.size(1), h = o.heads, D = o.head_dim();
  auto H = torch::zeros({B, h, D, D}, s.k.options());
  auto U = torch::zeros({B, h, D, D}, s.k.options());
  std::vector<torch::Tensor> outs;
  for (std::int64_t c0 = 0; c0 < T; c0 += o.chunk) {
    const auto c1 = std::min(T, c0 + o.chunk), C = c1 - c0;
    const auto [q, k, v, G, M] = chunk_of(s, c0, c1);
    const auto carry = torch::exp(G).unsqueeze(-1).unsqueeze(-1);  // [B, h, C, 1, 1]
    const auto Hc = torch::einsum("bhti,bhid,bhie->bhtde", {M, k, k}) + carry * H.unsqueeze(2);
    const auto Uc = torch::einsum("bhti,bhid,bhie->bhtde", {M, v, k}) + carry * U.unsqueeze(2);
    const auto xhat = solve(Hc, q, o);
    const auto qt = q + s.alpha.slice(2, c0, c1).unsqueeze(-1) * (xhat - q);
    outs.push_back(torch::matmul(Uc, qt.unsqueeze(-1)).squeeze(-1) / std::sqrt(double(D)));
    H = Hc.select(2, C - 1);
    U = Uc.select(2, C - 1);
  }
  return output(torch::cat(outs, 2), w, o);
}

torch::Tensor gka_reference(const torch::Tensor& x, const torch::Tensor* w, const GkaOptions& o) {
  SL_CHECK(o.mixer == "gka", ConfigError, "functional::gka_reference: model.mixer must be \"gka\", got \"", o.mixer, "\"");
  const auto s = streams(x, w, o, "functional::gka_reference");
  const auto B = x.size(0), T = x.size(1), h = o.heads, D = o.head_dim();
  auto H = torch::zeros({B, h, D, D}, s.k.options());
  auto U = torch::zeros({B, h, D, D}, s.k.options());
  std::vector<torch::Tensor> outs;
  for (std::int64_t t = 0; t < T; ++t) {
    const auto q = s.q.select(2, t), k = s.k.select(2, t), v = s.v.select(2, t);  // [B, h, D]
    const auto g = torch::exp(s.log_gamma.select(2, t)).unsqueeze(-1).unsqueeze(-1);
    H = g * H + k.unsqueeze(-1) * k.unsqueeze(-2);
    U = g * U + v.unsqueeze(-1) * k.unsqueeze(-2);
    const auto xhat = gka::exact_solve(H, q, gka::adaptive_ridge(H, o.ridge));
    const auto qt = q + s.alpha.select(2, t).unsqueeze(-1) * (xhat - q);
    outs.push_back(torch::matmul(U, qt.unsqueeze(-1)).squeeze(-1) / std::sqrt(double(D)));
  }
  return output(torch::stack(outs, 2), w, o);
}

}  // namespace functional

GkaImpl::GkaImpl(GkaOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  layout_ = gka_layout(options_);
  std::vector<std::int64_t> fan_in(layout_.size(), options_.d_model);
  weights_ = register_layout_parameters(*this, layout_, fan_in);
  torch::NoGradGuard ng;
  weights_[layout_.index_of("gate.dt_bias")].fill_(-4.0);
  weights_[layout_.index_of("gate.A_log")].zero_();
}

torch::Tensor GkaImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const {
  layout_.check(weights, "Gka::forward");
  return functional::gka(x, weights.data(), options_);
}

}  // namespace stablelearn::models
