// Stochastic trace estimation for matrix-free operators (docs/diagnostics.md).
//
// Hutchinson: tr(A) = E[zᵀ A z] for any probe z with E[zzᵀ] = I (Rademacher ±1 or standard
// Gaussian). With m probes the estimate is the sample mean and its standard error the sample
// standard deviation / √m. PyHessian's rule "stop when the mean moves by < tol" is not used: a
// fixed budget with a standard error is reproducible and says how far to trust the number.
//
// Hutch++ (Meyer, Musco, Musco, Woodruff 2021): with m products split in thirds,
//   S ∈ R^{D×k} random, Q = orth(A S) (k products), exact part tr(Qᵀ A Q) (k products),
//   residual part (1/g) Σ_j g_jᵀ (I − QQᵀ) A (I − QQᵀ) g_j over g = m − 2k probes.
// The estimate is unbiased; its variance falls as O(1/m²) instead of O(1/m) when the spectrum
// decays. The standard error is that of the residual part (the exact part has none).
//
// tr(A²) = ‖A‖_F² = E[‖A z‖²] for the same probes gives an estimate of the Frobenius norm.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

enum class ProbeDistribution { Rademacher, Gaussian };

struct TraceOptions {
  /// Budget of operator products (eigenthings v1: 100)
  TORCH_ARG(std::int64_t, matvecs) = 100;
  TORCH_ARG(ProbeDistribution, distribution) = ProbeDistribution::Rademacher;
  TORCH_ARG(std::uint64_t, seed) = 0;
};

struct TraceResult {
  double estimate = 0.0;
  double standard_error = 0.0;   ///< of the estimate (sample std / √probes)
  std::int64_t matvecs = 0;      ///< operator products used
  std::vector<double> samples;   ///< per-probe values whose mean is `estimate`
};

/// Hutchinson's estimator with `matvecs` probes (at least 2).
TraceResult hutchinson_trace(const CurvatureOperator& op, const TraceOptions& options = {});
/// Hutch++ with a budget of `matvecs` products (at least 4); the sketch size is
/// k = min(⌊m/3⌋, D) and the remaining m − 2k products go to the residual probes.
TraceResult hutchpp_trace(const CurvatureOperator& op, const TraceOptions& options = {});
/// tr(A²) = ‖A‖_F² by E‖A z‖² with `matvecs` probes (at least 2).
TraceResult frobenius_norm_squared(const CurvatureOperator& op, const TraceOptions& options = {});

}  // namespace stablelearn::diagnostics
