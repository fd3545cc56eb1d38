#include <fstream>
#include <map>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/continual/registry.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::experiments::ClExperiment;
using json = nlohmann::json;

namespace {

// Rotated Fashion-MNIST 0°/80°/160° (2000 training and 1000 test images per task), MLP 784-100-10,
// Adam lr 1e-3, 3 epochs, batch 64: small enough for the default suite, hard enough to forget.
std::string small_rotated(const std::string& strategy_table) {
  return "[stream]\nkind = \"rotated\"\ntasks = 3\nrotation_step = 80.0\ntrain_per_task = 2000\ntest_per_task = 1000\n"
         "[model]\nkind = \"mlp\"\nhidden = [100]\n"
         "[train]\nepochs = 3\nbatch_size = 64\nlr = 0.001\noptimizer = \"adam\"\nseed = 0\n"
         "[output]\ntensorboard = false\nfigures = false\n" +
         strategy_table;
}

sl::experiments::ClResult run_config(const std::string& text, const std::string& tag) {
  const auto dir = sl::testing::temp_dir(tag);
  ClExperiment e(sl::Config::from_string(text, tag));
  auto r = e.run(dir / "run", false);
  std::filesystem::remove_all(dir);
  return r;
}

const sl::experiments::ClResult& finetune_result() {
  static const auto r = run_config(small_rotated("[strategy]\nname = \"finetune\"\n"), "ft");
  return r;
}

}  // namespace

TEST(ClForgetting, FineTuningLearnsEachTaskAndForgetsTheFirst) {
  const auto& a = finetune_result().accuracy;
  ASSERT_EQ(a.size(), 3u);
  for (std::size_t t = 0; t < 3; ++t) EXPECT_GT(a[t][t], 0.6) << t;
  EXPECT_LT(a[2][0], a[0][0] - 0.2);
}

// Every strategy (paper defaults except where the small stream needs a stronger penalty, noted
// in the table) keeps task 0 better than fine-tuning and still learns the last task.
struct Case {
  const char* table;
  double margin;  ///< required gain on task 0's final accuracy over fine-tuning
};

class ClStrategyForgetsLess : public ::testing::TestWithParam<Case> {};

TEST_P(ClStrategyForgetsLess, OnRotatedFashionMnist) {
  const auto& ft = finetune_result().accuracy;
  const auto r = run_config(small_rotated(GetParam().table), "strategy");
  const auto& a = r.accuracy;
  ASSERT_EQ(a.size(), 3u);
  std::cout << "[ numbers  ] " << r.strategy << ": task 0 " << a[0][0] << " -> " << a[2][0] << " (fine-tuning " << ft[0][0]
            << " -> " << ft[2][0] << "), last task " << a[2][2] << "\n";
  EXPECT_GT(a[2][0], ft[2][0] + GetParam().margin) << GetParam().table << " task-0 accuracy " << a[2][0] << " vs fine-tuning "
                                                   << ft[2][0];
  EXPECT_GT(a[2][2], 0.55) << GetParam().table << " no longer learns the last task";
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, ClStrategyForgetsLess,
    ::testing::Values(Case{"[strategy]\nname = \"joint\"\n", 0.2}, Case{"[strategy]\nname = \"ewc\"\nfisher_samples = 500\n", 0.1},
                      Case{"[strategy]\nname = \"ewc\"\nmode = \"online\"\ngamma = 1.0\nfisher_samples = 500\n", 0.1},
                      Case{"[strategy]\nname = \"si\"\nc = 1.0\n", 0.05}, Case{"[strategy]\nname = \"mas\"\nlambda = 0.1\nsamples = 500\n", 0.05},
                      Case{"[strategy]\nname = \"lwf\"\n", 0.05}, Case{"[strategy]\nname = \"er\"\nmemory = 500\n", 0.1},
                      Case{"[strategy]\nname = \"er\"\nmemory = 500\nbuffer = \"class_balanced\"\n", 0.1},
                      Case{"[strategy]\nname = \"agem\"\n", 0.05}, Case{"[strategy]\nname = \"derpp\"\n", 0.1},
                      Case{"[strategy]\nname = \"gpm\"\n", 0.1}, Case{"[strategy]\nname = \"ema\"\n", 0.05},
                      Case{"[strategy]\nname = \"adaptive_svd\"\n", 0.05}, Case{"[strategy]\nname = \"coso\"\n", 0.05},
                      Case{"[strategy]\nname = \"packnet\"\n", 0.1},
                      Case{"[strategy]\nname = \"hat\"\nemb_lr = 0.05\n", 0.1}));

