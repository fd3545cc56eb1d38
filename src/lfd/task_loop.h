// `lfd train` on the one task loop (core/task_loop.h; private to sl_lfd): every method — the
// hypernetwork (hnet, trainer.cpp) and the baselines (sg, ft, rep, si, mas; baselines.cpp) — is a
// Learner, and run_tasks() opens or resumes the run directory (core/run.h) and drives the loop
// with what every method shares: per task begin_task → iterations of step (the loop's finite-loss
// check, the [diagnostics] curvature monitor, the best copy of spec §3.1, the metrics.jsonl and
// progress rows) → end_task → evaluation of the seen tasks (spec §3.6) → checkpoint →
// eval_results.json / summary.json (+ sharpness.svg).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "run_common.h"

namespace stablelearn::lfd::detail {

/// The tasks of a configuration's sequence, prepared on first use (float64 for evaluation, and a
/// float32 copy for training).
class TaskSource {
 public:
  explicit TaskSource(const LfdConfig& c);
  const data::LfdDatasetSpec& spec() const { return *spec_; }
  std::int64_t num_tasks() const { return num_tasks_; }
  const data::PreparedTask& task(std::int64_t i);
  const data::PreparedTask& task32(std::int64_t i);
  /// The sequence's first num_tasks() task files.
  std::vector<std::string> task_files() const;

 private:
  LfdConfig cfg_;
  const data::LfdDatasetSpec* spec_ = nullptr;
  std::unique_ptr<data::LfdDataset> dataset_;
  std::int64_t num_tasks_ = 0;
  std::vector<data::PreparedTask> prepared_, prepared32_;
};

/// One training iteration's result.
struct StepOutcome {
  double loss = 0;  ///< the task loss (the number logged and offered to the best copy)
  double reg = 0;   ///< the regulariser's value (0 without one)
  double cert = -1; ///< the certificate penalty's value (train.cert_weight; -1 = not computed)
};

/// What the [diagnostics] monitor measures after a step: the tensors the task loss was
/// differentiated against, a closure that rolls the step's window out again from them (with a
/// graph), the window's targets and what the row adds (window_start, ...).
struct DiagnosticsProbe {
  std::vector<torch::Tensor> wrt;
  std::function<torch::Tensor()> rollout;
  torch::Tensor target;
  nlohmann::json row_extra = nlohmann::json::object();
};

/// A method of `lfd train`. Adding one = a Learner (one source file), a line in make_learner
/// (trainer.cpp) and its name in LfdConfig's model.method rule.
class Learner {
 public:
  virtual ~Learner() = default;
  /// The name written into checkpoints ("hnet", or config.method for the baselines).
  virtual std::string method() const = 0;
  /// Restores the state saved by checkpoint_tensors() after ck.completed tasks.
  virtual void resume(const CheckpointData& ck) = 0;
  /// Adds task i: its parameters, optimisers and generators (seeded by derive_seed(seed, i, seed_purpose::…)).
  virtual void begin_task(std::int64_t i) = 0;
  /// Iteration `it` (0-based) of task i: one update.
  virtual StepOutcome step(std::int64_t i, std::int64_t it) = 0;
  /// The probe of the last step of task i (asked only when a [diagnostics] row is due, so steps
  /// build nothing for it).
  virtual DiagnosticsProbe probe(std::int64_t i) const = 0;
  /// The current parameters became the best copy.
  virtual void keep_best() = 0;
  /// Continues from the best copy and finishes task i (importance of SI/MAS, ...).
  virtual void end_task(std::int64_t i) = 0;
  /// Errors of task j <= i after training task i; `evals` holds the rows of tasks before i.
  virtual EvalCell evaluate(std::int64_t i, std::int64_t j, const std::vector<std::vector<EvalCell>>& evals) = 0;
  /// Everything resume() needs.
  virtual std::map<std::string, io::NdArray> checkpoint_tensors() const = 0;
  /// summary.json's method, params, sizes (for `completed` tasks) and stores_data.
  virtual SummaryInfo summary(std::int64_t completed) const = 0;
  /// A data-parallel run (docs/distributed.md): this rank's group; step() then computes this rank's
  /// share (a shard of the window's demonstrations) and all-reduces, so every rank takes the same step.
  void set_group(distributed::ProcessGroup* group) { group_ = group; }

 protected:
  distributed::ProcessGroup* group_ = nullptr;
};

/// The results so far of a run_tasks() call.
struct LoopResults {
  std::vector<std::vector<EvalCell>> evals;
  std::vector<double> seconds;
};

/// Trains every task not yet completed (all with resume = false; see LfdTrainer::run).
/// With `group`, rank 0 opens (or resumes) the run directory, hands its checkpoint to the other
/// ranks and alone evaluates and writes; the other ranks train only.
void run_tasks(const LfdConfig& c, const std::filesystem::path& run, TaskSource& tasks, Learner& learner, bool resume,
               const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after, LoopResults& results,
               distributed::ProcessGroup* group = nullptr);

/// The learner of a baseline method (baselines.cpp).
std::unique_ptr<Learner> make_baseline_learner(const LfdConfig& c, TaskSource& tasks);

}  // namespace stablelearn::lfd::detail
