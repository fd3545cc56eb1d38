// `stablelearn launch` and data-parallel `cl run` through real processes on loopback: 2 ranks with
// global batch B against an independent 1-process run with batch B (weights and metrics), failing
// and killed ranks, and bad rendezvous settings.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "cli_run_testing.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/distributed/launch.h"
#include "stablelearn/io/npz.h"

namespace stablelearn::testing {
namespace {

using json = nlohmann::json;

std::string exe() { return (binary_dir() / "stablelearn").string(); }

/// Runs a shell command line (stdout, stderr captured) and times it.
struct Shell {
  int status = -1;
  std::string out, err;
  double seconds = 0;
};
Shell shell(const std::filesystem::path& dir, const std::string& line) {
  const auto out = dir / "sh_out.txt", err = dir / "sh_err.txt";
  const auto t0 = std::chrono::steady_clock::now();
  const int raw = std::system((line + " >" + out.string() + " 2>" + err.string()).c_str());
  Shell r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file_text(out);
  r.err = read_file_text(err);
  return r;
}

/// Largest |a − b| / max(max|a|, 1e-30) over the arrays of two checkpoints whose names start with
/// `prefix` ("": all, the model's and the strategy's); fails when they differ in names or shapes.
double max_rel_diff(const std::filesystem::path& a, const std::filesystem::path& b, const std::string& prefix = "") {
  const auto ta = io::read_npz(a), tb = io::read_npz(b);
  if (prefix.empty()) {
    EXPECT_EQ(ta.size(), tb.size());
  }
  double worst = 0;
  int models = 0;
  for (const auto& [k, v] : ta) {
    if (k.rfind(prefix, 0) != 0) continue;
    ++models;
    if (!tb.count(k)) {
      ADD_FAILURE() << b << " lacks " << k;
      return INFINITY;
    }
    const auto x = data::to_tensor(v).to(torch::kFloat64), y = data::to_tensor(tb.at(k)).to(torch::kFloat64);
    if (x.sizes() != y.sizes()) {
      ADD_FAILURE() << k << " shapes differ";
      return INFINITY;
    }
    const double scale = std::max(x.abs().max().item<double>(), 1e-30);
    worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
  }
  EXPECT_GT(models, 0);
  return worst;
}

std::vector<json> train_rows(const std::filesystem::path& run) {
  std::vector<json> rows;
  for (const auto& r : read_metrics_file(run / "metrics.jsonl"))
    if (r.value("event", "") == "train") rows.push_back(r);
  return rows;
}

class LaunchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir(std::string("launch_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    data_ = write_tiny_fmnist(dir_);
    config_ = dir_ / "tiny.toml";
    // log_every = 1: every update's loss is in metrics.jsonl (compared below).
    std::ofstream(config_) << tiny_cl_config(data_, 3, "log_every = 1\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  /// `cl run` of the tiny config in one process and with 2 ranks; checks they end alike.
  void compare_one_and_two_ranks(const std::string& sets, double weight_bound = 1e-5) {
    const auto one = dir_ / "one", two = dir_ / "two";
    const auto r1 = shell(dir_, exe() + " --threads 1 cl run " + config_.string() + " --quiet --out " + one.string() + sets);
    ASSERT_EQ(r1.status, 0) << r1.err;
    const auto r2 = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                    " --quiet --out " + two.string() + sets);
    ASSERT_EQ(r2.status, 0) << r2.err;
    std::cout << "[ timing   ] 1 process " << r1.seconds << " s, 2 ranks " << r2.seconds << " s\n";
    // Rank 0 alone reported and wrote the run (one set of rows, not two).
    EXPECT_NE(r2.out.find("run directory: " + two.string()), std::string::npos) << r2.out;
    EXPECT_EQ(r2.out.find("run directory:"), r2.out.rfind("run directory:")) << r2.out;
    const auto s1 = json::parse(read_file_text(one / "summary.json")), s2 = json::parse(read_file_text(two / "summary.json"));
    // The strategy asked for is the one that ran.
    const auto at = sets.find("strategy.name=");
    const auto want = at == std::string::npos ? std::string("finetune") : sets.substr(at + 14, sets.find(' ', at) - at - 14);
    EXPECT_EQ(s1.at("strategy"), want);
    EXPECT_EQ(s2.at("strategy"), want);
    ASSERT_EQ(s1.at("completed_tasks"), 3);
    EXPECT_EQ(s2.at("completed_tasks"), 3);
    EXPECT_EQ(s1.at("iterations"), s2.at("iterations"));
    // Metrics: the accuracy matrices agree exactly (an argmax flip would show), losses to 1e-5.
    EXPECT_EQ(s1.at("accuracy_matrix"), s2.at("accuracy_matrix"));
    EXPECT_EQ(s1.at("init_accuracy"), s2.at("init_accuracy"));
    const auto l1 = train_rows(one), l2 = train_rows(two);
    ASSERT_EQ(l1.size(), l2.size());
    ASSERT_EQ(l1.size(), s1.at("iterations").get<std::size_t>());
    double worst_loss = 0;
    for (std::size_t i = 0; i < l1.size(); ++i) {
      EXPECT_EQ(l1[i].at("iteration"), l2[i].at("iteration"));
      const double a = l1[i].at("loss").get<double>(), b = l2[i].at("loss").get<double>();
      worst_loss = std::max(worst_loss, std::abs(a - b) / std::abs(a));
    }
    EXPECT_LE(worst_loss, 1e-5);
    // Weights after every task (float32): 1e-5 relative. The strategy's state (EWC's Fishers: means
    // of squared per-sample gradients, whose relative sensitivity to the weights is larger where a
    // sample is nearly fitted) to 1e-4.
    double worst = 0, worst_state = 0;
    for (int t = 0; t < 3; ++t) {
      const auto f = "checkpoint_task" + std::to_string(t) + ".npz";
      worst = std::max(worst, max_rel_diff(one / f, two / f, "model."));
      worst_state = std::max(worst_state, max_rel_diff(one / f, two / f));
    }
    EXPECT_LE(worst, weight_bound);
    EXPECT_LE(worst_state, std::max(1e-4, weight_bound));
    std::cout << "[ compare  ] 2 ranks vs 1 process: max relative difference of the weights " << worst << ", of the losses "
              << worst_loss << ", of the strategy's state " << worst_state << "\n";
    // The runs did train (a weight change the comparison could miss otherwise).
    EXPECT_GT(max_rel_diff(one / "checkpoint_task0.npz", one / "checkpoint_task2.npz", "model."), 1e-3);
  }

  std::filesystem::path dir_, data_, config_;
};

// Batch 13 over 80 images per task: shards 7 + 6 and a last batch of 2 (1 + 1).
TEST_F(LaunchCli, TwoRanksFineTuningMatchOneProcess) { compare_one_and_two_ranks(" --set train.batch_size=13"); }

// EWC's penalty (independent of the batch) must count once, not once per rank; momentum SGD.
TEST_F(LaunchCli, TwoRanksEwcMatchOneProcess) {
  compare_one_and_two_ranks(
      " --set strategy.name=ewc --set strategy.lambda=50 --set strategy.fisher_samples=20 --set train.momentum=0.9"
      " --set train.batch_size=16");
}

// Every other strategy, each with the part of the data-parallel contract it exercises; uneven
// shards (batch 13: 7 + 6) wherever the batch matters.
// Replicated penalties with gradient hooks (SI subtracts its penalty's gradient from the summed one).
TEST_F(LaunchCli, TwoRanksSiMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=si --set strategy.c=0.5 --set train.batch_size=13");
}
TEST_F(LaunchCli, TwoRanksMasMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=mas --set strategy.lambda=0.1 --set strategy.samples=20 --set train.batch_size=13");
}
// LwF's distillation is a mean over the batch (SampleMean): weighted per shard like the cross-entropy.
TEST_F(LaunchCli, TwoRanksLwfMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=lwf --set strategy.alpha=2 --set train.batch_size=13");
}
// Replay: every rank draws the same memory samples (the strategy's generator) and shards the
// joined batch; the reservoir sees the whole batch on every rank.
TEST_F(LaunchCli, TwoRanksReplayMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=er --set strategy.memory=40 --set strategy.replay_batch=9 --set train.batch_size=13");
}
// DER++: memory terms Replicated, the stored logits gathered from both shards; task-incremental
// (masked, −∞ logits in the gathered buffer).
TEST_F(LaunchCli, TwoRanksDerppMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=derpp --set strategy.memory=40 --set train.batch_size=13 --set stream.kind=split-task");
}
// Gradient surgery on the summed gradients: A-GEM (reference gradient on memory), GPM and adaptive
// SVD (projections), CoSO (its own optimiser step).
TEST_F(LaunchCli, TwoRanksAgemMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=agem --set strategy.memory_per_task=20 --set strategy.sample_size=10 --set train.batch_size=13");
}
TEST_F(LaunchCli, TwoRanksGpmMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=gpm --set strategy.samples=30 --set train.batch_size=13");
}
TEST_F(LaunchCli, TwoRanksAdaptiveSvdMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=adaptive_svd --set train.batch_size=13");
}
// CoSO recomputes its projector by an SVD of the gradient every update_gap steps; with the default
// 1, rounding-level differences (1 vs 2 threads in one process, too) reorder nearly equal singular
// vectors and the runs part ways (split Fashion-MNIST, 300 images per task: task 0 accuracy 0.885
// with one thread, 0.865 with two), so the comparison keeps one projector per task. Even so CoSO
// amplifies rounding through the SVDs and its Adam in projected coordinates: here one process with
// 2 threads instead of 1 moves the weights by 6.0e-6 relative (fine-tuning: 0), and 2 ranks (two
// shard sums instead of one batch sum) by 3.0e-5; the weights' bound is 1e-4 for CoSO alone.
TEST_F(LaunchCli, TwoRanksCosoMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=coso --set strategy.proj_rank=1 --set strategy.rank=8 --set strategy.update_gap=1000"
                            " --set train.batch_size=13",
                            1e-4);
}
// EMA reads the summed gradients and replaces the weights at task ends; joint trains on a growing set.
TEST_F(LaunchCli, TwoRanksEmaMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=ema --set train.batch_size=13");
}
TEST_F(LaunchCli, TwoRanksJointMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=joint --set train.batch_size=13");
}
// PackNet masks the all-reduced gradients to the free weights (a gradient hook) and after each task
// prunes by magnitude and retrains the kept weights on the whole task, alike on every rank (the
// task's generator, the reducer's hooks disarmed outside updates); it needs the task identity.
// Its owners (integers) are part of the compared state, so a different pruning would show.
TEST_F(LaunchCli, TwoRanksPackNetMatchOneProcess) {
  compare_one_and_two_ranks(" --set strategy.name=packnet --set strategy.retrain_epochs=1 --set train.batch_size=13"
                            " --set stream.kind=split-task");
}
// HAT cannot run data-parallel (its embeddings' gradients are not all-reduced): every rank refuses
// it before anything is written, naming the key.
TEST_F(LaunchCli, HatIsRefusedDataParallelBeforeAnythingIsWritten) {
  const auto r = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                 " --quiet --out " + (dir_ / "hat").string() +
                                 " --set strategy.name=hat --set stream.kind=split-task");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("strategy.name: hat trains its task embeddings outside the all-reduced parameters and does not "
                       "support data-parallel runs (2 ranks); run it in one process"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "hat"));
}
// GrokAlign: every rank draws the whole batch's projections and evaluates its shard's.
TEST_F(LaunchCli, TwoRanksGrokAlignMatchOneProcess) {
  compare_one_and_two_ranks(" --set train.grokalign=0.05 --set train.batch_size=13");
}

