// End-to-end tests of `stablelearn repro`: the list, every entry with --quick (results.json's
// checks recomputed here from their value and threshold, the verdict from the checks, numbers
// recomputed from the per-seed rows and the closed forms), determinism for a seed, resume and the
// changed-config check, and the errors (exit status 2) against "not reproduced" (exit status 0).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "cli_testing.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/diagnostics/rdm.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::vector<std::string> kEntries = {"edge-of-stability", "sgd-minimum", "trajectory", "intrinsic-dim", "commutator",
                                           "stability-gap", "stability-gap-table", "lfd-forgetting", "stable-spam", "width-lr", "elr", "ska", "dppn", "bo-rep", "mip",
                                           "causal-minimax", "malignant-tail", "equivariance", "stableun", "koopman", "lfm-stability", "execution-manifolds",
                                           "gka", "generalization-dynamics", "cnn-kernel-curves", "hyper-pp", "drl-diagnosis", "drl-diagnosis-pixels", "stratified-grpo", "gd-sgd-minima", "grokalign", "rlvr-geometry", "relex", "shesha", "intrinsic-dim-sizes", "finetune-intrinsic-dim", "fscil", "care", "lcia", "coso", "sculpting-subspaces"};

json read_json(const fs::path& p) { return json::parse(sl::read_file_text(p)); }

std::vector<json> metrics_rows(const fs::path& run) {
  std::vector<json> rows;
  for (const auto& line : sl::read_lines(run / "metrics.jsonl")) rows.push_back(json::parse(line));
  return rows;
}

/// The run's results.json after the file's own checks: every check's pass recomputed from value,
/// comparison and threshold; the verdict from all of them; config.toml and summary.json present.
json checked_results(const fs::path& run, const std::string& name) {
  const auto r = read_json(run / "results.json");
  EXPECT_EQ(r.at("experiment"), name);
  for (const char* key : {"paper", "claim"}) EXPECT_FALSE(r.at(key).get<std::string>().empty()) << key;
  EXPECT_TRUE(r.at("setup").is_object());
  EXPECT_FALSE(r.at("metrics").empty());
  EXPECT_FALSE(r.at("checks").empty());
  bool all = true;
  for (const auto& c : r.at("checks")) {
    const auto& v = c.at("value");
    const double t = c.at("threshold").get<double>();
    const auto cmp = c.at("comparison").get<std::string>();
    EXPECT_TRUE(cmp == "<=" || cmp == ">=" || cmp == "<" || cmp == ">") << cmp;
    const double x = v.is_null() ? 0.0 : v.get<double>();
    const bool pass = !v.is_null() && (cmp == "<=" ? x <= t : cmp == ">=" ? x >= t : cmp == "<" ? x < t : x > t);
    EXPECT_EQ(c.at("pass").get<bool>(), pass) << c.dump();
    all = all && pass;
  }
  EXPECT_EQ(r.at("verdict"), all ? "reproduced" : "not reproduced");
  const auto cfg = sl::Config::from_file(run / "config.toml").flat_values();
  EXPECT_EQ(cfg.at("repro.experiment"), "'" + name + "'");
  const auto s = read_json(run / "summary.json");
  EXPECT_TRUE(s.at("runtime").contains("threads"));
  EXPECT_GT(s.at("seconds").get<double>(), 0);
  return r;
}

double num(const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); }

// The drl-diagnosis entries (state and pixel CartPole) log the same per-agent episode block: 3
// greedy episodes of returns in [1, 500] (CartPole pays 1 per step) with their mean, the first
// episode's ||v|| series as long as its return and its oscillation mean|diff| / mean, the agent's
// oscillation the mean over episodes, every Lambda in [0, 1]. Recomputed here for agent `a`; returns
// the sum of the returns.
double expect_drl_episodes(const json& r, const char* a) {
  const auto rets = r.at("returns").get<std::vector<double>>();
  EXPECT_EQ(rets.size(), 3u) << a;
  if (rets.size() != 3u) return 0;
  double rsum = 0;
  for (double x : rets) {
    EXPECT_TRUE(x >= 1 && x <= 500) << a << " " << x;
    rsum += x;
  }
  EXPECT_NEAR(num(r.at("return")), rsum / 3, 1e-9) << a;
  const auto nrm = r.at("v_norms_episode0").get<std::vector<double>>();
  EXPECT_EQ(nrm.size(), static_cast<std::size_t>(rets[0])) << a;
  const auto& osc = r.at("oscillations");
  EXPECT_EQ(osc.size(), 3u) << a;
  if (osc.size() != 3u) return rsum;
  if (nrm.size() >= 2) {
    double tv = 0, sum = 0;
    for (std::size_t t = 0; t + 1 < nrm.size(); ++t) tv += std::abs(nrm[t + 1] - nrm[t]);
    for (double x : nrm) sum += x;
    if (sum > 0) {
      EXPECT_NEAR(num(osc[0]), (tv / double(nrm.size() - 1)) / (sum / double(nrm.size())), 1e-9) << a;
    }
  }
  EXPECT_NEAR(num(r.at("oscillation")), (num(osc[0]) + num(osc[1]) + num(osc[2])) / 3, 1e-9) << a;
  for (const char* l : {"lambda_clean", "lambda_noise", "lambda_scale", "lambda_fgsm"}) {
    const double x = num(r.at(l));
    EXPECT_TRUE(x >= 0 && x <= 1 + 1e-9) << a << " " << l << " " << x;
  }
  return rsum;
}

// Both drl-diagnosis entries state the same 7 checks: the two agents' returns, vanilla's clean
// Lambda, its drops under noise, scaling and FGSM, and the adversarial/vanilla oscillation ratio.
void expect_drl_checks(const json& res, const json& row) {
  auto val = [&](const char* a, const char* k) { return num(row.at(a).at(k)); };
  const auto& checks = res.at("checks");
  ASSERT_EQ(checks.size(), 7u);
  EXPECT_NEAR(checks[0].at("value").get<double>(), val("vanilla", "return"), 1e-9);
  EXPECT_NEAR(checks[1].at("value").get<double>(), val("adversarial", "return"), 1e-9);
  EXPECT_NEAR(checks[2].at("value").get<double>(), val("vanilla", "lambda_clean"), 1e-12);
  EXPECT_NEAR(checks[3].at("value").get<double>(), val("vanilla", "lambda_noise") - val("vanilla", "lambda_clean"), 1e-12);
  EXPECT_NEAR(checks[4].at("value").get<double>(), val("vanilla", "lambda_scale") - val("vanilla", "lambda_clean"), 1e-12);
  EXPECT_NEAR(checks[5].at("value").get<double>(), val("vanilla", "lambda_fgsm") - val("vanilla", "lambda_clean"), 1e-12);
  EXPECT_NEAR(checks[6].at("value").get<double>(), val("adversarial", "oscillation") / val("vanilla", "oscillation"), 1e-9);
}

}  // namespace

