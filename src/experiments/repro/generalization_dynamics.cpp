// repro generalization-dynamics: Advani & Saxe, "High-dimensional dynamics of generalization error in
// neural networks" (arXiv 1710.03667; with Sompolinsky, Neural Networks 2020;
// shared/specs/papers-01-18.md §7), the spec's smallest faithful experiment with the library's
// theory/generalization_dynamics.h (docs/theory.md).
//
// Linear teacher–student, N = 200 inputs, σ_w̄ = 1, σ_ε² = 1/SNR for SNR ∈ {0.5, 2, 10}, the load
// α = P/N ∈ {0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.5, 2, 4}; per (α, SNR) cell and seed `datasets` data sets,
// each trained by exact gradient flow from w0 = 0 (E_g(t) on a log grid of t ∈ [10⁻², 10⁵] and at
// t = ∞), and again to t = ∞ from w0 ~ N(0, σ_w0² I) (σ_w0² = init_var) for the frozen subspace. The
// infinite-size theory is the Marchenko–Pastur integral; the finite-size error of the asymptote is the
// gap between the exact finite-N expectation and the MP closed form. A random-ReLU-features student
// (widths H = r·P, r ∈ {0.25, ..., 8}, on rf_samples samples of the same teacher at SNR rf_snr) gives
// the test error against the width, at t = ∞ (gradient flow from 0 converges to the minimum-norm
// interpolant) and at the best time of the grid.
//
// Checks, fixed from the spec and the issue before any run (the paper's claims; "mean" = over seeds):
//   share of the (α ≠ 1, SNR, t) points where |simulated mean E_g(t) − MP integral| <= 3 s.e. + the
//     finite-size gap of the asymptote, mean over seeds                                  >= 0.95
//   largest |E_g(∞) − closed form| / closed form over the cells with |α − 1| >= 0.25        <= 0.1
//   SNRs (of 3) whose mean E_g(∞) against α peaks at α = 1                                 >= 3
//   largest |frozen offset / ((1 − α) σ_w0²) − 1| over α <= 0.75 (pooled over SNRs)         <= 0.1
//   α values (of 9) whose optimal stopping time (argmin of the mean curve) rises strictly
//     with SNR                                                                             >= 9
//   random features: |H_peak / P − 1| of the mean test error at t = ∞                        <= 0.1
//   random features: test error at H = 8P − at H = 2P (means, t = ∞)                          < 0
// (α = 1 is left out of the first check: the finite-N expectation of E_g(∞) does not exist there.)
#include <fmt/format.h>
#include <torch/torch.h>

#include "entries.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/run.h"
#include "stablelearn/report/svg.h"
#include "stablelearn/theory/generalization_dynamics.h"