TEST_F(LaunchCli, FailingRankStopsTheOthersAndIsNamed) {
  // Every rank fails at once (an unknown configuration key): launch exits with their status,
  // naming them. (A single failing rank: KilledRankMakesLaunchFailNamingIt.)
  const auto r = shell(dir_, exe() + " launch --nproc 2 --timeout 30 -- cl run " + config_.string() +
                                 " --quiet --out " + (dir_ / "bad").string() + " --set train.no_such_key=1");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("stablelearn launch: rank "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exited with status 2"), std::string::npos) << r.err;
}

/// Children (pids) of `pid`, from /proc.
std::vector<pid_t> children(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

/// RANK from /proc/PID/environ (−1 when unreadable).
int rank_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string var;
  while (std::getline(in, var, '\0'))
    if (var.rfind("RANK=", 0) == 0) return std::stoi(var.substr(5));
  return -1;
}

TEST_F(LaunchCli, KilledRankMakesLaunchFailNamingIt) {
  const auto err = dir_ / "launch_err.txt";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A run long enough to be killed in the middle (200 epochs of the tiny stream).
    const std::string line = exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                             " --quiet --out " + (dir_ / "killed").string() + " --set train.epochs=2000 >/dev/null 2>" +
                             err.string();
    ::execl("/bin/sh", "sh", "-c", ("exec " + line).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until both ranks train (rank 0 has written its first metrics row), then SIGKILL rank 1.
  const auto start = std::chrono::steady_clock::now();
  pid_t victim = -1;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    if (std::filesystem::exists(dir_ / "killed" / "metrics.jsonl"))
      for (pid_t c : children(pid))
        if (rank_of(c) == 1) victim = c;
    if (victim > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(victim, 0) << "rank 1 not found";
  const auto ranks = children(pid);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(victim, SIGKILL);
  int status = 0;
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGKILL);
  const auto text = read_file_text(err);
  EXPECT_NE(text.find("stablelearn launch: rank 1 (pid " + std::to_string(victim) + ") was killed by signal 9"),
            std::string::npos)
      << text;
  EXPECT_LT(secs, 20.0);
  for (pid_t c : ranks) EXPECT_NE(::kill(c, 0), 0) << "rank pid " << c << " still alive";
}

TEST_F(LaunchCli, SigtermIsForwardedToEveryRank) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string line = exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                             " --quiet --out " + (dir_ / "term").string() + " --set train.epochs=2000 >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", ("exec " + line).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(30) &&
         !std::filesystem::exists(dir_ / "term" / "metrics.jsonl"))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto ranks = children(pid);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
  for (pid_t c : ranks) EXPECT_NE(::kill(c, 0), 0) << "rank pid " << c << " still alive";
}