// PackNet evaluates task k with the weights of tasks 0..k, frozen after task k: a finished task's
// predictions, hence its accuracy, must stay exactly the same whatever the later tasks train.
TEST(ClForgetting, PackNetKeepsEveryFinishedTaskExactly) {
  const auto r = run_config(small_rotated("[strategy]\nname = \"packnet\"\n"), "packnet");
  const auto& a = r.accuracy;
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[1][0], a[0][0]);
  EXPECT_EQ(a[2][0], a[0][0]);
  EXPECT_EQ(a[2][1], a[1][1]);
  for (std::size_t t = 0; t < 3; ++t) EXPECT_GT(a[t][t], 0.6) << t << ": learns each task with what is left";
}

namespace {

// Rotated Fashion-MNIST 0°/80°/160° with two hidden layers (HAT's conditioning of a hidden-to-hidden
// layer), 1000 training images per task, 2 epochs: the engine's own training, read back from the
// per-task checkpoints (model and strategy state after each task).
std::string two_layer_rotated(const std::string& strategy_table, const std::string& train) {
  return "[stream]\nkind = \"rotated\"\ntasks = 3\nrotation_step = 80.0\ntrain_per_task = 1000\ntest_per_task = 500\n"
         "[model]\nkind = \"mlp\"\nhidden = [64, 32]\n"
         "[train]\nepochs = 2\nbatch_size = 64\nseed = 1\n" + train +
         "[output]\ntensorboard = false\nfigures = false\n" + strategy_table;
}

/// checkpoint_task<t>.npz of a run: "model.i" and "strategy.*" tensors.
std::map<std::string, torch::Tensor> read_checkpoint(const std::filesystem::path& run, int t) {
  std::map<std::string, torch::Tensor> m;
  for (const auto& [k, v] : sl::io::read_npz(run / ("checkpoint_task" + std::to_string(t) + ".npz"))) m[k] = sl::data::to_tensor(v);
  return m;
}

/// Counts, over the model's parameters, the entries selected by `keep` (one mask per parameter,
/// from checkpoint `from`) and how many of them differ bit for bit in checkpoint `to`; also the
/// unselected entries that changed (the later tasks did train).
struct Frozen {
  std::int64_t selected = 0, selected_changed = 0, others_changed = 0;
};
Frozen compare_masked(const std::map<std::string, torch::Tensor>& from, const std::map<std::string, torch::Tensor>& to,
                      const std::vector<torch::Tensor>& keep) {
  Frozen f;
  for (std::size_t i = 0; i < keep.size(); ++i) {
    const auto a = from.at("model." + std::to_string(i)), b = to.at("model." + std::to_string(i));
    const auto differs = a.view(torch::kInt32).ne(b.view(torch::kInt32));  // the float32 bits
    f.selected += keep[i].sum().item<std::int64_t>();
    f.selected_changed += differs.logical_and(keep[i]).sum().item<std::int64_t>();
    f.others_changed += differs.logical_and(keep[i].logical_not()).sum().item<std::int64_t>();
  }
  return f;
}

}  // namespace

// PackNet, the weights themselves: every weight task t kept (its owner t + 1 in checkpoint t) is
// bit for bit the same after the later tasks trained (Adam steps on the free weights), and the
// biases (task 0's) too; the free weights did change.
TEST(ClForgetting, PackNetLeavesTheWeightsAFinishedTaskKeptBitForBit) {
  const auto dir = sl::testing::temp_dir("packnet_bits");
  ClExperiment e(sl::Config::from_string(
      two_layer_rotated("[strategy]\nname = \"packnet\"\n", "lr = 0.001\noptimizer = \"adam\"\n"), "packnet_bits"));
  e.run(dir / "run", false);
  const auto c0 = read_checkpoint(dir / "run", 0), c1 = read_checkpoint(dir / "run", 1), c2 = read_checkpoint(dir / "run", 2);
  for (int t = 0; t < 2; ++t) {
    const auto& ct = t == 0 ? c0 : c1;
    std::vector<torch::Tensor> kept;
    for (std::size_t i = 0; i < 6; ++i) kept.push_back(ct.at("strategy.owner." + std::to_string(i)).eq(t + 1));
    const auto f = compare_masked(ct, c2, kept);
    std::cout << "[ numbers  ] packnet task " << t << ": " << f.selected << " kept weights, " << f.selected_changed
              << " changed by the later tasks; " << f.others_changed << " other entries changed\n";
    EXPECT_GT(f.selected, 1000) << t;
    EXPECT_EQ(f.selected_changed, 0) << t;
    EXPECT_GT(f.others_changed, 1000) << t;
  }
  std::filesystem::remove_all(dir);
}

