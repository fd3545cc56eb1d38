// EMA merging with the automatic balance weight of LCIA (see strategies.h).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void EmaMergeOptions::fields(options::Visitor& v) {
  v("fallback", fallback, "EMA weight α used when the automatic balance weight is outside (0, 1)").above(0.0).below(1.0);
  v("automatic", automatic, "LCIA's automatic balance weight (false: the fixed weight fallback at every step)");
}

void EmaMerge::before_task(Context& ctx) {
  if (ema_.empty()) ema_ = snapshot(ctx.params);
  prev_grad_.clear();
}

void EmaMerge::after_backward(Context& ctx) {
  grad_.clear();
  if (!o_.automatic) return;
  for (const auto& p : ctx.params) grad_.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::zeros_like(p));
}

void EmaMerge::after_step(Context& ctx, const Batch&) {
  torch::NoGradGuard no_grad;
  alphas_.assign(ctx.params.size(), o_.fallback);
  for (std::size_t i = 0; i < ctx.params.size(); ++i) {
    const auto& p = ctx.params[i];
    double a = o_.fallback;
    if (o_.automatic && !prev_grad_.empty()) {
      const double g1 = grad_[i].abs().sum().item<double>();
      const double dtheta = (p - ema_[i]).abs().sum().item<double>();
      const double dg = (grad_[i] - prev_grad_[i]).abs().sum().item<double>();
      const double cand = 2.0 * (1.0 + g1) / (dtheta * dg);
      if (std::isfinite(cand) && cand > 0 && cand < 1) a = cand;
    }
    alphas_[i] = a;
    ema_[i].mul_(1 - a).add_(p.detach(), a);
  }
  prev_grad_ = grad_;
}

void EmaMerge::after_task(Context& ctx) {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < ctx.params.size(); ++i) ctx.params[i].copy_(ema_[i]);
}

std::map<std::string, torch::Tensor> EmaMerge::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "ema.weights", ema_);
  return m;
}

void EmaMerge::load_state(const std::map<std::string, torch::Tensor>& m) { ema_ = get_list(m, "ema.weights"); }

}  // namespace stablelearn::continual
