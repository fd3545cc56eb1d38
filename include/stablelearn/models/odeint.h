// ODE solvers over a requested time grid that back-propagate straight through their steps (no
// adjoint), matching torchdiffeq 0.2.2 `odeint` as used by the reference (shared/specs/
// clfd-snode.md §2.1).
//
//   y = odeint(f, y0 [B, ...], t [T]) -> [B, T, ...],  y[:, 0] = y0,  f(t scalar tensor, y) -> ẏ
//
// Methods:
// * Euler (torchdiffeq method='euler', no step_size): the grid IS the requested time vector,
//     y_{k+1} = y_k + (t_{k+1} − t_k) f(t_k, y_k),  output at t_k is y_k.
//   A 20-sample window is 19 Euler steps (the sNODE training/evaluation solver).
// * Rk4 on the same grid, Kutta's 3/8 rule exactly as torchdiffeq's method='rk4'
//   (Hairer–Nørsett–Wanner I, Table 1.2 right):
//     k1 = f(t, y), k2 = f(t + h/3, y + h k1/3), k3 = f(t + 2h/3, y + h(k2 − k1/3)),
//     k4 = f(t + h, y + h(k1 − k2 + k3)),  y' = y + h (k1 + 3 k2 + 3 k3 + k4)/8.   Global error O(h⁴).
// * Dopri5: adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; torchdiffeq's tableau with
//   Shampine's error weights), FSAL, error ratio = RMS over all elements of
//   err / (atol + rtol·max(|y0|, |y1|)), step accepted iff ratio ≤ 1, next step
//   h·min(ifactor, max(safety/ratio^{1/5}, dfactor)) (dfactor replaced by 1 after an accepted
//   step), initial step by Hairer's algorithm (torchdiffeq `_select_initial_step`, order 4).
//   Outputs at the requested times come from torchdiffeq's 4th-order interpolant on each accepted
//   step (fit through y0, y1, the DPS mid-point y(t0 + h/2), f0 and f1) — the solver steps over the
//   requested times, it does NOT stop exactly at each of them. Step-size control is computed on
//   detached values (torchdiffeq wraps it in no_grad), so gradients flow through the RK stages and
//   the interpolation only. Defaults rtol = 1e-6, atol = 1e-7 (the reference NODE scripts).
//   Consequence: the map y0 -> output is only piecewise smooth (a perturbation can change the
//   discrete step choices, shared by the whole batch through the RMS norm), so finite differences
//   of a dopri5 solve carry O(tol / ε) artifacts that autograd rightly does not see.
// Step sizes t_{k+1} − t_k are formed in double precision from t; the state keeps y0's dtype.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::models {

/// Right-hand side ẏ = f(t, y): t is a 0-dim tensor of y's dtype and device, y [B, ...].
using OdeFunc = std::function<torch::Tensor(const torch::Tensor& t, const torch::Tensor& y)>;

enum class OdeMethod { Euler, Rk4, Dopri5 };

/// "euler", "rk4", "dopri5".
const char* ode_method_name(OdeMethod method);
/// Parses a method name (case-insensitive); ConfigError listing the known names.
OdeMethod parse_ode_method(const std::string& name);

struct OdeintOptions {
  /// Solver (--int_method). Default Euler (every sNODE script).
  TORCH_ARG(OdeMethod, method) = OdeMethod::Euler;
  /// Dopri5 relative tolerance. Default 1e-6 (reference NODE scripts).
  TORCH_ARG(double, rtol) = 1e-6;
  /// Dopri5 absolute tolerance. Default 1e-7 (reference NODE scripts).
  TORCH_ARG(double, atol) = 1e-7;
  /// Dopri5 first step; ≤ 0 = automatic (Hairer's initial step selection). Default 0.
  TORCH_ARG(double, first_step) = 0.0;
  /// Dopri5 safety factor. Default 0.9 (torchdiffeq).
  TORCH_ARG(double, safety) = 0.9;
  /// Dopri5 maximal step growth factor. Default 10 (torchdiffeq).
  TORCH_ARG(double, ifactor) = 10.0;
  /// Dopri5 maximal step shrink factor. Default 0.2 (torchdiffeq).
  TORCH_ARG(double, dfactor) = 0.2;
  /// Dopri5 limit on attempted steps; DataError when exceeded. Default 1,000,000.
  TORCH_ARG(std::int64_t, max_steps) = 1000000;
};

/// Statistics of the last dopri5 call (for tests and diagnostics).
struct OdeintStats {
  std::int64_t function_evaluations = 0;
  std::int64_t accepted_steps = 0;
  std::int64_t rejected_steps = 0;
};

/// Integrates ẏ = f(t, y) from y(t[0]) = y0 and returns y at every t[k], stacked on dim 1:
/// [B, T, ...]. t must be 1-D, strictly increasing, T ≥ 1 (ShapeError / DataError otherwise);
/// t is cast to y0's dtype. The result is differentiable w.r.t. y0 and anything f closes over.
torch::Tensor odeint(const OdeFunc& f, const torch::Tensor& y0, const torch::Tensor& t,
                     const OdeintOptions& options = {}, OdeintStats* stats = nullptr);

