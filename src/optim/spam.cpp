// Stable-SPAM and SPAM (include/stablelearn/optim/spam.h; docs/optim.md).
#include "stablelearn/optim/spam.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

namespace {

constexpr double kPi = 3.14159265358979323846;

void check_common(double lr, double eps, double b1, double b2, double wd, const char* who) {
  SL_CHECK(lr >= 0 && std::isfinite(lr), ConfigError, who, ": learning rate ", lr, " (want >= 0)");
  SL_CHECK(eps >= 0, ConfigError, who, ": eps ", eps, " (want >= 0)");
  SL_CHECK(b1 >= 0 && b1 < 1, ConfigError, who, ": beta1 ", b1, " (want [0, 1))");
  SL_CHECK(b2 >= 0 && b2 < 1, ConfigError, who, ": beta2 ", b2, " (want [0, 1))");
  SL_CHECK(wd >= 0, ConfigError, who, ": weight_decay ", wd, " (want >= 0)");
}

/// The fused CPU path applies to dense contiguous float32/float64 CPU tensors of one dtype.
bool fused_applies(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v) {
  const auto t = p.scalar_type();
  if (t != torch::kFloat32 && t != torch::kFloat64) return false;
  for (const auto* x : {&p, &g, &m, &v})
    if (!x->device().is_cpu() || x->scalar_type() != t || !x->is_contiguous() || x->numel() != p.numel()) return false;
  return true;
}

/// max|g| and ‖g‖² in one pass (double accumulation).
template <typename T>
std::pair<double, double> max_and_sumsq(const T* g, std::int64_t n) {
  double mx = 0, ss = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(g[i]);
    mx = std::max(mx, std::abs(x));
    ss += x * x;
  }
  return {mx, ss};
}

/// ‖clip(g)‖² with AdaClip's rule (|g_i| > bound → g_i · bound / max).
template <typename T>
double clipped_sumsq(const T* g, std::int64_t n, double bound, double scale) {
  double ss = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double x = static_cast<double>(g[i]);
    if (std::abs(x) > bound) x *= scale;
    ss += x * x;
  }
  return ss;
}

/// One pass of Stable-SPAM's Adam on the clipped, rescaled gradient: g̃_i = k · clip(g_i), then
/// m, v and p (p already decayed). step = lr / bc1, inv_sqrt_bc2 = 1 / √bc2.
template <typename T>
void stable_spam_update(T* p, const T* g, T* m, T* v, std::int64_t n, double bound, double clip_scale, double k, double b1,
                        double b2, double eps, double step, double inv_sqrt_bc2) {
  const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2), c1 = static_cast<T>(1 - b1), c2 = static_cast<T>(1 - b2);
  const T tk = static_cast<T>(k), teps = static_cast<T>(eps), tstep = static_cast<T>(step), tinv = static_cast<T>(inv_sqrt_bc2);
  const T tbound = static_cast<T>(bound), tclip = static_cast<T>(clip_scale);
  for (std::int64_t i = 0; i < n; ++i) {
    T x = g[i];
    if (std::abs(x) > tbound) x *= tclip;
    x *= tk;
    m[i] = tb1 * m[i] + c1 * x;
    v[i] = tb2 * v[i] + c2 * x * x;
    p[i] -= tstep * m[i] / (std::sqrt(v[i]) * tinv + teps);
  }
}

/// One pass of SPAM: the spike clip against θ v (before this step's update), m, v, p, decay.
template <typename T>
void spam_update(T* p, const T* g, T* m, T* v, std::int64_t n, bool clip, double threshold, double b1, double b2, double eps,
                 double step, double decay) {
  const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2), c1 = static_cast<T>(1 - b1), c2 = static_cast<T>(1 - b2);
  const T teps = static_cast<T>(eps), tstep = static_cast<T>(step), tdecay = static_cast<T>(decay), th = static_cast<T>(threshold);
  for (std::int64_t i = 0; i < n; ++i) {
    T x = g[i];
    if (clip && x * x > th * v[i]) {
      const T b = std::sqrt(th * v[i]);
      x = x > 0 ? b : x < 0 ? -b : T(0);
    }
    m[i] = tb1 * m[i] + c1 * x;
    v[i] = tb2 * v[i] + c2 * x * x;
    p[i] -= tstep * m[i] / (std::sqrt(v[i]) + teps);
    p[i] -= tdecay * p[i];
  }
}

