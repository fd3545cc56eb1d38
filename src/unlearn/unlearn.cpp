#include "stablelearn/unlearn/unlearn.h"

#include <algorithm>
#include <cmath>

#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/eigen.h"

namespace stablelearn::unlearn {

namespace {

void check_batch(const torch::Tensor& logits, const torch::Tensor& labels, const char* what) {
  SL_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError, what, ": logits ",
           logits.sizes(), " and labels ", labels.sizes(), ", expected [N, K] and [N]");
}

std::vector<torch::Tensor> axpy(const std::vector<torch::Tensor>& w, double a, const std::vector<torch::Tensor>& g) {
  std::vector<torch::Tensor> out;
  out.reserve(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) out.push_back(w[i].detach() + a * g[i]);
  return out;
}

}  // namespace

torch::Tensor label_log_likelihood(const torch::Tensor& logits, const torch::Tensor& labels) {
  check_batch(logits, labels, "label_log_likelihood");
  return torch::log_softmax(logits, 1).gather(1, labels.to(torch::kInt64).unsqueeze(1)).squeeze(1);
}

torch::Tensor ga_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  return label_log_likelihood(logits, labels).mean();
}

torch::Tensor npo_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& ref, double beta) {
  SL_CHECK(std::isfinite(beta) && beta > 0, ConfigError, "NPO: beta = ", beta, ": expected a number > 0");
  const auto l = label_log_likelihood(logits, labels);
  SL_CHECK(ref.dim() == 1 && ref.size(0) == l.size(0), ShapeError, "NPO: reference log-likelihoods ", ref.sizes(),
           ", expected [", l.size(0), "]");
  return -(2.0 / beta) * torch::log_sigmoid(-beta * (l - ref.detach().to(l.dtype()))).mean();
}

std::vector<torch::Tensor> gradient_at(const WeightLoss& loss, const std::vector<torch::Tensor>& w, double* value) {
  std::vector<torch::Tensor> leaves;
  leaves.reserve(w.size());
  for (const auto& t : w) leaves.push_back(t.detach().clone().requires_grad_(true));
  const auto l = loss(leaves);
  SL_CHECK(l.numel() == 1, ShapeError, "unlearn: a loss must be a scalar, got ", l.sizes());
  if (value != nullptr) *value = l.item<double>();
  auto g = torch::autograd::grad({l}, leaves, {}, false, false, true);
  for (std::size_t i = 0; i < g.size(); ++i)
    if (!g[i].defined()) g[i] = torch::zeros_like(leaves[i]);
  return g;
}

double dot(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  SL_CHECK(a.size() == b.size(), ShapeError, "unlearn: ", a.size(), " and ", b.size(), " tensors in a dot product");
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i].to(torch::kFloat64) * b[i].to(torch::kFloat64)).sum().item<double>();
  return s;
}

double norm(const std::vector<torch::Tensor>& a) { return std::sqrt(dot(a, a)); }

std::vector<torch::Tensor> perturbed_point(const std::vector<torch::Tensor>& w, const std::vector<torch::Tensor>& g, double rho) {
  SL_CHECK(w.size() == g.size(), ShapeError, "unlearn: ", w.size(), " weights and ", g.size(), " gradients");
  const double n = norm(g);
  return axpy(w, n > 0 ? rho / n : 0.0, g);
}

std::vector<torch::Tensor> project_conflicting(const std::vector<torch::Tensor>& g_f, const std::vector<torch::Tensor>& g_r,
                                               double delta, bool* projected) {
  const double in = dot(g_f, g_r);
  if (projected != nullptr) *projected = in < 0;
  if (!(in < 0)) return g_f;
  const double rr = dot(g_r, g_r);
  return axpy(g_f, -in / (rr + delta), g_r);
}

