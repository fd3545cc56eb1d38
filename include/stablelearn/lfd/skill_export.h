// Export of a learned skill to the self-describing file read by the libtorch-free runtime
// (include/stablelearn/runtime/skill.h; format in docs/skill-format.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/models/snode.h"

namespace stablelearn::lfd {

class LfdRun;

/// Everything the runtime needs besides the weights.
struct SkillSpec {
  bool snode = true;                  ///< sNODE (stable) or NODE (MLP)
  std::int64_t dim = 2;               ///< state dimension
  std::int64_t position_dim = 2;      ///< leading coordinates normalised with mean/std/goal
  bool explicit_time = true;
  std::vector<std::int64_t> hidden;   ///< f̂ widths (sNODE) or MLP hidden widths (NODE)
  std::int64_t icnn_hidden = 0;       ///< sNODE ICNN width hp
  double alpha = 0.5, eps = 1e-4, rehu = 0.01, psd_rehu = 1.0, elu_alpha = 1.0;
  double t0 = 0, dt = 0;              ///< the demonstrations' clock (start, step)
  std::vector<double> mean, std, goal;  ///< position_dim each (goal in normalised coordinates)
  std::string name;
  /// Trained as the discrete-time map Φ (model.discrete_step) with κ at `period` (the data step):
  /// written as format version 2; otherwise the file is version 1, byte for byte as before.
  bool discrete_step = false;
  double kappa = 0.5, period = 0;
};

/// The file's bytes: weights (in the target's layout order) stored as float32.
std::vector<unsigned char> serialize_skill(const SkillSpec& spec, const std::vector<torch::Tensor>& weights);

/// The weights of an sNODE with options.center_fhat() (f̂(z) − f̂(0)) as a plain sNODE's: f̂(z) − f̂(0)
/// = W_out (h(z) − h(0)), i.e. the same MLP with the output bias b_out − f̂(0) = −W_out h(0)
/// (computed in float64; the other tensors are returned as given). Without center_fhat, the weights
/// as given. What export_skill writes, so that the runtime needs no notion of centring.
std::vector<torch::Tensor> fold_centered_fhat(const models::SNodeOptions& options, std::vector<torch::Tensor> weights);

/// Writes task `task` of a trained run to `path` (atomically). The goal is the mean of the
/// demonstrations' normalised end points (the LfD data sets end every demonstration at one point).
SkillSpec export_skill(const LfdRun& run, std::int64_t task, const std::filesystem::path& path);

}  // namespace stablelearn::lfd
