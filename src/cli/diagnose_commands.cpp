// stablelearn diagnose ...: curvature, spectra and training-dynamics diagnostics
// (docs/diagnostics.md). The curvature commands (hessian, trace, density, stability) and spectra run
// either on a finished `cl run` directory (RUN: the trained classifier with the cross-entropy of one
// task's training images) or, without RUN or with --toy, on the built-in toy regression problem
// (diagnostics/toy_problem.h). edge-of-stability, sgd-minimum, trajectory and intrinsic-dim are the
// small experiments of docs/diagnostics.md (diagnose_experiment_commands.cpp). Each command prints
// one JSON object on stdout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>

#include "commands.h"
#include "diagnose_common.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/density.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"
#include "stablelearn/diagnostics/spectra.h"
#include "stablelearn/diagnostics/stability.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/diagnostics/trace.h"
#include "stablelearn/diagnostics/trajectory.h"
#include "stablelearn/diagnostics/update_alignment.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/experiments/curvature_problem.h"
#include "stablelearn/experiments/toy_experiments.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using experiments::FmnistProblem;
using experiments::make_batches;
using experiments::stability_json;
using experiments::to_vector;


/// Options of the problem every curvature command analyses (experiments/curvature_problem.h), plus
/// the --toy flag and the curvature operator.
struct ProblemArgs : experiments::CurvatureProblemOptions {
  bool toy = false;
  std::string op = "hessian";
  /// Empty: float32 with RUN (a run's weights are float32), float64 on the toy problem (closed forms).
  std::string dtype_name;
};

void add_problem_options(CLI::App* cmd, ProblemArgs& a, bool with_operator = true) {
  cmd->add_option("run", a.run, "A `stablelearn cl run` directory (omit, or give --toy, for the toy regression problem)");
  cmd->add_flag("--toy", a.toy, "Use the built-in toy regression MLP (the default when no RUN is given)");
  cmd->add_option("--task", a.task, "RUN: the task J whose training images define the loss (0-based)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--after", a.after,
                  "RUN: analyse the weights after task I (its checkpoint_task<I>.npz) instead of the run's final weights")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", a.samples, "Training samples N (the first N of the task; default toy 128, RUN 1000)")
      ->check(CLI::Range(2, 1 << 30));
  cmd->add_option("--batch-size", a.batch_size,
                  "Batch size B of the curvature products and of the SGD stability check (default toy 32, RUN the run's "
                  "train.batch_size)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a.learning_rate,
                  "Learning rate eta of the stability thresholds (default toy 0.2, RUN the run's train.lr); toy: also the "
                  "rate of the GD steps before the diagnostic")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "Seed of the toy problem and of the random probes")->capture_default_str();
  cmd->add_option("--inputs", a.inputs, "Toy: input dimension")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--hidden", a.hidden, "Toy: hidden width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--train-steps", a.train_steps, "Toy: full-batch GD steps before the diagnostic (0 = at initialisation)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--dtype", a.dtype_name,
                  "float32 or float64 of the weights, data and products (default: float32 with RUN, whose weights are "
                  "float32, about 2x faster; float64 on the toy problem, exact to ~1e-12)")
      ->check(CLI::IsMember({"float64", "float32"}));
  if (with_operator)
    cmd->add_option("--operator", a.op, "Curvature operator: hessian, ggn (Gauss-Newton) or fisher (empirical Fisher)")
        ->capture_default_str()
        ->check(CLI::IsMember({"hessian", "ggn", "fisher"}));
}

using Prepared = experiments::CurvatureProblem;

Prepared prepare(const ProblemArgs& a) {
  SL_CHECK(!(a.toy && !a.run.empty()), UsageError, "give either RUN or --toy, not both");
  auto options = static_cast<const experiments::CurvatureProblemOptions&>(a);
  const auto dtype = !a.dtype_name.empty() ? a.dtype_name : a.run.empty() ? "float64" : "float32";
  options.dtype = dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  auto p = experiments::make_curvature_problem(options);
  p.info["dtype"] = dtype;
  return p;
}


