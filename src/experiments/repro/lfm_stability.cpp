// repro lfm-stability: "Exploring and Exploiting Stability in Latent Flow Matching" (Briq, Kamp,
// Fried, Cohen, Kesselheim; ICML 2026; shared/specs/papers-19-35.md §34), the spec's smallest
// faithful experiment (option A): flow matching (models/flow_matching.h) on the whitened PCA-16
// latents of Fashion-MNIST. From one set of noise vectors, samples of the full model are compared
// with those of models trained under perturbations — another training seed, 50 % of the data
// (random and balanced-cluster pruning), 25 % (random), a 4× narrower network — and with
// coarse-to-fine sampling (the narrow model for t < 0.7, the full one after).
//
// Checks, fixed from the spec before any run ("samples from the same seed nearly coincide across
// the data-pruned, seed-changed and capacity-reduced models (much closer than to random other
// samples); quality degrades little down to ~50 % of the data; coarse-to-fine matches large-model
// quality"; means over seeds; d_same = mean distance between samples from the same noise, d_rand =
// mean distance between the full model's samples from different noise; quality = MMD² to held-out
// latents, "little" = at most twice the full model's):
//   max over {seed, 50 % random, 50 % balanced, narrow} of d_same / d_rand          < 0.5
//   MMD²(50 % random) / MMD²(full)                                                   <= 2
//   coarse-to-fine: d_same / d_rand                                                  < 0.5
//   MMD²(coarse-to-fine) / MMD²(full)                                                <= 2
// (The first version measured "little" against the gap to the noise's own MMD²; the first --quick
// run showed the whitened noise closer to the data than the trained model — whitened PCA latents
// have the noise's mean and covariance, so at the median bandwidth the noise is no reference — and
// the rule was replaced before any default run; docs/repro.md.)
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/models/flow_matching.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace sm = stablelearn::models;

