// The torch-free part of `stablelearn report`: decimation, contours, run-kind detection and bad
// input, the readers' page model against the run files, and the page rendering.
#include <cmath>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/report/html_report.h"
#include "testing.h"

namespace sl = stablelearn;
namespace rp = stablelearn::report;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

/// A small `cl run` folder written by hand: 3 tasks, accuracy matrix a_ij = 0.1 i + 0.01 j + 0.5.
fs::path make_cl_run(const fs::path& dir, int tasks = 3, const std::string& strategy = "er", double acc = 0.7) {
  json m = json::array();
  for (int i = 0; i < tasks; ++i) {
    json row = json::array();
    for (int j = 0; j < tasks; ++j) row.push_back(0.5 + 0.1 * i + 0.01 * j);
    m.push_back(row);
  }
  write(dir / "checkpoint.json", json{{"format", "stablelearn-cl-checkpoint"}, {"version", 1}, {"completed_tasks", tasks}}.dump());
  write(dir / "config.toml", "[stream]\nkind = \"split-class\"\ntasks = " + std::to_string(tasks) + "\n[train]\nlr = 0.01\n");
  write(dir / "summary.json", json{{"accuracy_matrix", m}, {"tasks", tasks}, {"completed_tasks", tasks}, {"strategy", strategy},
                                   {"seed", 3}, {"metrics", {{"ACC", acc}, {"BWT", -0.1}, {"FWT", 0.0}, {"forgetting_max", 0.1}}},
                                   {"continual", {{"min_acc", 0.4}, {"wc_acc", 0.5}}}, {"train_seconds", {1.0, 2.0, 3.0}},
                                   {"runtime", {{"threads", 1}, {"blas", "OpenBLAS"}}}}
                                  .dump());
  std::string rows;
  for (int t = 0; t < tasks; ++t) {
    for (int it = 1; it <= 4; ++it) {
      const int g = t * 4 + it;
      rows += json{{"event", "train"}, {"iteration", g}, {"loss", 1.0 / g}, {"task", t}}.dump() + "\n";
      json acc_row = json::array();
      for (int j = 0; j <= t; ++j) acc_row.push_back(0.5 + 0.01 * g + 0.001 * j);
      rows += json{{"event", "track"}, {"iteration", g}, {"acc", acc_row}, {"task", t}, {"min_acc", 0.4}, {"wc_acc", 0.5}}.dump() + "\n";
    }
    rows += json{{"event", "diagnostics"}, {"iteration", t * 4 + 4}, {"lambda_max", 50.0 + t}, {"two_over_lr", 200.0}, {"task", t}}.dump() + "\n";
    rows += json{{"event", "task_end"}, {"iteration", t * 4 + 4}, {"task", t}}.dump() + "\n";
  }
  write(dir / "metrics.jsonl", rows);
  return dir;
}

const json* find_chart(const json& sections, const std::string& type, const std::string& title_part) {
  for (const auto& s : sections)
    for (const auto& c : s["charts"])
      if (c["type"] == type && c["title"].get<std::string>().find(title_part) != std::string::npos) return &c;
  return nullptr;
}

}  // namespace

TEST(Decimate, KeepsEndpointsAndEveryBucketsExtremes) {
  std::vector<double> x, y;
  for (int i = 0; i < 10000; ++i) {
    x.push_back(i);
    y.push_back(std::sin(i * 0.01));
  }
  y[5001] = 40.0;  // a spike must survive
  y[7003] = -40.0;
  rp::decimate(x, y, 500);
  EXPECT_LE(y.size(), 500u);
  EXPECT_GE(y.size(), 400u);
  EXPECT_EQ(x.front(), 0);
  EXPECT_EQ(x.back(), 9999);
  EXPECT_NE(std::find(y.begin(), y.end(), 40.0), y.end());
  EXPECT_NE(std::find(y.begin(), y.end(), -40.0), y.end());
  EXPECT_TRUE(std::is_sorted(x.begin(), x.end()));
  std::vector<double> sx{1, 2, 3}, sy{4, 5, 6};
  rp::decimate(sx, sy, 500);  // short curves unchanged
  EXPECT_EQ(sy, (std::vector<double>{4, 5, 6}));
}