namespace stablelearn::experiments::repro {

using nlohmann::json;

namespace {

namespace th = theory;

const std::vector<double>& loads() {
  static const std::vector<double> v = {0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0, 4.0};
  return v;
}
const std::vector<double>& snrs() {
  static const std::vector<double> v = {0.5, 2.0, 10.0};
  return v;
}
const std::vector<double>& width_ratios() {
  static const std::vector<double> v = {0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0, 4.0, 8.0};
  return v;
}

/// The finite times: per_decade points per decade over [1e-2, 1e5].
std::vector<double> time_grid(std::int64_t per_decade) {
  std::vector<double> t;
  const auto n = 7 * per_decade;
  for (std::int64_t i = 0; i <= n; ++i) t.push_back(std::pow(10.0, -2.0 + 7.0 * static_cast<double>(i) / static_cast<double>(n)));
  return t;
}

th::TeacherStudentOptions cell_options(std::int64_t n, double load, double snr, double init_std) {
  th::TeacherStudentOptions o;
  o.inputs = n;
  o.load = load;
  o.teacher_std = 1;
  o.noise_std = std::sqrt(1 / snr);
  o.init_std = init_std;
  return o;
}

struct MeanSe {
  double mean = 0, se = 0;
};
MeanSe mean_se(const std::vector<double>& v) {
  const double m = mean(v);
  return {m, v.size() > 1 ? std_dev(v) / std::sqrt(static_cast<double>(v.size())) : 0.0};
}

json nums(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(finite_or_null(x));
  return a;
}

std::size_t argmin(const std::vector<double>& v) { return static_cast<std::size_t>(std::min_element(v.begin(), v.end()) - v.begin()); }

json run_cell(const ReproContext& ctx, double load, double snr, std::uint64_t seed, const std::vector<double>& times) {
  const auto n = ctx.int_option("inputs"), sets = ctx.int_option("datasets");
  const double init_std = std::sqrt(ctx.option("init_var"));
  const auto o = cell_options(n, load, snr, init_std), o0 = cell_options(n, load, snr, 0.0);
  auto all_times = times;
  all_times.push_back(std::numeric_limits<double>::infinity());
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<std::vector<double>> eg(all_times.size());
  std::vector<double> offset, train_inf;
  for (std::int64_t s = 0; s < sets; ++s) {
    const auto d = th::sample_teacher_student(o, gen);
    const auto c = th::teacher_student_errors(d, o0, all_times, torch::zeros({n}, d.inputs.options()));
    for (std::size_t i = 0; i < all_times.size(); ++i) eg[i].push_back(c.test[i]);
    train_inf.push_back(c.train.back());
    offset.push_back(th::teacher_student_errors(d, o, {all_times.back()}).test[0] - c.test.back());
  }
  std::vector<double> m, se;
  for (const auto& v : eg) {
    const auto s = mean_se(v);
    m.push_back(s.mean);
    se.push_back(s.se);
  }
  const auto theory = th::mp_generalization_error(o0, all_times);
  const auto off = mean_se(offset);
  std::vector<double> finite_curve(m.begin(), m.end() - 1);
  json cell = {{"alpha", load},
               {"snr", snr},
               {"samples", o.samples()},
               {"eg_mean", nums(finite_curve)},
               {"eg_se", nums(std::vector<double>(se.begin(), se.end() - 1))},
               {"eg_theory", nums(std::vector<double>(theory.begin(), theory.end() - 1))},
               {"eg_inf_mean", finite_or_null(m.back())},
               {"eg_inf_se", finite_or_null(se.back())},
               {"eg_inf_closed", finite_or_null(th::asymptotic_error(o0))},
               {"eg_inf_finite", finite_or_null(th::finite_size_asymptotic_error(o0))},
               {"train_inf_mean", mean(train_inf)},
               {"offset_mean", off.mean},
               {"offset_se", off.se},
               {"offset_expected", (1 - std::min(1.0, load)) * init_std * init_std},
               {"t_opt", times[argmin(finite_curve)]},
               {"t_opt_theory", th::mp_optimal_stopping_time(o0, times.front(), times.back())}};
  return cell;
}

json run_random_features(const ReproContext& ctx, std::uint64_t seed, const std::vector<double>& times) {
  const auto p = ctx.int_option("rf_samples"), sets = ctx.int_option("rf_datasets"), test = ctx.int_option("rf_test");
  const auto n = ctx.int_option("inputs");
  auto o = cell_options(n, static_cast<double>(p) / static_cast<double>(n), ctx.option("rf_snr"), 0.0);
  SL_CHECK(o.samples() == p, ConfigError, "repro generalization-dynamics: options.rf_samples = ", p, " is not a whole load of N = ", n);
  auto all_times = times;
  all_times.push_back(std::numeric_limits<double>::infinity());
  auto gen = at::detail::createCPUGenerator(seed);
  json widths = json::array(), inf_mean = json::array(), inf_se = json::array(), best = json::array(), train = json::array();
  std::vector<th::TeacherStudentData> data;
  for (std::int64_t s = 0; s < sets; ++s) data.push_back(th::sample_teacher_student(o, gen));
  for (double r : width_ratios()) {
    const auto h = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(r * static_cast<double>(p))));
    std::vector<std::vector<double>> curves(all_times.size());
    std::vector<double> tr;
    for (const auto& d : data) {
      const auto c = th::random_features_errors(d, o, h, all_times, test, gen);
      for (std::size_t i = 0; i < all_times.size(); ++i) curves[i].push_back(c.test[i]);
      tr.push_back(c.train.back());
    }
    std::vector<double> m;
    for (const auto& v : curves) m.push_back(mean(v));
    const auto s = mean_se(curves.back());
    widths.push_back(h);
    inf_mean.push_back(finite_or_null(s.mean));
    inf_se.push_back(finite_or_null(s.se));
    best.push_back(*std::min_element(m.begin(), m.end() - 1));
    train.push_back(mean(tr));
  }
  return {{"samples", p}, {"ratios", width_ratios()}, {"widths", widths}, {"test_inf_mean", inf_mean}, {"test_inf_se", inf_se},
          {"test_best_mean", best}, {"train_inf_mean", train}};
}

