// stablelearn diagnose edge-of-stability | sgd-minimum | trajectory | intrinsic-dim: the
// training-dynamics experiments of docs/diagnostics.md. Each parses its options, calls the
// library's experiment (experiments/toy_experiments.h, shared with `stablelearn repro`) and prints
// its JSON report; intrinsic-dim RUN --task J builds the problem from task J of a `cl run`.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "diagnose_common.h"
#include "run_helpers.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/experiments/curvature_problem.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;
namespace fs = std::filesystem;
using experiments::FmnistProblem;

std::vector<std::int64_t> parse_list(const std::string& text, const char* what) {
  std::vector<std::int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    SL_CHECK(pos == item.size() && !item.empty() && v > 0, UsageError, what, ": '", item, "' is not a positive integer");
    out.push_back(v);
  }
  SL_CHECK(!out.empty(), UsageError, what, ": empty list");
  return out;
}

/// A Fashion-MNIST subset and an MLP classifier, for the SGD experiments (sgd-minimum, trajectory,
/// intrinsic-dim).
struct FmnistArgs {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::int64_t samples = 1000, test_samples = 1000;
  std::string hidden = "50";
  std::uint64_t seed = 0;
};

void add_fmnist_options(CLI::App* cmd, FmnistArgs& a) {
  cmd->add_option("--data-dir", a.data_dir, "Fashion-MNIST IDX files")->capture_default_str();
  cmd->add_option("--samples", a.samples, "Training images N (the first N of the training set)")
      ->capture_default_str()
      ->check(CLI::Range(2, 60000));
  cmd->add_option("--test-samples", a.test_samples, "Test images (the first of the test set)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--hidden", a.hidden, "Hidden widths of the MLP, comma-separated")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the initialisation, the batch order and the probes")->capture_default_str();
}

experiments::FmnistOptions fmnist_options(const FmnistArgs& a) {
  experiments::FmnistOptions o;
  o.data_dir = a.data_dir;
  o.samples = a.samples;
  o.test_samples = a.test_samples;
  o.hidden = parse_list(a.hidden, "--hidden");
  o.seed = a.seed;
  return o;
}