TEST(ContourSegments, LevelSetOfAParaboloidIsACircle) {
  // V = x² + y² on [-1, 1]²; the level 0.25 is the circle of radius 0.5. Every segment end lies on
  // a grid edge where linear interpolation of V is exact to O(h²) (h = 2/40).
  std::vector<double> xs, ys, v;
  const int n = 41;
  for (int i = 0; i < n; ++i) xs.push_back(-1 + 2.0 * i / (n - 1));
  ys = xs;
  for (int iy = 0; iy < n; ++iy)
    for (int ix = 0; ix < n; ++ix) v.push_back(xs[ix] * xs[ix] + ys[iy] * ys[iy]);
  const auto seg = rp::contour_segments(v, xs, ys, 0.25);
  ASSERT_GT(seg.size(), 40u);
  int points = 0;
  for (std::size_t k = 0; k + 1 < seg.size(); k += 2) {
    if (seg[k].is_null()) continue;
    const double r = std::hypot(seg[k].get<double>(), seg[k + 1].get<double>());
    EXPECT_NEAR(r, 0.5, 0.01);
    ++points;
  }
  EXPECT_GT(points, 40);
  EXPECT_TRUE(rp::contour_segments(v, xs, ys, 5.0).empty());  // above the maximum: nothing
  EXPECT_THROW(rp::contour_segments({1, 2, 3}, xs, ys, 0.5), sl::ShapeError);
}

TEST(RunKind, DetectsEachKindAndRejectsWhatIsNotARun) {
  const auto dir = sl::testing::temp_dir("report_kind");
  EXPECT_EQ(rp::detect_run_kind(make_cl_run(dir / "cl")), rp::RunKind::cl);
  write(dir / "lfd/checkpoint.json", R"({"format": "stablelearn-lfd-checkpoint", "version": 1})");
  EXPECT_EQ(rp::detect_run_kind(dir / "lfd"), rp::RunKind::lfd);
  write(dir / "lfd_early/config.toml", "[data]\ntasks = 2\n[train]\niterations = 5\n");  // killed before task 0 ended
  EXPECT_EQ(rp::detect_run_kind(dir / "lfd_early"), rp::RunKind::lfd);
  write(dir / "repro/results.json", R"({"experiment": "x", "checks": []})");
  EXPECT_EQ(rp::detect_run_kind(dir / "repro"), rp::RunKind::repro);
  write(dir / "repro_early/config.toml", "[options]\nlr = 0.5\n[repro]\nexperiment = 'x'\n");  // no results yet
  EXPECT_EQ(rp::detect_run_kind(dir / "repro_early"), rp::RunKind::repro);
  EXPECT_NE(rp::run_header(dir / "repro_early", rp::RunKind::repro, {})["missing"].dump().find("results.json"), std::string::npos);
  write(dir / "density.csv", "eigenvalue,density\n1,0.5\n");
  EXPECT_EQ(rp::detect_run_kind(dir / "density.csv"), rp::RunKind::diagnose);
  write(dir / "hessian.json", R"({"problem": "cl run", "operator": "hessian", "eigenvalues": [3, 2]})");
  EXPECT_EQ(rp::detect_run_kind(dir / "hessian.json"), rp::RunKind::diagnose);

  sl::testing::expect_error<sl::IoError>([&] { rp::detect_run_kind(dir / "nothing"); }, "no such file or folder");
  fs::create_directories(dir / "empty");
  sl::testing::expect_error<sl::UsageError>([&] { rp::detect_run_kind(dir / "empty"); }, "not a stablelearn run folder");
  write(dir / "foreign_cfg/config.toml", "[server]\nport = 80\n");
  sl::testing::expect_error<sl::UsageError>([&] { rp::detect_run_kind(dir / "foreign_cfg"); }, "not that of an lfd train");
  write(dir / "other.csv", "a,b\n1,2\n");
  sl::testing::expect_error<sl::UsageError>([&] { rp::detect_run_kind(dir / "other.csv"); }, "header 'a,b'");
  write(dir / "torn/checkpoint.json", R"({"format": "stablelearn-cl-chec)");
  sl::testing::expect_error<sl::DataError>([&] { rp::detect_run_kind(dir / "torn"); }, "torn/checkpoint.json: not valid JSON");
  write(dir / "foreign/checkpoint.json", R"({"format": "something-else"})");
  sl::testing::expect_error<sl::DataError>([&] { rp::detect_run_kind(dir / "foreign"); }, "format 'something-else'");
  fs::remove_all(dir);
}

