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

}  // namespace stablelearn::models