/// completed_tasks of RUN's checkpoint manifest (0 when there is none yet or it is being replaced).
int completed_tasks(const std::filesystem::path& run) {
  try {
    return json::parse(read_file_text(run / "checkpoint.json")).at("completed_tasks").get<int>();
  } catch (const std::exception&) {
    return 0;
  }
}

/// The final results of two runs of 3 tasks agree: accuracy matrices exactly, the weights (and the
/// strategy's state) after every task to `tol` relative: 1e-5 when the runs sum float32 gradients
/// in another order (other numbers of ranks), 0 when they should take the very same steps.
void expect_same_result(const std::filesystem::path& a, const std::filesystem::path& b, double tol) {
  const auto sa = json::parse(read_file_text(a / "summary.json")), sb = json::parse(read_file_text(b / "summary.json"));
  ASSERT_EQ(sa.at("completed_tasks"), 3);
  ASSERT_EQ(sb.at("completed_tasks"), 3);
  EXPECT_EQ(sa.at("iterations"), sb.at("iterations"));
  EXPECT_EQ(sa.at("accuracy_matrix"), sb.at("accuracy_matrix"));
  EXPECT_EQ(sa.at("init_accuracy"), sb.at("init_accuracy"));
  double worst = 0;
  for (int t = 0; t < 3; ++t) {
    const auto f = "checkpoint_task" + std::to_string(t) + ".npz";
    worst = std::max(worst, max_rel_diff(a / f, b / f));
  }
  EXPECT_LE(worst, tol);
  std::cout << "[ compare  ] " << b.filename() << " vs " << a.filename() << ": max relative difference of the weights " << worst
            << "\n";
}