TEST(ClRunSections, AccuracyMatrixCurvesAndSharpnessComeFromTheRunFiles) {
  const auto dir = sl::testing::temp_dir("report_cl");
  make_cl_run(dir / "run", 4);
  rp::ReportOptions o;
  o.page_dir = dir;
  const auto s = rp::cl_run_sections(dir / "run", o);
  const auto* hm = find_chart(s, "heatmap", "accuracy after training task");
  ASSERT_NE(hm, nullptr);
  ASSERT_EQ((*hm)["cells"].size(), 16u);  // tasks²
  const auto summary = json::parse(sl::read_file_text(dir / "run/summary.json"));
  for (const auto& c : (*hm)["cells"])
    EXPECT_DOUBLE_EQ(c[2].get<double>(), summary["accuracy_matrix"][c[1].get<int>()][c[0].get<int>()].get<double>());
  EXPECT_EQ((*hm)["source"], "run/summary.json");  // linked relative to the page
  const auto* ce = find_chart(s, "lines", "accuracy of each task");
  ASSERT_NE(ce, nullptr);
  // task 0 is tracked at all 16 iterations, task 3 at the last 4; min-ACC and WC-ACC at all 16.
  EXPECT_EQ((*ce)["series"][0]["name"], "task 0");
  EXPECT_EQ((*ce)["series"][0]["y"].size(), 16u);
  EXPECT_EQ((*ce)["series"][3]["y"].size(), 4u);
  EXPECT_EQ((*ce)["marks_x"], json({4, 8, 12, 16}));  // task ends (0 is the start)
  const auto* sharp = find_chart(s, "lines", "sharpness");
  ASSERT_NE(sharp, nullptr);
  EXPECT_EQ((*sharp)["hlines"][0]["y"], 200.0);
  EXPECT_EQ((*sharp)["series"][0]["y"], json({50.0, 51.0, 52.0, 53.0}));
  fs::remove_all(dir);
}

TEST(RunHeader, AnInterruptedRunSaysWhatIsMissing) {
  const auto dir = sl::testing::temp_dir("report_header");
  make_cl_run(dir / "run", 3);
  write(dir / "run/checkpoint.json", R"({"format": "stablelearn-cl-checkpoint", "version": 1, "completed_tasks": 1})");
  fs::remove(dir / "run/summary.json");
  // A torn last metrics row (killed mid-write) is dropped, not an error.
  std::ofstream(dir / "run/metrics.jsonl", std::ios::app) << R"({"event": "train", "itera)";
  const auto h = rp::run_header(dir / "run", rp::RunKind::cl, {});
  EXPECT_EQ(h["completed_tasks"], 1);
  EXPECT_EQ(h["tasks"], 3);
  const auto missing = h["missing"].dump();
  EXPECT_NE(missing.find("summary.json"), std::string::npos) << missing;
  EXPECT_NE(missing.find("tasks 1..2 of 3"), std::string::npos) << missing;
  EXPECT_NO_THROW(rp::cl_run_sections(dir / "run", {}));
  // A bad row that is not the last one is an error naming the file and line.
  std::ofstream(dir / "run/metrics.jsonl", std::ios::app) << "\n{}\n";
  sl::testing::expect_error<sl::DataError>([&] { rp::cl_run_sections(dir / "run", {}); }, "metrics.jsonl:");
  fs::remove_all(dir);
}

