// repro ska: Mahi, "Structured Knowledge Accumulation: The Principle of Entropic Least Action in
// Forward-Only Neural Learning" (arXiv 2504.03214; shared/specs/papers-01-18.md §9), the spec's
// smallest faithful experiment: the reference script's 784-256-128-64-10 sigmoid network
// (W ~ N(0, 0.01²), b = 0; optim/ska.h) trained forward-only, label-free, on 100 Fashion-MNIST
// training images per class (raw [0, 1] pixels, the whole set as one batch), once for each of the
// paper's (η, K) pairs with ηK = τ = 0.5: K = 25, 50, 100, 150, 200, 500, η = τ/K (the paper
// writes 0.0033 for τ/150). Every pair starts from the same initial weights (the seed).
//
// Time axis: the entropy H^l_k measured at step k (k = 1 … K − 1) follows k − 1 updates, so the
// cumulative entropy C^l(t) = Σ_{j ≤ k} H^l_j sits at t = η(k − 1). Collapse measure, per layer:
// the pair's C^l and the reference pair's (the largest K) linearly interpolated on 101 points of
// [0, τ − 2τ/K_min] (the range every pair measures), gap = max |C − C_ref| / max |C_ref|; the
// collapse value is the largest gap over pairs and layers. The same measure with the step index k
// in place of t (grid [1, K_min − 1]) is reported as a negative control.
// Linear read-out: ridge regression (λ = ridge · N, standardised features plus a bias, one-hot
// targets) from D⁴ of the training images to their labels, accuracy on held-out test images passed
// through the same network; against the same read-out on the network at its initialisation
// (random features).
//
// Checks, fixed from the spec before any run (medians over seeds; docs/repro.md justifies the
// thresholds):
//   entropy decreases: smallest fraction over layers of steps k ≥ 2 with H^l_k < 0, reference pair, >= 0.9;
//                      largest final cumulative entropy over layers and pairs (bits) <= 0;
//   time invariance:   collapse gap (largest over pairs and layers) <= 0.10;
//                      gap of the second-smallest K / gap of the smallest K <= 0.75 (O(η) convergence);
//   read-out:          held-out accuracy of the linear read-out on D⁴ of the (0.01, 50) run >= 0.20 (chance + 0.10).
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_streams.h"
#include "stablelearn/optim/ska.h"
#include "stablelearn/report/svg.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

const std::vector<std::int64_t> kPairSteps = {25, 50, 100, 150, 200, 500};
constexpr std::int64_t kProbeSteps = 50;  // the paper's main run, (0.01, 50)
constexpr std::int64_t kGridPoints = 101;

struct Data {
  torch::Tensor x, y, x_test, y_test;
};

/// The first `per_class` images of every class (in file order), flattened, raw [0, 1].
std::pair<torch::Tensor, torch::Tensor> balanced(const data::ImageSet& s, std::int64_t per_class) {
  std::vector<std::int64_t> idx;
  std::vector<std::int64_t> count(10, 0);
  const auto labels = s.labels.contiguous();
  const auto* l = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < s.size() && static_cast<std::int64_t>(idx.size()) < 10 * per_class; ++i)
    if (count[static_cast<std::size_t>(l[i])] < per_class) {
      ++count[static_cast<std::size_t>(l[i])];
      idx.push_back(i);
    }
  SL_CHECK(static_cast<std::int64_t>(idx.size()) == 10 * per_class, DataError, "repro ska: fewer than ", per_class,
           " images of some class");
  const auto t = torch::tensor(idx, torch::kInt64);
  return {s.images.index_select(0, t).reshape({t.size(0), -1}), s.labels.index_select(0, t)};
}

Data load(const ReproContext& ctx) {
  const auto d = data::load_fashion_mnist("/usr/share/datasets/fashion-mnist", false);
  Data out;
  std::tie(out.x, out.y) = balanced(d.train, ctx.int_option("samples") / 10);
  std::tie(out.x_test, out.y_test) = balanced(d.test, ctx.int_option("test_samples") / 10);
  return out;
}

std::vector<std::int64_t> pair_steps(const ReproContext& ctx) {
  std::vector<std::int64_t> ks;
  for (const auto k : kPairSteps)
    if (k <= ctx.int_option("max_steps")) ks.push_back(k);
  SL_CHECK(ks.size() >= 3, ConfigError, "repro ska: max_steps ", ctx.int_option("max_steps"),
           " leaves fewer than three (eta, K) pairs (want >= 100)");
  return ks;
}

