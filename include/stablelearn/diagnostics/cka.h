// Representation similarity: HSIC and centred kernel alignment (CKA; Kornblith et al. 2019;
// docs/diagnostics.md). Inputs are activations X [n, ...] with samples in the first dimension
// (flattened to [n, F]); all results are computed in float64.
//
// Biased HSIC (Gretton et al. 2005):  HSIC_b(K, L) = tr(K C L C) / (n − 1)²,  C = I − 11ᵀ/n.
// Unbiased HSIC (Song et al. 2012), with K̃, L̃ the Gram matrices with zeroed diagonals:
//   HSIC_u(K, L) = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2·1ᵀK̃L̃1/(n−2)] / (n(n−3)),  n ≥ 4.
// CKA(K, L) = HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)); "debiased" CKA uses HSIC_u throughout
// (Kornblith's `center_gram(unbiased=True)` form, which is the same number). Debiased CKA is
// close to 0 for independent features, where biased CKA is biased upwards at small n (MONAI
// PR #9129). If HSIC_u(K, K)·HSIC_u(L, L) ≤ 0 the ratio is undefined and NaN is returned.
//
// Linear kernel K = XXᵀ. RBF kernel K_ij = exp(−‖x_i − x_j‖² / (2σ²)) with
// σ² = threshold² · median of the n×n squared distances (diagonal zeros included, average of the
// two middle values: Kornblith's `gram_rbf(x, threshold)`, and ignite's HSIC heuristic with
// threshold = 1). Linear CKA is invariant to orthogonal transforms and isotropic scaling of
// either representation; RBF CKA with the median heuristic is invariant to both as well.
#pragma once

#include <torch/types.h>

namespace stablelearn::diagnostics {

enum class HsicEstimator { Biased, Unbiased };

/// K = X Xᵀ, [n, n] float64.
torch::Tensor gram_linear(const torch::Tensor& x);
/// RBF Gram matrix with σ² = threshold² · median squared distance (threshold > 0).
torch::Tensor gram_rbf(const torch::Tensor& x, double threshold = 1.0);
/// RBF Gram matrix with an explicit variance σ² > 0.
torch::Tensor gram_rbf_variance(const torch::Tensor& x, double variance);

/// HSIC of two n×n Gram matrices. Throws ShapeError for mismatched or non-square matrices,
/// n < 2 (biased) or n < 4 (unbiased).
double hsic(const torch::Tensor& k, const torch::Tensor& l, HsicEstimator estimator = HsicEstimator::Biased);
/// CKA of two Gram matrices; debiased = use the unbiased HSIC.
double cka(const torch::Tensor& k, const torch::Tensor& l, bool debiased = false);
/// Linear CKA of two representations of the same n samples.
double linear_cka(const torch::Tensor& x, const torch::Tensor& y, bool debiased = false);
/// RBF CKA with the median heuristic (Kornblith's demo reports threshold 0.5).
double rbf_cka(const torch::Tensor& x, const torch::Tensor& y, double threshold = 1.0, bool debiased = false);

}  // namespace stablelearn::diagnostics
