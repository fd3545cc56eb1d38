// stablelearn diagnose grokalign RUN --task J: the GrokAlign Jacobian diagnostics (Walker et al.,
// arXiv 2506.12284; diagnostics/grokalign.h, docs/diagnostics.md) of a `stablelearn cl run` on the
// first N test images of task J, with the model after task I (default: the last completed task):
// the mean centroid alignment cos(J(x)ᵀ1, x), the mean Jacobian PC1 σ₁²/Σσ², and the Jacobian norm,
// both as the regulariser's random-projection estimate r_i (what `[train] grokalign` penalises) and
// exactly (‖J(x_i)‖_F from the full Jacobian). J is the Jacobian of the logits with respect to the
// input: all classes, or in task-incremental runs task J's classes (ClRunView::head_logits). The
// model is converted to float64. Prints one JSON object on stdout.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;
using nlohmann::json;

struct GrokAlignArgs {
  std::string run;
  std::int64_t task = 0, after = -1, samples = 500, projections = 1;
  std::uint64_t seed = 0;
};

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

/// mean, std (population), min, max of a [n] tensor's finite entries (null when none).
json stats(const torch::Tensor& t) {
  const auto v = t.detach().to(torch::kFloat64).cpu().flatten();
  const auto f = v.masked_select(torch::isfinite(v));
  if (f.numel() == 0) return {{"mean", nullptr}, {"std", nullptr}, {"min", nullptr}, {"max", nullptr}, {"finite", 0}};
  return {{"mean", f.mean().item<double>()},
          {"std", f.std(/*unbiased=*/false).item<double>()},
          {"min", f.min().item<double>()},
          {"max", f.max().item<double>()},
          {"finite", f.numel()}};
}

int run_grokalign(const GrokAlignArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  SL_CHECK(fs::is_directory(a.run), IoError, a.run, ": no such run directory");
  auto view = experiments::load_cl_run(a.run);
  view.model->to(torch::kFloat64);
  const auto tasks = static_cast<std::int64_t>(view.tasks.size());
  SL_CHECK(a.task >= 0 && a.task < tasks, UsageError, "--task ", a.task, " is out of range: the run has ", tasks,
           " tasks (0..", tasks - 1, ")");
  const auto after = a.after < 0 ? view.completed_tasks - 1 : a.after;
  SL_CHECK(after < view.completed_tasks, UsageError, "--after ", after, " is out of range: the run has completed ",
           view.completed_tasks, " tasks (0..", view.completed_tasks - 1, ")");
  const auto& test = view.tasks[static_cast<std::size_t>(a.task)].test;
  const auto n = std::min(a.samples, test.size());
  SL_CHECK(n >= 1, DataError, "task ", a.task, " has no test images");
  const auto x = test.images.slice(0, 0, n).to(torch::kFloat64);

  std::vector<torch::Tensor> weights;
  for (const auto& w : view.task_weights(after)) weights.push_back(w.detach().to(torch::kFloat64));
  const dg::OutputFn f = [&](const torch::Tensor& xb) { return view.head_logits(xb, a.task, weights); };

  const auto ca = dg::centroid_alignment(f, x);
  const auto pc1 = dg::jacobian_pc1(f, x);
  const auto jac = dg::input_jacobians(f, x);  // [n, K, d]
  const auto outputs = jac.size(1);
  const auto exact = jac.flatten(1).norm(2, {1});
  auto gen = at::detail::createCPUGenerator(a.seed);
  const auto v = dg::grokalign_projections(a.projections, n, outputs, gen, torch::TensorOptions().dtype(torch::kFloat64));
  const auto estimate = dg::jacobian_norm_estimates(f, x, v, /*create_graph=*/false);

  json out{{"problem", "cl run GrokAlign Jacobian diagnostics"},
           {"run", a.run},
           {"task", a.task},
           {"after_task", after},
           {"completed_tasks", view.completed_tasks},
           {"model", view.model->options().kind},
           {"outputs", outputs},
           {"head", view.task_incremental ? "the logits of task J's classes (task-incremental)" : "all logits"},
           {"inputs", jac.size(2)},
           {"samples", n},
           {"trained_grokalign", view.grokalign},
           {"centroid_alignment",
            {{"mean", finite_or_null(ca.mean_alignment)},
             {"alignments", stats(ca.alignments)},
             {"inner_product_mean", finite_or_null(ca.inner_products.mean().item<double>())},
             {"centroid_norm_mean", finite_or_null(ca.norms.mean().item<double>())}}},
           {"jacobian_pc1", {{"mean", finite_or_null(torch::nanmean(pc1).item<double>())}, {"values", stats(pc1)}}},
           {"jacobian_norm",
            {{"estimate_mean", finite_or_null(estimate.mean().item<double>())},
             {"exact_mean", finite_or_null(exact.mean().item<double>())},
             {"estimate", "r_i = sqrt(max((K/P) sum_p |J(x_i)^T v_p|^2, 1e-8)), v_p uniform on the unit sphere (GrokAlign R)"},
             {"exact", "|J(x_i)|_F from the full Jacobian (K vector-Jacobian products)"},
             {"projections", a.projections},
             {"seed", a.seed}}}};
  out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void register_diagnose_grokalign_command(CLI::App& diag, CommandRegistry& reg) {
  auto a = std::make_shared<GrokAlignArgs>();
  auto* cmd = diag.add_subcommand(
      "grokalign",
      "GrokAlign Jacobian diagnostics of a `cl run` on task J's test images: centroid alignment cos(J^T 1, x), Jacobian "
      "PC1 and the Jacobian norm (the regulariser's estimate and exact)");
  cmd->add_option("run", a->run, "A `stablelearn cl run` directory")->required();
  cmd->add_option("--task", a->task, "The task J whose test images are used (0-based)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--after", a->after, "The model after task I (0-based, I < completed tasks); default the last completed task")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", a->samples, "Test images N of task J (the first N, capped at the task's size)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--projections", a->projections, "Random projections P per image of the Jacobian-norm estimate")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--seed", a->seed, "Seed of the random projections")->capture_default_str();
  cmd->footer(
      "Examples:\n  stablelearn diagnose grokalign runs/split_ewc --task 0\n"
      "  stablelearn diagnose grokalign runs/split_ewc --task 0 --after 2 --samples 200 --projections 8");
  reg.add(cmd, [a]() { return run_grokalign(*a); });
}

}  // namespace stablelearn::cli
