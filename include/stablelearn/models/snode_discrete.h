// Discrete-time sNODE: the Euler step of the autonomous sNODE made a certified contraction of V
// for ANY weights, so that one map is trained, evaluated and executed (docs/lfd.md §7).
//
// The continuous-time guarantee ∇V(x)ᵀf(x) ≤ −αV(x) of the projected field (models/snode.h) does
// not survive a fixed Euler step of the control period h near the stiff crease g(x) ≈ g(0)
// (docs/lfd.md §2). The discrete map Φ_h enforces the decrease for the step itself:
//
//   y = x + h f(x)                      Euler step of the projected autonomous field (z = x, no clock)
//   c = V(x) · e^{−κ α h}               κ ∈ (0, 1] (default 0.5)
//   Φ_h(x) = y                 if V(y) ≤ c                     (the plain Euler step: "certified")
//            λ y, λ = (c / V(y)) (1 − 1e-6)   otherwise        (radial pull towards the goal: "projected")
//
// Why λ y is certified: V is convex (ICNN composed with the convex non-decreasing ReHU, plus ε‖z‖²)
// with V(0) = 0, so for λ ∈ [0, 1]
//   V(λ y) = V(λ y + (1 − λ) 0) ≤ λ V(y) + (1 − λ) V(0) = λ V(y) = (1 − 1e-6) c < c.
// Hence V(Φ_h(x)) ≤ e^{−καh} V(x) for every x and every weight vector, and along the iteration
//   V(x_k) ≤ e^{−κα t_k} V(x_0),   ‖x_k‖ ≤ √(V(x_0)/ε) e^{−κα t_k / 2}    (V ≥ ε‖x‖²):
// global exponential convergence of the map executed at period h, from every start. The factor
// (1 − 1e-6) leaves room for rounding: V is evaluated in the state's dtype, and the computed
// V(λy) may exceed the exact one by a few ulps of the ICNN's terms (the runtime additionally
// re-checks, runtime/skill.h). It makes Φ jump by a relative 1e-6 where V(y) crosses c; otherwise Φ
// is continuous (λ = 1 on the boundary up to that factor) and piecewise smooth, so autograd
// differentiates it almost everywhere: the gradient of a projected sample flows through c (i.e.
// V(x)), V(y) and y.
//
// The goal: V(x) = 0 only at the goal (ε > 0); there ∇V = 0 and the projected field is 0/0, and
// near it ‖∇V‖² underflows. Near the goal the pull contracts quadratically (Euler from x ≈ 0 lands
// near h f̂(0), so λ ≈ V(x)/V(y) and ‖Φ(x)‖ ~ ‖x‖²/‖y‖): a few steps take a state from 1e-4 to 1e-12
// and on, where the projection's backward (1/‖∇V‖⁴) overflows into NaN gradients. So a sample is
// put exactly on the goal (Φ = 0; V(0) = 0 certifies it) where x = 0 (tested on the state: a
// computed V(0) is 0 only up to the batch's rounding of g(x) − g(0)), where V(x) = 0, where ‖∇V(x)‖² ≤
// discrete_goal_grad_norm2(dtype) (float32 6.7e-16, float64 8.7e-124; since ∇V(x)ᵀx ≥ V(x) ≥
// ε‖x‖² by convexity, that is within √floor / ε of the goal: 2.6e-5 for float32 and ε = 1e-3), or
// where V(x) ≤ 1e-200 and the Euler candidate is not finite (the rule of models::certified_euler).
// Those rows are evaluated without the others in the batch, so no NaN reaches the gradient (the
// others go through the rule again: in the smaller batch their V rounds differently). Any
// other non-finite candidate (broken weights) is returned as it is and counted.
//
// Cost: one f evaluation as for the Euler step (which computes V(x) on the way) plus one V
// evaluation at y (the ICNN without ∇V, f̂ or the projection): below 2× an Euler step.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "stablelearn/models/snode.h"

