// Low-rank trajectory extrapolation: a hand-computed 1-D case, exact rank-1 recovery, noise and
// the fitting window.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/relex.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

TEST(Relex, OneDimensionalCaseByHand) {
  // m = [1, 2, 4] around base 0; OLS on τ = 0, 1, 2: slope 1.5, intercept 5/6; τ* = 3 → 16/3.
  auto f = D::relex_fit(torch::zeros({1}, f64()), torch::tensor({1.0, 2.0, 4.0}, f64()).unsqueeze(1));
  EXPECT_NEAR(f.predict(1.0).item<double>(), 16.0 / 3.0, 1e-12);
  EXPECT_NEAR(f.predict(0.0).item<double>(), 1.5 * 2.0 + 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(f.explained_variance, 1.0, 1e-12);
  EXPECT_NEAR(f.reconstruct(2).item<double>(), 4.0, 1e-12);
}

TEST(Relex, RecoversAnExactRankOneLinearTrajectory) {
  const std::int64_t t = 20, d = 300;
  auto base = torch::randn({d}, f64());
  auto v = torch::randn({d}, f64());
  auto steps = torch::arange(1, t + 1, f64());
  auto history = base + (0.3 * steps + 0.1).unsqueeze(1) * v;
  auto f = D::relex_fit(base, history);
  EXPECT_NEAR(f.explained_variance, 1.0, 1e-12);
  // 15 steps past step 20: θ₀ + (0.3 · 35 + 0.1) v.
  auto expected = base + (0.3 * 35.0 + 0.1) * v;
  EXPECT_LT(max_abs_diff(f.predict(15.0), expected), 1e-9);
  for (std::int64_t i : {0, 7, 19}) EXPECT_LT(max_abs_diff(f.reconstruct(i), history[i]), 1e-10);
  EXPECT_EQ(f.basis.sizes(), (std::vector<std::int64_t>{1, d}));
  EXPECT_EQ(f.coefficients.sizes(), (std::vector<std::int64_t>{t, 1}));
}

TEST(Relex, ExtrapolatesWithinTheNoise) {
  const std::int64_t t = 40, d = 500;
  const double noise = 1e-3;
  auto base = torch::randn({d}, f64());
  auto v = torch::randn({d}, f64()) / std::sqrt(static_cast<double>(d));
  auto steps = torch::arange(1, t + 1, f64());
  auto clean = base + (0.5 * steps).unsqueeze(1) * v;
  auto f = D::relex_fit(base, clean + noise * torch::randn({t, d}, f64()));
  auto truth = base + (0.5 * (t + 20)) * v;
  const double rms = (f.predict(20.0) - truth).pow(2).mean().sqrt().item<double>();
  EXPECT_LT(rms, noise);  // averaging over 40 steps and the projection on one direction
  EXPECT_GT(f.explained_variance, 0.99);
}

TEST(Relex, TheWindowFitsOnlyTheLastSteps) {
  // The coefficient changes slope at step 10; a 5-step window follows the new slope exactly.
  auto v = torch::randn({50}, f64());
  auto steps = torch::arange(1, 21, f64());
  auto coef = torch::where(steps <= 10, steps, 10 + 3 * (steps - 10));
  auto history = coef.unsqueeze(1) * v;
  auto base = torch::zeros({50}, f64());
  auto windowed = D::relex_fit(base, history, D::RelexOptions().window(5));
  EXPECT_LT(max_abs_diff(windowed.predict(4.0), (10 + 3 * 14.0) * v), 1e-9);
  auto full = D::relex_fit(base, history);
  EXPECT_GT(max_abs_diff(full.predict(4.0), (10 + 3 * 14.0) * v), 1.0);
}

TEST(Relex, RankTwoCapturesTwoDirections) {
  auto base = torch::zeros({40}, f64());
  auto q = D::testing::random_orthogonal(40, 60);
  auto s = torch::arange(1, 13, f64());
  auto history = s.unsqueeze(1) * q.select(1, 0) + (s * s / 10.0).unsqueeze(1) * q.select(1, 1) +
                 torch::sin(s).unsqueeze(1) * q.select(1, 2);
  auto r1 = D::relex_fit(base, history);
  auto r2 = D::relex_fit(base, history, D::RelexOptions().rank(2));
  auto r3 = D::relex_fit(base, history, D::RelexOptions().rank(3));
  EXPECT_LT(r1.explained_variance, r2.explained_variance);
  EXPECT_LT(r2.explained_variance, 1.0);
  EXPECT_NEAR(r3.explained_variance, 1.0, 1e-12);
  EXPECT_LT(max_abs_diff(r3.reconstruct(5), history[5]), 1e-10);
}

TEST(Relex, RejectsBadInput) {
  using stablelearn::testing::expect_error;
  auto h = torch::randn({5, 3}, f64());
  expect_error<stablelearn::ShapeError>([&] { D::relex_fit(torch::zeros({4}, f64()), h); }, "base has 4");
  expect_error<stablelearn::ConfigError>([&] { D::relex_fit(torch::zeros({3}, f64()), h, D::RelexOptions().rank(6)); },
                                         "rank = 6");
  expect_error<stablelearn::ConfigError>([&] { D::relex_fit(torch::zeros({3}, f64()), h, D::RelexOptions().window(1)); },
                                         "window = 1");
  expect_error<stablelearn::DataError>([&] { D::relex_fit(torch::zeros({3}, f64()), torch::zeros({4, 3}, f64())); }, "equals");
}

}  // namespace
