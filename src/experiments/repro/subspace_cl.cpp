// repro coso and repro sculpting-subspaces: the two gradient-subspace strategies of the engine in
// the setting their papers assume, a pre-trained model fine-tuned on a stream of tasks, against
// fine-tuning, EWC and GPM (issue 24 item 6). One runner, two entries:
//   coso                 Cheng, Wan, Wu, Hou, Zhang, "Continuous Subspace Optimization for Continual
//                        Learning" (NeurIPS 2025; shared/specs/papers-19-35.md §26), strategy coso;
//   sculpting-subspaces  Nayak et al., "Sculpting Subspaces: Constrained Full Fine-Tuning in LLMs for
//                        Continual Learning" (arXiv 2504.07097, ICLR 2026 as OSFT;
//                        shared/specs/papers-01-18.md §14), strategy adaptive_svd with
//                        `pretrained = true` (task 0 already keeps the backbone's top directions).
//
// Per seed s (= --seed + k): `cl pretrain` trains the MLP on `pretrain_samples` Fashion-MNIST
// training images the stream never sees (those after its first `train_per_task`), unrotated, with
// seed s; then every method runs `cl run` from that backbone, fine-tuning the whole network
// (freeze = false, no adapter: every layer is linear, so every layer is one the subspace methods
// constrain), on a rotated Fashion-MNIST stream (task t rotated by t · rotation_step degrees,
// domain-incremental: one 10-way head, no task identity), stream and training seed s. Methods:
//   finetune, ewc (λ = ewc_lambda), gpm (threshold 0.97, 300 samples): SGD lr `lr`, momentum 0.9
//   (the shipped configs/cl settings); the subspace method: adaptive_svd (rank_step
//   `svd_rank_step`, cap 0.9, pretrained) at the same SGD, or coso (proj_rank 15, rank 100 capped at
//   width/2, threshold 0.98) with its own projected Adam at `coso_lr` (configs/cl/*_coso.toml).
// Per method and seed, from the accuracy matrix R (R[t][j]: task j's test accuracy after task t):
//   ACC = mean_j R[T−1][j]; forgetting = mean over i < T−1 of (max_{i ≤ t ≤ T−2} R[t][i] − R[T−1][i])
//   (best-so-far reference, Chaudhry et al.); BWT = mean over i < T−1 of (R[T−1][i] − R[i][i]);
//   plasticity = mean_i R[i][i].
//
// Checks, fixed from the papers' claims before any run (M = the entry's method; means over seeds):
//   precondition: fine-tuning forgets      mean forgetting(finetune) ≥ 0.05
//   forgetting well below fine-tuning's    mean forgetting(M) / mean forgetting(finetune) ≤ 0.5
//   accuracy at or above GPM's             mean ACC(M) − mean ACC(gpm) ≥ −0.01 (one point: two binomial
//                                          standard errors of an accuracy over the 10 000 test images
//                                          of the default stream, so "at" GPM's within evaluation noise)
#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/continual/metrics.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

struct SubspaceEntry {
  std::string name;    ///< the repro entry
  std::string method;  ///< the strategy under test
};

std::vector<std::string> methods(const SubspaceEntry& e) { return {"finetune", "ewc", "gpm", e.method}; }

std::string strategy_table(const ReproContext& ctx, const std::string& m) {
  if (m == "ewc") return fmt::format("name = \"ewc\"\nlambda = {}\nmode = \"separate\"\n", ctx.option("ewc_lambda"));
  if (m == "gpm") return "name = \"gpm\"\nthreshold = 0.97\nsamples = 300\n";
  if (m == "adaptive_svd")
    return fmt::format("name = \"adaptive_svd\"\nrank_step = {}\nmax_fraction = 0.9\npretrained = true\n", ctx.option("svd_rank_step"));
  if (m == "coso") return "name = \"coso\"\nproj_rank = 15\nrank = 100\nthreshold = 0.98\n";
  return fmt::format("name = \"{}\"\n", m);
}

