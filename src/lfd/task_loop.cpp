#include "task_loop.h"

#include <algorithm>
#include <chrono>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/io/npz.h"
#include "stablelearn/core/run.h"
#include "stablelearn/core/task_loop.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/report/tensorboard.h"
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

/// `lfd train` as a learner of the one task loop (core/task_loop.h): the method's Learner plus
/// what every method shares — the finite-loss check (the loop), the [diagnostics] curvature monitor,
/// the best copy of spec §3.1, the metrics.jsonl rows and progress, the evaluation of the seen tasks
/// (spec §3.6), checkpoints and the result files.
class LfdRun final : public TaskLearner {
 public:
  /// `dir` is null on the ranks other than 0 of a distributed run: they train only (no
  /// evaluation, diagnostics, metrics rows, checkpoints or reports).
  LfdRun(const LfdConfig& c, const RunDir* dir, TaskSource& tasks, Learner& learner,
         const std::function<void(const TrainProgress&)>& progress, LoopResults& results)
      : c_(c), dir_(dir), tasks_(tasks), learner_(learner), progress_(progress), results_(results),
        tb_(dir ? std::make_unique<report::TensorBoardWriter>(dir->path()) : nullptr) {}

  /// On --resume: the learner's state, the results so far and the metrics.jsonl rows of the
  /// completed tasks (rows of an interrupted task are dropped, since it is trained again); returns
  /// the first task to train.
  std::int64_t restore() {
    const auto ck = read_checkpoint(dir_->path());
    SL_CHECK(ck.method == learner_.method(), DataError, ck.tensors_file.string(), ": checkpoint of method '", ck.method,
             "', the configuration says '", learner_.method(), "'");
    learner_.resume(ck);
    results_.seconds = ck.seconds;
    results_.evals = ck.evals;
    const auto kept = dir_->keep_metrics([&](const nlohmann::json& row) {
      return row.is_object() && row.contains("task") && row.at("task").get<std::int64_t>() < ck.completed;
    });
    for (auto row : kept)
      if (row.value("event", "") == "diagnostics") {
        row.erase("event");
        diag_rows_.push_back(std::move(row));
      }
    return ck.completed;
  }

  std::int64_t begin_task(std::int64_t i) override {
    learner_.begin_task(i);
    best_ = BestTracker{};
    t0_ = std::chrono::steady_clock::now();
    return c_.iterations;
  }

  double step(std::int64_t i, std::int64_t it) override {
    out_ = learner_.step(i, it);
    return out_.loss;
  }

  void after_step(std::int64_t i, std::int64_t it, double loss) override {
    if (dir_ && c_.diagnostics.enabled() && (it + 1) % c_.diagnostics.every == 0) {
      // After update it + 1, on its window, w.r.t. the tensors the task loss was differentiated
      // against (LfdDiagnostics).
      const auto probe = learner_.probe(i);
      auto row = measure_sharpness(c_, probe.wrt, probe.rollout, probe.target, i, it + 1);
      row.update(probe.row_extra);
      dir_->append_metrics(row);
      for (const char* k : {"lambda_max", "grad_norm", "trace"})
        if (row.contains(k) && row[k].is_number()) tb_->scalar(std::string("diag/") + k, row[k].get<double>(), step_of(i, it + 1));
      row.erase("event");
      diag_rows_.push_back(std::move(row));
    }
    if (best_.offer(it, loss)) learner_.keep_best();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const auto iteration = it + 1;
    if (dir_ && (iteration % c_.log_every == 0 || iteration == c_.iterations)) {
      nlohmann::json row{{"task", i},         {"iteration", iteration},   {"loss", loss},
                         {"reg", out_.reg},   {"best_loss", best_.best},  {"seconds", elapsed}};
      if (out_.cert >= 0) row["cert"] = out_.cert;
      dir_->append_metrics(row);
      const auto step = step_of(i, iteration);
      tb_->scalar("train/loss", loss, step);
      tb_->scalar("train/reg", out_.reg, step);
      tb_->scalar("train/best_loss", best_.best, step);
      if (out_.cert >= 0) tb_->scalar("train/cert", out_.cert, step);
    }
    if (progress_) progress_({i, tasks_.num_tasks(), iteration, c_.iterations, loss, out_.reg, elapsed});
  }

  void end_task(std::int64_t i) override { learner_.end_task(i); }

  void evaluate(std::int64_t i, double seconds) override {
    results_.seconds.push_back(seconds);
    if (!dir_) return;  // a rank other than 0 (rank 0 evaluates while the others go on)
    std::vector<EvalCell> row;
    for (std::int64_t j = 0; c_.evaluate && j <= i; ++j) {
      row.push_back(learner_.evaluate(i, j, results_.evals));
      const auto& e = row.back();
      dir_->append_metrics({{"task", i}, {"eval_task", j}, {"dtw_median", e.dtw.median},
                           {"frechet_median", e.frechet.median}, {"swept_median", e.swept.median}});
      const auto step = step_of(i, c_.iterations);
      const auto tj = std::to_string(j);
      tb_->scalar("eval/dtw_task" + tj, e.dtw.median, step);
      tb_->scalar("eval/frechet_task" + tj, e.frechet.median, step);
      tb_->scalar("eval/swept_task" + tj, e.swept.median, step);
      if (e.has_quat) tb_->scalar("eval/quat_task" + tj, e.quat.median, step);
    }
    tb_->scalar("time/task_seconds", seconds, step_of(i, c_.iterations));
    tb_->flush();
    results_.evals.push_back(std::move(row));
  }

