// stablelearn diagnose shesha RUN --task J: Shesha geometric stability (Raju, arXiv 2601.09173;
// diagnostics/rdm.h, docs/diagnostics.md) of the hidden representation of task J's test images in
// a `stablelearn cl run`: the feature-split stability of the representation and its weight-noise
// curve, the Spearman correlation of the clean and the noisy cosine RDMs when every weight tensor
// of the model gets Gaussian noise of relative scale sigma. The run is loaded by the helpers of
// run_helpers.h (shared with `diagnose cka RUN`). Prints one JSON object on stdout.
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "run_helpers.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/rdm.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;
using nlohmann::json;

struct SheshaArgs {
  std::string run;
  std::int64_t task = 0, after = -1, layer = -1, samples = 800;
  std::vector<double> sigmas{0.01, 0.05, 0.1};
  std::int64_t draws = 10, splits = 30;
  std::uint64_t seed = 320;
};

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

int run_shesha(const SheshaArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const double s : a.sigmas)
    SL_CHECK(std::isfinite(s) && s >= 0.0, UsageError, "--sigmas: every noise scale must be finite and >= 0, got ", s);
  auto in = load_run_task_images(a.run, a.task, a.layer, a.samples);
  const auto& view = in.view;
  const auto after = a.after < 0 ? a.task : a.after;
  SL_CHECK(after < view.completed_tasks, UsageError, "--after ", after, " is out of range: the run has completed ",
           view.completed_tasks, " tasks (0..", view.completed_tasks - 1, ")");
  SL_CHECK(in.samples >= 4, DataError, "task ", a.task, " has ", in.samples, " test images; Shesha needs at least 4");

  // Float64 copies of the weights after task `after`: the noise is added to these, never to the run.
  std::vector<torch::Tensor> weights;
  for (const auto& w : view.task_weights(after)) weights.push_back(w.detach().to(torch::kFloat64));
  const auto layer = in.layer;
  const dg::RepresentationFn f = [&view, &in, layer](const std::vector<torch::Tensor>& w) {
    return layer_activations(view.model, w, in.x, layer);
  };
  const auto rep = f(weights);
  const double fs = dg::feature_split_stability(rep, dg::FeatureSplitOptions().splits(a.splits).seed(a.seed));
  const auto curve = dg::weight_noise_stability(f, weights, dg::WeightNoiseOptions().sigmas(a.sigmas).draws(a.draws).seed(a.seed));

  std::vector<double> means, stds, drifts;
  json points = json::array();
  for (const auto& p : curve) {
    means.push_back(p.mean);
    stds.push_back(p.std);
    drifts.push_back(1.0 - p.mean);
    points.push_back({{"sigma", p.sigma}, {"mean", p.mean}, {"std", p.std}, {"similarities", p.similarities}});
  }
  json out{{"problem", "cl run geometric stability (Shesha)"},
           {"run", a.run},
           {"task", a.task},
           {"after_task", after},
           {"completed_tasks", view.completed_tasks},
           {"model", view.model->options().kind},
           {"layer", layer},
           {"hidden_layers", view.model->hidden_layers()},
           {"features", rep.size(1)},
           {"samples", in.samples},
           {"seed", a.seed},
           {"feature_split", {{"stability", finite_or_null(fs)}, {"splits", a.splits}, {"max_samples", 1600}}},
           {"weight_noise",
            {{"noise", "W + sigma * std(W) * N(0, I) for every weight tensor with more than one element"},
             {"draws", a.draws},
             {"sigmas", a.sigmas},
             {"mean", means},
             {"std", stds},
             {"drift", drifts},
             {"points", points}}}};
  out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void register_diagnose_shesha_command(CLI::App& diag, CommandRegistry& reg) {
  auto a = std::make_shared<SheshaArgs>();
  auto* cmd = diag.add_subcommand(
      "shesha",
      "Geometric stability (Shesha) of a `cl run`: feature-split RDM stability of task J's hidden representation and its "
      "RDM similarity under relative Gaussian weight noise");
  cmd->add_option("run", a->run, "A `stablelearn cl run` directory")->required();
  cmd->add_option("--task", a->task, "The task J whose test images are represented (0-based)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--after", a->after, "The model after task K (0-based, K < completed tasks); default K = J")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--layer", a->layer,
                  "Hidden layer L (0-based; mlp: the hidden Linear+ReLU layers, cnn: conv block 1, conv block 2, fc); "
                  "default the last hidden layer")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", a->samples, "Test images N of task J (the first N, capped at the task's size)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1 << 20));
  cmd->add_option("--sigmas", a->sigmas,
                  "Relative noise scales sigma, comma-separated: each weight tensor W gets sigma * std(W) * N(0, I)")
      ->delimiter(',')
      ->default_str("0.01,0.05,0.1");
  cmd->add_option("--draws", a->draws, "Noise draws R per scale (mean and standard deviation over them)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--splits", a->splits, "Random feature splits of the feature-split stability")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Seed of the feature splits and of the weight noise")->capture_default_str();
  cmd->footer(
      "Examples:\n  stablelearn diagnose shesha runs/split_ewc --task 0\n"
      "  stablelearn diagnose shesha runs/split_ewc --task 0 --after 4 --layer 0 --sigmas 0.01,0.05,0.1,0.2 --draws 20");
  reg.add(cmd, [a]() { return run_shesha(*a); });
}

}  // namespace stablelearn::cli
