// repro shesha: Raju, "Geometric Stability: The Missing Axis of Representations" (arXiv 2601.09173;
// shared/specs/papers-01-18.md §3; code prashantcraju/geometric-stability), at small scale: a sweep
// of MLP classifiers on a Fashion-MNIST subset in place of the paper's 2,463 pretrained-encoder
// configurations, with the lab's instruments (diagnostics/rdm.h: feature-split stability,
// perturb_weights, rdm_similarity, spearman_bootstrap; diagnostics/cka.h: linear CKA).
//
// A configuration is (width, depth, training length, weight-noise level α, sweep seed): an MLP
// 784-[width × depth]-10 (ReLU) trained with SGD on cross-entropy for `epochs` epochs, then every
// weight tensor perturbed as Shesha's drift protocol does, W + α·std(W)·N(0, I) (perturb_weights).
// Its representation X̃ is the last hidden layer's activation of `test_samples` test images under
// the noisy weights; X is the same under the clean weights (the configuration's reference, as the
// paper's encoder transformations are compared with their base embedding). Per configuration:
//   stability   Shesha(X̃): feature-split stability (`splits` splits, seed 320) of draw 0
//   similarity  linear CKA(X̃, X) (biased, centred: the paper's compute_cka in
//               distinction_encoder_test.py) of draw 0
//   drift       over `draws` noise draws (as drift_canary.py, rows L2-normalised first):
//               Shesha drift 1 − Spearman(RDM(X), RDM(X̃)) (cosine RDMs), CKA drift
//               1 − debiased linear CKA(X, X̃), and the accuracy drop of the network's own head
// and per network and consecutive training lengths (training-induced drift, clean weights):
// the same two drifts between the representations after e_k and e_{k+1} epochs.
// Each configuration is one line of RUN/shesha_configs.jsonl, read back on --resume: a network
// whose configurations are all there is not trained again, and every configuration draws its noise
// from its own generator, so a resumed sweep gives the numbers of an uninterrupted one.
//
// Checks, fixed from the paper's claims before any run (spec §3 headline: "stability vs similarity
// empirically uncorrelated (ρ ≈ 0.01)" — v4: ρ = −0.01, 95 % CI [−0.06, +0.03] over 2,463
// configurations, seed-averaged per encoder; "stability detects structural drift ≈ 2× more
// sensitively than CKA"; the spec's experiment 3(b): "Shesha-drift should rise earlier (the canary)
// and correlate better with the accuracy drop"). Cells = configurations averaged over the sweep
// seeds, as the paper averages its 15 seeds per encoder; with --seeds N each value is the median
// over the N sweeps.
//   uncorrelated   |Spearman ρ(stability, similarity)| over cells          <= 0.2
//                  its 95 % bootstrap interval (10,000 resamples): lo <= 0 and hi >= 0
//   2× sensitive   median over noisy configurations of Shesha drift / CKA drift      >= 1.5
//                  median over training steps of Shesha drift / CKA drift           >= 1.5
//   earlier        fraction of trained networks whose Shesha drift reaches 0.05 at a smaller α
//                  than CKA drift (α* by linear interpolation from drift 0 at α = 0) >= 0.5
//   functional     Pearson r(Shesha drift, accuracy drop) − r(CKA drift, accuracy drop) > 0
// The 0.2 band is about two standard errors of ρ under independence for the ≈ 100–200 cells of the
// default sweep (1/√n ≈ 0.07–0.1); 1.5 reads "nearly 2×"; 0.5 reads "earlier more often than not"
// (the paper: earlier in 73 % of models); the threshold 0.05 of the earlier-warning check is ours
// (the paper's is not in the spec).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"
#include "stablelearn/diagnostics/cka.h"
#include "stablelearn/diagnostics/rdm.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;
namespace dg = stablelearn::diagnostics;