TEST(ReproCli, ListShowsEveryEntryWithPaperAndClaim) {
  const auto r = sl::testing::run_cli("repro list");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& name : kEntries) EXPECT_NE(r.out.find(name + " "), std::string::npos) << name;
  EXPECT_NE(r.out.find("Edge of Stability (Cohen"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Li, Farkhoor, Liu, Yosinski"), std::string::npos) << r.out;
  std::size_t claims = 0;
  for (auto p = r.out.find("claim: "); p != std::string::npos; p = r.out.find("claim: ", p + 1)) ++claims;
  EXPECT_EQ(claims, kEntries.size());
}

// One test per entry, each well under 60 s: the quick run, its file checks and numbers recomputed
// from the per-seed row and a closed form.
class ReproQuick : public ::testing::TestWithParam<std::string> {};

TEST_P(ReproQuick, RunsAndItsChecksFollowFromItsNumbers) {
  const auto name = GetParam();
  const auto run = sl::testing::temp_dir("repro_" + name) / "run";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = sl::testing::run_cli("repro " + name + " --out " + run.string() + " --quick");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_LT(seconds, 60.0) << name << " --quick took " << seconds << " s";
  const auto res = checked_results(run, name);
  EXPECT_NE(r.out.find("verdict: " + res.at("verdict").get<std::string>()), std::string::npos) << r.out;
  const auto rows = metrics_rows(run);
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0].at("result");
  const auto& m = res.at("metrics");
  if (name == "edge-of-stability") {
    // max ηλ/2 recomputed from the sharpness trace, with η from config.toml.
    const double lr = std::stod(sl::Config::from_file(run / "config.toml").flat_values().at("options.lr"));
    double peak = 0;
    for (const auto& t : row.at("trace")) peak = std::max(peak, t.at("lambda_max").get<double>() * lr / 2);
    EXPECT_NEAR(m.at("max_ratio").get<double>(), peak, 1e-12);
    EXPECT_TRUE(fs::exists(run / "sharpness.svg"));
  } else if (name == "sgd-minimum") {
    // The trace condition ηp tr(H)/2 with p = (N − B)/(B(N − 1)) (B = 1: p = 1) and η λ_max / 2.
    const auto& at = row.at("lr");
    const double lr = at.at("lr").get<double>(), n = 200, b = 1, p = (n - b) / (b * (n - 1));
    EXPECT_NEAR(num(m.at("trace_ratio_at_eta")), lr * p * num(at.at("trace")) / 2, 1e-9 * std::abs(num(at.at("trace"))));
    EXPECT_NEAR(num(m.at("sharpness_ratio_at_eta")), lr * num(at.at("lambda_max")) / 2, 1e-9 * std::abs(num(at.at("lambda_max"))));
    EXPECT_NEAR(num(m.at("trace_2eta_over_eta")), num(row.at("lr2").at("trace")) / num(at.at("trace")), 1e-12);
  } else if (name == "trajectory") {
    // r90 recomputed from the reported ratios (top 10, of which the cumulative sum reaches 0.9).
    const auto ratios = row.at("sgd").at("explained_variance_ratio").get<std::vector<double>>();
    double c = 0;
    int r90 = 0;
    while (r90 < static_cast<int>(ratios.size()) && c < 0.9) c += ratios[static_cast<std::size_t>(r90++)];
    if (c >= 0.9) {
      EXPECT_EQ(m.at("rank_90").get<int>(), r90);
    }
    EXPECT_EQ(num(m.at("rank_90_gap")), num(m.at("random_walk_rank_90")) - num(m.at("rank_90")));
    EXPECT_TRUE(fs::exists(run / "trajectory_pca.svg"));
  } else if (name == "intrinsic-dim") {
    // d_int90 = the smallest d whose accuracy reaches 0.9 × the full model's, from the rows.
    for (const char* net : {"narrow", "wide"}) {
      const auto& sweep = row.at(net);
      const double thr = 0.9 * sweep.at("full_test_accuracy").get<double>();
      json expected = nullptr;
      for (const auto& s : sweep.at("subspaces"))
        if (s.at("test_accuracy").get<double>() >= thr) {
          expected = s.at("d");
          break;
        }
      EXPECT_EQ(m.at(std::string("d_int90_") + net), expected) << net;
    }
    EXPECT_TRUE(fs::exists(run / "intrinsic_dim.svg"));
  } else if (name == "commutator") {
    // Perpendicular share from the energy fractions; random baseline sqrt(k/D) in closed form.
    const auto& rep = row.at("report");
    double min_perp = 1;
    for (const auto& x : rep.at("measurements")) min_perp = std::min(min_perp, std::sqrt(1 - x.at("median_energy_fraction").get<double>()));
    EXPECT_NEAR(m.at("min_perpendicular_share").get<double>(), min_perp, 1e-12);
    EXPECT_NEAR(m.at("expected_random_rho").get<double>(), std::sqrt(3.0 / rep.at("parameters").get<double>()), 1e-12);
    EXPECT_TRUE(fs::exists(run / "commutator.svg"));
  } else if (name == "stability-gap") {
    // Drops and recoveries recomputed from the cl run's own tracked accuracies (metrics.jsonl).
    std::map<std::int64_t, std::vector<std::vector<double>>> tracked;
    std::ifstream in(run / "cl_seed0" / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = json::parse(line);
      if (j.value("event", "") == "track") tracked[j.at("task").get<std::int64_t>()].push_back(j.at("acc").get<std::vector<double>>());
    }
    std::vector<double> drops, recoveries;
    for (std::int64_t t = 1; t < static_cast<std::int64_t>(tracked.size()); ++t)
      for (std::size_t k = 0; k < static_cast<std::size_t>(t); ++k) {
        double lo = 2;
        for (const auto& a : tracked[t]) lo = std::min(lo, a[k]);
        drops.push_back(tracked[t - 1].back()[k] - lo);
        recoveries.push_back(tracked[t].back()[k] - lo);
      }
    ASSERT_EQ(drops.size(), 3u);  // --quick: 3 tasks, pairs (0,1), (0,2), (1,2)
    std::sort(drops.begin(), drops.end());
    std::sort(recoveries.begin(), recoveries.end());
    EXPECT_NEAR(num(m.at("median_drop")), drops[1], 1e-12);
    EXPECT_NEAR(num(m.at("median_recovery")), recoveries[1], 1e-12);
    EXPECT_TRUE(fs::exists(run / "accuracy_curves.svg"));
  } else if (name == "stability-gap-table") {
    // Every cell's ACC, min-ACC, WC-ACC and just-learned accuracy recomputed from its cl run's own
    // tracked accuracies (metrics.jsonl "track" rows), by the paper's definitions, not the tracker.
    std::vector<std::pair<std::string, bool>> cells;  // name, checked
    for (const char* sc : {"class", "task", "domain"})
      for (const char* st : {"finetune", "er", "ewc", "lwf", "agem"}) cells.emplace_back(std::string(st) + "_" + sc, std::string(st) != "finetune");
    cells.emplace_back("joint_rotated", true);
    cells.emplace_back("finetune_rotated", false);
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 26u);
    std::size_t ci = 0;
    for (const auto& [cell, checked] : cells) {
      std::vector<std::pair<std::size_t, std::vector<double>>> track;  // (task, acc)
      std::ifstream in(run / ("cl_seed0_" + cell) / "metrics.jsonl");
      for (std::string line; std::getline(in, line);) {
        const auto j = json::parse(line);
        if (j.value("event", "") == "track") track.emplace_back(j.at("task").get<std::size_t>(), j.at("acc").get<std::vector<double>>());
      }
      ASSERT_FALSE(track.empty()) << cell;
      const std::size_t T = 2;  // --quick: 2 tasks in every stream
      const auto& last = track.back().second;
      ASSERT_EQ(last.size(), T) << cell;
      double acc = 0, min_acc = 0, just = 0;
      for (double a : last) acc += a / T;
      for (std::size_t i = 0; i + 1 < T; ++i) {
        double lo = 2, learned = 0;
        for (const auto& [t, a] : track) {
          if (t > i) lo = std::min(lo, a[i]);
          if (t == i) learned = a[i];
        }
        min_acc += lo / (T - 1);
        just += learned / (T - 1);
      }
      const double wc = last[T - 1] / T + (1.0 - 1.0 / T) * min_acc;
      const auto& c = row.at(cell);
      EXPECT_NEAR(c.at("acc").get<double>(), acc, 1e-12) << cell;
      EXPECT_NEAR(c.at("min_acc").get<double>(), min_acc, 1e-12) << cell;
      EXPECT_NEAR(c.at("wc_acc").get<double>(), wc, 1e-12) << cell;
      EXPECT_NEAR(c.at("just_learned").get<double>(), just, 1e-12) << cell;
      EXPECT_NEAR(num(m.at(cell + "_gap")), just - min_acc, 1e-12) << cell;
      EXPECT_NEAR(num(m.at(cell + "_hidden")), acc - wc, 1e-12) << cell;
      EXPECT_EQ(c.at("first_task_curve").size(), track.size()) << cell;
      if (checked) {
        EXPECT_NEAR(checks[ci].at("value").get<double>(), just - min_acc, 1e-12) << cell;
        EXPECT_EQ(checks[ci].at("threshold").get<double>(), 0.10) << cell;
        EXPECT_NEAR(checks[ci + 1].at("value").get<double>(), acc - wc, 1e-12) << cell;
        EXPECT_EQ(checks[ci + 1].at("threshold").get<double>(), 0.05) << cell;
        ci += 2;
      }
    }
    for (const char* sc : {"class", "task", "domain", "rotated"})
      EXPECT_TRUE(fs::exists(run / (std::string("stability_gap_table_") + sc + ".svg"))) << sc;
    EXPECT_TRUE(fs::exists(run / "cl_seed0_er_class" / "accuracy_curves.svg"));
  } else if (name == "lfd-forgetting") {
    // Forgetting ratios recomputed from each lfd train run's own summary.json (median DTW per cell).
    auto ratio = [&](const std::string& variant) {
      const auto s = json::parse(std::ifstream(run / ("lfd_seed0_" + variant) / "summary.json"));
      const auto& med = s.at("median_errors");
      const auto n = s.at("completed_tasks").get<int>();
      std::vector<double> r;
      for (int j = 0; j + 1 < n; ++j)
        r.push_back(med.at("train_task_" + std::to_string(n - 1)).at("eval_task_" + std::to_string(j)).at("dtw").get<double>() /
                    med.at("train_task_" + std::to_string(j)).at("eval_task_" + std::to_string(j)).at("dtw").get<double>());
      std::sort(r.begin(), r.end());
      return r.size() % 2 ? r[r.size() / 2] : (r[r.size() / 2 - 1] + r[r.size() / 2]) / 2;
    };
    EXPECT_NEAR(num(m.at("ratio_regularised")), ratio("regularised"), 1e-9);
    EXPECT_NEAR(num(m.at("ratio_finetune")), ratio("finetune"), 1e-9);
  } else if (name == "stable-spam") {
    // 4 variants x 3 learning rates, every held-out loss finite and below a uniform guess over the
    // vocabulary's log-size at most a little; the two ratios recomputed from the runs; INT4 and
    // FP32 Adam differ (the quantisation is active).
    const auto& runs = row.at("runs");
    ASSERT_EQ(runs.size(), 12u);
    const double uniform = std::log(row.at("vocab").get<double>());
    std::map<std::pair<std::string, double>, double> loss;
    std::vector<double> rates;
    for (const auto& r : runs) {
      const double l = num(r.at("final_loss")), lr = r.at("lr").get<double>();
      EXPECT_TRUE(std::isfinite(l)) << r.at("variant");
      EXPECT_LT(l, uniform + 0.5) << r.at("variant");
      loss[{r.at("variant").get<std::string>(), lr}] = l;
      if (std::find(rates.begin(), rates.end(), lr) == rates.end()) rates.push_back(lr);
    }
    std::sort(rates.begin(), rates.end());
    ASSERT_EQ(rates.size(), 3u);
    EXPECT_NEAR(rates[2], 1e-2, 1e-15);
    auto at = [&](const std::string& v, int i) { return loss[std::make_pair(v, rates[static_cast<std::size_t>(i)])]; };
    EXPECT_NEAR(num(m.at("adam_int4_over_stable_spam_int4_at_top_lr")), at("adam_int4", 2) / at("stable_spam_int4", 2), 1e-12);
    auto best = [&](const std::string& v) { return std::min({at(v, 0), at(v, 1), at(v, 2)}); };
    EXPECT_NEAR(num(m.at("best_stable_spam_int4_over_best_adam_fp32")), best("stable_spam_int4") / best("adam_fp32"), 1e-12);
    EXPECT_NE(at("adam_int4", 0), at("adam_fp32", 0));
  } else if (name == "width-lr") {
    // Per loss: each eta_max is the first stable rate of its top-down scan (every rate tried before
    // it unstable, each one half-octave below the previous), and the exponent is the least-squares
    // slope of log eta_max against log width, recomputed here.
    for (const char* loss : {"ce", "mse"}) {
      std::vector<double> lx, ly;
      for (const auto& w : row.at(loss).at("widths")) {
        const auto& tried = w.at("tried");
        ASSERT_FALSE(tried.empty());
        for (std::size_t i = 0; i < tried.size(); ++i) {
          EXPECT_EQ(tried[i].at("stable").get<bool>(), i + 1 == tried.size()) << loss << " " << i;
          if (i > 0) {
            EXPECT_NEAR(tried[i].at("lr").get<double>() * std::sqrt(2.0), tried[i - 1].at("lr").get<double>(), 1e-12);
          }
        }
        EXPECT_EQ(w.at("eta_max").get<double>(), tried.back().at("lr").get<double>());
        lx.push_back(std::log(w.at("width").get<double>()));
        ly.push_back(std::log(w.at("eta_max").get<double>()));
      }
      const double n = static_cast<double>(lx.size());
      double sx = 0, sy = 0, sxx = 0, sxy = 0;
      for (std::size_t i = 0; i < lx.size(); ++i) sx += lx[i], sy += ly[i], sxx += lx[i] * lx[i], sxy += lx[i] * ly[i];
      EXPECT_NEAR(num(m.at(std::string(loss) + "_exponent")), (n * sxy - sx * sy) / (n * sxx - sx * sx), 1e-9) << loss;
    }
  } else if (name == "elr") {
    // Per noise rate: the corrupted count is round(rate · samples); per method one value per epoch,
    // every share in [0, 1]; the final-accuracy gap and the memorised ratio recomputed from the
    // curves.
    for (const auto& [key, rate] : std::vector<std::pair<std::string, double>>{{"40", 0.4}, {"80", 0.8}}) {
      const auto& r = row.at(key);
      EXPECT_EQ(r.at("corrupted").get<double>(), std::round(rate * 1000)) << key;
      for (const char* meth : {"ce", "elr"})
        for (const char* curve : {"test_acc", "memorised", "corrected"}) {
          const auto v = r.at(meth).at(curve).get<std::vector<double>>();
          ASSERT_EQ(v.size(), 3u) << meth << " " << curve;
          for (double x : v) EXPECT_TRUE(x >= 0 && x <= 1) << meth << " " << curve << " " << x;
        }
      const double gap = r.at("elr").at("test_acc").back().get<double>() - r.at("ce").at("test_acc").back().get<double>();
      EXPECT_NEAR(num(m.at("elr_minus_ce_final_test_acc_" + key)), gap, 1e-12);
      const double ratio = r.at("elr").at("memorised").back().get<double>() / r.at("ce").at("memorised").back().get<double>();
      EXPECT_NEAR(num(m.at("elr_over_ce_final_memorised_" + key)), ratio, 1e-12);
    }
    EXPECT_TRUE(fs::exists(run / "elr_test_acc.svg"));
    EXPECT_TRUE(fs::exists(run / "elr_memorised.svg"));
  } else if (name == "ska") {
    // --quick: the pairs K = 25, 50, 100 at eta K = 0.5, reference K = 100. Each run's time axis is
    // eta (k - 1), its cumulative entropy the running sum of its per-step entropies; the collapse
    // gaps recomputed here with a separate interpolation on 101 points of [0, 0.5 - 2 * 0.5 / 25].
    const auto& runs = row.at("runs");
    ASSERT_EQ(runs.size(), 3u);
    auto at = [](const std::vector<double>& x, const std::vector<double>& y, double q) {
      std::size_t i = 1;
      while (i + 1 < x.size() && x[i] < q) ++i;
      if (q <= x.front()) return y.front();
      if (q >= x.back()) return y.back();
      return y[i - 1] + (y[i] - y[i - 1]) * (q - x[i - 1]) / (x[i] - x[i - 1]);
    };
    for (const auto& r : runs) {
      const double eta = r.at("eta").get<double>();
      const auto K = r.at("K").get<int>();
      EXPECT_NEAR(eta * K, 0.5, 1e-12);
      const auto t = r.at("t").get<std::vector<double>>();
      ASSERT_EQ(t.size(), static_cast<std::size_t>(K - 1));
      for (std::size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(t[i], eta * static_cast<double>(i), 1e-12);
      for (std::size_t l = 0; l < 4; ++l) {
        const auto h = r.at("entropy")[l].get<std::vector<double>>();
        const auto c = r.at("cumulative_entropy")[l].get<std::vector<double>>();
        double sum = 0;
        for (std::size_t i = 0; i < h.size(); ++i) {
          sum += h[i];
          EXPECT_NEAR(c[i], sum, 1e-9 * (1 + std::abs(sum)));
        }
        EXPECT_EQ(h[0], 0) << "step 1 has no decision shift";
      }
      const double acc = r.at("readout_accuracy").get<double>();
      EXPECT_TRUE(acc >= 0 && acc <= 1);
    }
    double worst = 0;
    for (std::size_t p = 0; p < 2; ++p) {
      double g = 0;
      for (std::size_t l = 0; l < 4; ++l) {
        const auto x = runs[p].at("t").get<std::vector<double>>(), xr = runs[2].at("t").get<std::vector<double>>();
        const auto c = runs[p].at("cumulative_entropy")[l].get<std::vector<double>>();
        const auto cr = runs[2].at("cumulative_entropy")[l].get<std::vector<double>>();
        double num = 0, den = 0;
        for (int j = 0; j <= 100; ++j) {
          const double q = (0.5 - 2 * 0.5 / 25) * j / 100.0;
          num = std::max(num, std::abs(at(x, c, q) - at(xr, cr, q)));
          den = std::max(den, std::abs(at(xr, cr, q)));
        }
        g = std::max(g, num / den);
      }
      EXPECT_NEAR(row.at("collapse_gaps")[p].at("gap").get<double>(), g, 1e-9) << p;
      worst = std::max(worst, g);
    }
    EXPECT_NEAR(num(m.at("collapse_gap")), worst, 1e-9);
    for (int l = 1; l <= 4; ++l) EXPECT_TRUE(fs::exists(run / ("ska_entropy_layer" + std::to_string(l) + ".svg")));
  } else if (name == "dppn") {
    // --quick: 5 replicates; every AULC in (0, 1]; the mean and the 95 % t interval (t_{0.975,4} =
    // 2.7764) of one paired difference recomputed from the replicates.
    const auto& reps = row.at("replicates");
    ASSERT_EQ(reps.size(), 5u);
    std::vector<double> d;
    for (const auto& rep : reps) {
      for (const char* target : {"same_family", "other_family"})
        for (const char* v : {"cold", "bias_param", "lr_param", "bias_structure", "lr_structure", "lr_uniform"}) {
          const double a = rep.at(target).at(v).get<double>();
          EXPECT_TRUE(a > 0 && a <= 1) << target << " " << v << " " << a;
        }
      d.push_back(rep.at("same_family").at("lr_structure").get<double>() - rep.at("same_family").at("cold").get<double>());
    }
    double mean = 0, ss = 0;
    for (double x : d) mean += x / 5;
    for (double x : d) ss += (x - mean) * (x - mean);
    const double half = 2.7764 * std::sqrt(ss / 4 / 5);
    const auto& ci = m.at("delta_aulc_lr_structure_same_family");
    EXPECT_NEAR(ci.at("mean").get<double>(), mean, 1e-12);
    EXPECT_NEAR(ci.at("ci95_low").get<double>(), mean - half, 1e-12);
    EXPECT_NEAR(res.at("checks")[0].at("value").get<double>(), ci.at("ci95_low").get<double>(), 0);
    EXPECT_TRUE(fs::exists(run / "dppn_curves.svg"));
  } else if (name == "bo-rep") {
    // Equal budgets: both methods used exactly hvp_budget (quick: 200) Hessian-vector products and
    // lower-gradient counts within one stocBiO iteration of each other; each method's step is the
    // grid point with the lowest validation loss; the differences recomputed from the row; the
    // corrupted count is 40 % of the training images.
    const auto& bo = row.at("bo_rep");
    const auto& sb = row.at("stocbio");
    EXPECT_EQ(bo.at("hvps").get<int>(), 200);
    EXPECT_EQ(sb.at("hvps").get<int>(), 200);
    EXPECT_LE(std::abs(bo.at("lower_gradients").get<double>() - sb.at("lower_gradients").get<double>()),
              sb.at("lower_gradients").get<double>() / 20 + 1);
    EXPECT_EQ(row.at("corrupted").get<int>(), 200);  // round(0.4 · 500)
    for (const auto& [method, grid] : {std::pair<const char*, const char*>{"bo_rep", "bo_rep_grid"}, {"stocbio", "stocbio_grid"}}) {
      double best = std::numeric_limits<double>::infinity(), lr = 0;
      for (const auto& t : row.at(grid))
        if (!t.at("val_loss").is_null() && t.at("val_loss").get<double>() < best) best = t.at("val_loss").get<double>(), lr = t.at("lr").get<double>();
      EXPECT_EQ(row.at(method).at("lr").get<double>(), lr) << method;
    }
    EXPECT_NEAR(num(m.at("test_acc_bo_rep_minus_stocbio")), num(bo.at("test_acc")) - num(sb.at("test_acc")), 1e-12);
    EXPECT_NEAR(num(m.at("test_acc_bo_rep_minus_uniform")), num(bo.at("test_acc")) - num(row.at("uniform").at("test_acc")), 1e-12);
    EXPECT_NEAR(num(m.at("downweighted_corrupted_bo_rep_minus_stocbio")),
                num(bo.at("downweighted_corrupted")) - num(sb.at("downweighted_corrupted")), 1e-12);
    EXPECT_GT(num(bo.at("test_acc")), 0.5);  // a linear classifier that learned despite the noise
    EXPECT_TRUE(fs::exists(run / "hyper_cleaning.svg"));
  } else if (name == "mip") {
    // Fashion-MNIST: the final losses are the curves' last points, the ratio and the fraction of
    // steps to reach the default's final loss recomputed from the curves; LfD: the final loss is
    // the mean of the recorded last 10 % of the iterations (quick: 30 iterations -> 3 values).
    const auto& f = row.at("fmnist");
    const double steps = 60;
    const double fd = f.at("default").at("curve").back()[1].get<double>(), fm = f.at("mip").at("curve").back()[1].get<double>();
    EXPECT_EQ(f.at("default").at("curve").back()[0].get<double>(), steps);
    EXPECT_NEAR(num(m.at("fmnist_mip_over_default")), fm / fd, 1e-12);
    double frac = std::nan("");
    for (const auto& p : f.at("mip").at("curve"))
      if (p[1].get<double>() <= fd) {
        frac = p[0].get<double>() / steps;
        break;
      }
    EXPECT_TRUE(std::isnan(frac) ? f.at("mip_fraction_to_default_final").is_null()
                                 : std::abs(num(f.at("mip_fraction_to_default_final")) - frac) < 1e-12);
    for (const char* v : {"default", "mip"}) {
      const auto t = row.at("lfd").at(v).at("tail").get<std::vector<double>>();
      ASSERT_EQ(t.size(), 3u) << v;
      EXPECT_NEAR(num(row.at("lfd").at(v).at("final_loss")), (t[0] + t[1] + t[2]) / 3, 1e-12) << v;
    }
    EXPECT_NE(num(row.at("lfd").at("default").at("final_loss")), num(row.at("lfd").at("mip").at("final_loss")));
    EXPECT_TRUE(fs::exists(run / "mip_fmnist.svg"));
  } else if (name == "causal-minimax") {
    // 10 training and 10 test environments, together alpha_e = e - 10.5 (e = 1..20); each method's
    // worst-case test MSE is the max of its per-environment MSEs and (one seed) the mean; the
    // minimax - ERM gap recomputed; "recovered" is membership of the selected subset in the true
    // optimal class; 2^|S| subsets searched for the detected stable set S.
    auto alphas = row.at("train_alphas").get<std::vector<double>>();
    const auto test = row.at("test_alphas").get<std::vector<double>>();
    ASSERT_EQ(alphas.size(), 10u);
    ASSERT_EQ(test.size(), 10u);
    alphas.insert(alphas.end(), test.begin(), test.end());
    std::sort(alphas.begin(), alphas.end());
    for (std::size_t e = 0; e < 20; ++e) EXPECT_DOUBLE_EQ(alphas[e], static_cast<double>(e + 1) - 10.5);
    for (const char* meth : {"erm", "stable_set", "best_invariant", "minimax"}) {
      const auto per = row.at(meth).at("test_mse").get<std::vector<double>>();
      ASSERT_EQ(per.size(), 10u) << meth;
      EXPECT_DOUBLE_EQ(row.at(meth).at("test_worst").get<double>(), *std::max_element(per.begin(), per.end())) << meth;
      EXPECT_DOUBLE_EQ(num(m.at(std::string(meth) + "_test_worst_mse_mean")), row.at(meth).at("test_worst").get<double>());
    }
    EXPECT_EQ(row.at("erm").at("beta").size(), 8u);
    EXPECT_EQ(row.at("subsets_searched").get<int>(), 1 << row.at("stable_set").at("beta").size());
    EXPECT_DOUBLE_EQ(num(m.at("minimax_minus_erm_test_worst")),
                     row.at("minimax").at("test_worst").get<double>() - row.at("erm").at("test_worst").get<double>());
    const bool rec = row.at("recovered").get<bool>();
    const auto cls = row.at("true_optimal_class").get<std::vector<std::string>>();
    EXPECT_EQ(rec, std::find(cls.begin(), cls.end(), row.at("minimax").at("features").get<std::string>()) != cls.end());
    EXPECT_EQ(num(m.at("recovery_rate")), rec ? 1.0 : 0.0);
    EXPECT_TRUE(fs::exists(run / "causal_minimax_test_mse.svg"));
  } else if (name == "malignant-tail") {
    // --quick: H = 64, so d in 1, 2, 4, 8, 10, 16, 32, 64; the values at probe_d = 10 and at d = H
    // are the sweep's, d_val maximises the truncated network's validation accuracy, the gaps
    // recomputed; 900 training images at 40 % noise -> round(0.4 * 1000) corrupted among 1000, of
    // which the first 900 are the training part.
    const auto ds = row.at("ds").get<std::vector<std::int64_t>>();
    EXPECT_EQ(ds, (std::vector<std::int64_t>{1, 2, 4, 8, 10, 16, 32, 64}));
    const auto probe = row.at("probe_test_acc").get<std::vector<double>>();
    const auto val = row.at("truncated_val_acc").get<std::vector<double>>();
    const auto trunc = row.at("truncated_test_acc").get<std::vector<double>>();
    const auto mem = row.at("probe_memorised").get<std::vector<double>>();
    ASSERT_EQ(probe.size(), ds.size());
    EXPECT_DOUBLE_EQ(row.at("probe_test_acc_at_probe_d").get<double>(), probe[4]);
    EXPECT_DOUBLE_EQ(row.at("probe_test_acc_at_full_d").get<double>(), probe.back());
    const auto best = static_cast<std::size_t>(std::max_element(val.begin(), val.end()) - val.begin());
    EXPECT_EQ(row.at("d_val").get<std::int64_t>(), ds[best]);
    EXPECT_DOUBLE_EQ(row.at("truncated_test_acc_at_d_val").get<double>(), trunc[best]);
    // Truncation at d = H is the identity: the truncated network's accuracy is the network's.
    EXPECT_NEAR(trunc.back(), row.at("network_test_acc").get<double>(), 2e-3);
    EXPECT_NEAR(num(m.at("probe_minus_network_test_acc")), probe[4] - row.at("network_test_acc").get<double>(), 1e-12);
    EXPECT_NEAR(num(m.at("probe_memorised_full_minus_small_d")), mem.back() - mem[4], 1e-12);
    const auto shares = row.at("variance_share_top_d").get<std::vector<double>>();
    for (std::size_t i = 1; i < shares.size(); ++i) EXPECT_GE(shares[i], shares[i - 1] - 1e-12);
    EXPECT_NEAR(shares.back(), 1.0, 1e-9);
    EXPECT_GT(row.at("corrupted").get<int>(), 300);
    EXPECT_LT(row.at("corrupted").get<int>(), 420);
    EXPECT_EQ(row.at("curve").at("epoch").get<std::vector<double>>(), (std::vector<double>{0, 3}));
    EXPECT_TRUE(fs::exists(run / "malignant_tail_probe.svg"));
    EXPECT_TRUE(fs::exists(run / "malignant_tail_training.svg"));
  } else if (name == "equivariance") {
    // --quick: sizes 100, 300, 1000; accuracies on 300 test images are multiples of 1/300; the gaps
    // and the checks' values recomputed from the row; the p4 CNN's predictions do not change under a
    // further rotation (exact invariance of the model).
    double min_gap = 1e9, agree = 0;
    for (const char* n : {"100", "300", "1000"}) {
      const double p4 = row.at(n).at("p4").at("test_acc").get<double>(), cnn = row.at(n).at("cnn").at("test_acc").get<double>();
      for (double a : {p4, cnn}) EXPECT_NEAR(a * 300, std::round(a * 300), 1e-9) << n;
      EXPECT_NEAR(num(m.at(std::string("p4_minus_cnn_test_acc_") + n)), p4 - cnn, 1e-12);
      min_gap = std::min(min_gap, p4 - cnn);
      agree += row.at(n).at("p4").at("rotation_agreement").get<double>() / 3;
    }
    const auto& checks = res.at("checks");
    EXPECT_NEAR(checks[0].at("value").get<double>(), min_gap, 1e-12);
    const double first = row.at("100").at("p4").at("test_acc").get<double>() - row.at("100").at("cnn").at("test_acc").get<double>();
    const double last = row.at("1000").at("p4").at("test_acc").get<double>() - row.at("1000").at("cnn").at("test_acc").get<double>();
    EXPECT_NEAR(checks[1].at("value").get<double>(), first - last, 1e-12);
    EXPECT_NEAR(checks[2].at("value").get<double>(), agree, 1e-12);
    EXPECT_GE(agree, 0.99);
    EXPECT_EQ(res.at("setup").at("parameters_p4").get<int>(), 80 + 2 * (8 * 8 * 4 * 9 + 8) + 90);
    EXPECT_EQ(res.at("setup").at("parameters_cnn").get<int>(), 160 + 2 * (16 * 16 * 9 + 16) + 170);
    EXPECT_TRUE(fs::exists(run / "equivariance_accuracy.svg"));
  } else if (name == "koopman") {
    // --quick: per system four variants; each NRMSE curve has horizon + 1 = 51 values, the 5- and
    // 50-step metrics are its entries 5 and 50, the effective rank lies in [1, latent = 16], the
    // operator has 16 eigenvalues; the checks' values recomputed from the row (one seed).
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 6u);
    std::size_t c = 0;
    for (const char* sys : {"lorenz", "pendulum"}) {
      for (const char* v : {"full", "no_mi", "no_entropy", "mi_large"}) {
        const auto& r = row.at(sys).at(v);
        const auto curve = r.at("nrmse").get<std::vector<double>>();
        ASSERT_EQ(curve.size(), 51u) << sys << " " << v;
        EXPECT_EQ(num(r.at("nrmse_5")), curve[5]);
        EXPECT_EQ(num(r.at("nrmse_h")), curve[50]);
        EXPECT_NEAR(num(m.at(std::string(sys) + "_" + v + "_nrmse_50")), curve[50], 1e-12);
        const double er = num(r.at("effective_rank"));
        EXPECT_TRUE(er >= 1 - 1e-9 && er <= 16 + 1e-9) << sys << " " << v << " " << er;
        EXPECT_EQ(r.at("eig_abs").size(), 16u);
      }
      const auto& s = row.at(sys);
      const double full = num(s.at("full").at("nrmse_h"));
      EXPECT_NEAR(checks[c++].at("value").get<double>(), num(s.at("no_mi").at("nrmse_h")) - full, 1e-12);
      EXPECT_NEAR(checks[c++].at("value").get<double>(), num(s.at("no_entropy").at("nrmse_h")) - full, 1e-12);
      EXPECT_NEAR(checks[c++].at("value").get<double>(),
                  num(s.at("full").at("effective_rank")) - num(s.at("mi_large").at("effective_rank")), 1e-12);
      EXPECT_TRUE(fs::exists(run / (std::string("koopman_nrmse_") + sys + ".svg")));
    }
  } else if (name == "lfm-stability") {
    // --quick: every model's sample set has an MMD² (finite), the perturbed ones a same-noise ratio =
    // d_same / d_rand and label agreement in [0, 1]; the checks recomputed from the row (one seed);
    // the coarse-to-fine cost from the step count and the two widths' multiply-adds (dim 16, 16 time
    // features, widths 128 and 32, 20 steps of which t = 0, 0.05, ..., 0.65 are coarse: 14).
    const auto& ms = row.at("models");
    const double d_rand = num(row.at("d_rand"));
    for (const char* k : {"seed", "half_random", "half_balanced", "quarter_random", "narrow", "coarse_to_fine"}) {
      EXPECT_NEAR(num(ms.at(k).at("ratio")), num(ms.at(k).at("d_same")) / d_rand, 1e-12) << k;
      const double a = num(ms.at(k).at("label_agreement"));
      EXPECT_TRUE(a >= 0 && a <= 1) << k;
    }
    double worst = 0;
    for (const char* k : {"seed", "half_random", "half_balanced", "narrow"}) worst = std::max(worst, num(ms.at(k).at("ratio")));
    const double full = num(ms.at("full").at("mmd2"));
    const auto& checks = res.at("checks");
    EXPECT_NEAR(checks[0].at("value").get<double>(), worst, 1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), num(ms.at("half_random").at("mmd2")) / full, 1e-9);
    EXPECT_NEAR(checks[2].at("value").get<double>(), num(ms.at("coarse_to_fine").at("ratio")), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), num(ms.at("coarse_to_fine").at("mmd2")) / full, 1e-9);
    EXPECT_EQ(row.at("coarse_steps").get<int>(), 14);
    const double big = 32.0 * 128 + 128.0 * 128 + 128.0 * 16, small = 32.0 * 32 + 32.0 * 32 + 32.0 * 16;
    EXPECT_NEAR(num(row.at("coarse_to_fine_cost")), (14 * small + 6 * big) / (20 * big), 1e-12);
    EXPECT_TRUE(fs::exists(run / "lfm_samples.svg"));
  } else if (name == "execution-manifolds") {
    // --quick: 300 steps, snapshots every 20 (16 with step 0), commutators at 100, 200, 300;
    // the per-matrix medians, early/late ratios and the perpendicular share recomputed from the
    // row; the random baseline sqrt(2k/P) with P counted by hand; accuracy a multiple of 1/512.
    std::vector<double> r90, er;
    for (const auto& [key, mat] : row.at("matrices").items()) {
      r90.push_back(mat.at("rank_90").get<double>());
      er.push_back(mat.at("effective_rank").get<double>());
      EXPECT_GE(r90.back(), 1) << key;
      EXPECT_LE(r90.back(), 15) << key;  // at most T - 1 = 15 centred snapshots
    }
    ASSERT_EQ(r90.size(), 8u);
    auto med8 = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return (v[3] + v[4]) / 2;
    };
    EXPECT_DOUBLE_EQ(row.at("median_rank_90").get<double>(), med8(r90));
    EXPECT_NEAR(row.at("median_effective_rank").get<double>(), med8(er), 1e-12);
    EXPECT_EQ(row.at("snapshots").get<int>(), 16);
    const double params = (10 + 16) * 128 + 2 * (2 * 128 + 3 * 128 * 128 + 3 * 128 + 128 * 128 + 128) + 2 * 128 + 10 * 128 + 10;
    EXPECT_EQ(row.at("parameters").get<double>(), params);
    EXPECT_EQ(res.at("setup").at("parameters").get<double>(), params);
    EXPECT_EQ(row.at("basis_dim").get<int>(), 6);
    EXPECT_NEAR(num(m.at("expected_random_rho")), std::sqrt(6 / params), 1e-12);
    const auto& ms = row.at("measurements");
    ASSERT_EQ(ms.size(), 3u);
    double min_perp = 1;
    for (std::size_t i = 0; i < ms.size(); ++i) {
      EXPECT_EQ(ms[i].at("step").get<int>(), 100 * int(i + 1));
      min_perp = std::min(min_perp, std::sqrt(1 - ms[i].at("median_energy_fraction").get<double>()));
    }
    EXPECT_NEAR(num(m.at("early_rho_ratio")), ms.front().at("median_rho_ratio").get<double>(), 1e-12);
    EXPECT_NEAR(num(m.at("late_rho_ratio")), ms.back().at("median_rho_ratio").get<double>(), 1e-12);
    EXPECT_NEAR(num(m.at("min_perpendicular_share")), min_perp, 1e-12);
    const double acc = num(m.at("test_accuracy"));
    EXPECT_NEAR(acc * 512, std::round(acc * 512), 1e-9);
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 8u);
    EXPECT_NEAR(checks[1].at("value").get<double>(), med8(r90), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), row.at("random_walk_rank_90").get<double>() - med8(r90), 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(),
                ms.front().at("median_rho_ratio").get<double>() - ms.back().at("median_rho_ratio").get<double>(), 1e-12);
    EXPECT_NEAR(checks[7].at("value").get<double>(), min_perp, 1e-12);
    EXPECT_TRUE(fs::exists(run / "execution_manifolds_commutator.svg"));
  } else if (name == "care") {
    // --quick, one seed: streams of 5 and 10 tasks over 60 classes; every method has a per-task
    // time for each task, CaRE stored floats that grow with every task; accuracies and
    // forgetting in range; the checks' values recomputed from the row (time_ref_task 3: the
    // median of tasks 1..5 against that of tasks 6..10; memory increments of tasks 10 and 3).
    const auto& st = row.at("streams");
    for (const char* L : {"5", "10"})
      for (const char* k : {"care", "adapter", "finetune", "ewc", "er"}) {
        const auto& r = st.at(L).at(k);
        EXPECT_EQ(r.at("seconds").size(), std::stoul(L)) << L << " " << k;
        const double a = num(r.at("final_accuracy")), f = num(r.at("forgetting"));
        EXPECT_TRUE(a >= 0 && a <= 1) << L << " " << k;
        EXPECT_TRUE(f >= -1 && f <= 1) << L << " " << k;
        EXPECT_EQ(num(m.at(std::string("final_accuracy_") + k + "_" + L + "tasks")), a);
      }
    const auto floats = st.at("10").at("care").at("stored_floats").get<std::vector<double>>();
    ASSERT_EQ(floats.size(), 10u);
    for (std::size_t i = 1; i < floats.size(); ++i) EXPECT_GT(floats[i], floats[i - 1]);
    auto acc = [&](const char* L, const char* k) { return num(st.at(L).at(k).at("final_accuracy")); };
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 12u);
    auto value = [&](std::size_t i) { return checks[i].at("value").get<double>(); };
    EXPECT_NEAR(value(0), acc("5", "care"), 1e-12);
    EXPECT_NEAR(checks[0].at("threshold").get<double>(), 10.0 / 60, 1e-12);
    std::size_t c = 1;
    for (const char* L : {"5", "10"})
      for (const char* b : {"finetune", "ewc", "er", "adapter"}) EXPECT_NEAR(value(c++), acc(L, "care") - acc(L, b), 1e-12) << L << " " << b;
    EXPECT_NEAR(value(9), acc("10", "care") - acc("5", "care"), 1e-12);
    EXPECT_EQ(checks[9].at("threshold").get<double>(), -0.05);
    auto secs = st.at("10").at("care").at("seconds").get<std::vector<double>>();
    std::vector<double> first(secs.begin(), secs.begin() + 5), last(secs.begin() + 5, secs.end());
    std::sort(first.begin(), first.end());
    std::sort(last.begin(), last.end());
    EXPECT_NEAR(value(10), last[2] / first[2] / (10.0 / 3), 1e-9 * value(10));
    EXPECT_NEAR(value(11), (floats[9] - floats[8]) / (floats[2] - floats[1]) / (10.0 / 3), 1e-12);
    EXPECT_EQ(checks[10].at("threshold").get<double>(), 2.0);
    EXPECT_EQ(checks[11].at("threshold").get<double>(), 2.0);
    EXPECT_TRUE(fs::exists(run / "care_accuracy.svg"));
    EXPECT_TRUE(fs::exists(run / "care_time_per_task.svg"));
  } else if (name == "coso" || name == "sculpting-subspaces") {
    // --quick, one seed: 3 rotated tasks; per method the accuracy matrix R (3 × 3, each entry a
    // share of 500 test images); ACC, forgetting (best from learning to the second-last task),
    // BWT and plasticity recomputed from R; the checks' values from those numbers.
    const std::string method = name == "coso" ? "coso" : "adaptive_svd";
    EXPECT_GT(num(row.at("backbone").at("test_accuracy")), 0.5);  // the pre-trained MLP learned (chance 0.1)
    std::map<std::string, std::map<std::string, double>> v;
    for (const std::string& k : std::vector<std::string>{"finetune", "ewc", "gpm", method}) {
      const auto R = row.at("methods").at(k).at("accuracy").get<std::vector<std::vector<double>>>();
      ASSERT_EQ(R.size(), 3u) << k;
      for (const auto& r : R) {
        ASSERT_EQ(r.size(), 3u) << k;
        for (double a : r) EXPECT_NEAR(a * 500, std::round(a * 500), 1e-6) << k;
      }
      v[k]["acc"] = (R[2][0] + R[2][1] + R[2][2]) / 3;
      v[k]["forgetting"] = ((std::max(R[0][0], R[1][0]) - R[2][0]) + (R[1][1] - R[2][1])) / 2;
      v[k]["bwt"] = ((R[2][0] - R[0][0]) + (R[2][1] - R[1][1])) / 2;
      v[k]["plasticity"] = (R[0][0] + R[1][1] + R[2][2]) / 3;
      for (const auto& [key, x] : v[k]) {
        EXPECT_NEAR(num(m.at(key + "_" + k)), x, 1e-12) << key << " " << k;
        EXPECT_NEAR(num(m.at(key + "_" + k + "_mean")), x, 1e-12) << key << " " << k;
      }
      EXPECT_GT(v[k]["plasticity"], 0.2) << k;  // every method learns its tasks (chance 0.1)
      EXPECT_TRUE(fs::exists(run / "seed0" / k / "summary.json")) << k;
    }
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 3u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), v["finetune"]["forgetting"], 1e-12);
    EXPECT_EQ(checks[0].at("threshold").get<double>(), 0.05);
    EXPECT_NEAR(checks[1].at("value").get<double>(), v[method]["forgetting"] / v["finetune"]["forgetting"], 1e-12);
    EXPECT_EQ(checks[1].at("threshold").get<double>(), 0.5);
    EXPECT_NEAR(checks[2].at("value").get<double>(), v[method]["acc"] - v["gpm"]["acc"], 1e-12);
    EXPECT_EQ(checks[2].at("threshold").get<double>(), -0.01);
    EXPECT_TRUE(fs::exists(run / (name == "coso" ? "coso_task0_accuracy.svg" : "sculpting_subspaces_task0_accuracy.svg")));
  } else if (name == "finetune-intrinsic-dim") {
    // --quick, one seed: for every starting point and method the scanned grid doubles from 8 and
    // stops at the first d whose test accuracy (a share of the 300 test images) reaches 0.9 × that
    // starting point's full fine-tuning accuracy, every earlier d failing; d90 is the crossing
    // interpolated in log d (8 when the first passes, d_max = 512 when none does); the checks'
    // values recomputed from these d90s and the full accuracy.
    const std::vector<std::string> conds = {"scratch", "pre1", "pre2", "pre3"};
    std::map<std::string, double> d90;
    for (const auto& c : conds) {
      const auto& cond = row.at("conditions").at(c);
      const double full = num(cond.at("full_accuracy"));
      EXPECT_NEAR(num(cond.at("threshold")), 0.9 * full, 1e-12) << c;
      EXPECT_EQ(num(row.at("full_accuracy_" + c)), full) << c;
      EXPECT_NEAR(full * 300, std::round(full * 300), 1e-6) << c;
      const double head = num(cond.at("head_only_accuracy"));
      EXPECT_NEAR(head * 300, std::round(head * 300), 1e-6) << c;
      EXPECT_EQ(num(m.at("head_only_accuracy_" + c)), head) << c;
      for (const std::string method : {"did", "said"}) {
        const auto& mm = cond.at(method);
        const auto dims = mm.at("dims").get<std::vector<double>>();
        const auto acc = mm.at("test_accuracy").get<std::vector<double>>();
        ASSERT_FALSE(dims.empty()) << c << " " << method;
        ASSERT_EQ(acc.size(), dims.size()) << c << " " << method;
        const double thr = 0.9 * full;
        for (std::size_t i = 0; i < dims.size(); ++i) {
          EXPECT_EQ(dims[i], 8.0 * std::pow(2.0, double(i))) << c << " " << method;
          EXPECT_NEAR(acc[i] * 300, std::round(acc[i] * 300), 1e-6) << c << " " << method;
          if (i + 1 < dims.size()) {
            EXPECT_LT(acc[i], thr) << c << " " << method << " d " << dims[i];
          }
        }
        const bool reached = acc.back() >= thr;
        EXPECT_EQ(mm.at("reached").get<bool>(), reached) << c << " " << method;
        double expected = 512;
        if (reached && dims.size() == 1) expected = 8;
        if (reached && dims.size() > 1) {
          const std::size_t n = dims.size();
          const double t = (thr - acc[n - 2]) / (acc[n - 1] - acc[n - 2]);
          expected = std::exp(std::log(dims[n - 2]) + t * (std::log(dims[n - 1]) - std::log(dims[n - 2])));
        }
        if (!reached) {
          EXPECT_EQ(dims.back(), 512) << c << " " << method;
        }
        EXPECT_NEAR(num(mm.at("d90")), expected, 1e-9 * expected) << c << " " << method;
        EXPECT_EQ(num(row.at("d90_" + method + "_" + c)), num(mm.at("d90"))) << c << " " << method;
        d90[method + "_" + c] = expected;
      }
    }
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 8u);
    auto value = [&](std::size_t i) { return checks[i].at("value").get<double>(); };
    EXPECT_NEAR(value(0), num(row.at("full_accuracy_pre3")), 1e-12);
    EXPECT_EQ(checks[0].at("threshold").get<double>(), 0.5);
    EXPECT_NEAR(value(1), d90["said_scratch"] / d90["said_pre3"], 1e-9 * value(1));
    EXPECT_NEAR(value(2), d90["did_scratch"] / d90["did_pre3"], 1e-9 * value(2));
    EXPECT_EQ(checks[1].at("threshold").get<double>(), 4.0);
    EXPECT_EQ(checks[2].at("threshold").get<double>(), 4.0);
    EXPECT_NEAR(value(3), d90["said_pre2"] - d90["said_pre1"], 1e-9);
    EXPECT_NEAR(value(4), d90["said_pre3"] - d90["said_pre2"], 1e-9);
    EXPECT_NEAR(value(5), d90["did_pre2"] - d90["did_pre1"], 1e-9);
    EXPECT_NEAR(value(6), d90["did_pre3"] - d90["did_pre2"], 1e-9);
    EXPECT_NEAR(value(7), d90["said_pre3"] - d90["did_pre3"], 1e-9);
    for (std::size_t i = 3; i < 8; ++i) EXPECT_EQ(checks[i].at("threshold").get<double>(), 0.0) << i;
    for (const char* f : {"finetune_intrinsic_dim_curves.svg", "finetune_intrinsic_dim_d90.svg"}) EXPECT_TRUE(fs::exists(run / f)) << f;
  } else if (name == "gka") {
    // --quick: loads of 4 and 8 pairs; every accuracy is a share of the 64 × pairs held-out queries;
    // the checks' values recomputed from the row; the float32 solves against the closed-form bound
    // of 30 Chebyshev steps (2 c³⁰ √κ, κ ≤ 51) and the exact solve's float32 rounding.
    const auto& rec = row.at("recall");
    ASSERT_EQ(rec.size(), 2u);
    for (std::size_t l = 0; l < 2; ++l) {
      const int pairs = 4 << l;
      EXPECT_EQ(rec[l].at("pairs").get<int>(), pairs);
      for (const char* mix : {"gka", "linear", "delta"}) {
        const double a = num(rec[l].at(mix));
        EXPECT_TRUE(a >= 0 && a <= 1) << mix << " " << a;
        EXPECT_NEAR(a * 64 * pairs, std::round(a * 64 * pairs), 1e-6) << mix;
        EXPECT_EQ(num(m.at(std::string("accuracy_") + mix + "_pairs" + std::to_string(pairs))), a) << mix;
      }
    }
    auto gap = [&](const char* other, std::size_t l) { return num(rec[l].at("gka")) - num(rec[l].at(other)); };
    const auto& pr = row.at("precision");
    auto err = [&](const char* t, const char* solver) { return num(pr.at(t).at(solver)); };
    const double kappa = 51, c = (std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1);
    EXPECT_LT(err("float32", "chebyshev"), 2 * std::pow(c, 30) * std::sqrt(kappa) + 1e-4);
    EXPECT_LT(err("float32", "regularised_exact"), 1e-5);
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 10u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), num(rec[0].at("gka")), 1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), gap("linear", 1), 1e-12);
    EXPECT_NEAR(checks[2].at("value").get<double>(), gap("delta", 1), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), gap("linear", 1) - gap("linear", 0), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), gap("delta", 1) - gap("delta", 0), 1e-12);
    EXPECT_NEAR(checks[5].at("value").get<double>(), err("float16", "chebyshev"), 1e-12);
    EXPECT_NEAR(checks[5].at("threshold").get<double>(), 51.0 / 2048, 1e-15);
    EXPECT_NEAR(checks[6].at("threshold").get<double>(), 51.0 / 256, 1e-15);
    EXPECT_NEAR(checks[7].at("value").get<double>(), err("bfloat16", "unregularised_exact") / err("bfloat16", "chebyshev"), 1e-9);
    EXPECT_NEAR(checks[8].at("value").get<double>(), err("float16", "cg") / err("float16", "chebyshev"), 1e-9);
    EXPECT_NEAR(checks[9].at("value").get<double>(), err("bfloat16", "cg") / err("bfloat16", "chebyshev"), 1e-9);
    EXPECT_TRUE(fs::exists(run / "gka_mqar.svg"));
  } else if (name == "gd-sgd-minima") {
    // --quick, one seed: η = lr_scale · 2 / tr H(θ₀) from config.toml and the row's initial trace;
    // the stability ratios η tr/2 and η λ_max/2; at a minimum H is positive semi-definite, so
    // 0 < λ_max <= tr H; the checks recomputed from the row (one seed: max = min = mean = the value).
    const auto cfg = sl::Config::from_file(run / "config.toml").flat_values();
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 13u);
    std::size_t c = 0;
    for (const char* p : {"diag", "relu"}) {
      const auto& pr = row.at(p);
      const double lr = num(pr.at("lr"));
      EXPECT_NEAR(lr, std::stod(cfg.at(std::string("options.") + p + "_lr_scale")) * 2 / num(pr.at("initial_trace")), 1e-12 * lr) << p;
      auto v = [&](const char* alg, const char* k) { return num(pr.at(alg).at(k)); };
      for (const char* alg : {"gd", "sgd"}) {
        EXPECT_NEAR(v(alg, "trace_ratio"), lr * v(alg, "trace") / 2, 1e-12 * v(alg, "trace")) << p << alg;
        EXPECT_NEAR(v(alg, "sharpness_ratio"), lr * v(alg, "lambda_max") / 2, 1e-12 * v(alg, "lambda_max")) << p << alg;
        if (v(alg, "converged") == 1) {
          EXPECT_LE(v(alg, "loss"), std::stod(cfg.at(std::string("options.") + p + "_loss_tol"))) << p << alg;
          EXPECT_GT(v(alg, "lambda_max"), 0) << p << alg;
          EXPECT_LE(v(alg, "lambda_max"), v(alg, "trace") * (1 + 1e-9)) << p << alg;
        }
      }
      EXPECT_NEAR(checks[c++].at("value").get<double>(), (v("gd", "converged") + v("sgd", "converged")) / 2, 1e-12) << p;
      auto same = [&](double expected) {
        const auto& x = checks[c++].at("value");
        if (std::isnan(expected)) {
          EXPECT_TRUE(x.is_null()) << p << " " << c - 1;
        } else {
          EXPECT_NEAR(num(x), expected, 1e-9 * std::abs(expected)) << p << " " << c - 1;
        }
      };
      same(v("sgd", "trace_ratio"));
      same(v("gd", "sharpness_ratio"));
      same(v("gd", "trace_ratio"));
      same(v("sgd", "trace") / v("gd", "trace"));
      same(v("sgd", "test_error") / v("gd", "test_error"));
      if (std::string(p) == "diag") {
        same(v("sgd", "l1") / v("gd", "l1"));
        // the weighted l1 bound η Σ m_k |β_k| <= η tr H / 2 (u² + v² >= 2|uv|)
        for (const char* alg : {"gd", "sgd"}) {
          if (v(alg, "converged") == 1) {
            EXPECT_LE(v(alg, "weighted_l1_ratio"), v(alg, "trace_ratio") * (1 + 1e-9)) << alg;
          }
        }
      }
    }
    EXPECT_TRUE(fs::exists(run / "gd_sgd_minima_stability.svg"));
  } else if (name == "hyper-pp") {
    // --quick: 16384 steps of 32 envs x 64 = 8 iterations per agent; the training return is the mean
    // of the finite returns of the last 2 iterations, the KL violations are counted from the logged
    // approximate KL, the embedding norms are the first and last logged; a maze pays 10 only at the
    // goal, so every test return is 10 x the solved share; the checks recomputed from the row.
    for (const char* a : {"euclidean", "hyperbolic", "hyperpp", "no_rmsnorm"}) {
      const auto& r = row.at(a);
      const auto ret = r.at("returns"), kl = r.at("approx_kl"), en = r.at("embed_norms");
      ASSERT_EQ(ret.size(), 8u) << a;
      ASSERT_EQ(kl.size(), 8u) << a;
      EXPECT_EQ(r.at("iterations").get<int>(), 8) << a;
      std::vector<double> last;
      for (std::size_t i = 6; i < 8; ++i)
        if (!ret[i].is_null()) last.push_back(ret[i].get<double>());
      double mean_last = 0;
      for (double x : last) mean_last += x / double(last.size());
      if (!last.empty()) {
        EXPECT_NEAR(num(r.at("train_return")), mean_last, 1e-12) << a;
      }
      int spikes = 0;
      for (const auto& k : kl) spikes += (k.is_null() || !(k.get<double>() <= 0.05)) ? 1 : 0;
      EXPECT_EQ(r.at("kl_spikes").get<int>(), spikes) << a;
      EXPECT_EQ(num(r.at("embed_norm_first")), en.front().get<double>()) << a;
      EXPECT_EQ(num(r.at("embed_norm_last")), en.back().get<double>()) << a;
      EXPECT_GT(en.back().get<double>(), 0) << a;
      EXPECT_NEAR(num(r.at("test_return")), 10 * num(r.at("test_solved")), 1e-9) << a;
      EXPECT_TRUE(num(r.at("test_solved")) >= 0 && num(r.at("test_solved")) <= 1) << a;
    }
    // Hyper++'s feature control bounds ||x_E|| by atanh(0.95).
    for (const auto& e : row.at("hyperpp").at("embed_norms")) EXPECT_LE(e.get<double>(), std::atanh(0.95) + 1e-6);
    const double rnd = num(row.at("random_train_return"));
    EXPECT_TRUE(rnd >= 0 && rnd <= 10);
    auto val = [&](const char* a, const char* k) { return num(row.at(a).at(k)); };
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 7u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), val("euclidean", "train_return") / std::max(1e-12, rnd), 1e-9);
    EXPECT_NEAR(checks[1].at("value").get<double>(), val("hyperpp", "test_return") - val("euclidean", "test_return"), 1e-12);
    EXPECT_NEAR(checks[2].at("value").get<double>(), val("hyperpp", "test_return") - val("hyperbolic", "test_return"), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), val("hyperpp", "test_return") - val("no_rmsnorm", "test_return"), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), val("hyperpp", "nonfinite"), 1e-12);
    EXPECT_NEAR(checks[5].at("value").get<double>(), val("hyperpp", "kl_spikes") - val("hyperbolic", "kl_spikes"), 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(), val("hyperbolic", "embed_norm_last") / val("hyperbolic", "embed_norm_first"), 1e-9);
    EXPECT_TRUE(fs::exists(run / "hyper_pp_embedding_norm.svg"));
  } else if (name == "drl-diagnosis") {
    // --quick: at most 8000 env steps per agent, 3 greedy episodes per state set. CartPole pays 1
    // per step, so the first episode's ||v|| series is as long as its return; its oscillation
    // mean|diff| / mean recomputed here, the agent's oscillation the mean over episodes, the return
    // the mean of the episode returns, every Lambda in [0, 1], G_S a unit vector; the checks from
    // the row.
    for (const char* a : {"vanilla", "adversarial"}) {
      const auto& r = row.at(a);
      EXPECT_LE(r.at("env_steps").get<int>(), 8000) << a;
      expect_drl_episodes(r, a);
      double g2 = 0;
      for (double x : r.at("principal_direction").get<std::vector<double>>()) g2 += x * x;
      EXPECT_NEAR(g2, 1.0, 1e-9) << a;
      EXPECT_EQ(r.at("sigma").size(), 4u) << a;
    }
    expect_drl_checks(res, row);
    EXPECT_TRUE(fs::exists(run / "drl_diagnosis_v_norm.svg"));
  } else if (name == "drl-diagnosis-pixels") {
    // --quick: state teachers of at most 8000 env steps, 4 distillation episodes (CartPole pays 1 per
    // step, so the distillation frames are the sum of their returns), 1 epoch, 3 greedy pixel
    // episodes per set: the return the mean of the episode returns, the first episode's ||v|| series
    // as long as its return and its oscillation mean|diff| / mean, the agent's oscillation the mean
    // over episodes, every Lambda in [0, 1], the current frame's share of the unit G_S in [0, 1], the
    // spectral spreads within (0, sqrt(1/2)] cycles per pixel (the largest radial frequency of a
    // shifted 40 x 60 spectrum); the checks from the row.
    for (const char* a : {"vanilla", "adversarial"}) {
      const auto& r = row.at(a);
      EXPECT_LE(r.at("env_steps").get<int>(), 8000) << a;
      const auto teach = r.at("distill_teacher_returns").get<std::vector<double>>();
      ASSERT_EQ(teach.size(), 4u) << a;
      double tsum = 0;
      for (double x : teach) tsum += x;
      EXPECT_EQ(r.at("distill_frames").get<double>(), tsum) << a;
      const double agree = num(r.at("distill_agreement"));
      EXPECT_TRUE(agree >= 0 && agree <= 1) << a;
      const double rsum = expect_drl_episodes(r, a);
      EXPECT_EQ(r.at("states").get<double>(), rsum) << a;
      const double share = num(r.at("principal_current_frame_energy"));
      EXPECT_TRUE(share >= 0 && share <= 1 + 1e-9) << a << " " << share;
      for (const char* k : {"spectral_spread_previous", "spectral_spread_current"}) {
        const double x = num(r.at(k));
        EXPECT_TRUE(x > 0 && x <= std::sqrt(0.5) + 1e-12) << a << " " << k << " " << x;
      }
    }
    expect_drl_checks(res, row);
    EXPECT_TRUE(fs::exists(run / "drl_diagnosis_pixels_v_norm.svg"));
    EXPECT_TRUE(fs::exists(run / "drl_diagnosis_pixels_gs.svg"));
  } else if (name == "stratified-grpo") {
    // --quick: 200 iterations of 16 questions x 8 trajectories per estimator, 200 test questions. From
    // each estimator's logged curves: the last-tenth reward (20 iterations), the gradient-norm CV
    // (sample std / mean), the largest drawdown of the 10-iteration trailing moving average and the
    // variance around it; batch rewards are multiples of 1/128 and test accuracies of 1/200; the
    // checks recomputed from the row.
    auto ma = [](const std::vector<double>& v) {
      std::vector<double> out;
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::size_t from = i + 1 >= 10 ? i + 1 - 10 : 0;
        double s = 0;
        for (std::size_t j = from; j <= i; ++j) s += v[j];
        out.push_back(s / double(i + 1 - from));
      }
      return out;
    };
    for (const char* e : {"grpo", "san", "blend"}) {
      const auto& r = row.at(e);
      const auto rew = r.at("rewards").get<std::vector<double>>(), g = r.at("grad_norms").get<std::vector<double>>();
      ASSERT_EQ(rew.size(), 200u) << e;
      ASSERT_EQ(g.size(), 200u) << e;
      for (double x : rew) {
        EXPECT_TRUE(x >= 0 && x <= 1) << e;
        EXPECT_NEAR(x * 128, std::round(x * 128), 1e-4) << e;
      }
      double last = 0;
      for (std::size_t i = 180; i < 200; ++i) last += rew[i] / 20;
      EXPECT_NEAR(num(r.at("final_train_reward")), last, 1e-12) << e;
      double gm = 0, gv = 0;
      for (double x : g) gm += x / 200;
      for (double x : g) gv += (x - gm) * (x - gm) / 199;
      EXPECT_NEAR(num(r.at("grad_norm_cv")), std::sqrt(gv) / gm, 1e-9) << e;
      const auto m10 = ma(rew);
      double peak = -1, dd = 0, jit = 0;
      for (std::size_t i = 0; i < 200; ++i) {
        peak = std::max(peak, m10[i]);
        dd = std::max(dd, peak - m10[i]);
        jit += (rew[i] - m10[i]) * (rew[i] - m10[i]) / 200;
      }
      EXPECT_NEAR(num(r.at("reward_drawdown")), dd, 1e-9) << e;
      EXPECT_NEAR(num(r.at("reward_jitter")), jit, 1e-9) << e;
      const double acc = num(r.at("test_accuracy"));
      EXPECT_NEAR(acc * 200, std::round(acc * 200), 1e-9) << e;
      for (const char* k : {"test_accuracy_k1", "test_accuracy_k2", "test_accuracy_k3"})
        EXPECT_TRUE(num(r.at(k)) >= 0 && num(r.at(k)) <= 1) << e << k;
      const double calls = num(r.at("test_calls"));
      EXPECT_TRUE(calls >= 0 && calls <= 4) << e;
      const double share = num(r.at("cross_stratum_share"));
      EXPECT_TRUE(share >= 0 && share <= 1 + 1e-12) << e << " " << share;
      EXPECT_EQ(r.at("nonfinite").get<int>(), 0) << e;
    }
    // The blind guess answers entity 0 at once: right with probability 1/8 (200 questions: sd 0.023);
    // a uniformly random policy is rarely right.
    const double guess = num(row.at("guess_accuracy")), rnd = num(row.at("random_accuracy"));
    EXPECT_NEAR(guess, 0.125, 0.1);
    EXPECT_LT(rnd, 0.3);
    auto val = [&](const char* e, const char* k) { return num(row.at(e).at(k)); };
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 8u);
    const double best = std::max({val("grpo", "test_accuracy"), val("san", "test_accuracy"), val("blend", "test_accuracy")});
    EXPECT_NEAR(checks[0].at("value").get<double>(), val("grpo", "cross_stratum_share"), 1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), best - guess, 1e-12);
    EXPECT_NEAR(checks[2].at("value").get<double>(), val("san", "test_accuracy") - val("grpo", "test_accuracy"), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), val("blend", "test_accuracy") - val("grpo", "test_accuracy"), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), val("san", "grad_norm_cv") - val("grpo", "grad_norm_cv"), 1e-12);
    EXPECT_NEAR(checks[5].at("value").get<double>(), val("blend", "grad_norm_cv") - val("grpo", "grad_norm_cv"), 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(), val("san", "reward_drawdown") - val("grpo", "reward_drawdown"), 1e-12);
    EXPECT_NEAR(checks[7].at("value").get<double>(), val("blend", "reward_drawdown") - val("grpo", "reward_drawdown"), 1e-12);
    EXPECT_NEAR(checks[0].at("threshold").get<double>(), 0.1, 1e-15);
    EXPECT_NEAR(checks[1].at("threshold").get<double>(), 0.2, 1e-15);
    EXPECT_TRUE(fs::exists(run / "stratified_grpo_reward.svg"));
  } else if (name == "rlvr-geometry") {
    // --quick: p = 23 (accuracies are multiples of 1/529), d = 32, 1 block, k = 4, alpha = 0.1, gain
    // 0.1, checks every 10 steps. Per method: each mean over the 6 matrices recomputed from the
    // per-matrix rows, the random baseline 1 - k^2/(mn) from the shapes, the stop at the first check
    // reaching base + gain; the checks from the row.
    const double base = num(row.at("base_accuracy"));
    EXPECT_NEAR(base * 529, std::round(base * 529), 1e-6);
    if (row.at("pretrain_reached").get<bool>()) {
      EXPECT_GE(base, 0.6);
    }
    EXPECT_NEAR(num(row.at("target_accuracy")), base + 0.1, 1e-12);
    const std::map<std::string, std::pair<double, double>> shapes = {
        {"embed.token", {25, 32}},          {"layer_0.attn.in_proj.weight", {96, 32}}, {"layer_0.attn.out_proj.weight", {32, 32}},
        {"layer_0.mlp.fc_1.weight", {128, 32}}, {"layer_0.mlp.fc_2.weight", {32, 128}}, {"head.weight", {23, 32}}};
    for (const char* meth : {"rl", "sft"}) {
      const auto& r = row.at(meth);
      const auto& mats = r.at("matrices");
      ASSERT_EQ(mats.size(), 6u) << meth;
      for (const char* key : {"drift_topk", "drift_full", "angle_deg", "angle_max_deg", "off_principal", "off_principal_baseline",
                              "left", "right", "mask_overlap", "bf16_unchanged", "update_rel_norm"}) {
        double s = 0;
        for (const auto& x : mats) s += num(x.at(key)) / 6;
        EXPECT_NEAR(num(r.at(key)), s, 1e-12) << meth << " " << key;
      }
      for (const auto& x : mats) {
        const auto& sh = shapes.at(x.at("matrix").get<std::string>());
        EXPECT_EQ(x.at("k").get<int>(), 4);
        EXPECT_NEAR(num(x.at("off_principal_baseline")), 1 - 16 / (sh.first * sh.second), 1e-12) << x.dump();
        for (const char* key : {"off_principal", "left", "right", "mask_overlap", "bf16_unchanged"})
          EXPECT_TRUE(num(x.at(key)) >= -1e-12 && num(x.at(key)) <= 1 + 1e-12) << meth << " " << key;
        EXPECT_TRUE(num(x.at("angle_deg")) >= 0 && num(x.at("angle_deg")) <= num(x.at("angle_max_deg")) + 1e-9);
        EXPECT_LE(num(x.at("angle_max_deg")), 90 + 1e-9);
      }
      const auto trace = r.at("trace").get<std::vector<double>>();
      const double acc = num(r.at("accuracy"));
      EXPECT_NEAR(num(r.at("gain")), acc - base, 1e-12) << meth;
      if (r.at("reached").get<bool>()) {
        EXPECT_GE(acc, base + 0.1 - 1e-12) << meth;
        EXPECT_EQ(r.at("steps").get<int>(), 10 * static_cast<int>(trace.size())) << meth;
        for (std::size_t i = 0; i + 1 < trace.size(); ++i) EXPECT_LT(trace[i], base + 0.1) << meth << i;
      }
    }
    auto val = [&](const char* a, const char* k) { return num(row.at(a).at(k)); };
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 7u);
    EXPECT_EQ(checks[0].at("value").get<double>(), row.at("pretrain_reached").get<bool>() ? 1.0 : 0.0);
    EXPECT_NEAR(checks[1].at("value").get<double>(),
                ((row.at("rl").at("reached").get<bool>() ? 1 : 0) + (row.at("sft").at("reached").get<bool>() ? 1 : 0)) / 2.0, 1e-15);
    EXPECT_NEAR(checks[2].at("value").get<double>(), val("rl", "drift_topk") / val("sft", "drift_topk"), 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), val("rl", "angle_deg") / val("sft", "angle_deg"), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), val("rl", "off_principal") - val("sft", "off_principal"), 1e-12);
    EXPECT_NEAR(checks[5].at("value").get<double>(), val("rl", "mask_overlap") / 0.1, 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(), val("sft", "mask_overlap") - val("rl", "mask_overlap"), 1e-12);
    EXPECT_TRUE(fs::exists(run / "rlvr_geometry_off_principal.svg"));
  } else if (name == "relex") {
    // --quick: 200 GRPO steps of 64 prompts x 8 answers (batch rewards are multiples of 1/512), RELEX
    // fitted on the first round(0.15 x 200) = 30; real checkpoints at 60, 120, 200, extrapolations
    // also at 400; p = 23 (accuracies are multiples of 1/529); the mean rank-1 explained variance
    // over the 6 matrices; the checks from the row.
    EXPECT_EQ(row.at("fit_steps").get<int>(), 30);
    const auto rew = row.at("rewards").get<std::vector<double>>();
    ASSERT_EQ(rew.size(), 200u);
    for (double x : rew) EXPECT_NEAR(x * 512, std::round(x * 512), 1e-4);
    for (const char* s : {"real", "relex", "naive"}) {
      std::vector<std::string> keys;
      for (const auto& [k, v] : row.at(s).items()) {
        keys.push_back(k);
        EXPECT_NEAR(num(v) * 529, std::round(num(v) * 529), 1e-6) << s << k;
      }
      std::sort(keys.begin(), keys.end());
      EXPECT_EQ(keys, (std::string(s) == "real" ? std::vector<std::string>{"120", "200", "60"}
                                                : std::vector<std::string>{"120", "200", "400", "60"}));
    }
    EXPECT_EQ(num(row.at("final_accuracy")), num(row.at("real").at("200")));
    EXPECT_EQ(num(row.at("relex_accuracy")), num(row.at("relex").at("200")));
    EXPECT_EQ(num(row.at("relex_beyond_accuracy")), num(row.at("relex").at("400")));
    EXPECT_EQ(num(row.at("naive_accuracy")), num(row.at("naive").at("200")));
    double ev = 0;
    ASSERT_EQ(row.at("rl_rank1_ev_per_matrix").size(), 6u);
    for (const auto& [k, v] : row.at("rl_rank1_ev_per_matrix").items()) {
      EXPECT_TRUE(num(v) > 0 && num(v) <= 1 + 1e-12) << k;
      ev += num(v) / 6;
    }
    EXPECT_NEAR(num(row.at("rl_rank1_ev")), ev, 1e-12);
    EXPECT_TRUE(num(row.at("sft_rank1_ev")) > 0 && num(row.at("sft_rank1_ev")) <= 1 + 1e-12);
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 5u);
    const double fin = num(row.at("final_accuracy")), rx = num(row.at("relex_accuracy"));
    EXPECT_NEAR(checks[0].at("value").get<double>(), fin - num(row.at("base_accuracy")), 1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), rx - fin, 1e-12);
    EXPECT_NEAR(checks[2].at("value").get<double>(), num(row.at("relex_beyond_accuracy")) - fin, 1e-12);
    EXPECT_NEAR(checks[3].at("value").get<double>(), num(row.at("rl_rank1_ev")) - num(row.at("sft_rank1_ev")), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), rx - num(row.at("naive_accuracy")), 1e-12);
    EXPECT_NEAR(checks[1].at("threshold").get<double>(), -0.03, 1e-15);
    EXPECT_TRUE(fs::exists(run / "relex_accuracy.svg"));
  } else if (name == "stableun") {
    // --quick: 20 attack steps; each curve has 21 accuracies in [0, 1], its AUC is the trapezoid
    // area / 20, the retain drop and the StableUN − baseline differences recomputed from the row;
    // StableUN costs 3 passes per step, the baselines 2, over the steps each took (early stop).
    for (const char* meth : {"ga", "npo", "stableun"}) {
      const auto& r = row.at(meth);
      const auto a = r.at("relearn_acc").get<std::vector<double>>();
      ASSERT_EQ(a.size(), 21u) << meth;
      double area = 0;
      for (std::size_t i = 0; i + 1 < a.size(); ++i) area += (a[i] + a[i + 1]) / 2;
      for (double x : a) EXPECT_TRUE(x >= 0 && x <= 1) << meth << " " << x;
      EXPECT_NEAR(num(r.at("relearn_auc")), area / 20, 1e-12) << meth;
      EXPECT_NEAR(num(m.at(std::string(meth) + "_relearn_auc")), area / 20, 1e-12) << meth;
      EXPECT_NEAR(num(m.at(std::string(meth) + "_retain_drop")),
                  num(row.at("original").at("retain_acc")) - num(r.at("retain_acc")), 1e-12) << meth;
      const int steps = r.at("steps").get<int>();
      EXPECT_TRUE(steps >= 1 && steps <= 100) << meth << " " << steps;
      EXPECT_EQ(r.at("passes").get<int>(), (std::string(meth) == "stableun" ? 3 : 2) * steps) << meth;
      // Stopped at a check (every 5 steps) with forget training accuracy <= 0.01, or ran all 100.
      EXPECT_TRUE(steps == 100 || (steps % 5 == 0 && num(r.at("forget_train_acc")) <= 0.01)) << meth << " " << steps;
      EXPECT_NEAR(a[0], num(r.at("forget_acc")), 1e-12) << meth << ": the attack starts from the unlearned model";
    }
    EXPECT_NEAR(num(m.at("stableun_minus_ga_relearn_auc")),
                num(row.at("stableun").at("relearn_auc")) - num(row.at("ga").at("relearn_auc")), 1e-12);
    EXPECT_NEAR(num(m.at("stableun_minus_npo_lambda_max_abs")),
                std::abs(num(row.at("stableun").at("lambda_max"))) - std::abs(num(row.at("npo").at("lambda_max"))), 1e-9);
    EXPECT_GT(num(row.at("original").at("forget_acc")), 0.5) << "the trained model knows the class before unlearning";
    EXPECT_TRUE(fs::exists(run / "stableun_relearn.svg"));
  } else if (name == "generalization-dynamics") {
    // --quick: 27 cells (9 loads × 3 SNRs, σ_w̄ = 1, σ² = 1/SNR), 71 times (10 per decade over
    // [1e-2, 1e5]); the closed forms and the exact finite-N asymptotes by hand (N = 200); the seven
    // checks' values recomputed from the row (one seed).
    const auto times = row.at("times").get<std::vector<double>>();
    ASSERT_EQ(times.size(), 71u);
    EXPECT_NEAR(times.front(), 1e-2, 1e-15);
    EXPECT_NEAR(times.back(), 1e5, 1e-6);
    const auto& cells = row.at("cells");
    ASSERT_EQ(cells.size(), 27u);
    const std::vector<double> loads = {0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0, 4.0}, snrs = {0.5, 2.0, 10.0};
    std::size_t in = 0, all = 0, peaks = 0, rising = 0;
    double worst_rel = 0, worst_offset = 0;
    for (std::size_t a = 0; a < 9; ++a) {
      const double al = loads[a], n = 200, p = std::round(al * n);
      double prev_t = -1, offset = 0;
      bool up = true;
      for (std::size_t s = 0; s < 3; ++s) {
        const auto& c = cells[a * 3 + s];
        const double s2 = 1 / snrs[s];
        EXPECT_EQ(c.at("alpha").get<double>(), al);
        EXPECT_EQ(c.at("samples").get<double>(), p);
        if (al != 1.0) {
          const double closed = al > 1 ? s2 + s2 / (al - 1) : s2 + (1 - al) + s2 * al / (1 - al);
          const double finite = al > 1 ? s2 + s2 * n / (p - n - 1) : s2 + (n - p) / n + s2 * p / (n - p - 1);
          EXPECT_NEAR(num(c.at("eg_inf_closed")), closed, 1e-12 * closed);
          EXPECT_NEAR(num(c.at("eg_inf_finite")), finite, 1e-12 * finite);
          const double gap = std::abs(finite - closed);
          const auto mm = c.at("eg_mean").get<std::vector<double>>(), se = c.at("eg_se").get<std::vector<double>>(),
                     thy = c.at("eg_theory").get<std::vector<double>>();
          ASSERT_EQ(mm.size(), 71u);
          for (std::size_t i = 0; i < mm.size(); ++i, ++all) in += std::abs(mm[i] - thy[i]) <= 3 * se[i] + gap ? 1 : 0;
          in += std::abs(num(c.at("eg_inf_mean")) - closed) <= 3 * num(c.at("eg_inf_se")) + gap ? 1 : 0;
          ++all;
          if (std::abs(al - 1) >= 0.25) worst_rel = std::max(worst_rel, std::abs(num(c.at("eg_inf_mean")) - closed) / closed);
          // At t = 1e-2 barely anything has moved: E_g ≈ σ_w̄² + σ² = 1 + σ² (theory, within 5 %).
          EXPECT_NEAR(thy[0], 1 + s2, 0.05 * (1 + s2));
        } else {
          EXPECT_TRUE(c.at("eg_inf_closed").is_null());
        }
        EXPECT_NEAR(num(c.at("offset_expected")), (1 - std::min(1.0, al)) * 1.0, 1e-12);
        offset += num(c.at("offset_mean")) / 3;
        const auto mm = c.at("eg_mean").get<std::vector<double>>();
        const double t = times[static_cast<std::size_t>(std::min_element(mm.begin(), mm.end()) - mm.begin())];
        EXPECT_EQ(num(c.at("t_opt")), t);
        up = up && t > prev_t;
        prev_t = t;
      }
      rising += up ? 1 : 0;
      if (al <= 0.75) worst_offset = std::max(worst_offset, std::abs(offset / (1 - al) - 1));
    }
    for (std::size_t s = 0; s < 3; ++s) {
      std::size_t best = 0;
      for (std::size_t a = 1; a < 9; ++a)
        if (num(cells[a * 3 + s].at("eg_inf_mean")) > num(cells[best * 3 + s].at("eg_inf_mean"))) best = a;
      peaks += loads[best] == 1.0 ? 1 : 0;
    }
    const auto& rf = row.at("rf");
    const auto ratios = rf.at("ratios").get<std::vector<double>>();
    const auto err = rf.at("test_inf_mean").get<std::vector<double>>();
    ASSERT_EQ(ratios.size(), 10u);
    ASSERT_EQ(err.size(), 10u);
    for (std::size_t i = 0; i < ratios.size(); ++i) EXPECT_EQ(rf.at("widths")[i].get<double>(), std::round(ratios[i] * 100));
    const auto peak = static_cast<std::size_t>(std::max_element(err.begin(), err.end()) - err.begin());
    // Beyond the threshold the student interpolates: training error 0 at t = ∞ (H = 2P, 4P, 8P).
    for (std::size_t i = 7; i < 10; ++i) EXPECT_LT(rf.at("train_inf_mean")[i].get<double>(), 1e-12) << ratios[i];
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 7u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), static_cast<double>(in) / static_cast<double>(all), 1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), worst_rel, 1e-12);
    EXPECT_EQ(checks[2].at("value").get<double>(), static_cast<double>(peaks));
    EXPECT_NEAR(checks[3].at("value").get<double>(), worst_offset, 1e-12);
    EXPECT_EQ(checks[4].at("value").get<double>(), static_cast<double>(rising));
    EXPECT_NEAR(checks[5].at("value").get<double>(), std::abs(ratios[peak] - 1), 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(), err[9] - err[7], 1e-12);
    for (const char* f : {"gd_curves_snr_0.5.svg", "gd_curves_snr_2.svg", "gd_curves_snr_10.svg", "gd_asymptote.svg",
                          "gd_random_features.svg"})
      EXPECT_TRUE(fs::exists(run / f)) << f;
  } else if (name == "cnn-kernel-curves") {
    // --quick: n = 2^4 … 2^9 (6 sizes), d = 8 and 16; every relative error positive and finite; each β
    // recomputed here as minus the least-squares slope of log ε on log n; the ten checks' values from
    // those β (one seed).
    const auto sizes = row.at("sizes").get<std::vector<double>>();
    ASSERT_EQ(sizes, (std::vector<double>{16, 32, 64, 128, 256, 512}));
    const auto slope = [&](const std::vector<double>& e) {
      double mx = 0, my = 0;
      for (std::size_t i = 0; i < e.size(); ++i) mx += std::log(sizes[i]) / e.size(), my += std::log(e[i]) / e.size();
      double sxy = 0, sxx = 0;
      for (std::size_t i = 0; i < e.size(); ++i)
        sxy += (std::log(sizes[i]) - mx) * (std::log(e[i]) - my), sxx += (std::log(sizes[i]) - mx) * (std::log(sizes[i]) - mx);
      return -sxy / sxx;
    };
    const auto& dims = row.at("dims");
    ASSERT_EQ(dims.size(), 2u);
    EXPECT_EQ(dims[0].at("d").get<int>(), 8);
    EXPECT_EQ(dims[1].at("d").get<int>(), 16);
    std::map<std::string, double> beta;
    for (std::size_t di = 0; di < 2; ++di)
      for (const char* t : {"local", "meta", "global"})
        for (const char* st : {"cnn", "fc"}) {
          const auto e = dims[di].at(t).at(std::string(st) + "_error").get<std::vector<double>>();
          ASSERT_EQ(e.size(), 6u);
          for (double x : e) EXPECT_TRUE(std::isfinite(x) && x > 0) << t << " " << st;
          const double b = slope(e);
          EXPECT_NEAR(num(dims[di].at(t).at(std::string(st) + "_beta")), b, 1e-9) << t << " " << st;
          beta[std::string(st) + t + std::to_string(di)] = b;
          EXPECT_NEAR(num(m.at("beta_" + std::string(st) + "_" + t + "_d" + (di ? "16" : "8"))), b, 1e-9);
        }
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 10u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), beta["cnnlocal0"] - beta["cnnmeta0"], 1e-9);
    EXPECT_NEAR(checks[1].at("value").get<double>(), beta["cnnmeta0"] - beta["cnnglobal0"], 1e-9);
    EXPECT_NEAR(checks[2].at("value").get<double>(), beta["cnnlocal1"] - beta["cnnmeta1"], 1e-9);
    EXPECT_NEAR(checks[3].at("value").get<double>(), beta["cnnmeta1"] - beta["cnnglobal1"], 1e-9);
    EXPECT_NEAR(checks[4].at("value").get<double>(), beta["cnnglobal1"] - beta["cnnglobal0"], 1e-9);
    EXPECT_NEAR(checks[5].at("value").get<double>(), beta["cnnlocal1"] / beta["cnnlocal0"], 1e-9);
    EXPECT_NEAR(checks[6].at("value").get<double>(), beta["cnnlocal0"] - beta["fclocal0"], 1e-9);
    EXPECT_NEAR(checks[7].at("value").get<double>(), beta["cnnmeta0"] - beta["fcmeta0"], 1e-9);
    EXPECT_NEAR(checks[8].at("value").get<double>(), beta["cnnlocal1"] - beta["fclocal1"], 1e-9);
    EXPECT_NEAR(checks[9].at("value").get<double>(), beta["cnnmeta1"] - beta["fcmeta1"], 1e-9);
    for (const char* f : {"cnn_kernel_curves_d8.svg", "cnn_kernel_curves_d16.svg"}) EXPECT_TRUE(fs::exists(run / f)) << f;
  } else if (name == "grokalign") {
    // --quick (one seed): per variant, the curve starts at step 0, its steps are multiples of
    // `every` = 25 (or the budget 300), accuracies and alignments lie in [0, 1] and [-1, 1]; the steps
    // to the threshold are the first curve step with test accuracy >= 0.75 (the budget if none);
    // the checks recomputed from the row.
    std::map<std::string, double> steps;
    for (const char* v : {"none", "weight_decay", "grokalign"}) {
      const auto& r = row.at(v);
      const auto& curve = r.at("curve");
      ASSERT_FALSE(curve.empty()) << v;
      EXPECT_EQ(curve.front().at("step").get<int>(), 0) << v;
      double first = 300;
      bool reached = false;
      for (const auto& p : curve) {
        const int s = p.at("step").get<int>();
        EXPECT_TRUE(s % 25 == 0 || s == 300) << v << " " << s;
        for (const char* a : {"train_acc", "test_acc"}) {
          const double x = p.at(a).get<double>();
          EXPECT_TRUE(x >= 0 && x <= 1) << v << " " << a << " " << x;
        }
        const double al = p.at("alignment").get<double>();
        EXPECT_TRUE(al >= -1 - 1e-6 && al <= 1 + 1e-6) << v << " " << al;
        if (!reached && p.at("test_acc").get<double>() >= 0.75) {
          reached = true;
          first = s;
        }
      }
      EXPECT_EQ(r.at("reached").get<bool>(), reached) << v;
      EXPECT_EQ(r.at("steps_to_threshold").get<double>(), first) << v;
      // Training stops at the threshold: the last curve point is the first to reach it.
      if (reached) {
        EXPECT_EQ(curve.back().at("step").get<double>(), first) << v;
      }
      EXPECT_EQ(num(m.at(std::string(v) + "_steps")), first) << v;
      steps[v] = first;
      EXPECT_EQ(r.at("alignment_start").get<double>(), curve.front().at("alignment").get<double>());
      EXPECT_EQ(r.at("alignment_end").get<double>(), curve.back().at("alignment").get<double>());
    }
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 3u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), steps["grokalign"] / steps["weight_decay"], 1e-12);
    EXPECT_EQ(checks[1].at("value").get<double>(), row.at("grokalign").at("reached").get<bool>() ? 1.0 : 0.0);
    EXPECT_NEAR(checks[2].at("value").get<double>(),
                row.at("grokalign").at("alignment_end").get<double>() - row.at("grokalign").at("alignment_start").get<double>(), 1e-12);
    for (const char* f : {"grokalign_test_acc.svg", "grokalign_alignment.svg"}) EXPECT_TRUE(fs::exists(run / f)) << f;
  } else if (name == "shesha") {
    // --quick: widths 16, 32; depths 1, 2; 1 and 4 epochs; a in {0.01, 0.0548, 0.3}; one sweep seed:
    // 24 configurations and 4 training steps, each a line of shesha_configs.jsonl. Per row: the
    // drifts are 1 − the similarities and the accuracy drop clean − noisy; the checks recomputed.
    const auto& configs = row.at("configs");
    const auto& training = row.at("training");
    ASSERT_EQ(configs.size(), 24u);
    ASSERT_EQ(training.size(), 4u);
    EXPECT_EQ(sl::read_lines(run / "shesha_configs.jsonl").size(), 28u);
    const auto noises = row.at("noises").get<std::vector<double>>();
    ASSERT_EQ(noises.size(), 3u);
    EXPECT_NEAR(noises[1], std::sqrt(0.01 * 0.3), 1e-12);
    std::vector<double> sh, ck, ds, dc, drop, ratios;
    const auto ratio = [](double a, double b) {
      return b > 0 ? a / b : (a > 0 ? std::numeric_limits<double>::infinity() : 1.0);
    };
    const auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    const auto pearson = [](const std::vector<double>& a, const std::vector<double>& b) {
      double ma = 0, mb = 0;
      for (std::size_t i = 0; i < a.size(); ++i) ma += a[i] / a.size(), mb += b[i] / b.size();
      double ab = 0, aa = 0, bb = 0;
      for (std::size_t i = 0; i < a.size(); ++i) ab += (a[i] - ma) * (b[i] - mb), aa += (a[i] - ma) * (a[i] - ma), bb += (b[i] - mb) * (b[i] - mb);
      return ab / std::sqrt(aa * bb);
    };
    for (const auto& c : configs) {
      const double s = num(c.at("shesha")), k = num(c.at("cka"));
      EXPECT_TRUE(s >= -1 && s <= 1) << s;
      EXPECT_TRUE(k >= -1e-9 && k <= 1 + 1e-9) << k;
      EXPECT_NEAR(num(c.at("drift_shesha")), 1 - num(c.at("rdm_similarity")), 1e-12);
      EXPECT_NEAR(num(c.at("drift_cka")), 1 - num(c.at("cka_debiased")), 1e-12);
      EXPECT_NEAR(num(c.at("accuracy_drop")), num(c.at("accuracy_clean")) - num(c.at("accuracy_noisy")), 1e-12);
      EXPECT_EQ(num(c.at("noise")), noises[c.at("noise_index").get<std::size_t>()]);
      sh.push_back(s), ck.push_back(k);
      ds.push_back(num(c.at("drift_shesha"))), dc.push_back(num(c.at("drift_cka"))), drop.push_back(num(c.at("accuracy_drop")));
      ratios.push_back(ratio(ds.back(), dc.back()));
    }
    // Earlier warning: per network and length (3 consecutive rows, noise ascending), α where the
    // drift first reaches 0.05, linear from (0, 0).
    const auto cross = [&](const std::vector<double>& d) {
      double a0 = 0, d0 = 0;
      for (std::size_t i = 0; i < d.size(); ++i) {
        if (d[i] >= 0.05) return a0 + (noises[i] - a0) * (0.05 - d0) / (d[i] - d0);
        a0 = noises[i], d0 = d[i];
      }
      return std::numeric_limits<double>::infinity();
    };
    double earlier = 0;
    for (std::size_t n = 0; n < 8; ++n) {
      const std::vector<double> a(ds.begin() + 3 * n, ds.begin() + 3 * n + 3), b(dc.begin() + 3 * n, dc.begin() + 3 * n + 3);
      earlier += cross(a) < cross(b) ? 1.0 / 8 : 0.0;
    }
    std::vector<double> tr;
    for (const auto& t : training) tr.push_back(ratio(num(t.at("drift_shesha")), num(t.at("drift_cka"))));
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 7u);
    // One sweep seed: the cells are the configurations; ρ does not depend on their order.
    const double rho = sl::diagnostics::spearman(torch::tensor(sh, torch::kFloat64), torch::tensor(ck, torch::kFloat64));
    EXPECT_NEAR(num(m.at("rho_cells")), rho, 1e-12);
    EXPECT_NEAR(num(m.at("rho_configurations")), rho, 1e-12);
    EXPECT_NEAR(checks[0].at("value").get<double>(), std::abs(rho), 1e-12);
    EXPECT_EQ(checks[0].at("threshold").get<double>(), 0.2);
    EXPECT_EQ(checks[1].at("value").get<double>(), num(m.at("rho_cells_lo")));
    EXPECT_EQ(checks[2].at("value").get<double>(), num(m.at("rho_cells_hi")));
    EXPECT_LE(num(m.at("rho_cells_lo")), num(m.at("rho_cells_hi")));
    EXPECT_NEAR(checks[3].at("value").get<double>(), median(ratios), 1e-12);
    EXPECT_NEAR(checks[4].at("value").get<double>(), median(tr), 1e-12);
    EXPECT_NEAR(checks[5].at("value").get<double>(), earlier, 1e-12);
    EXPECT_NEAR(checks[6].at("value").get<double>(), pearson(ds, drop) - pearson(dc, drop), 1e-9);
    for (const char* f : {"shesha_vs_cka.svg", "shesha_drift.svg"}) EXPECT_TRUE(fs::exists(run / f)) << f;
  } else if (name == "intrinsic-dim-sizes") {
    // --quick: MLPs of 1 and 2 hidden layers of widths 8, 16, 32 and the CNN conv 4-8 / fc 16. Per
    // model: D in closed form; every probe's pass from its accuracy and 0.9 × the full model's;
    // d_int90 = the smallest passing probe, its grid predecessor probed and failed (or the last grid
    // point failed when null), at most ⌈log₂(n + 1)⌉ probes; then every check from the d_int90s.
    const auto& models = row.at("models");
    ASSERT_EQ(models.size(), 7u);
    std::map<std::int64_t, std::vector<double>> by_depth;
    std::vector<double> mlp, fractions;
    double cnn = std::nan("");
    for (const auto& md : models) {
      const auto kind = md.at("kind").get<std::string>();
      const double w = md.at("width").get<double>(), l = md.at("depth").get<double>();
      const double d_full = kind == "cnn" ? 9 * 4 + 4 + 9 * 4 * 8 + 8 + 49 * 8 * 16 + 16 + 16 * 10 + 10
                                          : 784 * w + w + (l - 1) * (w * w + w) + 10 * w + 10;
      EXPECT_EQ(md.at("parameters").get<double>(), d_full) << md.at("name");
      const double thr = 0.9 * md.at("full_test_accuracy").get<double>();
      EXPECT_NEAR(md.at("relative_threshold").get<double>(), thr, 1e-12);
      const auto grid = md.at("grid").get<std::vector<std::int64_t>>();
      ASSERT_FALSE(grid.empty());
      EXPECT_EQ(grid.front(), 16);
      EXPECT_LE(grid.back(), std::min<std::int64_t>(1024, static_cast<std::int64_t>(d_full)));
      std::map<std::int64_t, bool> probed;
      std::int64_t smallest = -1;
      for (const auto& pr : md.at("probes")) {
        const auto d = pr.at("d").get<std::int64_t>();
        const bool ok = pr.at("test_accuracy").get<double>() >= thr;
        EXPECT_EQ(pr.at("pass").get<bool>(), ok) << md.at("name") << " d " << d;
        EXPECT_NE(std::find(grid.begin(), grid.end(), d), grid.end()) << d;
        EXPECT_EQ(probed.count(d), 0u) << "probed twice: " << d;
        probed[d] = ok;
        if (ok && (smallest < 0 || d < smallest)) smallest = d;
      }
      EXPECT_LE(probed.size(), static_cast<std::size_t>(std::ceil(std::log2(grid.size() + 1.0))));
      if (smallest < 0) {
        EXPECT_TRUE(md.at("d_int90").is_null()) << md.at("name");
        ASSERT_TRUE(probed.count(grid.back())) << md.at("name");
        EXPECT_FALSE(probed.at(grid.back()));
      } else {
        EXPECT_EQ(md.at("d_int90").get<std::int64_t>(), smallest) << md.at("name");
        const auto at = std::find(grid.begin(), grid.end(), smallest);
        if (at != grid.begin()) {
          ASSERT_TRUE(probed.count(*(at - 1))) << md.at("name");
          EXPECT_FALSE(probed.at(*(at - 1)));
        }
      }
      const double d90 = smallest > 0 ? static_cast<double>(smallest) : std::nan("");
      fractions.push_back(d90 / d_full);
      if (kind == "cnn") cnn = d90;
      else {
        mlp.push_back(d90);
        by_depth[static_cast<std::int64_t>(l)].push_back(d90);
      }
    }
    auto ratio = [](const std::vector<double>& v) {
      for (double x : v)
        if (!std::isfinite(x)) return std::nan("");
      return *std::max_element(v.begin(), v.end()) / *std::min_element(v.begin(), v.end());
    };
    auto max_all = [](const std::vector<double>& v) {
      for (double x : v)
        if (!std::isfinite(x)) return std::nan("");
      return *std::max_element(v.begin(), v.end());
    };
    std::vector<double> sorted = mlp;
    std::sort(sorted.begin(), sorted.end(), [](double a, double b) { return std::isnan(b) ? !std::isnan(a) : a < b; });
    const double med = sorted.size() % 2 ? sorted[sorted.size() / 2] : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
    const std::vector<double> expected = {ratio(by_depth[1]), ratio(by_depth[2]), ratio(mlp), max_all(fractions), cnn / med};
    const std::vector<double> thresholds = {2.0, 2.0, 2.0, 0.05, 0.62};
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(checks[i].at("threshold").get<double>(), thresholds[i]) << i;
      EXPECT_EQ(checks[i].at("comparison").get<std::string>(), "<=") << i;
      if (std::isfinite(expected[i])) {
        EXPECT_NEAR(num(checks[i].at("value")), expected[i], 1e-12) << i;
      } else {
        EXPECT_TRUE(checks[i].at("value").is_null()) << i;
      }
    }
    EXPECT_TRUE(fs::exists(run / "intrinsic_dim_sizes.svg"));
  } else if (name == "fscil") {
    // --quick: six variants, 2 shot draws of 5 sessions (base + 4); accuracies in [0, 1]; novel
    // accuracy null in session 0; with equal test images per class the all-class accuracy is the
    // class-weighted mean of base (6 classes) and novel (t classes) accuracy; the base session is
    // the same for every draw of a variant; `full` shares `rotation`'s base model (same session 0);
    // the two checks and the last-session metrics recomputed from the row (one seed).
    const char* keys[] = {"baseline", "supcon", "etf", "pseudo", "rotation", "full"};
    auto at = [&](const char* v, const char* key, std::size_t d, std::size_t t) { return num(row.at(v).at(key).at(d).at(t)); };
    std::map<std::string, std::vector<double>> last, drop;
    for (const char* v : keys) {
      const auto& acc = row.at(v).at("acc");
      ASSERT_EQ(acc.size(), 2u) << v;
      for (std::size_t d = 0; d < 2; ++d) {
        ASSERT_EQ(acc.at(d).size(), 5u) << v;
        EXPECT_TRUE(row.at(v).at("novel_acc").at(d).at(0).is_null());
        EXPECT_EQ(at(v, "acc", d, 0), at(v, "acc", 0, 0)) << v;
        EXPECT_EQ(at(v, "acc", d, 0), at(v, "base_acc", d, 0)) << v;
        for (std::size_t t = 1; t < 5; ++t) {
          const double a = at(v, "acc", d, t), b = at(v, "base_acc", d, t), n = at(v, "novel_acc", d, t);
          EXPECT_TRUE(a >= 0 && a <= 1 && b >= 0 && b <= 1 && n >= 0 && n <= 1) << v << " " << d << " " << t;
          EXPECT_NEAR(a, (6 * b + static_cast<double>(t) * n) / (6 + static_cast<double>(t)), 1e-12) << v << " " << d << " " << t;
        }
        last[v].push_back(at(v, "acc", d, 4));
        drop[v].push_back(at(v, "base_acc", d, 0) - at(v, "base_acc", d, 4));
      }
      EXPECT_NEAR(num(m.at(std::string(v) + "_last_acc_mean")), (last[v][0] + last[v][1]) / 2, 1e-12) << v;
      EXPECT_NEAR(num(m.at(std::string(v) + "_last_acc_std")), std::abs(last[v][0] - last[v][1]) / std::sqrt(2.0), 1e-12) << v;
    }
    EXPECT_EQ(at("full", "acc", 0, 0), at("rotation", "acc", 0, 0));
    EXPECT_TRUE(row.at("full").at("base_train_loss").is_null());
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 2u);
    EXPECT_NEAR(checks[0].at("value").get<double>(), (last["full"][0] + last["full"][1] - last["baseline"][0] - last["baseline"][1]) / 2,
                1e-12);
    EXPECT_NEAR(checks[1].at("value").get<double>(), (drop["baseline"][0] + drop["baseline"][1] - drop["pseudo"][0] - drop["pseudo"][1]) / 2,
                1e-12);
    for (const auto& c : checks) {
      EXPECT_EQ(c.at("comparison").get<std::string>(), ">");
      EXPECT_EQ(c.at("threshold").get<double>(), 0.0);
    }
    EXPECT_TRUE(fs::exists(run / "fscil_sessions.svg"));
  } else if (name == "lcia") {
    // --quick, one seed, the stream of domains 0,1,0,2,1,3: final ACC, forgetting and plasticity of
    // every method recomputed from its accuracy matrix; the full method's choices (a new adapter
    // per new domain, the domain's adapter on each recurrence), one adapter for the others; the
    // checks' values from those numbers.
    EXPECT_EQ(row.at("stream").get<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{0, 1, 0, 2, 1, 3}));
    std::map<std::string, double> acc, forg, plast;
    for (const char* k : {"finetune", "ema", "dema", "full"}) {
      const auto& r = row.at("methods").at(k);
      const auto R = r.at("accuracy_matrix").get<std::vector<std::vector<double>>>();
      ASSERT_EQ(R.size(), 6u) << k;
      double a = 0, f = 0, p = 0;
      for (std::size_t j = 0; j < 6; ++j) {
        ASSERT_EQ(R[j].size(), j + 1) << k;
        for (double v : R[j]) EXPECT_NEAR(v * 300, std::round(v * 300), 1e-9) << k;  // a share of 300 test images
        a += R[5][j] / 6;
        p += R[j][j] / 6;
        if (j < 5) {
          double best = -1;
          for (std::size_t t = j; t < 5; ++t) best = std::max(best, R[t][j]);
          f += (best - R[5][j]) / 5;
        }
      }
      EXPECT_NEAR(num(r.at("final_accuracy")), a, 1e-12) << k;
      EXPECT_NEAR(num(r.at("forgetting")), f, 1e-12) << k;
      EXPECT_NEAR(num(r.at("plasticity")), p, 1e-12) << k;
      EXPECT_EQ(num(m.at(std::string("final_accuracy_") + k)), num(r.at("final_accuracy"))) << k;
      EXPECT_EQ(r.at("adapters").get<int>(), std::string(k) == "full" ? 4 : 1) << k;
      acc[k] = a;
      forg[k] = f;
      plast[k] = p;
    }
    const auto& ch = row.at("methods").at("full").at("choices");
    const std::vector<int> adapter = {0, 1, 0, 2, 1, 3};
    for (std::size_t t = 0; t < 6; ++t) {
      EXPECT_EQ(ch[t].at("adapter").get<int>(), adapter[t]) << t;
      EXPECT_EQ(ch[t].at("reused").get<bool>(), t == 2 || t == 4) << t;
    }
    const auto& checks = res.at("checks");
    ASSERT_EQ(checks.size(), 12u);
    const std::vector<double> values = {acc["full"],
                                        forg["finetune"] - forg["dema"],
                                        acc["dema"] - acc["finetune"],
                                        plast["dema"] - plast["ema"],
                                        acc["dema"] - acc["ema"],
                                        forg["full"] - forg["dema"],
                                        forg["full"] - forg["ema"],
                                        acc["full"] - acc["dema"],
                                        acc["full"] - acc["ema"],
                                        4,
                                        4,
                                        4};
    const std::vector<double> thresholds = {0.5, 0, 0, 0, 0, 0, 0, 0, 0, 6, 4, 4};
    for (std::size_t i = 0; i < 12; ++i) {
      EXPECT_NEAR(checks[i].at("value").get<double>(), values[i], 1e-12) << i;
      EXPECT_EQ(checks[i].at("threshold").get<double>(), thresholds[i]) << i;
    }
    EXPECT_TRUE(fs::exists(run / "lcia_final_accuracy.svg"));
  }
  fs::remove_all(run.parent_path());
}

