// End-to-end tests of `stablelearn diagnose trajectory RUN` and `diagnose cka RUN` on tiny `cl run`
// directories trained on a synthetic 10-class IDX data set written here (cli_run_testing.h: each
// class lights its own band of rows over uniform noise; 40 training and 20 test images per class),
// so every process starts in well under a second. The numbers are checked against PCA, Gram eigenvalues and the
// feature-space CKA formula computed in the test from the run's own files.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli_run_testing.h"
#include "cli_testing.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = sl::testing::CliResult;
Result run(const std::string& args) { return sl::testing::run_cli(args); }

/// Linear CKA by the feature-space formula ‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F) of column-centred X, Y.
double feature_space_cka(torch::Tensor x, torch::Tensor y) {
  x = x.to(torch::kFloat64);
  y = y.to(torch::kFloat64);
  x = x - x.mean(0, true);
  y = y - y.mean(0, true);
  const double num = y.t().mm(x).pow(2).sum().item<double>();
  return num / (x.t().mm(x).norm().item<double>() * y.t().mm(y).norm().item<double>());
}

class DiagnoseRunCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(sl::testing::test_threads());
    dir_ = new fs::path(sl::testing::temp_dir("diagnose_run_cli"));
    const auto data = sl::testing::write_tiny_fmnist(*dir_);
    // 3 split tasks of 80 images, batch 16, 2 epochs: 10 iterations per task; a snapshot every 5
    // iterations gives iterations 0, 5, 10 (end of task 0), 15, 20 (end), 25, 30 (end).
    for (const auto& [name, seed] : {std::pair<const char*, int>{"a", 0}, {"b", 1}}) {
      const auto r = sl::testing::make_tiny_cl_run(*dir_, data, name, seed, "snapshot_every = 5\n");
      ASSERT_EQ(r.status, 0) << r.err;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path run_a() { return *dir_ / "a"; }
  static std::string A() { return run_a().string(); }
  static std::string B() { return (*dir_ / "b").string(); }
  static fs::path* dir_;
};

fs::path* DiagnoseRunCli::dir_ = nullptr;

using sl::testing::expect_usage_error;

}  // namespace