// HAT, the units: with a^{≤t} the finished tasks' gates at s_max (checkpoint t's "cum"), every weight
// into a unit that tasks 0..t gated fully on (a = 1 in float32) from an input or a unit it gated fully
// on, and that unit's bias, is bit for bit the same after the later tasks trained (momentum SGD, so
// a zero gradient must give a zero step); so are the head's weights from such units, the head's
// bias (task 0's) and task t's embeddings. The partly gated units' weights did change.
TEST(ClForgetting, HatLeavesTheUnitsAFinishedTaskGatedBitForBit) {
  const auto dir = sl::testing::temp_dir("hat_bits");
  ClExperiment e(sl::Config::from_string(
      two_layer_rotated("[strategy]\nname = \"hat\"\n", "lr = 0.05\noptimizer = \"sgd\"\nmomentum = 0.9\n"), "hat_bits"));
  e.run(dir / "run", false);
  const auto c0 = read_checkpoint(dir / "run", 0), c1 = read_checkpoint(dir / "run", 1), c2 = read_checkpoint(dir / "run", 2);
  for (int t = 0; t < 2; ++t) {
    const auto& ct = t == 0 ? c0 : c1;
    // Unit masks: the input (every pixel), hidden layer 1, hidden layer 2.
    const auto on0 = ct.at("strategy.cum.0").eq(1.0f), on1 = ct.at("strategy.cum.1").eq(1.0f);
    const auto all_in = torch::ones({784}, torch::kBool);
    const std::vector<torch::Tensor> keep = {
        on0.unsqueeze(1).logical_and(all_in.unsqueeze(0)),  // W1 [64, 784]
        on0,                                                // b1
        on1.unsqueeze(1).logical_and(on0.unsqueeze(0)),     // W2 [32, 64]
        on1,                                                // b2
        torch::ones({10, 1}, torch::kBool).logical_and(on1.unsqueeze(0)),  // head W [10, 32]
        torch::ones({10}, torch::kBool)};                                   // head bias
    const auto f = compare_masked(ct, c2, keep);
    std::cout << "[ numbers  ] hat task " << t << ": units on " << on0.sum().item<std::int64_t>() << "/64, "
              << on1.sum().item<std::int64_t>() << "/32; " << f.selected << " weights of those units, " << f.selected_changed
              << " changed by the later tasks; " << f.others_changed << " other entries changed\n";
    EXPECT_GT(on0.sum().item<std::int64_t>(), 0) << t;
    EXPECT_GT(on1.sum().item<std::int64_t>(), 0) << t;
    EXPECT_EQ(f.selected_changed, 0) << t;
    EXPECT_GT(f.others_changed, 100) << t;
    for (int l = 0; l < 2; ++l) {
      const auto k = "strategy.emb" + std::to_string(t) + "." + std::to_string(l);
      EXPECT_TRUE(torch::equal(ct.at(k), c2.at(k))) << k;
    }
  }
  std::filesystem::remove_all(dir);
}