// --resume of a distributed run, with another number of ranks each time: 2 ranks train task 0,
// 3 ranks continue with task 1 (rank 0 hands its checkpoint to the others), one process finishes.
// The result is that of an uninterrupted one-process run.
TEST_F(LaunchCli, ResumeWithAnotherNumberOfRanks) {
  const std::string sets = " --set train.batch_size=13";
  const auto one = dir_ / "one", run = dir_ / "resumed";
  const auto r1 = shell(dir_, exe() + " --threads 1 cl run " + config_.string() + " --quiet --out " + one.string() + sets);
  ASSERT_EQ(r1.status, 0) << r1.err;
  const auto a = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                 " --quiet --out " + run.string() + " --stop-after 1" + sets);
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(completed_tasks(run), 1);
  const auto b = shell(dir_, exe() + " launch --nproc 3 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                 " --quiet --out " + run.string() + " --resume --stop-after 1" + sets);
  ASSERT_EQ(b.status, 0) << b.err;
  ASSERT_EQ(completed_tasks(run), 2);
  const auto c = shell(dir_, exe() + " --threads 1 cl run " + config_.string() + " --quiet --out " + run.string() + " --resume" + sets);
  ASSERT_EQ(c.status, 0) << c.err;
  expect_same_result(one, run, 1e-5);
}