// ---------------------------------------------------------------------------------------------
// Lyapunov-certified Euler (docs/lfd.md §2.2). For an autonomous field f with a Lyapunov function
// V (V ≥ 0, V(x) = 0 only at the goal, ∇V(x)ᵀf(x) ≤ −αV(x), V C¹: the autonomous sNODE) the exact
// flow has V(x(t)) ≤ V(x0)e^{−αt}, but a fixed Euler step need not: where f is stiff an Euler
// step can overshoot, V rises, and the iteration can chatter far from the goal. This solver makes
// the discrete decrease a checked property. Each grid interval [t_k, t_{k+1}] is covered by
// Euler sub-steps of per-sample size s; a sub-step x -> x + s f(x) is accepted iff
//     V(x + s f(x)) ≤ V(x) · e^{−κ α s}                                            (κ ∈ (0, 1))
// and is otherwise retried with s/2; after an accepted step the next trial is min(2s, remaining).
// Because V(x + s f) = V + s ∇Vᵀf + o(s) ≤ V(1 − αs) + o(s) < V e^{−καs} for small s whenever
// V > 0, some s > 0 always passes, and every accepted trajectory satisfies
//     V(x_k) ≤ V(x_0) e^{−κ α (t_k − t_0)}           (a discrete-time certificate)
// so with V ≥ ε‖x‖² the distance to the goal is ≤ √(V(x0)/ε) e^{−καt/2} on the output grid.
// A sample whose V is ≤ v_floor (at the goal; V = 0 by default) stays there: an Euler step of
// f̂(goal) ≠ 0 would leave it and raise V, which the certificate forbids. At the goal
// itself the sNODE's projected field is 0/0 (∇V = 0) and within V ≈ 1e-300 of it ‖∇V‖² underflows:
// a finite sample with V ≤ 1e-200 whose candidate is not finite is put exactly on the goal
// (V(0) = 0: certified) instead of becoming NaN.
// A step still rejected after max_halvings halvings (stiff regions, where Euler chatters across a
// fold of the projected field) is, by default (project), pulled radially towards the goal: since
// V is convex with V(0) = 0, V(λy) ≤ λV(y) on [0, 1], so λ1 = c / V(y), c = V(x)e^{−καs}, is
// certified in closed form; where V is quadratic along the ray (V(λy) ≤ λ²V(y), true for the
// sNODE's V wherever g(y) − g(0) ≤ δ, and for ε‖y‖²) the larger λ0 = √(c / V(y)) is, and it is
// probed first; otherwise [λ1, λ0] is bisected 8 times. The certificate thus holds for every step
// at a bounded cost (≤ 2^max_halvings sub-steps per grid interval, each one f and one V, plus 1–9
// V per projection), at the price of leaving the Euler path there (the projections are counted). Without `project` the step is taken as it is and counted as
// uncertified (the certificate is then void for that sample). Non-finite candidates are never
// projected. Runs without autograd bookkeeping of the step choices: use it for rollouts, not for
// training. `project` needs V convex with its minimum 0 at the origin (the sNODE's V).
struct CertifiedEulerOptions {
  /// α of the continuous-time decrease ∇Vᵀf ≤ −αV. Required (> 0).
  TORCH_ARG(double, alpha) = 0.0;
  /// Fraction κ of the continuous rate demanded per step, in (0, 1). Default 0.5.
  TORCH_ARG(double, kappa) = 0.5;
  /// Halvings of a rejected step before it is projected (or taken uncertified). Default 3.
  TORCH_ARG(std::int64_t, max_halvings) = 3;
  /// After max_halvings: radial projection onto the certified sub-level set (true) or take the
  /// Euler step uncertified (false). Default true.
  TORCH_ARG(bool, project) = true;
  /// V at or below this counts as the goal (the sample stays there). Default 0.
  TORCH_ARG(double, v_floor) = 0.0;
};
struct CertifiedEulerStats {
  std::int64_t substeps = 0;      ///< accepted sub-steps, summed over samples
  std::int64_t rejections = 0;    ///< rejected trials, summed over samples
  std::int64_t projections = 0;   ///< sub-steps radially projected after max_halvings rejections
  std::int64_t uncertified = 0;   ///< sub-steps taken uncertified (project = false, or non-finite)
  std::int64_t evaluations = 0;   ///< batched evaluations of f (each over the still-active rows)
};
/// V(x): x [B, d] -> [B] (no time argument: the field must be autonomous).
using LyapunovFn = std::function<torch::Tensor(const torch::Tensor& x)>;
/// Certified Euler rollout of ẏ = f(t, y) from y0 [B, d] on the grid t [T]: [B, T, d]. f is called
/// with the sub-step's start time (ignored by an autonomous field). ConfigError for α ≤ 0 or κ
/// outside (0, 1); ShapeError / DataError as odeint.
torch::Tensor certified_euler(const OdeFunc& f, const LyapunovFn& V, const torch::Tensor& y0, const torch::Tensor& t,
                              const CertifiedEulerOptions& options, CertifiedEulerStats* stats = nullptr);

}  // namespace stablelearn::models