/// Top-k eigenvalues of the curvature operator and the stability block.
void add_hessian_command(CLI::App* diag, CommandRegistry& reg) {
  // diagnose hessian
  struct HessianArgs {
    ProblemArgs problem;
    std::int64_t k = 3, iterations = 100;
    std::string method = "lanczos";
    bool stability = false;
  };
  auto h = std::make_shared<HessianArgs>();
  auto* hess = diag->add_subcommand(
      "hessian", "Top-k eigenvalues (Lanczos or power iteration); with --stability the GD/SGD thresholds 2/eta, 2/(eta p)");
  add_problem_options(hess, h->problem);
  hess->add_option("-k", h->k, "Eigenvalues wanted")->capture_default_str()->check(CLI::PositiveNumber);
  hess->add_option("--method", h->method, "lanczos or power")->capture_default_str()->check(CLI::IsMember({"lanczos", "power"}));
  hess->add_option("--iterations", h->iterations, "Lanczos steps / power iterations per eigenvalue (capped at D)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  hess->add_flag("--stability", h->stability,
                 "Also the GD/SGD stability block (lambda_max, tr H by Hutch++, ||H||_F: about 120 more products; "
                 "`diagnose stability` gives it alone)");
  hess->footer(
      "Examples:\n  stablelearn diagnose hessian runs/split_ewc --task 1 --samples 1000 -k 5\n"
      "  stablelearn diagnose hessian -k 5 --train-steps 300 --lr 1.0   (toy: edge of stability, eta*lmax/2 ~ 1)");
  reg.add(hess, [h]() {
    auto p = prepare(h->problem);
    auto op = p.make_operator(h->problem.op);
    const auto t0 = std::chrono::steady_clock::now();
    SL_CHECK(h->k <= op->dim(), UsageError, "-k ", h->k, " exceeds the ", op->dim(), " parameters");
    dg::EigenResult r;
    if (h->method == "lanczos") {
      const auto steps = std::min(std::max(h->iterations, h->k), op->dim());
      r = dg::lanczos(*op, dg::LanczosOptions().k(h->k).steps(steps).which(dg::Spectrum::LargestAlgebraic).seed(h->problem.seed));
    } else {
      r = dg::power_iteration(*op, dg::PowerIterationOptions().k(h->k).max_iter(h->iterations).seed(h->problem.seed));
    }
    nlohmann::json out = p.info;
    out["operator"] = h->problem.op;
    out["method"] = h->method;
    out["eigenvalues"] = to_vector(r.eigenvalues);
    out["residuals"] = to_vector(r.residuals);
    out["matvecs"] = r.matvecs;
    out["converged"] = r.converged;
    if (h->stability)  // only when asked: it costs ~120 products on top of the eigenvalues'
      out["stability"] = stability_json(dg::stability_check(*op, dg::StabilityOptions()
                                                                  .learning_rate(p.learning_rate)
                                                                  .batch_size(p.batch_size)
                                                                  .num_samples(p.samples)
                                                                  .seed(h->problem.seed)));
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });
}

