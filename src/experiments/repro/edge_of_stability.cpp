// repro edge-of-stability: Cohen et al. 2021 on the toy MLP (full-batch GD, MSE).
//
// Checks, fixed from the paper (its Fig. 1 and §3: under full-batch GD the sharpness λ_max rises
// until it reaches 2/η, then hovers just above it while the loss keeps decreasing over long
// timescales, non-monotonically):
//   reaches the edge      max ηλ_max/2 over training ≥ 0.9
//   hovers at the edge    median ηλ_max/2 over the second half of training within [0.9, 1.1]
//   loss keeps falling    final loss / loss at the first measurement within 10 % of 2/η ≤ 1
//   non-monotone          GD steps after that point whose loss rises ≥ 1
// With several seeds each check takes the median over the seeds.
#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/experiments/toy_experiments.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

/// One seed's numbers from the experiment's report and per-step losses.
json summarise_seed(const EdgeOfStabilityResult& r, std::int64_t steps) {
  const auto& trace = r.report.at("trace");
  std::vector<double> late;
  std::int64_t edge_step = -1;
  double loss_at_edge = std::nan("");
  for (const auto& row : trace) {
    const auto step = row.at("step").get<std::int64_t>();
    const auto ratio = row.at("sharpness_ratio").get<double>();
    if (2 * step >= steps) late.push_back(ratio);
    if (edge_step < 0 && ratio >= 0.9) {
      edge_step = step;
      loss_at_edge = row.at("loss").get<double>();
    }
  }
  std::int64_t rises = 0;
  if (edge_step >= 0)
    for (std::size_t t = static_cast<std::size_t>(edge_step) + 1; t < r.losses.size(); ++t) rises += r.losses[t] > r.losses[t - 1];
  const double final_loss = r.report.at("final_loss").get<double>();
  return {{"initial_ratio", trace.front().at("sharpness_ratio")},
          {"max_ratio", r.report.at("max_sharpness_ratio")},
          {"late_median_ratio", median(late)},
          {"edge_step", edge_step >= 0 ? json(edge_step) : json(nullptr)},
          {"loss_at_edge", finite_or_null(loss_at_edge)},
          {"final_loss", final_loss},
          {"final_over_edge_loss", finite_or_null(final_loss / loss_at_edge)},
          {"loss_rises_after_edge", edge_step >= 0 ? json(rises) : json(nullptr)},
          {"trace", trace}};
}

void write_figure(const RunDir& run, const json& trace, double lr) {
  std::vector<std::pair<double, double>> lam, loss;
  double xmax = 1, ymax = 2.0 / lr;
  for (const auto& row : trace) {
    const double s = row.at("step").get<double>();
    lam.emplace_back(s, row.at("lambda_max").get<double>());
    xmax = std::max(xmax, s);
    ymax = std::max(ymax, lam.back().second);
  }
  report::SvgPlot plot(720, 440);
  plot.set_range(0, xmax, 0, 1.15 * ymax);
  plot.title(fmt::format("Edge of stability: full-batch GD, eta = {}", lr));
  plot.labels("GD step", "sharpness lambda_max");
  plot.polyline({{0, 2.0 / lr}, {xmax, 2.0 / lr}}, "#d62728", 1.0);
  plot.legend("2/eta", "#d62728");
  plot.polyline(lam, "#1f77b4", 2.0);
  plot.legend("lambda_max (Lanczos)", "#1f77b4");
  run.write_text("sharpness.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  EdgeOfStabilityOptions o;
  o.lr = ctx.option("lr");
  o.steps = ctx.int_option("steps");
  o.every = ctx.int_option("every");
  o.samples = ctx.int_option("samples");
  o.hidden = ctx.int_option("hidden");
  o.lanczos_steps = ctx.int_option("lanczos_steps");
  o.seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto r = run_edge_of_stability(o, seed_progress(ctx, k));
  if (k == 0) write_figure(*ctx.run, r.report.at("trace"), o.lr);
  return summarise_seed(r, o.steps);
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {{"problem", "toy tanh MLP 2-16-1 regression (diagnostics/toy_problem.h), full-batch GD, MSE"},
               {"learning_rate", ctx.option("lr")},
               {"two_over_lr", 2.0 / ctx.option("lr")},
               {"steps", ctx.int_option("steps")},
               {"measure_every", ctx.int_option("every")},
               {"samples", ctx.int_option("samples")},
               {"hidden", ctx.int_option("hidden")},
               {"sharpness", "lambda_max of the full-data Hessian, Lanczos"}};
  for (const char* key : {"initial_ratio", "max_ratio", "late_median_ratio", "edge_step", "final_loss", "final_over_edge_loss",
                          "loss_rises_after_edge"})
    out.metrics[key] = seeds_json(per_seed(rows, key));
  out.checks = {
      make_check("sharpness reaches the edge: max eta*lambda_max/2", median(per_seed(rows, "max_ratio")), ">=", 0.9),
      make_check("hovers at the edge: late median eta*lambda_max/2 (low)", median(per_seed(rows, "late_median_ratio")), ">=", 0.9),
      make_check("hovers at the edge: late median eta*lambda_max/2 (high)", median(per_seed(rows, "late_median_ratio")), "<=", 1.1),
      make_check("loss keeps falling at the edge: final / at-edge loss", median(per_seed(rows, "final_over_edge_loss")), "<=", 1.0),
      make_check("non-monotone at the edge: GD steps whose loss rises", median(per_seed(rows, "loss_rises_after_edge")), ">=", 1.0),
  };
  return out;
}

}  // namespace

ReproEntry make_edge_of_stability_repro() {
  ReproEntry e;
  e.name = "edge-of-stability";
  e.paper = "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability (Cohen, Kaur, Li, Kolter, Talwalkar; ICLR 2021)";
  e.claim = "Under full-batch gradient descent the sharpness rises until it reaches 2/eta and then hovers there while the loss keeps "
            "decreasing, non-monotonically.";
  e.options = {{"lr", "GD learning rate eta", 0.5, 0.5, false},
               {"steps", "GD steps", 4000, 1000, true},
               {"every", "steps between sharpness measurements", 100, 50, true},
               {"samples", "training samples (one full batch)", 64, 64, true},
               {"hidden", "hidden width of the toy MLP", 16, 16, true},
               {"lanczos_steps", "Lanczos steps per measurement", 20, 20, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
