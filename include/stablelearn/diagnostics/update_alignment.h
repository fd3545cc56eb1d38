// Alignment of a weight update with the principal directions of the weight ("The Path Not Taken",
// Zhu et al., arXiv 2511.08567: RLVR updates avoid the principal subspace of the pretrained
// weights, SFT updates do not; shared/specs/diagnostics-anchors.md §3.8, §5.4; docs/diagnostics.md).
//
// For W ∈ R^{m×n} before and W' after (tensors with more than two dimensions are read as
// [shape[0], −1], as in spectra.h), ΔW = W' − W, and the thin SVD W = U S Vᵀ with U_k, V_k the top-k
// left and right singular vectors of W (the *before* weight):
//     two-sided fraction  ‖U_kᵀ ΔW V_k‖_F² / ‖ΔW‖_F²,
//     left fraction       ‖U_kᵀ ΔW‖_F²     / ‖ΔW‖_F²   (column space),
//     right fraction      ‖ΔW V_k‖_F²      / ‖ΔW‖_F²   (row space).
// Each is the energy of ΔW under an orthogonal projection of R^{m×n} of rank k², km and kn, so for
// an update with i.i.d. isotropic Gaussian entries (vec ΔW uniformly oriented in R^{mn}) the
// expectations are exactly k²/(mn), k/m and k/n: the random baselines. The top-k subspace is only
// well defined when σ_k(W) > σ_{k+1}(W).
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace stablelearn::diagnostics {

struct UpdateAlignment {
  std::int64_t k = 0, rows = 0, cols = 0;  ///< k, m, n
  double update_norm = 0.0;     ///< ‖ΔW‖_F
  double two_sided = 0.0;       ///< ‖U_kᵀΔWV_k‖²/‖ΔW‖²
  double left = 0.0;            ///< ‖U_kᵀΔW‖²/‖ΔW‖²
  double right = 0.0;           ///< ‖ΔWV_k‖²/‖ΔW‖²
  double two_sided_baseline = 0.0;  ///< k²/(mn)
  double left_baseline = 0.0;       ///< k/m
  double right_baseline = 0.0;      ///< k/n
};

/// Fractions of ‖W_after − W_before‖_F² inside the top-k singular subspaces of W_before (float64).
/// Throws ShapeError for different shapes or fewer than 2 dimensions, ConfigError unless
/// 1 ≤ k ≤ min(m, n), DataError for a zero update.
UpdateAlignment update_alignment(const torch::Tensor& w_before, const torch::Tensor& w_after, std::int64_t k);

/// The same with the update given directly: fractions of ‖delta‖² in the top-k subspaces of `w`.
UpdateAlignment update_alignment_of_delta(const torch::Tensor& w, const torch::Tensor& delta, std::int64_t k);

/// Entry-level overlap of an update with the principal weights ("The Path Not Taken"; the principal
/// mask as the third-party rlvr-geometry code defines it): with W_k = U_k S_k V_kᵀ the rank-k
/// reconstruction of `w` and n = max(1, round(α · mn)), the principal mask holds the n entries of
/// largest |W_k| and the update mask the n entries of largest |delta|; returns |both| / n. For an
/// update mask independent of the principal one (e.g. i.i.d. entries) the expectation is α.
/// (The paper's update mask is the entries that change visibly in bf16; here both masks have the
/// same size, which makes α the random baseline.) ShapeError / ConfigError (k, α outside (0, 1])
/// as update_alignment.
double principal_mask_overlap(const torch::Tensor& w, const torch::Tensor& delta, std::int64_t k, double alpha);

/// Share of entries whose bfloat16 rounding does not change from w_before to w_after (paper 16's
/// "bf16-visible" update sparsity, Gate III). ShapeError for different shapes or no elements.
double bf16_unchanged_share(const torch::Tensor& w_before, const torch::Tensor& w_after);

}  // namespace stablelearn::diagnostics
