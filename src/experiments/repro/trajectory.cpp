// repro trajectory: Xu (2026), low-dimensional execution manifolds, on an MLP trained by SGD on a
// Fashion-MNIST subset (docs/diagnostics.md experiment (d)).
//
// Checks, fixed from the paper (shared/specs/papers-01-18.md #12: weight trajectories collapse onto
// 3–4-dimensional manifolds, per-matrix r₉₀ = 3–5, in an ambient space of thousands of dimensions):
//   low dimension          r₉₀ of the PCA of the SGD checkpoints ≤ 5 (the paper's upper end)
//   not a random walk      r₉₀ of a Gaussian random walk with the same number of checkpoints and
//                          dimension − r₉₀ of SGD ≥ 1 (a random walk's PCA also concentrates — its
//                          k-th component explains ≈ 6/(π²k²) — so low r₉₀ alone is no evidence)
// Here r₉₀ is of the whole network's trajectory, not per matrix. Several seeds: medians.
#include <fmt/format.h>

#include "entries.h"
#include "stablelearn/core/run.h"
#include "stablelearn/experiments/toy_experiments.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

constexpr std::int64_t kComponents = 10;

void write_figure(const RunDir& run, const json& sgd, const json& walk) {
  report::SvgPlot plot(720, 440);
  plot.set_range(0, kComponents, 0, 1);
  plot.title("PCA of the weight trajectory: cumulative explained variance");
  plot.labels("principal components", "cumulative explained variance");
  auto cumulative = [](const json& ratios) {
    std::vector<std::pair<double, double>> pts{{0, 0}};
    double c = 0;
    for (std::size_t i = 0; i < ratios.size(); ++i) pts.emplace_back(double(i + 1), c += ratios[i].get<double>());
    return pts;
  };
  plot.polyline({{0, 0.9}, {double(kComponents), 0.9}}, "#cccccc", 1.0);
  plot.polyline(cumulative(sgd.at("explained_variance_ratio")), "#1f77b4", 2.0);
  plot.legend("SGD checkpoints", "#1f77b4");
  plot.polyline(cumulative(walk.at("explained_variance_ratio")), "#ff7f0e", 2.0);
  plot.legend("Gaussian random walk (same T, D)", "#ff7f0e");
  run.write_text("trajectory_pca.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  TrajectoryOptions o;
  o.loss = "ce";
  o.lr = ctx.option("lr");
  o.batch_size = ctx.int_option("batch_size");
  o.epochs = ctx.int_option("epochs");
  o.every = ctx.int_option("every");
  o.components = kComponents;
  o.data = fmnist_options(ctx, k);
  const auto sgd = run_trajectory(o, seed_progress(ctx, k));
  const auto walk = random_walk_trajectory(sgd.at("checkpoints").get<std::int64_t>(), sgd.at("parameters").get<std::int64_t>(),
                                           kComponents, derive_seed(static_cast<std::int64_t>(o.data.seed), 0, 1));
  if (k == 0) write_figure(*ctx.run, sgd, walk);
  return {{"rank_90", sgd.at("rank_90")},
          {"random_walk_rank_90", walk.at("rank_90")},
          {"rank_90_gap", walk.at("rank_90").get<double>() - sgd.at("rank_90").get<double>()},
          {"top_cumulative", sgd.at("top_cumulative")},
          {"effective_rank", sgd.at("effective_rank")},
          {"test_accuracy", sgd.at("test_accuracy")},
          {"sgd", sgd},
          {"random_walk", walk}};
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const auto& first = rows.front().at("sgd");
  out.setup = {{"problem", fmt::format("MLP 784-{}-10 on the first {} Fashion-MNIST training images, minibatch SGD, cross-entropy",
                                       ctx.int_option("hidden"), ctx.int_option("samples"))},
               {"parameters", first.at("parameters")},
               {"learning_rate", ctx.option("lr")},
               {"batch_size", ctx.int_option("batch_size")},
               {"epochs", ctx.int_option("epochs")},
               {"checkpoint_every", ctx.int_option("every")},
               {"checkpoints", first.at("checkpoints")},
               {"baseline", "Gaussian random walk with the same number of points and dimension (derive_seed(seed, 0, 1))"}};
  for (const char* key : {"rank_90", "random_walk_rank_90", "rank_90_gap", "top_cumulative", "effective_rank", "test_accuracy"})
    out.metrics[key] = seeds_json(per_seed(rows, key));
  out.checks = {make_check("low dimension: r90 of the SGD trajectory", median(per_seed(rows, "rank_90")), "<=", 5),
                make_check("not a random walk: r90(random walk) - r90(SGD)", median(per_seed(rows, "rank_90_gap")), ">=", 1)};
  return out;
}

}  // namespace

ReproEntry make_trajectory_repro() {
  ReproEntry e;
  e.name = "trajectory";
  e.paper = "Low-Dimensional Execution Manifolds in Transformer Learning Dynamics: Evidence from Modular Arithmetic Tasks (Xu, 2026)";
  e.claim = "Weight trajectories of training collapse onto a manifold of a few (3-5) dimensions of the parameter space.";
  e.options = {{"lr", "SGD learning rate", 0.05, 0.05, false},
               {"batch_size", "SGD batch size", 32, 32, true},
               {"epochs", "epochs of SGD", 20, 3, true},
               {"every", "SGD steps between checkpoints", 20, 10, true},
               {"samples", "training images", 2000, 500, true},
               {"test_samples", "test images", 1000, 200, true},
               {"hidden", "hidden width of the MLP 784-h-10", 50, 20, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