template <typename State, typename States>
State& state_of(States& states, const torch::Tensor& p) {
  auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto it = states.find(key);
  if (it == states.end()) {
    auto s = std::make_unique<State>();
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = states.emplace(std::move(key), std::move(s)).first;
  }
  return static_cast<State&>(*it->second);
}

}  // namespace

// ---- the mechanisms ---------------------------------------------------------------------------

namespace {

/// AdaClip's running max|g| (updated) and its bias-corrected value m̂_max at step t: the bound.
double ada_clip_bound(double& m_max, double max_abs, std::int64_t t, double gamma3) {
  m_max = gamma3 * m_max + (1 - gamma3) * max_abs;
  return m_max / (1 - std::pow(gamma3, static_cast<double>(t)));
}

/// AdaGN's running norms (updated) and the factor k with which g (of norm n) becomes
/// g · m̂_n / (√v̂_n + ε) / n (k = 1 for n = 0: the gradient stays as it is).
double ada_gn_factor(double& m_norm, double& v_norm, double n, std::int64_t t, double gamma1, double gamma2, double eps) {
  m_norm = gamma1 * m_norm + (1 - gamma1) * n;
  v_norm = gamma2 * v_norm + (1 - gamma2) * n * n;
  const double td = static_cast<double>(t);
  const double m_hat = m_norm / (1 - std::pow(gamma1, td));
  const double v_hat = v_norm / (1 - std::pow(gamma2, td));
  return n > 0 ? (m_hat / (std::sqrt(v_hat) + eps)) / n : 1.0;
}

}  // namespace

void ada_clip_(torch::Tensor& g, double& m_max, std::int64_t t, double gamma3) {
  const double max_abs = g.abs().max().item<double>();
  const double m_hat = ada_clip_bound(m_max, max_abs, t, gamma3);
  if (max_abs > m_hat) {
    const auto mask = g.abs() > m_hat;
    g.copy_(torch::where(mask, g * (m_hat / max_abs), g));
  }
}

torch::Tensor ada_gn(const torch::Tensor& g, double& m_norm, double& v_norm, std::int64_t t, double gamma1, double gamma2,
                     double eps) {
  const double n = g.norm().item<double>();
  const double k = ada_gn_factor(m_norm, v_norm, n, t, gamma1, gamma2, eps);
  return n > 0 ? g * k : g;
}

void spam_clip_(torch::Tensor& g, const torch::Tensor& v, double threshold) {
  const auto bound = (v * threshold).sqrt();
  const auto mask = g.pow(2) > v * threshold;
  g.copy_(torch::where(mask, g.sign() * bound, g));
}

double stable_spam_cosine(std::int64_t k, std::int64_t total, double eta_min) {
  return eta_min + (1 - eta_min) * (1 + std::cos(kPi * static_cast<double>(k) / static_cast<double>(total + 1))) / 2;
}

// ---- Stable-SPAM ------------------------------------------------------------------------------

namespace {

void write_count(torch::serialize::OutputArchive& archive, const char* key, std::int64_t v) {
  archive.write(key, torch::tensor(v, torch::kInt64));
}
void read_count(torch::serialize::InputArchive& archive, const char* key, std::int64_t& v) {
  torch::Tensor t;
  archive.read(key, t);
  v = t.item<std::int64_t>();
}

}  // namespace

void StableSpamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(betas);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(gamma1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(gamma2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(gamma3);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(update_proj_gap);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(total_steps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eta_min);
}
void StableSpamOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(betas_t, betas);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, gamma1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, gamma2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, gamma3);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, update_proj_gap);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, total_steps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eta_min);
}
void StableSpamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(m_max);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(m_norm);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(v_norm);
}
void StableSpamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, m_max);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, m_norm);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, v_norm);
}

StableSpam::StableSpam(std::vector<torch::optim::OptimizerParamGroup> groups, StableSpamOptions d)
    : Optimizer(std::move(groups), std::make_unique<StableSpamOptions>(d)) {
  check_common(d.lr(), d.eps(), std::get<0>(d.betas()), std::get<1>(d.betas()), d.weight_decay(), "StableSpam");
  SL_CHECK(d.gamma1() == -1 || (d.gamma1() >= 0 && d.gamma1() < 1), ConfigError, "StableSpam: gamma1 ", d.gamma1(),
           " (want [0, 1), or -1 for beta1)");
  SL_CHECK(d.gamma2() >= 0 && d.gamma2() < 1, ConfigError, "StableSpam: gamma2 ", d.gamma2(), " (want [0, 1))");
  SL_CHECK(d.gamma3() >= 0 && d.gamma3() < 1, ConfigError, "StableSpam: gamma3 ", d.gamma3(), " (want [0, 1))");
  SL_CHECK(d.update_proj_gap() >= 0, ConfigError, "StableSpam: update_proj_gap ", d.update_proj_gap(), " (want >= 0)");
  SL_CHECK(d.total_steps() >= 0, ConfigError, "StableSpam: total_steps ", d.total_steps(), " (want >= 0)");
  SL_CHECK(d.eta_min() >= 0 && d.eta_min() <= 1, ConfigError, "StableSpam: eta_min ", d.eta_min(), " (want [0, 1])");
}

