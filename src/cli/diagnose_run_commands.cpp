// stablelearn diagnose trajectory RUN / diagnose cka RUN: trajectory and representation
// diagnostics of a `stablelearn cl run` directory (docs/diagnostics.md, "On a run's checkpoints").
//
// * trajectory RUN [--task J]: PCA of the run's parameter snapshots (RUN/snapshots/, written with
//   [output] snapshot_every = K), the RELEX rank-1 fit of the same series, per task when no task is
//   given. The toy form of `diagnose trajectory` (no RUN) lives in diagnose_commands.cpp; this file
//   only adds the RUN positional and --task to it and dispatches.
// * cka RUN --task J: CKA between the hidden representation of task J's test images under the
//   model after task J and under the model after every later task (representation drift), and
//   with --against RUN2 between the final models of two runs.
// * The run-loading helpers of run_helpers.h, shared with `diagnose shesha RUN`
//   (diagnose_shesha_command.cpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "run_helpers.h"
#include "stablelearn/core/error.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/cka.h"
#include "stablelearn/diagnostics/relex.h"
#include "stablelearn/diagnostics/trajectory.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::cli {

namespace dg = diagnostics;
namespace ex = experiments;
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Loading a run (run_helpers.h)

void check_run_dir(const std::string& run) {
  SL_CHECK(fs::is_directory(run), IoError, run, ": no such run directory");
  SL_CHECK(fs::exists(fs::path(run) / "config.toml"), IoError, (fs::path(run) / "config.toml").string(),
           ": missing (is this a `cl run` directory?)");
}

std::int64_t resolve_layer(const models::Classifier& model, std::int64_t layer, const std::string& run) {
  const auto n = model->hidden_layers();
  SL_CHECK(n > 0, UsageError, run,
           ": the model has no hidden layer (model.hidden = []); representation diagnostics compare hidden representations");
  if (layer < 0) return n - 1;
  SL_CHECK(layer < n, UsageError, "--layer ", layer, " is out of range: the ", model->options().kind, " of ", run, " has ", n,
           " hidden layers (0..", n - 1, ")");
  return layer;
}

torch::Tensor layer_activations(const models::Classifier& model, const std::vector<torch::Tensor>& weights,
                                const torch::Tensor& x, std::int64_t layer) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> w;
  for (const auto& t : weights) w.push_back(t.detach().to(torch::kFloat64));
  return model->hidden_activations(x, w)[static_cast<std::size_t>(layer)];
}

RunTaskImages load_run_task_images(const std::string& run, std::int64_t task, std::int64_t layer, std::int64_t samples) {
  check_run_dir(run);
  RunTaskImages out;
  out.view = experiments::load_cl_run(run);
  auto& view = out.view;
  view.model->to(torch::kFloat64);
  const auto tasks = static_cast<std::int64_t>(view.tasks.size());
  SL_CHECK(task >= 0 && task < tasks, UsageError, "--task ", task, " is out of range: the run has ", tasks, " tasks (0..",
           tasks - 1, ")");
  SL_CHECK(task < view.completed_tasks, UsageError, "--task ", task, ": the run has completed only ", view.completed_tasks,
           " tasks, so there is no model after task ", task);
  out.layer = resolve_layer(view.model, layer, run);
  const auto& test = view.tasks[static_cast<std::size_t>(task)].test;
  out.samples = std::min(samples, test.size());
  out.x = test.images.slice(0, 0, out.samples).to(torch::kFloat64);
  out.y = test.labels.slice(0, 0, out.samples);
  return out;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).cpu().contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// ---------------------------------------------------------------------------------------------
// trajectory RUN

struct TrajectoryRunArgs {
  std::string run;
  std::int64_t task = -1;  ///< −1 = every snapshot
};

/// Summary of a trajectory PCA (of a [T, D] float64 series).
json pca_json(const dg::TrajectoryPca& pca, std::int64_t components) {
  const auto ratio = to_vector(pca.explained_variance_ratio);
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(components), ratio.size());
  const std::vector<double> top(ratio.begin(), ratio.begin() + static_cast<std::ptrdiff_t>(k));
  return {{"explained_variance_ratio", top},
          {"top_cumulative", std::accumulate(top.begin(), top.end(), 0.0)},
          {"numerical_rank", ratio.size()},
          {"rank_90", pca.rank_at_threshold},
          {"effective_rank", pca.effective_rank}};
}