/// edge-of-stability, sgd-minimum and trajectory: the library's experiments (toy_experiments.h).
void add_toy_experiment_commands(CLI::App* diag, CommandRegistry& reg) {
  // diagnose edge-of-stability
  // The options bind straight to the library's struct (its defaults are the command's).
  auto es = std::make_shared<experiments::EdgeOfStabilityOptions>();
  auto* eos = diag->add_subcommand(
      "edge-of-stability", "Full-batch GD with MSE on the toy MLP, tracking the sharpness lambda_max against 2/eta (Cohen et al. 2021)");
  eos->add_option("--lr", es->lr, "GD learning rate eta")->capture_default_str()->check(CLI::PositiveNumber);
  eos->add_option("--steps", es->steps, "GD steps")->capture_default_str()->check(CLI::PositiveNumber);
  eos->add_option("--every", es->every, "Steps between sharpness measurements")->capture_default_str()->check(CLI::PositiveNumber);
  eos->add_option("--samples", es->samples, "Training samples N (one full batch)")->capture_default_str()->check(CLI::Range(2, 1 << 24));
  eos->add_option("--inputs", es->inputs, "Input dimension")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  eos->add_option("--hidden", es->hidden, "Hidden width")->capture_default_str()->check(CLI::PositiveNumber);
  eos->add_option("--lanczos-steps", es->lanczos_steps, "Lanczos steps per sharpness measurement")->capture_default_str()->check(CLI::PositiveNumber);
  eos->add_option("--seed", es->seed, "Seed of the problem and the Lanczos start")->capture_default_str();
  eos->footer("Example: stablelearn diagnose edge-of-stability --lr 0.5 --steps 2000 --every 100");
  reg.add(eos, [es]() {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = experiments::run_edge_of_stability(*es).report;
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });

  // diagnose sgd-minimum
  struct SgdArgs {
    FmnistArgs data;
    std::string loss = "mse";
    double lr = 0.05;
    std::int64_t batch_size = 1, epochs = 10, every = 0, components = 3;
  };
  auto sg = std::make_shared<SgdArgs>();
  auto add_sgd_options = [](CLI::App* cmd, SgdArgs& a) {
    add_fmnist_options(cmd, a.data);
    cmd->add_option("--loss", a.loss,
                    "mse (1/2 ||f - onehot||^2 over 10 outputs), mse-scalar (scalar output f = first logit, target +1 for "
                    "classes 0-4 and -1 for 5-9: the rank-one setting of the trace condition) or ce")
        ->capture_default_str()
        ->check(CLI::IsMember({"mse", "mse-scalar", "ce"}));
    cmd->add_option("--lr", a.lr, "SGD learning rate eta")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--batch-size", a.batch_size, "SGD batch size B")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--epochs", a.epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
  };
  auto sgd_options = [](const SgdArgs& a, experiments::SgdTrainingOptions& o) {
    o.data = fmnist_options(a.data);
    o.loss = a.loss;
    o.lr = a.lr;
    o.batch_size = a.batch_size;
    o.epochs = a.epochs;
  };
  auto* sgdm = diag->add_subcommand(
      "sgd-minimum", "Train an MLP with SGD on a Fashion-MNIST subset, then check lambda_max <= 2/eta and tr(H) <= 2/(eta p) there");
  add_sgd_options(sgdm, *sg);
  sgdm->footer("Example: stablelearn diagnose sgd-minimum --samples 1000 --hidden 50 --lr 0.05 --batch-size 1 --epochs 10");
  reg.add(sgdm, [sg, sgd_options]() {
    const auto t0 = std::chrono::steady_clock::now();
    experiments::SgdMinimumOptions o;
    sgd_options(*sg, o);
    auto out = experiments::run_sgd_minimum(o);
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });

  // diagnose trajectory
  auto tr = std::make_shared<SgdArgs>();
  tr->every = 20;
  tr->batch_size = 32;
  tr->epochs = 5;
  auto* traj = diag->add_subcommand(
      "trajectory", "PCA of a weight trajectory (explained variance, r90, effective rank): a `cl run`'s parameter snapshots (RUN), or checkpoints every k SGD steps of an MLP on Fashion-MNIST");
  add_sgd_options(traj, *tr);
  traj->add_option("--every", tr->every, "SGD steps between checkpoints")->capture_default_str()->check(CLI::PositiveNumber);
  traj->add_option("--components", tr->components, "Explained-variance ratios printed")->capture_default_str()->check(CLI::PositiveNumber);
  traj->footer(
      "Examples:\n  stablelearn diagnose trajectory --samples 2000 --hidden 50 --lr 0.05 --batch-size 32 --epochs 5 --every 20\n"
      "  stablelearn diagnose trajectory runs/split_ewc --task 1   (a run with [output] snapshot_every = K; adds RELEX)");
  reg.add(traj, with_run_trajectory(traj, [tr] { return tr->components; }, [tr, sgd_options]() {
    const auto t0 = std::chrono::steady_clock::now();
    experiments::TrajectoryOptions o;
    sgd_options(*tr, o);
    o.every = tr->every;
    o.components = tr->components;
    auto out = experiments::run_trajectory(o);
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  }));
}

