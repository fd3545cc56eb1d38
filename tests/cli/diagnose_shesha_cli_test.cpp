// End-to-end tests of `stablelearn diagnose shesha RUN` on a tiny 3-task `cl run` (MLP
// 784-16-8-10 on the synthetic IDX set of cli_run_testing.h, ≈ 1 s per process): the JSON against
// the library (diagnostics/rdm.h) applied in the test to the hidden activations recomputed from the
// run's own checkpoints, similarity exactly 1 at sigma = 0, falling with sigma, determinism for a
// seed, and the usage errors.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli_run_testing.h"
#include "cli_testing.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/diagnostics/rdm.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = sl::testing::CliResult;
Result run(const std::string& args) { return sl::testing::run_cli(args); }

class DiagnoseSheshaCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(sl::testing::test_threads());
    dir_ = new fs::path(sl::testing::temp_dir("diagnose_shesha_cli"));
    const auto data = sl::testing::write_tiny_fmnist(*dir_);
    const auto r = sl::testing::make_tiny_cl_run(*dir_, data, "a", 0);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static fs::path run_a() { return *dir_ / "a"; }
  static std::string A() { return run_a().string(); }
  static fs::path* dir_;
};

fs::path* DiagnoseSheshaCli::dir_ = nullptr;

using sl::testing::expect_usage_error;

}  // namespace

TEST_F(DiagnoseSheshaCli, ReportsTheLibraryNumbersOnTheRunsOwnActivations) {
  const auto r = run("diagnose shesha " + A() + " --task 0 --sigmas 0,0.05,0.5 --draws 6 --splits 10 --seed 7");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["after_task"], 0);
  EXPECT_EQ(j["layer"], 1);  // default: the last hidden layer
  EXPECT_EQ(j["features"], 8);
  EXPECT_EQ(j["samples"], 40);  // task 0's test images (2 classes × 20)
  const auto& wn = j["weight_noise"];
  EXPECT_EQ(wn["sigmas"], json::array({0.0, 0.05, 0.5}));
  ASSERT_EQ(wn["points"].size(), 3u);
  ASSERT_EQ(wn["points"][1]["similarities"].size(), 6u);
  EXPECT_DOUBLE_EQ(wn["mean"][0].get<double>(), 1.0);  // no noise: the same RDM
  EXPECT_EQ(wn["std"][0].get<double>(), 0.0);
  EXPECT_GT(wn["mean"][1].get<double>(), wn["mean"][2].get<double>());
  EXPECT_NEAR(wn["drift"][2].get<double>(), 1.0 - wn["mean"][2].get<double>(), 1e-15);

  // Reference: the library on the hidden activations of the checkpoint after task 0, in float64.
  namespace D = sl::diagnostics;
  auto view = sl::experiments::load_cl_run(run_a());
  view.model->to(torch::kFloat64);
  const auto x = view.tasks[0].test.images.to(torch::kFloat64);
  std::vector<torch::Tensor> w;
  for (const auto& t : view.task_weights(0)) w.push_back(t.to(torch::kFloat64));
  const D::RepresentationFn f = [&](const std::vector<torch::Tensor>& p) {
    torch::NoGradGuard ng;
    return view.model->hidden_activations(x, p)[1];
  };
  EXPECT_NEAR(j["feature_split"]["stability"].get<double>(),
              D::feature_split_stability(f(w), D::FeatureSplitOptions().splits(10).seed(7)), 1e-9);
  const auto curve = D::weight_noise_stability(f, w, D::WeightNoiseOptions().sigmas({0.0, 0.05, 0.5}).draws(6).seed(7));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(wn["mean"][i].get<double>(), curve[i].mean, 1e-9) << i;
    EXPECT_NEAR(wn["std"][i].get<double>(), curve[i].std, 1e-9) << i;
  }
}

TEST_F(DiagnoseSheshaCli, LaterModelsLayersAndSeeds) {
  const std::string args = "diagnose shesha " + A() + " --task 0 --after 2 --layer 0 --sigmas 0.1 --draws 3 --splits 5";
  const auto a = run(args).js();
  EXPECT_EQ(a["after_task"], 2);
  EXPECT_EQ(a["layer"], 0);
  EXPECT_EQ(a["features"], 16);
  const auto b = run(args).js();
  EXPECT_EQ(a["weight_noise"]["points"], b["weight_noise"]["points"]);
  EXPECT_EQ(a["feature_split"], b["feature_split"]);
  const auto c = run(args + " --seed 1").js();
  EXPECT_NE(a["weight_noise"]["points"][0]["similarities"], c["weight_noise"]["points"][0]["similarities"]);
}

TEST_F(DiagnoseSheshaCli, UsageErrors) {
  expect_usage_error("diagnose shesha " + A() + " --task 3", "out of range: the run has 3 tasks");
  expect_usage_error("diagnose shesha " + A() + " --after 3", "--after 3 is out of range");
  expect_usage_error("diagnose shesha " + A() + " --layer 2", "--layer 2 is out of range");
  expect_usage_error("diagnose shesha " + A() + " --sigmas=0.1,-0.1", "noise scale");
  expect_usage_error("diagnose shesha " + (*dir_ / "missing").string(), "no such run directory");
  const auto draws = run("diagnose shesha " + A() + " --draws 0");
  EXPECT_NE(draws.status, 0);
  const auto help = run("diagnose shesha --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("Example"), std::string::npos);
}
