// End-to-end tests of the stablelearn command line: exit statuses, stdout/stderr contract, JSON.
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/fs.h"
#include "stablelearn/io/npy.h"
#include "stablelearn/io/npz.h"
#include "cli_testing.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = sl::testing::CliResult;
Result run(const std::string& args) { return sl::testing::run_cli(args); }

fs::path write_traj(const fs::path& dir, const std::string& name, std::vector<std::int64_t> shape,
                    const std::vector<double>& v, sl::io::DType dtype = sl::io::DType::Float64) {
  const auto p = dir / name;
  sl::io::write_npy(p, sl::io::NdArray::from_double(dtype, std::move(shape), v));
  return p;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { dir = sl::testing::temp_dir("cli"); }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

}  // namespace

TEST_F(Cli, VersionReportsBlasAndThreads) {
  const auto r = run("--version");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("BLAS"), std::string::npos);
  EXPECT_NE(r.out.find("threads     " + std::to_string(sl::testing::test_threads()) + " of"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CPU         "), std::string::npos) << r.out;
}

TEST_F(Cli, VersionNamesTheKernelsLibtorchDispatchesTo) {
  // ATEN_CPU_CAPABILITY=default makes libtorch run its plain C++ kernels whatever the CPU has;
  // --version must report that (and not what the CPU could do).
  const char* before = std::getenv("ATEN_CPU_CAPABILITY");
  const std::string saved = before != nullptr ? before : "";
  ASSERT_EQ(setenv("ATEN_CPU_CAPABILITY", "default", 1), 0);
  const auto r = run("--version");
  if (before != nullptr) setenv("ATEN_CPU_CAPABILITY", saved.c_str(), 1);
  else unsetenv("ATEN_CPU_CAPABILITY");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("(libtorch kernels: DEFAULT)"), std::string::npos) << r.out;
  const auto plain = run("--version");
  EXPECT_EQ(plain.out.find("(libtorch kernels: unknown)"), std::string::npos) << plain.out;
}

namespace {

/// Runs `stablelearn --version` with OPENBLAS_CORETYPE set to `coretype` (nullptr: unset) and the
/// re-exec marker cleared, restoring both afterwards; returns the value of the line `key`
/// ("BLAS core", "BLAS"; "" if there is none).
std::string version_line(const char* coretype, const std::string& key = "BLAS core") {
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* k : {"OPENBLAS_CORETYPE", "SL_BLAS_CORE_REEXEC"}) {
    const char* v = std::getenv(k);
    saved[k] = v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  }
  unsetenv("SL_BLAS_CORE_REEXEC");
  if (coretype != nullptr) setenv("OPENBLAS_CORETYPE", coretype, 1);
  else unsetenv("OPENBLAS_CORETYPE");
  const auto r = sl::testing::run_cli("--version");
  for (const auto& [k, v] : saved) {
    if (v) setenv(k.c_str(), v->c_str(), 1);
    else unsetenv(k.c_str());
  }
  EXPECT_EQ(r.status, 0) << r.err;
  const std::string head = "\n" + key + std::string(12 - key.size(), ' ');
  const std::string out = "\n" + r.out;
  const auto pos = out.find(head);
  if (pos == std::string::npos) return "";
  return out.substr(pos + head.size(), out.find('\n', pos + 1) - pos - head.size());
}

}  // namespace

TEST_F(Cli, OpenBlasRunsTheKernelsOfThisCpu) {
  // Debian's OpenBLAS 0.3.21 falls back to its SSE3 "Prescott" kernels on CPUs it does not know;
  // stablelearn then re-runs itself with OPENBLAS_CORETYPE naming the CPU's instruction set.
  const std::string core = version_line(nullptr);
  if (core.empty()) {
    // No core reported: that must be because the BLAS is not OpenBLAS.
    EXPECT_EQ(version_line(nullptr, "BLAS").find("OpenBLAS"), std::string::npos);
    return;
  }
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) {
    EXPECT_NE(core.substr(0, 8), "Prescott") << core;
  }
  // Where the re-exec happened, the report says from what.
  if (core.find("re-executed") != std::string::npos) {
    EXPECT_TRUE(core.rfind("SkylakeX", 0) == 0 || core.rfind("Haswell", 0) == 0) << core;
    EXPECT_NE(core.find("OpenBLAS chose Prescott"), std::string::npos) << core;
  }
  // A core the user names is kept as it is (no re-exec).
  EXPECT_EQ(version_line("Prescott"), "Prescott");
}