/// d_int90 of the Fashion-MNIST MLP or of a `cl run`'s task.
void add_intrinsic_dim_command(CLI::App* diag, CommandRegistry& reg) {
  // diagnose intrinsic-dim [RUN --task J]
  struct IdArgs {
    FmnistArgs data;
    std::string run;
    std::int64_t task = 0;
    std::string dims = "10,50,100,200,400,800";
    std::int64_t steps = 200;
    double lr = 0.01, full_lr = 1e-3, absolute = 0.9, fraction = 0.9;
    std::string projection = "dense";
    std::int64_t seeds = 1;
  };
  auto id = std::make_shared<IdArgs>();
  id->data.hidden = "200,200";
  auto* idim = diag->add_subcommand(
      "intrinsic-dim",
      "d_int90 of an MLP on Fashion-MNIST, or of task J of a `cl run` for its model: Adam in random d-dimensional "
      "subspaces (Li et al. 2018), both conventions");
  idim->add_option("run", id->run,
                   "A `stablelearn cl run` directory: the intrinsic dimension of its task J (--task) for the run's model "
                   "architecture, freshly initialised, instead of the Fashion-MNIST MLP (--data-dir and --hidden then do "
                   "not apply; --samples / --test-samples take the first images of task J; task-incremental runs: logits "
                   "restricted to task J's classes, as the run's masked heads)");
  idim->add_option("--task", id->task, "RUN: the task J (0-based) whose training images are learnt and whose test images score")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_fmnist_options(idim, id->data);
  idim->get_option("--seed")->description(
      "Seed of the initialisation and the base of the projection seeds (RUN: default the run's [train] seed, i.e. the "
      "run's own initial weights)");
  idim->add_option("--dims", id->dims, "Subspace dimensions d, comma-separated")->capture_default_str();
  idim->add_option("--steps", id->steps, "Full-batch Adam steps per training (full model and every d)")->capture_default_str()->check(CLI::PositiveNumber);
  idim->add_option("--lr", id->lr, "Adam rate in the subspace")->capture_default_str()->check(CLI::PositiveNumber);
  idim->add_option("--full-lr", id->full_lr, "Adam rate of the full model")->capture_default_str()->check(CLI::PositiveNumber);
  idim->add_option("--absolute", id->absolute, "Absolute test-accuracy threshold (Li et al.'s MNIST convention)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  idim->add_option("--fraction", id->fraction, "Relative threshold: this fraction of the full model's test accuracy")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  idim->add_option("--projection", id->projection,
                   "Random projection P (Li et al. 2018): dense (Gaussian, memory D*d), sparse (density 1/sqrt(D)) or "
                   "fastfood (H G Pi H B, memory O(D))")
      ->capture_default_str()
      ->check(CLI::IsMember({"dense", "sparse", "fastfood"}));
  idim->add_option("--seeds", id->seeds,
                   "Projections (seeds) per d, all from the same initialisation; rows report the mean and sample std "
                   "of the test accuracy, and both d_int90 use the means")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  idim->footer("Example: stablelearn diagnose intrinsic-dim --samples 1000 --hidden 200,200 --dims 10,50,100,200,400 --steps 200\n"
               "         stablelearn diagnose intrinsic-dim --projection fastfood --seeds 3 --dims 100,200,400,800\n"
               "         stablelearn diagnose intrinsic-dim runs/split_ewc --task 1 --projection fastfood --dims 10,100,1000");
  reg.add(idim, [id, idim]() {
    const auto t0 = std::chrono::steady_clock::now();
    auto dims = parse_list(id->dims, "--dims");
    std::sort(dims.begin(), dims.end());
    FmnistProblem p;
    nlohmann::json out;
    std::uint64_t seed = id->data.seed;
    if (id->run.empty()) {
      SL_CHECK(idim->get_option("--task")->count() == 0, UsageError, "--task needs RUN (a `stablelearn cl run` directory)");
      p = experiments::make_fmnist_problem(fmnist_options(id->data), "ce", torch::kFloat32);
      out = {{"problem", "MLP on a Fashion-MNIST subset, full-batch Adam in random " + id->projection + " subspaces"},
             {"hidden", parse_list(id->data.hidden, "--hidden")}};
    } else {
      for (const char* name : {"--data-dir", "--hidden"})
        SL_CHECK(idim->get_option(name)->count() == 0, UsageError, name,
                 " configures the Fashion-MNIST MLP and cannot be combined with RUN (the run's config.toml gives the model "
                 "and the data)");
      const bool seed_given = idim->get_option("--seed")->count() > 0;
      auto rp = experiments::make_run_task_problem(id->run, id->task, id->data.samples, id->data.test_samples,
                                      seed_given ? std::optional<std::uint64_t>(id->data.seed) : std::nullopt);
      p = std::move(rp.problem);
      seed = rp.seed;
      out = std::move(rp.info);
      out["problem"] = "task " + std::to_string(id->task) + " of a cl run for its " + out["model"].get<std::string>() +
                       " from a fresh initialisation, full-batch Adam in random " + id->projection + " subspaces";
    }
    const auto full_dim = dg::total_numel(p.params);
    SL_CHECK(dims.back() <= full_dim, UsageError, "--dims: ", dims.back(), " exceeds the ", full_dim, " parameters");
    const auto options = dg::IntrinsicDimensionOptions()
                             .dims(dims)
                             .steps(id->steps)
                             .learning_rate(id->lr)
                             .full_learning_rate(id->full_lr)
                             .projection(dg::parse_projection(id->projection))
                             .seeds(id->seeds)
                             .seed(seed)
                             .absolute_threshold(id->absolute)
                             .fraction(id->fraction);
    auto progress = [&](const dg::IntrinsicDimensionRow& row) {
      std::cerr << "intrinsic-dim: d = " << row.dim << ": test accuracy " << row.test_accuracy;
      if (id->seeds > 1) std::cerr << " ± " << row.test_accuracy_std << " (" << id->seeds << " seeds)";
      std::cerr << "\n";
    };
    out.update(experiments::intrinsic_dimension_report(p, options, id->projection, progress));
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });
}
}  // namespace

void add_diagnose_experiment_commands(CLI::App* diag, CommandRegistry& reg) {
  add_toy_experiment_commands(diag, reg);
  add_intrinsic_dim_command(diag, reg);
}

}  // namespace stablelearn::cli