void UnlearnOptions::validate(const std::string& prefix) const {
  SL_CHECK(method == "ga" || method == "npo" || method == "stableun", ConfigError, prefix, "method = '", method,
           "': expected one of ga, npo, stableun");
  SL_CHECK(forget_loss == "ga" || forget_loss == "npo", ConfigError, prefix, "forget_loss = '", forget_loss,
           "': expected ga or npo");
  SL_CHECK(steps >= 0, ConfigError, prefix, "steps = ", steps, ": expected >= 0");
  SL_CHECK(batch >= 1, ConfigError, prefix, "batch = ", batch, ": expected >= 1");
  SL_CHECK(check_every >= 1, ConfigError, prefix, "check_every = ", check_every, ": expected >= 1");
  SL_CHECK(std::isfinite(stop_forget_acc) && stop_forget_acc <= 1, ConfigError, prefix, "stop_forget_acc = ", stop_forget_acc,
           ": expected an accuracy in [0, 1] (or < 0: never stop early)");
  auto positive = [&](double v, const char* key) {
    SL_CHECK(std::isfinite(v) && v > 0, ConfigError, prefix, key, " = ", v, ": expected a number > 0");
  };
  auto nonneg = [&](double v, const char* key) {
    SL_CHECK(std::isfinite(v) && v >= 0, ConfigError, prefix, key, " = ", v, ": expected a number >= 0");
  };
  positive(lr, "lr");
  positive(beta, "beta");
  positive(delta, "delta");
  nonneg(rho, "rho");
  nonneg(alpha, "alpha");
  nonneg(lambda_f, "lambda_f");
  nonneg(lambda_r, "lambda_r");
}

namespace {
void apply_update(std::vector<torch::Tensor>& w, const UnlearnOptions& o, const std::vector<torch::Tensor>& gf,
                  const std::vector<torch::Tensor>& gr) {
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i].sub_(gf[i].to(w[i].dtype()), o.lr * o.lambda_f);
    w[i].sub_(gr[i].to(w[i].dtype()), o.lr * o.lambda_r);
  }
}
}  // namespace

StepStats descent_step(std::vector<torch::Tensor>& w, const WeightLoss& forget, const WeightLoss& retain, const UnlearnOptions& o) {
  StepStats s;
  const auto gf = gradient_at(forget, w, &s.forget_loss);
  const auto gr = gradient_at(retain, w, &s.retain_loss);
  s.passes = 2;
  s.inner = dot(gf, gr);
  apply_update(w, o, gf, gr);
  return s;
}

StepStats stableun_step(std::vector<torch::Tensor>& w, const WeightLoss& forget, const WeightLoss& retain, const UnlearnOptions& o) {
  StepStats s;
  const auto g = gradient_at(forget, w, &s.forget_loss);                   // pass 1: ∇L_f(θ)
  auto g_f = gradient_at(forget, perturbed_point(w, g, o.rho));            // pass 2: ∇L_f(θ + ε)
  const double alpha = o.alpha > 0 ? o.alpha : o.lr;
  std::vector<torch::Tensor> ahead;
  for (std::size_t i = 0; i < w.size(); ++i) ahead.push_back(w[i].detach() - alpha * g_f[i].to(w[i].dtype()));
  const auto g_r = gradient_at(retain, ahead, &s.retain_loss);             // pass 3: ∇L_r(θ − α g_F)
  s.passes = 3;
  s.inner = dot(g_f, g_r);
  g_f = project_conflicting(g_f, g_r, o.delta, &s.projected);
  apply_update(w, o, g_f, g_r);
  return s;
}

