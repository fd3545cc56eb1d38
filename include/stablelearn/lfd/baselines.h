// Continual-learning baselines for learning from demonstration (shared/specs/clfd-snode.md §7),
// selected with [model] method in an LfD configuration (LfdConfig::method; "hnet" = the
// hypernetwork trainer of trainer.h):
//
// * sg  — a single model per task: a fresh target network (NODE or sNODE, own weights, the spec's
//         initialisation) per task, evaluated on its own task only (upper baseline; no forgetting by
//         construction, memory grows linearly). The reference warm-starts SG-NODE from the
//         previous task (§8.5); here both targets start fresh.
// * ft  — fine-tuning: ONE target network whose input is extended with a task embedding
//         (e_i ~ N(0, 1), dimension task_emb_dim, placed first: [e, x, t]); the network and the
//         current embedding are trained on the current task only (fresh Adam per task).
//         sNODE: f̂ sees [e, z], while V, ∇V and the projection act on z = [x(, t)] and the output
//         is the STATE part of the projected field. The reference projects in the (te + d + 1)-
//         space and keeps the components aligned with the embedding (§8.2), which loses the
//         guarantee; that bug is fixed here, not reproduced.
// * rep — replay: FT architecture; every iteration of task i trains on a window of a task
//         k ~ U{0..i} (stored demonstrations) with embedding e_k (one Adam per embedding).
// * si  — FT + Synaptic Intelligence on the network weights (continual/regularizers.h; ω from the
//         task-loss gradient of each step, reset per task; c = si_c, ξ = si_xi).
// * mas — FT + Memory Aware Synapses on the network weights (Ω = mean over mas_samples random
//         (demonstration, time) states of the finished task of |∂‖ẋ‖²/∂θ|, accumulated over all
//         tasks including the first; λ = mas_lambda).
//
// All methods use the hypernetwork trainer's window loss, Adam (lr), best-copy selection,
// evaluation protocol, checkpoints and run-directory files (run_common in src/lfd/).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/io/ndarray.h"
#include "stablelearn/lfd/trainer.h"

namespace stablelearn::lfd {

/// The learned networks of a baseline: per-task fields, and the tensors of a checkpoint.
class BaselineModel {
 public:
  /// `state_dim` = the data set's model state dimension.
  BaselineModel(const LfdConfig& config, std::int64_t state_dim);
  ~BaselineModel();
  BaselineModel(BaselineModel&&) noexcept;
  BaselineModel& operator=(BaselineModel&&) noexcept;
  /// Adds task `tasks()`: a new embedding e ~ N(0, 1) (conditioned methods) or a new network (sg),
  /// drawn from the global torch generator.
  void add_task();
  std::int64_t tasks() const;
  /// The trainable tensors of the network that learns task `task` (sg: that task's network; else
  /// the shared network). They require grad.
  std::vector<torch::Tensor> network(std::int64_t task) const;
  /// Embedding e_task [te] (requires grad); undefined for sg.
  torch::Tensor embedding(std::int64_t task) const;
  /// ẋ = f(t, x) of `task` (model coordinates), using the current tensors.
  /// `dtype`: the network and embedding are cast to it.
  VectorField field(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// The configuration's solver bound to `task`'s current tensors (the field's ODE solver, or the
  /// discrete-time map Φ with model.discrete_step), cast to `dtype` as field().
  GridRollout rollout(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// The training rollout of one window of `task` from x0 [B, d] over t (differentiable w.r.t. the
  /// network and the embedding): the fused sNODE rollout where train.fused_rollout allows it (and
  /// `fused`), else the tensor path of what training integrates (train.rollout: rollout(task) or,
  /// with "euler", Euler on the field).
  torch::Tensor train_rollout(std::int64_t task, const torch::Tensor& x0, const torch::Tensor& t, bool fused = true) const;
  /// V of `task`'s sNODE (UsageError for NODE targets); it does not depend on the embedding.
  LyapunovFunction lyapunov(std::int64_t task, torch::Dtype dtype = torch::kFloat32) const;
  /// The target weights of `task` in the plain target layout (sg only: the conditioned network of
  /// the other methods has no per-task weight list; UsageError there).
  std::vector<torch::Tensor> weights(std::int64_t task) const;
  /// Parameters of the plain or conditioned network (one copy).
  std::int64_t network_numel() const;
  bool conditioned() const;
  /// Checkpoint tensors ("net.<k>", "emb.<k>", "sg<i>.<k>") and their restore (tasks are added
  /// as needed).
  std::map<std::string, io::NdArray> to_tensors() const;
  void load_tensors(const std::function<torch::Tensor(const std::string&)>& get, std::int64_t tasks);

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

/// The baseline method names ("sg", "ft", "rep", "si", "mas").
const std::vector<std::string>& baseline_methods();

}  // namespace stablelearn::lfd
