// The LfD views of `stablelearn report` (lfd/report_sections.h): the principal plane of ND data, the
// skill views drawn on it, and the stability section from saved or computed `lfd stability` results.
#include <cmath>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/lfd/report_sections.h"
#include "stablelearn/lfd/trainer.h"
#include "lfd_testing.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::lfd;
using nlohmann::json;

namespace {

/// Every chart of the sections whose "type" is `type`.
std::vector<json> charts_of(const json& sections, const std::string& type) {
  std::vector<json> out;
  for (const auto& s : sections)
    for (const auto& c : s["charts"])
      if (c["type"] == type) out.push_back(c);
  return out;
}

/// A 4-D point cloud o + a u1 + b u2 + c u3 over a full circle (a = 3 cos θ, b = sin θ, c = 0.1 cos 2θ:
/// uncorrelated, variances 4.5, 0.5, 0.005 up to the N/(N−1) factor common to all).
torch::Tensor circle_cloud(const std::vector<double>& o, const std::vector<double>& u1, const std::vector<double>& u2,
                           const std::vector<double>& u3, int n) {
  auto x = torch::zeros({n, 4}, torch::kFloat64);
  for (int i = 0; i < n; ++i) {
    const double th = 2 * M_PI * i / n, a = 3 * std::cos(th), b = std::sin(th), c = 0.1 * std::cos(2 * th);
    for (int k = 0; k < 4; ++k) x[i][k] = o[k] + a * u1[k] + b * u2[k] + c * u3[k];
  }
  return x;
}

}  // namespace