/// RELEX rank-1 fit of a [T, D] series around its first row (T ≥ 3), and a hold-out check: the fit
/// of rows 0..T−2 extrapolated one step against the last row (T ≥ 4).
json relex_json(const torch::Tensor& m) {
  const auto t = m.size(0);
  if (t < 3) return nullptr;
  const auto base = m[0], last = m[t - 1];
  const auto fit = dg::relex_fit(base, m.slice(0, 1, t), dg::RelexOptions().rank(1));
  const auto c = fit.coefficients.select(1, 0);  // [T − 1]
  const auto w = fit.window;
  const auto tau = torch::arange(w, c.options());
  const auto cw = c.slice(0, c.size(0) - w);
  const auto resid = cw - (fit.slope[0] * tau + fit.intercept[0]);
  const double ss_tot = (cw - cw.mean()).pow(2).sum().item<double>();
  const double r2 = ss_tot > 0 ? 1.0 - resid.pow(2).sum().item<double>() / ss_tot : std::nan("");
  const double disp = (last - base).norm().item<double>();
  json out{{"rank", 1},
           {"base_row", 0},
           {"history", t - 1},
           {"window", w},
           {"explained_variance", fit.explained_variance},
           {"line_fit_r2", finite_or_null(r2)},
           {"fitted_last_relative_error", disp > 0 ? json((fit.predict(0) - last).norm().item<double>() / disp) : json(nullptr)},
           {"reconstruction_relative_error",
            disp > 0 ? json((fit.reconstruct(t - 2) - last).norm().item<double>() / disp) : json(nullptr)}};
  if (t >= 4) {
    // Fit rows 1..T−2 around row 0, predict one step ahead, compare with row T−1. The error is
    // relative to the last step ‖θ_T − θ_{T−1}‖ (so "no change" scores 1); the straight line through
    // the last two rows is the naive baseline.
    const auto h = dg::relex_fit(base, m.slice(0, 1, t - 1), dg::RelexOptions().rank(1));
    const double step = (last - m[t - 2]).norm().item<double>();
    const auto linear = 2 * m[t - 2] - m[t - 3];
    out["holdout"] = {{"history", t - 2},
                      {"relative_error", step > 0 ? json((h.predict(1) - last).norm().item<double>() / step) : json(nullptr)},
                      {"linear_baseline_relative_error",
                       step > 0 ? json((linear - last).norm().item<double>() / step) : json(nullptr)}};
  }
  return out;
}

int run_trajectory(const TrajectoryRunArgs& a, std::int64_t components) {
  const auto t0 = std::chrono::steady_clock::now();
  check_run_dir(a.run);
  const auto all = ex::list_cl_snapshots(a.run);
  SL_CHECK(!all.empty(), UsageError, a.run,
           ": the run has no parameter snapshots (RUN/snapshots/index.json); set [output] snapshot_every = K in its "
           "configuration and train it again");
  std::int64_t max_task = 0;
  for (const auto& s : all) max_task = std::max(max_task, s.task);
  // The series: every snapshot, or task J's with the weights it started from (the task-end
  // snapshot of task J − 1; for task 0 the snapshot at iteration 0 is already task 0's).
  std::vector<ex::ClSnapshot> series;
  if (a.task < 0) {
    series = all;
  } else {
    SL_CHECK(a.task <= max_task, UsageError, "--task ", a.task, " is out of range: the snapshots cover tasks 0..", max_task);
    for (const auto& s : all)
      if (s.task == a.task - 1 && s.task_end) series.push_back(s);
    for (const auto& s : all)
      if (s.task == a.task) series.push_back(s);
  }
  SL_CHECK(series.size() >= 2, UsageError, a.run, ": ", series.size(),
           " snapshot(s) in the series; trajectory PCA needs at least 2 (lower [output] snapshot_every)");
  std::vector<torch::Tensor> rows;
  std::vector<std::int64_t> iterations;
  for (const auto& s : series) {
    rows.push_back(ex::load_cl_snapshot(a.run, s).to(torch::kFloat64));
    iterations.push_back(s.iteration);
    SL_CHECK(rows.back().numel() == rows.front().numel(), DataError, a.run, ": snapshot ", s.file, " has ", rows.back().numel(),
             " parameters, the first has ", rows.front().numel());
  }
  const auto m = torch::stack(rows);
  auto out = json{{"problem", "cl run parameter snapshots"},
                  {"run", a.run},
                  {"task", a.task >= 0 ? json(a.task) : json(nullptr)},
                  {"snapshots", series.size()},
                  {"parameters", m.size(1)},
                  {"first_iteration", iterations.front()},
                  {"last_iteration", iterations.back()},
                  {"iterations", iterations}};
  const auto pca = dg::trajectory_pca(m);
  out.update(pca_json(pca, components));
  // The path of the snapshots in the plane of the top two principal directions (coordinates of the
  // centred snapshots, one pair per snapshot, in snapshot order), from the same PCA.
  if (pca.projections.size(1) >= 2)
    out["pc_path"] = {{"pc1", to_vector(pca.projections.select(1, 0))}, {"pc2", to_vector(pca.projections.select(1, 1))}};
  out["alignment_to_final"] = to_vector(dg::alignment_to_final(m));
  out["relex"] = relex_json(m);
  if (a.task < 0) {
    json per_task = json::array();
    for (std::int64_t j = 0; j <= max_task; ++j) {
      std::vector<torch::Tensor> sub;
      for (std::size_t i = 0; i < series.size(); ++i)
        if ((series[i].task == j - 1 && series[i].task_end) || series[i].task == j) sub.push_back(rows[i]);
      if (sub.size() < 2) continue;
      auto row = json{{"task", j}, {"snapshots", sub.size()}};
      row.update(pca_json(dg::trajectory_pca(torch::stack(sub)), std::min<std::int64_t>(components, 3)));
      per_task.push_back(row);
    }
    out["per_task"] = per_task;
  }
  out["seconds"] = seconds_since(t0);
  std::cout << out.dump(2) << "\n";
  return 0;
}

