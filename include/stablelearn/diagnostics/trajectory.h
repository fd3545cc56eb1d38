// Low-rank structure of a weight trajectory (loss-landscape's PCA directions, bubble-modadd's
// r₉₀ and effective rank; docs/diagnostics.md).
//
// Checkpoints θ_1..θ_T (flattened, D parameters each) form M ∈ R^{T×D}. PCA centres the rows at
// their mean θ̄ (as sklearn does) and diagonalises the covariance Σ = M̃ᵀM̃ / (T − 1) through the
// thin SVD M̃ = U S Vᵀ (O(T²D), cheap when D ≫ T): explained variance λ_i = s_i²/(T−1),
// components v_i (rows of Vᵀ), coordinates M̃ v_i = s_i u_i. Only the numerical rank is kept:
// s_i > s_1 · max(T, D) · ε.
// * explained-variance ratio λ_i / Σ_j λ_j;
// * rank at a threshold (r₉₀ at 0.9): the smallest r with Σ_{i≤r} λ_i / Σ λ ≥ threshold;
// * effective rank (Roy & Vetterli 2007): exp(−Σ p_i ln p_i), p_i = s_i / Σ_j s_j over the
//   singular values of M̃ (bubble-modadd's `effective_rank`);
// * alignment to the final displacement: cos(θ_t − θ_1, θ_T − θ_1).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::diagnostics {

struct TrajectoryPcaOptions {
  /// Components kept (0 = all of numerical rank)
  TORCH_ARG(std::int64_t, components) = 0;
  /// For rank_at_threshold, in (0, 1]
  TORCH_ARG(double, variance_threshold) = 0.9;
};

struct TrajectoryPca {
  torch::Tensor explained_variance;        ///< [r] λ_i descending, r = numerical rank
  torch::Tensor explained_variance_ratio;  ///< [r]
  torch::Tensor components;                ///< [k, D] unit principal directions
  torch::Tensor projections;               ///< [T, k] coordinates of the centred checkpoints
  torch::Tensor mean;                      ///< [D] θ̄
  std::int64_t rank_at_threshold = 0;      ///< r₉₀ for threshold 0.9
  double effective_rank = 0.0;             ///< Roy–Vetterli
};

/// PCA of a trajectory given as a [T, D] matrix (T ≥ 2), float64 results on the input's device.
/// Throws ShapeError for T < 2, DataError for a constant trajectory.
TrajectoryPca trajectory_pca(const torch::Tensor& checkpoints, const TrajectoryPcaOptions& options = {});
/// The same for a list of checkpoints (each flattened; all of the same size).
TrajectoryPca trajectory_pca(const std::vector<torch::Tensor>& checkpoints, const TrajectoryPcaOptions& options = {});

/// cos(θ_t − θ_1, θ_T − θ_1) for t = 1..T ([T], the first entry is 0 by convention).
torch::Tensor alignment_to_final(const torch::Tensor& checkpoints);

}  // namespace stablelearn::diagnostics
