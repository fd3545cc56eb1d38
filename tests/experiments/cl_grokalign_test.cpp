// `cl run` with the GrokAlign regulariser ([train] grokalign = λ), the centroid alignment recorded by
// [diagnostics], and --resume of runs whose config.toml predates keys with defaults. Tiny synthetic
// Fashion-MNIST-shaped data (tests/cli/cli_run_testing.h), so every run takes well under a second.
#include <fstream>
#include <functional>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli/cli_run_testing.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/continual/strategy.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using sl::experiments::ClExperiment;
using json = nlohmann::json;

namespace {

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> rows;
  for (const auto& line : sl::read_lines(p))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::vector<json> rows_of(const fs::path& run, const std::string& event) {
  std::vector<json> out;
  for (auto r : read_jsonl(run / "metrics.jsonl"))
    if (r["event"] == event) {
      r.erase("seconds");
      out.push_back(r);
    }
  return out;
}

/// The model arrays of a checkpoint npz, in weights() order.
std::vector<torch::Tensor> checkpoint_weights(const fs::path& file) {
  const auto t = sl::io::read_npz(file);
  std::vector<torch::Tensor> out;
  for (std::size_t i = 0; t.count("model." + std::to_string(i)); ++i) out.push_back(sl::data::to_tensor(t.at("model." + std::to_string(i))));
  return out;
}

class ClGrokAlign : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(sl::testing::test_threads());
    dir_ = new fs::path(sl::testing::temp_dir("cl_grokalign"));
    data_ = new fs::path(sl::testing::write_tiny_fmnist(*dir_));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete data_;
  }
  /// tiny_cl_config with extra lines appended to its [train] table.
  static std::string config(const std::string& train, int seed = 0, const std::string& output = "") {
    auto text = sl::testing::tiny_cl_config(*data_, seed, output);
    const auto at = text.find("[output]");
    return text.substr(0, at) + train + text.substr(at);
  }
  static fs::path* dir_;
  static fs::path* data_;
};

fs::path* ClGrokAlign::dir_ = nullptr;
fs::path* ClGrokAlign::data_ = nullptr;

}  // namespace