/// Held-out accuracy of a ridge read-out from features f (train) to labels y, evaluated on ft, yt.
double readout_accuracy(torch::Tensor f, const torch::Tensor& y, torch::Tensor ft, const torch::Tensor& yt, double ridge) {
  f = f.to(torch::kFloat64);
  ft = ft.to(torch::kFloat64);
  const auto mean = f.mean(0), sd = f.std(0, false).clamp_min(1e-12);
  auto with_bias = [&](const torch::Tensor& a) {
    return torch::cat({(a - mean) / sd, torch::ones({a.size(0), 1}, a.options())}, 1);
  };
  const auto a = with_bias(f), at = with_bias(ft);
  const auto n = static_cast<double>(a.size(0));
  const auto gram = torch::mm(a.t(), a) + ridge * n * torch::eye(a.size(1), a.options());
  const auto w = torch::linalg::solve(gram, torch::mm(a.t(), torch::one_hot(y, 10).to(torch::kFloat64)), true);
  return torch::mm(at, w).argmax(1).eq(yt).to(torch::kFloat64).mean().item<double>();
}

/// Linear interpolation of (xs, ys) at x (xs increasing; clamped at the ends).
double interp(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x <= xs.front()) return ys.front();
  if (x >= xs.back()) return ys.back();
  const auto it = std::upper_bound(xs.begin(), xs.end(), x);
  const auto i = static_cast<std::size_t>(it - xs.begin());
  const double u = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
  return ys[i - 1] + u * (ys[i] - ys[i - 1]);
}

/// max |c − ref| / max |ref| on kGridPoints points of [lo, hi].
double curve_gap(const std::vector<double>& x, const std::vector<double>& c, const std::vector<double>& xr,
                 const std::vector<double>& cr, double lo, double hi) {
  double num = 0, den = 0;
  for (std::int64_t j = 0; j < kGridPoints; ++j) {
    const double t = lo + (hi - lo) * static_cast<double>(j) / static_cast<double>(kGridPoints - 1);
    const double r = interp(xr, cr, t);
    num = std::max(num, std::abs(interp(x, c, t) - r));
    den = std::max(den, std::abs(r));
  }
  return den > 0 ? num / den : std::nan("");
}

const char* const kColours[] = {"#d62728", "#ff7f0e", "#2ca02c", "#17becf", "#1f77b4", "#9467bd"};

