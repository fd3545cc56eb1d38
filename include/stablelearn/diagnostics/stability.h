// Linear-stability checks of GD and SGD at a minimum (docs/diagnostics.md;
// shared/specs/papers-01-18.md #4 and diagnostics-anchors §3.3, §5.7).
//
// Near a minimum θ*, GD with step η follows θ_{t+1} − θ* = (I − ηH)(θ_t − θ*); it is linearly
// stable iff λ_max(H) ≤ 2/η (the edge-of-stability threshold of Cohen et al. 2021). The report
// gives the sharpness ratio η λ_max / 2 (≤ 1: stable).
//
// SGD with batch B drawn without replacement from N samples, at an interpolating minimum of
// L = (1/N) Σ ½(f_i − y_i)² (so H = (1/N) Σ ∇f_i ∇f_iᵀ, each H_i of rank one), is stable in mean
// square only if (Mulayoff & Michaeli 2023, Prop. 3, specialised to rank-one H_i by Jensen)
//     tr(H) ≤ 2 / (η p),   p = (N − B) / (B (N − 1)),
// which for B = 1 (p = 1) is Wu & Su's (ICML 2023) tr(H) ≤ 2/η. This is a *necessary*
// condition: trace ratio η p tr(H) / 2 > 1 means the minimum is unstable for SGD; ≤ 1 does not
// prove stability. For full batch (B = N, p = 0) only the GD condition remains.
// Wu, Wang & Su (NeurIPS 2022) bound ‖H‖_F ≤ O(√B / η) at stable minima with no explicit
// constant; the report gives η ‖H‖_F / √B for tracking, with no threshold.
//
// The trace condition is stated for the MSE Hessian at interpolation; with another operator
// (Gauss–Newton, cross-entropy Hessian) the numbers are computed the same way, but only the GD
// condition keeps its meaning.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

struct StabilityOptions {
  /// η > 0
  TORCH_ARG(double, learning_rate) = 0.0;
  /// B, 1 ≤ B ≤ N
  TORCH_ARG(std::int64_t, batch_size) = 1;
  /// N (for a ParameterOperator: its num_samples())
  TORCH_ARG(std::int64_t, num_samples) = 0;
  /// For λ_max (capped at D)
  TORCH_ARG(std::int64_t, lanczos_steps) = 30;
  /// Hutch++ budget for tr(H)
  TORCH_ARG(std::int64_t, trace_matvecs) = 60;
  /// Hutchinson probes for ‖H‖_F²
  TORCH_ARG(std::int64_t, frobenius_matvecs) = 30;
  TORCH_ARG(std::uint64_t, seed) = 0;
};

struct StabilityReport {
  double learning_rate = 0.0;
  std::int64_t batch_size = 0, num_samples = 0;
  double lambda_max = 0.0;        ///< largest algebraic eigenvalue (Lanczos)
  double lambda_residual = 0.0;   ///< its Ritz residual
  double trace = 0.0, trace_stderr = 0.0;          ///< tr(H) (Hutch++)
  double frobenius = 0.0, frobenius_sq_stderr = 0.0;  ///< ‖H‖_F = √(tr H²) and the std. error of tr H²
  double p = 0.0;                 ///< (N − B) / (B (N − 1))
  double gd_threshold = 0.0;      ///< 2 / η
  double sharpness_ratio = 0.0;   ///< η λ_max / 2
  double trace_threshold = 0.0;   ///< 2 / (η p); +inf when p = 0
  double trace_ratio = 0.0;       ///< η p tr(H) / 2
  double frobenius_scaled = 0.0;  ///< η ‖H‖_F / √B
  std::int64_t matvecs = 0;
  /// GD is linearly stable: λ_max ≤ 2/η.
  bool gd_stable() const { return sharpness_ratio <= 1.0; }
  /// SGD's necessary condition tr(H) ≤ 2/(ηp) holds (false ⇒ unstable in mean square).
  bool sgd_trace_condition() const { return trace_ratio <= 1.0; }
};

/// p = (N − B) / (B (N − 1)); throws ConfigError unless 1 ≤ B ≤ N and N ≥ 2.
double sgd_noise_factor(std::int64_t batch_size, std::int64_t num_samples);

/// The exact mean-square linear-stability threshold of SGD (batches of B drawn without
/// replacement) at an interpolating minimum, from explicit per-sample Hessians H_i (Mulayoff &
/// Michaeli 2023, Thm. 3):
///     C = ½(H ⊗ I + I ⊗ H),  D = (1 − p) H ⊗ H + p (1/N) Σ_i H_i ⊗ H_i,  η* = 2 / λ_max(C†D),
/// with H = (1/N) Σ_i H_i. SGD is stable in mean square iff η ≤ η*. Uses d² × d² matrices, so it
/// is meant for small d (a few dozen parameters). Throws ShapeError for non-square or mismatched
/// matrices and ConfigError for a bad B.
double sgd_exact_threshold(const std::vector<torch::Tensor>& sample_hessians, std::int64_t batch_size);

/// Estimates λ_max, tr(H), ‖H‖_F of `hessian` and compares them with the thresholds above.
/// Throws ConfigError for η ≤ 0 or a bad B / N.
StabilityReport stability_check(const CurvatureOperator& hessian, const StabilityOptions& options);

}  // namespace stablelearn::diagnostics