TEST_F(ClGrokAlign, KeysAreResolvedAndBadValuesNameTheKey) {
  using sl::testing::expect_error;
  const auto resolved = ClExperiment(sl::Config::from_string(config(""))).resolved_config();
  EXPECT_NE(resolved.find("grokalign = 0.0"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("grokalign_projections = 1"), std::string::npos) << resolved;
  const auto set = ClExperiment(sl::Config::from_string(config("grokalign = 0.001\ngrokalign_projections = 4\n"))).resolved_config();
  EXPECT_NE(set.find("grokalign = 0.001"), std::string::npos) << set;
  EXPECT_NE(set.find("grokalign_projections = 4"), std::string::npos) << set;
  // The resolved form round-trips.
  EXPECT_EQ(ClExperiment(sl::Config::from_string(set)).resolved_config(), set);
  auto make = [&](const std::string& train) { ClExperiment e(sl::Config::from_string(config(train), "bad.toml")); };
  expect_error<sl::ConfigError>([&] { make("grokalign = -0.1\n"); }, "train.grokalign");
  expect_error<sl::ConfigError>([&] { make("grokalign = nan\n"); }, "train.grokalign");
  expect_error<sl::ConfigError>([&] { make("grokalign = \"strong\"\n"); }, "grokalign");
  expect_error<sl::ConfigError>([&] { make("grokalign_projections = 0\n"); }, "train.grokalign_projections");
  expect_error<sl::ConfigError>([&] { make("grokalign_projections = 1.5\n"); }, "grokalign_projections");
  expect_error<sl::ConfigError>([&] { make("grok_align = 0.1\n"); }, "grok_align");
}

// One SGD step of a linear model (hidden = []): the step is −η(∇CE + λ∇R) with R the library's
// GrokAlign on the run's seed. For a linear model J(x) = W (or its task's rows), so R depends only
// on W and the projections, not on which image meets which projection, and the reference needs
// neither the run's batch order nor its images' pairing. Class- and task-incremental (head columns).
TEST_F(ClGrokAlign, OneStepIsTheTaskGradientPlusLambdaTimesTheRegulariserGradient) {
  namespace D = sl::diagnostics;
  const double lr = 0.1, lambda = 0.5;
  const std::int64_t P = 3;
  for (const std::string kind : {"split-class", "split-task"}) {
    SCOPED_TRACE(kind);
    const auto run = *dir_ / ("step_" + kind);
    const std::string text = "[stream]\nkind = \"" + kind + "\"\ntasks = 1\ntrain_per_task = 32\ndata_dir = \"" +
                             data_->string() +
                             "\"\n[model]\nhidden = []\n[strategy]\nname = \"finetune\"\n[train]\nepochs = 1\nbatch_size = 64\n"
                             "lr = 0.1\nseed = 5\ngrokalign = 0.5\ngrokalign_projections = 3\n"
                             "[output]\ntensorboard = false\nfigures = false\nlog_every = 1\nsnapshot_every = 1\n";
    ClExperiment(sl::Config::from_string(text)).run(run, false);
    const auto view = sl::experiments::load_cl_run(run);
    const auto snaps = sl::experiments::list_cl_snapshots(run);
    ASSERT_EQ(snaps.size(), 2u);  // iteration 0 and the end of the only step
    const auto w0 = view.model->layout().split(sl::experiments::load_cl_snapshot(run, snaps[0]));
    const auto w1 = checkpoint_weights(run / "checkpoint_task0.npz");
    ASSERT_EQ(w1.size(), w0.size());

    std::vector<torch::Tensor> w;
    for (const auto& t : w0) w.push_back(t.clone().requires_grad_(true));
    const auto& train = view.tasks[0].train;
    ASSERT_EQ(train.size(), 32);
    const auto& classes = view.tasks[0].classes;
    auto head = [&](const torch::Tensor& z) {
      return kind == "split-task" ? z.index_select(1, torch::tensor(classes, torch::kInt64)) : z;
    };
    auto logits = view.model->forward(train.images, w);
    if (kind == "split-task") {
      auto allowed = torch::zeros({10}, torch::kBool);
      for (auto c : classes) allowed[c] = true;
      logits = sl::continual::mask_logits(logits, allowed);
    }
    const auto ce = sl::continual::cross_entropy(logits, train.labels);
    D::GrokAlign reg([&](const torch::Tensor& x) { return head(view.model->forward(x, w)); },
                     D::GrokAlignOptions().num_projections(P).seed(sl::experiments::cl_grokalign_seed(5, 0)));
    const auto r = reg(train.images);
    const auto g_ce = torch::autograd::grad({ce}, w, {}, /*retain_graph=*/true);
    auto g_r = torch::autograd::grad({r}, w, {}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    double step_err = 0, reg_step = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (!g_r[i].defined()) g_r[i] = torch::zeros_like(w0[i]);  // the bias: J(x) = W does not depend on it
      const auto expected = w0[i] - lr * (g_ce[i] + lambda * g_r[i]);
      step_err = std::max(step_err, (w1[i] - expected).abs().max().item<double>());
      reg_step = std::max(reg_step, (lr * lambda * g_r[i]).abs().max().item<double>());
    }
    EXPECT_LT(step_err, 2e-6);
    EXPECT_GT(reg_step, 1e-4) << step_err;  // the regulariser's part of the step is far above the tolerance
    // metrics.jsonl: the logged loss is CE + λR at w0, and R itself.
    const auto rows = rows_of(run, "train");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_NEAR(rows[0]["grokalign"].get<double>(), r.item<double>(), 1e-5 * r.item<double>());
    EXPECT_NEAR(rows[0]["loss"].get<double>(), ce.item<double>() + lambda * r.item<double>(), 1e-5);
  }
}

// λ > 0 through a ReLU MLP over 3 tasks: the weights differ from λ = 0, a run stopped after task 0
// and resumed gives bit-identical weights, losses and diagnostics, and the diagnostics' centroid
// alignment is the library's on the images it was measured on.
TEST_F(ClGrokAlign, ResumeIsExactAndDiagnosticsRecordTheCentroidAlignment) {
  namespace D = sl::diagnostics;
  const auto text = config("grokalign = 0.01\ngrokalign_projections = 2\n", 3, "log_every = 5\n") +
                    "[diagnostics]\nevery = 5\nsamples = 1000\nlanczos_steps = 4\n";
  const auto off =
      config("grokalign = 0.0\n", 3, "log_every = 5\n") + "[diagnostics]\nevery = 5\nsamples = 1000\nlanczos_steps = 4\n";
  ClExperiment e(sl::Config::from_string(text));
  const auto full = e.run(*dir_ / "full", false);
  e.run(*dir_ / "cut", false, {}, 1);
  const auto resumed = e.run(*dir_ / "cut", true);
  EXPECT_EQ(resumed.accuracy, full.accuracy);
  for (int t = 0; t < 3; ++t) {
    const auto a = checkpoint_weights(*dir_ / "full" / ("checkpoint_task" + std::to_string(t) + ".npz"));
    const auto b = checkpoint_weights(*dir_ / "cut" / ("checkpoint_task" + std::to_string(t) + ".npz"));
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "task " << t << " tensor " << i;
  }
  const auto train_full = rows_of(*dir_ / "full", "train"), train_cut = rows_of(*dir_ / "cut", "train");
  ASSERT_FALSE(train_full.empty());
  EXPECT_EQ(train_full, train_cut);
  for (const auto& r : train_full) EXPECT_GT(r["grokalign"].get<double>(), 0.0);
  const auto diag_full = rows_of(*dir_ / "full", "diagnostics"), diag_cut = rows_of(*dir_ / "cut", "diagnostics");
  EXPECT_EQ(diag_full, diag_cut);

  // λ = 0: the same run otherwise, different weights; no "grokalign" in its training rows.
  ClExperiment(sl::Config::from_string(off)).run(*dir_ / "off", false);
  const auto a = checkpoint_weights(*dir_ / "full" / "checkpoint_task2.npz");
  const auto b = checkpoint_weights(*dir_ / "off" / "checkpoint_task2.npz");
  EXPECT_FALSE(torch::equal(a[0], b[0]));
  EXPECT_FALSE(rows_of(*dir_ / "off", "train")[0].contains("grokalign"));

  // 10 iterations per task, a row every 5: the last (iteration 30) is at the end of task 2 with
  // the checkpoint's weights (fine-tuning's after_task changes nothing), on all 80 training images
  // of task 2 (samples = 1000 is capped), whose mean alignment does not depend on their order.
  ASSERT_EQ(diag_full.size(), 7u);
  EXPECT_EQ(diag_full.back()["iteration"].get<int>(), 30);
  EXPECT_EQ(diag_full.back()["task"].get<int>(), 2);
  auto view = sl::experiments::load_cl_run(*dir_ / "full");
  const auto x = view.tasks[2].train.images;
  const auto ca = D::centroid_alignment([&](const torch::Tensor& xx) { return view.model->forward(xx); }, x);
  EXPECT_NEAR(diag_full.back()["centroid_alignment"].get<double>(), ca.mean_alignment, 1e-5);
  EXPECT_NE(diag_full.front()["centroid_alignment"].get<double>(), diag_full.back()["centroid_alignment"].get<double>());
}

// The term is added where the engine forms the loss, so every registered strategy (penalties, replay,
// gradient projection, optimiser wrappers) trains with it: 2 tasks of the tiny stream each, finite
// losses with R > 0 in every logged row, and other final weights than the same run with λ = 0.
TEST_F(ClGrokAlign, ComposesWithEveryStrategy) {
  for (const auto& info : sl::continual::strategies()) {
    SCOPED_TRACE(info.name);
    auto cfg = [&](const std::string& lambda) {
      auto text = config("grokalign = " + lambda + "\n", 1, "log_every = 4\n");
      const auto at = text.find("name = \"finetune\"");
      text.replace(at, 17, "name = \"" + info.name + "\"");
      return text;
    };
    const auto on = *dir_ / ("s_on_" + info.name), off = *dir_ / ("s_off_" + info.name);
    if (sl::continual::make_strategy(info.name)->per_task_network()) {  // PackNet, HAT: refused, naming the key
      sl::testing::expect_error<sl::ConfigError>(
          [&] { ClExperiment(sl::Config::from_string(cfg("0.05"))).run(on, false, {}, 2); }, "train.grokalign");
      fs::remove_all(on);
      continue;
    }
    ClExperiment(sl::Config::from_string(cfg("0.05"))).run(on, false, {}, 2);
    ClExperiment(sl::Config::from_string(cfg("0.0"))).run(off, false, {}, 2);
    const auto rows = rows_of(on, "train");
    ASSERT_GE(rows.size(), 5u);  // >= 20 iterations (joint trains on more), a row every 4
    for (const auto& r : rows) {
      EXPECT_TRUE(std::isfinite(r["loss"].get<double>()));
      EXPECT_GT(r["grokalign"].get<double>(), 0.0);
    }
    const auto a = checkpoint_weights(on / "checkpoint_task1.npz"), b = checkpoint_weights(off / "checkpoint_task1.npz");
    EXPECT_FALSE(torch::equal(a[0], b[0]));
    fs::remove_all(on);
    fs::remove_all(off);
  }
}

// --resume of a run made before a key existed: a key absent from RUN/config.toml whose new value
// is its default is no mismatch (the file is brought up to date); a changed value, or an absent key
// given a non-default value, is an error naming the key.
TEST_F(ClGrokAlign, ResumeAcceptsKeysAddedLaterWithTheirDefaults) {
  const auto text = config("");
  ClExperiment e(sl::Config::from_string(text));
  const auto full = e.run(*dir_ / "old_full", false);
  auto cut_with = [&](const std::string& name, const std::function<std::string(std::string)>& edit) {
    const auto run = *dir_ / name;
    e.run(run, false, {}, 1);
    const auto cfg = sl::read_file_text(run / "config.toml");
    sl::write_file_atomic(run / "config.toml", edit(cfg));
    return run;
  };
  // Every line of a resolved config.toml except those setting `key` (`with` replaces them).
  auto drop = [](const std::string& cfg, const std::string& key, const std::string& with = "") {
    std::istringstream in(cfg);
    std::string out, line;
    while (std::getline(in, line)) out += line.rfind(key + " =", 0) == 0 ? with : line + "\n";
    return out;
  };
  // Without snapshot_every and both grokalign keys (the config.toml of an older build).
  const auto old = cut_with("old", [&](const std::string& c0) {
    auto c = c0;
    c = drop(c, "snapshot_every");
    c = drop(c, "grokalign");
    return drop(c, "grokalign_projections");
  });
  ASSERT_EQ(sl::read_file_text(old / "config.toml").find("snapshot_every"), std::string::npos);
  const auto resumed = e.run(old, true);
  EXPECT_EQ(resumed.accuracy, full.accuracy);
  EXPECT_EQ(sl::read_file_text(old / "config.toml"), e.resolved_config());

  // A real change is still refused, naming the key and both values.
  const auto changed = cut_with("changed", [&](const std::string& c) { return drop(c, "lr", "lr = 0.25\n"); });
  sl::testing::expect_error<sl::ConfigError>([&] { e.run(changed, true); }, "train.lr = 0.25 in the run, 0.05");
  sl::testing::expect_error<sl::ConfigError>([&] { e.run(changed, true); }, "different configuration");
  // An absent key counts as its default: resuming with another value is a change of that key.
  const auto absent = cut_with("absent", [&](std::string c) { return drop(c, "snapshot_every"); });
  ClExperiment snap(sl::Config::from_string(config("", 0, "snapshot_every = 5\n")));
  sl::testing::expect_error<sl::ConfigError>([&] { snap.run(absent, true); }, "output.snapshot_every = 0 in the run, 5 now");
  ClExperiment ga(sl::Config::from_string(config("grokalign = 0.25\n")));
  sl::testing::expect_error<sl::ConfigError>([&] { ga.run(absent, true); }, "train.grokalign = 0.0 in the run, 0.25 now");
}