/// Stochastic trace and spectral density of the curvature operator.
void add_trace_and_density_commands(CLI::App* diag, CommandRegistry& reg) {
  // diagnose trace
  struct TraceArgs {
    ProblemArgs problem;
    std::int64_t matvecs = 100;
    std::string estimator = "hutchpp";
    bool exact = false;
  };
  auto t = std::make_shared<TraceArgs>();
  auto* trace = diag->add_subcommand("trace", "Stochastic trace of the curvature operator (Hutchinson or Hutch++) with its standard error");
  add_problem_options(trace, t->problem);
  trace->add_option("--matvecs", t->matvecs, "Budget of operator products")->capture_default_str()->check(CLI::Range(4, 1 << 30));
  trace->add_option("--estimator", t->estimator, "hutchpp or hutchinson")
      ->capture_default_str()
      ->check(CLI::IsMember({"hutchpp", "hutchinson"}));
  trace->add_flag("--exact", t->exact,
                  "Also the exact trace for --operator ggn|fisher (per-sample Jacobians: N*classes backward passes; always "
                  "on the toy problem)");
  trace->footer(
      "Examples:\n  stablelearn diagnose trace runs/split_ewc --task 0 --operator ggn --samples 200 --exact\n"
      "  stablelearn diagnose trace --operator ggn   (toy: Hutch++ next to the exact trace)");
  reg.add(trace, [t]() {
    auto p = prepare(t->problem);
    auto op = p.make_operator(t->problem.op);
    const auto t0 = std::chrono::steady_clock::now();
    const auto o = dg::TraceOptions().matvecs(t->matvecs).seed(t->problem.seed);
    const auto r = t->estimator == "hutchpp" ? dg::hutchpp_trace(*op, o) : dg::hutchinson_trace(*op, o);
    nlohmann::json out = p.info;
    out["operator"] = t->problem.op;
    out["estimator"] = t->estimator;
    out["estimate"] = r.estimate;
    out["standard_error"] = r.standard_error;
    out["matvecs"] = r.matvecs;
    if (t->exact || t->problem.run.empty()) {
      if (const auto* g = dynamic_cast<const dg::GaussNewtonOperator*>(op.get())) out["exact_trace"] = g->exact_trace();
      if (const auto* f = dynamic_cast<const dg::EmpiricalFisherOperator*>(op.get())) out["exact_trace"] = f->exact_trace();
    }
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });

  // diagnose density
  struct DensityArgs {
    ProblemArgs problem;
    dg::DensityOptions opt;
    std::string out;
  };
  auto d = std::make_shared<DensityArgs>();
  d->opt.grid_points(200);
  auto* dens = diag->add_subcommand("density", "Spectral density by stochastic Lanczos quadrature");
  add_problem_options(dens, d->problem);
  dens->add_option("--runs", d->opt.runs(), "Random probes")->capture_default_str()->check(CLI::PositiveNumber);
  dens->add_option("--lanczos-steps", d->opt.steps(), "Lanczos steps per probe (capped at D)")->capture_default_str()->check(CLI::PositiveNumber);
  dens->add_option("--grid", d->opt.grid_points(), "Grid points")->capture_default_str()->check(CLI::Range(2, 1 << 24));
  dens->add_option("--sigma", d->opt.sigma(), "Gaussian broadening (0 = range / lanczos-steps)")->capture_default_str()->check(CLI::NonNegativeNumber);
  dens->add_option("--out", d->out, "Write the density as CSV (columns: eigenvalue,density)");
  dens->footer(
      "Examples:\n  stablelearn diagnose density runs/split_ewc --task 0 --runs 5 --lanczos-steps 60 --out density.csv\n"
      "  stablelearn diagnose density --operator ggn --out toy_density.csv");
  reg.add(dens, [d]() {
    auto p = prepare(d->problem);
    auto op = p.make_operator(d->problem.op);
    const auto t0 = std::chrono::steady_clock::now();
    auto opt = d->opt;
    opt.seed(d->problem.seed);
    const auto r = dg::spectral_density(*op, opt);
    nlohmann::json out = p.info;
    out["operator"] = d->problem.op;
    out["runs"] = opt.runs();
    out["mean"] = r.mean();
    out["trace_estimate"] = r.mean() * static_cast<double>(op->dim());
    out["sigma"] = r.sigma;
    out["range"] = {r.grid[0].item<double>(), r.grid[-1].item<double>()};
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& n : r.nodes) {
      lo = std::min(lo, n.min().item<double>());
      hi = std::max(hi, n.max().item<double>());
    }
    out["ritz_range"] = {lo, hi};
    out["negative_mass"] = r.mass(-std::numeric_limits<double>::infinity(), 0.0);
    out["matvecs"] = r.matvecs;
    if (!d->out.empty()) {
      std::ofstream f(d->out);
      SL_CHECK(f.good(), IoError, d->out, ": cannot open for writing");
      f.precision(10);
      f << "eigenvalue,density\n";
      for (std::int64_t i = 0; i < r.grid.size(0); ++i) f << r.grid[i].item<double>() << "," << r.density[i].item<double>() << "\n";
      SL_CHECK(f.good(), IoError, d->out, ": write failed");
      out["written"] = d->out;
    }
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });
}

