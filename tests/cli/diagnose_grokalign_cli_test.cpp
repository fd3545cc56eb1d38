// End-to-end tests of `stablelearn diagnose grokalign RUN` on a tiny 3-task `cl run` trained with
// [train] grokalign (MLP 784-16-8-10 on the synthetic IDX set of cli_run_testing.h, ≈ 1 s per
// process): the JSON against the library (diagnostics/grokalign.h) applied in the test to the run's
// own checkpoints and images, the default --after, the head of a task-incremental run, and the
// usage errors.
#include <cmath>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli_run_testing.h"
#include "cli_testing.h"
#include "stablelearn/diagnostics/grokalign.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "testing.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Result = sl::testing::CliResult;
Result run(const std::string& args) { return sl::testing::run_cli(args); }

class DiagnoseGrokAlignCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    at::set_num_threads(sl::testing::test_threads());
    dir_ = new fs::path(sl::testing::temp_dir("diagnose_grokalign_cli"));
    const auto data = sl::testing::write_tiny_fmnist(*dir_);
    const auto r = sl::testing::make_tiny_cl_run(*dir_, data, "a", 0, "",
                                                 "--set train.grokalign=0.001 --set train.grokalign_projections=2");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string A() { return (*dir_ / "a").string(); }
  /// A task-incremental (split-task) run of the same configuration, trained on first use.
  static std::string T() {
    const auto t = *dir_ / "t";
    if (!fs::exists(t / "checkpoint.json")) {
      const auto r = run("cl run " + (*dir_ / "a.toml").string() + " --out " + t.string() + " --set stream.kind=split-task");
      EXPECT_EQ(r.status, 0) << r.err;
    }
    return t.string();
  }
  static fs::path* dir_;
};

fs::path* DiagnoseGrokAlignCli::dir_ = nullptr;

/// The library's numbers for the model after task `after` of `run` on the first n test images of
/// task `task` (float64; `heads` = select the task's classes).
struct Reference {
  double alignment, inner, norm, pc1, estimate, exact;
};
Reference reference(const fs::path& run_dir, std::int64_t task, std::int64_t after, std::int64_t n, std::int64_t P,
                    std::uint64_t seed, bool heads) {
  namespace D = sl::diagnostics;
  auto view = sl::experiments::load_cl_run(run_dir);
  view.model->to(torch::kFloat64);
  std::vector<torch::Tensor> w;
  for (const auto& t : view.task_weights(after)) w.push_back(t.to(torch::kFloat64));
  const auto& test = view.tasks[static_cast<std::size_t>(task)].test;
  const auto x = test.images.slice(0, 0, n).to(torch::kFloat64);
  const auto cls = torch::tensor(view.tasks[static_cast<std::size_t>(task)].classes, torch::kInt64);
  const D::OutputFn f = [&](const torch::Tensor& xb) {
    auto z = view.model->forward(xb, w);
    return heads ? z.index_select(1, cls) : z;
  };
  const auto ca = D::centroid_alignment(f, x);
  const auto J = D::input_jacobians(f, x);
  auto gen = at::detail::createCPUGenerator(seed);
  const auto v = D::grokalign_projections(P, n, J.size(1), gen, torch::TensorOptions().dtype(torch::kFloat64));
  return {ca.mean_alignment,
          ca.inner_products.mean().item<double>(),
          ca.norms.mean().item<double>(),
          torch::nanmean(D::jacobian_pc1(f, x)).item<double>(),
          D::jacobian_norm_estimates(f, x, v, false).mean().item<double>(),
          J.flatten(1).norm(2, {1}).mean().item<double>()};
}

