// Pre-trained backbones and adapters in `cl run` (experiments/cl_backbone.h, [backbone],
// [pretrain]): pre-training on the classes a split stream leaves out, LoRA adapters on the frozen
// backbone learning the stream's tasks with the backbone left bit for bit, resume, and the errors
// for a mismatched backbone file, an unsupported strategy and a stream that leaves nothing out.
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/experiments/cl_backbone.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::experiments::ClExperiment;
using json = nlohmann::json;

namespace {

// Split Fashion-MNIST, 3 tasks (classes 0..5), classes 6..9 left out for pre-training.
std::string config(const std::string& file, const std::string& backbone, const std::string& hidden = "[64]",
                   const std::string& strategy = "finetune") {
  return "[stream]\nkind = \"split-class\"\ntasks = 3\ntrain_per_task = 1000\ntest_per_task = 400\n"
         "[model]\nkind = \"mlp\"\nhidden = " + hidden + "\n"
         "[strategy]\nname = \"" + strategy + "\"\n"
         "[train]\nepochs = 2\nbatch_size = 32\nlr = 0.01\noptimizer = \"adam\"\nseed = 0\n"
         "[output]\ntensorboard = false\nfigures = false\n"
         "[pretrain]\nepochs = 1\nsamples = 6000\nlr = 0.05\n"
         "[backbone]\nfile = \"" + file + "\"\n" + backbone;
}

std::map<std::string, torch::Tensor> read_npz(const std::filesystem::path& f) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : sl::io::read_npz(f)) out[k] = sl::data::to_tensor(v);
  return out;
}

}  // namespace

TEST(ClBackbone, AdaptersOnAFrozenPretrainedBackboneLearnAndLeaveItUnchanged) {
  const auto dir = sl::testing::temp_dir("cl_backbone");
  const auto file = (dir / "backbone.npz").string();
  const auto pre = ClExperiment(sl::Config::from_string(config(file, ""), "pre")).pretrain("");
  EXPECT_EQ(pre.classes, (std::vector<std::int64_t>{6, 7, 8, 9}));
  EXPECT_EQ(pre.train_samples, 6000);
  EXPECT_GT(pre.test_accuracy, 0.6);  // 4 held-out classes: chance 0.25
  ASSERT_TRUE(std::filesystem::exists(file + ".json"));
  const auto bb = read_npz(file);

  const auto lora = config(file, "freeze = true\nadapter = \"lora\"\nrank = 4\n");
  const auto r = ClExperiment(sl::Config::from_string(lora, "lora")).run(dir / "run", false);
  ASSERT_EQ(r.accuracy.size(), 3u);
  for (std::size_t t = 0; t < 3; ++t) EXPECT_GT(r.accuracy[t][t], 0.75) << "task " << t;  // its two classes: chance 0.5
  // The checkpoint after the last task: the backbone's tensors are the file's, bit for bit.
  const auto ck = read_npz(dir / "run" / "checkpoint_task2.npz");
  const std::vector<std::string> names{"layer_0.weight", "layer_0.bias", "out.weight", "out.bias"};
  for (std::size_t k = 0; k < 2; ++k) EXPECT_TRUE(torch::equal(ck.at("backbone." + std::to_string(k)), bb.at(names[k]))) << names[k];
  EXPECT_FALSE(torch::equal(ck.at("backbone.2"), bb.at("out.weight")));  // the head trains
  // Trainable tensors: LoRA A, B of layer_0, then out.weight and out.bias.
  EXPECT_EQ(ck.at("model.0").sizes().vec(), (std::vector<std::int64_t>{4, 784}));
  EXPECT_EQ(ck.at("model.1").sizes().vec(), (std::vector<std::int64_t>{64, 4}));
  EXPECT_GT(ck.at("model.1").abs().max().item<double>(), 0.0);  // B moved away from zero
  EXPECT_FALSE(ck.count("model.4"));
  const auto summary = json::parse(sl::read_file_text(dir / "run" / "summary.json"));
  EXPECT_EQ(summary.at("backbone").at("trainable_params").get<std::int64_t>(), 4 * 784 + 64 * 4 + 10 * 64 + 10);

  // Stopped after one task and resumed: the same numbers as the uninterrupted run.
  ClExperiment again(sl::Config::from_string(lora, "lora"));
  again.run(dir / "run2", false, {}, 1);
  const auto resumed = again.run(dir / "run2", true);
  EXPECT_EQ(resumed.accuracy, r.accuracy);

  // Bottleneck adapters train too.
  const auto bot = ClExperiment(sl::Config::from_string(config(file, "freeze = true\nadapter = \"bottleneck\"\nrank = 8\n"), "bot"))
                       .run(dir / "run3", false);
  EXPECT_GT(bot.accuracy[2][2], 0.75);
  std::filesystem::remove_all(dir);
}