UnlearnTrace unlearn(std::vector<torch::Tensor>& w, const LogitsFn& f, const UnlearnData& d, const UnlearnOptions& o,
                     const std::function<void(std::int64_t, const StepStats&)>& step_done) {
  o.validate();
  SL_CHECK(d.x_forget.defined() && d.x_retain.defined() && d.x_forget.size(0) > 0 && d.x_retain.size(0) > 0, ShapeError,
           "unlearn: the forget and the retain set must both hold samples");
  SL_CHECK(d.y_forget.dim() == 1 && d.y_forget.size(0) == d.x_forget.size(0), ShapeError, "unlearn: ", d.x_forget.size(0),
           " forget inputs and labels ", d.y_forget.sizes());
  SL_CHECK(d.y_retain.dim() == 1 && d.y_retain.size(0) == d.x_retain.size(0), ShapeError, "unlearn: ", d.x_retain.size(0),
           " retain inputs and labels ", d.y_retain.sizes());
  const bool npo = o.method == "npo" || (o.method == "stableun" && o.forget_loss == "npo");
  torch::Tensor ref;
  if (npo) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> parts;
    for (std::int64_t s = 0; s < d.x_forget.size(0); s += 1024) {
      const auto e = std::min(d.x_forget.size(0), s + 1024);
      parts.push_back(label_log_likelihood(f(d.x_forget.slice(0, s, e), w), d.y_forget.slice(0, s, e)));
    }
    ref = torch::cat(parts);
  }
  auto gen = at::detail::createCPUGenerator(o.seed * 6364136223846793005ULL + 1442695040888963407ULL);
  const auto nf = d.x_forget.size(0), nr = d.x_retain.size(0);
  const auto nm = std::min<std::int64_t>(nf, 1024);
  const auto monitor_x = d.x_forget.slice(0, 0, nm), monitor_y = d.y_forget.slice(0, 0, nm);
  UnlearnTrace t;
  std::vector<torch::Tensor> last_finite;  // θ at the start of the last step whose losses were finite
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const auto fi = torch::randint(nf, {std::min(o.batch, nf)}, gen, torch::kInt64).to(d.x_forget.device());
    const auto ri = torch::randint(nr, {std::min(o.batch, nr)}, gen, torch::kInt64).to(d.x_retain.device());
    const auto xf = d.x_forget.index_select(0, fi), yf = d.y_forget.index_select(0, fi);
    const auto xr = d.x_retain.index_select(0, ri), yr = d.y_retain.index_select(0, ri);
    torch::Tensor rf;
    if (npo) rf = ref.index_select(0, fi.to(ref.device()));
    const WeightLoss forget = [&](const std::vector<torch::Tensor>& v) {
      const auto z = f(xf, v);
      return npo ? npo_loss(z, yf, rf, o.beta) : ga_loss(z, yf);
    };
    const WeightLoss retain = [&](const std::vector<torch::Tensor>& v) {
      return torch::nn::functional::cross_entropy(f(xr, v), yr);
    };
    std::vector<torch::Tensor> start;
    for (const auto& v : w) start.push_back(v.detach().clone());
    const auto s = o.method == "stableun" ? stableun_step(w, forget, retain, o) : descent_step(w, forget, retain, o);
    if (!(std::isfinite(s.forget_loss) && std::isfinite(s.retain_loss))) {
      // θ at the start of this step is already broken: go back to the last θ with finite losses.
      torch::NoGradGuard ng;
      for (std::size_t i = 0; i < w.size(); ++i) w[i].copy_(last_finite.empty() ? start[i] : last_finite[i]);
      t.diverged = true;
      t.passes += s.passes;
      if (!t.forget_loss.empty()) {  // the returned weights are those before the previous step's update
        t.forget_loss.pop_back();
        t.retain_loss.pop_back();
      }
      t.steps = static_cast<std::int64_t>(t.forget_loss.size());
      break;
    }
    last_finite = std::move(start);
    t.forget_loss.push_back(s.forget_loss);
    t.retain_loss.push_back(s.retain_loss);
    t.projections += s.projected ? 1 : 0;
    t.passes += s.passes;
    t.steps = step + 1;
    if (step_done) step_done(step, s);
    if (o.stop_forget_acc >= 0 && (step + 1) % o.check_every == 0 &&
        accuracy(f, w, monitor_x, monitor_y) <= o.stop_forget_acc) {
      t.stopped_early = step + 1 < o.steps;
      break;
    }
  }
  return t;
}