namespace {

struct Latents {
  torch::Tensor train, train_labels, test;  ///< whitened PCA coordinates (float32)
  torch::Tensor mean, basis, scale;         ///< pixels = (z * scale) basisᵀ + mean
};

Latents pca_latents(const ReproContext& ctx) {
  const auto d = data::load_fashion_mnist();
  const auto n = std::min<std::int64_t>(ctx.int_option("samples"), d.train.size());
  const auto m = std::min<std::int64_t>(ctx.int_option("test_samples"), d.test.size());
  const auto k = ctx.int_option("dim");
  const auto x = d.train.images.slice(0, 0, n).reshape({n, -1}).to(torch::kFloat64);
  const auto xt = d.test.images.slice(0, 0, m).reshape({m, -1}).to(torch::kFloat64);
  Latents l;
  l.mean = x.mean(0, true);
  const auto c = x - l.mean;
  const auto eig = torch::linalg_eigh(c.t().matmul(c) / static_cast<double>(n - 1));
  l.basis = std::get<1>(eig).flip(1).slice(1, 0, k);  // the top-k principal directions [784, k]
  const auto z = c.matmul(l.basis);
  l.scale = z.std(0, true, true);
  l.train = (z / l.scale).to(torch::kFloat32);
  l.test = ((xt - l.mean).matmul(l.basis) / l.scale).to(torch::kFloat32);
  l.train_labels = d.train.labels.slice(0, 0, n);
  return l;
}

struct Model {
  std::string key, label;
  std::int64_t width;
  std::string subset;  ///< all | random | balanced
  double fraction;
  std::uint64_t seed_offset;
};
const std::vector<Model>& models_list() {
  static const std::vector<Model> v = {{"full", "full data, width W", 1, "all", 1.0, 0},
                                       {"seed", "another training seed", 1, "all", 1.0, 1000},
                                       {"half_random", "50 % of the data, random", 1, "random", 0.5, 0},
                                       {"half_balanced", "50 % of the data, balanced clusters", 1, "balanced", 0.5, 0},
                                       {"quarter_random", "25 % of the data, random", 1, "random", 0.25, 0},
                                       {"narrow", "width W/4", 4, "all", 1.0, 0}};
  return v;
}

sm::VelocityMlp train_model(const ReproContext& ctx, const Model& mdl, const torch::Tensor& data, std::uint64_t seed) {
  const auto w = ctx.int_option("width") / mdl.width;
  torch::manual_seed(seed + mdl.seed_offset);
  sm::VelocityMlp v(sm::VelocityMlpOptions().dim(data.size(1)).hidden({w, w}).time_features(16));
  torch::optim::Adam opt(v->parameters(), torch::optim::AdamOptions(ctx.option("lr")));
  auto gen = at::detail::createCPUGenerator(seed * 7919 + 11 + mdl.seed_offset);
  const auto batch = std::min(ctx.int_option("batch"), data.size(0));
  for (std::int64_t step = 0; step < ctx.int_option("steps"); ++step) {
    const auto idx = torch::randint(0, data.size(0), {batch}, gen, torch::kInt64);
    const auto x1 = data.index_select(0, idx);
    const auto loss = sm::flow_matching_loss(*v, x1, torch::randn(x1.sizes(), gen, x1.options()), torch::rand({batch}, gen));
    SL_CHECK(std::isfinite(loss.item<double>()), DataError, "repro lfm-stability: the ", mdl.key, " loss is not finite at step ",
             step, "; lower --set lr");
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  return v;
}

double mean_distance(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).norm(2, 1).mean().item<double>(); }

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto l = pca_latents(ctx);
  const auto n = l.train.size(0);
  const auto steps = ctx.int_option("sample_steps");
  auto ngen = at::detail::createCPUGenerator(seed * 104729 + 3);
  const auto noise = torch::randn({ctx.int_option("generate"), l.train.size(1)}, ngen, l.train.options());
  const auto perm = torch::randperm(noise.size(0), ngen, torch::kInt64);  // the random pairing for d_rand
  // The kernel width: the median distance between held-out latents.
  const auto dist = torch::cdist(l.test.to(torch::kFloat64), l.test.to(torch::kFloat64));
  const double sigma = std::get<0>(dist.flatten().median(0)).item<double>();
  const auto to_pixels = [&](const torch::Tensor& z) { return (z.to(torch::kFloat64) * l.scale).matmul(l.basis.t()); };
  const auto nearest_label = [&](const torch::Tensor& z) {
    return l.train_labels.index_select(0, torch::cdist(z, l.train).argmin(1));
  };
  json out = json::object();
  std::map<std::string, torch::Tensor> samples;
  std::map<std::string, sm::VelocityMlp> nets;
  std::int64_t done = 0;
  const auto total = static_cast<std::int64_t>(models_list().size()) + 1;
  for (const auto& mdl : models_list()) {
    progress(done++, total, mdl.key);
    torch::Tensor data = l.train;
    if (mdl.subset != "all") {
      const auto keep = static_cast<std::int64_t>(std::llround(mdl.fraction * static_cast<double>(n)));
      auto sgen = at::detail::createCPUGenerator(seed * 31 + 5);
      const auto idx = mdl.subset == "random"
                           ? std::get<0>(torch::randperm(n, sgen, torch::kInt64).slice(0, 0, keep).sort())
                           : sm::balanced_cluster_subset(l.train, keep, ctx.int_option("clusters"), seed * 31 + 5);
      data = l.train.index_select(0, idx);
    }
    auto v = train_model(ctx, mdl, data, seed);
    samples[mdl.key] = sm::sample_ode(sm::velocity_fn(*v), noise, steps);
    nets.emplace(mdl.key, v);
  }
  progress(done++, total, "coarse to fine");
  const double t_split = ctx.option("t_split");
  samples["coarse_to_fine"] =
      sm::sample_coarse_to_fine(sm::velocity_fn(*nets.at("narrow")), sm::velocity_fn(*nets.at("full")), noise, steps, t_split);
  std::int64_t coarse_steps = 0;
  for (std::int64_t i = 0; i < steps; ++i) coarse_steps += static_cast<double>(i) * (1.0 / static_cast<double>(steps)) < t_split;
  const auto& full = samples.at("full");
  const double d_rand = mean_distance(full, full.index_select(0, perm));
  const double d_rand_px = mean_distance(to_pixels(full), to_pixels(full.index_select(0, perm)));
  const auto full_labels = nearest_label(full);
  out["sigma"] = sigma;
  out["d_rand"] = d_rand;
  out["mmd2_noise"] = sm::mmd2(noise, l.test, sigma);
  json per = json::object();
  for (const auto& [key, s] : samples) {
    json r = {{"mmd2", sm::mmd2(s, l.test, sigma)}};
    if (key != "full") {
      r["d_same"] = mean_distance(s, full);
      r["ratio"] = r["d_same"].get<double>() / d_rand;
      r["ratio_pixels"] = mean_distance(to_pixels(s), to_pixels(full)) / d_rand_px;
      r["cosine"] = torch::cosine_similarity(s, full, 1).mean().item<double>();
      r["label_agreement"] = nearest_label(s).eq(full_labels).to(torch::kFloat64).mean().item<double>();
    }
    per[key] = r;
  }
  out["models"] = per;
  const double macs_full = static_cast<double>(nets.at("full")->macs()), macs_narrow = static_cast<double>(nets.at("narrow")->macs());
  out["coarse_steps"] = coarse_steps;
  out["coarse_to_fine_cost"] =
      (static_cast<double>(coarse_steps) * macs_narrow + static_cast<double>(steps - coarse_steps) * macs_full) /
      (static_cast<double>(steps) * macs_full);
  if (k == 0 && ctx.run) {
    // Pixels of the first 4 noise vectors under every model (rows) as a grey-level SVG.
    const std::vector<std::string> rows = {"full", "seed", "half_random", "half_balanced", "quarter_random", "narrow", "coarse_to_fine"};
    const int cell = 2, side = 28, cols = 4;
    std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">", 170 + cols * side * cell,
                                  static_cast<int>(rows.size()) * side * cell);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      svg += fmt::format("<text x=\"2\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\">{}</text>",
                         static_cast<int>(r) * side * cell + 30, rows[r]);
      const auto px = to_pixels(samples.at(rows[r]).slice(0, 0, cols)) + l.mean;
      for (int c = 0; c < cols; ++c)
        for (int y = 0; y < side; ++y)
          for (int x = 0; x < side; ++x) {
            const int g = static_cast<int>(std::lround(255 * (1 - std::clamp(px[c][y * side + x].item<double>(), 0.0, 1.0))));
            svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},{})\"/>", 170 + (c * side + x) * cell,
                               (static_cast<int>(r) * side + y) * cell, cell, cell, g, g, g);
          }
    }
    ctx.run->write_text("lfm_samples.svg", svg + "</svg>");
  }
  progress(done, total, "done");
  return out;
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  out.setup = {
      {"data", fmt::format("the first {} Fashion-MNIST training images projected on their top {} principal directions and "
                           "whitened; quality against the first {} test images' latents",
                           ctx.int_option("samples"), ctx.int_option("dim"), ctx.int_option("test_samples"))},
      {"model", fmt::format("velocity MLP [z, 16 sinusoidal time features] - {0} - {0} - z (SiLU); the narrow model {1} wide",
                            ctx.int_option("width"), ctx.int_option("width") / 4)},
      {"training", fmt::format("flow matching on the linear path (t = 0 noise, t = 1 data), Adam lr {}, batch {}, {} steps; "
                               "balanced-cluster pruning with {} k-means clusters",
                               ctx.option("lr"), ctx.int_option("batch"), ctx.int_option("steps"), ctx.int_option("clusters"))},
      {"sampling", fmt::format("{} noise vectors shared by every model, Euler with {} steps; coarse to fine: the narrow model "
                               "for steps that start before t = {}, the full model after",
                               ctx.int_option("generate"), ctx.int_option("sample_steps"), ctx.option("t_split"))}};
  const auto at = [&](const std::string& model, const char* key) { return per_seed_at(rows, "/models/" + model + "/" + key); };
  for (const auto& m : models_list()) {
    out.metrics[m.key + "_mmd2"] = seeds_json(at(m.key, "mmd2"));
    if (m.key != "full") {
      out.metrics[m.key + "_same_noise_ratio"] = seeds_json(at(m.key, "ratio"));
      out.metrics[m.key + "_label_agreement"] = seeds_json(at(m.key, "label_agreement"));
    }
  }
  out.metrics["coarse_to_fine_same_noise_ratio"] = seeds_json(at("coarse_to_fine", "ratio"));
  out.metrics["coarse_to_fine_mmd2"] = seeds_json(at("coarse_to_fine", "mmd2"));
  out.metrics["coarse_to_fine_cost"] = seeds_json(per_seed(rows, "coarse_to_fine_cost"));
  out.metrics["noise_mmd2"] = seeds_json(per_seed(rows, "mmd2_noise"));
  double worst = 0;
  std::string worst_key;
  for (const char* key : {"seed", "half_random", "half_balanced", "narrow"}) {
    const double r = mean(at(key, "ratio"));
    if (r > worst) worst = r, worst_key = key;
  }
  const double full = mean(at("full", "mmd2"));
  out.checks = {
      make_check(fmt::format("same-noise distance / random-pair distance, worst of seed, 50 % random, 50 % balanced, narrow ({})",
                             worst_key),
                 worst, "<", 0.5),
      make_check("MMD2(50 % random) / MMD2(full)", mean(at("half_random", "mmd2")) / full, "<=", 2),
      make_check("coarse to fine: same-noise distance / random-pair distance", mean(at("coarse_to_fine", "ratio")), "<", 0.5),
      make_check("MMD2(coarse to fine) / MMD2(full)", mean(at("coarse_to_fine", "mmd2")) / full, "<=", 2)};
  return out;
}

}  // namespace