std::string cl_config(const ReproContext& ctx, std::int64_t seed, const std::string& m, const std::filesystem::path& backbone) {
  const auto hidden = ctx.int_option("hidden");
  const double lr = m == "coso" ? ctx.option("coso_lr") : ctx.option("lr");
  return fmt::format(
      "[stream]\nkind = \"rotated\"\ntasks = {}\nrotation_step = {}\nseed = {}\ntrain_per_task = {}\ntest_per_task = {}\n"
      "[model]\nkind = \"mlp\"\nhidden = [{}, {}]\n"
      "[strategy]\n{}"
      "[train]\nepochs = {}\nbatch_size = 128\nlr = {}\noptimizer = \"sgd\"\nmomentum = 0.9\nseed = {}\n"
      "[output]\ntensorboard = false\nfigures = false\nlog_every = 1000\n"
      "[pretrain]\nepochs = {}\nsamples = {}\nseed = {}\n"
      "[backbone]\nfile = \"{}\"\nfreeze = false\n",
      ctx.int_option("tasks"), ctx.option("rotation_step"), seed, ctx.int_option("train_per_task"), ctx.int_option("test_per_task"),
      hidden, hidden, strategy_table(ctx, m), ctx.int_option("epochs"), lr, seed, ctx.int_option("pretrain_epochs"),
      ctx.int_option("pretrain_samples"), seed, backbone.generic_string());
}

/// ACC, forgetting (best so far), BWT and plasticity of an accuracy matrix (rows = tasks done).
json matrix_metrics(const std::vector<std::vector<double>>& r) {
  SL_CHECK(r.size() >= 2, InternalError, "subspace repro: fewer than 2 tasks");
  const auto m = continual::matrix_metrics(r);
  return {{"acc", m.acc}, {"forgetting", m.forgetting_max}, {"bwt", m.bwt}, {"plasticity", m.plasticity}};
}

json run_seed(const SubspaceEntry& entry, const ReproContext& ctx, std::int64_t k) {
  const auto seed = static_cast<std::int64_t>(ctx.seed) + k;
  const auto dir = ctx.run->path() / fmt::format("seed{}", k);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // a seed interrupted earlier runs again from the start
  std::filesystem::create_directories(dir);
  const auto backbone = dir / "backbone.npz";
  const auto ms = methods(entry);
  const auto steps = static_cast<std::int64_t>(ms.size()) + 1;
  const auto progress = seed_progress(ctx, k, entry.name);
  progress(0, steps, "pretrain");
  const auto pre = ClExperiment(Config::from_string(cl_config(ctx, seed, "finetune", backbone), entry.name)).pretrain(backbone);
  json row = {{"backbone",
               {{"source", pre.source}, {"train_samples", pre.train_samples}, {"train_accuracy", pre.train_accuracy},
                {"test_accuracy", pre.test_accuracy}, {"seconds", pre.seconds}}}};
  json methods_json = json::object();
  for (std::size_t i = 0; i < ms.size(); ++i) {
    const auto& m = ms[i];
    progress(static_cast<std::int64_t>(i) + 1, steps, m);
    const auto run = dir / m;
    std::filesystem::remove_all(run, ec);
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ClExperiment(Config::from_string(cl_config(ctx, seed, m, backbone), entry.name)).run(run, false);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto mm = matrix_metrics(r.accuracy);
    mm["accuracy"] = r.accuracy;
    mm["init_accuracy"] = r.init_accuracy;
    mm["seconds"] = secs;
    methods_json[m] = mm;
  }
  progress(steps, steps, "done");
  row["methods"] = methods_json;
  return row;
}

