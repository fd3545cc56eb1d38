// Power iteration and Lanczos against matrices with a known spectrum and against
// torch::linalg_eigvalsh (float64).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/eigen.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::known_spectrum;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// Eigenvalues 10, 7, 5 on top of a bulk in [0, 1].
torch::Tensor spiked_spectrum(std::int64_t n) {
  auto l = torch::linspace(0.0, 1.0, n, f64());
  l[0] = 10.0;
  l[1] = 7.0;
  l[2] = 5.0;
  return l;
}

TEST(Eigen, PowerIterationFindsTheTopThreeOfAKnownSpectrum) {
  auto lambda = spiked_spectrum(50);
  auto q = D::testing::random_orthogonal(50, 3);
  auto a = q.mm(torch::diag(lambda)).mm(q.t());
  a = (a + a.t()) / 2;
  D::DenseOperator op(a);
  auto r = D::power_iteration(op, D::PowerIterationOptions().k(3).tol(1e-12).max_iter(2000).seed(1));
  ASSERT_EQ(r.eigenvalues.size(0), 3);
  EXPECT_TRUE(r.converged);
  EXPECT_NEAR(r.eigenvalues[0].item<double>(), 10.0, 1e-9);
  EXPECT_NEAR(r.eigenvalues[1].item<double>(), 7.0, 1e-9);
  EXPECT_NEAR(r.eigenvalues[2].item<double>(), 5.0, 1e-9);
  // Eigenvectors: the first three columns of Q, up to sign.
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(std::abs(r.eigenvectors.select(1, j).dot(q.select(1, j)).item<double>()), 1.0, 1e-6);
    EXPECT_LT(r.residuals[j].item<double>(), 1e-4);
  }
  EXPECT_EQ(r.matvecs, r.iterations);
  EXPECT_GT(r.matvecs, 3);
  EXPECT_LT(r.matvecs, 3 * 2000);
}

TEST(Eigen, PowerIterationReturnsTheLargestMagnitudeEvenIfNegative) {
  auto lambda = torch::tensor({-8.0, 5.0, 2.0, 1.0, 0.5, 0.1}, f64());
  D::DenseOperator op(known_spectrum(lambda, 4));
  auto r = D::power_iteration(op, D::PowerIterationOptions().k(2).tol(1e-12).max_iter(1000));
  EXPECT_NEAR(r.eigenvalues[0].item<double>(), -8.0, 1e-9);
  EXPECT_NEAR(r.eigenvalues[1].item<double>(), 5.0, 1e-9);
}

TEST(Eigen, PowerIterationStopsAtMaxIterAndSaysSo) {
  // Eigenvalues 1 and 0.999: far too close to converge to 1e-14 in 5 iterations.
  D::DenseOperator op(known_spectrum(torch::tensor({1.0, 0.999, 0.5}, f64()), 2));
  auto r = D::power_iteration(op, D::PowerIterationOptions().tol(1e-14).max_iter(5));
  EXPECT_FALSE(r.converged);
  EXPECT_EQ(r.matvecs, 5);
}

TEST(Eigen, LanczosMatchesEigvalshOnAWishartMatrix) {
  auto g = torch::randn({40, 40}, f64());
  auto a = g.mm(g.t()) / 40.0;
  auto exact = torch::linalg_eigvalsh(a);  // ascending
  D::DenseOperator op(a);
  // Largest five (magnitude = algebraic for a PSD matrix) with 30 of 40 steps.
  auto top = D::lanczos(op, D::LanczosOptions().k(5).steps(30).seed(5));
  ASSERT_EQ(top.eigenvalues.size(0), 5);
  for (int i = 0; i < 5; ++i) {
    const double want = exact[39 - i].item<double>();
    EXPECT_NEAR(top.eigenvalues[i].item<double>(), want, 1e-5 * want) << i;
  }
  EXPECT_EQ(top.matvecs, 30);
  EXPECT_EQ(top.iterations, 30);
  // Ritz vectors: orthonormal, and the reported residual is the measured ‖Av − λv‖.
  auto v = top.eigenvectors;
  EXPECT_LT(max_abs_diff(v.t().mm(v), torch::eye(5, f64())), 1e-10);
  for (int i = 0; i < 5; ++i) {
    const auto res = (a.mv(v.select(1, i)) - top.eigenvalues[i].item<double>() * v.select(1, i)).norm().item<double>();
    EXPECT_NEAR(res, top.residuals[i].item<double>(), 1e-8);
    EXPECT_LT(res, 1e-4 * top.eigenvalues[i].item<double>());
  }
  // Smallest algebraic with all 40 steps: exact.
  auto low = D::lanczos(op, D::LanczosOptions().k(2).steps(40).which(D::Spectrum::SmallestAlgebraic));
  EXPECT_NEAR(low.eigenvalues[0].item<double>(), exact[0].item<double>(), 1e-10);
  EXPECT_NEAR(low.eigenvalues[1].item<double>(), exact[1].item<double>(), 1e-10);
  EXPECT_TRUE(low.converged);
}