void write_figures(const RunDir& run, const json& runs, std::int64_t layers, double tau) {
  for (std::int64_t l = 0; l < layers; ++l) {
    double lo = 0;
    for (const auto& r : runs)
      for (const auto& v : r.at("cumulative_entropy")[static_cast<std::size_t>(l)]) lo = std::min(lo, v.get<double>());
    report::SvgPlot plot(720, 440);
    plot.set_range(0, tau, 1.05 * lo, 0.05 * std::abs(lo) + 1e-9);
    plot.title(fmt::format("SKA layer {}: cumulative knowledge entropy against t = eta (k - 1)", l + 1));
    plot.labels("t = eta x updates", "cumulative entropy (bits)");
    std::size_t i = 0;
    for (const auto& r : runs) {
      std::vector<std::pair<double, double>> pts;
      const auto& t = r.at("t");
      const auto& c = r.at("cumulative_entropy")[static_cast<std::size_t>(l)];
      for (std::size_t s = 0; s < t.size(); ++s) pts.emplace_back(t[s].get<double>(), c[s].get<double>());
      const auto* colour = kColours[i++ % 6];
      plot.polyline(pts, colour, 1.6);
      plot.legend(fmt::format("eta = {:.4g}, K = {}", r.at("eta").get<double>(), r.at("K").get<std::int64_t>()), colour);
    }
    run.write_text(fmt::format("ska_entropy_layer{}.svg", l + 1), plot.str());
  }
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  // Saturated sigmoids produce subnormal float32 decisions (σ(z) < 1.2e-38 for z < −87) that slow
  // every matrix product on x86 by orders of magnitude; flush them to zero while the seed runs, on
  // this thread and on every intra-op worker (the flag is per thread; ATen's parallel_for with grain
  // 1 runs one chunk on each thread of its team).
  auto flush = [](bool on) {
    at::globalContext().setFlushDenormal(on);
    at::parallel_for(0, at::get_num_threads(), 1, [on](std::int64_t, std::int64_t) { at::globalContext().setFlushDenormal(on); });
  };
  struct Restore {
    std::function<void(bool)> f;
    ~Restore() { f(false); }
  } restore{flush};
  flush(true);
  const auto d = load(ctx);
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const double tau = ctx.option("tau"), ridge = ctx.option("ridge");
  const auto ks = pair_steps(ctx);
  const auto progress = seed_progress(ctx, k);
  optim::SkaOptions o;  // the paper's 256-128-64-10, init_std 0.01
  const auto layers = static_cast<std::int64_t>(o.layer_sizes.size());
  json runs = json::array();
  double random_readout = 0;
  for (std::size_t r = 0; r < ks.size(); ++r) {
    progress(static_cast<std::int64_t>(r), static_cast<std::int64_t>(ks.size()), fmt::format("K = {}", ks[r]));
    o.lr = tau / static_cast<double>(ks[r]);
    torch::manual_seed(seed);  // the same initial weights for every pair
    optim::SkaNetwork net(d.x.size(1), o);
    if (r == 0) random_readout = readout_accuracy(net.forward(d.x).back(), d.y, net.forward(d.x_test).back(), d.y_test, ridge);
    const auto steps = net.train(d.x, ks[r]);
    std::vector<double> t;
    std::vector<std::vector<double>> cum(static_cast<std::size_t>(layers)), per_step(static_cast<std::size_t>(layers));
    std::vector<double> negative(static_cast<std::size_t>(layers), 0);
    for (const auto& s : steps) {
      if (!s.updated) continue;
      t.push_back(o.lr * static_cast<double>(s.index - 1));
      for (std::size_t l = 0; l < static_cast<std::size_t>(layers); ++l) {
        const double h = s.layers[l].entropy;
        per_step[l].push_back(h);
        cum[l].push_back((cum[l].empty() ? 0.0 : cum[l].back()) + h);
        if (s.index >= 2 && h < 0) negative[l] += 1;
      }
    }
    json neg = json::array(), fin = json::array(), cos_end = json::array();
    for (std::size_t l = 0; l < static_cast<std::size_t>(layers); ++l) {
      neg.push_back(negative[l] / static_cast<double>(ks[r] - 2));
      fin.push_back(cum[l].back());
      cos_end.push_back(steps.back().layers[l].cosine);
    }
    const double acc = readout_accuracy(net.forward(d.x).back(), d.y, net.forward(d.x_test).back(), d.y_test, ridge);
    runs.push_back({{"K", ks[r]}, {"eta", o.lr}, {"t", t}, {"entropy", per_step}, {"cumulative_entropy", cum},
                    {"negative_step_fraction", neg}, {"final_cumulative_entropy", fin}, {"final_cosine", cos_end},
                    {"readout_accuracy", acc}});
  }
  progress(static_cast<std::int64_t>(ks.size()), static_cast<std::int64_t>(ks.size()), "done");
  // Collapse against t and, as a control, against the step index.
  const auto& ref = runs.back();
  const double t_hi = tau - 2 * tau / static_cast<double>(ks.front());
  const double k_hi = static_cast<double>(ks.front() - 1);
  json gaps = json::array(), gaps_k = json::array();
  for (std::size_t r = 0; r + 1 < ks.size(); ++r) {
    double g = 0, gk = 0;
    for (std::size_t l = 0; l < static_cast<std::size_t>(layers); ++l) {
      const auto c = runs[r].at("cumulative_entropy")[l].get<std::vector<double>>();
      const auto cr = ref.at("cumulative_entropy")[l].get<std::vector<double>>();
      const auto tr = runs[r].at("t").get<std::vector<double>>(), trr = ref.at("t").get<std::vector<double>>();
      g = std::max(g, curve_gap(tr, c, trr, cr, 0, t_hi));
      std::vector<double> kx, kxr;  // step index k = t/η + 1
      for (double v : tr) kx.push_back(v / runs[r].at("eta").get<double>() + 1);
      for (double v : trr) kxr.push_back(v / ref.at("eta").get<double>() + 1);
      gk = std::max(gk, curve_gap(kx, c, kxr, cr, 1, k_hi));
    }
    gaps.push_back({{"K", ks[r]}, {"gap", g}});
    gaps_k.push_back({{"K", ks[r]}, {"gap", gk}});
  }
  if (k == 0) write_figures(*ctx.run, runs, layers, tau);
  return {{"runs", runs}, {"collapse_gaps", gaps}, {"step_index_gaps", gaps_k}, {"random_feature_readout_accuracy", random_readout},
          {"reference_K", ks.back()}};
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  const auto ks = pair_steps(ctx);
  std::vector<double> min_neg, max_final, collapse, ratio, control, probe, random, probe_gain;
  for (const auto& row : rows) {
    const auto& runs = row.at("runs");
    double mn = 1, mf = -INFINITY;
    for (const auto& v : runs.back().at("negative_step_fraction")) mn = std::min(mn, v.get<double>());
    for (const auto& r : runs)
      for (const auto& v : r.at("final_cumulative_entropy")) mf = std::max(mf, v.get<double>());
    min_neg.push_back(mn);
    max_final.push_back(mf);
    double g = 0, gk = 0;
    for (const auto& x : row.at("collapse_gaps")) g = std::max(g, x.at("gap").get<double>());
    for (const auto& x : row.at("step_index_gaps")) gk = std::max(gk, x.at("gap").get<double>());
    collapse.push_back(g);
    control.push_back(gk);
    ratio.push_back(row.at("collapse_gaps")[1].at("gap").get<double>() / row.at("collapse_gaps")[0].at("gap").get<double>());
    double acc = std::nan("");
    for (const auto& r : runs)
      if (r.at("K").get<std::int64_t>() == kProbeSteps) acc = r.at("readout_accuracy").get<double>();
    probe.push_back(acc);
    random.push_back(row.at("random_feature_readout_accuracy").get<double>());
    probe_gain.push_back(acc - random.back());
  }
  ReproOutcome out;
  std::string pairs;
  for (const auto k : ks) pairs += fmt::format("{}({:.4g}, {})", pairs.empty() ? "" : ", ", ctx.option("tau") / static_cast<double>(k), k);
  out.setup = {{"data", fmt::format("the first {} Fashion-MNIST training images of every class (raw [0, 1] pixels, one batch); "
                                    "read-out tested on the first {} test images of every class",
                                    ctx.int_option("samples") / 10, ctx.int_option("test_samples") / 10)},
               {"model", "sigmoid network 784-256-128-64-10, W ~ N(0, 0.01^2), b = 0, the same initial weights for every pair"},
               {"training", fmt::format("SKA forward-only steps (optim/ska.h), (eta, K) = {} (eta K = {})", pairs, ctx.option("tau"))},
               {"collapse", fmt::format("cumulative entropy per layer against t = eta (k - 1), interpolated on {} points of [0, "
                                        "tau - 2 tau / K_min]; gap = max |C - C_ref| / max |C_ref|, reference K = {}",
                                        kGridPoints, ks.back())},
               {"read-out", fmt::format("ridge regression (lambda = {} N) on standardised D4 of the training images, accuracy on "
                                        "the test images; K = {} run and the network at initialisation",
                                        ctx.option("ridge"), kProbeSteps)}};
  out.metrics["min_negative_entropy_step_fraction"] = seeds_json(min_neg);
  out.metrics["max_final_cumulative_entropy_bits"] = seeds_json(max_final);
  out.metrics["collapse_gap"] = seeds_json(collapse);
  out.metrics[fmt::format("collapse_gap_K{}_over_K{}", ks[1], ks[0])] = seeds_json(ratio);
  out.metrics["step_index_gap_control"] = seeds_json(control);
  out.metrics["readout_accuracy_ska"] = seeds_json(probe);
  out.metrics["readout_accuracy_random_features"] = seeds_json(random);
  out.metrics["readout_gain_over_random_features"] = seeds_json(probe_gain);
  for (std::size_t r = 0; r + 1 < ks.size(); ++r) {
    std::vector<double> g;
    for (const auto& row : rows) g.push_back(row.at("collapse_gaps")[r].at("gap").get<double>());
    out.metrics[fmt::format("collapse_gap_K{}", ks[r])] = seeds_json(g);
  }
  for (std::size_t l = 0; l < 4; ++l) {
    std::vector<double> f;
    for (const auto& row : rows) f.push_back(row.at("runs").back().at("final_cumulative_entropy")[l].get<double>());
    out.metrics[fmt::format("final_cumulative_entropy_layer{}_K{}", l + 1, ks.back())] = seeds_json(f);
  }
  out.checks = {
      make_check("smallest fraction over layers of steps with negative entropy (reference pair)", median(min_neg), ">=", 0.9),
      make_check("largest final cumulative entropy over layers and pairs (bits)", median(max_final), "<=", 0),
      make_check("collapse gap against t = eta k (largest over pairs and layers)", median(collapse), "<=", 0.10),
      make_check(fmt::format("collapse gap of K = {} / gap of K = {} (O(eta) convergence)", ks[1], ks[0]), median(ratio), "<=", 0.75),
      make_check("held-out accuracy of a linear read-out on D4, (0.01, 50) run", median(probe), ">=", 0.20)};
  return out;
}

}  // namespace

ReproEntry make_ska_repro() {
  ReproEntry e;
  e.name = "ska";
  e.paper = "Structured Knowledge Accumulation: The Principle of Entropic Least Action in Forward-Only Neural Learning (Mahi, "
            "arXiv 2504.03214)";
  e.claim = "Forward-only, label-free SKA learning decreases the knowledge entropy layer by layer, and its dynamics depend on "
            "the learning rate and step count only through t = eta k (runs at equal eta K coincide).";
  e.options = {{"samples", "training images (a multiple of 10: the first samples/10 of every class)", 1000, 300, true},
               {"test_samples", "test images for the read-out (a multiple of 10)", 1000, 300, true},
               {"max_steps", "largest K of the (eta, K) pairs run (25, 50, 100, 150, 200, 500)", 500, 100, true},
               {"tau", "eta K of every pair", 0.5, 0.5, false},
               {"ridge", "ridge factor of the read-out (lambda = ridge N)", 1e-3, 1e-3, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