namespace {

std::string small_split(const std::string& kind, const std::string& strategy, std::int64_t every) {
  return "[stream]\nkind = \"" + kind + "\"\ntasks = 3\ntrain_per_task = 600\ntest_per_task = 300\n"
         "[model]\nhidden = [64]\n[strategy]\n" + strategy +
         "[train]\nepochs = 2\nbatch_size = 32\nlr = 0.05\nseed = 3\n[eval]\nevery = " + std::to_string(every) +
         "\nsubset = 100\n[output]\nlog_every = 10\n";
}

std::vector<json> read_jsonl(const std::filesystem::path& p) {
  std::vector<json> rows;
  for (const auto& line : sl::read_lines(p))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

}  // namespace

TEST(ClExperiment, RunDirectoryHoldsConsistentOutputs) {
  const auto dir = sl::testing::temp_dir("clrun");
  ClExperiment e(sl::Config::from_string(small_split("split-class", "name = \"er\"\nmemory = 200\n", 5)));
  const auto r = e.run(dir, false);
  for (const char* f : {"config.toml", "metrics.jsonl", "accuracy_matrix.csv", "summary.json", "accuracy_curves.svg", "checkpoint.json"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  bool has_events = false;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && f.file_size() > 100) has_events = true;
  EXPECT_TRUE(has_events);

  // summary.json's metrics recomputed by hand from its own accuracy matrix (3 tasks).
  const auto s = json::parse(sl::read_file_text(dir / "summary.json"));
  const auto R = s.at("accuracy_matrix").get<std::vector<std::vector<double>>>();
  const auto b = s.at("init_accuracy").get<std::vector<double>>();
  ASSERT_EQ(R.size(), 3u);
  EXPECT_EQ(R, r.accuracy);
  EXPECT_NEAR(s["metrics"]["ACC"].get<double>(), (R[2][0] + R[2][1] + R[2][2]) / 3, 1e-12);
  EXPECT_NEAR(s["metrics"]["BWT"].get<double>(), ((R[2][0] - R[0][0]) + (R[2][1] - R[1][1])) / 2, 1e-12);
  EXPECT_NEAR(s["metrics"]["FWT"].get<double>(), ((R[0][1] - b[1]) + (R[1][2] - b[2])) / 2, 1e-12);
  // The accuracies are fractions of 300 test images.
  for (const auto& row : R)
    for (double a : row) EXPECT_NEAR(a * 300, std::round(a * 300), 1e-6);

  // metrics.jsonl: a tracking row before the first update and then every 5 iterations; seen tasks only.
  const auto rows = read_jsonl(dir / "metrics.jsonl");
  std::vector<json> tracks, ends;
  for (const auto& row : rows) {
    if (row["event"] == "track") tracks.push_back(row);
    if (row["event"] == "task_end") ends.push_back(row);
  }
  ASSERT_GE(tracks.size(), 2u);
  EXPECT_EQ(tracks[0]["iteration"].get<int>(), 0);
  EXPECT_EQ(tracks[1]["iteration"].get<int>(), 5);
  for (const auto& t : tracks) EXPECT_EQ(t["acc"].size(), t["task"].get<std::size_t>() + 1);
  ASSERT_EQ(ends.size(), 3u);
  // 600 samples, batch 32, 2 epochs: 19 · 2 = 38 iterations per task.
  EXPECT_EQ(ends[2]["iteration"].get<int>(), 3 * 38);
  EXPECT_EQ(s["iterations"].get<int>(), 3 * 38);
  // The CSV holds the same matrix.
  const auto lines = sl::read_lines(dir / "accuracy_matrix.csv");
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[0], "after_task,task_0,task_1,task_2");
  EXPECT_NEAR(std::stod(lines[3].substr(lines[3].rfind(',') + 1)), R[2][2], 1e-6);
  std::filesystem::remove_all(dir);
}

TEST(ClExperiment, SameSeedSameNumbersAndResumeContinuesExactly) {
  const auto text = small_split("split-class", "name = \"er\"\nmemory = 200\n", 7);
  const auto dir = sl::testing::temp_dir("clresume");
  ClExperiment e(sl::Config::from_string(text));
  const auto full = e.run(dir / "full", false);
  const auto again = e.run(dir / "again", false);
  EXPECT_EQ(full.accuracy, again.accuracy);
  // Killed after task 1, resumed: the memory, model, tracker and generators continue exactly.
  e.run(dir / "cut", false, {}, 1);
  EXPECT_EQ(json::parse(sl::read_file_text(dir / "cut" / "checkpoint.json"))["completed_tasks"].get<int>(), 1);
  const auto resumed = e.run(dir / "cut", true);
  EXPECT_EQ(resumed.accuracy, full.accuracy);
  const auto s_full = json::parse(sl::read_file_text(dir / "full" / "summary.json"));
  const auto s_cut = json::parse(sl::read_file_text(dir / "cut" / "summary.json"));
  EXPECT_EQ(s_full["continual"]["min_acc"], s_cut["continual"]["min_acc"]);
  EXPECT_EQ(s_full["continual"]["tracking_steps"], s_cut["continual"]["tracking_steps"]);
  // Starting over an existing run, or resuming with another configuration, is refused.
  sl::testing::expect_error<sl::UsageError>([&] { e.run(dir / "full", false); }, "--resume");
  auto cfg2 = sl::Config::from_string(text);
  cfg2.set("train.lr=0.01");
  ClExperiment e2(cfg2);
  sl::testing::expect_error<sl::ConfigError>([&] { e2.run(dir / "full", true); }, "different configuration");
  std::filesystem::remove_all(dir);
}

TEST(ClExperiment, TaskIncrementalHeadsForgetLessThanOneSharedHead) {
  // Fine-tuning: with one 10-way head (class-incremental) old classes are overwritten; with the
  // logits masked to each task's classes (multi-head) the old tasks stay far above chance.
  const auto ci = run_config(small_split("split-class", "name = \"finetune\"\n", 0), "ci");
  const auto ti = run_config(small_split("split-task", "name = \"finetune\"\n", 0), "ti");
  EXPECT_LT(ci.accuracy[2][0], 0.2);
  EXPECT_GT(ti.accuracy[2][0], 0.7);
}

TEST(ClExperiment, BadConfigurationsNameTheKey) {
  using sl::testing::expect_error;
  auto make = [](const std::string& text) { ClExperiment e(sl::Config::from_string(text, "bad.toml")); };
  expect_error<sl::ConfigError>([&] { make("[train]\nlearning_rate = 0.1\n"); }, "learning_rate");
  expect_error<sl::ConfigError>([&] { make("[train]\nlr = -1\n"); }, "train.lr");
  expect_error<sl::ConfigError>([&] { make("[strategy]\nname = \"ewcc\"\n"); }, "unknown strategy");
  expect_error<sl::ConfigError>([&] { make("[strategy]\nname = \"er\"\nbuffer = \"fifo\"\n"); }, "strategy.buffer");
  expect_error<sl::ConfigError>([&] { make("[model]\nkind = \"resnet\"\n"); }, "model.kind");
  expect_error<sl::ConfigError>([&] { make("[stream]\ntasks = 7\n"); }, "stream.tasks");
  expect_error<sl::ConfigError>([&] { make("[trian]\nlr = 0.1\n"); }, "trian");
  expect_error<sl::ConfigError>([&] { make("[output]\nsnapshot_every = -5\n"); }, "output.snapshot_every");
  expect_error<sl::ConfigError>([&] { make("[output]\nsnapshot_every = \"often\"\n"); }, "snapshot_every");
  expect_error<sl::ConfigError>([&] { make("[output]\nsnapshots = 5\n"); }, "snapshots");
  // An unknown stream kind is a configuration error naming the key and listing the kinds.
  expect_error<sl::ConfigError>([&] { make("[stream]\nkind = \"split\"\n"); }, "stream.kind");
  expect_error<sl::ConfigError>([&] { make("[stream]\nkind = \"split\"\n"); }, "\"split-class\"");
  expect_error<sl::ConfigError>([&] { make("[train]\nlr = nan\n"); }, "train.lr: must be a finite number");
  expect_error<sl::ConfigError>([&] { make("[strategy]\nname = \"ewc\"\ngamma = 2\n"); }, "strategy.gamma: must be in [0.0, 1.0]");
  expect_error<sl::ConfigError>([&] { make("[stream]\nlabel_noise_rate = 1.0\n"); }, "stream.label_noise_rate");
  expect_error<sl::ConfigError>([&] { make("[stream]\nlabel_noise = \"pairwise\"\n"); }, "stream.label_noise");
}

// Label noise in a stream (docs/robust.md): each task's training labels are corrupted among the
// task's own two labels at the configured rate, and the run reports, per task, how many corrupted
// samples it fits. With logits masked to the task's two classes every prediction on a corrupted
// sample is either its wrong label or its clean one, so memorised + corrected = 1 exactly.
TEST(ClExperiment, LabelNoiseCorruptsTheRateAndTheRunReportsMemorisation) {
  const auto dir = sl::testing::temp_dir("cl_noise");
  auto text = small_split("split-task", "name = \"finetune\"\n", 0);
  text.replace(text.find("[stream]\n"), 9, "[stream]\nlabel_noise = \"symmetric\"\nlabel_noise_rate = 0.3\nlabel_noise_seed = 4\n");
  ClExperiment e(sl::Config::from_string(text, "noise.toml"));
  e.run(dir / "run", false);
  const auto s = json::parse(sl::read_file_text(dir / "run" / "summary.json"));
  const auto& per = s.at("label_noise").at("per_task");
  ASSERT_EQ(per.size(), s.at("tasks").get<std::size_t>());
  const auto loaded = sl::experiments::load_cl_run(dir / "run");
  for (std::size_t t = 0; t < per.size(); ++t) {
    const auto n = loaded.tasks[t].train.size();
    EXPECT_EQ(per[t].at("corrupted").get<std::int64_t>(), static_cast<std::int64_t>(std::llround(0.3 * n))) << t;
    const double mem = per[t].at("memorised").get<double>(), cor = per[t].at("corrected").get<double>();
    EXPECT_NEAR(mem + cor, 1.0, 1e-12) << t;
    EXPECT_GE(mem, 0.0);
  }
  // The last task's share, recomputed from the loaded final model over all its training samples:
  // the predictions on the corrupted ones that equal their (noisy) labels.
  {
    torch::NoGradGuard g;
    const auto last = static_cast<std::int64_t>(per.size()) - 1;
    const auto& tr = loaded.tasks[static_cast<std::size_t>(last)];
    ASSERT_TRUE(tr.train_clean_labels.defined());
    const auto bad = tr.train.labels.ne(tr.train_clean_labels);
    const auto pred = loaded.logits(tr.train.images, last).argmax(1);
    const double want = pred.masked_select(bad).eq(tr.train.labels.masked_select(bad)).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(per[static_cast<std::size_t>(last)].at("memorised").get<double>(), want, 1e-12);
  }
  std::filesystem::remove_all(dir);
}

TEST(ClExperiment, TaskCountDefaultsFollowTheStreamKindAndAreWrittenResolved) {
  // The kinds' defaults (docs/continual.md): split 5, permuted 10, rotated 20; an explicit count stays.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"kind = \"split-class\"\n", "tasks = 5\n"},
      {"kind = \"permuted\"\n", "tasks = 10\n"},
      {"kind = \"rotated\"\n", "tasks = 20\n"},
      {"kind = \"permuted\"\ntasks = 3\n", "tasks = 3\n"},
  };
  for (const auto& [stream, expected] : cases) {
    const ClExperiment e(sl::Config::from_string("[stream]\n" + stream));
    EXPECT_NE(e.resolved_config().find(expected), std::string::npos) << stream << e.resolved_config();
  }
}

