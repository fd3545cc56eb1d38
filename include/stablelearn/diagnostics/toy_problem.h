// A small built-in regression problem for the diagnostics CLI, benchmarks and examples: a
// one-hidden-layer tanh MLP f(x) = W₂ tanh(W₁x + b₁) + b₂ on synthetic data
// y = sin(2x₀) + ½x₁² (+ nothing for further inputs), x ~ N(0, I), MSE ℓ = ½(f − y)².
// Everything is drawn from one seeded CPU generator, so a seed names the problem exactly.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

struct ToyProblemOptions {
  /// Input dimension (≥ 2)
  TORCH_ARG(std::int64_t, inputs) = 2;
  /// Hidden width
  TORCH_ARG(std::int64_t, hidden) = 16;
  /// N
  TORCH_ARG(std::int64_t, samples) = 128;
  /// Batch length (the last batch may be shorter)
  TORCH_ARG(std::int64_t, batch_size) = 32;
  TORCH_ARG(std::uint64_t, seed) = 0;
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat64;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
};

struct ToyProblem {
  std::vector<torch::Tensor> params;  ///< W₁ [h, in], b₁ [h], W₂ [1, h], b₂ [1] (leaves, requires_grad)
  std::vector<Batch> batches;         ///< x [n_b, in], y [n_b, 1]
  OutputFn model;                     ///< f(x), [n, 1]
  LossFn loss;                        ///< mean of ½(f − y)² over the batch
  /// Full-batch gradient descent for `steps` steps; returns the full-data loss before each step
  /// and after the last.
  std::vector<double> train_gd(std::int64_t steps, double learning_rate) const;
};

/// Builds the problem. Throws ConfigError for inputs < 2 or non-positive sizes.
ToyProblem make_toy_problem(const ToyProblemOptions& options = {});

}  // namespace stablelearn::diagnostics