TEST_F(DiagnoseRunCli, TrajectoryOfARunIsThePcaAndRelexFitOfItsSnapshots) {
  const auto r = run("diagnose trajectory " + A() + " --components 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["problem"], "cl run parameter snapshots");
  EXPECT_EQ(j["snapshots"], 7);
  EXPECT_EQ(j["iterations"], json::array({0, 5, 10, 15, 20, 25, 30}));
  EXPECT_EQ(j["parameters"], 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10);
  ASSERT_EQ(j["per_task"].size(), 3u);

  // Reference: PCA of the centred snapshot matrix by SVD, and the rank-1 share of the Gram matrix
  // of the displacements from the first snapshot (RELEX's explained variance).
  std::vector<torch::Tensor> rows;
  for (const auto& s : sl::experiments::list_cl_snapshots(run_a()))
    rows.push_back(sl::experiments::load_cl_snapshot(run_a(), s).to(torch::kFloat64));
  const auto m = torch::stack(rows);
  const auto s2 = torch::linalg_svdvals(m - m.mean(0, true)).pow(2);
  const auto ratio = s2 / s2.sum();
  ASSERT_EQ(j["explained_variance_ratio"].size(), 2u);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(j["explained_variance_ratio"][i].get<double>(), ratio[i].item<double>(), 1e-9) << i;
  // The path on PC1/PC2: the centred snapshots' coordinates U_k S_k of the same SVD (signs free).
  {
    const auto svd = torch::linalg_svd(m - m.mean(0, true), /*full_matrices=*/false);
    const auto us = std::get<0>(svd) * std::get<1>(svd);
    ASSERT_TRUE(j.contains("pc_path"));
    for (int k = 0; k < 2; ++k) {
      const auto& got = j["pc_path"][k == 0 ? "pc1" : "pc2"];
      ASSERT_EQ(got.size(), 7u);
      const double sign = (got[0].get<double>() * us[0][k].item<double>()) < 0 ? -1.0 : 1.0;
      const double scale = us.select(1, k).abs().max().item<double>();
      for (int i = 0; i < 7; ++i) EXPECT_NEAR(sign * got[i].get<double>(), us[i][k].item<double>(), 1e-9 * scale) << k << " " << i;
    }
  }
  const double r90 = j["rank_90"].get<double>();
  EXPECT_GE(r90, 1);
  EXPECT_LT(ratio.slice(0, 0, static_cast<std::int64_t>(r90) - 1).sum().item<double>(), 0.9);
  EXPECT_GE(ratio.slice(0, 0, static_cast<std::int64_t>(r90)).sum().item<double>(), 0.9 - 1e-12);
  EXPECT_GE(j["effective_rank"].get<double>(), 1.0);
  EXPECT_LE(j["effective_rank"].get<double>(), 7.0);
  const auto align = j["alignment_to_final"];
  ASSERT_EQ(align.size(), 7u);
  EXPECT_NEAR(align[6].get<double>(), 1.0, 1e-9);
  const auto d = m.slice(0, 1) - m[0];
  const auto lam = torch::linalg_eigvalsh(d.mm(d.t())).clamp_min(0);
  EXPECT_NEAR(j["relex"]["explained_variance"].get<double>(), (lam.max() / lam.sum()).item<double>(), 1e-9);
  EXPECT_EQ(j["relex"]["history"], 6);
  EXPECT_TRUE(j["relex"]["holdout"]["relative_error"].is_number());
  EXPECT_LE(j["relex"]["line_fit_r2"].get<double>(), 1.0);

  // One task: the snapshot it started from (end of task 0) and its own.
  const auto t1 = run("diagnose trajectory " + A() + " --task 1").js();
  EXPECT_EQ(t1["task"], 1);
  EXPECT_EQ(t1["iterations"], json::array({10, 15, 20}));
  EXPECT_EQ(t1["explained_variance_ratio"].size(), 2u);  // rank ≤ T − 1 = 2
  EXPECT_FALSE(t1.contains("per_task"));
}

TEST_F(DiagnoseRunCli, TrajectoryErrorsAndTheToyFormStillWorks) {
  // A run directory without snapshots: point at a copy holding only the configuration.
  const auto bare = *dir_ / "bare";
  fs::create_directories(bare);
  fs::copy_file(run_a() / "config.toml", bare / "config.toml", fs::copy_options::overwrite_existing);
  expect_usage_error("diagnose trajectory " + bare.string(), "snapshot_every");
  expect_usage_error("diagnose trajectory " + A() + " --task 3", "out of range");
  expect_usage_error("diagnose trajectory " + A() + " --lr 0.1", "--lr configures the toy trajectory");
  expect_usage_error("diagnose trajectory --task 1", "--task needs RUN");
  expect_usage_error("diagnose trajectory " + (*dir_ / "missing").string(), "no such run directory");
  // Without RUN: the toy SGD trajectory on (here) the tiny data set.
  const auto toy = run("diagnose trajectory --data-dir " + (*dir_ / "data").string() +
                       " --samples 100 --test-samples 50 --hidden 8 --batch-size 10 --epochs 1 --every 2 --lr 0.05");
  ASSERT_EQ(toy.status, 0) << toy.err;
  EXPECT_EQ(toy.js()["problem"], "MLP on a Fashion-MNIST subset, minibatch SGD");
  EXPECT_EQ(toy.js()["checkpoints"], 6);  // steps 0, 2, 4, 6, 8, 10
  const auto help = run("diagnose trajectory --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("snapshot_every"), std::string::npos);
}

TEST_F(DiagnoseRunCli, CkaDriftOfARunStartsAtOneAndMatchesTheFeatureSpaceFormula) {
  const auto r = run("diagnose cka " + A() + " --task 0 --samples 60");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["layer"], 1);  // default: the last hidden layer
  EXPECT_EQ(j["features"], 8);
  EXPECT_EQ(j["samples"], 40);  // task 0's test images (2 classes × 20)
  EXPECT_EQ(j["after_task"], json::array({0, 1, 2}));
  ASSERT_EQ(j["cka"].size(), 3u);  // T − J
  EXPECT_NEAR(j["cka"][0].get<double>(), 1.0, 1e-6);
  for (const auto& v : j["cka"]) {
    EXPECT_GE(v.get<double>(), 0.0);
    EXPECT_LE(v.get<double>(), 1.0 + 1e-9);
  }
  // Reference from the run's checkpoints and the classifier's hidden activations.
  const auto view = sl::experiments::load_cl_run(run_a());
  const auto x = view.tasks[0].test.images;
  auto act = [&](std::int64_t task) {
    torch::NoGradGuard ng;
    return view.model->hidden_activations(x, view.task_weights(task))[1];
  };
  const auto ref = act(0);
  for (std::int64_t i = 1; i < 3; ++i)
    EXPECT_NEAR(j["cka"][static_cast<std::size_t>(i)].get<double>(), feature_space_cka(ref, act(i)), 1e-5) << i;
  EXPECT_TRUE(j["drift"][0]["accuracy"].is_number());

  // Another layer, kernel and estimator; and two runs' final models (a run against itself is 1).
  const auto k = run("diagnose cka " + A() + " --task 1 --layer 0 --kernel rbf --debiased").js();
  EXPECT_EQ(k["after_task"], json::array({1, 2}));
  EXPECT_EQ(k["features"], 16);
  EXPECT_NEAR(k["cka"][0].get<double>(), 1.0, 1e-6);
  const auto self = run("diagnose cka " + A() + " --task 2 --against " + A()).js();
  EXPECT_NEAR(self["against"]["cka"].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(self["cka"][0].get<double>(), 1.0, 1e-6);
  const auto other = run("diagnose cka " + A() + " --task 2 --against " + B()).js();
  const double c = other["against"]["cka"].get<double>();
  EXPECT_GT(c, 0.0);
  EXPECT_LT(c, 1.0 - 1e-6);
}

TEST_F(DiagnoseRunCli, CkaUsageErrors) {
  expect_usage_error("diagnose cka " + A() + " --task 3", "out of range: the run has 3 tasks");
  expect_usage_error("diagnose cka " + A() + " --layer 2", "--layer 2 is out of range");
  expect_usage_error("diagnose cka " + (*dir_ / "missing").string(), "no such run directory");
  const auto help = run("diagnose cka --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Example"), std::string::npos);
}

TEST_F(DiagnoseRunCli, SpectraSinceATaskReportsTheUpdatesAlignmentWithTheEarlierSubspaces) {
  // Recomputed here from the checkpoints: ΔW = W_final − W_after0, U_k, V_k the top-k singular
  // vectors of W_after0, two-sided share ‖U_kᵀΔWV_k‖²/‖ΔW‖², baseline k²/(mn).
  const auto r = run("diagnose spectra " + A() + " --since 0 --top-k 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["update_since_task"], 0);
  const auto view = sl::experiments::load_cl_run(run_a());
  const auto w0 = view.task_weights(0), w2 = view.task_weights(2);
  const auto idx = view.model->linear_weight_indices();
  ASSERT_EQ(j["layers"].size(), idx.size());
  for (std::size_t l = 0; l < idx.size(); ++l) {
    const auto a = w0[static_cast<std::size_t>(idx[l])].to(torch::kFloat64);
    const auto b = w2[static_cast<std::size_t>(idx[l])].to(torch::kFloat64);
    const auto d = b - a;
    const auto svd = torch::linalg_svd(a, false);
    const auto U = std::get<0>(svd).narrow(1, 0, 2), V = std::get<2>(svd).narrow(0, 0, 2).t();
    const double share = U.t().mm(d).mm(V).pow(2).sum().item<double>() / d.pow(2).sum().item<double>();
    const auto& u = j["layers"][l]["update"];
    EXPECT_NEAR(u["two_sided"].get<double>(), share, 1e-9) << l;
    EXPECT_NEAR(u["two_sided_baseline"].get<double>(), 4.0 / static_cast<double>(a.size(0) * a.size(1)), 1e-15);
    EXPECT_NEAR(u["update_norm"].get<double>(), d.norm().item<double>(), 1e-9);
    EXPECT_GT(u["left"].get<double>(), u["two_sided"].get<double>() - 1e-12) << "one-sided shares contain the two-sided one";
  }
  // The last task's own weights: no update, said in a note rather than a division by zero.
  const auto last = run("diagnose spectra " + A() + " --since 2");
  ASSERT_EQ(last.status, 0) << last.err;
  EXPECT_TRUE(last.js()["layers"][0]["update"].contains("note"));
  expect_usage_error("diagnose spectra " + A() + " --since 3", "out of range");
  expect_usage_error("diagnose spectra --toy --since 0", "--since needs RUN");
}

TEST_F(DiagnoseRunCli, CurvatureCommandsAnalyseTheCheckpointAfterAnEarlierTask) {
  // --after 0: the weights of checkpoint_task0.npz. The reported loss and accuracy on task 0's
  // first 60 training images are recomputed here from that checkpoint (float64 forward,
  // cross-entropy); --after 2 (the last task) is the run's final state, i.e. the default.
  const std::string common = " --task 0 --samples 60 --batch-size 30 -k 1 --iterations 30 --dtype float64";
  const auto early = run("diagnose hessian " + A() + common + " --after 0");
  ASSERT_EQ(early.status, 0) << early.err;
  const auto e = early.js();
  EXPECT_EQ(e["after_task"], 0);
  auto view = sl::experiments::load_cl_run(run_a());
  const auto& t = view.tasks.at(0);
  std::vector<torch::Tensor> w;
  for (const auto& x : view.task_weights(0)) w.push_back(x.to(torch::kFloat64));
  view.model->to(torch::kFloat64);
  torch::NoGradGuard ng;
  const auto z = view.model->forward(t.train.images.slice(0, 0, 60).to(torch::kFloat64), w);
  const auto y = t.train.labels.slice(0, 0, 60).to(torch::kInt64);
  EXPECT_NEAR(e["loss"].get<double>(), torch::nn::functional::cross_entropy(z, y).item<double>(), 1e-10);
  EXPECT_NEAR(e["accuracy"].get<double>(), z.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>(), 1e-12);

  const auto last = run("diagnose hessian " + A() + common + " --after 2").js();
  const auto final_ = run("diagnose hessian " + A() + common).js();
  EXPECT_EQ(final_["after_task"], 2);
  EXPECT_EQ(last["eigenvalues"], final_["eigenvalues"]);
  EXPECT_EQ(last["loss"], final_["loss"]);
  EXPECT_NE(e["eigenvalues"], final_["eigenvalues"]);  // tasks 1 and 2 moved the weights
  expect_usage_error("diagnose trace " + A() + " --after 3", "out of range");
  expect_usage_error("diagnose hessian --toy --after 0", "--after needs RUN");
}

namespace {

/// Test accuracy of the run's θ₀ (the snapshot at iteration 0) on task `task`'s test images, with
/// the logits restricted to the task's classes when `masked` (task-incremental runs).
double initial_accuracy(const fs::path& run_dir, std::int64_t task, bool masked) {
  torch::NoGradGuard ng;
  const auto view = sl::experiments::load_cl_run(run_dir);
  const auto snaps = sl::experiments::list_cl_snapshots(run_dir);
  EXPECT_FALSE(snaps.empty());
  EXPECT_EQ(snaps.front().iteration, 0);
  const auto flat = sl::experiments::load_cl_snapshot(run_dir, snaps.front());
  const auto w = view.model->layout().split(flat);
  const auto& t = view.tasks.at(static_cast<std::size_t>(task));
  auto z = view.model->forward(t.test.images.to(torch::kFloat32), w);
  torch::Tensor pred;
  if (masked) {
    const auto cols = torch::tensor(t.classes, torch::kInt64);
    pred = cols.index_select(0, z.index_select(1, cols).argmax(1));
  } else {
    pred = z.argmax(1);
  }
  return pred.eq(t.test.labels).to(torch::kFloat64).mean().item<double>();
}

}  // namespace

// intrinsic-dim RUN --task J: the run's architecture (784-16-8-10, D = 12786) re-initialised with
// the run's seed, so θ₀ is the run's own first snapshot (its test accuracy on task 1 is recomputed
// here); the data are task 1's images; Fastfood makes d = D affordable, and at d = D the subspace
// spans (almost surely) the whole space, so training there reaches the full model's accuracy.
TEST_F(DiagnoseRunCli, IntrinsicDimOfARunTaskUsesItsModelItsDataAndItsInitialisation) {
  const std::int64_t D = 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10;
  const auto r = run("diagnose intrinsic-dim " + A() + " --task 1 --projection fastfood --dims " + std::to_string(D) +
                     ",4 --steps 40 --lr 0.02 --full-lr 0.02 --fraction 0.5");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  const auto view = sl::experiments::load_cl_run(run_a());
  const auto& task = view.tasks.at(1);
  EXPECT_EQ(j["run"], A());
  EXPECT_EQ(j["task"], 1);
  EXPECT_EQ(j["tasks"], 3);
  EXPECT_EQ(j["model"], "mlp");
  EXPECT_EQ(j["hidden"], json::array({16, 8}));
  EXPECT_EQ(j["task_classes"], json(task.classes));
  EXPECT_EQ(j["task_incremental"], false);
  EXPECT_EQ(j["parameters"], D);
  EXPECT_EQ(j["samples"], task.train.size());  // --samples 1000 capped at the task's size
  EXPECT_EQ(j["test_samples"], task.test.size());
  EXPECT_EQ(j["seed"], 0);  // the run's [train] seed
  EXPECT_EQ(j["projection"], "fastfood");
  EXPECT_NEAR(j["initial_test_accuracy"].get<double>(), initial_accuracy(run_a(), 1, false), 1e-12);
  ASSERT_EQ(j["subspaces"].size(), 2u);
  EXPECT_EQ(j["subspaces"][0]["d"], 4);
  const auto& top = j["subspaces"][1];
  EXPECT_EQ(top["d"], D);
  EXPECT_TRUE(top["test_accuracy_std"].is_null());
  // Full model and d = D both learn the task (bands of rows) on this easy data.
  EXPECT_GT(j["full_test_accuracy"].get<double>(), 0.9);
  EXPECT_NEAR(top["test_accuracy"].get<double>(), j["full_test_accuracy"].get<double>(), 0.05);
  EXPECT_NEAR(top["train_accuracy"].get<double>(), j["full_train_accuracy"].get<double>(), 0.05);
  // Both conventions from the rows.
  auto first_passing = [&](double threshold) {
    for (const auto& row : j["subspaces"])
      if (row["test_accuracy"].get<double>() >= threshold) return json(row["d"]);
    return json(nullptr);
  };
  EXPECT_EQ(j["d_int90_absolute"], first_passing(0.9));
  EXPECT_NEAR(j["relative_threshold"].get<double>(), 0.5 * j["full_test_accuracy"].get<double>(), 1e-12);
  EXPECT_EQ(j["d_int90_relative"], first_passing(j["relative_threshold"].get<double>()));
  EXPECT_FALSE(j["d_int90_relative"].is_null());
  // --seed replaces the run's initialisation.
  const auto other = run("diagnose intrinsic-dim " + A() + " --task 1 --dims 4 --steps 2 --seed 7 --samples 20 --test-samples 10");
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_EQ(other.js()["seed"], 7);
  EXPECT_EQ(other.js()["samples"], 20);
  EXPECT_EQ(other.js()["test_samples"], 10);
}

TEST_F(DiagnoseRunCli, IntrinsicDimRunErrors) {
  expect_usage_error("diagnose intrinsic-dim " + A() + " --task 3 --dims 4", "--task 3 is out of range: the run has 3 tasks (0..2)");
  expect_usage_error("diagnose intrinsic-dim " + (*dir_ / "missing").string() + " --dims 4", "no such run directory");
  expect_usage_error("diagnose intrinsic-dim --task 1 --dims 4", "--task needs RUN");
  expect_usage_error("diagnose intrinsic-dim " + A() + " --hidden 8 --dims 4", "--hidden configures the Fashion-MNIST MLP");
  expect_usage_error("diagnose intrinsic-dim " + A() + " --dims 20000", "exceeds the 12786 parameters");
}

// A task-incremental (split-task) run: the logits are restricted to task J's classes, as the run's
// masked heads are; θ₀'s masked accuracy is recomputed here.
TEST_F(DiagnoseRunCli, IntrinsicDimOfATaskIncrementalRunMasksTheLogitsToTheTasksClasses) {
  auto config = sl::testing::tiny_cl_config(*dir_ / "data", 3, "snapshot_every = 100\n");
  config.replace(config.find("split-class"), 11, "split-task");
  const auto cfg = *dir_ / "ti.toml", out = *dir_ / "ti";
  std::ofstream(cfg) << config;
  const auto made = run("cl run " + cfg.string() + " --out " + out.string());
  ASSERT_EQ(made.status, 0) << made.err;
  const auto r = run("diagnose intrinsic-dim " + out.string() + " --task 2 --projection sparse --dims 8 --steps 20 --full-lr 0.02");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["task_incremental"], true);
  EXPECT_EQ(j["seed"], 3);
  const double init = initial_accuracy(out, 2, true);
  EXPECT_NEAR(j["initial_test_accuracy"].get<double>(), init, 1e-12);
  EXPECT_GT(j["full_test_accuracy"].get<double>(), 0.9);
}
