// Kill-anywhere: `cl run` and `lfd train` killed with SIGKILL at 10 random moments each, resumed
// every time, end exactly where an uninterrupted run ends. The moments are of two kinds:
//  * a point of training progress drawn at random (the process is killed as soon as metrics.jsonl
//    shows it got there: in a step, an evaluation or a checkpoint write, whatever it is doing);
//  * the N-th atomic file write of the process (STABLELEARN_KILL_AT_WRITE, core/fs.cpp), killed
//    after half of the temporary file is written: a crash inside a checkpoint or summary write.
// After every kill the run directory must hold nothing half-written: the checkpoint manifest
// parses and names a checkpoint that loads. The final weights must equal the uninterrupted run's
// bit for bit, and no temporary file of an unfinished write may remain.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include "cli_run_testing.h"
#include "cli_testing.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// The progress a metrics row shows (−1: not a training row).
using ProgressOf = std::function<long(const json&)>;

/// The progress of the newest training row of RUN/metrics.jsonl (−1 when none yet).
long progress(const fs::path& run, const ProgressOf& of) {
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  long last = -1;
  while (std::getline(in, line)) {
    try {
      const long p = of(json::parse(line));
      if (p >= 0) last = p;
    } catch (const std::exception&) {  // a row being appended
    }
  }
  return last;
}

struct Attempt {
  bool killed = false;
  int status = -1;
};

/// Runs `ENV stablelearn --threads 1 ARGS`; with kill_at >= 0, SIGKILLs it as soon as the run's
/// progress reaches kill_at.
Attempt attempt(const std::string& env, const std::string& args, const fs::path& run, const ProgressOf& of, long kill_at) {
  const auto log = run.parent_path() / (run.filename().string() + "_stderr.txt");
  const pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    const std::string line =
        env + " exec " + (binary_dir() / "stablelearn").string() + " --threads 1 " + args + " --quiet >/dev/null 2>>" + log.string();
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, kill_at >= 0 ? WNOHANG : 0);
    if (done == pid) break;
    if (kill_at >= 0 && progress(run, of) >= kill_at) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Attempt a;
  a.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  a.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (!a.killed && a.status != 0) ADD_FAILURE() << args << " failed: " << read_file_text(log);
  return a;
}

/// The run directory after a kill: the manifest (if any) parses and its checkpoint loads.
void expect_complete(const fs::path& run) {
  if (!fs::exists(run / "checkpoint.json")) return;
  json m;
  ASSERT_NO_THROW(m = json::parse(read_file_text(run / "checkpoint.json"))) << run;
  const auto file = run / m.at("file").get<std::string>();
  std::map<std::string, io::NdArray> t;
  ASSERT_NO_THROW(t = io::read_npz(file)) << file;
  EXPECT_FALSE(t.empty()) << file;
}

/// Every array of the npz files `a` and `b` is equal, element for element.
void expect_equal_npz(const fs::path& a, const fs::path& b) {
  const auto ta = io::read_npz(a), tb = io::read_npz(b);
  ASSERT_EQ(ta.size(), tb.size()) << a << " vs " << b;
  for (const auto& [k, v] : ta) {
    ASSERT_TRUE(tb.count(k)) << b << " lacks " << k;
    EXPECT_TRUE(torch::equal(data::to_tensor(v), data::to_tensor(tb.at(k)))) << k << " differs in " << b.filename();
  }
}

std::vector<fs::path> unfinished_writes(const fs::path& run) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(run))
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path());
  return out;
}

/// Trains `args` once without interruption into DIR/whole, then into DIR/killed with 10 kills
/// (7 at random progress points, 3 at random file writes), resuming after each; returns the
/// two run directories once both have finished.
std::pair<fs::path, fs::path> kill_ten_times(const fs::path& dir, const std::string& args, const ProgressOf& of,
                                             std::uint32_t seed) {
  const auto whole = dir / "whole", killed = dir / "killed";
  EXPECT_FALSE(attempt("", args + " --out " + whole.string(), whole, of, -1).killed);
  const long total = progress(whole, of);
  EXPECT_GT(total, 20);
  std::mt19937 rng(seed);
  std::vector<long> points;
  for (int k = 0; k < 7; ++k) points.push_back(std::uniform_int_distribution<long>(1, total - 1)(rng));
  std::sort(points.begin(), points.end());
  int kills = 0, write_kills = 0;
  bool finished = false;
  std::size_t next_point = 0;
  std::string moments;
  for (int k = 0; k < 10 && !finished; ++k) {
    const bool at_write = k % 3 == 2;
    const long write_no = std::uniform_int_distribution<long>(1, 4)(rng);
    const std::string env = at_write ? "STABLELEARN_KILL_AT_WRITE=" + std::to_string(write_no) : "";
    const long point = at_write ? -1 : points[next_point++];
    const auto a = attempt(env, args + " --out " + killed.string() + (k > 0 ? " --resume" : ""), killed, of, point);
    if (!a.killed) {
      EXPECT_EQ(a.status, 0);
      finished = true;
      break;
    }
    ++kills;
    write_kills += at_write;
    moments += at_write ? " write#" + std::to_string(write_no) : " progress " + std::to_string(point) + "/" + std::to_string(total);
    expect_complete(killed);
  }
  if (!finished) EXPECT_FALSE(attempt("", args + " --out " + killed.string() + " --resume", killed, of, -1).killed);
  std::cout << "[ killed   ] " << kills << " kills (" << write_kills << " inside a file write):" << moments << "\n";
  // Every kill landed before the run ended (a kill that comes too late would test nothing).
  EXPECT_EQ(kills, 10);
  EXPECT_EQ(write_kills, 3);
  EXPECT_TRUE(unfinished_writes(killed).empty()) << unfinished_writes(killed).front();
  return {whole, killed};
}