TEST(ClExperiment, SmallCnnLearnsTaskIncrementalSplit) {
  const auto r = run_config(
      "[stream]\nkind = \"split-task\"\ntasks = 2\ntrain_per_task = 600\ntest_per_task = 300\n"
      "[model]\nkind = \"cnn\"\nchannels = [8, 16]\nfc = 32\n[strategy]\nname = \"finetune\"\n"
      "[train]\nepochs = 2\nbatch_size = 32\nlr = 0.001\noptimizer = \"adam\"\n[output]\ntensorboard = false\nfigures = false\n",
      "cnn");
  EXPECT_GT(r.accuracy[0][0], 0.9);
  EXPECT_GT(r.accuracy[1][1], 0.85);
}

TEST(ClExperiment, LoadRunGivesTheTrainedModelAndStream) {
  const auto dir = sl::testing::temp_dir("clload");
  ClExperiment e(sl::Config::from_string(small_split("split-task", "name = \"finetune\"\n", 0)));
  const auto r = e.run(dir, false);
  const auto v = sl::experiments::load_cl_run(dir);
  EXPECT_EQ(v.completed_tasks, 3);
  ASSERT_EQ(v.tasks.size(), 3u);
  EXPECT_TRUE(v.task_incremental);
  // The loaded model reproduces the final accuracy of every task (same stream, same weights).
  for (std::int64_t j = 0; j < 3; ++j) {
    torch::NoGradGuard g;
    const auto& t = v.tasks[static_cast<std::size_t>(j)].test;
    const double acc = (v.logits(t.images, j).argmax(1) == t.labels).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(acc, r.accuracy[2][static_cast<std::size_t>(j)], 1e-12) << j;
  }
  sl::testing::expect_error<sl::IoError>([&] { sl::experiments::load_cl_run(dir / "nope"); }, "config.toml");
  std::filesystem::remove_all(dir);
}