TEST(Eigen, LanczosOrdersByMagnitudeOrAlgebraically) {
  auto lambda = torch::tensor({-9.0, 6.0, 3.0, 1.0, -0.5, 0.2, 0.1, 0.05}, f64());
  D::DenseOperator op(known_spectrum(lambda, 8));
  auto lm = D::lanczos(op, D::LanczosOptions().k(2).steps(8));
  EXPECT_NEAR(lm.eigenvalues[0].item<double>(), -9.0, 1e-10);
  EXPECT_NEAR(lm.eigenvalues[1].item<double>(), 6.0, 1e-10);
  auto la = D::lanczos(op, D::LanczosOptions().k(2).steps(8).which(D::Spectrum::LargestAlgebraic));
  EXPECT_NEAR(la.eigenvalues[0].item<double>(), 6.0, 1e-10);
  EXPECT_NEAR(la.eigenvalues[1].item<double>(), 3.0, 1e-10);
}

TEST(Eigen, LanczosStopsAtAnInvariantSubspace) {
  // Only three distinct eigenvalues: the Krylov space has dimension 3.
  auto lambda = torch::tensor({4.0, 4.0, 4.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0}, f64());
  D::DenseOperator op(known_spectrum(lambda, 9));
  auto r = D::lanczos(op, D::LanczosOptions().k(3).steps(10).which(D::Spectrum::LargestAlgebraic));
  EXPECT_EQ(r.iterations, 3);
  EXPECT_EQ(r.matvecs, 3);
  EXPECT_NEAR(r.eigenvalues[0].item<double>(), 4.0, 1e-10);
  EXPECT_NEAR(r.eigenvalues[1].item<double>(), 2.0, 1e-10);
  EXPECT_NEAR(r.eigenvalues[2].item<double>(), 1.0, 1e-10);
  EXPECT_TRUE(r.converged);
}

TEST(Eigen, TopHessianEigenvalueOfLinearRegressionMatchesEigvalsh) {
  auto x = torch::randn({64, 8}, f64()) * torch::tensor({0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 2.0, 5.0}, f64());
  auto y = torch::randn({64}, f64());
  auto w = torch::zeros({8}, f64()).requires_grad_(true);
  D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
  D::HessianOperator h({w}, loss, {{x.narrow(0, 0, 40), y.narrow(0, 0, 40)}, {x.narrow(0, 40, 24), y.narrow(0, 40, 24)}});
  auto exact = torch::linalg_eigvalsh(x.t().mm(x) / 64.0);
  const double top = exact[7].item<double>();
  auto pw = D::power_iteration(h, D::PowerIterationOptions().tol(1e-10).max_iter(500));
  EXPECT_NEAR(pw.eigenvalues[0].item<double>(), top, 1e-7 * top);
  auto lz = D::lanczos(h, D::LanczosOptions().k(2).steps(8));
  EXPECT_NEAR(lz.eigenvalues[0].item<double>(), top, 1e-10 * top);
  EXPECT_NEAR(lz.eigenvalues[1].item<double>(), exact[6].item<double>(), 1e-10 * top);
}

TEST(Eigen, RejectsBadOptions) {
  using stablelearn::testing::expect_error;
  D::DenseOperator op(torch::eye(4, f64()));
  expect_error<stablelearn::ConfigError>([&] { D::power_iteration(op, D::PowerIterationOptions().k(5)); }, "k = 5");
  expect_error<stablelearn::ConfigError>([&] { D::power_iteration(op, D::PowerIterationOptions().tol(0)); }, "tol");
  expect_error<stablelearn::ConfigError>([&] { D::lanczos(op, D::LanczosOptions().k(3).steps(2)); }, "steps = 2");
  expect_error<stablelearn::ConfigError>([&] { D::lanczos(op, D::LanczosOptions().steps(9)); }, "steps = 9");
}

}  // namespace