// kill -9 of a rank in the middle of task 1: launch names it and stops rank 0 at once; what is in
// the run directory is complete (the manifest and the checkpoint it names load); --resume with 2
// ranks ends with the uninterrupted run's result.
TEST_F(LaunchCli, KilledRankRunResumesToTheSameResult) {
  // Long enough tasks (250 epochs of 5 batches) to land the kill inside task 1.
  const std::string sets = " --set train.epochs=250";
  const auto run = dir_ / "killed", err = dir_ / "launch_err.txt";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string line = exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                             " --quiet --out " + run.string() + sets + " >/dev/null 2>" + err.string();
    ::execl("/bin/sh", "sh", "-c", ("exec " + line).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto start = std::chrono::steady_clock::now();
  pid_t victim = -1;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(120) && completed_tasks(run) < 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (pid_t c : children(pid))
    if (rank_of(c) == 1) victim = c;
  ASSERT_GT(victim, 0) << "rank 1 not found (the run ended or never started)";
  const auto ranks = children(pid);
  ::kill(victim, SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 128 + SIGKILL) << "the run ended before the kill";
  EXPECT_NE(read_file_text(err).find("stablelearn launch: rank 1 (pid " + std::to_string(victim) + ") was killed by signal 9"),
            std::string::npos)
      << read_file_text(err);
  EXPECT_LT(secs, 60.0);
  for (pid_t c : ranks) EXPECT_NE(::kill(c, 0), 0) << "rank pid " << c << " still alive";
  // Nothing half-written: the manifest parses and names a complete checkpoint of the model.
  const int done = completed_tasks(run);
  ASSERT_GE(done, 1);
  ASSERT_LT(done, 3);
  const auto manifest = json::parse(read_file_text(run / "checkpoint.json"));
  EXPECT_GT(io::read_npz(run / manifest.at("file").get<std::string>()).count("model.0"), 0u);
  std::cout << "[ killed   ] rank 1 killed after " << done << " completed task(s); launch exited " << secs << " s later\n";

  const auto resumed = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                       " --quiet --out " + run.string() + " --resume" + sets);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const auto whole = dir_ / "whole";
  const auto w = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 30 -- cl run " + config_.string() +
                                 " --quiet --out " + whole.string() + sets);
  ASSERT_EQ(w.status, 0) << w.err;
  expect_same_result(whole, run, 0.0);
}

