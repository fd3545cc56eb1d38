// repro stability-gap: De Lange, van de Ven & Tuytelaars (ICLR 2023), continual evaluation and the
// stability gap, with experience replay (class-balanced memory, updated at task ends) on split
// Fashion-MNIST (class-incremental, one 10-way head), tracked every `eval_every` iterations on
// `subset` fixed test images per task (`cl run` with [eval] every; docs/continual.md).
//
// For every earlier task k and later task t (k < t), from the tracked accuracies a_k:
//   before_k,t = a_k at the last evaluation of task t − 1, min_k,t = min of a_k while task t trains,
//   end_k,t = a_k at the last evaluation of task t;
//   drop = before − min (what continual evaluation sees), recovery = end − min (the part of the drop
//   that evaluation at task ends does not see, since before − end is all it measures).
// Checks, fixed from the paper's claim (a substantial transient drop of earlier tasks' accuracy when
// a new task starts, followed by recovery), with thresholds at 5 and 2.5 standard errors of an
// accuracy on 500 images (√(0.25/500) ≈ 0.022), i.e. beyond evaluation noise:
//   median drop over the (k, t) pairs >= 0.1, median recovery >= 0.05.
// These thresholds were set with the stability-gap figure of scripts/cl_stability_gap.sh (the same
// setup, earlier sessions) already seen; docs/repro.md says so.
#include <filesystem>

#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

std::string cl_config(const ReproContext& ctx, std::int64_t k) {
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto hidden = ctx.int_option("hidden");
  return fmt::format(
      "[stream]\nkind = \"split-class\"\ntasks = {}\nseed = {}\ntrain_per_task = {}\ntest_per_task = {}\n"
      "[model]\nkind = \"mlp\"\nhidden = [{}, {}]\n"
      "[strategy]\nname = \"er\"\nmemory = {}\nbuffer = \"class_balanced\"\n"
      "[train]\nepochs = {}\nbatch_size = 128\nlr = {}\noptimizer = \"sgd\"\nmomentum = 0.9\nseed = {}\n"
      "[eval]\nevery = {}\nsubset = {}\n"
      "[output]\ntensorboard = false\nfigures = {}\nlog_every = 50\n",
      ctx.int_option("tasks"), seed, ctx.int_option("train_per_task"), ctx.int_option("test_per_task"), hidden, hidden,
      ctx.int_option("memory"), ctx.int_option("epochs"), ctx.option("lr"), seed, ctx.int_option("eval_every"),
      ctx.int_option("subset"), k == 0 ? "true" : "false");
}

