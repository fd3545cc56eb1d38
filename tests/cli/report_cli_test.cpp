// `stablelearn report` end to end on tiny runs made here (the browser test, tests/report/
// browser_test.sh, opens such pages in Chromium), and `lfd train`'s TensorBoard event file.
#include <cstring>
#include <fstream>

#include "cli_testing.h"
#include "stablelearn/core/fs.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using json = nlohmann::json;
using sl::testing::run_cli;

namespace {

class ReportCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(sl::testing::temp_dir("report_cli"));
    sl::write_file_atomic(*dir_ / "tiny.toml",
                          "[data]\ntasks = 2\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\n"
                          "task_emb_dim = 4\nchunk_emb_dim = 4\nchunk_dim = 128\n[train]\niterations = 10\nlog_every = 5\n");
    const auto r = run_cli("lfd train " + (*dir_ / "tiny.toml").string() + " --out " + (*dir_ / "lfd").string() + " --quiet");
    ASSERT_EQ(r.status, 0) << r.err;
    sl::write_file_atomic(*dir_ / "cl.toml",
                          "[stream]\nkind = \"split-class\"\ntasks = 2\ntrain_per_task = 200\ntest_per_task = 100\n"
                          "[model]\nhidden = [16]\n[strategy]\nname = \"er\"\n[train]\nepochs = 1\n[eval]\nevery = 2\nsubset = 50\n");
    const auto c = run_cli("cl run " + (*dir_ / "cl.toml").string() + " --out " + (*dir_ / "cl").string() + " --quiet");
    ASSERT_EQ(c.status, 0) << c.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path* dir_;
  const fs::path& dir() const { return *dir_; }
};
fs::path* ReportCli::dir_ = nullptr;

/// The page model a report page carries (the JSON of its sl-data script element).
json page_data(const fs::path& html) {
  const auto text = sl::read_file_text(html);
  const std::string open = "<script id=\"sl-data\" type=\"application/json\">";
  const auto a = text.find(open);
  const auto b = text.find("</script>", a);
  EXPECT_NE(a, std::string::npos);
  return json::parse(text.substr(a + open.size(), b - a - open.size()));
}

/// The first float value written under `tag` in a TensorBoard event file (a Summary.Value is
/// tag = field 1 (length-delimited), simple_value = field 2 (fixed32, key byte 0x15)).
float first_value(const std::string& events, const std::string& tag) {
  const auto p = events.find(tag);
  EXPECT_NE(p, std::string::npos) << tag;
  EXPECT_EQ(static_cast<unsigned char>(events[p + tag.size()]), 0x15);
  float v = 0;
  std::memcpy(&v, events.data() + p + tag.size() + 1, 4);
  return v;
}

}  // namespace

TEST_F(ReportCli, LfdTrainWritesTensorBoardEventsWithTheSummaryValues) {
  std::string events;
  for (const auto& e : fs::directory_iterator(dir() / "lfd"))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) events = sl::read_file_text(e.path());
  ASSERT_FALSE(events.empty()) << "no events.out.tfevents.* in the lfd train run";
  for (const char* tag : {"train/loss", "train/reg", "eval/dtw_task0", "eval/dtw_task1", "eval/frechet_task1", "time/task_seconds"})
    EXPECT_NE(events.find(tag), std::string::npos) << tag;
  const auto s = json::parse(sl::read_file_text(dir() / "lfd/summary.json"));
  EXPECT_FLOAT_EQ(first_value(events, "eval/dtw_task0"), s["median_errors"]["train_task_0"]["eval_task_0"]["dtw"].get<float>());
  EXPECT_FLOAT_EQ(first_value(events, "time/task_seconds"), s["per_task_train_seconds"][0].get<float>());
}