json run_seed(const ReproContext& ctx, std::int64_t k) {
  const auto seed = ctx.seed + static_cast<std::uint64_t>(k);
  const auto progress = seed_progress(ctx, k);
  const auto times = time_grid(ctx.int_option("per_decade"));
  json cells = json::array();
  const auto total = static_cast<std::int64_t>(loads().size() * snrs().size()) + 1;
  std::int64_t done = 0;
  for (std::size_t a = 0; a < loads().size(); ++a)
    for (std::size_t s = 0; s < snrs().size(); ++s) {
      progress(done++, total, fmt::format("alpha {} snr {}", loads()[a], snrs()[s]));
      cells.push_back(run_cell(ctx, loads()[a], snrs()[s], seed * 1000003 + a * 31 + s, times));
    }
  progress(done++, total, "random features");
  const auto rf = run_random_features(ctx, seed * 1000003 + 977, times);
  progress(done, total, "done");
  return {{"times", times}, {"cells", cells}, {"rf", rf}};
}

// ---- summary ----

/// The values at `path` of cell `c` of every row.
std::vector<double> cell_values(const std::vector<json>& rows, std::size_t c, const std::string& key) {
  return per_seed_at(rows, "/cells/" + std::to_string(c) + "/" + key);
}

/// The mean over rows of an array field of cell c (null entries are +inf).
std::vector<double> mean_curve(const std::vector<json>& rows, std::size_t c, const std::string& key) {
  std::vector<double> out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& a = rows[r].at("cells").at(c).at(key);
    if (out.empty()) out.assign(a.size(), 0.0);
    for (std::size_t i = 0; i < a.size(); ++i)
      out[i] += (a[i].is_null() ? std::numeric_limits<double>::infinity() : a[i].get<double>()) / static_cast<double>(rows.size());
  }
  return out;
}

/// Share of the (α ≠ 1, SNR, t) points of one row within the finite-size error (see the file comment).
double agreement_share(const json& row) {
  std::size_t in = 0, all = 0;
  for (const auto& c : row.at("cells")) {
    if (c.at("alpha").get<double>() == 1.0 || c.at("eg_inf_finite").is_null() || c.at("eg_inf_closed").is_null()) continue;
    const double gap = std::abs(c.at("eg_inf_finite").get<double>() - c.at("eg_inf_closed").get<double>());
    const auto& m = c.at("eg_mean");
    for (std::size_t i = 0; i < m.size(); ++i) {
      const double dev = std::abs(m[i].get<double>() - c.at("eg_theory")[i].get<double>());
      in += dev <= 3 * c.at("eg_se")[i].get<double>() + gap ? 1 : 0;
      ++all;
    }
    const double dev = std::abs(c.at("eg_inf_mean").get<double>() - c.at("eg_inf_closed").get<double>());
    in += dev <= 3 * c.at("eg_inf_se").get<double>() + gap ? 1 : 0;
    ++all;
  }
  return static_cast<double>(in) / static_cast<double>(all);
}

std::string cell_name(double a, double snr) { return fmt::format("alpha_{}_snr_{}", a, snr); }