TEST(ClExperiment, DiagnosticsTableTracksSharpnessOfTheTrainingLoss) {
  // Softmax regression (no hidden layer) on one split task, 576 images, 18 iterations; λ_max every
  // 6 iterations on all 576 images, so the last row (iteration 18) is the Hessian of the full
  // training loss at the checkpoint's weights.
  const auto dir = sl::testing::temp_dir("cldiag");
  const std::string text =
      "[stream]\nkind = \"split-class\"\ntasks = 1\ntrain_per_task = 576\ntest_per_task = 100\n[model]\nhidden = []\n"
      "[strategy]\nname = \"finetune\"\n[train]\nepochs = 1\nbatch_size = 32\nlr = 0.05\n"
      "[diagnostics]\nevery = 6\nsamples = 576\nlanczos_steps = 25\ntrace_probes = 20\n";
  ClExperiment e(sl::Config::from_string(text));
  e.run(dir, false);
  std::vector<json> rows;
  for (const auto& r : read_jsonl(dir / "metrics.jsonl"))
    if (r["event"] == "diagnostics") rows.push_back(r);
  ASSERT_EQ(rows.size(), 4u);  // iterations 0, 6, 12, 18
  EXPECT_EQ(rows[3]["iteration"].get<int>(), 18);
  EXPECT_DOUBLE_EQ(rows[0]["two_over_lr"].get<double>(), 40.0);
  EXPECT_TRUE(std::filesystem::exists(dir / "sharpness.svg"));
  const auto s = json::parse(sl::read_file_text(dir / "summary.json"));
  EXPECT_EQ(s["diagnostics"]["last"]["iteration"].get<int>(), 18);

  // Closed form, no autograd: H = (1/N) Σ_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ with x̃ = [x; 1]. Its
  // product with V = [W_v | b_v] (10 × 785) is (1/N) Σ_i (p_i ∘ z_i − p_i (p_iᵀ z_i)) x̃_iᵀ, z_i = V x̃_i.
  const auto v = sl::experiments::load_cl_run(dir);
  const auto& tr = v.tasks[0].train;
  const auto x = torch::cat({tr.images.flatten(1), torch::ones({tr.size(), 1})}, 1).to(torch::kFloat64);  // [N, 785]
  const auto w = torch::cat({v.model->weights()[0], v.model->weights()[1].unsqueeze(1)}, 1).to(torch::kFloat64);
  const auto p = torch::softmax(x.matmul(w.t()), 1);  // [N, 10]
  const auto n = static_cast<double>(tr.size());
  auto hv = [&](const torch::Tensor& V) {
    const auto z = x.matmul(V.t());
    const auto a = p * z - p * (p * z).sum(1, true);
    return a.t().matmul(x) / n;
  };
  torch::manual_seed(1);
  auto q = torch::randn({10, 785}, torch::kFloat64);
  double lam = 0;
  for (int it = 0; it < 500; ++it) {
    auto hq = hv(q);
    lam = (hq * q).sum().item<double>() / (q * q).sum().item<double>();
    q = hq / hq.norm();
  }
  EXPECT_NEAR(rows[3]["lambda_max"].get<double>(), lam, 1e-3 * lam);
  // Trace: Σ over classes and features of diag(H) = (1/N) Σ_i Σ_c p_ic (1 − p_ic) ‖x̃_i‖².
  const double trace = ((p * (1 - p)).sum(1) * x.pow(2).sum(1)).sum().item<double>() / n;
  EXPECT_NEAR(rows[3]["trace"].get<double>(), trace, 4 * rows[3]["trace_se"].get<double>() + 1e-9);
  std::filesystem::remove_all(dir);
}

