// The discrete-time sNODE map Φ_h (derivation in include/stablelearn/models/snode_discrete.h and
// docs/lfd.md §7).
#include "stablelearn/models/snode_discrete.h"

#include <cmath>
#include <limits>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::models::functional {

double discrete_goal_grad_norm2(c10::ScalarType dtype) {
  // tiny^0.4 (tiny = the smallest normal number): 1/‖∇V‖⁴, which the backward of the projection
  // forms, stays below tiny^-0.8, far from overflow.
  return std::pow(dtype == torch::kFloat64 ? std::numeric_limits<double>::min()
                                           : static_cast<double>(std::numeric_limits<float>::min()),
                  0.4);
}

void check_discrete_options(const SNodeOptions& o, double kappa, const char* who) {
  o.validate();
  SL_CHECK(!o.explicit_time(), ConfigError, who,
           ": the discrete-time sNODE needs an autonomous field (explicit_time = false): with a clock input V is "
           "not a Lyapunov function of the integrated system");
  SL_CHECK(kappa > 0 && kappa <= 1, ConfigError, who, ": kappa must be in (0, 1], got ", kappa);
}

namespace {

/// Φ_h on rows none of which is at the goal (every V(x) > 0 or a finite Euler candidate).
struct Core {
  torch::Tensor x, projected, lyapunov, candidate_finite, grad_norm2;
};

Core discrete_core(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& w, const SNodeOptions& o,
                   double kappa, const torch::Tensor& cond) {
  const auto e = snode_eval(x, w, o, cond);  // f and V(x) in one pass
  const auto y = x + h * e.f;
  const auto Vy = snode_lyapunov(y, w, o);
  const auto c = e.V * std::exp(-kappa * o.alpha() * h);
  // The switch is decided on values (a.e. constant), the pull is differentiated through c, V(y), y.
  const auto projected = (Vy > c).detach();
  // Where not projected, c / V(y) is not used but is still differentiated (where's backward sends
  // zeros there): V(y) may be 0 there, so divide by a safe 1 instead of producing 0/0 gradients.
  const auto Vy_safe = torch::where(projected, Vy, torch::ones_like(Vy));
  const auto lambda = torch::where(projected, c / Vy_safe * (1.0 - kDiscreteProjectionMargin), torch::ones_like(Vy));
  return {lambda.unsqueeze(1) * y, projected, e.V, torch::isfinite(y).all(1).detach(),
          (e.grad_V * e.grad_V).sum(1).detach()};
}

/// Φ_h with the goal rule, inputs already checked (the rollout checks once, not at every step).
SNodeDiscreteStep discrete_step_checked(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& weights,
                                        const SNodeOptions& o, double kappa, const torch::Tensor& cond);

void check_step_inputs(const torch::Tensor& x, const SNodeOptions& o, const char* who) {
  SL_CHECK(x.dim() == 2 && x.size(1) == o.dim(), ShapeError, who, ": x must be [B, ", o.dim(), "], got ",
           shape_string(x.sizes()));
}

}  // namespace

SNodeDiscreteStep snode_discrete_step(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& weights,
                                      const SNodeOptions& o, double kappa, const torch::Tensor& cond) {
  check_discrete_options(o, kappa, "snode_discrete_step");
  check_step_inputs(x, o, "snode_discrete_step");
  SL_CHECK(h > 0 && std::isfinite(h), ConfigError, "snode_discrete_step: the step h must be > 0, got ", h);
  return discrete_step_checked(x, h, weights, o, kappa, cond);
}