void write_figures(const RunDir& run, const std::vector<json>& rows) {
  const auto& times = rows[0].at("times");
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"};
  const std::vector<double> shown = {0.5, 0.9, 1.0, 1.1, 2.0, 4.0};
  for (std::size_t s = 0; s < snrs().size(); ++s) {
    report::SvgPlot plot(760, 480);
    plot.log_y(true);
    plot.set_range(-2, 5, 0.05, 200);
    plot.title(fmt::format("Linear teacher-student, N = 200, SNR {}: E_g(t), simulated mean (thick) and MP integral (thin)", snrs()[s]));
    plot.labels("log10 t", "generalisation error E_g");
    std::size_t ci = 0;
    for (std::size_t a = 0; a < loads().size(); ++a) {
      if (std::find(shown.begin(), shown.end(), loads()[a]) == shown.end()) continue;
      const auto c = a * snrs().size() + s;
      const auto sim = mean_curve(rows, c, "eg_mean");
      const auto& th = rows[0].at("cells").at(c).at("eg_theory");
      std::vector<std::pair<double, double>> ps, pt;
      for (std::size_t i = 0; i < sim.size(); ++i) {
        const double x = std::log10(times[i].get<double>());
        ps.emplace_back(x, std::min(sim[i], 200.0));
        pt.emplace_back(x, std::min(th[i].get<double>(), 200.0));
      }
      plot.polyline(ps, colours[ci], 3.0, 0.6);
      plot.polyline(pt, colours[ci], 1.2);
      plot.legend(fmt::format("alpha = {}", loads()[a]), colours[ci]);
      ++ci;
    }
    run.write_text(fmt::format("gd_curves_snr_{}.svg", snrs()[s]), plot.str());
  }
  {
    report::SvgPlot plot(760, 480);
    plot.log_y(true);
    plot.set_range(0, 4.2, 0.05, 1000);
    plot.title("E_g(infinity) against the load alpha = P/N: simulated means (markers), closed forms (lines)");
    plot.labels("alpha = P/N", "E_g(infinity)");
    for (std::size_t s = 0; s < snrs().size(); ++s) {
      std::vector<std::pair<double, double>> lo, hi;
      for (int i = 1; i <= 400; ++i) {
        const double a = 0.0105 * i;
        if (std::abs(a - 1) < 0.01) continue;
        const double v = th::asymptotic_error(cell_options(200, a, snrs()[s], 0.0));
        (a < 1 ? lo : hi).emplace_back(a, std::min(v, 1000.0));
      }
      plot.polyline(lo, colours[s], 1.5);
      plot.polyline(hi, colours[s], 1.5);
      for (std::size_t a = 0; a < loads().size(); ++a)
        plot.marker(loads()[a], std::min(mean(cell_values(rows, a * snrs().size() + s, "eg_inf_mean")), 1000.0), colours[s]);
      plot.legend(fmt::format("SNR {}", snrs()[s]), colours[s]);
    }
    run.write_text("gd_asymptote.svg", plot.str());
  }
  {
    report::SvgPlot plot(760, 480);
    plot.log_y(true);
    plot.set_range(-2.2, 3.2, 0.1, 1000);
    plot.title("Random ReLU features: test error against width H / P (mean over seeds)");
    plot.labels("log2 (H / P)", "test error");
    std::vector<std::pair<double, double>> inf, best;
    const auto ratios = rows[0].at("rf").at("ratios").get<std::vector<double>>();
    for (std::size_t i = 0; i < ratios.size(); ++i) {
      const double x = std::log2(ratios[i]);
      inf.emplace_back(x, std::min(mean(per_seed_at(rows, "/rf/test_inf_mean/" + std::to_string(i))), 1000.0));
      best.emplace_back(x, std::min(mean(per_seed_at(rows, "/rf/test_best_mean/" + std::to_string(i))), 1000.0));
    }
    plot.polyline(inf, colours[3], 2.0);
    plot.legend("trained to convergence (t = infinity)", colours[3]);
    plot.polyline(best, colours[0], 2.0);
    plot.legend("best early-stopping time", colours[0]);
    for (const auto& [x, y] : inf) plot.marker(x, y, colours[3], 3);
    run.write_text("gd_random_features.svg", plot.str());
  }
}