// ---------------------------------------------------------------------------------------------
// cka RUN

struct CkaArgs {
  std::string run, against;
  std::int64_t task = 0, layer = -1, samples = 1000;
  std::string kernel = "linear";
  bool debiased = false;
  double threshold = 1.0;
};

/// Accuracy of weights on (x, y) of task `task` (logits restricted to its classes when task-incremental).
double accuracy(const ex::ClRunView& v, const std::vector<torch::Tensor>& weights, const torch::Tensor& x, const torch::Tensor& y,
                std::int64_t task) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> w;
  for (const auto& t : weights) w.push_back(t.detach().to(torch::kFloat64));
  auto z = v.model->forward(x, w);
  if (v.task_incremental) {
    const auto& classes = v.tasks[static_cast<std::size_t>(task)].classes;
    const auto cols = torch::tensor(classes, torch::kInt64);
    const auto pred = cols.index_select(0, z.index_select(1, cols).argmax(1));
    return pred.eq(y).to(torch::kFloat64).mean().item<double>();
  }
  return z.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

int run_cka(const CkaArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto in = load_run_task_images(a.run, a.task, a.layer, a.samples);
  const auto& view = in.view;
  const auto tasks = static_cast<std::int64_t>(view.tasks.size());
  const auto layer = in.layer, n = in.samples;
  SL_CHECK(n >= (a.debiased ? 4 : 2), DataError, "task ", a.task, " has ", n, " test images; CKA needs at least ",
           a.debiased ? 4 : 2, a.debiased ? " (debiased)" : "");
  const auto &x = in.x, &y = in.y;
  auto similarity = [&](const torch::Tensor& p, const torch::Tensor& q) {
    return a.kernel == "rbf" ? dg::rbf_cka(p, q, a.threshold, a.debiased) : dg::linear_cka(p, q, a.debiased);
  };

  const auto ref_w = view.task_weights(a.task);
  const auto ref = layer_activations(view.model, ref_w, x, layer);
  json pairs = json::array();
  std::vector<std::int64_t> after;
  std::vector<json> values;
  for (std::int64_t i = a.task; i < view.completed_tasks; ++i) {
    const auto w = i == a.task ? ref_w : view.task_weights(i);
    const double v = similarity(ref, i == a.task ? ref : layer_activations(view.model, w, x, layer));
    after.push_back(i);
    values.push_back(finite_or_null(v));
    pairs.push_back({{"after_task", i}, {"cka", finite_or_null(v)}, {"accuracy", accuracy(view, w, x, y, a.task)}});
  }
  json out{{"problem", "cl run representation drift"},
           {"run", a.run},
           {"task", a.task},
           {"tasks", tasks},
           {"completed_tasks", view.completed_tasks},
           {"task_classes", view.tasks[static_cast<std::size_t>(a.task)].classes},
           {"model", view.model->options().kind},
           {"layer", layer},
           {"hidden_layers", view.model->hidden_layers()},
           {"features", ref.size(1)},
           {"samples", n},
           {"kernel", a.kernel},
           {"debiased", a.debiased},
           {"after_task", after},
           {"cka", values},
           {"drift", pairs}};
  if (a.kernel == "rbf") out["threshold"] = a.threshold;

  if (!a.against.empty()) {
    check_run_dir(a.against);
    auto other = ex::load_cl_run(a.against);
    other.model->to(torch::kFloat64);
    const auto& in = view.model->options().input;
    SL_CHECK(other.model->options().input == in, UsageError, a.against, ": its model takes other inputs than ", a.run, "'s");
    const auto other_layer = resolve_layer(other.model, a.layer, a.against);
    const auto mine = layer_activations(view.model, view.model->weights(), x, layer);
    const auto theirs = layer_activations(other.model, other.model->weights(), x, other_layer);
    out["against"] = {{"run", a.against},
                      {"completed_tasks", other.completed_tasks},
                      {"model", other.model->options().kind},
                      {"layer", other_layer},
                      {"features", theirs.size(1)},
                      {"run_completed_tasks", view.completed_tasks},
                      {"cka", finite_or_null(similarity(mine, theirs))}};
  }
  out["seconds"] = seconds_since(t0);
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

std::function<int()> with_run_trajectory(CLI::App* trajectory, std::function<std::int64_t()> components,
                                         std::function<int()> toy) {
  auto a = std::make_shared<TrajectoryRunArgs>();
  trajectory->add_option("run", a->run,
                         "A `stablelearn cl run` directory with parameter snapshots ([output] snapshot_every = K): PCA "
                         "and RELEX fit of its snapshot series instead of the toy SGD run");
  trajectory->add_option("--task", a->task, "RUN: only task J's snapshots (with the weights it started from); default all")
      ->check(CLI::NonNegativeNumber);
  return [trajectory, a, components = std::move(components), toy = std::move(toy)]() {
    if (a->run.empty()) {
      SL_CHECK(a->task < 0, UsageError, "--task needs RUN (a `cl run` directory with snapshots)");
      return toy();
    }
    // Only RUN, --task and --components apply to a run; the rest configure the toy SGD run.
    static const std::set<std::string> run_options{"run", "--task", "--components", "--help"};
    for (const auto* o : trajectory->get_options())
      SL_CHECK(o->count() == 0 || run_options.count(o->get_name()), UsageError, o->get_name(),
               " configures the toy trajectory and cannot be combined with RUN");
    return run_trajectory(*a, components());
  };
}

void register_diagnose_run_commands(CLI::App& diag, CommandRegistry& reg) {
  auto a = std::make_shared<CkaArgs>();
  auto* cka = diag.add_subcommand(
      "cka", "Representation drift of a `cl run`: CKA of task J's hidden representation after task J vs after every later task");
  cka->add_option("run", a->run, "A `stablelearn cl run` directory")->required();
  cka->add_option("--task", a->task, "The task J whose test images are represented (0-based)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cka->add_option("--layer", a->layer,
                  "Hidden layer L (0-based; mlp: the hidden Linear+ReLU layers, cnn: conv block 1, conv block 2, fc); "
                  "default the last hidden layer")
      ->check(CLI::NonNegativeNumber);
  cka->add_option("--samples", a->samples, "Test images N of task J (the first N, capped at the task's size)")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  cka->add_option("--kernel", a->kernel, "linear or rbf (RBF with the median heuristic)")
      ->capture_default_str()
      ->check(CLI::IsMember({"linear", "rbf"}));
  cka->add_flag("--debiased", a->debiased, "Debiased CKA (unbiased HSIC; near 0 for unrelated representations)");
  cka->add_option("--threshold", a->threshold, "rbf: sigma^2 = threshold^2 x median squared distance")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cka->add_option("--against", a->against,
                  "A second `cl run` directory: also the CKA between the two runs' final models on the same images");
  cka->footer(
      "Examples:\n  stablelearn diagnose cka runs/split_ewc --task 0\n"
      "  stablelearn diagnose cka runs/split_ewc --task 0 --layer 0 --kernel rbf --debiased --against runs/split_finetune");
  reg.add(cka, [a]() { return run_cka(*a); });
}

}  // namespace stablelearn::cli
