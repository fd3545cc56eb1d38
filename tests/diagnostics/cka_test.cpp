// HSIC / CKA: invariances, independence, ignite's HSIC fixture and Kornblith's centring forms.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/cka.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

TEST(Cka, InvariantToOrthogonalTransformsAndIsotropicScaling) {
  auto x = torch::randn({50, 10}, f64());
  auto y = 3.7 * x.mm(D::testing::random_orthogonal(10, 21));
  for (bool debiased : {false, true}) {
    EXPECT_NEAR(D::linear_cka(x, y, debiased), 1.0, 1e-10);
    EXPECT_NEAR(D::rbf_cka(x, y, 0.5, debiased), 1.0, 1e-10);
  }
  // Different representations of the same samples: symmetric and in (0, 1).
  auto z = torch::tanh(x.mm(torch::randn({10, 6}, f64())));
  const double c = D::linear_cka(x, z);
  EXPECT_NEAR(c, D::linear_cka(z, x), 1e-12);
  EXPECT_GT(c, 0.0);
  EXPECT_LT(c, 1.0);
  // Not invariant to a general invertible linear map.
  auto a = torch::randn({10, 10}, f64()) + 0.5 * torch::diag(torch::linspace(1.0, 10.0, 10, f64()));
  EXPECT_LT(D::linear_cka(x, x.mm(a)), 0.999);
}

TEST(Cka, DebiasedCkaOfIndependentFeaturesIsNearZero) {
  double biased = 0.0, debiased = 0.0;
  const int trials = 20;
  for (int s = 0; s < trials; ++s) {
    auto x = torch::randn({64, 10}, f64());
    auto y = torch::randn({64, 10}, f64());
    biased += D::linear_cka(x, y, false) / trials;
    debiased += D::linear_cka(x, y, true) / trials;
  }
  EXPECT_LT(std::abs(debiased), 0.03);
  EXPECT_GT(biased, debiased + 0.05);  // the biased estimator is biased upwards at small n
}

TEST(Cka, UnbiasedHsicMatchesIgnitesFixture) {
  // ignite.metrics.HSIC doctest: X = arange(50) as 10×5, Y = sin(2πX/50), RBF kernels with
  // σ² = median squared distance (threshold 1), unbiased estimator: 0.0922664999961853.
  auto x = torch::arange(50, f64()).reshape({10, 5});
  auto y = torch::sin(x * M_PI * 2.0 / 50.0);
  EXPECT_NEAR(D::hsic(D::gram_rbf(x, 1.0), D::gram_rbf(y, 1.0), D::HsicEstimator::Unbiased), 0.0922664999961853, 1e-7);
}

TEST(Cka, UnbiasedHsicEqualsKornblithsUnbiasedCentring) {
  const std::int64_t n = 30;
  auto k = D::gram_linear(torch::randn({n, 7}, f64()));
  auto l = D::gram_rbf(torch::randn({n, 4}, f64()), 0.8);
  // Kornblith's center_gram(unbiased=True): zero the diagonal, subtract corrected means.
  auto center = [n](torch::Tensor g) {
    g = g.clone();
    g.fill_diagonal_(0.0);
    auto means = g.sum(0) / static_cast<double>(n - 2);
    means = means - means.sum() / (2.0 * (n - 1));
    g = g - means.unsqueeze(1) - means.unsqueeze(0);
    g.fill_diagonal_(0.0);
    return g;
  };
  const double expected = (center(k) * center(l)).sum().item<double>() / static_cast<double>(n * (n - 3));
  EXPECT_NEAR(D::hsic(k, l, D::HsicEstimator::Unbiased), expected, 1e-10 * std::abs(expected));
}

TEST(Cka, BiasedLinearCkaEqualsTheFeatureSpaceForm) {
  auto x = torch::randn({40, 8}, f64());
  auto y = x.narrow(1, 0, 3) + 0.5 * torch::randn({40, 3}, f64());
  auto xc = x - x.mean(0), yc = y - y.mean(0);
  // ‖Ycᵀ Xc‖_F² / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)
  const double expected = yc.t().mm(xc).pow(2).sum().item<double>() /
                          (xc.t().mm(xc).norm().item<double>() * yc.t().mm(yc).norm().item<double>());
  EXPECT_NEAR(D::linear_cka(x, y), expected, 1e-12);
  // Biased HSIC = tr(KCLC)/(n−1)² with an explicit centring matrix.
  auto c = torch::eye(40, f64()) - 1.0 / 40.0;
  auto k = D::gram_linear(x), l = D::gram_linear(y);
  EXPECT_NEAR(D::hsic(k, l), k.mm(c).mm(l).mm(c).trace().item<double>() / (39.0 * 39.0), 1e-9);
}

TEST(Cka, RejectsBadInput) {
  using stablelearn::testing::expect_error;
  auto k = torch::eye(3, f64());
  expect_error<stablelearn::ShapeError>([&] { D::hsic(k, k, D::HsicEstimator::Unbiased); }, "n ≥ 4");
  expect_error<stablelearn::ShapeError>([&] { D::hsic(k, torch::eye(4, f64())); }, "same size");
  expect_error<stablelearn::ShapeError>([&] { D::linear_cka(torch::randn({5, 2}), torch::randn({6, 2})); }, "samples");
  expect_error<stablelearn::DataError>([&] { D::gram_rbf(torch::zeros({5, 2})); }, "median");
}

}  // namespace