torch::Tensor StableSpam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  ++steps_;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const StableSpamOptions&>(group.options());
    const double scale = o.total_steps() > 0 ? stable_spam_cosine(steps_, o.total_steps(), o.eta_min()) : 1.0;
    const double beta1 = std::get<0>(o.betas()) * scale, beta2 = std::get<1>(o.betas());
    const double gamma1 = (o.gamma1() == -1 ? std::get<0>(o.betas()) : o.gamma1()) * scale;
    const bool moret = o.update_proj_gap() > 0 && steps_ % o.update_proj_gap() == 0;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      SL_CHECK(!p.grad().is_sparse(), ConfigError, "StableSpam: sparse gradients are not supported");
      auto& s = state_of<StableSpamParamState>(state_, p);
      if (o.weight_decay() > 0) p.mul_(1 - o.lr() * o.weight_decay());
      s.step(s.step() + 1);
      const auto& grad = p.grad();
      if (moret) {  // MoRet (after the counter moved)
        s.exp_avg().zero_();
        s.exp_avg_sq().zero_();
      }
      if (fused_applies(p, grad, s.exp_avg(), s.exp_avg_sq())) {
        // Two passes: max|g| with ‖g‖² (‖clip(g)‖² again only when AdaClip bites), then the update
        // with AdaGN's factor folded into the gradient.
        const auto n = p.numel();
        double max_abs = 0, sumsq = 0;
        AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "stable_spam_norms", [&] {
          std::tie(max_abs, sumsq) = max_and_sumsq(grad.data_ptr<scalar_t>(), n);
        });
        double m_max = s.m_max(), m_norm = s.m_norm(), v_norm = s.v_norm();
        const double bound = ada_clip_bound(m_max, max_abs, s.step(), o.gamma3());
        const bool clipping = max_abs > bound;
        const double clip_scale = clipping ? bound / max_abs : 1.0;
        if (clipping)
          AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "stable_spam_clipped", [&] {
            sumsq = clipped_sumsq(grad.data_ptr<scalar_t>(), n, bound, clip_scale);
          });
        const double k = ada_gn_factor(m_norm, v_norm, std::sqrt(sumsq), s.step(), gamma1, o.gamma2(), o.eps());
        s.m_max(m_max).m_norm(m_norm).v_norm(v_norm);
        if (moret) s.step(1);
        const double t = static_cast<double>(s.step());
        const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
        AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "stable_spam_update", [&] {
          stable_spam_update(p.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), s.exp_avg().data_ptr<scalar_t>(),
                             s.exp_avg_sq().data_ptr<scalar_t>(), n, clipping ? bound : INFINITY, clip_scale, k, beta1, beta2,
                             o.eps(), o.lr() / bc1, 1 / std::sqrt(bc2));
        });
        continue;
      }
      // Any other tensor (another device or dtype, strided): the same step with tensor operations.
      auto g = grad.clone();
      double m_max = s.m_max(), m_norm = s.m_norm(), v_norm = s.v_norm();
      ada_clip_(g, m_max, s.step(), o.gamma3());
      g = ada_gn(g, m_norm, v_norm, s.step(), gamma1, o.gamma2(), o.eps());
      s.m_max(m_max).m_norm(m_norm).v_norm(v_norm);
      if (moret) s.step(1);
      const double t = static_cast<double>(s.step());
      const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
      s.exp_avg().mul_(beta1).add_(g, 1 - beta1);
      s.exp_avg_sq().mul_(beta2).addcmul_(g, g, 1 - beta2);
      const auto denom = (s.exp_avg_sq().sqrt() / std::sqrt(bc2)).add_(o.eps());
      p.addcdiv_(s.exp_avg(), denom, -o.lr() / bc1);
    }
  }
  return loss;
}