ReproOutcome summarise(const ReproContext& ctx, const std::vector<json>& rows) {
  ReproOutcome out;
  const double init_var = ctx.option("init_var");
  out.setup = {
      {"teacher", fmt::format("y = wbar . x + eps, x ~ N(0, I/N), N = {}, wbar ~ N(0, I), eps ~ N(0, 1/SNR), SNR in 0.5, 2, 10",
                              ctx.int_option("inputs"))},
      {"loads", "alpha = P/N in 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.5, 2, 4"},
      {"training", fmt::format("exact gradient flow of the linear student from w0 = 0 (thin SVD, theory/generalization_dynamics.h); "
                               "E_g(t) at {} log-spaced times in [1e-2, 1e5] and at t = infinity; {} data sets per cell and seed; "
                               "the frozen subspace: the same data from w0 ~ N(0, {} I) to t = infinity",
                               7 * ctx.int_option("per_decade") + 1, ctx.int_option("datasets"), init_var)},
      {"theory", "Marchenko-Pastur integral (midpoint rule in theta, 4096 nodes) and its closed-form asymptotes; the exact "
                 "finite-N expectation of E_g(infinity) for the finite-size gap"},
      {"random_features", fmt::format("student a . ReLU(F x~/sqrt(N))/sqrt(H), F ~ N(0, 1) fixed, a trained from 0 by the exact flow; "
                                      "P = {} samples of the same teacher at SNR {}, H/P in 0.25 ... 8, {} data sets per seed, "
                                      "{} test inputs (noise-free targets + sigma^2)",
                                      ctx.int_option("rf_samples"), ctx.option("rf_snr"), ctx.int_option("rf_datasets"),
                                      ctx.int_option("rf_test"))}};
  const auto ns = snrs().size();
  // Check 1: agreement of the curves.
  std::vector<double> share;
  for (const auto& r : rows) share.push_back(agreement_share(r));
  out.metrics["curve_agreement_share"] = seeds_json(share);
  // Per cell: asymptotes, closed forms, stopping times.
  double worst_rel = 0;
  std::size_t peaks = 0, rising = 0;
  json peak_alpha = json::object();
  for (std::size_t s = 0; s < ns; ++s) {
    std::size_t best = 0;
    double top = -1;
    for (std::size_t a = 0; a < loads().size(); ++a) {
      const auto c = a * ns + s;
      const auto v = cell_values(rows, c, "eg_inf_mean");
      const double closed = rows[0].at("cells").at(c).at("eg_inf_closed").is_null()
                                ? std::numeric_limits<double>::infinity()
                                : rows[0].at("cells").at(c).at("eg_inf_closed").get<double>();
      const auto name = cell_name(loads()[a], snrs()[s]);
      out.metrics["eg_inf_" + name] = seeds_json(v);
      out.metrics["eg_inf_closed_" + name] = finite_or_null(closed);
      out.metrics["eg_inf_finite_n_" + name] = rows[0].at("cells").at(c).at("eg_inf_finite");
      out.metrics["t_opt_" + name] = seeds_json(cell_values(rows, c, "t_opt"));
      out.metrics["t_opt_theory_" + name] = rows[0].at("cells").at(c).at("t_opt_theory");
      if (std::abs(loads()[a] - 1) >= 0.25) worst_rel = std::max(worst_rel, std::abs(mean(v) - closed) / closed);
      if (mean(v) > top) top = mean(v), best = a;
    }
    peak_alpha[fmt::format("snr_{}", snrs()[s])] = loads()[best];
    peaks += loads()[best] == 1.0 ? 1 : 0;
  }
  out.metrics["eg_inf_peak_alpha"] = peak_alpha;
  const auto& times = rows[0].at("times");
  for (std::size_t a = 0; a < loads().size(); ++a) {
    double prev = -1;
    bool up = true;
    for (std::size_t s = 0; s < ns; ++s) {
      const auto m = mean_curve(rows, a * ns + s, "eg_mean");
      const double t = times[argmin(m)].get<double>();
      up = up && t > prev;
      prev = t;
    }
    rising += up ? 1 : 0;
  }
  // The frozen subspace.
  double worst_offset = 0;
  for (std::size_t a = 0; a < loads().size(); ++a) {
    std::vector<double> pooled(rows.size(), 0.0);
    for (std::size_t s = 0; s < ns; ++s) {
      const auto v = cell_values(rows, a * ns + s, "offset_mean");
      for (std::size_t r = 0; r < rows.size(); ++r) pooled[r] += v[r] / static_cast<double>(ns);
    }
    out.metrics[fmt::format("frozen_offset_alpha_{}", loads()[a])] = seeds_json(pooled);
    out.metrics[fmt::format("frozen_offset_expected_alpha_{}", loads()[a])] = (1 - std::min(1.0, loads()[a])) * init_var;
    if (loads()[a] <= 0.75) worst_offset = std::max(worst_offset, std::abs(mean(pooled) / ((1 - loads()[a]) * init_var) - 1));
  }
  // Random features.
  const auto ratios = rows[0].at("rf").at("ratios").get<std::vector<double>>();
  std::vector<double> rf_mean;
  for (std::size_t i = 0; i < ratios.size(); ++i) {
    const auto v = per_seed_at(rows, "/rf/test_inf_mean/" + std::to_string(i));
    rf_mean.push_back(mean(v));
    out.metrics[fmt::format("rf_test_inf_ratio_{}", ratios[i])] = seeds_json(v);
    out.metrics[fmt::format("rf_test_best_ratio_{}", ratios[i])] = seeds_json(per_seed_at(rows, "/rf/test_best_mean/" + std::to_string(i)));
  }
  const auto peak = static_cast<std::size_t>(std::max_element(rf_mean.begin(), rf_mean.end()) - rf_mean.begin());
  const auto at_ratio = [&](double r) {
    return rf_mean[static_cast<std::size_t>(std::find(ratios.begin(), ratios.end(), r) - ratios.begin())];
  };
  out.metrics["rf_peak_ratio"] = ratios[peak];
  out.checks = {
      make_check("share of (alpha != 1, SNR, t) points with |simulated E_g(t) - MP integral| <= 3 s.e. + finite-size gap (mean over seeds)",
                 mean(share), ">=", 0.95),
      make_check("largest |E_g(inf) - closed form| / closed form, |alpha - 1| >= 0.25 (means over seeds)", worst_rel, "<=", 0.1),
      make_check("SNRs (of 3) whose E_g(inf) against alpha peaks at alpha = 1 (means over seeds)", static_cast<double>(peaks), ">=", 3),
      make_check("largest |frozen offset / ((1 - alpha) sigma_w0^2) - 1|, alpha <= 0.75 (pooled over SNRs, mean over seeds)",
                 worst_offset, "<=", 0.1),
      make_check("alpha values (of 9) whose optimal stopping time rises strictly with SNR (mean curves over seeds)",
                 static_cast<double>(rising), ">=", 9),
      make_check("random features: |H_peak / P - 1| of the test error at t = inf (means over seeds)", std::abs(ratios[peak] - 1), "<=", 0.1),
      make_check("random features: test error at H = 8P - at H = 2P, t = inf (means over seeds)", at_ratio(8.0) - at_ratio(2.0), "<", 0)};
  if (ctx.run) write_figures(*ctx.run, rows);
  return out;
}

}  // namespace

