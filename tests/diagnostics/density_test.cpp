// Stochastic Lanczos quadrature: normalisation, mean = Hutchinson / D, cluster masses.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/density.h"
#include "stablelearn/diagnostics/trace.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::known_spectrum;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

double integrate(const torch::Tensor& y, const torch::Tensor& x) {
  const auto dx = x.narrow(0, 1, x.size(0) - 1) - x.narrow(0, 0, x.size(0) - 1);
  const auto avg = (y.narrow(0, 1, y.size(0) - 1) + y.narrow(0, 0, y.size(0) - 1)) / 2;
  return (dx * avg).sum().item<double>();
}

TEST(Density, IntegratesToOneAndItsMeanIsTheHutchinsonTraceOverD) {
  const std::int64_t n = 120;
  auto lambda = torch::rand({n}, f64()) * 4.0 - 1.0;  // spectrum in [−1, 3]
  auto a = known_spectrum(lambda, 11);
  D::DenseOperator op(a);
  auto d = D::spectral_density(op, D::DensityOptions().runs(8).steps(40).grid_points(4000).seed(2));
  EXPECT_EQ(d.matvecs, 8 * 40);
  ASSERT_EQ(d.nodes.size(), 8u);
  for (const auto& w : d.weights) EXPECT_NEAR(w.sum().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(integrate(d.density, d.grid), 1.0, 1e-4);
  EXPECT_GE(d.density.min().item<double>(), 0.0);
  // Quadrature mean = (1/R) Σ vᵀAv = Hutchinson with the same Rademacher probes, divided by D.
  auto h = D::hutchinson_trace(op, D::TraceOptions().matvecs(8).seed(2));
  EXPECT_NEAR(d.mean() * n, h.estimate, 1e-9);
  // ... which is within 4.5 standard errors of the true tr(A)/D, with the exact Rademacher
  // variance Var(zᵀAz) = 2 Σ_{i≠j} A_ij².
  const double var = 2.0 * (a.pow(2).sum() - a.diagonal().pow(2).sum()).item<double>();
  EXPECT_NEAR(d.mean(), lambda.mean().item<double>(), 4.5 * std::sqrt(var / 8.0) / n);
  // Gaussian broadening keeps the mean: ∫ t φ̂(t) dt = mean().
  EXPECT_NEAR(integrate(d.density * d.grid, d.grid), d.mean(), 1e-4);
  // Every Ritz value lies inside the true spectrum.
  for (const auto& t : d.nodes) {
    EXPECT_GE(t.min().item<double>(), lambda.min().item<double>() - 1e-9);
    EXPECT_LE(t.max().item<double>(), lambda.max().item<double>() + 1e-9);
  }
}

TEST(Density, TwoClustersCarryHalfTheMassEach) {
  const std::int64_t n = 100;
  auto lambda = torch::cat({1.0 + 0.05 * torch::randn({n / 2}, f64()), 5.0 + 0.05 * torch::randn({n / 2}, f64())});
  D::DenseOperator op(known_spectrum(lambda, 12));
  auto d = D::spectral_density(op, D::DensityOptions().runs(10).steps(30).sigma(0.1).seed(3));
  EXPECT_NEAR(d.mass(0.0, 3.0), 0.5, 0.15);
  EXPECT_NEAR(d.mass(3.0, 7.0), 0.5, 0.15);
  EXPECT_NEAR(d.mass(-100.0, 100.0), 1.0, 1e-12);
  // The two highest local maxima of φ̂ sit within 0.3 of the clusters.
  auto left = d.grid.lt(3.0);
  auto g_left = d.grid.masked_select(left), p_left = d.density.masked_select(left);
  auto g_right = d.grid.masked_select(left.logical_not()), p_right = d.density.masked_select(left.logical_not());
  EXPECT_NEAR(g_left[p_left.argmax()].item<double>(), 1.0, 0.3);
  EXPECT_NEAR(g_right[p_right.argmax()].item<double>(), 5.0, 0.3);
  EXPECT_DOUBLE_EQ(d.sigma, 0.1);
}

TEST(Density, ExactNodesWhenTheKrylovSpaceIsSmall) {
  // Three distinct eigenvalues: Lanczos breaks down after 3 steps and the nodes are exact.
  auto lambda = torch::tensor({-1.0, -1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0}, f64());
  auto d = D::spectral_density(D::DenseOperator(known_spectrum(lambda, 13)), D::DensityOptions().runs(3).steps(10));
  for (const auto& t : d.nodes) {
    ASSERT_EQ(t.size(0), 3);
    EXPECT_NEAR(t[0].item<double>(), -1.0, 1e-9);
    EXPECT_NEAR(t[1].item<double>(), 2.0, 1e-9);
    EXPECT_NEAR(t[2].item<double>(), 4.0, 1e-9);
  }
  EXPECT_EQ(d.matvecs, 9);
}

TEST(Density, RejectsBadOptions) {
  using stablelearn::testing::expect_error;
  D::DenseOperator op(torch::eye(3, f64()));
  expect_error<stablelearn::ConfigError>([&] { D::spectral_density(op, D::DensityOptions().runs(0)); }, "runs");
  expect_error<stablelearn::ConfigError>([&] { D::spectral_density(op, D::DensityOptions().grid_points(1)); }, "grid_points");
  expect_error<stablelearn::ConfigError>([&] { D::spectral_density(op, D::DensityOptions().sigma(-1)); }, "sigma");
}

}  // namespace