namespace {

/// The model arrays of a checkpoint npz, flattened and concatenated in weights() order.
torch::Tensor checkpoint_params(const std::filesystem::path& file) {
  const auto t = sl::io::read_npz(file);
  std::vector<torch::Tensor> flat;
  for (std::size_t i = 0; t.count("model." + std::to_string(i)); ++i)
    flat.push_back(sl::data::to_tensor(t.at("model." + std::to_string(i))).flatten());
  return torch::cat(flat);
}

json snapshot_rows(const std::filesystem::path& run) {
  return json::parse(sl::read_file_text(run / "snapshots" / "index.json")).at("snapshots");
}

}  // namespace

TEST(ClExperiment, SnapshotsListTheTrajectoryAndSurviveResumeExactly) {
  // 38 iterations per task, a snapshot every 19: iterations 0, 19, 38 (task end, which replaces the
  // periodic one), 57, 76 (end), 95, 114 (end).
  const auto text = small_split("split-class", "name = \"er\"\nmemory = 200\n", 0) + "snapshot_every = 19\n";
  const auto dir = sl::testing::temp_dir("clsnap");
  ClExperiment e(sl::Config::from_string(text));
  EXPECT_NE(e.resolved_config().find("snapshot_every = 19"), std::string::npos);
  e.run(dir / "full", false);
  const auto full = sl::experiments::list_cl_snapshots(dir / "full");
  const std::vector<std::int64_t> iters{0, 19, 38, 57, 76, 95, 114}, tasks{0, 0, 0, 1, 1, 2, 2};
  const std::vector<bool> ends{false, false, true, false, true, false, true};
  ASSERT_EQ(full.size(), iters.size());
  for (std::size_t k = 0; k < full.size(); ++k) {
    EXPECT_EQ(full[k].iteration, iters[k]) << k;
    EXPECT_EQ(full[k].task, tasks[k]) << k;
    EXPECT_EQ(full[k].task_end, ends[k]) << k;
    EXPECT_TRUE(std::filesystem::exists(dir / "full" / "snapshots" / full[k].file)) << full[k].file;
  }
  // Every task's checkpoint is kept, and the task-end snapshots hold exactly its weights; the last
  // snapshot is the final model.
  for (std::int64_t i = 0; i < 3; ++i) {
    const auto ck = checkpoint_params(dir / "full" / ("checkpoint_task" + std::to_string(i) + ".npz"));
    const auto snap = sl::experiments::load_cl_snapshot(dir / "full", full[static_cast<std::size_t>(2 * i + 2)]);
    EXPECT_TRUE(torch::equal(ck, snap)) << "task " << i;
  }
  EXPECT_FALSE(torch::equal(sl::experiments::load_cl_snapshot(dir / "full", full[0]),
                            sl::experiments::load_cl_snapshot(dir / "full", full[1])));

  // Stopped after task 1, with a stray snapshot of the interrupted task 2 left behind (as after a
  // crash), then resumed: the same list and bit-identical files, nothing duplicated or lost.
  e.run(dir / "cut", false, {}, 2);
  EXPECT_EQ(sl::experiments::list_cl_snapshots(dir / "cut").size(), 5u);
  {
    auto idx = json::parse(sl::read_file_text(dir / "cut" / "snapshots" / "index.json"));
    std::filesystem::copy_file(dir / "cut" / "snapshots" / "iter_00000076.npz", dir / "cut" / "snapshots" / "iter_00000090.npz");
    idx["snapshots"].push_back({{"iteration", 90}, {"task", 2}, {"task_end", false}, {"file", "iter_00000090.npz"}});
    sl::write_file_atomic(dir / "cut" / "snapshots" / "index.json", idx.dump());
  }
  e.run(dir / "cut", true);
  EXPECT_EQ(snapshot_rows(dir / "cut"), snapshot_rows(dir / "full"));
  EXPECT_FALSE(std::filesystem::exists(dir / "cut" / "snapshots" / "iter_00000090.npz"));
  for (const auto& s : full)
    EXPECT_TRUE(torch::equal(sl::experiments::load_cl_snapshot(dir / "cut", s), sl::experiments::load_cl_snapshot(dir / "full", s)))
        << s.file;

  // ClRunView::task_weights: the kept checkpoints, or the task-end snapshot when the checkpoint is
  // gone (runs made before every checkpoint was kept).
  const auto v = sl::experiments::load_cl_run(dir / "full");
  auto flat = [](const std::vector<torch::Tensor>& w) {
    std::vector<torch::Tensor> f;
    for (const auto& t : w) f.push_back(t.detach().flatten());
    return torch::cat(f);
  };
  EXPECT_TRUE(torch::equal(flat(v.task_weights(0)), checkpoint_params(dir / "full" / "checkpoint_task0.npz")));
  EXPECT_TRUE(torch::equal(flat(v.task_weights(2)), flat(v.model->weights())));
  std::filesystem::remove(dir / "full" / "checkpoint_task0.npz");
  EXPECT_TRUE(torch::equal(flat(v.task_weights(0)), sl::experiments::load_cl_snapshot(dir / "full", full[2])));
  std::filesystem::remove_all(dir / "full" / "snapshots");
  sl::testing::expect_error<sl::IoError>([&] { v.task_weights(0); }, "checkpoint_task0.npz");
  sl::testing::expect_error<sl::UsageError>([&] { v.task_weights(3); }, "completed 3");
  EXPECT_TRUE(sl::experiments::list_cl_snapshots(dir / "full").empty());

  // A fresh run into a used folder clears stale snapshots; snapshot_every = 0 writes none.
  ClExperiment off(sl::Config::from_string(small_split("split-class", "name = \"finetune\"\n", 0)));
  std::filesystem::create_directories(dir / "off" / "snapshots");
  sl::write_file_atomic(dir / "off" / "snapshots" / "index.json", "{}");
  off.run(dir / "off", false, {}, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "off" / "snapshots"));
  std::filesystem::remove_all(dir);
}

