// Extreme eigenpairs of a CurvatureOperator: deflated power iteration and Lanczos with full
// re-orthogonalisation (docs/diagnostics.md).
//
// Power iteration (PyHessian's algorithm, made explicit): for j = 1..k, iterate
//     w = P A P v,  λ = vᵀw,  v ← w/‖w‖,   P = I − Σ_{i<j} v_i v_iᵀ
// from a Gaussian start, stopping when |λ_t − λ_{t−1}| ≤ tol·|λ_{t−1}| (plus 1e-12 against
// λ = 0) or after max_iter products. Projecting out the earlier eigenvectors (deflation) makes
// pair j the largest-|λ| eigenpair of A restricted to their complement; pairs come out in the
// order found (|λ| descending when the iteration converged).
//
// Lanczos: m steps of the three-term recurrence A q_j = β_{j−1} q_{j−1} + α_j q_j + β_j q_{j+1}
// with full Gram–Schmidt re-orthogonalisation (twice) of every new vector against all previous
// ones, then the m×m tridiagonal T = tridiag(β, α, β) is decomposed with torch::linalg_eigh
// (never eig: T is symmetric). Ritz values θ_i approximate eigenvalues; the residual of the
// Ritz pair is exactly ‖A y_i − θ_i y_i‖ = |β_m s_{m,i}| in exact arithmetic (reported, no extra
// products). A breakdown (β_j ≈ 0) means an invariant subspace was found; the iteration stops.
#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

/// Eigenpairs found by power_iteration or lanczos.
struct EigenResult {
  torch::Tensor eigenvalues;   ///< [k], float64 on the CPU
  torch::Tensor eigenvectors;  ///< [D, k], unit columns, options() of the operator
  torch::Tensor residuals;     ///< [k], ‖A v − λ v‖ (power: measured; Lanczos: |β_m s_{m,i}|)
  std::int64_t matvecs = 0;    ///< operator applications used
  std::int64_t iterations = 0; ///< power: total iterations; Lanczos: steps m actually taken
  bool converged = false;      ///< power: every pair met tol; Lanczos: every residual ≤ tol·max(|λ|, 1e-12)
};

struct PowerIterationOptions {
  /// Eigenpairs wanted
  TORCH_ARG(std::int64_t, k) = 1;
  /// Products per eigenpair at most (PyHessian: 100)
  TORCH_ARG(std::int64_t, max_iter) = 100;
  /// Relative change of λ between iterations (PyHessian: 1e-3)
  TORCH_ARG(double, tol) = 1e-4;
  /// Gaussian start vectors (drawn on the CPU in float64)
  TORCH_ARG(std::uint64_t, seed) = 0;
};

/// Top-k eigenpairs by |λ| with deflation by projection. Throws ConfigError for k ∉ [1, D],
/// max_iter < 1 or tol ≤ 0.
EigenResult power_iteration(const CurvatureOperator& op, const PowerIterationOptions& options = {});

/// Which end of the spectrum lanczos() returns.
enum class Spectrum {
  LargestMagnitude,   ///< largest |λ| first
  LargestAlgebraic,   ///< largest λ first
  SmallestAlgebraic,  ///< smallest (most negative) λ first
};

struct LanczosOptions {
  /// Eigenpairs wanted
  TORCH_ARG(std::int64_t, k) = 1;
  /// Lanczos steps m; 0 = min(D, max(2k + 20, 40))
  TORCH_ARG(std::int64_t, steps) = 0;
  TORCH_ARG(Spectrum, which) = Spectrum::LargestMagnitude;
  /// For `converged`: residual ≤ tol · |λ|
  TORCH_ARG(double, tol) = 1e-6;
  /// Gaussian start vector
  TORCH_ARG(std::uint64_t, seed) = 0;
};

/// k Ritz pairs from one Lanczos run. Throws ConfigError for k ∉ [1, D] or steps ∉ [k, D];
/// if the recurrence breaks down after m < k steps only m pairs are returned.
EigenResult lanczos(const CurvatureOperator& op, const LanczosOptions& options = {});

/// The raw Lanczos tridiagonalisation from a given start vector (normalised internally), with
/// full re-orthogonalisation; used by lanczos() and by stochastic Lanczos quadrature.
struct LanczosDecomposition {
  torch::Tensor alpha;   ///< [m] diagonal of T, float64 CPU
  torch::Tensor beta;    ///< [m] off-diagonals: beta[j] couples q_j and q_{j+1}; beta[m−1] is the residual norm
  torch::Tensor basis;   ///< [m, D] Lanczos vectors (rows), options() of the operator
  std::int64_t matvecs = 0;
  /// T as an m×m float64 CPU matrix.
  torch::Tensor tridiagonal() const;
};
LanczosDecomposition lanczos_decomposition(const CurvatureOperator& op, const torch::Tensor& start, std::int64_t steps);

}  // namespace stablelearn::diagnostics
