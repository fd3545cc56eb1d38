// RELEX-style low-rank trajectory extrapolation (Wei et al., arXiv 2605.21468; code
// weizhepei/RELEX:scripts/svd_extrapolation.py; docs/diagnostics.md).
//
// For one weight tensor with base θ₀ and history θ_1..θ_T (flattened to D), form
// M ∈ R^{T×D} with rows m_t = θ_t − θ₀, decompose the Gram matrix G = MMᵀ = U Λ Uᵀ (eigh,
// descending), S = √max(Λ, 0), keep r components: V_r = MᵀU_r / S_r (a column with
// S_i ≤ 1e-6·S_1 is set to 0) and coefficients c_t = m_t V_r = (U_r S_r)_t. Each coefficient is
// fitted by ordinary least squares against τ = 0..W−1 on the last W rows (default W = T); a step
// `ahead` steps past the last history step is predicted as
//     θ̂ = θ₀ + (a (W − 1 + ahead) + b) V_rᵀ.
// The sign ambiguity of V cancels because c = MV. Explained variance Σ_{i≤r} Λ_i / Σ_i max(Λ_i, 0).
// RELEX applies this to every tensor separately; here one call handles one flat tensor.
#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::diagnostics {

struct RelexOptions {
  /// r (RELEX default 1)
  TORCH_ARG(std::int64_t, rank) = 1;
  /// W, the last rows used by the line fit; 0 = all T
  TORCH_ARG(std::int64_t, window) = 0;
};

struct RelexFit {
  torch::Tensor base;           ///< θ₀ [D] (float64)
  torch::Tensor basis;          ///< V_rᵀ [r, D]
  torch::Tensor coefficients;   ///< C [T, r]
  torch::Tensor slope;          ///< a [r]
  torch::Tensor intercept;      ///< b [r]
  std::int64_t window = 0;      ///< W
  double explained_variance = 0.0;
  /// θ̂ at `ahead` steps past the last history step (ahead = 0 gives the fitted last step).
  torch::Tensor predict(double ahead) const;
  /// θ₀ + c_t V_rᵀ for history row t (0-based), no fitting.
  torch::Tensor reconstruct(std::int64_t t) const;
};

/// Fits the low-rank model to `history` [T, ...] (flattened per row) around `base` (same number
/// of elements as a row). Throws ShapeError for mismatched sizes or T < 2, ConfigError for a rank
/// outside [1, T] or a window outside [2, T], DataError for a history equal to the base.
RelexFit relex_fit(const torch::Tensor& base, const torch::Tensor& history, const RelexOptions& options = {});

}  // namespace stablelearn::diagnostics