void write_figure(const SubspaceEntry& entry, const ReproContext& ctx, const std::vector<json>& rows) {
  const char* colours[] = {"#7f7f7f", "#1f77b4", "#2ca02c", "#d62728"};
  const auto ms = methods(entry);
  const auto T = static_cast<std::size_t>(ctx.int_option("tasks"));
  report::SvgPlot plot(720, 440);
  std::vector<std::vector<std::pair<double, double>>> curves;
  double lo = 1;
  for (const auto& m : ms) {
    std::vector<std::pair<double, double>> pts;
    for (std::size_t t = 0; t < T; ++t) {
      std::vector<double> v;
      for (const auto& r : rows) v.push_back(r.at("methods").at(m).at("accuracy").at(t).at(0).get<double>());
      pts.emplace_back(static_cast<double>(t), mean(v));
      lo = std::min(lo, mean(v));
    }
    curves.push_back(pts);
  }
  plot.set_range(0, static_cast<double>(T - 1), std::max(0.0, lo - 0.05), 1.0);
  plot.title(fmt::format("rotated Fashion-MNIST from a pre-trained MLP ({} tasks, {} degrees apart): accuracy on task 0 (unrotated)",
                         T, ctx.option("rotation_step")));
  plot.labels("after task", "accuracy on task 0 (mean over seeds)");
  for (std::size_t i = 0; i < curves.size(); ++i) {
    plot.polyline(curves[i], colours[i], 2.0);
    plot.legend(ms[i], colours[i]);
  }
  std::string file = entry.name;
  std::replace(file.begin(), file.end(), '-', '_');
  ctx.run->write_text(file + "_task0_accuracy.svg", plot.str());
}

std::vector<double> per_method(const std::vector<json>& rows, const std::string& m, const std::string& key) {
  return per_seed_at(rows, "/methods/" + m + "/" + key);
}

ReproOutcome summarise(const SubspaceEntry& entry, const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const auto hidden = ctx.int_option("hidden");
  out.setup = {
      {"stream", fmt::format("rotated Fashion-MNIST, {} tasks, task t rotated by t x {} degrees (task 0 unrotated), {} training and {} "
                             "test images per task, one 10-way head (domain-incremental, no task identity)",
                             ctx.int_option("tasks"), ctx.option("rotation_step"), ctx.int_option("train_per_task"),
                             ctx.int_option("test_per_task"))},
      {"model", fmt::format("MLP 784-{0}-{0}-10", hidden)},
      {"backbone", fmt::format("`cl pretrain` per seed: {} unrotated training images the stream never sees, {} epochs, SGD lr 0.05 "
                               "momentum 0.9; then fine-tuned as a whole (freeze = false, no adapter)",
                               ctx.int_option("pretrain_samples"), ctx.int_option("pretrain_epochs"))},
      {"training", fmt::format("{} epoch(s) per task, batch 128; finetune, ewc (lambda {}), gpm (threshold 0.97, 300 samples){}: SGD lr "
                               "{} momentum 0.9{}",
                               ctx.int_option("epochs"), ctx.option("ewc_lambda"),
                               entry.method == "adaptive_svd"
                                   ? fmt::format(", adaptive_svd (rank_step {}, cap 0.9, pretrained: task 0 keeps the top share)",
                                                 ctx.option("svd_rank_step"))
                                   : std::string(),
                               ctx.option("lr"),
                               entry.method == "coso"
                                   ? fmt::format("; coso (proj_rank 15, rank 100 capped at {}, threshold 0.98): its own projected Adam, lr {}",
                                                 std::max<std::int64_t>(1, std::min<std::int64_t>(100, hidden / 2)), ctx.option("coso_lr"))
                                   : std::string())},
      {"metrics", "ACC = mean final accuracy over tasks; forgetting = mean over tasks but the last of (best accuracy from learning "
                  "it to the second-last task - final); BWT = mean of (final - just learned); plasticity = mean accuracy just after "
                  "learning each task"},
      {"runs", "RUN/seed<k>/backbone.npz and RUN/seed<k>/<method>/ (a `cl run` directory each)"}};
  for (const auto& m : methods(entry))
    for (const char* key : {"acc", "forgetting", "bwt", "plasticity"}) {
      const auto v = per_method(rows, m, key);
      put_seed_stats(out, std::string(key) + "_" + m, v);
    }
  out.metrics["backbone_test_accuracy"] = seeds_json(per_seed_at(rows, "/backbone/test_accuracy"));
  const double f_ft = mean(per_method(rows, "finetune", "forgetting")), f_m = mean(per_method(rows, entry.method, "forgetting"));
  out.checks = {
      make_check("precondition, fine-tuning forgets: mean forgetting of finetune", f_ft, ">=", 0.05),
      make_check(fmt::format("forgetting well below fine-tuning's: mean forgetting of {} / mean forgetting of finetune", entry.method),
                 f_m / f_ft, "<=", 0.5),
      make_check(fmt::format("accuracy at or above GPM's: mean ACC of {} - mean ACC of gpm", entry.method),
                 mean(per_method(rows, entry.method, "acc")) - mean(per_method(rows, "gpm", "acc")), ">=", -0.01)};
  if (ctx.run) write_figure(entry, ctx, rows);
  return out;
}

