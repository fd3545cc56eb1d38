// End-to-end tests of `stablelearn diagnose commutator` on the toy problem. The step-0 commutators
// are recomputed here from the same seeded toy problem with two explicit SGD orders
// (θ_AB − θ_BA by plain parameter updates, not the library's gradient-difference form), for the
// batch pairs the command reports.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "cli_testing.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "testing.h"

namespace sl = stablelearn;
namespace dg = stablelearn::diagnostics;
using nlohmann::json;

namespace {

constexpr const char* kArgs = "diagnose commutator --steps 200 --every 10 --measure-every 100 --samples 128 --batch-size 16 -k 3";

/// D = ‖θ_AB − θ_BA‖ / (η²‖g_A‖‖g_B‖) by explicit SGD steps at the problem's current parameters.
double explicit_defect(const dg::ToyProblem& p, std::int64_t ia, std::int64_t ib, double eta) {
  const auto theta0 = dg::flatten_tensors(p.params).clone();
  auto restore = [&] {
    torch::NoGradGuard ng;
    const auto parts = dg::unflatten_like(theta0, p.params);
    for (std::size_t i = 0; i < p.params.size(); ++i) p.params[i].copy_(parts[i]);
  };
  auto grad = [&](std::int64_t b) {
    return dg::flatten_tensors(torch::autograd::grad({p.loss(p.batches[static_cast<std::size_t>(b)])}, p.params));
  };
  auto step = [&](std::int64_t b) {
    const auto parts = dg::unflatten_like(grad(b), p.params);
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < p.params.size(); ++i) p.params[i].sub_(parts[i], eta);
  };
  const double ga = grad(ia).norm().item<double>(), gb = grad(ib).norm().item<double>();
  step(ia);
  step(ib);
  const auto ab = dg::flatten_tensors(p.params).clone();
  restore();
  step(ib);
  step(ia);
  const auto ba = dg::flatten_tensors(p.params).clone();
  restore();
  return (ab - ba).norm().item<double>() / (eta * eta * ga * gb);
}

TEST(DiagnoseExtraCli, CommutatorReportsDefectsAndProjection) {
  at::set_num_threads(sl::testing::test_threads());
  const auto r = sl::testing::run_cli(kArgs);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = r.js();
  const std::int64_t dim = 2 * 16 + 16 + 16 + 1;  // W₁, b₁, W₂, b₂ of the 2-16-1 toy MLP
  EXPECT_EQ(j["parameters"].get<std::int64_t>(), dim);
  EXPECT_EQ(j["batches"].get<std::int64_t>(), 8);
  EXPECT_EQ(j["checkpoints"].get<std::int64_t>(), 21);
  EXPECT_EQ(j["basis_dim"].get<std::int64_t>(), 3);
  EXPECT_DOUBLE_EQ(j["expected_random_energy_fraction"].get<double>(), 3.0 / dim);
  EXPECT_NEAR(j["expected_random_rho"].get<double>(), std::sqrt(3.0 / dim), 1e-15);
  const auto& rows = j["measurements"];
  ASSERT_EQ(rows.size(), 3u);
  std::vector<std::int64_t> steps;
  for (const auto& row : rows) {
    steps.push_back(row["step"].get<std::int64_t>());
    ASSERT_EQ(row["pairs"].size(), 9u);
    ASSERT_EQ(row["defects"].size(), 9u);
    EXPECT_LE(row["median_defect"].get<double>(), row["p90_defect"].get<double>());
    for (const char* key : {"median_rho", "median_random_rho", "median_energy_fraction", "median_random_energy_fraction"}) {
      EXPECT_GE(row[key].get<double>(), 0.0) << key;
      EXPECT_LE(row[key].get<double>(), 1.0) << key;
    }
    // The empirical random baseline is near k/D (mean of 10 Beta(3/2, 31) draws, median over 9 pairs).
    EXPECT_GT(row["median_random_energy_fraction"].get<double>(), 0.2 * 3.0 / dim);
    EXPECT_LT(row["median_random_energy_fraction"].get<double>(), 3.0 * 3.0 / dim);
    EXPECT_NEAR(row["median_perpendicular_energy"].get<double>(), 1.0 - row["median_energy_fraction"].get<double>(), 1e-15);
  }
  EXPECT_EQ(steps, (std::vector<std::int64_t>{0, 100, 200}));
  EXPECT_LT(j["final_loss"].get<double>(), rows[0]["loss"].get<double>());

  // Step 0: the same toy problem (seed 0) and the reported pairs, by explicit SGD orders.
  const auto p = dg::make_toy_problem(dg::ToyProblemOptions().samples(128).batch_size(16).seed(0));
  std::vector<double> want;
  for (const auto& pair : rows[0]["pairs"]) {
    const auto ia = pair[0].get<std::int64_t>(), ib = pair[1].get<std::int64_t>();
    EXPECT_NE(ia, ib);
    want.push_back(explicit_defect(p, ia, ib, 1e-3));
  }
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(rows[0]["defects"][i].get<double>(), want[i], 1e-6 * want[i]);
  std::sort(want.begin(), want.end());
  EXPECT_NEAR(rows[0]["median_defect"].get<double>(), want[4], 1e-6 * want[4]);
  // numpy percentile 90 of 9 values: position 7.2.
  EXPECT_NEAR(rows[0]["p90_defect"].get<double>(), want[7] + 0.2 * (want[8] - want[7]), 1e-6 * want[8]);
}

TEST(DiagnoseExtraCli, CommutatorRejectsBadArguments) {
  // More directions than the trajectory has.
  auto r = sl::testing::run_cli("diagnose commutator --steps 20 --every 10 -k 5");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("exceeds the rank"), std::string::npos) << r.err;
  r = sl::testing::run_cli("diagnose commutator --samples 16 --batch-size 16");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("two batches"), std::string::npos) << r.err;
  r = sl::testing::run_cli("diagnose commutator --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--measure-every"), std::string::npos);
}

}  // namespace