TEST(PrincipalPlane, TopTwoDirectionsOfAKnownCloudWithFixedSigns) {
  const std::vector<double> o{1, -2, 0.5, 3}, u1{0.8, 0.6, 0, 0}, u2{0, 0, 0.6, -0.8}, u3{-0.6, 0.8, 0, 0};
  const auto pts = circle_cloud(o, u1, u2, u3, 64);
  const auto goal = torch::tensor({0.5, 0.25, -1.0, 2.0}, torch::kFloat64);
  const auto p = principal_plane(pts, goal);
  ASSERT_EQ(p.basis.size(), 8u);
  // Column 0 is u1 (its largest entry 0.8 is positive); column 1 is −u2 (u2's largest-magnitude entry is −0.8).
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(p.basis[static_cast<std::size_t>(2 * k)], u1[static_cast<std::size_t>(k)], 1e-9) << k;
    EXPECT_NEAR(p.basis[static_cast<std::size_t>(2 * k + 1)], -u2[static_cast<std::size_t>(k)], 1e-9) << k;
    EXPECT_DOUBLE_EQ(p.origin[static_cast<std::size_t>(k)], goal[k].item<double>());
  }
  // Variances 4.5 and 0.5 of 4.5 + 0.5 + 0.005 (θ on a full circle: the three are uncorrelated).
  EXPECT_NEAR(p.explained, 5.0 / 5.005, 1e-9);
  // Two coordinates: the data's own axes.
  const auto p2 = principal_plane(torch::randn({10, 2}, torch::kFloat64), torch::tensor({3.0, 4.0}, torch::kFloat64));
  EXPECT_EQ(p2.basis, (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(p2.origin, (std::vector<double>{0, 0}));
  sl::testing::expect_error<sl::UsageError>([] { principal_plane(torch::zeros({5, 3}), torch::zeros({2})); }, "origin must have 3");
}

TEST(SkillReportSections, EightDimensionalSkillsAreDrawnOnTheDemonstrationsPrincipalPlane) {
  // A tiny one-task run on LASA 8D: the page's plane is the top-2 principal plane of the raw
  // demonstration positions through the mean goal, checked against a covariance computed with
  // plain loops here; the demonstrations are drawn as their projections onto it.
  const auto dir = sl::testing::temp_dir("report_sections_8d");
  auto cfg = sl::testing::tiny_lfd_config(1, 4, 0.005);
  cfg.dataset = "lasa8d";
  cfg.explicit_time = false;
  cfg.eps = 1e-3;
  cfg.evaluate = false;
  LfdTrainer(cfg, dir).run(false);
  const LfdRun run(dir);
  const auto d = run.task(0);
  const auto P = d.position_dim;
  ASSERT_EQ(P, 8);
  SkillViewOptions opt;
  opt.random_starts = 2;
  opt.grid = 12;
  opt.seeds = 4;
  opt.stream_steps = 4;
  opt.stability_random_starts = 2;
  const auto sections = skill_report_sections(run, dir, sl::report::ReportOptions{}, opt);
  const auto planes = charts_of(sections, "plane");
  ASSERT_EQ(planes.size(), 1u);
  const auto& c = planes[0];
  EXPECT_NE(c["title"].get<std::string>().find("principal plane"), std::string::npos);
  EXPECT_EQ(c["x_label"], "PC1");
  // Covariance of the raw positions, by loops.
  const auto raw = d.raw.narrow(2, 0, P).to(torch::kFloat64).contiguous();
  const auto M = raw.size(0), T = raw.size(1);
  const auto* r = raw.data_ptr<double>();
  std::vector<double> mu(static_cast<std::size_t>(P), 0.0), cov(static_cast<std::size_t>(P * P), 0.0), goal(static_cast<std::size_t>(P), 0.0);
  const double N = static_cast<double>(M * T);
  for (std::int64_t i = 0; i < M * T; ++i)
    for (std::int64_t k = 0; k < P; ++k) mu[static_cast<std::size_t>(k)] += r[i * P + k] / N;
  for (std::int64_t i = 0; i < M * T; ++i)
    for (std::int64_t a = 0; a < P; ++a)
      for (std::int64_t b = 0; b < P; ++b)
        cov[static_cast<std::size_t>(a * P + b)] += (r[i * P + a] - mu[static_cast<std::size_t>(a)]) * (r[i * P + b] - mu[static_cast<std::size_t>(b)]) / (N - 1);
  for (std::int64_t m = 0; m < M; ++m)
    for (std::int64_t k = 0; k < P; ++k) goal[static_cast<std::size_t>(k)] += r[(m * T + T - 1) * P + k] / static_cast<double>(M);
  const auto& basis = c["plane"]["basis"];  // 2 x P, row-major: u1 then u2
  const auto& origin = c["plane"]["origin"];
  ASSERT_EQ(basis.size(), static_cast<std::size_t>(2 * P));
  double trace = 0, max_diag = 0;
  for (std::int64_t k = 0; k < P; ++k) {
    trace += cov[static_cast<std::size_t>(k * P + k)];
    max_diag = std::max(max_diag, cov[static_cast<std::size_t>(k * P + k)]);
    EXPECT_NEAR(origin[static_cast<std::size_t>(k)].get<double>(), goal[static_cast<std::size_t>(k)], 1e-6 * (1 + std::abs(goal[static_cast<std::size_t>(k)])));
  }
  std::vector<double> lambda(2);
  for (int e = 0; e < 2; ++e) {
    auto u = [&](std::int64_t k) { return basis[static_cast<std::size_t>(e * P + k)].get<double>(); };
    double norm = 0, dot = 0, rq = 0;
    std::vector<double> cu(static_cast<std::size_t>(P), 0.0);
    for (std::int64_t a = 0; a < P; ++a) {
      norm += u(a) * u(a);
      dot += u(a) * basis[static_cast<std::size_t>(P + a)].get<double>();
      for (std::int64_t b = 0; b < P; ++b) cu[static_cast<std::size_t>(a)] += cov[static_cast<std::size_t>(a * P + b)] * u(b);
    }
    for (std::int64_t a = 0; a < P; ++a) rq += u(a) * cu[static_cast<std::size_t>(a)];
    EXPECT_NEAR(norm, 1.0, 1e-6);
    if (e == 0) {
      EXPECT_NEAR(dot, 0.0, 1e-6);
    }
    // An eigenvector: C u = λ u.
    for (std::int64_t a = 0; a < P; ++a) EXPECT_NEAR(cu[static_cast<std::size_t>(a)], rq * u(a), 1e-5 * trace) << "component " << e << ", " << a;
    lambda[static_cast<std::size_t>(e)] = rq;
  }
  // The top one: no direction (here: no coordinate axis) has more variance.
  EXPECT_GE(lambda[0] * (1 + 1e-9), max_diag);
  EXPECT_GE(lambda[0], lambda[1]);
  EXPECT_NEAR(c["plane"]["explained"].get<double>(), (lambda[0] + lambda[1]) / trace, 1e-5);
  // The demonstration layer's first point is demonstration 0's start projected: basisᵀ (p − goal).
  for (const auto& l : c["layers"]) {
    if (l["kind"] != "demo") continue;
    for (int e = 0; e < 2; ++e) {
      double want = 0;
      for (std::int64_t k = 0; k < P; ++k)
        want += basis[static_cast<std::size_t>(e * P + k)].get<double>() * (r[k] - goal[static_cast<std::size_t>(k)]);
      EXPECT_NEAR(l["xy"][static_cast<std::size_t>(e)].get<double>(), want, 1e-4 * (1 + std::abs(want))) << e;
    }
  }
  for (const char* kind : {"demo", "rollout", "stream", "contour"}) {
    bool found = false;
    for (const auto& l : c["layers"]) found = found || (l["kind"] == kind && l["xy"].size() > 4);
    EXPECT_TRUE(found) << kind;
  }
}

// The skill views of several tasks are computed by worker threads and merged in task order: the
// sections are the same, value for value, with one worker and with three.
TEST(SkillReportSections, WorkerThreadsGiveTheSamePage) {
  const auto dir = sl::testing::temp_dir("report_sections_workers");
  auto cfg = sl::testing::tiny_lfd_config(3, 3, 0.005);
  cfg.evaluate = false;
  LfdTrainer(cfg, dir).run(false);
  const LfdRun run(dir);
  SkillViewOptions opt;
  opt.random_starts = 2;
  opt.grid = 8;
  opt.seeds = 3;
  opt.stream_steps = 3;
  opt.workers = 1;
  const auto one = skill_report_sections(run, dir, sl::report::ReportOptions{}, opt);
  opt.workers = 3;
  const auto three = skill_report_sections(run, dir, sl::report::ReportOptions{}, opt);
  EXPECT_EQ(charts_of(one, "plane").size(), 3u);
  EXPECT_EQ(one.dump(), three.dump());
  std::filesystem::remove_all(dir);
}

TEST(StabilityReportSection, SavedOutputsAreReadAndMissingOnesComputedWithTheCommandsCode) {
  const auto dir = sl::testing::temp_dir("report_sections_stability");
  auto cfg = sl::testing::tiny_lfd_config(2, 4, 0.005);
  cfg.explicit_time = false;
  cfg.eps = 1e-3;
  cfg.discrete_step = true;
  cfg.evaluate = false;
  LfdTrainer(cfg, dir).run(false);
  const LfdRun run(dir);
  SkillViewOptions opt;
  opt.stability_random_starts = 3;
  opt.stability_horizon_factor = 0.5;
  opt.stability_budget = 1000000;
  sl::report::ReportOptions ro;
  ro.page_dir = dir;
  // Nothing saved: both tasks computed with lfd::check_stability and the reduced options.
  auto sec = stability_report_section(run, dir, ro, opt);
  ASSERT_TRUE(sec.is_object());
  auto tables = charts_of(json::array({sec}), "table");
  ASSERT_EQ(tables.size(), 1u);
  ASSERT_EQ(tables[0]["rows"].size(), 2u);
  for (std::int64_t j = 0; j < 2; ++j) {
    StabilityOptions so;
    so.starts = run.task(j).x.size(0) + 3;
    so.horizon_factor = 0.5;
    const auto r = check_stability(run, j, so);
    std::int64_t ok = 0;
    for (double v : r.final_distances) ok += v <= r.tolerance;
    const auto& row = tables[0]["rows"][static_cast<std::size_t>(j)];
    EXPECT_EQ(row[0], j);
    EXPECT_NE(row[2].get<std::string>().find("computed by the report"), std::string::npos);
    EXPECT_EQ(row[3], "discrete");
    EXPECT_EQ(row[4], so.starts);
    EXPECT_EQ(row[7].get<std::string>().rfind(std::to_string(ok) + "/" + std::to_string(so.starts), 0), 0u) << row[7];
    EXPECT_EQ(row[10], sl::report::format_number(100.0 * static_cast<double>(r.projected_substeps) / static_cast<double>(r.substeps)) + " %");
  }
  // Task 1 saved (its own JSON, 6 starts): read from the file; task 0 still computed.
  {
    StabilityOptions so;
    so.starts = 6;
    so.horizon_factor = 0.5;
    std::ofstream(dir / "stability_1.json") << stability_json(run, 1, check_stability(run, 1, so), so).dump();
  }
  sec = stability_report_section(run, dir, ro, opt);
  tables = charts_of(json::array({sec}), "table");
  ASSERT_EQ(tables[0]["rows"].size(), 2u);
  EXPECT_EQ(tables[0]["rows"][1][2], "stability_1.json");
  EXPECT_EQ(tables[0]["rows"][1][4], 6);
  // A budget smaller than one task's horizon: task 0 is named, not computed; 0 computes none either.
  opt.stability_budget = 1;
  sec = stability_report_section(run, dir, ro, opt);
  tables = charts_of(json::array({sec}), "table");
  ASSERT_EQ(tables[0]["rows"].size(), 1u);
  const auto notes = charts_of(json::array({sec}), "text");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0]["text"].get<std::string>().find("Not computed"), std::string::npos);
  opt.stability_budget = 0;
  EXPECT_EQ(charts_of(json::array({stability_report_section(run, dir, ro, opt)}), "table")[0]["rows"].size(), 1u);
  // A file that holds another task is refused.
  {
    const auto j = json::parse(sl::read_file_text(dir / "stability_1.json"));  // task 1's result
    std::ofstream(dir / "stability_task0.json") << j.dump();
  }
  sl::testing::expect_error<sl::DataError>([&] { stability_report_section(run, dir, ro, opt); }, "expected task 0");
}