namespace {

constexpr double kRhoBand = 0.2;      ///< |ρ| at most this: "nearly uncorrelated"
constexpr double kRatio = 1.5;        ///< drift ratio at least this: "nearly 2×"
constexpr double kDetect = 0.05;      ///< drift that counts as detected (earlier-warning check)
constexpr double kEarlier = 0.5;      ///< fraction of networks where Shesha warns first
constexpr std::uint64_t kSplitSeed = 320;   ///< Shesha's RANDOM_STATE
constexpr std::uint64_t kBootSeed = 42;     ///< combined_analysis.py's RNG_SEED
const char* const kConfigFile = "shesha_configs.jsonl";

/// The sweep's axes.
struct Grid {
  std::vector<std::int64_t> widths, depths, epochs;
  std::vector<double> noises;
  std::int64_t sweep_seeds = 1;
};

Grid make_grid(const ReproContext& ctx) {
  Grid g;
  const auto min_width = ctx.int_option("min_width"), max_depth = ctx.int_option("max_depth");
  const auto min_epochs = ctx.int_option("min_epochs");
  const double lo = ctx.option("min_noise"), hi = ctx.option("max_noise");
  const auto levels = ctx.int_option("noise_levels");
  SL_CHECK(min_width >= 4, ConfigError, "repro shesha: options.min_width = ", min_width,
           " (want >= 4: the feature split needs two halves of at least 2 features)");
  SL_CHECK(ctx.int_option("width_steps") <= 8 && max_depth <= 8 && ctx.int_option("length_steps") <= 6, ConfigError,
           "repro shesha: options.width_steps and max_depth must be <= 8, length_steps <= 6 (got ", ctx.int_option("width_steps"),
           ", ", max_depth, ", ", ctx.int_option("length_steps"), ")");
  SL_CHECK(lo <= hi, ConfigError, "repro shesha: options.min_noise = ", lo, " exceeds options.max_noise = ", hi);
  SL_CHECK(hi <= 10.0, ConfigError, "repro shesha: options.max_noise = ", hi, " (relative noise scales above 10 are not meaningful)");
  SL_CHECK(levels >= 2 || lo == hi, ConfigError, "repro shesha: options.noise_levels = ", levels,
           " with min_noise < max_noise (want >= 2 levels)");
  SL_CHECK(ctx.int_option("test_samples") >= 10, ConfigError, "repro shesha: options.test_samples = ", ctx.int_option("test_samples"),
           " (want >= 10)");
  SL_CHECK(ctx.int_option("samples") >= ctx.int_option("batch"), ConfigError, "repro shesha: options.samples = ",
           ctx.int_option("samples"), " is smaller than options.batch = ", ctx.int_option("batch"));
  for (std::int64_t i = 0; i < ctx.int_option("width_steps"); ++i) g.widths.push_back(min_width << i);
  for (std::int64_t d = 1; d <= max_depth; ++d) g.depths.push_back(d);
  for (std::int64_t i = 0; i < ctx.int_option("length_steps"); ++i) g.epochs.push_back(min_epochs << (2 * i));  // ×4
  for (std::int64_t i = 0; i < levels; ++i)
    g.noises.push_back(levels == 1 ? lo : lo * std::pow(hi / lo, static_cast<double>(i) / static_cast<double>(levels - 1)));
  g.sweep_seeds = ctx.int_option("sweep_seeds");
  return g;
}

std::string noise_id(std::int64_t k, std::int64_t w, std::int64_t d, std::int64_t e, std::size_t ai, std::int64_t j) {
  return fmt::format("k{}_w{}_d{}_e{}_a{}_s{}", k, w, d, e, ai, j);
}
std::string train_id(std::int64_t k, std::int64_t w, std::int64_t d, std::int64_t e0, std::int64_t e1, std::int64_t j) {
  return fmt::format("k{}_w{}_d{}_e{}to{}_s{}", k, w, d, e0, e1, j);
}

/// Rows scaled to unit L2 norm (drift_canary.py normalises embeddings before every metric).
torch::Tensor l2_rows(const torch::Tensor& x) {
  const auto f = x.to(torch::kFloat64);
  return f / f.norm(2, {1}, true).clamp_min(1e-9);
}

json num(double x) { return finite_or_null(x); }
double val(const json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }

/// The configuration rows already in RUN/shesha_configs.jsonl, by id. A torn last line (a kill
/// during the append) is dropped and the file rewritten without it before anything is appended.
std::map<std::string, json> read_done(const RunDir& run) {
  std::map<std::string, json> done;
  const auto path = run.file(kConfigFile);
  if (!fs::exists(path)) return done;
  const auto rows = read_metrics_file(path);
  const auto text = read_file_text(path);
  if (!text.empty() && text.back() != '\n') {
    std::string kept;
    for (const auto& r : rows) kept += r.dump() + "\n";
    write_file_atomic(path, kept);
  }
  for (const auto& r : rows) done[r.at("id").get<std::string>()] = r;
  return done;
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto g = make_grid(ctx);
  const auto base = static_cast<std::int64_t>(ctx.seed) + k;
  const auto batch = ctx.int_option("batch"), draws = ctx.int_option("draws"), splits = ctx.int_option("splits");
  const double lr = ctx.option("lr");
  const auto progress = seed_progress(ctx, k);
  auto done = read_done(*ctx.run);
  const auto path = ctx.run->file(kConfigFile);

  FmnistOptions data;
  data.samples = ctx.int_option("samples");
  data.test_samples = ctx.int_option("test_samples");
  data.hidden = {g.widths.front()};
  auto p = make_fmnist_problem(data, "ce", torch::kFloat32);
  const auto steps_per_epoch = p.x.size(0) / batch;
  const std::int64_t networks = static_cast<std::int64_t>(g.widths.size() * g.depths.size()) * g.sweep_seeds;
  std::int64_t net = 0;
  for (std::int64_t j = 0; j < g.sweep_seeds; ++j)
    for (std::size_t wi = 0; wi < g.widths.size(); ++wi)
      for (const auto d : g.depths) {
        const auto w = g.widths[wi];
        const auto arch = static_cast<std::int64_t>(wi) * 16 + d;
        progress(net++, networks, fmt::format("width {} depth {} seed {}", w, d, j));
        // Which of this network's rows are missing?
        bool missing = false;
        for (std::size_t li = 0; li < g.epochs.size(); ++li) {
          for (std::size_t ai = 0; ai < g.noises.size(); ++ai) missing = missing || !done.count(noise_id(k, w, d, g.epochs[li], ai, j));
          if (li > 0) missing = missing || !done.count(train_id(k, w, d, g.epochs[li - 1], g.epochs[li], j));
        }
        if (!missing) continue;
        // Train once to the longest length, keeping the weights at every length of the grid.
        models::ClassifierOptions mo;
        mo.hidden = std::vector<std::int64_t>(static_cast<std::size_t>(d), w);
        torch::manual_seed(derive_seed(base, j, 100 + arch));
        p.model = models::Classifier(mo);
        p.params = p.model->weights();
        std::map<std::int64_t, std::vector<torch::Tensor>> snapshots;  // epochs → weights
        train_sgd(p, g.epochs.back(), batch, lr, derive_seed(base, j, 300 + arch), steps_per_epoch, [&](std::int64_t step) {
          for (const auto e : g.epochs)
            if (step == e * steps_per_epoch) {
              std::vector<torch::Tensor> copy;
              for (const auto& t : p.params) copy.push_back(t.detach().clone());
              snapshots[e] = copy;
            }
        });
        torch::NoGradGuard ng;
        const auto rep = [&](const std::vector<torch::Tensor>& wts) { return p.model->hidden_activations(p.x_test, wts).back(); };
        const auto accuracy = [&](const std::vector<torch::Tensor>& wts) {
          return p.model->forward(p.x_test, wts).argmax(1).eq(p.y_test).to(torch::kFloat64).mean().item<double>();
        };
        std::vector<torch::Tensor> clean_reps;
        for (std::size_t li = 0; li < g.epochs.size(); ++li) {
          const auto e = g.epochs[li];
          const auto& wts = snapshots.at(e);
          const auto x = rep(wts);
          clean_reps.push_back(x);
          const auto xn = l2_rows(x);
          const double acc_clean = accuracy(wts);
          double shesha_clean = std::nan("");
          for (std::size_t ai = 0; ai < g.noises.size(); ++ai) {
            const auto id = noise_id(k, w, d, e, ai, j);
            if (done.count(id)) continue;
            if (std::isnan(shesha_clean))
              shesha_clean = dg::feature_split_stability(x, dg::FeatureSplitOptions().splits(splits).seed(kSplitSeed));
            const double alpha = g.noises[ai];
            auto gen = at::detail::createCPUGenerator(
                derive_seed(base, j, 10000 + (arch * 16 + static_cast<std::int64_t>(li)) * 64 + static_cast<std::int64_t>(ai)));
            double shesha = 0, cka = 0, sim = 0, ckad = 0, acc = 0;
            for (std::int64_t r = 0; r < draws; ++r) {
              const auto noisy = dg::perturb_weights(wts, alpha, gen);
              const auto xt = rep(noisy);
              if (r == 0) {
                shesha = dg::feature_split_stability(xt, dg::FeatureSplitOptions().splits(splits).seed(kSplitSeed));
                cka = dg::linear_cka(xt, x, /*debiased=*/false);
              }
              const auto xtn = l2_rows(xt);
              sim += dg::rdm_similarity(xn, xtn) / static_cast<double>(draws);
              ckad += dg::linear_cka(xn, xtn, /*debiased=*/true) / static_cast<double>(draws);
              acc += accuracy(noisy) / static_cast<double>(draws);
            }
            json row{{"id", id},           {"kind", "noise"},         {"seed_index", k},
                     {"sweep_seed", j},    {"width", w},              {"depth", d},
                     {"epochs", e},        {"noise_index", ai},       {"noise", alpha},
                     {"shesha", num(shesha)}, {"cka", num(cka)},      {"shesha_clean", num(shesha_clean)},
                     {"rdm_similarity", num(sim)}, {"cka_debiased", num(ckad)},
                     {"drift_shesha", num(1.0 - sim)}, {"drift_cka", num(1.0 - ckad)},
                     {"accuracy_clean", acc_clean}, {"accuracy_noisy", acc}, {"accuracy_drop", acc_clean - acc}};
            append_line(path, row.dump());
            done[id] = row;
          }
          if (li > 0) {
            const auto id = train_id(k, w, d, g.epochs[li - 1], e, j);
            if (!done.count(id)) {
              const auto a = l2_rows(clean_reps[li - 1]);
              const double sim = dg::rdm_similarity(a, xn), ckad = dg::linear_cka(a, xn, true);
              json row{{"id", id},         {"kind", "training"},  {"seed_index", k},    {"sweep_seed", j},
                       {"width", w},       {"depth", d},          {"epochs_from", g.epochs[li - 1]}, {"epochs", e},
                       {"drift_shesha", num(1.0 - sim)}, {"drift_cka", num(1.0 - ckad)}};
              append_line(path, row.dump());
              done[id] = row;
            }
          }
        }
      }
  progress(networks, networks, "done");
  // The seed's rows in grid order (whatever order they were computed in).
  json configs = json::array(), training = json::array();
  for (std::int64_t j = 0; j < g.sweep_seeds; ++j)
    for (const auto w : g.widths)
      for (const auto d : g.depths)
        for (std::size_t li = 0; li < g.epochs.size(); ++li) {
          for (std::size_t ai = 0; ai < g.noises.size(); ++ai) configs.push_back(done.at(noise_id(k, w, d, g.epochs[li], ai, j)));
          if (li > 0) training.push_back(done.at(train_id(k, w, d, g.epochs[li - 1], g.epochs[li], j)));
        }
  return {{"configs", configs}, {"training", training}, {"noises", g.noises}, {"steps_per_epoch", steps_per_epoch}};
}

/// The ratio a / b of two drifts; +inf when only the first is positive, 1 when neither is, NaN for NaN input.
double drift_ratio(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::nan("");
  if (b <= 0) return a > 0 ? std::numeric_limits<double>::infinity() : 1.0;  // neither moved: a tie
  return a / b;
}

/// α at which a drift curve (drift 0 at α = 0, then the grid) first reaches `level`, by linear
/// interpolation; +inf when it never does.
double first_crossing(const std::vector<double>& alphas, const std::vector<double>& drifts, double level) {
  double a0 = 0, d0 = 0;
  for (std::size_t i = 0; i < alphas.size(); ++i) {
    if (drifts[i] >= level) return a0 + (alphas[i] - a0) * (level - d0) / (drifts[i] - d0);
    a0 = alphas[i];
    d0 = drifts[i];
  }
  return std::numeric_limits<double>::infinity();
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const auto x = torch::tensor(a, torch::kFloat64), y = torch::tensor(b, torch::kFloat64);
  return torch::corrcoef(torch::stack({x, y}))[0][1].item<double>();
}

/// One sweep's statistics (the values of the checks and the reported numbers).
struct SweepStats {
  dg::SpearmanInterval cells, all;
  std::int64_t n_cells = 0, n_configs = 0, n_networks = 0, n_training = 0;
  double ratio_noise = 0, ratio_training = 0, earlier = 0, r_shesha = 0, r_cka = 0;
  std::vector<double> cell_shesha, cell_cka;
  std::vector<double> noise_drift_shesha, noise_drift_cka, noise_cka_debiased, noise_acc_drop;  ///< per noise level, means
};

SweepStats sweep_stats(const ReproContext& ctx, const json& row) {
  SweepStats s;
  const auto& configs = row.at("configs");
  const auto noises = row.at("noises").get<std::vector<double>>();
  const auto boot = dg::BootstrapOptions().resamples(ctx.int_option("resamples")).confidence(0.95).seed(kBootSeed);
  // Cells: (width, depth, epochs, noise) averaged over the sweep seeds.
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>, std::pair<std::vector<double>, std::vector<double>>> cells;
  std::vector<double> all_s, all_c, ds, dc, drop, ratios;
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>, std::pair<std::vector<double>, std::vector<double>>> curves;
  std::vector<std::vector<double>> per_noise(4 * noises.size());
  for (const auto& c : configs) {
    const auto key = std::make_tuple(c.at("width").get<std::int64_t>(), c.at("depth").get<std::int64_t>(),
                                     c.at("epochs").get<std::int64_t>(), c.at("noise_index").get<std::int64_t>());
    cells[key].first.push_back(val(c.at("shesha")));
    cells[key].second.push_back(val(c.at("cka")));
    all_s.push_back(val(c.at("shesha")));
    all_c.push_back(val(c.at("cka")));
    ds.push_back(val(c.at("drift_shesha")));
    dc.push_back(val(c.at("drift_cka")));
    drop.push_back(c.at("accuracy_drop").get<double>());
    ratios.push_back(drift_ratio(ds.back(), dc.back()));
    auto& curve = curves[std::make_tuple(c.at("width").get<std::int64_t>(), c.at("depth").get<std::int64_t>(),
                                         c.at("epochs").get<std::int64_t>(), c.at("sweep_seed").get<std::int64_t>())];
    curve.first.push_back(ds.back());
    curve.second.push_back(dc.back());
    const auto ai = c.at("noise_index").get<std::size_t>();
    per_noise[4 * ai].push_back(ds.back());
    per_noise[4 * ai + 1].push_back(dc.back());
    per_noise[4 * ai + 2].push_back(val(c.at("cka_debiased")));
    per_noise[4 * ai + 3].push_back(drop.back());
  }
  for (const auto& kv : cells) {
    s.cell_shesha.push_back(mean(kv.second.first));
    s.cell_cka.push_back(mean(kv.second.second));
  }
  s.n_cells = static_cast<std::int64_t>(cells.size());
  s.n_configs = static_cast<std::int64_t>(configs.size());
  s.cells = dg::spearman_bootstrap(torch::tensor(s.cell_shesha, torch::kFloat64), torch::tensor(s.cell_cka, torch::kFloat64), boot);
  s.all = dg::spearman_bootstrap(torch::tensor(all_s, torch::kFloat64), torch::tensor(all_c, torch::kFloat64), boot);
  s.ratio_noise = median(ratios);
  std::vector<double> tr;
  for (const auto& t : row.at("training")) tr.push_back(drift_ratio(val(t.at("drift_shesha")), val(t.at("drift_cka"))));
  s.n_training = static_cast<std::int64_t>(tr.size());
  s.ratio_training = median(tr);
  std::int64_t earlier = 0;
  for (const auto& kv : curves)  // rows of a network come in noise order
    earlier += first_crossing(noises, kv.second.first, kDetect) < first_crossing(noises, kv.second.second, kDetect);
  s.n_networks = static_cast<std::int64_t>(curves.size());
  s.earlier = static_cast<double>(earlier) / static_cast<double>(std::max<std::int64_t>(1, s.n_networks));
  s.r_shesha = pearson(ds, drop);
  s.r_cka = pearson(dc, drop);
  for (std::size_t ai = 0; ai < noises.size(); ++ai) {
    s.noise_drift_shesha.push_back(mean(per_noise[4 * ai]));
    s.noise_drift_cka.push_back(mean(per_noise[4 * ai + 1]));
    s.noise_cka_debiased.push_back(mean(per_noise[4 * ai + 2]));
    s.noise_acc_drop.push_back(mean(per_noise[4 * ai + 3]));
  }
  return s;
}

void write_figures(const RunDir& run, const SweepStats& s, const std::vector<double>& noises) {
  {
    report::SvgPlot plot(640, 480);
    double x0 = 1, x1 = -1, y0 = 1, y1 = -1;
    for (std::size_t i = 0; i < s.cell_shesha.size(); ++i) {
      if (!std::isfinite(s.cell_shesha[i]) || !std::isfinite(s.cell_cka[i])) continue;
      x0 = std::min(x0, s.cell_shesha[i]), x1 = std::max(x1, s.cell_shesha[i]);
      y0 = std::min(y0, s.cell_cka[i]), y1 = std::max(y1, s.cell_cka[i]);
    }
    if (x1 <= x0) x0 = 0, x1 = 1;
    if (y1 <= y0) y0 = 0, y1 = 1;
    plot.set_range(x0 - 0.02, x1 + 0.02, y0 - 0.02, y1 + 0.02);
    plot.title(fmt::format("Stability vs similarity over {} cells: Spearman rho = {:.3f} [{:.3f}, {:.3f}]", s.n_cells, s.cells.rho,
                           s.cells.lo, s.cells.hi));
    plot.labels("Shesha feature-split stability", "linear CKA to the clean representation");
    for (std::size_t i = 0; i < s.cell_shesha.size(); ++i)
      if (std::isfinite(s.cell_shesha[i]) && std::isfinite(s.cell_cka[i])) plot.marker(s.cell_shesha[i], s.cell_cka[i], "#1f77b4", 3);
    run.write_text("shesha_vs_cka.svg", plot.str());
  }
  {
    report::SvgPlot plot(640, 480);
    double top = 1e-9;
    for (std::size_t i = 0; i < noises.size(); ++i) top = std::max({top, s.noise_drift_shesha[i], s.noise_drift_cka[i]});
    plot.set_range(0, noises.back() * 1.05, 0, top * 1.05);
    plot.title("Drift under weight noise W + a std(W) N(0, I): means over configurations");
    plot.labels("relative noise scale a", "drift");
    std::vector<std::pair<double, double>> a{{0, 0}}, b{{0, 0}};
    for (std::size_t i = 0; i < noises.size(); ++i) {
      a.emplace_back(noises[i], s.noise_drift_shesha[i]);
      b.emplace_back(noises[i], s.noise_drift_cka[i]);
    }
    plot.polyline(a, "#d62728", 2.0);
    plot.legend("Shesha drift 1 - Spearman(RDM, RDM')", "#d62728");
    plot.polyline(b, "#1f77b4", 2.0);
    plot.legend("CKA drift 1 - debiased CKA", "#1f77b4");
    run.write_text("shesha_drift.svg", plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const auto g = make_grid(ctx);
  std::vector<SweepStats> stats;
  for (const auto& r : rows) stats.push_back(sweep_stats(ctx, r));
  const auto each = [&](const std::function<double(const SweepStats&)>& f) {
    std::vector<double> v;
    for (const auto& s : stats) v.push_back(f(s));
    return v;
  };
  const auto fmt_list = [](const auto& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + fmt::format("{}", x);
    return s;
  };
  out.setup = {
      {"data", fmt::format("Fashion-MNIST: the first {} training images (SGD), the first {} test images (representations)",
                           ctx.int_option("samples"), ctx.int_option("test_samples"))},
      {"networks", fmt::format("MLP 784-[width x depth]-10, ReLU; widths {}; depths {}; SGD lr {}, batch {}, cross-entropy; "
                               "training lengths {} epochs (one run per network, weights kept at each length); {} sweep seeds",
                               fmt_list(g.widths), fmt_list(g.depths), ctx.option("lr"), ctx.int_option("batch"),
                               fmt_list(g.epochs), g.sweep_seeds)},
      {"noise", fmt::format("every weight tensor W + a std(W) N(0, I) (perturb_weights), a in {{{}}}; {} draws per configuration",
                            fmt_list(g.noises), ctx.int_option("draws"))},
      {"stability", fmt::format("Shesha feature-split stability of the last hidden layer under noisy weights (draw 0), {} splits, "
                                "seed 320",
                                ctx.int_option("splits"))},
      {"similarity", "linear CKA (biased, centred) of that representation to the clean network's (draw 0)"},
      {"drift", "rows L2-normalised; Shesha drift 1 - Spearman of the cosine RDMs, CKA drift 1 - debiased linear CKA, "
                "means over the draws; accuracy drop of the network's own head; training drift between consecutive lengths"},
      {"statistics", fmt::format("Spearman rho over cells (configurations averaged over the sweep seeds) and over all "
                                 "configurations, 95 % percentile bootstrap intervals of {} resamples (seed 42); earlier "
                                 "warning at drift {}",
                                 ctx.int_option("resamples"), kDetect)},
      {"configurations_per_sweep", rows.empty() ? 0 : stats.front().n_configs}};
  auto& m = out.metrics;
  m["configurations"] = seeds_json(each([](const SweepStats& s) { return static_cast<double>(s.n_configs); }));
  m["cells"] = seeds_json(each([](const SweepStats& s) { return static_cast<double>(s.n_cells); }));
  m["rho_cells"] = seeds_json(each([](const SweepStats& s) { return s.cells.rho; }));
  m["rho_cells_lo"] = seeds_json(each([](const SweepStats& s) { return s.cells.lo; }));
  m["rho_cells_hi"] = seeds_json(each([](const SweepStats& s) { return s.cells.hi; }));
  m["rho_configurations"] = seeds_json(each([](const SweepStats& s) { return s.all.rho; }));
  m["rho_configurations_lo"] = seeds_json(each([](const SweepStats& s) { return s.all.lo; }));
  m["rho_configurations_hi"] = seeds_json(each([](const SweepStats& s) { return s.all.hi; }));
  m["drift_ratio_noise_median"] = seeds_json(each([](const SweepStats& s) { return s.ratio_noise; }));
  m["drift_ratio_training_median"] = seeds_json(each([](const SweepStats& s) { return s.ratio_training; }));
  m["earlier_warning_fraction"] = seeds_json(each([](const SweepStats& s) { return s.earlier; }));
  m["r_drift_shesha_accuracy_drop"] = seeds_json(each([](const SweepStats& s) { return s.r_shesha; }));
  m["r_drift_cka_accuracy_drop"] = seeds_json(each([](const SweepStats& s) { return s.r_cka; }));
  m["noises"] = g.noises;
  if (!stats.empty()) {  // the first sweep's per-noise means
    m["drift_shesha_by_noise"] = stats.front().noise_drift_shesha;
    m["drift_cka_by_noise"] = stats.front().noise_drift_cka;
    m["cka_debiased_by_noise"] = stats.front().noise_cka_debiased;
    m["accuracy_drop_by_noise"] = stats.front().noise_acc_drop;
  }
  const auto med = [&](const std::function<double(const SweepStats&)>& f) { return median(each(f)); };
  out.checks.push_back(make_check("|Spearman rho(stability, similarity)| over cells", std::abs(med([](const SweepStats& s) { return s.cells.rho; })),
                                  "<=", kRhoBand));
  out.checks.push_back(make_check("its 95 % bootstrap interval: lower end", med([](const SweepStats& s) { return s.cells.lo; }), "<=", 0));
  out.checks.push_back(make_check("its 95 % bootstrap interval: upper end", med([](const SweepStats& s) { return s.cells.hi; }), ">=", 0));
  out.checks.push_back(make_check("weight noise: median Shesha drift / CKA drift", med([](const SweepStats& s) { return s.ratio_noise; }),
                                  ">=", kRatio));
  out.checks.push_back(make_check("training: median Shesha drift / CKA drift", med([](const SweepStats& s) { return s.ratio_training; }),
                                  ">=", kRatio));
  out.checks.push_back(make_check(fmt::format("fraction of networks where Shesha drift reaches {} at a smaller noise", kDetect),
                                  med([](const SweepStats& s) { return s.earlier; }), ">=", kEarlier));
  out.checks.push_back(make_check("r(Shesha drift, accuracy drop) - r(CKA drift, accuracy drop)",
                                  med([](const SweepStats& s) { return s.r_shesha - s.r_cka; }), ">", 0));
  if (ctx.run && !stats.empty()) write_figures(*ctx.run, stats.front(), g.noises);
  return out;
}

}  // namespace

ReproEntry make_shesha_repro() {
  ReproEntry e;
  e.name = "shesha";
  e.paper = "Geometric Stability: The Missing Axis of Representations (Raju; arXiv 2601.09173, 2026)";
  e.claim = "Geometric stability (Shesha) and representational similarity (CKA) are nearly uncorrelated across many "
            "configurations, and stability detects structural drift about twice as sensitively as CKA, earlier and in "
            "closer step with the loss of function.";
  e.options = {{"samples", "training images (the first of Fashion-MNIST's training set)", 1000, 300, true},
               {"test_samples", "test images whose last hidden layer is the representation", 400, 150, true},
               {"min_width", "smallest hidden width (then doubled width_steps - 1 times)", 16, 16, true},
               {"width_steps", "hidden widths", 4, 2, true},
               {"max_depth", "hidden layers 1..max_depth", 3, 2, true},
               {"min_epochs", "shortest training length in epochs (then x4 length_steps - 1 times)", 1, 1, true},
               {"length_steps", "training lengths", 3, 2, true},
               {"min_noise", "smallest relative weight-noise scale a", 0.01, 0.01, false},
               {"max_noise", "largest a (levels geometric in between)", 0.3, 0.3, false},
               {"noise_levels", "noise levels", 5, 3, true},
               {"sweep_seeds", "seeds per cell of the sweep", 3, 1, true},
               {"draws", "noise draws per configuration for the drifts", 3, 2, true},
               {"splits", "feature splits of Shesha", 30, 10, true},
               {"lr", "SGD learning rate", 0.1, 0.1, false},
               {"batch", "SGD batch size", 50, 50, true},
               {"resamples", "bootstrap resamples of Spearman rho", 10000, 1000, true}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