double accuracy(const LogitsFn& f, const std::vector<torch::Tensor>& w, const torch::Tensor& x, const torch::Tensor& y) {
  SL_CHECK(x.size(0) == y.size(0), ShapeError, "accuracy: ", x.size(0), " inputs and ", y.size(0), " labels");
  if (x.size(0) == 0) return std::nan("");
  torch::NoGradGuard ng;
  std::int64_t right = 0;
  for (std::int64_t s = 0; s < x.size(0); s += 1024) {
    const auto e = std::min(x.size(0), s + 1024);
    right += f(x.slice(0, s, e), w).argmax(1).eq(y.slice(0, s, e)).sum().item<std::int64_t>();
  }
  return static_cast<double>(right) / static_cast<double>(x.size(0));
}

void RelearnOptions::validate(const std::string& prefix) const {
  SL_CHECK(steps >= 1, ConfigError, prefix, "steps = ", steps, ": expected >= 1");
  SL_CHECK(std::isfinite(lr) && lr > 0, ConfigError, prefix, "lr = ", lr, ": expected a number > 0");
}

RelearnCurve relearn_attack(const std::vector<torch::Tensor>& w, const LogitsFn& f, const torch::Tensor& x_attack,
                            const torch::Tensor& y_attack, const torch::Tensor& x_eval, const torch::Tensor& y_eval,
                            const RelearnOptions& o) {
  o.validate("relearn.");
  SL_CHECK(x_attack.size(0) > 0 && x_attack.size(0) == y_attack.size(0), ShapeError, "relearn: ", x_attack.size(0),
           " attack inputs and ", y_attack.size(0), " labels (need at least one)");
  std::vector<torch::Tensor> v;
  for (const auto& t : w) v.push_back(t.detach().clone().requires_grad_(true));
  torch::optim::Adam opt(v, torch::optim::AdamOptions(o.lr));
  RelearnCurve c;
  c.accuracy.push_back(accuracy(f, v, x_eval, y_eval));
  for (std::int64_t s = 0; s < o.steps; ++s) {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(f(x_attack, v), y_attack).backward();
    opt.step();
    c.accuracy.push_back(accuracy(f, v, x_eval, y_eval));
  }
  double area = 0;
  for (std::size_t i = 1; i < c.accuracy.size(); ++i) area += 0.5 * (c.accuracy[i - 1] + c.accuracy[i]);
  c.auc = area / static_cast<double>(o.steps);
  for (std::size_t i = 0; i < c.accuracy.size(); ++i)
    if (c.accuracy[i] >= 0.5) {
      c.steps_to_half = static_cast<std::int64_t>(i);
      break;
    }
  return c;
}

double forget_sharpness(const std::vector<torch::Tensor>& w, const LogitsFn& f, const torch::Tensor& x, const torch::Tensor& y,
                        std::int64_t steps, std::uint64_t seed) {
  SL_CHECK(x.size(0) > 0 && x.size(0) == y.size(0), ShapeError, "forget_sharpness: ", x.size(0), " inputs and ", y.size(0),
           " labels (need at least one)");
  std::vector<torch::Tensor> params;
  for (const auto& t : w) params.push_back(t.detach().clone().requires_grad_(true));
  std::vector<diagnostics::Batch> batches;
  for (std::int64_t s = 0; s < x.size(0); s += 1024) {
    const auto e = std::min(x.size(0), s + 1024);
    batches.push_back({x.slice(0, s, e), y.slice(0, s, e)});
  }
  const diagnostics::LossFn loss = [&f, &params](const diagnostics::Batch& b) {
    return torch::nn::functional::cross_entropy(f(b.x, params), b.y);
  };
  diagnostics::HessianOperator h(params, loss, batches);
  const auto m = std::min<std::int64_t>(steps, h.dim());
  const auto r = diagnostics::lanczos(h, diagnostics::LanczosOptions().k(1).steps(m).seed(seed));
  return r.eigenvalues[0].item<double>();
}

}  // namespace stablelearn::unlearn