/// A tiny CHN → sNODE configuration of 3 LASA tasks whose regulariser visits every past task
/// (task 2: two tasks, one per rank), every iteration logged.
std::string tiny_lfd_config() {
  return "[data]\ntasks = 3\n[model]\nh = 8\nhp = 4\nfhat_layers = 1\nhnet_hidden = [8]\ntask_emb_dim = 4\n"
         "chunk_emb_dim = 4\nchunk_dim = 128\n[train]\niterations = 20\nlog_every = 1\nnum_regs = 0\n";
}

/// The lfd runs `a` and `b` (3 tasks) agree: the hypernetwork's tensors to 1e-5 relative, every
/// logged loss and regulariser value to 1e-5 relative, the evaluation medians to 1e-5 relative.
void expect_same_lfd_run(const std::filesystem::path& a, const std::filesystem::path& b, std::size_t iterations = 20) {
  const auto ma = json::parse(read_file_text(a / "checkpoint.json")), mb = json::parse(read_file_text(b / "checkpoint.json"));
  ASSERT_EQ(ma.at("completed_tasks"), 3);
  ASSERT_EQ(mb.at("completed_tasks"), 3);
  // The learned tensors (hypernetwork, or the baselines' networks and embeddings) to 1e-5; a
  // baseline's regulariser state ("reg.": SI's importance Ω = Σ g·Δθ / (Δ² + ξ), MAS's, their anchors)
  // to 1e-3: Ω divides by the squared displacement of each weight over the task, which amplifies
  // rounding where a weight barely moved (SI here: weights 8.5e-6, Ω 3.0e-4).
  const auto fa = a / ma.at("file").get<std::string>(), fb = b / mb.at("file").get<std::string>();
  double w = 0, w_reg = 0;
  {
    const auto ta = io::read_npz(fa), tb = io::read_npz(fb);
    ASSERT_EQ(ta.size(), tb.size());
    for (const auto& [k, v] : ta) {
      ASSERT_TRUE(tb.count(k)) << k;
      const auto x = data::to_tensor(v).to(torch::kFloat64), y = data::to_tensor(tb.at(k)).to(torch::kFloat64);
      ASSERT_EQ(x.sizes(), y.sizes()) << k;
      const double d = ((x - y).abs().max() / x.abs().max().clamp_min(1e-30)).item<double>();
      (k.rfind("reg.", 0) == 0 ? w_reg : w) = std::max(k.rfind("reg.", 0) == 0 ? w_reg : w, d);
    }
  }
  EXPECT_LE(w, 1e-5);
  EXPECT_LE(w_reg, 1e-3);
  // The last row of every (task, iteration): a resumed run repeats the rows of its interrupted task.
  auto rows = [](const std::filesystem::path& run) {
    std::map<std::pair<long, long>, json> out;
    for (const auto& r : read_metrics_file(run / "metrics.jsonl"))
      if (r.contains("loss") && r.contains("iteration") && !r.contains("event"))
        out[{r.at("task").get<long>(), r.at("iteration").get<long>()}] = r;
    return out;
  };
  const auto ra = rows(a), rb = rows(b);
  ASSERT_EQ(ra.size(), 3 * iterations);
  ASSERT_EQ(rb.size(), ra.size());
  double worst = 0;
  for (const auto& [k, r] : ra) {
    const auto& q = rb.at(k);
    for (const char* f : {"loss", "reg"}) {
      ASSERT_EQ(r.contains(f), q.contains(f)) << f;
      if (!r.contains(f)) continue;  // baselines without a regulariser log no reg
      const double x = r.at(f).get<double>(), y = q.at(f).get<double>();
      if (x != 0 || y != 0) worst = std::max(worst, std::abs(x - y) / std::max(std::abs(x), std::abs(y)));
    }
  }
  EXPECT_LE(worst, 1e-5);
  double worst_eval = 0;
  const auto ea = ma.at("evaluations"), eb = mb.at("evaluations");
  ASSERT_EQ(ea.size(), eb.size());
  for (std::size_t i = 0; i < ea.size(); ++i)
    for (std::size_t j = 0; j < ea[i].size(); ++j)
      for (const char* f : {"dtw", "frechet"}) {
        const double x = ea[i][j].at(f).at("median").get<double>(), y = eb[i][j].at(f).at("median").get<double>();
        worst_eval = std::max(worst_eval, std::abs(x - y) / std::max(std::abs(x), 1e-30));
      }
  EXPECT_LE(worst_eval, 1e-5);
  std::cout << "[ compare  ] " << b.filename() << " vs " << a.filename() << ": learned tensors " << w << ", regulariser state " << w_reg
            << ", losses " << worst
            << ", evaluation medians " << worst_eval << " (max relative differences)\n";
}

