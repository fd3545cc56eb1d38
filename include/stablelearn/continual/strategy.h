// Continual-learning strategies: the hooks the engine calls (shared/DESIGN.md, continual/).
//
// One training iteration of task t (the contract every Strategy may rely on):
//   batch = strategy.adapt_batch(ctx, batch)            (replay: append memory samples)
//   logits = ctx.logits(batch.x, batch.task)            (task-IL: other tasks' classes masked)
//   loss = CE(logits, batch.y) + strategy.extra_loss(ctx, batch, logits)   (penalties, distillation)
//   loss.backward(); strategy.after_backward(ctx)        (gradient surgery: A-GEM, GPM)
//   strategy.step(ctx) or optimiser.step()               (optimiser wrappers: CoSO)
//   strategy.after_step(ctx, batch)                      (SI path integral, EMA, reservoir buffers)
// and around each task: before_task(ctx) → iterations over strategy.train_set(ctx) → after_task(ctx)
// → evaluation. Strategies may read and snapshot the parameters and change their values (EMA
// merging); they must not change the model's structure. Their state (importances, anchors,
// buffers) is saved with state() and restored with load_state() for checkpoint/resume.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn {
class ConfigSection;
class ConfigWriter;
}  // namespace stablelearn

namespace stablelearn::continual {

class Strategy;

/// A minibatch: images [B, C, H, W], labels [B] (int64), task id of each sample [B] (int64).
struct Batch {
  torch::Tensor x, y, task;
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

/// Training data of one task with the task id of each sample (joint training mixes tasks).
struct TrainSet {
  torch::Tensor x, y, task;
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

struct Context {
  models::ClassifierImpl* model = nullptr;
  std::vector<torch::Tensor> params;          ///< the model's parameters, in layout order
  const std::vector<data::ClTask>* tasks = nullptr;  ///< the whole stream
  std::int64_t task = 0;                      ///< the task being trained
  std::int64_t iteration = 0;                 ///< global iteration counter (all tasks)
  std::int64_t task_iteration = 0;            ///< iteration within the current task
  std::int64_t batch_size = 0;
  double lr = 0;                              ///< the configured learning rate
  bool task_incremental = false;              ///< logits masked to each sample's task classes
  torch::Generator gen;                       ///< the strategy's own seeded generator
  /// Class mask [tasks, classes] (true = the class belongs to the task); used when task_incremental.
  torch::Tensor class_mask;
  /// Data-parallel runs only (docs/distributed.md), for strategies that ask for it
  /// (Strategy::wants_batch_logits): the detached logits of the whole batch of this update (after
  /// adapt_batch), gathered from every rank's shard, set before after_step. Undefined in one process.
  torch::Tensor batch_logits;

  /// Ranks of a data-parallel run (1 in one process), for strategies that cannot run split.
  std::int64_t world_size = 1;
  /// Set by the engine: the run's strategy. When it gives each task its own view of the network
  /// (Strategy::per_task_network: PackNet, HAT), logits() evaluates each task's samples with that
  /// task's weights.
  const Strategy* strategy = nullptr;
  /// Set by the engine when the network is not the model's own forward: a pre-trained backbone
  /// with adapters or frozen layers (models/adapters.h, [backbone] of `cl run`). It returns the
  /// logits of images x with the trainable parameters w (the layout of params, which then holds
  /// only what trains: adapters, the output layer, the backbone's weights when not frozen).
  /// network() and logits() use it; strategies that read the model's structure (model->forward,
  /// linear_weight_indices) are refused by the engine while it is set.
  std::function<torch::Tensor(const torch::Tensor&, const std::vector<torch::Tensor>&)> forward;

  const data::ClTask& current() const { return (*tasks)[static_cast<std::size_t>(task)]; }
  /// Unmasked logits of images x through task `task`'s network: the model's own weights, or the
  /// weights a per-task-network strategy gives that task.
  torch::Tensor network(const torch::Tensor& x, std::int64_t task) const;
  /// Logits of images x for samples of tasks `task_ids` with weights w (default: the model's own,
  /// or, for a per-task-network strategy, the weights it gives each sample's task).
  torch::Tensor logits(const torch::Tensor& x, const torch::Tensor& task_ids,
                       const std::vector<torch::Tensor>* w = nullptr) const;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  /// The resolved options, written under [strategy] of the run's config.toml.
  virtual void describe(ConfigWriter& w) const;

