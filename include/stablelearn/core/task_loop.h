// The one task loop of every continual experiment (`lfd train`'s methods and `cl run`'s
// strategies): for each task i from `first` up to `last`
//
//   steps = begin_task(i)
//   for s < steps: loss = step(i, s); (the loop checks it is finite); after_step(i, s, loss)
//   end_task(i) → evaluate(i, seconds) (the seen tasks) → checkpoint(i) → report(i)
//
// A run opens its RunDir (core/run.h), restores a resumed learner and passes the first task not yet
// completed. Torch-free: a learner is any object with these hooks.
//
//   struct Mine : TaskLearner { ... };
//   run_task_loop(mine, completed, num_tasks);
#pragma once

#include <cstdint>
#include <string>

namespace stablelearn {

class TaskLearner {
 public:
  virtual ~TaskLearner() = default;
  /// Starts task i (its parameters, optimiser, generators); returns its number of updates.
  virtual std::int64_t begin_task(std::int64_t i) = 0;
  /// Update s (0-based) of task i; returns the training loss (the loop stops the run with a
  /// DataError when it is not finite, before after_step sees it).
  virtual double step(std::int64_t i, std::int64_t s) = 0;
  /// Bookkeeping after a finite update: logged rows, monitors, best copies, progress.
  virtual void after_step(std::int64_t /*i*/, std::int64_t /*s*/, double /*loss*/) {}
  /// Finishes task i (best copy, importance estimates, the strategy's after_task).
  virtual void end_task(std::int64_t i) = 0;
  /// Evaluates the tasks seen after task i (and writes their rows); `seconds` is task i's training
  /// time, begin_task through end_task.
  virtual void evaluate(std::int64_t i, double seconds) = 0;
  /// Saves what a resumed run needs after task i.
  virtual void checkpoint(std::int64_t i) = 0;
  /// Rewrites the reports (summary.json, figures) after task i.
  virtual void report(std::int64_t i) = 0;
  /// What the divergence error suggests (e.g. "lower train.lr").
  virtual std::string divergence_hint() const { return "lower train.lr"; }
};

/// Runs tasks first..last-1 through `learner` (see above). A non-finite loss is a DataError:
/// "task I iteration S: the training loss is X (diverged; HINT)".
void run_task_loop(TaskLearner& learner, std::int64_t first, std::int64_t last);

}  // namespace stablelearn