class KillResume : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = temp_dir(std::string("kill_") + ::testing::UnitTest::GetInstance()->current_test_info()->name()); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(KillResume, ClRunKilledTenTimesEndsAsIfUninterrupted) {
  const auto data = write_tiny_fmnist(dir_);
  const auto config = dir_ / "tiny.toml";
  // EWC with momentum: its per-task state (Fishers, anchors) must survive the kills too.
  std::ofstream(config) << tiny_cl_config(data, 5, "log_every = 1\n");
  const std::string args = "cl run " + config.string() +
                           " --set train.epochs=60 --set strategy.name=ewc --set strategy.lambda=20 --set train.momentum=0.9";
  const ProgressOf of = [](const json& r) -> long {
    return r.value("event", "") == "train" ? r.at("iteration").get<long>() : -1;
  };
  const auto [whole, killed] = kill_ten_times(dir_, args, of, 11);
  const auto sw = json::parse(read_file_text(whole / "summary.json")), sk = json::parse(read_file_text(killed / "summary.json"));
  EXPECT_EQ(sk.at("completed_tasks"), 3);
  EXPECT_EQ(sw.at("accuracy_matrix"), sk.at("accuracy_matrix"));
  EXPECT_EQ(sw.at("iterations"), sk.at("iterations"));
  for (int t = 0; t < 3; ++t) {
    const auto f = "checkpoint_task" + std::to_string(t) + ".npz";
    expect_equal_npz(whole / f, killed / f);
  }
}

TEST_F(KillResume, LfdTrainKilledTenTimesEndsAsIfUninterrupted) {
  const auto config = dir_ / "tiny_lfd.toml";
  std::ofstream(config) << "[data]\ntasks = 3\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\n"
                           "task_emb_dim = 4\nchunk_emb_dim = 4\nchunk_dim = 128\n[train]\niterations = 60\nlog_every = 1\n";
  const std::string args = "lfd train " + config.string();
  const ProgressOf of = [](const json& r) -> long {
    if (r.contains("event") || !r.contains("loss") || !r.contains("iteration")) return -1;
    return r.at("task").get<long>() * 60 + r.at("iteration").get<long>();
  };
  const auto [whole, killed] = kill_ten_times(dir_, args, of, 12);
  const auto mw = json::parse(read_file_text(whole / "checkpoint.json")), mk = json::parse(read_file_text(killed / "checkpoint.json"));
  EXPECT_EQ(mk.at("completed_tasks"), 3);
  EXPECT_EQ(mw.at("evaluations"), mk.at("evaluations"));
  expect_equal_npz(whole / mw.at("file").get<std::string>(), killed / mk.at("file").get<std::string>());
  EXPECT_EQ(json::parse(read_file_text(whole / "eval_results.json")), json::parse(read_file_text(killed / "eval_results.json")));
}

// NaN/inf: a run that diverges in task 1 (EWC with an absurd strength: task 0 has no penalty and
// trains, task 1's penalty overflows) stops at the first non-finite loss with the task, the
// iteration and the hint, exits with a data error, and keeps task 0's checkpoint loadable; a
// report can still be made of it.
TEST_F(KillResume, DivergingRunStopsAtTheFirstNonFiniteLossAndKeepsItsCheckpoint) {
  const auto data = write_tiny_fmnist(dir_);
  const auto config = dir_ / "tiny.toml";
  std::ofstream(config) << tiny_cl_config(data, 5);
  const auto run = dir_ / "diverged";
  const auto r = run_cli("cl run " + config.string() + " --quiet --out " + run.string() +
                         " --set strategy.name=ewc --set strategy.lambda=1e38 --set train.lr=10");
  EXPECT_NE(r.status, 0);
  std::cout << "[ message  ] " << r.err;
  EXPECT_NE(r.err.find("task 1 iteration "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the training loss is "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("lower train.lr or the strategy's strength"), std::string::npos) << r.err;
  ASSERT_EQ(json::parse(read_file_text(run / "checkpoint.json")).at("completed_tasks"), 1);
  const auto t = io::read_npz(run / "checkpoint_task0.npz");
  for (const auto& [k, v] : t) EXPECT_TRUE(torch::isfinite(data::to_tensor(v)).all().item<bool>()) << k;
  const auto rep = run_cli("report " + run.string() + " --out " + (dir_ / "diverged.html").string());
  EXPECT_EQ(rep.status, 0) << rep.err;
}

}  // namespace
}  // namespace stablelearn::testing