// A pre-trained backbone fine-tuned as a whole (freeze = false, no adapter) is the model itself,
// so the strategies that read its layers (GPM, CoSO, adaptive SVD) run on it: every one starts
// from the file's weights and learns every task; adaptive SVD with `pretrained` keeps the
// backbone's top singular directions of each weight through task 0.
TEST(ClBackbone, SubspaceStrategiesOnAFineTunedPretrainedBackboneLearn) {
  const auto dir = sl::testing::temp_dir("cl_backbone_subspace");
  const auto file = (dir / "backbone.npz").string();
  ClExperiment(sl::Config::from_string(config(file, ""), "pre")).pretrain("");
  const auto bb = read_npz(file);
  for (const std::string s : {"gpm", "coso", "adaptive_svd", "ewc"}) {
    auto cfg = config(file, "freeze = false\n", "[64]", s);
    if (s == "adaptive_svd") cfg.replace(cfg.find("[train]"), 7, "rank_step = 0.25\npretrained = true\n[train]");
    const auto run = dir / ("run_" + s);
    const auto r = ClExperiment(sl::Config::from_string(cfg, s)).run(run, false);
    ASSERT_EQ(r.accuracy.size(), 3u) << s;
    // It starts as the backbone, whose head knows only classes 6..9: accuracy 0 on every task.
    for (double b : r.init_accuracy) EXPECT_LT(b, 0.05) << s;
    // Its two classes: chance 0.5, 400 test images (standard error 0.025); GPM's protected input
    // space leaves the 64-unit layer little room by task 2 (0.69 there).
    for (std::size_t t = 0; t < 3; ++t) EXPECT_GT(r.accuracy[t][t], 0.6) << s << " task " << t;
    // No adapter: the checkpoint holds the whole network (layout order), moved away from the file.
    const auto ck = read_npz(run / "checkpoint_task0.npz");
    ASSERT_EQ(ck.at("model.0").sizes(), bb.at("layer_0.weight").sizes()) << s;
    EXPECT_FALSE(ck.count("backbone.0")) << s;
    const auto w0 = bb.at("layer_0.weight").to(torch::kFloat64), w1 = ck.at("model.0").to(torch::kFloat64);
    EXPECT_GT((w1 - w0).abs().max().item<double>(), 1e-3) << s;
    if (s == "adaptive_svd") {
      // k = round(0.25 · 64) = 16 top triplets of the backbone's [64, 784] weight, from an
      // independent SVD of the file's tensor: U_hᵀ ΔW = 0 and ΔW V_h = 0 after task 0.
      const auto svd = torch::linalg_svd(w0, false);
      const auto u = std::get<0>(svd).narrow(1, 0, 16), v = std::get<2>(svd).narrow(0, 0, 16).t();
      EXPECT_LT(u.t().matmul(w1 - w0).abs().max().item<double>(), 1e-4);
      EXPECT_LT((w1 - w0).matmul(v).abs().max().item<double>(), 1e-4);
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(ClBackbone, BadBackbonesAndStreamsNameTheFileOrKey) {
  const auto dir = sl::testing::temp_dir("cl_backbone_bad");
  const auto file = (dir / "bb.npz").string();
  ClExperiment(sl::Config::from_string(config(file, "") + "", "pre")).pretrain("");
  // A model of another width than the backbone's.
  try {
    ClExperiment(sl::Config::from_string(config(file, "", "[32]"), "mismatch")).run(dir / "run", false);
    ADD_FAILURE() << "a mismatched backbone was loaded";
  } catch (const sl::DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(file), std::string::npos) << m;
    EXPECT_NE(m.find("layer_0.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("[64, 784]"), std::string::npos) << m;
  }
  // Another depth: the file lacks a tensor.
  EXPECT_THROW(ClExperiment(sl::Config::from_string(config(file, "", "[64, 64]"), "deeper")).run(dir / "run_d", false), sl::DataError);
  EXPECT_THROW(ClExperiment(sl::Config::from_string(config((dir / "missing.npz").string(), ""), "missing")).run(dir / "run_m", false),
               sl::IoError);
  // A strategy that reads the model's own layers.
  try {
    ClExperiment(sl::Config::from_string(config(file, "adapter = \"lora\"\n", "[64]", "gpm"), "gpm")).run(dir / "run_g", false);
    ADD_FAILURE() << "gpm with adapters accepted";
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("strategy.name"), std::string::npos) << e.what();
  }
  // A split stream of 5 tasks leaves no class out; a rotated one without train_per_task no image.
  auto five = config(file, "");
  five.replace(five.find("tasks = 3"), 9, "tasks = 5");
  try {
    ClExperiment(sl::Config::from_string(five, "five")).pretrain(dir / "x.npz");
    ADD_FAILURE();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stream.tasks"), std::string::npos) << e.what();
  }
  try {
    ClExperiment(sl::Config::from_string("[stream]\nkind = \"rotated\"\n[strategy]\nname = \"finetune\"\n", "rot")).pretrain(dir / "y.npz");
    ADD_FAILURE();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stream.train_per_task"), std::string::npos) << e.what();
  }
  auto six = config(file, "");
  six.replace(six.find("tasks = 3"), 9, "tasks = 6");
  try {
    ClExperiment(sl::Config::from_string(six, "six"));
    ADD_FAILURE();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stream.tasks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ClExperiment(sl::Config::from_string(config(file, "adapter = \"prefix\"\n"), "kind")), sl::ConfigError);
  std::filesystem::remove_all(dir);
}

// Test sets beyond the cache (STABLELEARN_CL_TEST_CACHE_MB, 1 GiB by default) are computed again
// at every evaluation: the same numbers as the cached run, continual evaluation included.
TEST(ClLazyStream, RecomputedTestSetsGiveTheCachedRunsNumbers) {
  const std::string cfg =
      "[stream]\nkind = \"permuted\"\ntasks = 3\ntrain_per_task = 600\ntest_per_task = 300\n"
      "[model]\nhidden = [32]\n[strategy]\nname = \"er\"\nmemory = 100\n"
      "[train]\nbatch_size = 32\nlr = 0.05\n[eval]\nevery = 5\nsubset = 100\n"
      "[output]\ntensorboard = false\nfigures = false\n";
  const auto dir = sl::testing::temp_dir("cl_lazy");
  const auto cached = ClExperiment(sl::Config::from_string(cfg, "cached")).run(dir / "a", false);
  ::setenv("STABLELEARN_CL_TEST_CACHE_MB", "0", 1);
  const auto recomputed = ClExperiment(sl::Config::from_string(cfg, "recomputed")).run(dir / "b", false);
  ::unsetenv("STABLELEARN_CL_TEST_CACHE_MB");
  EXPECT_EQ(cached.accuracy, recomputed.accuracy);
  EXPECT_EQ(cached.init_accuracy, recomputed.init_accuracy);
  // Every row of metrics.jsonl (training losses, tracking steps, task ends) but the timings.
  auto rows = [](const std::filesystem::path& f) {
    std::vector<json> out;
    std::istringstream in(sl::read_file_text(f));
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line);
      j.erase("seconds");
      out.push_back(j);
    }
    return out;
  };
  const auto ra = rows(dir / "a" / "metrics.jsonl"), rb = rows(dir / "b" / "metrics.jsonl");
  EXPECT_GT(ra.size(), 10u);
  EXPECT_EQ(ra, rb);
  std::filesystem::remove_all(dir);
}

// [output] report_every = K: summary.json is rewritten every K tasks and after the run's last task
// (also the last of --stop-after); the checkpoint (resume) is written after every task.
TEST(ClLazyStream, ReportEveryKeepsTheLastTaskAndResume) {
  const std::string cfg =
      "[stream]\nkind = \"rotated\"\ntasks = 5\ntrain_per_task = 200\ntest_per_task = 100\n"
      "[model]\nhidden = [16]\n[strategy]\nname = \"finetune\"\n[train]\nbatch_size = 50\n"
      "[output]\ntensorboard = false\nfigures = false\nreport_every = 3\n";
  const auto dir = sl::testing::temp_dir("cl_report_every");
  auto completed = [&](const char* run) {
    return json::parse(sl::read_file_text(dir / run / "summary.json")).at("completed_tasks").get<int>();
  };
  ClExperiment e(sl::Config::from_string(cfg, "k3"));
  e.run(dir / "a", false, {}, 2);
  EXPECT_EQ(completed("a"), 2);  // the last task of --stop-after 2
  const auto resumed = e.run(dir / "a", true);
  EXPECT_EQ(completed("a"), 5);
  const auto whole = ClExperiment(sl::Config::from_string(cfg, "k3")).run(dir / "b", false);
  EXPECT_EQ(completed("b"), 5);
  EXPECT_EQ(resumed.accuracy, whole.accuracy);
  std::filesystem::remove_all(dir);
}
