// repro intrinsic-dim: Li, Farkhoor, Liu & Yosinski (ICLR 2018) on Fashion-MNIST MLPs of two
// widths (docs/diagnostics.md experiment (c)).
//
// Checks, fixed from the paper (shared/specs/papers-01-18.md #13: d_int90 of the MNIST FC network
// is 750 of D = 199,210, and about constant for widths 50–400 while D grows with the width):
//   far below D            d_int90 / D of the wider network ≤ 0.01 (MNIST FC: 0.0038)
//   width-independent      d_int90(4w) / d_int90(w) ≤ 2 — the geometric midpoint between
//                          "constant" (1) and "proportional to D" (≈ 4 for a 4× wider net)
// d_int90 is the relative convention (the smallest d on the grid whose test accuracy reaches 90 %
// of the full model trained in the same harness); a grid that never reaches it fails both checks.
// Several seeds: medians.
#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/experiments/toy_experiments.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = diagnostics;

namespace {

std::vector<std::int64_t> dimension_grid(const ReproContext& ctx) {
  std::vector<std::int64_t> dims;
  for (auto d = ctx.int_option("d_min"); d <= ctx.int_option("d_max"); d *= 2) dims.push_back(d);
  return dims;
}

json sweep(const ReproContext& ctx, std::int64_t k, std::int64_t width) {
  FmnistOptions data;
  data.samples = ctx.int_option("samples");
  data.test_samples = ctx.int_option("test_samples");
  data.hidden.assign(static_cast<std::size_t>(ctx.int_option("layers")), width);
  data.seed = ctx.seed + static_cast<std::uint64_t>(k);
  auto p = make_fmnist_problem(data, "ce", torch::kFloat32);
  const auto options = dg::IntrinsicDimensionOptions()
                           .dims(dimension_grid(ctx))
                           .steps(ctx.int_option("steps"))
                           .learning_rate(ctx.option("lr"))
                           .full_learning_rate(ctx.option("full_lr"))
                           .projection(dg::Projection::Fastfood)
                           .seed(data.seed);
  const auto grid = dimension_grid(ctx);
  std::int64_t done = 0;
  auto progress = seed_progress(ctx, k, fmt::format("width {}", width));
  auto r = intrinsic_dimension_report(p, options, "fastfood", [&](const dg::IntrinsicDimensionRow& row) {
    progress(++done, static_cast<std::int64_t>(grid.size()), fmt::format("d {} acc {:.3f}", row.dim, row.test_accuracy));
  });
  r["hidden"] = data.hidden;
  return r;
}

double d_int90(const json& r) { return r.at("d_int90_relative").is_null() ? std::nan("") : r.at("d_int90_relative").get<double>(); }

void write_figure(const RunDir& run, const json& narrow, const json& wide) {
  report::SvgPlot plot(720, 440);
  double xmax = 1;
  for (const auto& row : wide.at("subspaces")) xmax = std::max(xmax, std::log10(row.at("d").get<double>()));
  plot.set_range(0.5, xmax + 0.2, 0, 1);
  plot.title("Intrinsic dimension: test accuracy in random subspaces (Fastfood)");
  plot.labels("log10 d", "test accuracy");
  const char* colours[] = {"#1f77b4", "#ff7f0e"};
  int i = 0;
  for (const auto* r : {&narrow, &wide}) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& row : r->at("subspaces")) pts.emplace_back(std::log10(row.at("d").get<double>()), row.at("test_accuracy").get<double>());
    const double thr = r->at("relative_threshold").get<double>();
    plot.polyline({{0.5, thr}, {xmax + 0.2, thr}}, colours[i], 0.8, 0.5);
    plot.polyline(pts, colours[i], 2.0);
    plot.legend(fmt::format("hidden {} (D = {}), 90 % of full: {:.3f}", r->at("hidden").dump(), r->at("parameters").get<std::int64_t>(), thr),
                colours[i]);
    ++i;
  }
  run.write_text("intrinsic_dim.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto w = ctx.int_option("width");
  const auto narrow = sweep(ctx, k, w);
  const auto wide = sweep(ctx, k, w * ctx.int_option("width_factor"));
  if (k == 0) write_figure(*ctx.run, narrow, wide);
  const double dn = d_int90(narrow), dw = d_int90(wide);
  return {{"d_int90_narrow", finite_or_null(dn)},
          {"d_int90_wide", finite_or_null(dw)},
          {"parameters_narrow", narrow.at("parameters")},
          {"parameters_wide", wide.at("parameters")},
          {"fraction_of_D_wide", finite_or_null(dw / wide.at("parameters").get<double>())},
          {"width_ratio_of_d_int90", finite_or_null(dw / dn)},
          {"full_test_accuracy_narrow", narrow.at("full_test_accuracy")},
          {"full_test_accuracy_wide", wide.at("full_test_accuracy")},
          {"narrow", narrow},
          {"wide", wide}};
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const auto grid = dimension_grid(ctx);
  out.setup = {{"problem", fmt::format("MLPs with {} hidden layer(s) of width {} and {} on the first {} Fashion-MNIST training images, "
                                       "cross-entropy, full-batch Adam in random Fastfood subspaces",
                                       ctx.int_option("layers"), ctx.int_option("width"),
                                       ctx.int_option("width") * ctx.int_option("width_factor"), ctx.int_option("samples"))},
               {"dims", grid},
               {"steps", ctx.int_option("steps")},
               {"subspace_lr", ctx.option("lr")},
               {"full_lr", ctx.option("full_lr")},
               {"test_samples", ctx.int_option("test_samples")},
               {"d_int90", "relative: smallest d on the grid reaching 90 % of the full model's test accuracy"}};
  for (const char* key : {"d_int90_narrow", "d_int90_wide", "parameters_narrow", "parameters_wide", "fraction_of_D_wide",
                          "width_ratio_of_d_int90", "full_test_accuracy_narrow", "full_test_accuracy_wide"})
    out.metrics[key] = seeds_json(per_seed(rows, key));
  out.checks = {make_check("far below D: d_int90 / D (wider net)", median(per_seed(rows, "fraction_of_D_wide")), "<=", 0.01),
                make_check("width-independent: d_int90(wide) / d_int90(narrow)", median(per_seed(rows, "width_ratio_of_d_int90")), "<=", 2.0)};
  return out;
}

}  // namespace

ReproEntry make_intrinsic_dim_repro() {
  ReproEntry e;
  e.name = "intrinsic-dim";
  e.paper = "Measuring the Intrinsic Dimension of Objective Landscapes (Li, Farkhoor, Liu, Yosinski; ICLR 2018)";
  e.claim = "Training in a random d-dimensional subspace reaches 90 % of full performance at a d_int90 far below the parameter "
            "count D, and d_int90 stays about constant as the network is widened.";
  e.options = {{"width", "hidden width w of the narrower MLP", 50, 16, true},
               {"width_factor", "the wider MLP has width_factor * w", 4, 4, true},
               {"layers", "hidden layers", 2, 1, true},
               {"samples", "training images", 1000, 300, true},
               {"test_samples", "test images", 1000, 300, true},
               {"steps", "full-batch Adam steps per training", 200, 60, true},
               {"lr", "Adam rate in the subspace", 1e-2, 1e-2, false},
               {"full_lr", "Adam rate of the full model", 1e-3, 1e-3, false},
               {"d_min", "smallest subspace dimension (the grid doubles from it)", 10, 10, true},
               {"d_max", "largest subspace dimension", 2560, 640, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