INSTANTIATE_TEST_SUITE_P(Entries, ReproQuick, ::testing::ValuesIn(kEntries),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

// drl-diagnosis-pixels' variant agents = 2 (pixel agents trained by DDQN with the CNN, no state
// teachers), --quick: at most 1500 env steps per agent (training starts at 1000, so the end-of-run
// report evaluates once), no distillation keys, the episode block and the 7 checks recomputed from
// the row as for the default; agents 3 is a ConfigError naming the option.
TEST(ReproCli, DrlDiagnosisPixelsDirectDdqnVariant) {
  const auto dir = sl::testing::temp_dir("repro_drl_pixels_ddqn");
  const auto run = dir / "run";
  const auto r = sl::testing::run_cli("repro drl-diagnosis-pixels --quick --set agents=2 --quiet --out " + run.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto res = checked_results(run, "drl-diagnosis-pixels");
  EXPECT_FALSE(res.at("setup").contains("teachers"));
  EXPECT_NE(res.at("setup").at("pixel_agents").get<std::string>().find("trained directly by DDQN"), std::string::npos);
  EXPECT_FALSE(res.at("metrics").contains("vanilla_distill_agreement"));
  const auto rows = metrics_rows(run);
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0].at("result");
  for (const char* a : {"vanilla", "adversarial"}) {
    const auto& x = row.at(a);
    EXPECT_LE(x.at("env_steps").get<int>(), 1500) << a;
    EXPECT_FALSE(x.contains("distill_frames")) << a;
    EXPECT_EQ(x.at("evaluations").get<int>(), 1) << a;
    const double rsum = expect_drl_episodes(x, a);
    EXPECT_EQ(x.at("states").get<double>(), rsum) << a;
  }
  expect_drl_checks(res, row);
  const auto bad = sl::testing::run_cli("repro drl-diagnosis-pixels --quick --set agents=3 --quiet --out " + (dir / "bad").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("options.agents"), std::string::npos) << bad.err;
  fs::remove_all(dir);
}

TEST(ReproCli, TheSameSeedGivesTheSameMetricsAndAnotherSeedOthers) {
  const auto dir = sl::testing::temp_dir("repro_seed");
  const std::string args = "repro edge-of-stability --quick --set steps=200 --quiet --out ";
  ASSERT_EQ(sl::testing::run_cli(args + (dir / "a").string()).status, 0);
  ASSERT_EQ(sl::testing::run_cli(args + (dir / "b").string()).status, 0);
  ASSERT_EQ(sl::testing::run_cli(args + (dir / "c").string() + " --seed 1").status, 0);
  const auto a = read_json(dir / "a" / "results.json"), b = read_json(dir / "b" / "results.json"),
             c = read_json(dir / "c" / "results.json");
  EXPECT_EQ(a.at("metrics"), b.at("metrics"));
  EXPECT_EQ(a.at("checks"), b.at("checks"));
  EXPECT_NE(a.at("metrics").at("initial_ratio"), c.at("metrics").at("initial_ratio"));
  fs::remove_all(dir);
}

TEST(ReproCli, ResumeSkipsFinishedSeedsAndAChangedConfigNamesTheKeys) {
  const auto dir = sl::testing::temp_dir("repro_resume");
  const auto run = (dir / "run").string();
  const std::string base = "repro edge-of-stability --quick --set steps=100 --quiet --seeds 2 --out " + run;
  ASSERT_EQ(sl::testing::run_cli(base).status, 0);
  ASSERT_EQ(metrics_rows(run).size(), 2u);
  const auto first = read_json(fs::path(run) / "results.json");
  // Again without --resume: refused; with it: nothing re-run, the same results.
  sl::testing::expect_usage_error(base, "use --resume");
  const auto again = sl::testing::run_cli(base + " --resume");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(metrics_rows(run).size(), 2u);
  EXPECT_EQ(read_json(fs::path(run) / "results.json").at("metrics"), first.at("metrics"));
  // A different configuration names every differing key.
  const auto changed = sl::testing::run_cli("repro edge-of-stability --quick --set steps=120 --set lr=0.375 --quiet --seeds 2 --resume --out " + run);
  EXPECT_EQ(changed.status, 2);
  EXPECT_NE(changed.err.find("options.steps = 100 in the run, 120 now"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("options.lr = 0.5 in the run, 0.375 now"), std::string::npos) << changed.err;
  fs::remove_all(dir);
}

TEST(ReproCli, SheshaResumesPerConfigurationWithTheSameNumbers) {
  // A whole --quick sweep, then a copy cut after 10 configuration lines plus half a line (a kill
  // during an append), without its seed row and results: --resume recomputes only what is missing
  // and gives the same rows, metrics and checks.
  const auto dir = sl::testing::temp_dir("repro_shesha_resume");
  const auto a = dir / "a", b = dir / "b";
  const std::string args = "repro shesha --quick --quiet --out ";
  ASSERT_EQ(sl::testing::run_cli(args + a.string()).status, 0);
  const auto lines = sl::read_lines(a / "shesha_configs.jsonl");
  ASSERT_EQ(lines.size(), 28u);
  fs::create_directories(b);
  fs::copy_file(a / "config.toml", b / "config.toml");
  {
    std::ofstream f(b / "shesha_configs.jsonl");
    for (std::size_t i = 0; i < 10; ++i) f << lines[i] << "\n";
    f << lines[10].substr(0, lines[10].size() / 2);
  }
  const auto r = sl::testing::run_cli(args + b.string() + " --resume");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto again = sl::read_lines(b / "shesha_configs.jsonl");
  ASSERT_EQ(again.size(), 28u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(again[i], lines[i]);
  EXPECT_EQ(metrics_rows(b)[0].at("result"), metrics_rows(a)[0].at("result"));
  const auto ra = read_json(a / "results.json"), rb = read_json(b / "results.json");
  EXPECT_EQ(rb.at("metrics"), ra.at("metrics"));
  EXPECT_EQ(rb.at("checks"), ra.at("checks"));
  // Bad input names the key: negative noise (every option must be positive), an empty noise range.
  sl::testing::expect_usage_error("repro shesha --quick --set min_noise=-0.1 --out " + (dir / "c").string(), "option 'min_noise' must be a positive number");
  sl::testing::expect_usage_error("repro shesha --quick --set min_noise=0.5 --set max_noise=0.1 --out " + (dir / "d").string(),
                                  "options.min_noise = 0.5 exceeds options.max_noise = 0.1");
  fs::remove_all(dir);
}

TEST(ReproCli, BadInputIsExitStatusTwoButNotReproducedIsZero) {
  const auto dir = sl::testing::temp_dir("repro_bad");
  sl::testing::expect_usage_error("repro edge-of-stabilty --out " + (dir / "x").string(),
                                  "known: edge-of-stability, sgd-minimum, trajectory, intrinsic-dim, commutator");
  sl::testing::expect_usage_error("repro commutator --quick --set kk=4 --out " + (dir / "y").string(),
                                  "unknown key 'options.kk'");
  sl::testing::expect_usage_error("repro commutator --quick --set kk=4 --out " + (dir / "y2").string(), "valid keys");
  sl::testing::expect_usage_error("repro commutator --quick", "--out RUN is required");
  // An entry's own option rules name the key (cnn-kernel-curves: patch, meta-patch and input must differ).
  sl::testing::expect_usage_error("repro cnn-kernel-curves --quick --set depth_small=2 --out " + (dir / "w").string(),
                                  "options.depth_small");
  // A GD rate far beyond 2/λ_max diverges: the claim's checks fail, which is a result (exit 0).
  const auto r = sl::testing::run_cli("repro edge-of-stability --quick --set lr=50 --set steps=50 --quiet --out " + (dir / "z").string());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_json(dir / "z" / "results.json").at("verdict"), "not reproduced");
  EXPECT_NE(r.out.find("verdict: not reproduced"), std::string::npos) << r.out;
  fs::remove_all(dir);
}
