#include "task_loop.h"

#include <chrono>
#include <cmath>

#include "stablelearn/core/error.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/lfd/hnet_training.h"

namespace stablelearn::lfd::detail {

TaskSource::TaskSource(const LfdConfig& c) : cfg_(c) {
  spec_ = &data::lfd_dataset_spec(c.dataset);
  const auto root = c.root.empty() ? data::default_data_root() : std::filesystem::path(c.root);
  dataset_ = std::make_unique<data::LfdDataset>(spec_->kind, root, c.sequence);
  num_tasks_ = c.tasks > 0 ? std::min(c.tasks, dataset_->num_tasks()) : dataset_->num_tasks();
}

const data::PreparedTask& TaskSource::task(std::int64_t i) {
  while (static_cast<std::int64_t>(prepared_.size()) <= i) {
    const auto raw = dataset_->task(static_cast<std::int64_t>(prepared_.size()));
    prepared_.push_back(data::prepare_task(raw, *spec_, {cfg_.target == "snode", cfg_.tangent_vec_scale}));
    auto p32 = prepared_.back();
    p32.x = p32.x.to(torch::kFloat32);
    p32.t = p32.t.to(torch::kFloat32);
    prepared32_.push_back(p32);
  }
  return prepared_[static_cast<std::size_t>(i)];
}

const data::PreparedTask& TaskSource::task32(std::int64_t i) {
  task(i);
  return prepared32_[static_cast<std::size_t>(i)];
}

std::vector<std::string> TaskSource::task_files() const {
  return {dataset_->task_files().begin(), dataset_->task_files().begin() + num_tasks_};
}

namespace {

/// The iterations of task i; returns the task's training seconds.
double train_task(const LfdConfig& c, const std::filesystem::path& metrics_path, std::int64_t i, std::int64_t tasks,
                  Learner& learner, const std::function<void(const TrainProgress&)>& progress,
                  std::vector<nlohmann::json>& diag_rows) {
  learner.begin_task(i);
  BestTracker best;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t it = 0; it < c.iterations; ++it) {
    const auto out = learner.step(i, it);
    SL_CHECK(std::isfinite(out.loss), DataError, "task ", i, " iteration ", it, ": training loss is ", out.loss,
             " (diverged; lower train.lr?)");
    if (c.diagnostics.enabled() && (it + 1) % c.diagnostics.every == 0) {
      // After update it + 1, on its window, w.r.t. the tensors the task loss was differentiated
      // against (LfdDiagnostics).
      const auto probe = learner.probe(i);
      auto row = measure_sharpness(c, probe.wrt, probe.rollout, probe.target, i, it + 1);
      row.update(probe.row_extra);
      record_diagnostics_row(metrics_path, std::move(row), diag_rows);
    }
    if (best.offer(it, out.loss)) learner.keep_best();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log_iteration(c, metrics_path, i, tasks, it + 1, out.loss, out.reg, best.best, elapsed, progress);
  }
  learner.end_task(i);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void run_tasks(const LfdConfig& c, const std::filesystem::path& run, TaskSource& tasks, Learner& learner, bool resume,
               const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after, LoopResults& results) {
  std::int64_t first_task = 0;
  std::vector<nlohmann::json> diag_rows;  // [diagnostics] rows so far (sharpness.svg, summary.json)
  if (open_lfd_run(run, c.to_config().to_string(), resume)) {
    const auto ck = read_checkpoint(run);
    SL_CHECK(ck.method == learner.method(), DataError, ck.tensors_file.string(), ": checkpoint of method '", ck.method,
             "', the configuration says '", learner.method(), "'");
    learner.resume(ck);
    results.seconds = ck.seconds;
    results.evals = ck.evals;
    first_task = ck.completed;
    diag_rows = trim_metrics_for_resume(run, first_task);
  }
  const auto metrics_path = run / "metrics.jsonl";
  const auto n = tasks.num_tasks();
  const std::int64_t last_task = stop_after > 0 ? std::min(stop_after, n) : n;
  for (std::int64_t i = first_task; i < last_task; ++i) {
    results.seconds.push_back(train_task(c, metrics_path, i, n, learner, progress, diag_rows));
    std::vector<EvalCell> row;
    if (c.evaluate)
      row = evaluate_seen_tasks(metrics_path, i, [&](std::int64_t j) { return learner.evaluate(i, j, results.evals); });
    results.evals.push_back(row);
    write_checkpoint(run, learner.method(), i, learner.checkpoint_tensors(), results.seconds, results.evals);
    auto info = learner.summary(i + 1);
    info.tasks = n;
    info.task_files = tasks.task_files();
    info.diagnostics = diag_rows;
    write_results(run, c, results.evals, results.seconds, info);
    if (c.diagnostics.enabled()) write_sharpness_svg(run, c, diag_rows);
  }
}

}  // namespace stablelearn::lfd::detail