  void checkpoint(std::int64_t i) override {
    if (!dir_) return;
    write_checkpoint(*dir_, learner_.method(), i, learner_.checkpoint_tensors(), results_.seconds, results_.evals);
  }

  void report(std::int64_t i) override {
    if (!dir_) return;
    auto info = learner_.summary(i + 1);
    info.tasks = tasks_.num_tasks();
    info.task_files = tasks_.task_files();
    info.diagnostics = diag_rows_;
    write_results(*dir_, c_, results_.evals, results_.seconds, info);
    if (c_.diagnostics.enabled() && c_.diagnostics.records("lambda_max") && !diag_rows_.empty()) write_figure(i);
  }

 private:
  /// TensorBoard step of iteration `it` of task i: the run's cumulative iteration (as `cl run`).
  std::int64_t step_of(std::int64_t i, std::int64_t it) const { return i * c_.iterations + it; }

  /// RUN/sharpness.svg: λ_max of every row against the run's cumulative iteration.
  void write_figure(std::int64_t i) const {
    report::SharpnessFigure f;
    for (const auto& r : diag_rows_)
      f.points.emplace_back(static_cast<double>(r.at("task").get<std::int64_t>() * c_.iterations +
                                                r.at("iteration").get<std::int64_t>()),
                            r.at("lambda_max").get<double>());
    for (std::int64_t t = 1; t <= i; ++t) f.boundaries.push_back(static_cast<double>(t * c_.iterations));
    f.x_end = static_cast<double>((i + 1) * c_.iterations);
    f.two_over_lr = 2.0 / c_.lr;
    f.title = std::string("sharpness: top ") + (c_.diagnostics.curvature == "ggn" ? "Gauss-Newton" : "Hessian") +
              " eigenvalue of the task loss on the training window (" + c_.method + ")";
    report::save_sharpness_figure(dir_->file("sharpness.svg").string(), f);
  }

  const LfdConfig& c_;
  const RunDir* dir_;  // null on ranks > 0 of a distributed run
  TaskSource& tasks_;
  Learner& learner_;
  const std::function<void(const TrainProgress&)>& progress_;
  LoopResults& results_;
  std::unique_ptr<report::TensorBoardWriter> tb_;  // RUN/events.out.tfevents.* (tags as `cl run`'s)
  std::vector<nlohmann::json> diag_rows_;  // [diagnostics] rows so far (sharpness.svg, summary.json)
  BestTracker best_;
  StepOutcome out_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace

void run_tasks(const LfdConfig& c, const std::filesystem::path& run, TaskSource& tasks, Learner& learner, bool resume,
               const std::function<void(const TrainProgress&)>& progress, std::int64_t stop_after, LoopResults& results,
               distributed::ProcessGroup* group) {
  const auto resolved = c.to_config().to_string();
  if (group) group->check_same("the resolved configuration (CONFIG and --set)", std::to_string(std::hash<std::string>{}(resolved)));
  const auto n = tasks.num_tasks();
  const auto last = stop_after > 0 ? std::min(stop_after, n) : n;
  if (group && group->rank() != 0) {
    // Rank 0's checkpoint, if it resumes (an empty payload: a fresh run): "completed\n" + npz bytes.
    std::int64_t first = 0;
    const auto payload = group->broadcast(std::string());
    if (!payload.empty()) {
      const auto nl = payload.find('\n');
      CheckpointData ck;
      ck.completed = std::stoll(payload.substr(0, nl));
      ck.tensors_file = "rank 0's checkpoint";
      const auto* p = reinterpret_cast<const std::uint8_t*>(payload.data()) + nl + 1;
      ck.tensors = io::parse_npz(p, payload.size() - nl - 1, ck.tensors_file.string());
      learner.resume(ck);
      first = ck.completed;
    }
    LfdRun lfd_run(c, nullptr, tasks, learner, progress, results);
    run_task_loop(lfd_run, first, last);
    return;
  }
  // On --resume the stored config.toml is re-resolved with this build's defaults (e.g. a run made
  // before the [diagnostics] table existed): equal to this configuration → the run continues.
  const auto config_path = (run / "config.toml").string();
  const auto reresolve = [&config_path](const std::string& stored) {
    return LfdConfig::from_config(Config::from_string(stored, config_path)).to_config().to_string();
  };
  const auto dir = RunDir::open(run, resolved, RunDirOptions().resume(resume).marker("checkpoint.json").reresolve(reresolve));
  LfdRun lfd_run(c, &dir, tasks, learner, progress, results);
  const std::int64_t first = dir.resumed() ? lfd_run.restore() : 0;
  if (group) {
    std::string payload;
    if (first > 0) {
      const auto ck = read_checkpoint(dir.path());
      const auto bytes = read_file_bytes(ck.tensors_file);
      payload = std::to_string(ck.completed) + "\n";
      payload.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    group->broadcast(payload);
  }
  run_task_loop(lfd_run, first, last);
}

}  // namespace stablelearn::lfd::detail