// LfD comparison: the converged fraction per task from the runs' saved `lfd stability` outputs,
// mean ± sample std over a group's runs (by hand: task 0: 1.0 and 0.5 -> 0.75 ± 0.3536; task 1:
// 0.75 and 0.25 -> 0.5 ± 0.3536), and a note when no run has one.
TEST(ComparisonSections, LfdStabilityFromSavedChecks) {
  const auto dir = sl::testing::temp_dir("report_cmp_lfd");
  auto make = [&](const std::string& name, std::vector<std::vector<double>> finals) {
    const auto d = dir / name;
    fs::create_directories(d);
    write(d / "config.toml", "[model]\nmethod = \"hnet\"\nhnet = \"chn\"\ntarget = \"snode\"\n");
    write(d / "summary.json", R"({"tasks": 2, "completed_tasks": 2, "median_errors": {
        "train_task_0": {"eval_task_0": {"dtw": 10}}, "train_task_1": {"eval_task_0": {"dtw": 12}, "eval_task_1": {"dtw": 8}}}})");
    for (std::size_t j = 0; j < finals.size(); ++j) {
      json r = {{"task", j}, {"tolerance", 1.0}, {"final_distances", finals[j]}, {"method", "discrete"}};
      write(d / ("stability_" + std::to_string(j) + ".json"), r.dump());
    }
    return d;
  };
  const std::vector<fs::path> runs{make("a_s0", {{0.1, 0.5}, {0.2, 0.3, 0.4, 2.0}}), make("a_s1", {{0.1, 3.0}, {5.0, 0.3, 4.0, 2.0}})};
  const auto s = rp::comparison_sections(runs, rp::RunKind::lfd, {});
  const auto* c = find_chart(s, "lines", "converged fraction per task");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ((*c)["series"].size(), 1u);
  const auto& se = (*c)["series"][0];
  EXPECT_EQ(se["x"], json({0, 1}));
  EXPECT_NEAR(se["y"][0].get<double>(), 0.75, 1e-12);
  EXPECT_NEAR(se["y"][1].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(se["hi"][0].get<double>() - se["y"][0].get<double>(), std::sqrt(0.125), 1e-4);
  const auto* t = find_chart(s, "table", "CL scores");
  ASSERT_NE(t, nullptr);
  // Per run, the mean over its tasks: (1 + 0.75) / 2 = 0.875 and (0.5 + 0.25) / 2 = 0.375.
  EXPECT_EQ((*t)["rows"][0].back(), "0.625 ± 0.3536");
  // Without saved checks: no chart, a note saying how to save them.
  for (const auto& r : runs)
    for (int j = 0; j < 2; ++j) fs::remove(r / ("stability_" + std::to_string(j) + ".json"));
  const auto s2 = rp::comparison_sections(runs, rp::RunKind::lfd, {});
  EXPECT_EQ(find_chart(s2, "lines", "converged fraction per task"), nullptr);
  EXPECT_NE(find_chart(s2, "text", "stability"), nullptr);
  fs::remove_all(dir);
}

TEST(ComparisonSections, GroupsByStrategyWithMeanAndSampleStd) {
  const auto dir = sl::testing::temp_dir("report_cmp");
  const std::vector<fs::path> runs{make_cl_run(dir / "er_s0", 3, "er", 0.8), make_cl_run(dir / "er_s1", 3, "er", 0.6),
                                   make_cl_run(dir / "ewc_s0", 3, "ewc", 0.5)};
  const auto s = rp::comparison_sections(runs, rp::RunKind::cl, {});
  const auto* t = find_chart(s, "table", "end-of-sequence");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ((*t)["rows"].size(), 2u);
  // er: ACC 0.8 and 0.6 -> mean 0.7, sample std sqrt(0.02) = 0.1414.
  EXPECT_EQ((*t)["rows"][0][0], "er");
  EXPECT_EQ((*t)["rows"][0][1], 2);
  EXPECT_EQ((*t)["rows"][0][2], "0.7 ± 0.1414");
  EXPECT_EQ((*t)["rows"][1][2], "0.5");
  const auto* curves = find_chart(s, "lines", "mean accuracy over seen tasks");
  ASSERT_NE(curves, nullptr);
  EXPECT_TRUE((*curves)["series"][0].contains("lo"));   // a band for the group of two
  EXPECT_FALSE((*curves)["series"][1].contains("lo"));  // none for a single run
  const auto* mats = find_chart(s, "heatmap", "ewc_s0");
  ASSERT_NE(mats, nullptr);
  // An unfinished run (2 of 3 tasks) is left out of the statistics and named.
  make_cl_run(dir / "er_s2", 3, "er", 0.1);
  auto summary = json::parse(sl::read_file_text(dir / "er_s2/summary.json"));
  summary["completed_tasks"] = 2;
  write(dir / "er_s2/summary.json", summary.dump());
  auto runs4 = runs;
  runs4.push_back(dir / "er_s2");
  const auto s4 = rp::comparison_sections(runs4, rp::RunKind::cl, {});
  const auto* t4 = find_chart(s4, "table", "end-of-sequence");
  ASSERT_NE(t4, nullptr);
  EXPECT_EQ((*t4)["rows"][0][1], 2);  // still the two finished er runs
  EXPECT_EQ((*t4)["rows"][0][2], "0.7 ± 0.1414");
  const auto* note = find_chart(s4, "text", "unfinished runs");
  ASSERT_NE(note, nullptr);
  EXPECT_NE((*note)["text"].get<std::string>().find("er_s2"), std::string::npos);
  fs::remove_all(dir);
}