/// Weight spectra and the GD/SGD stability check.
void add_spectra_and_stability_commands(CLI::App* diag, CommandRegistry& reg) {
  // diagnose spectra
  struct SpectraArgs {
    ProblemArgs problem;
    std::int64_t min_tail = 10;
    std::string out;
    std::int64_t since = -1, top_k = 10;
  };
  auto sp = std::make_shared<SpectraArgs>();
  auto* spec = diag->add_subcommand(
      "spectra", "Per-linear-layer weight ESD (eigenvalues of W^T W / N), power-law alpha (Clauset MLE) and stable rank");
  add_problem_options(spec, sp->problem, false);
  spec->add_option("--min-tail", sp->min_tail, "Smallest tail a power-law x_min may leave")->capture_default_str()->check(CLI::Range(2, 1 << 30));
  spec->add_option("--out", sp->out, "Write every ESD as CSV (columns: layer,eigenvalue)");
  spec->add_option("--since", sp->since,
                   "RUN: also the update from the weights after task K to the final ones, per layer: spectral drift and "
                   "the share of the update in the top-k singular subspaces of the earlier weights (vs random)")
      ->check(CLI::NonNegativeNumber);
  spec->add_option("--top-k", sp->top_k, "--since: singular directions k (capped at min(m, n))")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  spec->footer(
      "Examples:\n  stablelearn diagnose spectra runs/split_ewc --out esd.csv\n  stablelearn diagnose spectra runs/split_ewc "
      "--since 0 --top-k 10\n  stablelearn diagnose spectra --toy --hidden 64");
  reg.add(spec, [sp]() {
    auto p = prepare(sp->problem);
    nlohmann::json out = p.info, layers = nlohmann::json::array();
    std::ofstream csv;
    if (!sp->out.empty()) {
      csv.open(sp->out);
      SL_CHECK(csv.good(), IoError, sp->out, ": cannot open for writing");
      csv.precision(12);
      csv << "layer,eigenvalue\n";
    }
    std::vector<torch::Tensor> before;
    if (sp->since >= 0) {
      SL_CHECK(p.task_weights != nullptr, UsageError, "--since needs RUN (a `cl run` directory), not the toy problem");
      const auto tasks = p.info.value("tasks", std::int64_t{-1});
      SL_CHECK(tasks < 0 || sp->since < tasks, UsageError, "--since ", sp->since, " is out of range: the run has ", tasks,
               " tasks");
      before = p.task_weights(sp->since);
      out["update_since_task"] = sp->since;
    }
    for (std::size_t li = 0; li < p.linear_weights.size(); ++li) {
      const auto& [name, w] = p.linear_weights[li];
      const auto wd = w.detach().to(torch::kFloat64).cpu();
      const auto esd = dg::weight_esd(wd);
      const auto sv = torch::linalg_svdvals(wd);
      nlohmann::json row = {{"name", name},
                            {"shape", wd.sizes().vec()},
                            {"eigenvalues", esd.numel()},
                            {"lambda_max", esd.max().item<double>()},
                            {"spectral_norm", sv.max().item<double>()},
                            {"frobenius_norm", wd.norm().item<double>()},
                            {"stable_rank", dg::stable_rank(wd)}};
      try {
        const auto fit = dg::fit_power_law(esd, dg::PowerLawOptions().min_tail(sp->min_tail));
        row["alpha"] = fit.alpha;
        row["alpha_sigma"] = fit.sigma;
        row["xmin"] = fit.xmin;
        row["ks_distance"] = fit.ks_distance;
        row["tail_size"] = fit.tail_size;
      } catch (const DataError& e) {
        row["alpha"] = nullptr;
        row["alpha_note"] = e.what();
      }
      if (!before.empty()) {
        const auto w0 = before.at(p.linear_indices[li]).detach().to(torch::kFloat64).cpu();
        SL_CHECK(w0.sizes() == wd.sizes(), DataError, name, ": the weights after task ", sp->since, " have shape ",
                 w0.sizes(), ", the final ones ", wd.sizes());
        nlohmann::json upd = {{"spectral_drift", dg::spectral_drift(w0, wd)}};
        const auto k = std::min<std::int64_t>(sp->top_k, std::min(wd.size(0), wd.size(1)));
        try {
          const auto a = dg::update_alignment(w0, wd, k);
          upd.update({{"k", a.k},
                      {"update_norm", a.update_norm},
                      {"two_sided", a.two_sided},
                      {"left", a.left},
                      {"right", a.right},
                      {"two_sided_baseline", a.two_sided_baseline},
                      {"left_baseline", a.left_baseline},
                      {"right_baseline", a.right_baseline}});
        } catch (const DataError& e) {
          upd["note"] = e.what();  // no update (the last task)
        }
        row["update"] = upd;
      }
      layers.push_back(row);
      if (csv.is_open())
        for (const auto v : to_vector(esd)) csv << name << "," << v << "\n";
    }
    out["layers"] = layers;
    if (csv.is_open()) {
      SL_CHECK(csv.good(), IoError, sp->out, ": write failed");
      out["written"] = sp->out;
    }
    write_json(out);
    return 0;
  });

  // diagnose stability
  struct StabilityArgs {
    ProblemArgs problem;
    std::int64_t lanczos_steps = 30, trace_matvecs = 60;
  };
  auto st = std::make_shared<StabilityArgs>();
  auto* stab = diag->add_subcommand(
      "stability", "Linear stability of GD and SGD at the current weights: lambda_max vs 2/eta, tr(H) vs 2/(eta p), ||H||_F");
  add_problem_options(stab, st->problem);
  stab->add_option("--lanczos-steps", st->lanczos_steps, "Lanczos steps for lambda_max")->capture_default_str()->check(CLI::PositiveNumber);
  stab->add_option("--trace-matvecs", st->trace_matvecs, "Hutch++ budget for tr(H)")->capture_default_str()->check(CLI::Range(4, 1 << 30));
  stab->footer(
      "p = (N - B) / (B (N - 1)); the trace condition is Mulayoff & Michaeli's / Wu & Su's (MSE at interpolation).\n"
      "Examples:\n  stablelearn diagnose stability runs/split_ewc --task 1 --lr 0.01 --batch-size 32\n"
      "  stablelearn diagnose stability --train-steps 300 --lr 1.0 --batch-size 8");
  reg.add(stab, [st]() {
    auto p = prepare(st->problem);
    auto op = p.make_operator(st->problem.op);
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = dg::stability_check(*op, dg::StabilityOptions()
                                                .learning_rate(p.learning_rate)
                                                .batch_size(p.batch_size)
                                                .num_samples(p.samples)
                                                .lanczos_steps(st->lanczos_steps)
                                                .trace_matvecs(st->trace_matvecs)
                                                .seed(st->problem.seed));
    nlohmann::json out = p.info;
    out["operator"] = st->problem.op;
    out["stability"] = stability_json(s);
    out["seconds"] = seconds_since(t0);
    write_json(out);
    return 0;
  });
}

}  // namespace

void register_diagnose_commands(CLI::App& app, CommandRegistry& reg) {
  auto* diag = app.add_subcommand(
      "diagnose", "Curvature, weight-spectrum and training-dynamics diagnostics of a `cl run` directory or the toy problem");
  diag->require_subcommand(1);
  add_diagnose_extra_commands(diag, reg);

  add_hessian_command(diag, reg);
  add_trace_and_density_commands(diag, reg);
  add_spectra_and_stability_commands(diag, reg);
  add_diagnose_experiment_commands(diag, reg);

  register_diagnose_run_commands(*diag, reg);
  register_diagnose_shesha_command(*diag, reg);
}

}  // namespace stablelearn::cli
