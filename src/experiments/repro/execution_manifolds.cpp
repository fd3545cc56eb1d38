// repro execution-manifolds: Xu (2026), "Low-Dimensional Execution Manifolds in Transformer Learning
// Dynamics: Evidence from Modular Arithmetic Tasks" (arXiv 2602.10496; shared/specs/papers-01-18.md
// §12, shared/specs/diagnostics-anchors.md §2.13, §5.5), at the spec's smallest faithful CPU scale:
// the marker-sum task (data/sequences.h: T = 16, C = 8, 1–4 markers per sequence, "mixed"), a
// 2-layer attention-only transformer (models/transformer.h: d = 128, 4 heads, learned positions,
// LayerNorm, linear head; ≈ 135k parameters) trained with AdamW (the code's optimiser: lr 3e-4,
// batch 128) on a fresh batch every step. Snapshots of all weights every `every` steps.
//
// Measured, per seed, with the project's diagnostics:
// * trajectory PCA (diagnostics/trajectory.h) of each of the 8 attention matrices W_Q, W_K, W_V,
//   W_O of both layers (rows of in_proj.weight and out_proj.weight, 16384 entries each): r₉₀ and
//   the Roy–Vetterli effective rank; the median over the 8 matrices; a Gaussian random walk with
//   the same number of snapshots in 16384 dimensions gives the baseline r₉₀;
// * the execution basis (bubble_exp_comm_v2.py): the top `k` PCA directions of each layer's
//   attention parameters (in_proj, out_proj, weights and biases), placed in full parameter space and
//   QR-orthonormalised (2k directions);
// * every `measure_every` steps, the SGD commutator (diagnostics/commutator.h, η = 1e-3 in float64)
//   over `pairs` pairs of a fixed pool of batches: the median over pairs of ρ_exec/ρ_rand (ρ_rand the
//   mean over 10 random 2k-dimensional bases) and of the share ρ² of δ in the basis;
// * test accuracy on held-out sequences at the query (chance 1/8).
// "Early" is the first measurement (step measure_every), "late" the last (the final step).
//
// Checks, fixed from the paper's notes before any run (means over seeds):
//   the task is learned (a precondition)   test accuracy ≥ 0.25 (twice chance)
//   low-dimensional trajectories            median per-matrix r₉₀ ≤ 5 (paper: 3–5)
//                                           median per-matrix effective rank ≤ 5 (paper: 3–4)
//   not a random walk                       random-walk r₉₀ − median per-matrix r₉₀ ≥ 1 (as repro
//                                           trajectory: a random walk's PCA also concentrates)
//   commutator enriched early               early ρ_exec/ρ_rand ≥ 5 (paper ≈ 9.7×, peak ≈ 14×)
//   still enriched late                     late ρ_exec/ρ_rand ≥ 1.5 (paper ≈ 2.1×)
//   the enrichment decays                   early − late ratio > 0
//   mostly orthogonal                       smallest perpendicular share √(1 − ρ²) ≥ 0.92
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/sequences.h"
#include "stablelearn/diagnostics/commutator.h"
#include "stablelearn/diagnostics/trajectory.h"
#include "stablelearn/models/transformer.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = stablelearn::diagnostics;