ReproEntry make_lfm_stability_repro() {
  ReproEntry e;
  e.name = "lfm-stability";
  e.paper = "Exploring and Exploiting Stability in Latent Flow Matching (Briq, Kamp, Fried, Cohen, Kesselheim; ICML 2026)";
  e.claim = "A latent flow-matching model maps the same noise to nearly the same sample when its training data are pruned, "
            "its training seed changes or its network shrinks; quality degrades little down to half the data, and a small "
            "model for the early part of sampling followed by the large one matches the large model at lower cost.";
  e.options = {{"samples", "training images (PCA fitted on them)", 10000, 2000, true},
               {"test_samples", "held-out images for the quality measure", 1000, 300, true},
               {"dim", "PCA latent dimension", 16, 16, true},
               {"width", "velocity MLP width (the narrow model: width / 4)", 256, 128, true},
               {"steps", "Adam steps per model", 4000, 150, true},
               {"batch", "batch size", 256, 128, true},
               {"lr", "Adam learning rate", 1e-3, 1e-3, false},
               {"clusters", "k-means clusters of balanced pruning", 20, 10, true},
               {"generate", "noise vectors sampled by every model", 1000, 300, true},
               {"sample_steps", "Euler steps of sampling", 50, 20, true},
               {"t_split", "coarse to fine: the narrow model before this t", 0.7, 0.7, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