// lfd train with 2 ranks (demonstrations 4 + 3, regularised tasks split) ends as one process.
TEST_F(LaunchCli, LfdTrainTwoRanksMatchOneProcess) {
  const auto cfg = dir_ / "lfd.toml";
  std::ofstream(cfg) << tiny_lfd_config();
  const auto one = dir_ / "lfd_one", two = dir_ / "lfd_two";
  const auto r1 = shell(dir_, exe() + " --threads 1 lfd train " + cfg.string() + " --quiet --out " + one.string());
  ASSERT_EQ(r1.status, 0) << r1.err;
  const auto r2 = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 60 -- lfd train " + cfg.string() +
                                  " --quiet --out " + two.string());
  ASSERT_EQ(r2.status, 0) << r2.err;
  std::cout << "[ timing   ] 1 process " << r1.seconds << " s, 2 ranks " << r2.seconds << " s\n";
  expect_same_lfd_run(one, two);
  // The regulariser was on in tasks 1 and 2 (its split over the ranks is what task 2 tests).
  int regularised = 0;
  for (const auto& r : read_metrics_file(two / "metrics.jsonl"))
    if (r.contains("reg") && r.at("task").get<int>() == 2 && r.at("reg").get<double>() > 0) ++regularised;
  EXPECT_EQ(regularised, 20);
}

// --resume of a distributed lfd run with other numbers of ranks: 2 ranks train task 0, 3 ranks
// task 1, one process task 2; the result is the uninterrupted one-process run's.
TEST_F(LaunchCli, LfdTrainResumesWithAnotherNumberOfRanks) {
  const auto cfg = dir_ / "lfd.toml";
  std::ofstream(cfg) << tiny_lfd_config();
  const auto one = dir_ / "lfd_one", run = dir_ / "lfd_resumed";
  const auto r1 = shell(dir_, exe() + " --threads 1 lfd train " + cfg.string() + " --quiet --out " + one.string());
  ASSERT_EQ(r1.status, 0) << r1.err;
  const auto a = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 60 -- lfd train " + cfg.string() +
                                 " --quiet --out " + run.string() + " --stop-after 1");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(completed_tasks(run), 1);
  const auto b = shell(dir_, exe() + " launch --nproc 3 --threads-per-proc 1 --timeout 60 -- lfd train " + cfg.string() +
                                 " --quiet --out " + run.string() + " --resume --stop-after 2");
  ASSERT_EQ(b.status, 0) << b.err;
  ASSERT_EQ(completed_tasks(run), 2);
  const auto c = shell(dir_, exe() + " --threads 1 lfd train " + cfg.string() + " --quiet --out " + run.string() + " --resume");
  ASSERT_EQ(c.status, 0) << c.err;
  expect_same_lfd_run(one, run);
}

