// stablelearn diagnose ...: curvature diagnostics (docs/diagnostics.md) on the built-in toy
// regression problem (diagnostics/toy_problem.h), optionally after some full-batch GD steps.
// Each command prints one JSON object on stdout.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/density.h"
#include "stablelearn/diagnostics/eigen.h"
#include "stablelearn/diagnostics/stability.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "stablelearn/diagnostics/trace.h"

namespace stablelearn::cli {
namespace {

namespace dg = diagnostics;

/// Options of the problem every diagnose command analyses.
struct ProblemArgs {
  std::int64_t inputs = 2, hidden = 16, samples = 128, batch_size = 32, train_steps = 200;
  double learning_rate = 0.2;
  std::uint64_t seed = 0;
  std::string op = "hessian";
};

void add_problem_options(CLI::App* cmd, ProblemArgs& a) {
  cmd->add_option("--inputs", a.inputs, "Input dimension of the toy MLP")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--hidden", a.hidden, "Hidden width of the toy MLP")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--samples", a.samples, "Training samples N")->capture_default_str()->check(CLI::Range(2, 1 << 30));
  cmd->add_option("--batch-size", a.batch_size, "Batch size B (HVP batching and the SGD stability check)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--train-steps", a.train_steps, "Full-batch GD steps before the diagnostic (0 = at initialisation)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", a.learning_rate, "GD learning rate η (also the η of the stability thresholds)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "Seed of the problem and of the random probes")->capture_default_str();
  cmd->add_option("--operator", a.op, "Curvature operator: hessian, ggn (Gauss-Newton) or fisher (empirical Fisher)")
      ->capture_default_str()
      ->check(CLI::IsMember({"hessian", "ggn", "fisher"}));
}

struct Prepared {
  dg::ToyProblem problem;
  std::unique_ptr<dg::CurvatureOperator> op;
  nlohmann::json info;
};

Prepared prepare(const ProblemArgs& a) {
  SL_CHECK(a.batch_size <= a.samples, UsageError, "--batch-size ", a.batch_size, " exceeds --samples ", a.samples);
  Prepared p{dg::make_toy_problem(dg::ToyProblemOptions()
                                      .inputs(a.inputs)
                                      .hidden(a.hidden)
                                      .samples(a.samples)
                                      .batch_size(a.batch_size)
                                      .seed(a.seed)),
             nullptr,
             {}};
  const auto losses = p.problem.train_gd(a.train_steps, a.learning_rate);
  if (a.op == "hessian") {
    p.op = std::make_unique<dg::HessianOperator>(p.problem.params, p.problem.loss, p.problem.batches);
  } else if (a.op == "ggn") {
    p.op = std::make_unique<dg::GaussNewtonOperator>(p.problem.params, p.problem.model, dg::OutputLoss::MeanSquaredError,
                                                     p.problem.batches);
  } else {
    p.op = std::make_unique<dg::EmpiricalFisherOperator>(p.problem.params, p.problem.loss, p.problem.batches);
  }
  p.info = {{"problem", "toy tanh MLP regression"},
            {"parameters", p.op->dim()},
            {"samples", a.samples},
            {"batch_size", a.batch_size},
            {"train_steps", a.train_steps},
            {"learning_rate", a.learning_rate},
            {"seed", a.seed},
            {"operator", a.op},
            {"initial_loss", losses.front()},
            {"loss", losses.back()}};
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kFloat64).cpu().contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

}  // namespace

void register_diagnose_commands(CLI::App& app, CommandRegistry& reg) {
  auto* diag = app.add_subcommand("diagnose", "Curvature diagnostics: Hessian eigenvalues, trace, spectral density");
  diag->require_subcommand(1);

  // diagnose hessian
  struct HessianArgs {
    ProblemArgs problem;
    std::int64_t k = 3, iterations = 100;
    std::string method = "lanczos";
  };
  auto h = std::make_shared<HessianArgs>();
  auto* hess = diag->add_subcommand(
      "hessian", "Top-k eigenvalues (Lanczos or power iteration) and the GD/SGD stability thresholds 2/eta, 2/(eta p)");
  add_problem_options(hess, h->problem);
  hess->add_option("-k", h->k, "Eigenvalues wanted")->capture_default_str()->check(CLI::PositiveNumber);
  hess->add_option("--method", h->method, "lanczos or power")->capture_default_str()->check(CLI::IsMember({"lanczos", "power"}));
  hess->add_option("--iterations", h->iterations, "Lanczos steps / power iterations per eigenvalue (capped at D)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  hess->footer("Example: stablelearn diagnose hessian -k 5 --train-steps 300 --lr 1.0   (edge of stability: eta*lmax/2 ~ 1)");
  reg.add(hess, [h]() {
    auto p = prepare(h->problem);
    const auto t0 = std::chrono::steady_clock::now();
    SL_CHECK(h->k <= p.op->dim(), UsageError, "-k ", h->k, " exceeds the ", p.op->dim(), " parameters");
    dg::EigenResult r;
    if (h->method == "lanczos") {
      const auto steps = std::min(std::max(h->iterations, h->k), p.op->dim());
      r = dg::lanczos(*p.op, dg::LanczosOptions().k(h->k).steps(steps).which(dg::Spectrum::LargestAlgebraic).seed(h->problem.seed));
    } else {
      r = dg::power_iteration(*p.op, dg::PowerIterationOptions().k(h->k).max_iter(h->iterations).seed(h->problem.seed));
    }
    const auto s = dg::stability_check(*p.op, dg::StabilityOptions()
                                                  .learning_rate(h->problem.learning_rate)
                                                  .batch_size(h->problem.batch_size)
                                                  .num_samples(h->problem.samples)
                                                  .seed(h->problem.seed));
    nlohmann::json out = p.info;
    out["method"] = h->method;
    out["eigenvalues"] = to_vector(r.eigenvalues);
    out["residuals"] = to_vector(r.residuals);
    out["matvecs"] = r.matvecs;
    out["converged"] = r.converged;
    out["stability"] = {{"lambda_max", s.lambda_max},
                        {"trace", s.trace},
                        {"trace_stderr", s.trace_stderr},
                        {"frobenius", s.frobenius},
                        {"gd_threshold", s.gd_threshold},
                        {"sharpness_ratio", s.sharpness_ratio},
                        {"gd_stable", s.gd_stable()},
                        {"p", s.p},
                        {"trace_threshold", s.p > 0 ? nlohmann::json(s.trace_threshold) : nlohmann::json(nullptr)},
                        {"trace_ratio", s.trace_ratio},
                        {"sgd_trace_condition", s.sgd_trace_condition()},
                        {"frobenius_scaled", s.frobenius_scaled},
                        {"matvecs", s.matvecs}};
    out["seconds"] = seconds_since(t0);
    std::cout << out.dump(2) << "\n";
    return 0;
  });

  // diagnose trace
  struct TraceArgs {
    ProblemArgs problem;
    std::int64_t matvecs = 100;
    std::string estimator = "hutchpp";
  };
  auto t = std::make_shared<TraceArgs>();
  auto* trace = diag->add_subcommand("trace", "Stochastic trace of the curvature operator (Hutchinson or Hutch++) with its standard error");
  add_problem_options(trace, t->problem);
  trace->add_option("--matvecs", t->matvecs, "Budget of operator products")->capture_default_str()->check(CLI::Range(4, 1 << 30));
  trace->add_option("--estimator", t->estimator, "hutchpp or hutchinson")
      ->capture_default_str()
      ->check(CLI::IsMember({"hutchpp", "hutchinson"}));
  trace->footer("For --operator ggn the exact trace (per-sample Jacobians) is printed too.");
  reg.add(trace, [t]() {
    auto p = prepare(t->problem);
    const auto t0 = std::chrono::steady_clock::now();
    const auto o = dg::TraceOptions().matvecs(t->matvecs).seed(t->problem.seed);
    const auto r = t->estimator == "hutchpp" ? dg::hutchpp_trace(*p.op, o) : dg::hutchinson_trace(*p.op, o);
    nlohmann::json out = p.info;
    out["estimator"] = t->estimator;
    out["estimate"] = r.estimate;
    out["standard_error"] = r.standard_error;
    out["matvecs"] = r.matvecs;
    if (const auto* g = dynamic_cast<const dg::GaussNewtonOperator*>(p.op.get())) out["exact_trace"] = g->exact_trace();
    if (const auto* f = dynamic_cast<const dg::EmpiricalFisherOperator*>(p.op.get())) out["exact_trace"] = f->exact_trace();
    out["seconds"] = seconds_since(t0);
    std::cout << out.dump(2) << "\n";
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
  reg.add(dens, [d]() {
    auto p = prepare(d->problem);
    const auto t0 = std::chrono::steady_clock::now();
    auto opt = d->opt;
    opt.seed(d->problem.seed);
    const auto r = dg::spectral_density(*p.op, opt);
    nlohmann::json out = p.info;
    out["runs"] = opt.runs();
    out["mean"] = r.mean();
    out["trace_estimate"] = r.mean() * static_cast<double>(p.op->dim());
    out["sigma"] = r.sigma;
    out["range"] = {r.grid[0].item<double>(), r.grid[-1].item<double>()};
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
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

}  // namespace stablelearn::cli