namespace {

data::MarkerSumOptions data_options(const ReproContext& ctx) {
  data::MarkerSumOptions d;
  d.length = ctx.int_option("length");
  d.modulus = ctx.int_option("modulus");
  d.min_markers = 1;
  d.max_markers = ctx.int_option("max_markers");
  options::check(d, "options");
  return d;
}

models::TransformerOptions model_options(const ReproContext& ctx, const data::MarkerSumOptions& d) {
  models::TransformerOptions o;
  o.vocab = d.modulus + 2;
  o.max_len = d.length;
  o.layers = ctx.int_option("layers");
  o.block.kind = "attention";
  o.block.attention.d_model = ctx.int_option("d_model");
  o.block.attention.heads = ctx.int_option("heads");
  options::check(o, "options");
  return o;
}

// One slice [begin, end) of the flat parameter vector.
struct Range {
  std::string name;
  std::int64_t begin = 0, end = 0;
};

// W_Q, W_K, W_V (row blocks of in_proj.weight) and W_O of every layer.
std::vector<Range> attention_matrices(const models::WeightLayout& l, std::int64_t layers, std::int64_t d) {
  std::vector<Range> out;
  for (std::int64_t k = 0; k < layers; ++k) {
    const auto pre = "layer_" + std::to_string(k) + ".attn.";
    const auto& in = l[l.index_of(pre + "in_proj.weight")];
    for (std::int64_t p = 0; p < 3; ++p)
      out.push_back({fmt::format("layer_{}.W_{}", k, "QKV"[p]), in.offset + p * d * d, in.offset + (p + 1) * d * d});
    const auto& o = l[l.index_of(pre + "out_proj.weight")];
    out.push_back({fmt::format("layer_{}.W_O", k), o.offset, o.offset + o.numel});
  }
  return out;
}

// Each layer's attention parameters (in_proj and out_proj, weights and biases: consecutive).
std::vector<Range> attention_blocks(const models::WeightLayout& l, std::int64_t layers) {
  std::vector<Range> out;
  for (std::int64_t k = 0; k < layers; ++k) {
    const auto pre = "layer_" + std::to_string(k) + ".attn.";
    const auto& first = l[l.index_of(pre + "in_proj.weight")];
    const auto& last = l[l.index_of(pre + "out_proj.bias")];
    out.push_back({"layer_" + std::to_string(k) + ".attn", first.offset, last.offset + last.numel});
  }
  return out;
}

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

void write_figure(const RunDir& run, const std::vector<json>& rows, std::int64_t steps) {
  const std::vector<std::string> colours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"};
  double ymax = 2.5;
  for (const auto& r : rows)
    for (const auto& m : r.at("measurements")) ymax = std::max(ymax, 1.1 * m.at("median_rho_ratio").get<double>());
  report::SvgPlot plot(720, 440);
  plot.set_range(0, double(steps), 0, ymax);
  plot.title("SGD commutator: share in the execution subspace vs a random subspace");
  plot.labels("training step", "rho_exec / rho_rand (median over batch pairs)");
  plot.polyline({{0, 1}, {double(steps), 1}}, "#cccccc", 1.0);
  plot.legend("random subspace (1)", "#cccccc");
  for (std::size_t s = 0; s < rows.size(); ++s) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& m : rows[s].at("measurements")) pts.emplace_back(m.at("step").get<double>(), m.at("median_rho_ratio").get<double>());
    const auto& c = colours[s % colours.size()];
    plot.polyline(pts, c, 2.0);
    for (const auto& [x, y] : pts) plot.marker(x, y, c, 3);
    plot.legend(fmt::format("seed {}", s), c);
  }
  run.write_text("execution_manifolds_commutator.svg", plot.str());
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto d = data_options(ctx);
  const auto mo = model_options(ctx, d);
  const auto steps = ctx.int_option("steps"), every = ctx.int_option("every"), measure_every = ctx.int_option("measure_every");
  const auto batch = ctx.int_option("batch");
  SL_CHECK(every >= 1 && measure_every >= 1 && steps >= 2 * every, ConfigError,
           "repro execution-manifolds: options.steps must hold at least two snapshots (steps >= 2 every) and every, "
           "measure_every >= 1; got steps = ", steps, ", every = ", every, ", measure_every = ", measure_every);
  torch::manual_seed(seed);
  models::Transformer model(mo);
  const auto& layout = model->layout();
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(ctx.option("lr")).weight_decay(ctx.option("weight_decay")));
  auto snapshot = [&] {
    torch::NoGradGuard ng;
    return layout.flatten(model->weights()).to(torch::kFloat64).clone();
  };
  std::vector<torch::Tensor> snapshots{snapshot()};
  std::vector<std::pair<std::int64_t, torch::Tensor>> measured;
  std::vector<double> losses;
  for (std::int64_t step = 1; step <= steps; ++step) {
    const auto b = data::marker_sum(d, batch, derive_seed(static_cast<std::int64_t>(seed), step, 1));
    const auto loss = cross_entropy(model->forward(b.tokens), b.targets);
    SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro execution-manifolds: the training loss is not finite at step ",
             step, "; lower --set lr");
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % every == 0) {
      snapshots.push_back(snapshot());
      losses.push_back(loss.item<double>());
    }
    if (step % measure_every == 0 || step == steps) measured.emplace_back(step, snapshot());
    if (step % every == 0) progress(step, steps, fmt::format("training, loss {:.3f}", loss.item<double>()));
  }
  double test_acc = 0;
  {
    torch::NoGradGuard ng;
    const auto t = data::marker_sum(d, ctx.int_option("test_samples"), derive_seed(static_cast<std::int64_t>(seed), 0, 2));
    const auto q = d.length - 1;
    test_acc = model->forward(t.tokens).select(1, q).argmax(-1).eq(t.targets.select(1, q)).to(torch::kFloat64).mean().item<double>();
  }

  // Trajectory PCA per attention matrix, and a random walk with as many snapshots.
  const auto traj = torch::stack(snapshots);  // [T, P] float64
  json matrices = json::object();
  std::vector<double> r90s, eranks;
  for (const auto& m : attention_matrices(layout, mo.layers, mo.block.attention.d_model)) {
    const auto pca = dg::trajectory_pca(traj.slice(1, m.begin, m.end));
    r90s.push_back(double(pca.rank_at_threshold));
    eranks.push_back(pca.effective_rank);
    std::vector<double> top;
    for (std::int64_t i = 0; i < std::min<std::int64_t>(5, pca.explained_variance_ratio.size(0)); ++i)
      top.push_back(pca.explained_variance_ratio[i].item<double>());
    matrices[m.name] = {{"rank_90", pca.rank_at_threshold}, {"effective_rank", pca.effective_rank}, {"explained_variance_ratio_top5", top}};
  }
  const auto dim = mo.block.attention.d_model * mo.block.attention.d_model;
  const auto walk = random_walk_trajectory(traj.size(0), dim, 10, derive_seed(static_cast<std::int64_t>(seed), 0, 3));
  const auto whole = dg::trajectory_pca(traj);

  // The execution basis: top-k directions of each layer's attention trajectory, in full space.
  const auto kk = ctx.int_option("k");
  std::vector<torch::Tensor> dirs;
  for (const auto& blk : attention_blocks(layout, mo.layers)) {
    const auto pca = dg::trajectory_pca(traj.slice(1, blk.begin, blk.end), dg::TrajectoryPcaOptions().components(kk));
    SL_CHECK(pca.components.size(0) == kk, DataError, "repro execution-manifolds: the trajectory of ", blk.name, " has rank ",
             pca.components.size(0), " < options.k = ", kk);
    for (std::int64_t i = 0; i < kk; ++i) {
      auto v = torch::zeros({traj.size(1)}, traj.options());
      v.slice(0, blk.begin, blk.end).copy_(pca.components[i]);
      dirs.push_back(v);
    }
  }
  const auto basis = dg::orthonormal_basis(torch::stack(dirs));

  // Commutators at the measured snapshots, in float64, on a fixed pool of batches.
  std::vector<dg::Batch> pool;
  for (std::int64_t i = 0; i < ctx.int_option("pool_batches"); ++i) {
    const auto b = data::marker_sum(d, batch, derive_seed(static_cast<std::int64_t>(seed), i, 4));
    pool.push_back({b.tokens, b.targets});
  }
  std::vector<torch::Tensor> params;
  for (const auto& w : model->weights()) params.push_back(w.detach().to(torch::kFloat64).clone().requires_grad_());
  const dg::LossFn loss_fn = [&](const dg::Batch& b) { return cross_entropy(models::functional::transformer(b.x, params, mo), b.y); };
  json rows = json::array();
  std::int64_t done = 0;
  for (const auto& [step, theta] : measured) {
    progress(done++, static_cast<std::int64_t>(measured.size()), fmt::format("commutator at step {}", step));
    {
      torch::NoGradGuard ng;
      const auto parts = layout.split(theta);
      for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parts[i]);
    }
    const auto st = dg::commutator_statistics(params, loss_fn, pool,
                                              dg::CommutatorOptions()
                                                  .learning_rate(ctx.option("eta"))
                                                  .pairs(ctx.int_option("pairs"))
                                                  .random_bases(10)
                                                  .seed(derive_seed(static_cast<std::int64_t>(seed), step, 5)),
                                              basis);
    rows.push_back({{"step", step},
                    {"median_defect", finite_or_null(st.median)},
                    {"median_rho", st.median_rho},
                    {"median_random_rho", st.median_random_rho},
                    {"median_rho_ratio", st.median_rho_ratio},
                    {"median_energy_fraction", st.median_energy_fraction},
                    {"perpendicular_share", std::sqrt(std::max(0.0, 1.0 - st.median_energy_fraction))}});
  }
  double peak = 0, min_perp = 1;
  for (const auto& r : rows) {
    peak = std::max(peak, r.at("median_rho_ratio").get<double>());
    min_perp = std::min(min_perp, r.at("perpendicular_share").get<double>());
  }
  return {{"test_accuracy", test_acc},
          {"final_train_loss", losses.empty() ? std::nan("") : losses.back()},
          {"median_rank_90", median(r90s)},
          {"median_effective_rank", median(eranks)},
          {"max_rank_90", *std::max_element(r90s.begin(), r90s.end())},
          {"random_walk_rank_90", walk.at("rank_90")},
          {"whole_rank_90", whole.rank_at_threshold},
          {"whole_effective_rank", whole.effective_rank},
          {"matrices", matrices},
          {"snapshots", traj.size(0)},
          {"parameters", traj.size(1)},
          {"basis_dim", basis.size(1)},
          {"expected_random_rho", std::sqrt(double(basis.size(1)) / double(traj.size(1)))},
          {"early_rho_ratio", rows.front().at("median_rho_ratio")},
          {"late_rho_ratio", rows.back().at("median_rho_ratio")},
          {"peak_rho_ratio", peak},
          {"min_perpendicular_share", min_perp},
          {"measurements", rows},
          {"train_loss", losses}};
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto d = data_options(ctx);
  const auto mo = model_options(ctx, d);
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("marker sum (paper 12): length {}, values mod {}, 1-{} markers per sequence (mixed); a fresh batch "
                           "every step, {} held-out test sequences",
                           d.length, d.modulus, d.max_markers, ctx.int_option("test_samples"))},
      {"model", fmt::format("attention-only transformer, {} layers, d = {}, {} heads, learned positions, pre-LayerNorm, "
                            "linear head: {} parameters",
                            mo.layers, mo.block.attention.d_model, mo.block.attention.heads, models::transformer_layout(mo).numel())},
      {"training", fmt::format("AdamW lr {}, weight decay {}, batch {}, {} steps; snapshots every {} steps", ctx.option("lr"),
                               ctx.option("weight_decay"), ctx.int_option("batch"), ctx.int_option("steps"), ctx.int_option("every"))},
      {"trajectory", "PCA of each of the 8 attention matrices (W_Q, W_K, W_V, W_O per layer; 16384 entries) over the snapshots"},
      {"commutator", fmt::format("every {} steps and at the last, eta {} (float64), median over {} pairs of a pool of {} batches; "
                                 "basis = top {} trajectory directions of each layer's attention parameters, QR; rho_rand over "
                                 "10 random bases",
                                 ctx.int_option("measure_every"), ctx.option("eta"), ctx.int_option("pairs"),
                                 ctx.int_option("pool_batches"), ctx.int_option("k"))},
      {"parameters", models::transformer_layout(mo).numel()}};
  const char* keys[] = {"test_accuracy", "final_train_loss", "median_rank_90", "median_effective_rank", "max_rank_90",
                        "random_walk_rank_90", "whole_rank_90", "whole_effective_rank", "early_rho_ratio", "late_rho_ratio",
                        "peak_rho_ratio", "min_perpendicular_share", "expected_random_rho"};
  std::map<std::string, double> means;
  for (const char* key : keys) {
    const auto v = per_seed(rows, key);
    put_seed_stats(out, key, v);
    means[key] = mean(v);
  }
  std::vector<double> gap, decay;
  for (const auto& r : rows) {
    gap.push_back(r.at("random_walk_rank_90").get<double>() - r.at("median_rank_90").get<double>());
    decay.push_back(r.at("early_rho_ratio").get<double>() - r.at("late_rho_ratio").get<double>());
  }
  out.metrics["rank_90_gap"] = seeds_json(gap);
  out.metrics["rho_ratio_decay"] = seeds_json(decay);
  out.metrics["rho_ratios_seed0"] = json::array();
  for (const auto& m : rows.front().at("measurements")) out.metrics["rho_ratios_seed0"].push_back(m.at("median_rho_ratio"));
  out.checks = {
      make_check("precondition, the task is learned: test accuracy (mean; chance 1/8)", means["test_accuracy"], ">=", 0.25),
      make_check("low-dimensional: median per-matrix r90 (mean over seeds)", means["median_rank_90"], "<=", 5),
      make_check("low-dimensional: median per-matrix effective rank (mean)", means["median_effective_rank"], "<=", 5),
      make_check("not a random walk: random-walk r90 - median per-matrix r90 (mean)", mean(gap), ">=", 1),
      make_check("commutator enriched early: rho_exec / rho_rand at the first measurement (mean)", means["early_rho_ratio"], ">=", 5),
      make_check("still enriched late: rho_exec / rho_rand at the last measurement (mean)", means["late_rho_ratio"], ">=", 1.5),
      make_check("the enrichment decays: early - late rho ratio (mean)", mean(decay), ">", 0),
      make_check("mostly orthogonal: smallest perpendicular share sqrt(1 - rho^2) (mean)", means["min_perpendicular_share"], ">=",
                 0.92)};
  if (ctx.run) write_figure(*ctx.run, rows, ctx.int_option("steps"));
  return out;
}

}  // namespace