std::vector<ReproOption> options() {
  return {{"tasks", "tasks of the rotated stream", 5, 3, true},
          {"rotation_step", "degrees between consecutive tasks", 45, 45, false},
          {"train_per_task", "training images per task", 10000, 1000, true},
          {"test_per_task", "test images per task", 2000, 500, true},
          {"hidden", "width of the two hidden layers", 256, 64, true},
          {"epochs", "epochs per task", 1, 1, true},
          {"lr", "SGD learning rate (momentum 0.9) of finetune, ewc, gpm, adaptive_svd", 0.01, 0.01, false},
          {"coso_lr", "learning rate of CoSO's projected Adam", 5e-4, 5e-4, false},
          {"ewc_lambda", "EWC penalty weight", 100, 100, false},
          {"svd_rank_step", "adaptive SVD: share of each weight's rank frozen per task", 0.2, 0.2, false},
          {"pretrain_samples", "pre-training images (unrotated, outside the stream)", 20000, 5000, true},
          {"pretrain_epochs", "pre-training epochs", 2, 1, true}};
}

ReproEntry make_entry(const SubspaceEntry& s) {
  ReproEntry e;
  e.name = s.name;
  e.options = options();
  e.run_seed = [s](const ReproContext& ctx, std::int64_t k) { return run_seed(s, ctx, k); };
  e.summarise = [s](const ReproContext& ctx, const std::vector<json>& rows) { return summarise(s, ctx, rows); };
  return e;
}

}  // namespace

ReproEntry make_coso_repro() {
  auto e = make_entry({"coso", "coso"});
  e.paper = "Continuous Subspace Optimization for Continual Learning (Cheng, Wan, Wu, Hou, Zhang; NeurIPS 2025, arXiv 2505.11816)";
  e.claim = "Fine-tuning a pre-trained model with Adam confined to a subspace of the gradient orthogonal to the earlier tasks' "
            "(Frequent-Directions) gradient subspaces forgets far less than fine-tuning and reaches a final accuracy at or above "
            "the gradient-projection baselines such as GPM.";
  return e;
}

ReproEntry make_sculpting_subspaces_repro() {
  auto e = make_entry({"sculpting-subspaces", "adaptive_svd"});
  e.paper = "Sculpting Subspaces: Constrained Full Fine-Tuning in LLMs for Continual Learning (Nayak et al.; arXiv 2504.07097, "
            "ICLR 2026 as Orthogonal Subspace Fine-Tuning)";
  e.claim = "Fully fine-tuning a pre-trained model only in the low singular directions of each weight, freezing a growing share of "
            "the top directions task by task, forgets far less than fine-tuning and reaches a final accuracy at or above the "
            "subspace baselines such as GPM.";
  return e;
}

}  // namespace stablelearn::experiments::repro