// The baselines run data-parallel too (shards of the window's demonstrations): SI (its penalty
// computed alike on every rank, its path integral on the summed task gradients) and replay (the
// replayed task and window drawn alike, the replayed task's embedding trained).
TEST_F(LaunchCli, LfdTrainBaselinesTwoRanksMatchOneProcess) {
  const auto cfg = dir_ / "lfd.toml";
  std::ofstream(cfg) << tiny_lfd_config();
  for (const std::string method : {"si", "rep"}) {
    const auto one = dir_ / ("one_" + method), two = dir_ / ("two_" + method);
    const std::string sets = " --set model.method=" + method + " --set train.iterations=8";
    const auto r1 = shell(dir_, exe() + " --threads 1 lfd train " + cfg.string() + " --quiet --out " + one.string() + sets);
    ASSERT_EQ(r1.status, 0) << r1.err;
    const auto r2 = shell(dir_, exe() + " launch --nproc 2 --threads-per-proc 1 --timeout 60 -- lfd train " + cfg.string() +
                                    " --quiet --out " + two.string() + sets);
    ASSERT_EQ(r2.status, 0) << r2.err;
    EXPECT_EQ(json::parse(read_file_text(two / "summary.json")).at("method"), method);
    expect_same_lfd_run(one, two, 8);
  }
}

TEST_F(LaunchCli, WrongMasterPortFailsWithinTheTimeout) {
  const int port = distributed::free_port();  // nothing listens there
  const auto r = shell(dir_, "RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
                                 " STABLELEARN_DIST_TIMEOUT=2 " + exe() + " --threads 1 cl run " + config_.string() +
                                 " --quiet --out " + (dir_ / "port").string());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("rank 1 could not reach rank 0's rendezvous at MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                       std::to_string(port) + " within 2 s"),
            std::string::npos)
      << r.err;
  EXPECT_LT(r.seconds, 15.0);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "port"));
}

TEST_F(LaunchCli, MismatchedWorldSizeFailsWithinTheTimeout) {
  // Rank 0 expects 3 ranks; only 2 come (launch sets WORLD_SIZE=2 for both, so start them by hand).
  const int port = distributed::free_port();
  const auto env = [&](int rank, int world) {
    return "RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
           std::to_string(port) + " STABLELEARN_DIST_TIMEOUT=3 " + exe() + " --threads 1 cl run " + config_.string() +
           " --quiet --out " + (dir_ / "ws").string();
  };
  const auto r = shell(dir_, "(" + env(1, 2) + " 2>" + (dir_ / "r1.txt").string() + " & p=$!; " + env(0, 3) +
                                 "; echo rank0=$?; wait $p; echo rank1=$?)");
  EXPECT_NE(r.out.find("rank0=2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank1=2"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("ranks disagree on WORLD_SIZE: 3 on rank 0, 2 on rank 1"), std::string::npos) << r.err;
  const auto r1 = read_file_text(dir_ / "r1.txt");
  EXPECT_NE(r1.find("ranks disagree on WORLD_SIZE: 3 on rank 0, 2 on rank 1 (reported to rank 1)"), std::string::npos) << r1;
  std::cout << "[ message  ] rank 0: " << r.err << "[ message  ] rank 1: " << r1;
  EXPECT_LT(r.seconds, 20.0);
}

TEST_F(LaunchCli, RanksOtherThanZeroWriteNothing) {
  // Two ranks started by hand with different --out folders: rank 1's must never appear.
  const int port = distributed::free_port();
  const auto rank = [&](int r, const std::string& out) {
    return "RANK=" + std::to_string(r) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
           " STABLELEARN_DIST_TIMEOUT=30 " + exe() + " --threads 1 cl run " + config_.string() + " --quiet --out " +
           (dir_ / out).string() + " --set train.epochs=1";
  };
  const auto r = shell(dir_, "(" + rank(1, "rank1") + " & p=$!; " + rank(0, "rank0") + "; echo rank0=$?; wait $p; echo rank1=$?)");
  EXPECT_NE(r.out.find("rank0=0"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("rank1=0"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "rank0" / "summary.json"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "rank1"));
}

TEST_F(LaunchCli, BadRankVariableIsAUsageError) {
  const auto r = shell(dir_, "RANK=abc WORLD_SIZE=2 " + exe() + " cl run " + config_.string() + " --out " + (dir_ / "x").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("environment variable RANK=\"abc\" is not an integer"), std::string::npos) << r.err;
}

TEST_F(LaunchCli, NoCommandIsAUsageError) {
  const auto r = shell(dir_, exe() + " launch --nproc 2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("COMMAND"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace stablelearn::testing