TEST(DiagnoseSections, DensityCsvAndSpectraCsvAndJson) {
  const auto dir = sl::testing::temp_dir("report_diag");
  std::string csv = "eigenvalue,density\n";
  for (int i = 0; i < 5000; ++i) csv += std::to_string(i * 0.01) + "," + std::to_string(std::exp(-i * 0.001)) + "\n";
  write(dir / "density.csv", csv);
  rp::ReportOptions o;
  o.max_points = 400;
  const auto s = rp::diagnose_sections(dir / "density.csv", o);
  const auto* c = find_chart(s, "lines", "spectral density");
  ASSERT_NE(c, nullptr);
  EXPECT_LE((*c)["series"][0]["y"].size(), 400u);  // decimated on the page
  write(dir / "esd.csv", "layer,eigenvalue\nfc1,0.1\nfc1,1\nfc1,10\nfc2,2\n");
  const auto e = rp::diagnose_sections(dir / "esd.csv", o);
  const auto* t = find_chart(e, "table", "per-layer");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ((*t)["rows"].size(), 2u);
  EXPECT_EQ((*t)["rows"][0][1], 3);
  write(dir / "h.json", R"({"problem": "cl run", "operator": "hessian", "eigenvalues": [30, 20, 10], "learning_rate": 0.01})");
  const auto h = rp::diagnose_sections(dir / "h.json", o);
  const auto* ev = find_chart(h, "lines", "eigenvalues");
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ((*ev)["series"][0]["y"], json({30, 20, 10}));
  EXPECT_EQ((*ev)["hlines"][0]["y"], 200.0);
  write(dir / "bad.csv", "eigenvalue,density\n1,x\n");
  sl::testing::expect_error<sl::DataError>([&] { rp::diagnose_sections(dir / "bad.csv", o); }, "bad.csv:2");
  fs::remove_all(dir);
}

TEST(DiagnoseSections, SpectraFitsAreDrawnOverTheEmpiricalTail) {
  // Eigenvalues 1..20 of one layer, a fit α = 3 above x_min = 5 (tail 16 of 20): the CCDF is
  // P(λ ≥ x) = (21 − x)/20 at x = 1..20, the fitted one (16/20)(x/5)^{−2} from 5 to 20.
  const auto dir = sl::testing::temp_dir("report_esd_fit");
  std::string csv = "layer,eigenvalue\n";
  for (int i = 20; i >= 1; --i) csv += "fc1," + std::to_string(i) + "\n";
  csv += "fc2,0.5\nfc2,1.5\n";
  write(dir / "esd.csv", csv);
  write(dir / "esd.json", R"({"problem": "toy", "written": "esd.csv", "layers": [
      {"name": "fc1", "alpha": 3.0, "alpha_sigma": 0.5, "xmin": 5.0, "ks_distance": 0.08, "tail_size": 16},
      {"name": "fc2", "alpha": null, "alpha_note": "too few samples"}]})");
  rp::ReportOptions o;
  for (const auto& file : {dir / "esd.csv", dir / "esd.json"}) {
    const auto s = rp::diagnose_sections(file, o);
    const auto* c = find_chart(s, "lines", "fc1: ESD tail");
    ASSERT_NE(c, nullptr) << file;
    EXPECT_TRUE((*c)["log_x"].get<bool>());
    EXPECT_TRUE((*c)["log_y"].get<bool>());
    const auto& emp = (*c)["series"][0];
    ASSERT_EQ(emp["x"].size(), 20u);
    for (std::size_t i = 0; i < 20; ++i) {
      EXPECT_DOUBLE_EQ(emp["x"][i].get<double>(), static_cast<double>(i + 1));
      EXPECT_NEAR(emp["y"][i].get<double>(), (20.0 - static_cast<double>(i)) / 20.0, 1e-9);
    }
    const auto& fit = (*c)["series"][1];
    EXPECT_EQ(fit["style"], "dashed");
    EXPECT_NE(fit["name"].get<std::string>().find("α = 3"), std::string::npos);
    EXPECT_NEAR(fit["x"][0].get<double>(), 5.0, 1e-9);
    EXPECT_NEAR(fit["y"][0].get<double>(), 0.8, 1e-9);
    EXPECT_NEAR(fit["x"].back().get<double>(), 20.0, 1e-6);
    EXPECT_NEAR(fit["y"].back().get<double>(), 0.8 / 16.0, 1e-6);
    EXPECT_EQ((*c)["vlines"][0]["x"], 5.0);
    // fc2 has no fit: its chart says so and draws the eigenvalues only.
    const auto* c2 = find_chart(s, "lines", "fc2: ESD tail");
    ASSERT_NE(c2, nullptr);
    EXPECT_NE((*c2)["title"].get<std::string>().find("too few samples"), std::string::npos);
    EXPECT_EQ((*c2)["series"].size(), 1u);
  }
  // A JSON whose CSV is gone says so instead of drawing nothing.
  fs::remove(dir / "esd.csv");
  const auto s = rp::diagnose_sections(dir / "esd.json", o);
  EXPECT_NE(find_chart(s, "text", "ESD power-law fits"), nullptr);
  fs::remove_all(dir);
}