// train.engine = "auto" trains plain strategies (finetune, joint) with models::MlpLossGrad and
// optim::SgdMomentum instead of autograd and torch::optim::SGD: the same numbers, bit for bit —
// task-incremental masks, momentum, a last batch smaller than the others and continual evaluation
// included. (The autograd path itself changed too in issue 17 — gradients set to none, the one-pass
// SGD — and was checked against the previous build on every configs/cl/split_fmnist_*.toml:
// identical metrics.jsonl, summaries and checkpoints; BENCHMARKS.md.)
TEST(ClExperiment, PlainStepsWithoutAutogradGiveTheSameNumbers) {
  const auto dir = sl::testing::temp_dir("clengine");
  for (const auto& [kind, strategy] : {std::pair<std::string, std::string>{"split-task", "name = \"finetune\"\n"},
                                       std::pair<std::string, std::string>{"split-class", "name = \"joint\"\n"}}) {
    std::map<std::string, sl::experiments::ClResult> r;
    for (const std::string engine : {"auto", "autograd"}) {
      auto cfg = sl::Config::from_string(small_split(kind, strategy, 5));
      cfg.set("train.engine=\"" + engine + "\"");
      cfg.set("train.momentum=0.9");
      cfg.set("train.batch_size=50");
      cfg.set("stream.train_per_task=610");  // 12 batches of 50 and one of 10 (joint: 24 and one of 20, ...)
      ClExperiment e(cfg);
      r[engine] = e.run(dir / (kind + engine), false);
    }
    EXPECT_EQ(r["auto"].accuracy, r["autograd"].accuracy) << kind;
    for (int t = 0; t < 3; ++t) {
      const auto f = "checkpoint_task" + std::to_string(t) + ".npz";
      EXPECT_TRUE(torch::equal(checkpoint_params(dir / (kind + "auto") / f), checkpoint_params(dir / (kind + "autograd") / f)))
          << kind << " " << f;
    }
    const auto m_auto = read_jsonl(dir / (kind + "auto") / "metrics.jsonl"), m_ref = read_jsonl(dir / (kind + "autograd") / "metrics.jsonl");
    ASSERT_EQ(m_auto.size(), m_ref.size());
    for (std::size_t i = 0; i < m_auto.size(); ++i) {
      if (m_auto[i]["event"] != "task_end") {
        EXPECT_EQ(m_auto[i], m_ref[i]) << kind << " row " << i;
      }
    }
  }
  std::filesystem::remove_all(dir);
}