ReproEntry make_generalization_dynamics_repro() {
  ReproEntry e;
  e.name = "generalization-dynamics";
  e.paper = "High-dimensional dynamics of generalization error in neural networks (Advani, Saxe, Sompolinsky; arXiv 1710.03667, "
            "Neural Networks 2020)";
  e.claim = "In linear teacher-student learning the Marchenko-Pastur theory predicts the gradient-flow error curves; overtraining "
            "is worst at alpha = P/N = 1 (E_g(inf) = sigma^2/(alpha-1) above and (1-alpha) sigma_wbar^2 + sigma^2 alpha/(1-alpha) "
            "below), the frozen subspace keeps (1-alpha) sigma_w0^2 of the initial weights, the optimal stopping time grows with "
            "SNR, and a random-features student's test error peaks at width = samples.";
  e.options = {{"inputs", "input dimension N", 200, 200, true},
               {"datasets", "data sets per (alpha, SNR) cell and seed", 20, 4, true},
               {"init_var", "sigma_w0^2 of the frozen-subspace runs", 1, 1, false},
               {"per_decade", "times per decade of the grid over [1e-2, 1e5]", 20, 10, true},
               {"rf_samples", "samples P of the random-features student", 200, 100, true},
               {"rf_datasets", "random-features data sets per seed", 10, 2, true},
               {"rf_test", "test inputs of the random-features student", 2000, 500, true},
               {"rf_snr", "SNR of the random-features teacher", 2, 2, false}};
  e.run_seed = run_seed;
  e.summarise = summarise;
  return e;
}

}  // namespace stablelearn::experiments::repro