TEST(DiagnoseSections, TrajectoryPcaScreeAndIntrinsicDimensionSweep) {
  const auto dir = sl::testing::temp_dir("report_traj_id");
  write(dir / "traj.json", R"({"problem": "cl run parameter snapshots", "explained_variance_ratio": [0.5, 0.3, 0.15, 0.05],
      "rank_90": 3, "effective_rank": 2.7, "iterations": [0, 10, 20], "alignment_to_final": [0.0, 0.6, 1.0],
      "pc_path": {"pc1": [-1.5, 0.25, 1.25], "pc2": [0.5, -1.0, 0.5]},
      "per_task": [{"task": 0, "rank_90": 2, "effective_rank": 1.5}, {"task": 1, "rank_90": 4, "effective_rank": 3.25}]})");
  rp::ReportOptions o;
  const auto t = rp::diagnose_sections(dir / "traj.json", o);
  const auto* scree = find_chart(t, "lines", "scree");
  ASSERT_NE(scree, nullptr);
  EXPECT_EQ((*scree)["series"][0]["y"], json({0.5, 0.3, 0.15, 0.05}));
  const auto& cum = (*scree)["series"][1]["y"];
  const std::vector<double> want{0.5, 0.8, 0.95, 1.0};
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(cum[i].get<double>(), want[i], 1e-12);
  EXPECT_EQ((*scree)["vlines"][0]["x"], 3);
  EXPECT_EQ((*scree)["hlines"][0]["y"], 0.9);
  const auto* al = find_chart(t, "lines", "alignment");
  ASSERT_NE(al, nullptr);
  EXPECT_EQ((*al)["series"][0]["x"], json({0, 10, 20}));
  const auto* per = find_chart(t, "bars", "per task");
  ASSERT_NE(per, nullptr);
  EXPECT_EQ((*per)["series"][0]["y"], json({2, 4}));
  EXPECT_EQ((*per)["series"][1]["y"], json({1.5, 3.25}));
  EXPECT_EQ(find_chart(t, "lines", "explained_variance_ratio"), nullptr);  // no generic duplicate
  // The path on PC1/PC2 as (x, y) pairs in snapshot order, the first and last snapshots marked, the
  // axes naming each component's share.
  const auto* path = find_chart(t, "plane", "top two principal directions");
  ASSERT_NE(path, nullptr);
  EXPECT_EQ((*path)["layers"][0]["xy"], json({-1.5, 0.5, 0.25, -1.0, 1.25, 0.5}));
  EXPECT_EQ((*path)["layers"][1]["xy"], json({-1.5, 0.5}));
  EXPECT_EQ((*path)["layers"][2]["xy"], json({1.25, 0.5}));
  EXPECT_EQ((*path)["x_label"], "PC1 (50 %)");
  EXPECT_EQ((*path)["y_label"], "PC2 (30 %)");

  write(dir / "id.json", R"({"problem": "MLP", "projection": "dense", "absolute_threshold": 0.9, "relative_threshold": 0.81,
      "full_test_accuracy": 0.9, "d_int90_absolute": null, "d_int90_relative": 100,
      "subspaces": [{"d": 10, "test_accuracy": 0.5, "test_accuracy_std": 0.1, "train_accuracy": 0.55},
                    {"d": 100, "test_accuracy": 0.82, "test_accuracy_std": 0.02, "train_accuracy": 0.9}]})");
  const auto i = rp::diagnose_sections(dir / "id.json", o);
  const auto* sweep = find_chart(i, "lines", "intrinsic-dimension sweep");
  ASSERT_NE(sweep, nullptr);
  EXPECT_TRUE((*sweep)["log_x"].get<bool>());
  const auto& ts = (*sweep)["series"][0];
  EXPECT_EQ(ts["x"], json({10, 100}));
  EXPECT_EQ(ts["y"], json({0.5, 0.82}));
  EXPECT_NEAR(ts["lo"][0].get<double>(), 0.4, 1e-12);
  EXPECT_NEAR(ts["hi"][1].get<double>(), 0.84, 1e-12);
  EXPECT_EQ((*sweep)["series"][1]["y"], json({0.55, 0.9}));
  ASSERT_EQ((*sweep)["vlines"].size(), 1u);  // d_int90_absolute is null: not reached
  EXPECT_EQ((*sweep)["vlines"][0]["x"], 100);
  EXPECT_EQ((*sweep)["hlines"].size(), 3u);
  EXPECT_EQ(find_chart(i, "lines", "subspaces: test_accuracy"), nullptr);
  fs::remove_all(dir);
}