TEST_F(Cli, EveryCommandHasHelp) {
  for (const char* c : {"", "data", "data info", "lfd", "lfd metrics", "lfd train", "lfd info", "lfd stability", "lfd export", "demo", "list",
                        "cl", "cl run", "cl pretrain", "cl summarize", "diagnose"}) {
    const auto r = run(std::string(c) + " --help");
    EXPECT_EQ(r.status, 0) << c << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c;
  }
}

TEST_F(Cli, UnknownCommandOrOptionExitsWithStatus2) {
  EXPECT_EQ(run("frobnicate").status, 2);
  EXPECT_EQ(run("lfd metrics --bogus").status, 2);
  EXPECT_EQ(run("lfd metrics --ref a.npy").status, 2);  // --pred missing
}

TEST_F(Cli, LfdMetricsSpecToyCase) {
  // Spec §4: A = (0,0),(1,0),(2,0), B = A + (0,1) -> DTW 3, Fréchet 1, swept area 2.
  const auto a = write_traj(dir, "a.npy", {3, 2}, {0, 0, 1, 0, 2, 0});
  const auto b = write_traj(dir, "b.npy", {3, 2}, {0, 1, 1, 1, 2, 1}, sl::io::DType::Float32);
  const auto r = run("lfd metrics --ref " + a.string() + " --pred " + b.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["dtw"]["per_demo"][0].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(j["dtw"]["mean"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(j["frechet"]["median"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["swept"]["mean"].get<double>(), 2.0);
  EXPECT_FALSE(j.contains("quat"));
}

TEST_F(Cli, LfdMetricsPerDemoMeanMedianAndQuaternionColumns) {
  // Two demonstrations of 7 columns (position + quaternion). Demo 0: prediction equal to the
  // reference; demo 1: positions shifted by (3,4,0) (distance 5 per sample, 2 samples -> DTW 10)
  // and orientation rotated by 90° about z (half-angle error pi/4 per sample).
  const double c = std::cos(M_PI / 4), s = std::sin(M_PI / 4);
  std::vector<double> ref = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0,   // demo 0
                             0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0};  // demo 1
  std::vector<double> pred = ref;
  for (int k = 0; k < 2; ++k) {
    double* row = &pred[14 + 7 * k];
    row[0] += 3, row[1] += 4;
    row[3] = c, row[4] = 0, row[5] = 0, row[6] = s;
  }
  const auto a = write_traj(dir, "ref.npy", {2, 2, 7}, ref);
  const auto b = write_traj(dir, "pred.npy", {2, 2, 7}, pred);
  const auto r = run("lfd metrics --ref " + a.string() + " --pred " + b.string() + " --metrics dtw,frechet,quat");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  // DTW uses all 7 columns: the quaternion part adds |(1,0,0,0)-(c,0,0,s)| per matched sample.
  const double qd = std::sqrt((1 - c) * (1 - c) + s * s);
  const double per = std::sqrt(25 + qd * qd);
  EXPECT_NEAR(j["dtw"]["per_demo"][0].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(j["dtw"]["per_demo"][1].get<double>(), 2 * per, 1e-12);
  EXPECT_NEAR(j["dtw"]["mean"].get<double>(), per, 1e-12);
  EXPECT_NEAR(j["dtw"]["median"].get<double>(), per, 1e-12);  // median of two = their mean
  EXPECT_NEAR(j["frechet"]["per_demo"][1].get<double>(), per, 1e-12);
  EXPECT_NEAR(j["quat"]["per_demo"][0].get<double>(), 0.0, 1e-12);
  // arccos(round(cos(pi/4), 4)) = arccos(0.7071)
  EXPECT_NEAR(j["quat"]["per_demo"][1].get<double>(), std::acos(0.7071), 1e-12);
}

TEST_F(Cli, LfdMetricsOnLasaAngleMatchesTheSpec) {
  // Spec §4: LASA Angle raw demo 0 vs demo 1 -> DTW 2006.1348, Fréchet 3.096283, swept 183.5507.
  const auto pos = sl::io::read_npz_member(sl::testing::project_data() / "LASA/lasa_numpy/task_x0_y0.npz", "pos");
  ASSERT_EQ(pos.shape, (std::vector<std::int64_t>{7, 1000, 2}));
  const auto v = pos.to_double();
  const auto a = write_traj(dir, "demo0.npy", {1000, 2}, std::vector<double>(v.begin(), v.begin() + 2000));
  const auto b = write_traj(dir, "demo1.npy", {1000, 2}, std::vector<double>(v.begin() + 2000, v.begin() + 4000));
  const auto r = run("lfd metrics --ref " + a.string() + " --pred " + b.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_NEAR(j["dtw"]["mean"].get<double>(), 2006.1348, 5e-5);
  EXPECT_NEAR(j["frechet"]["mean"].get<double>(), 3.096283, 5e-7);
  EXPECT_NEAR(j["swept"]["mean"].get<double>(), 183.5507, 5e-5);
}

TEST_F(Cli, LfdMetricsErrorsNameTheFileAndPrintNothingOnStdout) {
  const auto good = write_traj(dir, "good.npy", {2, 3, 2}, std::vector<double>(12, 1.0));
  const auto other_m = write_traj(dir, "three_demos.npy", {3, 3, 2}, std::vector<double>(18, 1.0));
  std::vector<double> with_nan(12, 1.0);
  with_nan[7] = NAN;
  const auto nan = write_traj(dir, "nan.npy", {2, 3, 2}, with_nan);
  const auto one_col = write_traj(dir, "one_col.npy", {2, 3, 1}, std::vector<double>(6, 1.0));
  const auto other_t = write_traj(dir, "long.npy", {2, 4, 2}, std::vector<double>(16, 1.0));
  const auto ints = write_traj(dir, "ints.npy", {2, 3, 2}, std::vector<double>(12, 1.0), sl::io::DType::Int64);
  sl::write_file_atomic(dir / "corrupt.npy", "\x93NUMPY garbage");

  struct Case {
    std::string args, file;
  };
  const std::vector<Case> cases = {
      {"--ref " + good.string() + " --pred " + other_m.string(), "three_demos.npy"},
      {"--ref " + good.string() + " --pred " + nan.string(), "nan.npy"},
      {"--ref " + one_col.string() + " --pred " + one_col.string() + " --metrics swept", "one_col.npy"},
      {"--ref " + good.string() + " --pred " + other_t.string() + " --metrics swept", "long.npy"},
      {"--ref " + good.string() + " --pred " + ints.string(), "ints.npy"},
      {"--ref " + good.string() + " --pred " + (dir / "missing.npy").string(), "missing.npy"},
      {"--ref " + (dir / "corrupt.npy").string() + " --pred " + good.string(), "corrupt.npy"},
      {"--ref " + good.string() + " --pred " + good.string() + " --metrics quat", "good.npy"},
  };
  for (const auto& c : cases) {
    const auto r = run("lfd metrics " + c.args);
    EXPECT_EQ(r.status, 2) << c.args << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << " printed: " << r.out;
    EXPECT_NE(r.err.find(c.file), std::string::npos) << c.args << " stderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one-line error expected: " << r.err;
  }
  // T may differ for dtw and frechet.
  const auto r = run("lfd metrics --ref " + good.string() + " --pred " + other_t.string() + " --metrics dtw,frechet");
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(Cli, DataInfoOnFilesAndFolders) {
  const auto r = run("data info --json " + (sl::testing::project_data() / "robottasks/pos_ori/openbox.npy").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["arrays"][0]["shape"], json::array({9, 1000, 7}));
  EXPECT_EQ(j["arrays"][0]["dtype"], "float64");
  // Statistics of a hand-made array: min -6, max 5, mean (1+2+3+4+5-6)/6 = 9/6 = 1.5.
  const auto small = write_traj(dir, "small.npy", {2, 3}, {1, 2, 3, 4, 5, -6}, sl::io::DType::Int32);
  const auto rs = run("data info --json " + small.string());
  ASSERT_EQ(rs.status, 0) << rs.err;
  const auto js = json::parse(rs.out)["arrays"][0];
  EXPECT_EQ(js["dtype"], "int32");
  EXPECT_DOUBLE_EQ(js["min"].get<double>(), -6.0);
  EXPECT_DOUBLE_EQ(js["max"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(js["mean"].get<double>(), 1.5);

  const auto root = run("data info --json " + sl::testing::project_data().string());
  ASSERT_EQ(root.status, 0) << root.err;
  const auto rj = json::parse(root.out);
  std::map<std::string, std::int64_t> tasks;
  for (const auto& s : rj["datasets"]) tasks[s["name"]] = s["tasks"];
  EXPECT_EQ(tasks["lasa2d"], 26);
  EXPECT_EQ(tasks["lasa8d"], 10);
  EXPECT_EQ(tasks["lasa16d"], 10);
  EXPECT_EQ(tasks["lasa32d"], 10);
  EXPECT_EQ(tasks["helloworld"], 7);
  EXPECT_EQ(tasks["robottasks9"], 9);

  const auto missing = run("data info " + (dir / "nope.npz").string());
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("nope.npz"), std::string::npos);
  sl::write_file_atomic(dir / "bad.npz", "PK\x03\x04 not really a zip");
  const auto bad = run("data info " + (dir / "bad.npz").string());
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("bad.npz"), std::string::npos) << bad.err;
}

TEST_F(Cli, DemoRunsAndShowsEveryDataSet) {
  const auto r = run("demo --no-train");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"lasa2d", "lasa8d", "lasa16d", "lasa32d", "helloworld", "robottasks9", "demo finished"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
}

TEST_F(Cli, DemoTrainingPartWithATinyConfig) {
  sl::write_file_atomic(dir / "tiny.toml",
                        "[data]\ntasks = 2\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\n"
                        "task_emb_dim = 4\nchunk_emb_dim = 4\nchunk_dim = 128\n[train]\niterations = 10\n");
  const auto r = run("demo --config " + (dir / "tiny.toml").string() + " --out " + (dir / "runs").string());
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* part : {"with regulariser", "fine-tuning", "Stability of the learned skills", "us per step"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part;
  EXPECT_TRUE(fs::exists(dir / "runs/demo-regularised/summary.json"));
  EXPECT_TRUE(fs::exists(dir / "runs/demo-finetune/summary.json"));
  EXPECT_TRUE(fs::exists(dir / "runs/demo-regularised/task0.slskill"));
}

TEST_F(Cli, DemoWithADiscreteStepConfigPrintsThePerSkillStabilitySummary) {
  // The demo's default is configs/demo_discrete.toml: skills trained and executed as Φ (docs/lfd.md §7),
  // whose stability summary gives converged starts and pulled steps per skill. Tiny sizes, 10 iterations.
  sl::write_file_atomic(dir / "tiny_discrete.toml",
                        "[data]\ntasks = 2\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\n"
                        "task_emb_dim = 4\nchunk_emb_dim = 4\nchunk_dim = 128\neps = 0.001\nexplicit_time = false\n"
                        "discrete_step = true\n[train]\niterations = 10\n");
  const auto r = run("demo --config " + (dir / "tiny_discrete.toml").string() + " --out " + (dir / "runs").string() +
                     " --starts 5");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* part : {"5/5 starts within", "(discrete)", "radially pulled:", "2 of 2 skills converge from every start",
                           "discrete-map steps"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
}

TEST_F(Cli, LfdTrainInfoStabilityExportEndToEnd) {
  sl::write_file_atomic(dir / "tiny.toml",
                        "[data]\ntasks = 2\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\n"
                        "task_emb_dim = 4\nchunk_emb_dim = 4\nchunk_dim = 128\n[train]\niterations = 10\n");
  const auto cfg = (dir / "tiny.toml").string();
  const auto info = run("lfd info " + cfg);
  ASSERT_EQ(info.status, 0) << info.err;
  const auto ij = json::parse(info.out);
  // Target P of a d = 2 sNODE with h = 8, one f̂ layer, hp = 4, time input (n = 3):
  // f̂ 8*3+8 + 2*8+2 = 50; ICNN W0 4*3, W1 4*3, W2 3, U0 16, U1 4, biases 4+4+1 = 56; P = 106.
  EXPECT_EQ(ij["params"]["target"], 106);
  const auto train = run("lfd train " + cfg + " --out " + (dir / "run").string() + " --set train.seed=7");
  ASSERT_EQ(train.status, 0) << train.err;
  for (const char* f : {"config.toml", "summary.json", "eval_results.json", "metrics.jsonl", "checkpoint.json"})
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  EXPECT_NE(sl::read_file_text(dir / "run/config.toml").find("seed = 7"), std::string::npos);
  const auto again = run("lfd train " + cfg + " --out " + (dir / "run").string());
  EXPECT_EQ(again.status, 2);  // the folder holds a run: --resume or another --out
  const auto resumed = run("lfd train " + cfg + " --out " + (dir / "run").string() + " --set train.seed=7 --resume");
  EXPECT_EQ(resumed.status, 0) << resumed.err;  // nothing left to do
  EXPECT_FALSE(train.err.empty());              // progress on stderr ...
  const auto quiet = run("lfd train " + cfg + " --out " + (dir / "quiet").string() + " --quiet");
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;  // ... none with --quiet
  const auto st = run("lfd stability " + (dir / "run").string() + " --task 1 --starts 5 --horizon-factor 0.2");
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_EQ(json::parse(st.out)["starts"], 5);
  const auto ex = run("lfd export " + (dir / "run").string() + " --task 0 --out " + (dir / "s.slskill").string());
  ASSERT_EQ(ex.status, 0) << ex.err;
  EXPECT_TRUE(fs::exists(dir / "s.slskill"));
  const auto bad_task = run("lfd export " + (dir / "run").string() + " --task 5 --out " + (dir / "x.slskill").string());
  EXPECT_EQ(bad_task.status, 2);
  const auto bad_key = run("lfd train " + cfg + " --out " + (dir / "run2").string() + " --set train.bogus=1");
  EXPECT_EQ(bad_key.status, 2);
  EXPECT_NE(bad_key.err.find("train.bogus"), std::string::npos) << bad_key.err;
  EXPECT_TRUE(bad_key.out.empty());
}

TEST_F(Cli, ClRunAndListCommands) {
  const auto l = run("list strategies");
  EXPECT_EQ(l.status, 0) << l.err;
  for (const char* s : {"finetune", "joint", "ewc", "si", "mas", "lwf", "er", "agem", "derpp", "gpm", "ema"})
    EXPECT_NE(l.out.find(std::string(s) + " "), std::string::npos) << s;
  EXPECT_NE(run("list streams").out.find("split-task"), std::string::npos);
  EXPECT_NE(run("list models").out.find("cnn"), std::string::npos);
  EXPECT_EQ(run("cl run --help").status, 0);

  const auto cfg = dir / "cl.toml";
  std::ofstream(cfg) << "[stream]\nkind = \"split-class\"\ntasks = 2\ntrain_per_task = 300\ntest_per_task = 200\n"
                        "[model]\nhidden = [32]\n[strategy]\nname = \"ewc\"\n[train]\nepochs = 1\n[eval]\nevery = 2\nsubset = 50\n";
  const auto r = run("cl run " + cfg.string() + " --out " + (dir / "run").string() + " --set strategy.lambda=10");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("ewc on split-class after 2/2 tasks: ACC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("min-ACC"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("task 2/2"), std::string::npos) << r.err;  // progress on stderr, none with --quiet
  const auto quiet = run("cl run " + cfg.string() + " --out " + (dir / "quiet").string() + " --quiet");
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;
  EXPECT_NE(sl::read_file_text(dir / "run" / "config.toml").find("lambda = 10"), std::string::npos);
  // A bad override names the key and exits with the configuration error status.
  const auto bad = run("cl run " + cfg.string() + " --out " + (dir / "run2").string() + " --set train.epochz=2");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("epochz"), std::string::npos) << bad.err;
}

TEST_F(Cli, ClSummarizeGroupsSeedsAndComputesMeanAndSampleStd) {
  // Two seeds of one run with ACC 0.8 and 0.6: mean 70.0 %, sample std √0.02 = 14.1 %.
  for (const auto& [name, acc] : std::vector<std::pair<std::string, double>>{{"split_er_s0", 0.8}, {"split_er_s1", 0.6}}) {
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "summary.json")
        << "{\"metrics\": {\"ACC\": " << acc << ", \"BWT\": -0.1, \"FWT\": 0.0, \"forgetting_max\": 0.1},"
        << " \"train_seconds\": [1.0, 3.0]}";
  }
  const auto r = run("cl summarize " + (dir / "split_er_s0").string() + " " + (dir / "split_er_s1").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| split_er | 2 | 70.0 ± 14.1 | -10.0 ± 0.0 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| n/a | n/a | 2.0 ± 0.0 |"), std::string::npos) << r.out;  // no continual eval; 2 s per task
  // An unfinished run is left out of the statistics (with a warning).
  fs::create_directories(dir / "split_er_s2");
  std::ofstream(dir / "split_er_s2" / "summary.json")
      << "{\"completed_tasks\": 2, \"tasks\": 5, \"metrics\": {\"ACC\": 0.1, \"BWT\": 0, \"FWT\": 0, \"forgetting_max\": 0},"
      << " \"train_seconds\": [1.0]}";
  const auto partial = run("cl summarize " + (dir / "split_er_s0").string() + " " + (dir / "split_er_s1").string() + " " +
                           (dir / "split_er_s2").string());
  EXPECT_NE(partial.out.find("| split_er | 2 | 70.0 ± 14.1 |"), std::string::npos) << partial.out;
  EXPECT_NE(partial.err.find("unfinished run"), std::string::npos) << partial.err;
  const auto bad = run("cl summarize " + (dir / "nothing").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("summary.json"), std::string::npos);
  EXPECT_EQ(run("cl run " + (dir / "split_er_s0" / "summary.json").string() + " --dry-run").status, 2);  // not TOML
}