TEST_F(ReportCli, LfdReportCarriesTheRunsErrorsAndSkillViews) {
  const auto r = run_cli("report " + (dir() / "lfd").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto html = dir() / "lfd/report.html";  // the default: RUN/report.html
  ASSERT_TRUE(fs::exists(html));
  EXPECT_NE(r.out.find("wrote " + html.string()), std::string::npos) << r.out;
  EXPECT_LT(fs::file_size(html), 10u << 20);
  const auto page = page_data(html);
  const auto s = json::parse(sl::read_file_text(dir() / "lfd/summary.json"));
  ASSERT_EQ(page["runs"].size(), 1u);
  const auto& run = page["runs"][0];
  EXPECT_EQ(run["header"]["seed"], s["seed"]);
  EXPECT_EQ(run["header"]["config"], sl::read_file_text(dir() / "lfd/config.toml"));
  EXPECT_TRUE(run["header"]["missing"].empty()) << run["header"]["missing"];
  int planes = 0, dtw_maps = 0;
  for (const auto& sec : run["sections"])
    for (const auto& c : sec["charts"]) {
      if (c["type"] == "plane") ++planes;
      if (c["type"] == "heatmap" && c["metric"] == "dtw") {
        ++dtw_maps;
        ASSERT_EQ(c["cells"].size(), 3u);  // tasks (tasks + 1) / 2: after task i, on tasks j <= i
        for (const auto& cell : c["cells"]) {
          const auto want = s["median_errors"]["train_task_" + cell[1].dump()]["eval_task_" + cell[0].dump()]["dtw"].get<double>();
          EXPECT_NEAR(cell[2].get<double>(), want, 1e-4 * want);
        }
      }
    }
  EXPECT_EQ(planes, 2);
  EXPECT_EQ(dtw_maps, 1);
}

TEST_F(ReportCli, BadInputGivesClearErrors) {
  const auto help = run_cli("report --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Usage: stablelearn report [OPTIONS] RUN..."), std::string::npos) << help.out;
  EXPECT_EQ(run_cli("report").status, 2);  // RUN is required
  const auto none = run_cli("report " + (dir() / "nothing").string());
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("nothing: no such file or folder"), std::string::npos) << none.err;
  fs::create_directories(dir() / "empty");
  const auto empty = run_cli("report " + (dir() / "empty").string());
  EXPECT_EQ(empty.status, 2);
  EXPECT_NE(empty.err.find("not a stablelearn run folder"), std::string::npos) << empty.err;
  EXPECT_FALSE(fs::exists(dir() / "empty/report.html"));
  const auto mixed = run_cli("report " + (dir() / "lfd").string() + " " + (dir() / "cl").string() + " --out " +
                             (dir() / "mixed.html").string());
  EXPECT_EQ(mixed.status, 2);
  EXPECT_NE(mixed.err.find("runs of different kinds"), std::string::npos) << mixed.err;
  EXPECT_NE(mixed.err.find("lfd: lfd train"), std::string::npos) << mixed.err;
  EXPECT_NE(mixed.err.find("cl: cl run"), std::string::npos) << mixed.err;
  EXPECT_FALSE(fs::exists(dir() / "mixed.html"));
}

TEST_F(ReportCli, AnInterruptedRunGivesAPageThatSaysWhatIsMissing) {
  // cl run stopped after 1 of 2 tasks.
  const auto c = run_cli("cl run " + (dir() / "cl.toml").string() + " --out " + (dir() / "cl_half").string() + " --stop-after 1 --quiet");
  ASSERT_EQ(c.status, 0) << c.err;
  const auto r = run_cli("report " + (dir() / "cl_half").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("tasks 1..1 of 2"), std::string::npos) << r.err;
  const auto page = page_data(dir() / "cl_half/report.html");
  EXPECT_EQ(page["runs"][0]["header"]["completed_tasks"], 1);
  EXPECT_FALSE(page["runs"][0]["sections"].empty());
  // An lfd train folder killed before its first task ended: config.toml and a few metrics rows.
  fs::create_directories(dir() / "lfd_early");
  fs::copy_file(dir() / "lfd/config.toml", dir() / "lfd_early/config.toml");
  sl::write_file_atomic(dir() / "lfd_early/metrics.jsonl",
                        "{\"task\":0,\"iteration\":5,\"loss\":0.5,\"reg\":0.0,\"best_loss\":0.5,\"seconds\":0.1}\n{\"task\":0,\"ite");
  const auto e = run_cli("report " + (dir() / "lfd_early").string());
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.err.find("summary.json (no task has finished"), std::string::npos) << e.err;
  const auto early = page_data(dir() / "lfd_early/report.html");
  EXPECT_EQ(early["runs"][0]["header"]["completed_tasks"], 0);
  EXPECT_FALSE(early["runs"][0]["header"]["missing"].empty());
}

