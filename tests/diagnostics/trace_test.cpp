// Hutchinson, Hutch++ and Frobenius estimates against exact traces of known-spectrum matrices.
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/trace.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::known_spectrum;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// Eigenvalues 1/(i+1), i = 0..n−1, in a random basis (eigenthings' test matrix).
torch::Tensor decaying(std::int64_t n, std::uint64_t seed) {
  return known_spectrum(1.0 / torch::arange(1, n + 1, f64()), seed);
}

struct Spread {
  double mean, sd;
};
Spread spread(const std::vector<double>& v) {
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0.0;
  for (double x : v) ss += (x - m) * (x - m);
  return {m, std::sqrt(ss / static_cast<double>(v.size() - 1))};
}

TEST(Trace, HutchinsonIsUnbiasedAndItsStandardErrorIsHonest) {
  auto a = decaying(80, 1);
  const double exact = a.trace().item<double>();
  D::DenseOperator op(a);
  std::vector<double> estimates, reported;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    auto r = D::hutchinson_trace(op, D::TraceOptions().matvecs(10).seed(seed));
    EXPECT_EQ(r.matvecs, 10);
    EXPECT_EQ(r.samples.size(), 10u);
    estimates.push_back(r.estimate);
    reported.push_back(r.standard_error);
  }
  const auto s = spread(estimates);
  // Mean over 300 independent estimates within 4 standard errors of the mean.
  EXPECT_NEAR(s.mean, exact, 4.0 * s.sd / std::sqrt(300.0));
  // The reported standard error matches the observed spread of the estimates (±25 %).
  const double avg_reported = std::accumulate(reported.begin(), reported.end(), 0.0) / 300.0;
  EXPECT_NEAR(avg_reported / s.sd, 1.0, 0.25);
}

TEST(Trace, HutchinsonWithManyProbesLandsWithinThreeStandardErrors) {
  auto a = decaying(80, 2);
  D::DenseOperator op(a);
  for (auto dist : {D::ProbeDistribution::Rademacher, D::ProbeDistribution::Gaussian}) {
    auto r = D::hutchinson_trace(op, D::TraceOptions().matvecs(400).distribution(dist).seed(3));
    EXPECT_NEAR(r.estimate, a.trace().item<double>(), 3.0 * r.standard_error);
  }
}

TEST(Trace, RademacherProbesGiveTheExactTraceOfADiagonalMatrix) {
  // zᵀ diag(a) z = Σ a_i for z ∈ {±1}^D: zero variance.
  auto a = torch::diag(torch::linspace(-1.0, 4.0, 30, f64()));
  auto r = D::hutchinson_trace(D::DenseOperator(a), D::TraceOptions().matvecs(5));
  EXPECT_NEAR(r.estimate, a.trace().item<double>(), 1e-12);
  EXPECT_NEAR(r.standard_error, 0.0, 1e-12);
}

TEST(Trace, HutchPlusPlusIsAccurateAndBeatsHutchinson) {
  auto a = decaying(80, 4);
  const double exact = a.trace().item<double>();
  D::DenseOperator op(a);
  auto r = D::hutchpp_trace(op, D::TraceOptions().matvecs(99).seed(5));
  EXPECT_EQ(r.matvecs, 99);
  EXPECT_NEAR(r.estimate, exact, 0.05 * exact);
  // Mean squared error over 30 trials at a budget of 60.
  double mse_h = 0.0, mse_pp = 0.0;
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    const auto o = D::TraceOptions().matvecs(60).seed(100 + seed);
    mse_h += std::pow(D::hutchinson_trace(op, o).estimate - exact, 2);
    mse_pp += std::pow(D::hutchpp_trace(op, o).estimate - exact, 2);
  }
  EXPECT_LT(mse_pp, mse_h);
}

TEST(Trace, HutchPlusPlusIsExactWhenTheSketchSpansTheSpace) {
  auto a = known_spectrum(torch::tensor({5.0, -2.0, 1.0, 0.5, 3.0, -0.25}, f64()), 6);
  auto r = D::hutchpp_trace(D::DenseOperator(a), D::TraceOptions().matvecs(20));  // k = 6 = D
  EXPECT_NEAR(r.estimate, a.trace().item<double>(), 1e-10);
  EXPECT_NEAR(r.standard_error, 0.0, 1e-10);
}

TEST(Trace, FrobeniusNormSquaredIsUnbiased) {
  auto a = decaying(60, 7);
  const double exact = a.pow(2).sum().item<double>();
  auto r = D::frobenius_norm_squared(D::DenseOperator(a), D::TraceOptions().matvecs(300).seed(8));
  EXPECT_NEAR(r.estimate, exact, 4.0 * r.standard_error);
  EXPECT_GT(r.standard_error, 0.0);
}

TEST(Trace, HessianTraceOfLinearRegression) {
  auto x = torch::randn({50, 6}, f64());
  auto y = torch::randn({50}, f64());
  auto w = torch::zeros({6}, f64()).requires_grad_(true);
  D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
  D::HessianOperator h({w}, loss, {{x, y}});
  const double exact = (x.t().mm(x) / 50.0).trace().item<double>();  // = ‖X‖_F² / n
  auto r = D::hutchinson_trace(h, D::TraceOptions().matvecs(200).seed(9));
  EXPECT_NEAR(r.estimate, exact, 4.0 * r.standard_error);
  auto pp = D::hutchpp_trace(h, D::TraceOptions().matvecs(18));  // k = 6 = D: exact
  EXPECT_NEAR(pp.estimate, exact, 1e-10);
}

TEST(Trace, RejectsTooSmallBudgets) {
  using stablelearn::testing::expect_error;
  D::DenseOperator op(torch::eye(3, f64()));
  expect_error<stablelearn::ConfigError>([&] { D::hutchinson_trace(op, D::TraceOptions().matvecs(1)); }, "at least 2");
  expect_error<stablelearn::ConfigError>([&] { D::hutchpp_trace(op, D::TraceOptions().matvecs(3)); }, "at least 4");
  expect_error<stablelearn::ConfigError>([&] { D::frobenius_norm_squared(op, D::TraceOptions().matvecs(0)); },
                                         "at least 2");
}

}  // namespace