namespace {

SNodeDiscreteStep discrete_step_checked(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& weights,
                                        const SNodeOptions& o, double kappa, const torch::Tensor& cond) {
  auto core = discrete_core(x, h, weights, o, kappa, cond);
  // The goal rule (file comment): x = 0, V(x) = 0, ‖∇V(x)‖² at or below the dtype's floor, or
  // V(x) ≤ 1e-200 with a non-finite candidate. x = 0 is tested on the state itself: V(0) is exactly
  // 0 only up to the batch's rounding (g(x) − g(0) with g(0) from another row of the same matrix
  // product, whose kernel may sum in another order), and a state put on the goal stays there.
  const auto V = core.lyapunov.detach();
  const auto goal = (x.detach() == 0).all(1) | (V <= 0) | (core.grad_norm2 <= discrete_goal_grad_norm2(x.scalar_type())) |
                    ((V <= kDiscreteGoalLyapunov) & core.candidate_finite.logical_not());
  if (!goal.any().item<bool>()) return {core.x, core.projected, goal, core.lyapunov};
  // Rare: re-evaluate without the goal rows (their 0/0 field would put NaN into the gradient) and
  // place those rows exactly on the goal. The other rows go through the goal rule again: in a
  // smaller batch their V and ∇V are rounded differently and may meet it now.
  const auto keep = goal.logical_not().nonzero().squeeze(1);
  auto out = torch::zeros_like(x);
  auto projected = torch::zeros_like(goal);
  auto at_goal = goal.clone();
  auto lyapunov = torch::zeros_like(V);
  if (keep.numel() > 0) {
    const auto sub_cond = cond.defined() && cond.dim() == 2 && cond.size(0) == x.size(0) ? cond.index_select(0, keep) : cond;
    const auto sub = discrete_step_checked(x.index_select(0, keep), h, weights, o, kappa, sub_cond);
    out = out.index_copy(0, keep, sub.x);
    projected = projected.index_copy(0, keep, sub.projected);
    at_goal = at_goal.index_copy(0, keep, sub.goal);
    lyapunov = lyapunov.index_copy(0, keep, sub.lyapunov);
  }
  return {out, projected, at_goal, lyapunov};
}

}  // namespace

torch::Tensor snode_discrete_rollout(const torch::Tensor& x0, const torch::Tensor& t, const std::vector<torch::Tensor>& weights,
                                     const SNodeOptions& o, double kappa, const torch::Tensor& cond,
                                     SNodeDiscreteStats* stats) {
  check_discrete_options(o, kappa, "snode_discrete_rollout");
  check_step_inputs(x0, o, "snode_discrete_rollout");
  SL_CHECK(t.dim() == 1 && t.size(0) >= 1, ShapeError, "snode_discrete_rollout: t must be 1-D with T >= 1, got ",
           shape_string(t.sizes()));
  const auto td = t.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* tp = td.data_ptr<double>();
  std::vector<torch::Tensor> states{x0};
  auto x = x0;
  for (std::int64_t k = 0; k + 1 < td.size(0); ++k) {
    const double h = tp[k + 1] - tp[k];
    SL_CHECK(h > 0, DataError, "snode_discrete_rollout: t must be strictly increasing (t[", k, "] = ", tp[k],
             ", t[", k + 1, "] = ", tp[k + 1], ")");
    SL_CHECK(std::isfinite(h), DataError, "snode_discrete_rollout: t[", k + 1, "] - t[", k, "] is not finite");
    const auto s = discrete_step_checked(x, h, weights, o, kappa, cond);
    x = s.x;
    states.push_back(x);
    if (stats) {
      stats->steps += x.size(0);
      stats->projected += s.projected.sum().item<std::int64_t>();
      stats->goal += s.goal.sum().item<std::int64_t>();
      stats->nonfinite += torch::isfinite(x.detach()).all(1).logical_not().sum().item<std::int64_t>();
      if (stats->ball >= 0) {
        const auto outside = s.lyapunov.detach() > stats->ball;
        stats->steps_outside += outside.sum().item<std::int64_t>();
        stats->projected_outside += (s.projected & outside).sum().item<std::int64_t>();
      }
    }
  }
  return torch::stack(states, 1);
}

torch::Tensor snode_certificate_violation(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& w,
                                          const SNodeOptions& o, double kappa) {
  check_discrete_options(o, kappa, "snode_certificate_violation");
  constexpr double kDelta = 1e-12;
  // States at the goal (V = 0) have no decrease to meet; V(x) is computed once, with its graph.
  const auto v_all = snode_lyapunov(x, w, o);
  const auto keep = (v_all.detach() > 1e-8).nonzero().squeeze(1);
  if (keep.numel() == 0) return torch::zeros({}, x.options());
  const auto xs = x.index_select(0, keep);
  const auto vx = v_all.index_select(0, keep);
  const auto y = xs + h * snode_rhs(torch::zeros({}, x.options()), xs, w, o);
  const auto vy = snode_lyapunov(y, w, o);
  const double c = std::exp(-kappa * o.alpha() * h);
  return torch::relu(torch::log(vy + kDelta) - torch::log(c * vx + kDelta)).mean();
}

}  // namespace stablelearn::models::functional