void expect_matches(const json& j, const Reference& r) {
  EXPECT_NEAR(j["centroid_alignment"]["mean"].get<double>(), r.alignment, 1e-12);
  EXPECT_NEAR(j["centroid_alignment"]["alignments"]["mean"].get<double>(), r.alignment, 1e-12);
  EXPECT_NEAR(j["centroid_alignment"]["inner_product_mean"].get<double>(), r.inner, 1e-9 * std::abs(r.inner) + 1e-12);
  EXPECT_NEAR(j["centroid_alignment"]["centroid_norm_mean"].get<double>(), r.norm, 1e-12 * r.norm);
  EXPECT_NEAR(j["jacobian_pc1"]["mean"].get<double>(), r.pc1, 1e-12);
  EXPECT_NEAR(j["jacobian_norm"]["estimate_mean"].get<double>(), r.estimate, 1e-12 * r.estimate);
  EXPECT_NEAR(j["jacobian_norm"]["exact_mean"].get<double>(), r.exact, 1e-12 * r.exact);
}

}  // namespace

TEST_F(DiagnoseGrokAlignCli, ReportsTheLibraryNumbersOnTheRunsCheckpoint) {
  const auto r = run("diagnose grokalign " + A() + " --task 1 --after 1 --samples 30 --projections 3 --seed 5");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  EXPECT_EQ(j["task"], 1);
  EXPECT_EQ(j["after_task"], 1);
  EXPECT_EQ(j["completed_tasks"], 3);
  EXPECT_EQ(j["samples"], 30);
  EXPECT_EQ(j["outputs"], 10);
  EXPECT_EQ(j["inputs"], 784);
  EXPECT_EQ(j["jacobian_norm"]["projections"], 3);
  EXPECT_DOUBLE_EQ(j["trained_grokalign"].get<double>(), 0.001);
  const auto ref = reference(A(), 1, 1, 30, 3, 5, false);
  expect_matches(j, ref);
  // PC1 in (0, 1], |alignment| <= 1, and the 3-projection estimate near the exact norm.
  EXPECT_GT(ref.pc1, 0.0);
  EXPECT_LE(ref.pc1, 1.0);
  EXPECT_LE(std::abs(ref.alignment), 1.0);
  EXPECT_NEAR(ref.estimate, ref.exact, 0.5 * ref.exact);
}

TEST_F(DiagnoseGrokAlignCli, DefaultsToTheLastCheckpointAndTaskIncrementalHeads) {
  auto r = run("diagnose grokalign " + A() + " --task 0");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = r.js();
  EXPECT_EQ(j["after_task"], 2);
  EXPECT_EQ(j["samples"], 40);  // task 0's test images (2 classes × 20), below the default 500
  expect_matches(j, reference(A(), 0, 2, 40, 1, 0, false));
  // A later task's images under an earlier model are allowed (forward transfer).
  r = run("diagnose grokalign " + T() + " --task 2 --after 0 --samples 10");
  ASSERT_EQ(r.status, 0) << r.err;
  j = r.js();
  EXPECT_EQ(j["outputs"], 2);  // task 2's head
  EXPECT_DOUBLE_EQ(j["trained_grokalign"].get<double>(), 0.0);
  expect_matches(j, reference(T(), 2, 0, 10, 1, 0, true));
}

TEST_F(DiagnoseGrokAlignCli, UsageErrors) {
  using sl::testing::expect_usage_error;
  expect_usage_error("diagnose grokalign " + A() + " --task 3", "--task 3 is out of range");
  expect_usage_error("diagnose grokalign " + A() + " --task 0 --after 3", "--after 3 is out of range");
  expect_usage_error("diagnose grokalign " + (*dir_ / "nope").string() + " --task 0", "no such run directory");
}

TEST_F(DiagnoseGrokAlignCli, CommandLineErrorsAndHelp) {
  using sl::testing::expect_usage_error;
  expect_usage_error("diagnose grokalign " + A() + " --task 0 --samples 0", "--samples");
  expect_usage_error("diagnose grokalign " + A() + " --task 0 --projections x", "--projections");
  const auto help = run("diagnose grokalign --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("centroid alignment"), std::string::npos);
}