TEST(StabilitySection, ConvergedFractionAndPulledSharesFromSavedOutputs) {
  const auto dir = sl::testing::temp_dir("report_stability");
  // Discrete Φ: 5 starts, tolerance 1: distances 0, 0.5, 1, 1.5, NaN (as null) -> 3 of 5 converge;
  // 30 of 200 steps pulled (15 %), 3 of 40 outside the ball (7.5 %), 2 of 50 from the demonstrations'
  // starts (4 %).
  write(dir / "stability_0.json", R"({"task": 0, "task_name": "a", "method": "discrete", "starts": 5, "tolerance": 1.0,
      "final_distances": [0, 0.5, 1.0, 1.5, null], "median_final_distance": 0.75, "max_final_distance": 1.5, "horizon_seconds": 3,
      "steps_applied": 200, "projected_steps": 30, "steps_outside_ball": 40, "projected_steps_outside_ball": 3,
      "demo_steps": 50, "demo_projected_steps": 2, "demo_dtw_median": 12.5})");
  // Certified, saved under the other name, with a plain-Euler check of the same task beside it.
  write(dir / "stability_task1.json", R"({"task": 1, "method": "certified", "starts": 2, "tolerance": 2.0,
      "final_distances": [0.1, 0.2], "substeps": 400, "projected_substeps": 100, "demo_steps": 10, "demo_projected_steps": 0})");
  write(dir / "stability_euler_task1.json", R"({"task": 1, "method": "euler", "starts": 2, "tolerance": 2.0, "final_distances": [0.1, 3]})");
  EXPECT_EQ(rp::saved_stability_files(dir, 0), std::vector<fs::path>{dir / "stability_0.json"});
  EXPECT_EQ(rp::saved_stability_files(dir, 1), (std::vector<fs::path>{dir / "stability_task1.json", dir / "stability_euler_task1.json"}));
  EXPECT_TRUE(rp::saved_stability_files(dir, 2).empty());
  std::vector<rp::StabilityResult> results;
  for (std::int64_t j = 0; j < 2; ++j)
    for (const auto& f : rp::saved_stability_files(dir, j))
      results.push_back({j, json::parse(sl::read_file_text(f)), f.filename().string()});
  const auto sh0 = rp::stability_shares(results[0].report);
  EXPECT_DOUBLE_EQ(sh0.all, 0.15);
  EXPECT_DOUBLE_EQ(sh0.on_the_way, 0.075);
  EXPECT_DOUBLE_EQ(sh0.from_demo_starts, 0.04);
  const auto sh1 = rp::stability_shares(results[1].report);
  EXPECT_DOUBLE_EQ(sh1.all, 0.25);
  EXPECT_TRUE(std::isnan(sh1.on_the_way));
  EXPECT_DOUBLE_EQ(sh1.from_demo_starts, 0.0);
  EXPECT_TRUE(std::isnan(rp::stability_shares(results[2].report).all));
  rp::ReportOptions o;
  const auto sec = rp::stability_section(results, "from files", o);
  const auto s = json::array({sec});
  const auto* t = find_chart(s, "table", "converged fraction");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ((*t)["rows"].size(), 3u);
  EXPECT_EQ((*t)["rows"][0][7], "3/5 (60 %)");
  EXPECT_EQ((*t)["rows"][0][10], "15 %");
  EXPECT_EQ((*t)["rows"][0][11], "7.5 %");
  EXPECT_EQ((*t)["rows"][0][12], "4 %");
  EXPECT_EQ((*t)["rows"][1][7], "2/2 (100 %)");
  EXPECT_EQ((*t)["rows"][2][7], "1/2 (50 %)");
  const auto* conv = find_chart(s, "bars", "converged fraction per task");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ((*conv)["categories"], json({"0", "1"}));
  std::map<std::string, json> by_name;
  for (const auto& x : (*conv)["series"]) by_name[x["name"]] = x["y"];
  EXPECT_EQ(by_name["discrete"], json({60.0, nullptr}));
  EXPECT_EQ(by_name["certified"], json({nullptr, 100.0}));
  EXPECT_EQ(by_name["euler"], json({nullptr, 50.0}));
  const auto* pulled = find_chart(s, "bars", "radially pulled");
  ASSERT_NE(pulled, nullptr);
  EXPECT_EQ((*pulled)["series"][0]["y"], json({15.0, 25.0}));
  EXPECT_EQ((*pulled)["series"][1]["y"], json({7.5, nullptr}));
  const auto* dist = find_chart(s, "lines", "final distance");
  ASSERT_NE(dist, nullptr);
  for (const auto& x : (*dist)["series"])
    if (x["name"] == "discrete") EXPECT_EQ(x["y"], json({0.0, 0.5, 1.0, 1.5}));  // the non-finite start is left out
  EXPECT_NE(find_chart(s, "text", "where these numbers come from"), nullptr);
  fs::remove_all(dir);
}