  virtual void before_task(Context&) {}
  /// Data to iterate over for the current task (default: the task's training set).
  virtual TrainSet train_set(Context& ctx);
  /// May extend the batch (replay); the default returns it unchanged.
  virtual Batch adapt_batch(Context&, Batch b) { return b; }
  /// Extra loss added to the cross-entropy (undefined tensor = none).
  virtual torch::Tensor extra_loss(Context&, const Batch&, const torch::Tensor& /*logits*/) { return {}; }
  /// Called with the gradients in params[i].grad(), before the optimiser step.
  virtual void after_backward(Context&) {}
  /// Optimiser-wrapper strategies (CoSO) update the parameters themselves and return true; the
  /// engine's optimiser then skips this step. Default: false.
  virtual bool step(Context&) { return false; }
  /// Called after the optimiser step with the batch that was trained on (before adapt_batch).
  virtual void after_step(Context&, const Batch&) {}
  virtual void after_task(Context&) {}
  /// True for a strategy whose updates are plain cross-entropy steps: adapt_batch returns the
  /// batch unchanged, extra_loss is undefined, after_backward and step do nothing, and after_step
  /// keeps no tensor of the batch (the engine may reuse its storage). The engine may then compute
  /// the gradients without autograd (models::MlpLossGrad: the same numbers) and leave
  /// params[i].grad() unset. Default: false.
  virtual bool plain_updates() const { return false; }

  /// How extra_loss splits over the ranks of a data-parallel `cl run` (docs/distributed.md), where
  /// every rank calls it with its own shard of the batch and that shard's logits:
  /// - Replicated: the value does not depend on the batch's samples (penalties on the weights,
  ///   terms over memory samples the strategy draws itself); every rank computes it alike (the
  ///   same generator draws) and rank 0 alone adds it, so it counts once;
  /// - SampleMean: a mean over the batch's samples (distillation); each rank adds its shard's
  ///   value weighted by shard size / batch size. Such a strategy must not draw from ctx.gen in
  ///   extra_loss (a rank with an empty shard does not call it).
  enum class LossSplit { Replicated, SampleMean };
  virtual LossSplit extra_loss_split() const { return LossSplit::Replicated; }
  /// True when after_step needs the logits of the whole batch (ctx.batch_logits) in a data-parallel
  /// run, where extra_loss sees only a shard's. Default: false.
  virtual bool wants_batch_logits() const { return false; }
  /// Why the strategy cannot run data-parallel, or "" when it can (the default). A data-parallel
  /// `cl run` refuses a strategy that gives a reason (a ConfigError naming strategy.name) before
  /// anything is written, on every rank.
  virtual std::string data_parallel_refusal() const { return {}; }

  /// Architecture-based strategies (PackNet, HAT) give each task its own view of the network:
  /// per_task_network() is true and task_weights(ctx, k) returns the weights, in layout order, that
  /// task k's samples are evaluated with (differentiable in ctx.params while task k trains).
  /// Context::logits then uses them for training, tracking and evaluation alike. Such a strategy
  /// needs the task identity at test time. Default: false / the model's own weights.
  virtual bool per_task_network() const { return false; }
  virtual std::vector<torch::Tensor> task_weights(const Context& ctx, std::int64_t /*task*/) const { return ctx.params; }

  /// Named tensors of the strategy's state (for checkpoints); load_state is its inverse.
  virtual std::map<std::string, torch::Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, torch::Tensor>&) {}
};

/// A strategy with an options struct O whose fields() declare its [strategy] keys (core/options.h):
/// the constructor checks them (ConfigError "strategy.key: ...") and describe() writes them.
template <class O>
class StrategyWithOptions : public Strategy {
 public:
  using Options = O;
  explicit StrategyWithOptions(O o) : o_(options::checked(std::move(o), "strategy")) {}
  void describe(ConfigWriter& w) const override {
    Strategy::describe(w);
    options::write(w, o_, "strategy");
  }
  const O& opts() const { return o_; }

 protected:
  O o_;
};

/// Fine-tuning: no protection against forgetting (the lower baseline).
class FineTuning : public Strategy {
 public:
  std::string name() const override { return "finetune"; }
  bool plain_updates() const override { return true; }
};

/// Logits with every class outside `allowed` (bool, [classes] or [B, classes]) set to −∞: the
/// multi-head (task-incremental) view of one shared output layer.
torch::Tensor mask_logits(const torch::Tensor& logits, const torch::Tensor& allowed);

/// For per-task-network strategies: a ConfigError naming stream.kind unless every sample's task is
/// known at test time (task-incremental, or every task with the same classes: permuted, rotated,
/// split-domain); a class-incremental split stream has no task identity.
void require_task_identity(const Context& ctx, const std::string& strategy);

/// Cross-entropy of logits with labels, where masked-out logits (−∞) are ignored.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels);

/// Flat concatenation of the parameters' gradients (zeros for missing gradients).
torch::Tensor flat_grad(const std::vector<torch::Tensor>& params);
/// Writes a flat vector back into the parameters' gradients.
void set_flat_grad(const std::vector<torch::Tensor>& params, const torch::Tensor& flat);
/// Detached clones of the parameters.
std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params);

/// Helpers for state(): store a list of tensors as prefix.0, prefix.1, ... and read it back.
void put_list(std::map<std::string, torch::Tensor>& m, const std::string& prefix, const std::vector<torch::Tensor>& v);
std::vector<torch::Tensor> get_list(const std::map<std::string, torch::Tensor>& m, const std::string& prefix);

}  // namespace stablelearn::continual
