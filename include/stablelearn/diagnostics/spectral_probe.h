// The malignant tail as a diagnostic (seed paper 24: Zice Wang, "The Malignant Tail: spectral
// segregation of label noise in over-parameterized networks", arXiv 2603.02293, March 2026 —
// WITHDRAWN by its author; shared/specs/papers-19-35.md §24; docs/robust.md). Its claim, that SGD
// puts the class signal of a noisy-label network's representation into a few leading principal
// directions and the memorised noise into the tail, is measured here; nothing here assumes it.
//
//   representation_spectrum: the covariance of a representation H ([n, D], one row per sample):
//     mean μ, eigenvalues λ_1 ≥ … ≥ λ_D of (H − μ)ᵀ(H − μ)/n and the orthonormal eigenvectors V.
//   spectral probe: a linear classifier fit on the top-d principal coordinates Z_d = (H − μ) V_d —
//     ridge-regularised least squares on one-hot targets with an unpenalised intercept,
//     prediction argmax(Z_d W + b). At d = D it equals the same fit on H itself (V is orthogonal,
//     the centring goes into the intercept).
//   truncation: H ↦ μ + (H − μ) V_d V_dᵀ, the projection of the representation on its top-d
//     directions; applied inside a trained network (the head reads the truncated representation)
//     it removes the tail. At d = D it is the identity.
// The sweep over d and the choice of d on a validation split are the caller's (repro
// malignant-tail). Tensors stay on their device; the decomposition runs in float64.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace stablelearn::diagnostics {

struct RepresentationSpectrum {
  torch::Tensor mean;         ///< [D] float64
  torch::Tensor eigenvalues;  ///< [D] float64, descending
  torch::Tensor directions;   ///< [D, D] float64, column k = the k-th principal direction
  std::int64_t width() const { return mean.size(0); }
};

/// The spectrum of a representation [n, D] (n ≥ 2; ShapeError / DataError otherwise, NaN included).
RepresentationSpectrum representation_spectrum(const torch::Tensor& h);

/// Z_d = (h − μ) V_d, [n, d] float64. ConfigError naming "d" unless 1 ≤ d ≤ D; ShapeError when h's
/// width is not D.
torch::Tensor principal_coordinates(const torch::Tensor& h, const RepresentationSpectrum& s, std::int64_t d);

/// μ + (h − μ) V_d V_dᵀ in h's dtype and device (same errors as principal_coordinates).
torch::Tensor truncate_representation(const torch::Tensor& h, const RepresentationSpectrum& s, std::int64_t d);

/// A linear classifier on the top-d principal coordinates.
struct SpectralProbe {
  std::int64_t d = 0;
  torch::Tensor weight;  ///< [d, C] float64
  torch::Tensor bias;    ///< [C] float64
  /// Class scores [n, C] for a representation [n, D].
  torch::Tensor scores(const torch::Tensor& h, const RepresentationSpectrum& s) const;
  /// argmax of the scores, [n] int64.
  torch::Tensor predict(const torch::Tensor& h, const RepresentationSpectrum& s) const;
};

/// Fits the probe on (h, labels) ([n] int64 in 0..classes−1): minimises
/// ‖Z_d W + 1 bᵀ − onehot(labels)‖² + ridge ‖W‖². ConfigError naming "d", "ridge" (≥ 0, finite) or
/// "classes" (≥ 2); DataError for labels out of range.
SpectralProbe fit_spectral_probe(const torch::Tensor& h, const torch::Tensor& labels, std::int64_t classes,
                                 const RepresentationSpectrum& s, std::int64_t d, double ridge = 1e-6);

/// Share of predictions equal to labels.
double probe_accuracy(const torch::Tensor& predictions, const torch::Tensor& labels);

}  // namespace stablelearn::diagnostics