TEST_F(ReportCli, ComparisonOfTwoClRunsAndADiagnoseOutput) {
  const auto c2 = run_cli("cl run " + (dir() / "cl.toml").string() + " --out " + (dir() / "cl_s1").string() + " --set train.seed=1 --quiet");
  ASSERT_EQ(c2.status, 0) << c2.err;
  const auto out = dir() / "cmp/cmp.html";
  const auto r = run_cli("report " + (dir() / "cl").string() + " " + (dir() / "cl_s1").string() + " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto page = page_data(out);
  EXPECT_TRUE(page["comparison"].get<bool>());
  EXPECT_EQ(page["runs"].size(), 2u);
  const auto& table = page["comparison_sections"][0]["charts"][0];
  ASSERT_EQ(table["rows"].size(), 1u);  // one strategy, two seeds
  EXPECT_EQ(table["rows"][0][1], 2);
  // Files are linked relative to the page.
  EXPECT_EQ(page["runs"][0]["header"]["files"][0]["href"].get<std::string>().rfind("../cl/", 0), 0u);

  const auto d = run_cli("diagnose hessian " + (dir() / "cl").string() + " --task 0 -k 3 --samples 50");
  ASSERT_EQ(d.status, 0) << d.err;
  sl::write_file_atomic(dir() / "hessian.json", d.out);
  const auto rd = run_cli("report " + (dir() / "hessian.json").string() + " --out " + (dir() / "hessian.html").string());
  ASSERT_EQ(rd.status, 0) << rd.err;
  const auto hp = page_data(dir() / "hessian.html");
  bool found = false;
  for (const auto& c : hp["runs"][0]["sections"][0]["charts"])
    if (c["title"] == "eigenvalues") {
      found = true;
      EXPECT_EQ(c["series"][0]["y"].size(), 3u);
    }
  EXPECT_TRUE(found);
}

TEST_F(ReportCli, LfdComparisonOfTwoSeedsAndTheSharpnessOfADiagnosticsRun) {
  const auto t = run_cli("lfd train " + (dir() / "tiny.toml").string() + " --out " + (dir() / "lfd_s2").string() +
                         " --set train.seed=2 --set diagnostics.every=5 --quiet");
  ASSERT_EQ(t.status, 0) << t.err;
  const auto out = dir() / "lfd_cmp.html";
  const auto r = run_cli("report " + (dir() / "lfd").string() + " " + (dir() / "lfd_s2").string() + " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto page = page_data(out);
  const auto& table = page["comparison_sections"][0]["charts"][0];
  ASSERT_EQ(table["rows"].size(), 1u);  // one method (chn → snode), two seeds
  EXPECT_EQ(table["rows"][0][1], 2);
  // Mean over the two runs of the mean median DTW after the last task, from their summaries.
  double want = 0;
  for (const char* run : {"lfd", "lfd_s2"}) {
    const auto s = json::parse(sl::read_file_text(dir() / run / "summary.json"));
    const auto& last = s["median_errors"]["train_task_1"];
    want += 0.5 * (last["eval_task_0"]["dtw"].get<double>() + last["eval_task_1"]["dtw"].get<double>()) / 2;
  }
  const auto shown = table["rows"][0][2].get<std::string>();
  EXPECT_NEAR(std::stod(shown.substr(0, shown.find(' '))), want, 1e-3 * want) << shown;
  // No skill views in a comparison by default (page size); the run with [diagnostics] has λ_max vs 2/η.
  bool sharp = false, planes = false;
  for (const auto& run : page["runs"])
    for (const auto& sec : run["sections"])
      for (const auto& c : sec["charts"]) {
        planes = planes || c["type"] == "plane";
        if (c["title"].get<std::string>().rfind("sharpness", 0) == 0) {
          sharp = true;
          EXPECT_EQ(c["series"][0]["y"].size(), 4u);  // every 5 of 10 iterations, 2 tasks
          EXPECT_EQ(c["hlines"][0]["name"], "2/η");
          // 2/η with η the run's train.lr, read from its resolved config.toml.
          const auto cfg = sl::read_file_text(dir() / "lfd_s2/config.toml");
          const auto at = cfg.find("\nlr = ");
          ASSERT_NE(at, std::string::npos);
          EXPECT_NEAR(c["hlines"][0]["y"].get<double>(), 2.0 / std::stod(cfg.substr(at + 6)), 1e-9);
        }
      }
  EXPECT_TRUE(sharp);
  EXPECT_FALSE(planes);
}