void StableSpam::save(torch::serialize::OutputArchive& archive) const {
  write_count(archive, "steps", steps_);
  torch::optim::serialize<StableSpamParamState, StableSpamOptions>(archive, *this);
}
void StableSpam::load(torch::serialize::InputArchive& archive) {
  read_count(archive, "steps", steps_);
  torch::optim::serialize<StableSpamParamState, StableSpamOptions>(archive, *this);
}

// ---- SPAM ---------------------------------------------------------------------------------------

void SpamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(betas);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(threshold);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(grad_accu_steps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(update_proj_gap);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(warmup_steps);
}
void SpamOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(betas_t, betas);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, threshold);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, grad_accu_steps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, update_proj_gap);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, warmup_steps);
}
void SpamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}
void SpamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

Spam::Spam(std::vector<torch::optim::OptimizerParamGroup> groups, SpamOptions d)
    : Optimizer(std::move(groups), std::make_unique<SpamOptions>(d)) {
  check_common(d.lr(), d.eps(), std::get<0>(d.betas()), std::get<1>(d.betas()), d.weight_decay(), "Spam");
  SL_CHECK(d.threshold() >= 0, ConfigError, "Spam: threshold ", d.threshold(), " (want >= 0; 0 = no clipping)");
  SL_CHECK(d.grad_accu_steps() >= 0, ConfigError, "Spam: grad_accu_steps ", d.grad_accu_steps(), " (want >= 0)");
  SL_CHECK(d.update_proj_gap() >= 0, ConfigError, "Spam: update_proj_gap ", d.update_proj_gap(), " (want >= 0)");
  SL_CHECK(d.warmup_steps() >= 0, ConfigError, "Spam: warmup_steps ", d.warmup_steps(), " (want >= 0)");
}

torch::Tensor Spam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  ++steps_;
  const auto& d = static_cast<const SpamOptions&>(defaults());
  const bool reset = d.update_proj_gap() > 0 && steps_ % d.update_proj_gap() == 0;
  if (reset) since_reset_ = 0;
  const double factor =
      since_reset_ >= 0 && since_reset_ < d.warmup_steps()
          ? 1 - 0.99 * (1 + std::cos(kPi * static_cast<double>(since_reset_) / static_cast<double>(d.warmup_steps() + 1))) / 2
          : 1.0;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const SpamOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      SL_CHECK(!p.grad().is_sparse(), ConfigError, "Spam: sparse gradients are not supported");
      auto& s = state_of<SpamParamState>(state_, p);
      if (reset) {
        s.exp_avg().zero_();
        s.exp_avg_sq().zero_();
      }
      s.step(s.step() + 1);
      const bool clip = o.threshold() > 0 && steps_ >= o.grad_accu_steps() &&
                        (o.update_proj_gap() == 0 || steps_ % o.update_proj_gap() >= o.grad_accu_steps());
      const double t = static_cast<double>(s.step());
      const double step_size = o.lr() * std::sqrt(1 - std::pow(beta2, t)) / (1 - std::pow(beta1, t));
      const auto& grad = p.grad();
      if (fused_applies(p, grad, s.exp_avg(), s.exp_avg_sq())) {  // one pass
        AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "spam_update", [&] {
          spam_update(p.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), s.exp_avg().data_ptr<scalar_t>(),
                      s.exp_avg_sq().data_ptr<scalar_t>(), p.numel(), clip, o.threshold(), beta1, beta2, o.eps(),
                      step_size * factor, o.lr() * o.weight_decay());
        });
        continue;
      }
      auto g = grad.clone();
      if (clip) spam_clip_(g, s.exp_avg_sq(), o.threshold());
      s.exp_avg().mul_(beta1).add_(g, 1 - beta1);
      s.exp_avg_sq().mul_(beta2).addcmul_(g, g, 1 - beta2);
      p.addcdiv_(s.exp_avg(), s.exp_avg_sq().sqrt().add_(o.eps()), -step_size * factor);
      if (o.weight_decay() > 0) p.add_(p, -o.lr() * o.weight_decay());
    }
  }
  if (since_reset_ >= 0) ++since_reset_;
  return loss;
}

void Spam::save(torch::serialize::OutputArchive& archive) const {
  write_count(archive, "steps", steps_);
  write_count(archive, "since_reset", since_reset_);
  torch::optim::serialize<SpamParamState, SpamOptions>(archive, *this);
}
void Spam::load(torch::serialize::InputArchive& archive) {
  read_count(archive, "steps", steps_);
  read_count(archive, "since_reset", since_reset_);
  torch::optim::serialize<SpamParamState, SpamOptions>(archive, *this);
}

}  // namespace stablelearn::optim