/// The (k, t) pairs of a run's tracked accuracies (metrics.jsonl "track" rows).
json gap_pairs(const std::filesystem::path& metrics, std::int64_t tasks) {
  std::vector<std::vector<std::vector<double>>> by_task(static_cast<std::size_t>(tasks));  // task → rows → acc
  for (const auto& row : read_metrics_file(metrics)) {
    if (row.value("event", "") != "track") continue;
    by_task.at(row.at("task").get<std::size_t>()).push_back(row.at("acc").get<std::vector<double>>());
  }
  json pairs = json::array();
  for (std::int64_t t = 1; t < tasks; ++t) {
    const auto& prev = by_task[static_cast<std::size_t>(t - 1)];
    const auto& cur = by_task[static_cast<std::size_t>(t)];
    SL_CHECK(!prev.empty() && !cur.empty(), DataError, metrics.string(), ": no tracked accuracy in task ", prev.empty() ? t - 1 : t,
             " (eval_every larger than a task's iterations?)");
    for (std::int64_t k = 0; k < t; ++k) {
      const auto i = static_cast<std::size_t>(k);
      double lo = cur.front()[i];
      for (const auto& a : cur) lo = std::min(lo, a[i]);
      const double before = prev.back()[i], end = cur.back()[i];
      pairs.push_back({{"old_task", k}, {"new_task", t}, {"before", before}, {"min", lo}, {"end", end},
                       {"drop", before - lo}, {"recovery", end - lo}});
    }
  }
  return pairs;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto dir = ctx.run->path() / fmt::format("cl_seed{}", k);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // a seed interrupted earlier runs again from the start
  const auto tasks = ctx.int_option("tasks");
  ClExperiment e(Config::from_string(cl_config(ctx, k), "stability-gap"));
  const auto progress = seed_progress(ctx, k, "er");
  const auto result = e.run(dir, false, [&](const ClProgress& p) {
    progress(p.task * p.iterations + p.iteration, tasks * std::max<std::int64_t>(p.iterations, 1),
             fmt::format("task {}/{}", p.task + 1, p.tasks));
  });
  const auto pairs = gap_pairs(dir / "metrics.jsonl", tasks);
  std::vector<double> drops, recoveries, forgetting;
  for (const auto& p : pairs) {
    drops.push_back(p.at("drop").get<double>());
    recoveries.push_back(p.at("recovery").get<double>());
    forgetting.push_back(p.at("before").get<double>() - p.at("end").get<double>());
  }
  double final_acc = 0;
  for (double a : result.accuracy.back()) final_acc += a;
  final_acc /= static_cast<double>(result.accuracy.back().size());
  if (k == 0 && std::filesystem::exists(dir / "accuracy_curves.svg"))
    std::filesystem::copy_file(dir / "accuracy_curves.svg", ctx.run->path() / "accuracy_curves.svg",
                               std::filesystem::copy_options::overwrite_existing);
  return {{"median_drop", median(drops)},
          {"median_recovery", median(recoveries)},
          {"median_task_end_forgetting", median(forgetting)},
          {"final_average_accuracy", final_acc},
          {"pairs", pairs},
          {"run", dir.filename().string()}};
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {{"problem", fmt::format("split Fashion-MNIST, {} tasks of 2 classes, class-incremental (one 10-way head)",
                                       ctx.int_option("tasks"))},
               {"model", fmt::format("MLP 784-{0}-{0}-10", ctx.int_option("hidden"))},
               {"strategy", fmt::format("experience replay, class-balanced memory of {} images, updated at task ends",
                                        ctx.int_option("memory"))},
               {"training", fmt::format("SGD lr {} momentum 0.9, batch 128, {} epochs per task, {} training images per task",
                                        ctx.option("lr"), ctx.int_option("epochs"), ctx.int_option("train_per_task"))},
               {"evaluation", fmt::format("every {} iterations on {} fixed test images per task",
                                          ctx.int_option("eval_every"), ctx.int_option("subset"))},
               {"runs", "RUN/cl_seed<k>/ (a `cl run` directory each)"}};
  for (const char* key : {"median_drop", "median_recovery", "median_task_end_forgetting", "final_average_accuracy"})
    out.metrics[key] = seeds_json(per_seed(rows, key));
  out.checks = {make_check("substantial drop: median over (old, new task) of acc before - min while the new task trains",
                           median(per_seed(rows, "median_drop")), ">=", 0.1),
                make_check("recovery hidden from task-end evaluation: median of acc at the new task's end - that min",
                           median(per_seed(rows, "median_recovery")), ">=", 0.05)};
  return out;
}

}  // namespace

ReproEntry make_stability_gap_repro() {
  ReproEntry e;
  e.name = "stability-gap";
  e.paper = "Continual evaluation for lifelong learning: Identifying the stability gap (De Lange, van de Ven, Tuytelaars, ICLR 2023)";
  e.claim =
      "With per-iteration evaluation, continual learners such as experience replay lose a substantial part of earlier tasks' "
      "accuracy when a new task starts and then partly recover it, a gap that evaluation at task ends does not see.";
  e.options = {{"tasks", "tasks of split Fashion-MNIST (2..5)", 5, 3, true},
               {"train_per_task", "training images per task (12 000 = all)", 12000, 1000, true},
               {"test_per_task", "test images per task (2 000 = all)", 2000, 400, true},
               {"hidden", "width of the two hidden layers", 400, 100, true},
               {"epochs", "epochs per task", 2, 1, true},
               {"lr", "SGD learning rate (momentum 0.9)", 0.01, 0.01, false},
               {"memory", "replay memory (images, class-balanced)", 2000, 300, true},
               {"eval_every", "iterations between continual evaluations", 5, 1, true},
               {"subset", "fixed test images per task for continual evaluation", 500, 400, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
