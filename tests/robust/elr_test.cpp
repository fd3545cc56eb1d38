// ELR (robust/elr.h): targets and loss against values computed by hand in double precision, the
// gradient against its closed form, and bad options.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/robust/elr.h"
#include "testing.h"

namespace sl = stablelearn;

namespace {

using Row = std::vector<double>;

Row softmax(const Row& z) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  Row p(z.size());
  double s = 0;
  for (std::size_t c = 0; c < z.size(); ++c) s += p[c] = std::exp(z[c] - m);
  for (auto& v : p) v /= s;
  return p;
}

Row clamp(Row p) {
  for (auto& v : p) v = std::min(std::max(v, 1e-4), 1 - 1e-4);
  return p;
}

TEST(Elr, TargetsAndLossMatchTheFormulaOverTwoCalls) {
  const std::vector<Row> z1 = {{2.0, -1.0, 0.5}, {0.1, 0.2, 9.5}}, z2 = {{1.0, 1.0, -3.0}, {0.0, 4.0, 1.0}};
  const std::vector<std::int64_t> y = {0, 1}, idx = {3, 1};
  const double beta = 0.7, lambda = 3.0;
  sl::robust::ElrLoss elr(5, 3, {beta, lambda});
  std::vector<Row> t(2, Row(3, 0.0));  // the hand-kept targets of samples 3 and 1
  for (const auto* z : {&z1, &z2}) {
    const auto logits = torch::tensor({(*z)[0][0], (*z)[0][1], (*z)[0][2], (*z)[1][0], (*z)[1][1], (*z)[1][2]},
                                      torch::kFloat64).reshape({2, 3}).to(torch::kFloat32);
    const double got = elr(logits, torch::tensor(y, torch::kInt64), torch::tensor(idx, torch::kInt64)).item<double>();
    double ce = 0, reg = 0;
    for (int b = 0; b < 2; ++b) {
      const auto p = clamp(softmax((*z)[static_cast<std::size_t>(b)]));
      double s = 0;
      for (double v : p) s += v;
      double dot = 0;
      for (int c = 0; c < 3; ++c) {
        auto& tc = t[static_cast<std::size_t>(b)][static_cast<std::size_t>(c)];
        tc = beta * tc + (1 - beta) * p[static_cast<std::size_t>(c)] / s;
        dot += tc * p[static_cast<std::size_t>(c)];
      }
      ce += -std::log(softmax((*z)[static_cast<std::size_t>(b)])[static_cast<std::size_t>(y[static_cast<std::size_t>(b)])]);
      reg += std::log(1 - dot);
    }
    const double want = ce / 2 + lambda * reg / 2;
    EXPECT_NEAR(got, want, 2e-6 * std::abs(want)) << "call " << (z == &z1 ? 1 : 2);
    EXPECT_NEAR(elr.last_regulariser(), lambda * reg / 2, 2e-6);
  }
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(elr.targets()[idx[static_cast<std::size_t>(b)]][c].item<double>(), t[static_cast<std::size_t>(b)][static_cast<std::size_t>(c)], 1e-6);
  // Samples not in a batch keep zero targets.
  EXPECT_EQ(elr.targets()[0].abs().sum().item<double>(), 0.0);
}

TEST(Elr, GradientIsCrossEntropyPlusThePullTowardsTheTarget) {
  // With t fixed (the update uses detached p), for one sample of B:
  //   ∂L/∂z = (p − e_y)/B + (λ/B) · (−1/(1 − ⟨t,p⟩)) · (diag(p) − p pᵀ) t   (p unclamped here)
  const double beta = 0.5, lambda = 2.0;
  sl::robust::ElrLoss elr(2, 4, {beta, lambda}, torch::kCPU);
  auto logits = torch::tensor({{0.3, -0.2, 1.1, 0.4}, {-1.0, 0.5, 0.0, 0.2}}, torch::kFloat64).to(torch::kFloat32);
  const auto labels = torch::tensor({2, 0}, torch::kInt64), idx = torch::tensor({0, 1}, torch::kInt64);
  elr(logits, labels, idx);  // fills the targets once
  const auto t = elr.targets().clone().to(torch::kFloat64);
  logits = logits.clone().requires_grad_();
  const auto loss = elr(logits, labels, idx);  // second call: targets move again, then the loss
  const auto g = torch::autograd::grad({loss}, {logits})[0].to(torch::kFloat64);
  const auto tt = elr.targets().to(torch::kFloat64);
  for (int b = 0; b < 2; ++b) {
    Row z(4);
    for (int c = 0; c < 4; ++c) z[static_cast<std::size_t>(c)] = logits[b][c].item<double>();
    const auto p = softmax(z);
    double dot = 0;
    for (int c = 0; c < 4; ++c) dot += tt[b][c].item<double>() * p[static_cast<std::size_t>(c)];
    double pt = dot;
    for (int c = 0; c < 4; ++c) {
      const double jt = p[static_cast<std::size_t>(c)] * (tt[b][c].item<double>() - pt);  // ((diag(p) − p pᵀ) t)_c
      const double want = (p[static_cast<std::size_t>(c)] - (c == labels[b].item<int>() ? 1.0 : 0.0)) / 2 +
                          (lambda / 2) * (-1.0 / (1 - dot)) * jt;
      EXPECT_NEAR(g[b][c].item<double>(), want, 1e-6) << b << "," << c;
    }
  }
  EXPECT_FALSE(torch::allclose(t, tt));  // the second call did update the targets
}

TEST(Elr, BadOptionsAndShapesAreClearErrors) {
  sl::testing::expect_error<sl::ConfigError>([] { sl::robust::ElrLoss(10, 3, {1.0, 3.0}); }, "beta = 1: expected a momentum in [0, 1)");
  sl::testing::expect_error<sl::ConfigError>([] { sl::robust::ElrLoss(10, 3, {0.7, -1.0}); }, "lambda = -1: expected a weight >= 0");
  sl::robust::ElrLoss elr(4, 3);
  sl::testing::expect_error<sl::ShapeError>(
      [&] { elr(torch::zeros({2, 5}), torch::zeros({2}, torch::kInt64), torch::zeros({2}, torch::kInt64)); }, "expected [B, 3]");
  sl::testing::expect_error<sl::ShapeError>(
      [&] { elr(torch::zeros({2, 3}), torch::zeros({2}, torch::kInt64), torch::tensor({0, 4}, torch::kInt64)); },
      "sample indices must be in 0..3");
}

}  // namespace
