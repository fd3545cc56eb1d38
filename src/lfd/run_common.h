// Pieces shared by the hypernetwork trainer (trainer.cpp) and the baselines (baselines.cpp):
// target-network construction, the evaluation protocol (spec §3.6), checkpoints and the run
// directory's result files. Private to sl_lfd.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "stablelearn/core/run.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/data/lfd_preprocess.h"
#include "stablelearn/io/ndarray.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn::lfd::detail {

/// The target network of a configuration: its weight layout, fan-ins (for owned-weight
/// initialisation) and vector field. With condition_dim c > 0 the field takes a conditioning
/// vector (a task embedding, [c]) that f̂ (sNODE) or the MLP (NODE) sees first in its input.
struct Target {
  models::WeightLayout layout;
  std::vector<std::int64_t> fan_in;
  std::int64_t condition_dim = 0;
  std::function<VectorField(const std::vector<torch::Tensor>& weights, const torch::Tensor& cond)> field;
  /// sNODE only (empty for NODE): weights -> V(t, x) [B] (z = [x, t] with the clock, else x).
  std::function<LyapunovFunction(const std::vector<torch::Tensor>& weights)> lyapunov;
  /// sNODE only: its options, for the fused training rollout (models/snode_rollout.h).
  std::optional<models::SNodeOptions> snode;
  /// The configuration's solver on the data grid bound to weights (and cond): Euler on the field
  /// for sNODE, node_solver for NODE, the discrete-time map Φ with model.discrete_step. Training
  /// (tensor path), evaluation, diagnostics and the stability check all integrate through it.
  std::function<GridRollout(const std::vector<torch::Tensor>& weights, const torch::Tensor& cond)> rollout;
  /// What training integrates (train.rollout): `rollout` itself ("map"), or Euler on the field
  /// ("euler") where `rollout` is Φ. Training's tensor path and its [diagnostics] use it.
  std::function<GridRollout(const std::vector<torch::Tensor>& weights, const torch::Tensor& cond)> train;
  VectorField operator()(const std::vector<torch::Tensor>& w, const torch::Tensor& cond = {}) const { return field(w, cond); }
};
Target make_target(const LfdConfig& c, std::int64_t dim, std::int64_t condition_dim = 0);
/// The sNODE options of a configuration (validated), for state dimension `dim`.
models::SNodeOptions snode_options(const LfdConfig& c, std::int64_t dim, std::int64_t condition_dim = 0);

/// The training rollout of one window: x0 [B, d] integrated over t with the training solver, the
/// weights given as one flat vector in `target.layout` order. sNODE targets take the fused Euler
/// rollout with the hand-written backward when train.fused_rollout is set and the tensors allow it
/// (CPU float32/float64, not Φ: model.discrete_step with train.rollout = "map"); everything else
/// goes through `target.train`.
torch::Tensor train_rollout(const LfdConfig& c, const Target& target, const torch::Tensor& flat, const torch::Tensor& cond,
                            const torch::Tensor& x0, const torch::Tensor& t);
/// Whether train_rollout takes the fused path for weights of `weights_like`'s dtype and device.
bool fused_rollout_applies(const LfdConfig& c, const Target& target, const torch::Tensor& weights_like,
                           const torch::Tensor& x0, const torch::Tensor& cond);

/// The period h of a task's time grid t [T] (uniform: (t_last − t_first) / (T − 1)).
double data_period(const torch::Tensor& t);

/// The box 1.5× the extent of demonstrations x [B, T, d] (model coordinates): its centre and
/// half-widths [d] (`lfd stability`'s random starts and the certificate penalty's states).
std::pair<torch::Tensor, torch::Tensor> demo_box(const torch::Tensor& demos);

/// The states of the certificate penalty for a task's demonstrations x [B, T, d] (model
/// coordinates): n draws, uniform in the box 1.5× the demonstrations' extent (as `lfd stability`'s
/// random starts), every second one then scaled towards the goal by 10^U(−2, 0), so the states near
/// the goal, where the pulls gather (docs/lfd.md §7.1), are sampled too.
torch::Tensor certificate_states(const torch::Tensor& demos, std::int64_t n, torch::Generator& gen);

/// Evaluation of one task with a learned skill's solver (Target::rollout; spec §3.6: sNODE
/// windowed, NODE one full integration), de-normalised, DTW / Fréchet / swept (+ quaternion error).
EvalCell evaluate_task(const LfdConfig& c, const data::LfdDatasetSpec& spec, const data::PreparedTask& task,
                       const GridRollout& rollout);

/// One [diagnostics] measurement (LfdDiagnostics): the task loss L = mean((Ŷ − Y)²) with Ŷ =
/// `rollout()` (a closure that rebuilds the rolled-out window from `params`, with a graph to them)
/// and Y = `target` (same number of elements). Records the LfdDiagnostics::metrics chosen —
/// λ_max of the curvature (Hessian, or GGN (2/N) JᵀJ) by Lanczos, ‖∇L‖, L, Hutchinson's trace —
/// plus 2/lr, the parameter count and the products used (Lanczos and Hutchinson draw from
/// derive_seed(seed, task, seed_purpose::lanczos / trace)). Returns the metrics.jsonl row
/// ("event": "diagnostics").
nlohmann::json measure_sharpness(const LfdConfig& c, const std::vector<torch::Tensor>& params,
                                 const std::function<torch::Tensor()>& rollout, const torch::Tensor& target,
                                 std::int64_t task, std::int64_t iteration);

/// RUN/checkpoint.json + the tensors file it points at.
struct CheckpointData {
  std::int64_t completed = 0;
  std::map<std::string, io::NdArray> tensors;
  std::filesystem::path tensors_file;
  std::vector<double> seconds;
  std::vector<std::vector<EvalCell>> evals;
  std::string method = "hnet";
};
/// IoError when missing, DataError when corrupt, of another format or a newer version.
CheckpointData read_checkpoint(const std::filesystem::path& run);
/// Tensor of `key` from a checkpoint (DataError naming the file when absent).
torch::Tensor checkpoint_tensor(const CheckpointData& ck, const std::string& key);
/// Writes RUN/checkpoint_task<i>.npz, then RUN/checkpoint.json atomically, then removes the
/// previous task's tensors file.
void write_checkpoint(const RunDir& run, const std::string& method, std::int64_t task,
                      const std::map<std::string, io::NdArray>& tensors, const std::vector<double>& seconds,
                      const std::vector<std::vector<EvalCell>>& evals);

/// What summary.json reports besides the evaluations.
struct SummaryInfo {
  std::string method = "hnet";
  std::int64_t tasks = 0;
  std::vector<std::string> task_files;
  nlohmann::json params;            ///< params.{target, hypernetwork, theta, ...}
  std::vector<double> sizes;        ///< parameters stored after each task (CL score MS)
  bool stores_data = false;         ///< replay (CL score SSS)
  std::vector<nlohmann::json> diagnostics;  ///< [diagnostics] rows so far (summary.json "diagnostics")
};
/// Rewrites RUN/eval_results.json and RUN/summary.json from the evaluations so far.
void write_results(const RunDir& run, const LfdConfig& c, const std::vector<std::vector<EvalCell>>& evals,
                   const std::vector<double>& seconds, const SummaryInfo& info);

}  // namespace stablelearn::lfd::detail
