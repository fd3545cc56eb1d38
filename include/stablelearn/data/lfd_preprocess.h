// Pre-processing of LfD tasks exactly as the reference loaders (shared/specs/clfd-snode.md §1.6).
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "stablelearn/data/lfd_datasets.h"

namespace stablelearn::data {

/// Per-dimension normalisation with the population standard deviation (ddof = 0) over all
/// M x T samples of one task: x_n = (x - mean) / std.
struct Normalizer {
  torch::Tensor mean;  ///< [d]
  torch::Tensor std;   ///< [d]
  /// Statistics of x [M, T, d]; DataError if some dimension has zero spread.
  static Normalizer fit(const torch::Tensor& x);
  torch::Tensor normalize(const torch::Tensor& x) const;
  torch::Tensor denormalize(const torch::Tensor& x_n) const;
};

/// Quaternion helpers (scalar first, Hamilton product), on [..., 4] tensors.
torch::Tensor quat_multiply(const torch::Tensor& p, const torch::Tensor& q);
torch::Tensor quat_conjugate(const torch::Tensor& q);

/// Tangent-space map at the goal (half-angle convention): r = vec(log(q_g^-1 ⊗ q)) = θ·n with θ
/// the half rotation angle in [0, π]; 0 where |vec| < 1e-17. q [..., 4], q_goal broadcastable.
torch::Tensor quat_to_tangent(const torch::Tensor& q, const torch::Tensor& q_goal);
/// Inverse: q = q_g ⊗ exp((0, r)) with exp((0, v)) = (cos|v|, sin|v| v/|v|), normalised.
torch::Tensor tangent_to_quat(const torch::Tensor& r, const torch::Tensor& q_goal);

struct PreprocessOptions {
  bool center_goal = true;        ///< translate each demo's goal to 0 (sNODE); false for NODE
  double tangent_vec_scale = 1.0; ///< RoboTasks9 tangent vectors are multiplied by this
};

/// A task ready for training and evaluation.
struct PreparedTask {
  torch::Tensor x;           ///< float64 [M, T, state_dim]: model state (normalised, centred)
  torch::Tensor t;           ///< float64 [T]: time vector of demonstration 0
  Normalizer norm;           ///< of the position columns
  torch::Tensor goal;        ///< float64 [M, position_dim]: normalised goal (0 if not centred)
  torch::Tensor goal_quat;   ///< float64 [M, 4] (RoboTasks9), undefined otherwise
  torch::Tensor raw;         ///< float64 [M, T, dim]: the raw demonstrations
  std::int64_t position_dim = 0;
  double tangent_vec_scale = 1.0;
};

PreparedTask prepare_task(const LfdTask& task, const LfdDatasetSpec& spec, const PreprocessOptions& opt = {});

/// Inverse of prepare_task for a predicted state trajectory x_hat [M, T', state_dim]: adds the
/// goal, de-normalises positions and maps tangent vectors back to quaternions. Returns raw-space
/// [M, T', dim].
torch::Tensor restore_prediction(const PreparedTask& task, const torch::Tensor& x_hat);

/// Training window (spec §1.6): one start k0 ~ U{0..T - tsub} for all demonstrations.
struct Window {
  std::int64_t k0 = 0;
  torch::Tensor t;  ///< [tsub] absolute times
  torch::Tensor y;  ///< [M, tsub, state_dim]
};
Window sample_window(const PreparedTask& task, std::int64_t tsub, torch::Generator& gen);
/// The window starting at k0 (ShapeError if it does not fit).
Window window_at(const PreparedTask& task, std::int64_t k0, std::int64_t tsub);

}  // namespace stablelearn::data