ReproEntry make_execution_manifolds_repro() {
  ReproEntry e;
  e.name = "execution-manifolds";
  e.paper = "Low-Dimensional Execution Manifolds in Transformer Learning Dynamics: Evidence from Modular Arithmetic Tasks (Xu, "
            "arXiv 2602.10496, 2026)";
  e.claim = "A 2-layer attention-only transformer (d = 128) trained on modular arithmetic moves its attention weights along 3-4 "
            "dimensional trajectories (per-matrix r90 3-5), and the SGD commutator is concentrated in that execution subspace "
            "(about 10x a random subspace early, 2x late) while more than 92 % of it is orthogonal to it.";
  e.options = {{"steps", "AdamW training steps", 5000, 300, true},
               {"every", "steps between weight snapshots", 100, 20, true},
               {"measure_every", "steps between commutator measurements", 500, 100, true},
               {"batch", "batch size (training and commutator batches)", 128, 32, true},
               {"lr", "AdamW learning rate", 3e-4, 3e-4, false},
               {"weight_decay", "AdamW weight decay", 0.01, 0.01, false},
               {"length", "sequence length T (with the query token)", 16, 16, true},
               {"modulus", "C: values and the answer mod C", 8, 8, true},
               {"max_markers", "markers per sequence uniform in [1, max_markers]", 4, 4, true},
               {"d_model", "model width d", 128, 128, true},
               {"heads", "attention heads", 4, 4, true},
               {"layers", "attention-only layers", 2, 2, true},
               {"k", "trajectory directions per attention block in the execution basis", 3, 3, true},
               {"eta", "step of the two SGD orders of the commutator", 1e-3, 1e-3, false},
               {"pairs", "batch pairs per commutator measurement", 9, 5, true},
               {"pool_batches", "batches in the commutator's pool", 16, 8, true},
               {"test_samples", "held-out test sequences", 2048, 512, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
