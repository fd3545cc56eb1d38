// Weight and update spectra (WeightWatcher's ESD and power-law fit; principal angles and spectral
// drift from "The Path Not Taken"; docs/diagnostics.md).
//
// ESD: for a weight matrix W (2-D, or reshaped to [shape[0], −1]) oriented as N × M with N ≥ M,
// the eigenvalues of X = WᵀW / N, i.e. σ_i(W)² / N (computed from the singular values, which is
// more accurate than forming WᵀW). WeightWatcher's default omits the 1/N (`normalize = false`
// here). α does not depend on the scale.
//
// Power law p(x) ∝ x^{−α} for x ≥ x_min, fitted by maximum likelihood (Clauset, Shalizi, Newman
// 2009): for each candidate x_min (every distinct sample with at least min_tail samples ≥ it)
//     α = 1 + n / Σ_{x_i ≥ x_min} ln(x_i / x_min),
//     D = max_i max(|F(x_i) − i/n|, |F(x_i) − (i+1)/n|),  F(x) = 1 − (x / x_min)^{1−α},
// and the x_min with the smallest Kolmogorov–Smirnov distance D wins; σ = (α − 1)/√n.
// (WeightWatcher compares with i/n only; the two-sided form is the KS statistic proper.)
// Samples ≤ min_value are dropped first (WeightWatcher: 1e-5).
//
// Principal angles between the top-k left (and right) singular subspaces of W₀ and W₁:
// cos θ_i = σ_i(U₀ᵀU₁), ascending angles in radians. Spectral drift (normalised spectral shift)
// NSS = ‖σ(W₁) − σ(W₀)‖₂ / ‖σ(W₀)‖₂ over the full spectrum (or the top k). Stable rank ‖W‖_F² / ‖W‖₂².
#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::diagnostics {

/// Eigenvalues of WᵀW/N (or WᵀW), ascending, float64 on the CPU. Throws ShapeError for a
/// tensor with fewer than 2 dimensions or no elements.
torch::Tensor weight_esd(const torch::Tensor& w, bool normalize = true);

struct PowerLawOptions {
  /// Samples ≤ this are ignored (WeightWatcher)
  TORCH_ARG(double, min_value) = 1e-5;
  /// Smallest tail a candidate x_min may leave
  TORCH_ARG(std::int64_t, min_tail) = 10;
};

struct PowerLawFit {
  double alpha = 0.0;        ///< density exponent: p(x) ∝ x^{−α}
  double xmin = 0.0;
  double ks_distance = 0.0;  ///< D at the chosen x_min
  double sigma = 0.0;        ///< (α − 1)/√n_tail
  std::int64_t tail_size = 0;
  std::int64_t num_samples = 0;  ///< samples kept (> min_value)
};

/// Power-law fit of positive samples (any shape; flattened). Throws DataError if fewer than
/// min_tail samples exceed min_value or a sample is not finite.
PowerLawFit fit_power_law(const torch::Tensor& samples, const PowerLawOptions& options = {});

/// Angles (radians, ascending) between the column spaces of two matrices with orthonormal
/// columns of the same height.
torch::Tensor subspace_angles(const torch::Tensor& u, const torch::Tensor& v);

struct PrincipalAngles {
  torch::Tensor left;   ///< [k] angles between the top-k left singular subspaces
  torch::Tensor right;  ///< [k] between the top-k right singular subspaces
};
/// Principal angles between the top-k singular subspaces of two matrices of the same shape.
PrincipalAngles principal_angles(const torch::Tensor& w0, const torch::Tensor& w1, std::int64_t k);

/// NSS = ‖σ(W₁) − σ(W₀)‖ / ‖σ(W₀)‖; with k ≥ 1 over the top-k singular values only,
/// ‖σ_{1:k}(W₁) − σ_{1:k}(W₀)‖ / ‖σ_{1:k}(W₀)‖ ("The Path Not Taken"; k = 0: the full spectrum).
/// ConfigError for k outside [0, min(m, n)].
double spectral_drift(const torch::Tensor& w0, const torch::Tensor& w1, std::int64_t k = 0);
/// ‖W‖_F² / ‖W‖₂².
double stable_rank(const torch::Tensor& w);

}  // namespace stablelearn::diagnostics
