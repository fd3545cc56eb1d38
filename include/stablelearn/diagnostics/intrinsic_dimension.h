// Intrinsic dimension of an objective landscape by training in a random subspace (Li, Farkhoor,
// Liu, Yosinski, ICLR 2018; code uber-research/intrinsic-dimension; docs/diagnostics.md).
//
// θ = θ₀ + P θ_d with θ₀ the current parameters, P ∈ R^{D×d} fixed and θ_d ∈ R^d (starting at 0)
// the only trained variables. Dense projection: P has i.i.d. N(0, 1) entries and each column is
// scaled to unit norm over all D (Li et al.'s global normalisation); optionally P is made exactly
// orthonormal (QR), so that d = D reproduces full-space training step by step.
// Because θ is affine in θ_d, ∇_{θ_d} L = Pᵀ ∇_θ L: each step writes θ₀ + Pθ_d into the parameters,
// takes the ordinary gradient through the caller's loss closure and projects it. Memory D·d.
// d_int90 is then the smallest d on a grid whose (seed-averaged) score reaches 90 % of a baseline;
// which baseline (the trained full model, or an absolute 0.90 as in the paper's MNIST numbers) is
// the caller's choice and must be reported (diagnostics-anchors §3.1).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

/// A fixed random D×d projection.
class RandomSubspace {
 public:
  /// Throws ConfigError unless 1 ≤ d ≤ D (d ≤ D is also required for `orthonormal`).
  RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                 bool orthonormal = false);
  std::int64_t full_dim() const { return matrix_.size(0); }
  std::int64_t dim() const { return matrix_.size(1); }
  /// P θ_d, [D].
  torch::Tensor to_full(const torch::Tensor& theta_d) const;
  /// Pᵀ g, [d].
  torch::Tensor to_subspace(const torch::Tensor& g) const;
  const torch::Tensor& matrix() const { return matrix_; }

 private:
  torch::Tensor matrix_;
};

struct SubspaceTrainingOptions {
  /// D
  TORCH_ARG(std::int64_t, dim) = 10;
  /// Optimiser steps; each visits every batch once (full-batch gradient)
  TORCH_ARG(std::int64_t, steps) = 100;
  TORCH_ARG(double, learning_rate) = 1e-2;
  /// Adam (β = 0.9, 0.999, ε = 1e-8; Li et al. use Adam) instead of plain GD
  TORCH_ARG(bool, adam) = false;
  /// Orthonormal P (see above)
  TORCH_ARG(bool, orthonormal) = false;
  TORCH_ARG(std::uint64_t, seed) = 0;
};

struct SubspaceTrainingResult {
  torch::Tensor theta_d;         ///< final θ_d [d]
  std::vector<double> losses;    ///< full-data mean loss before each step, then after the last
};

/// Trains `params` (in place: they end at θ₀ + Pθ_d) in a random d-dimensional subspace through
/// the full-data mean of `loss` over `batches` (weighted by batch size, as HessianOperator).
SubspaceTrainingResult train_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                         const std::vector<Batch>& batches, const SubspaceTrainingOptions& options);

/// The smallest d in `dims` (visited in increasing order) with score(d) ≥ threshold, or −1.
std::int64_t smallest_passing_dimension(std::vector<std::int64_t> dims, const std::function<double(std::int64_t)>& score,
                                        double threshold);

}  // namespace stablelearn::diagnostics