namespace stablelearn::models::functional {

/// The relative margin of the projected λ (see the file comment).
inline constexpr double kDiscreteProjectionMargin = 1e-6;
/// V at or below this, with a non-finite Euler candidate, counts as the goal (as certified_euler).
inline constexpr double kDiscreteGoalLyapunov = 1e-200;

/// The ‖∇V‖² at or below which a sample counts as at the goal, for states of `dtype`: tiny^0.4 with
/// tiny the dtype's smallest normal number (float64 for kFloat64, float32's otherwise).
double discrete_goal_grad_norm2(c10::ScalarType dtype);

/// One application of Φ_h to a batch.
struct SNodeDiscreteStep {
  torch::Tensor x;          ///< Φ_h(x) [B, d]
  torch::Tensor projected;  ///< [B] bool: V(y) > c, radially pulled (false for goal rows)
  torch::Tensor goal;       ///< [B] bool: put on the goal by the goal rule
  torch::Tensor lyapunov;   ///< V(x) [B] (as computed inside f)
};

/// Counts over a rollout (sums over samples and steps).
struct SNodeDiscreteStats {
  std::int64_t steps = 0;      ///< applications of Φ to one sample
  std::int64_t projected = 0;  ///< of those, radially projected
  std::int64_t goal = 0;       ///< put on the goal by the goal rule
  std::int64_t nonfinite = 0;  ///< non-finite results (not certified; broken weights)
  /// Input: with ball >= 0, the steps taken from states with V(x) > ball (outside that sublevel set,
  /// e.g. `lfd stability`'s certified ball around the goal) are counted again below.
  double ball = -1;
  std::int64_t steps_outside = 0;      ///< applications of Φ to a state with V(x) > ball
  std::int64_t projected_outside = 0;  ///< of those, radially projected
  double projected_fraction() const { return steps > 0 ? static_cast<double>(projected) / static_cast<double>(steps) : 0; }
};

/// Φ_h(x) for x [B, d] (options.explicit_time() must be false: ConfigError otherwise, a clock input
/// has no Lyapunov function of the integrated system), h > 0, κ ∈ (0, 1] (ConfigError otherwise).
/// Differentiable w.r.t. x, the weights and cond (first and, through the tensor ops, second order).
SNodeDiscreteStep snode_discrete_step(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& weights,
                                      const SNodeOptions& options, double kappa = 0.5, const torch::Tensor& cond = {});

/// x_{k+1} = Φ_{h_k}(x_k), h_k = t_{k+1} − t_k (formed in double from t, as odeint), over the grid t
/// [T] (1-D, strictly increasing: ShapeError / DataError otherwise) from x0 [B, d]: [B, T, d] with
/// x0 first. `stats` (optional) receives the counts; it costs one host sync per step.
torch::Tensor snode_discrete_rollout(const torch::Tensor& x0, const torch::Tensor& t, const std::vector<torch::Tensor>& weights,
                                     const SNodeOptions& options, double kappa = 0.5, const torch::Tensor& cond = {},
                                     SNodeDiscreteStats* stats = nullptr);

/// The certificate penalty of Φ_h (docs/lfd.md §7.2, `train.cert_weight`) on states x [S, d]: the
/// mean, over the states with V(x) > 1e-8 (0 when there is none), of
///   relu(log(V(y) + δ) − log(e^{−καh} V(x) + δ)),   y = x + h f(x) the plain Euler step, δ = 1e-12,
/// which is zero exactly where Φ_h takes the Euler step (up to δ) and grows with the factor by which
/// the step misses the decrease. Differentiable w.r.t. the weights (and x).
torch::Tensor snode_certificate_violation(const torch::Tensor& x, double h, const std::vector<torch::Tensor>& weights,
                                          const SNodeOptions& options, double kappa = 0.5);

/// ConfigError unless the options describe an autonomous sNODE and κ ∈ (0, 1] (`who` names the caller).
void check_discrete_options(const SNodeOptions& options, double kappa, const char* who);

}  // namespace stablelearn::models::functional