TEST(RenderHtml, InlinesLibraryAndDataAndKeepsTheScriptElementsClosed) {
  const auto dir = sl::testing::temp_dir("report_render");
  write(dir / "lib.js", "var echarts = {marker: 'LIB'}; // </script> inside the library\n");
  const json page = {{"title", "a <b> & c"}, {"runs", json::array()}, {"note", "</script><script>alert(1)</script>"}};
  const auto html = rp::render_html(page, dir / "lib.js");
  EXPECT_NE(html.find("marker: 'LIB'"), std::string::npos);
  EXPECT_NE(html.find("<title>a &lt;b> &amp; c</title>"), std::string::npos);
  EXPECT_EQ(html.find("</script><script>alert(1)"), std::string::npos);
  EXPECT_NE(html.find("\\u003c/script>"), std::string::npos);
  EXPECT_EQ(html.find("%SL_PAGE_DATA%"), std::string::npos);
  EXPECT_EQ(html.find("%SL_CHARTING_LIBRARY%"), std::string::npos);
  // Only the template's own script elements close: one for the library, data, page code.
  std::size_t closes = 0;
  for (std::size_t p = 0; (p = html.find("</script>", p)) != std::string::npos; ++p) ++closes;
  EXPECT_EQ(closes, 3u);
  fs::remove_all(dir);
}

TEST(ChartingLibrary, MissingInstallNamesSetupScript) {
  const auto dir = sl::testing::temp_dir("report_lib");
  ::unsetenv("STABLELEARN_WEB_DIR");
  sl::testing::expect_error<sl::IoError>([&] { rp::find_charting_library({dir}); }, "scripts/setup.sh");
  write(dir / "node_modules/echarts/dist/echarts.min.js", "x");
  EXPECT_EQ(rp::find_charting_library({dir / "nope", dir}), dir / "node_modules/echarts/dist/echarts.min.js");
  EXPECT_STREQ(rp::charting_library_version(), "6.1.0");
  fs::remove_all(dir);
}
