// Synaptic Intelligence and Memory Aware Synapses against hand-derived values
// (include/stablelearn/continual/regularizers.h).
#include <cmath>

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "stablelearn/continual/regularizers.h"
#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using namespace sl::continual;

namespace {

/// Gradient descent with step η on L(θ) = ½ Σ a_i (θ_i − m_i)², calling SI after every step with
/// the exact gradient. Returns θ after `steps` steps.
void descend(SynapticIntelligence& si, torch::Tensor theta, const torch::Tensor& a, const torch::Tensor& m, double eta,
             int steps) {
  for (int k = 0; k < steps; ++k) {
    const auto g = a * (theta - m);
    theta.sub_(eta * g);
    si.after_step({theta}, {g});
  }
}

/// Closed form for that descent from θ_0: r = 1 − η a, g_k = a r^k (θ_0 − m), Δθ_k = −η g_k, so
/// ω = −Σ g_k Δθ_k = η a² (θ_0 − m)² (1 − r^{2K}) / (1 − r²), and the task's total change is
/// Δ = (θ_0 − m)(r^K − 1).
double omega_closed_form(double a, double theta0, double m, double eta, int K) {
  const double r = 1 - eta * a, d = theta0 - m;
  return eta * a * a * d * d * (1 - std::pow(r, 2 * K)) / (1 - r * r);
}
double delta_closed_form(double a, double theta0, double m, double eta, int K) {
  return (theta0 - m) * (std::pow(1 - eta * a, K) - 1);
}

}  // namespace

TEST(SynapticIntelligence, PathIntegralOfAQuadraticMatchesTheGeometricSeries) {
  const double eta = 0.1, c = 0.3, xi = 0.3;
  const int K = 25;
  auto theta = torch::tensor({2.0, -1.0, 0.5}, torch::kFloat64);
  const auto a = torch::tensor({1.0, 3.0, 0.5}, torch::kFloat64);
  const auto m = torch::tensor({0.0, 1.0, 0.5}, torch::kFloat64);  // the third is already at its optimum
  const auto start = theta.clone();
  SynapticIntelligence si(c, xi);
  EXPECT_FALSE(si.penalty({theta}).defined());  // nothing to protect before the first task ends
  si.begin_task({theta});
  descend(si, theta, a, m, eta, K);
  std::vector<double> big_omega(3);
  for (int i = 0; i < 3; ++i) {
    const double ai = a[i].item<double>(), t0 = start[i].item<double>(), mi = m[i].item<double>();
    const double w = omega_closed_form(ai, t0, mi, eta, K), D = delta_closed_form(ai, t0, mi, eta, K);
    EXPECT_NEAR(si.path_integral()[0][i].item<double>(), w, 1e-12) << i;
    big_omega[i] = w / (D * D + xi);
  }
  si.end_task({theta});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(si.importance()[0][i].item<double>(), big_omega[i], 1e-12) << i;
  EXPECT_DOUBLE_EQ(si.importance()[0][2].item<double>(), 0.0);  // never moved: no importance
  EXPECT_TRUE(torch::equal(si.anchor()[0], theta));
  // Penalty c Σ Ω (θ − θ*)² at θ* + (1, 1, 1).
  const auto moved = theta + 1.0;
  EXPECT_NEAR(si.penalty({moved}).item<double>(), c * (big_omega[0] + big_omega[1] + big_omega[2]), 1e-12);
  EXPECT_NEAR(si.penalty({theta}).item<double>(), 0.0, 1e-15);

  // Second task: ω restarts from 0 (Zenke et al.; not the reference's running sum), Ω accumulates
  // and the change Δ is measured from the second task's start.
  const auto a2 = torch::tensor({2.0, 0.5, 1.0}, torch::kFloat64);
  const auto m2 = torch::tensor({1.0, 1.0, -1.0}, torch::kFloat64);
  const auto start2 = theta.clone();
  si.begin_task({theta});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(si.path_integral()[0][i].item<double>(), 0.0);
  descend(si, theta, a2, m2, eta, K);
  si.end_task({theta});
  for (int i = 0; i < 3; ++i) {
    const double ai = a2[i].item<double>(), t0 = start2[i].item<double>(), mi = m2[i].item<double>();
    const double w = omega_closed_form(ai, t0, mi, eta, K), D = delta_closed_form(ai, t0, mi, eta, K);
    EXPECT_NEAR(si.importance()[0][i].item<double>(), big_omega[i] + w / (D * D + xi), 1e-12) << i;
  }
}

TEST(SynapticIntelligence, PenaltyGradientIsTwoCOmegaTimesTheDisplacement) {
  auto theta = torch::tensor({1.0, 2.0}, torch::kFloat64);
  SynapticIntelligence si(0.5, 1.0);
  si.begin_task({theta});
  // One step of size −1 in both coordinates with gradient (2, −3): ω = (−2·(−1), 3·(−1)) = (2, −3)
  // (a negative ω: the step went uphill in coordinate 1), Δ = −1, Ω = ω / (1 + 1).
  theta.sub_(1.0);
  si.after_step({theta}, {torch::tensor({2.0, -3.0}, torch::kFloat64)});
  si.end_task({theta});
  EXPECT_TRUE(torch::allclose(si.importance()[0], torch::tensor({1.0, -1.5}, torch::kFloat64)));
  auto p = torch::tensor({0.5, 3.0}, torch::kFloat64).requires_grad_(true);
  const auto pen = si.penalty({p});
  // 0.5 · (1 · 0.5² + (−1.5) · 2²) = 0.5 · (0.25 − 6) = −2.875.
  EXPECT_NEAR(pen.item<double>(), -2.875, 1e-12);
  const auto g = torch::autograd::grad({pen}, {p})[0];
  EXPECT_TRUE(torch::allclose(g, torch::tensor({2 * 0.5 * 1.0 * 0.5, 2 * 0.5 * -1.5 * 2.0}, torch::kFloat64)));
}

TEST(SynapticIntelligence, RejectsMisuse) {
  EXPECT_THROW(SynapticIntelligence(0.1, 0.0), sl::ConfigError);
  EXPECT_THROW(SynapticIntelligence(-1, 0.1), sl::ConfigError);
  SynapticIntelligence si(0.1, 0.1);
  auto theta = torch::zeros({2});
  EXPECT_THROW(si.after_step({theta}, {theta}), sl::UsageError);
  si.begin_task({theta});
  si.end_task({theta});
  EXPECT_THROW(si.penalty({torch::zeros({3})}), sl::ShapeError);
}

TEST(MemoryAwareSynapses, ImportanceOfALinearModelIsTheMeanAbsoluteGradient) {
  // F(x) = w·x + b: ∂‖F‖²/∂w = 2 (w·x + b) x, ∂/∂b = 2 (w·x + b).
  // w = (1, −2), b = 0.5; x1 = (1, 1): F = −0.5 -> ∂w = (−1, −1), ∂b = −1;
  //                       x2 = (3, 1): F = 1.5  -> ∂w = (9, 3),   ∂b = 3.
  // Ω_w = mean |·| = (5, 2), Ω_b = 2 (the absolute value is taken per sample: the mean gradient
  // would be (4, 1) and 1).
  auto w = torch::tensor({1.0, -2.0}, torch::kFloat64).requires_grad_(true);
  auto b = torch::tensor({0.5}, torch::kFloat64).requires_grad_(true);
  const auto xs = torch::tensor({{1.0, 1.0}, {3.0, 1.0}}, torch::kFloat64);
  auto out = [&](std::int64_t n) { return (w * xs[n]).sum() + b; };
  MemoryAwareSynapses mas(0.1);
  EXPECT_FALSE(mas.penalty({w, b}).defined());
  mas.accumulate_importance({w, b}, 2, out);
  mas.end_task({w, b});
  EXPECT_TRUE(torch::allclose(mas.importance()[0], torch::tensor({5.0, 2.0}, torch::kFloat64), 1e-14, 1e-14));
  EXPECT_TRUE(torch::allclose(mas.importance()[1], torch::tensor({2.0}, torch::kFloat64), 1e-14, 1e-14));
  EXPECT_TRUE(torch::equal(mas.anchor()[0], w.detach()));
  // Penalty λ Σ Ω (θ − θ*)² after moving w by (1, −1) and b by 2: 0.1 · (5 + 2 + 2·4) = 1.5.
  const auto w2 = (w + torch::tensor({1.0, -1.0}, torch::kFloat64)).detach().requires_grad_(true);
  const auto b2 = (b + 2.0).detach().requires_grad_(true);
  EXPECT_NEAR(mas.penalty({w2, b2}).item<double>(), 1.5, 1e-12);

  // Second task (task 0 counted too): importances accumulate, the anchor moves to the new θ.
  // At w2 = (2, −3), b2 = 2.5 with the single sample x = (1, 0): F = 4.5 -> ∂w = (9, 0), ∂b = 9.
  const auto x3 = torch::tensor({1.0, 0.0}, torch::kFloat64);
  mas.accumulate_importance({w2, b2}, 1, [&](std::int64_t) { return (w2 * x3).sum() + b2; });
  mas.end_task({w2, b2});
  EXPECT_TRUE(torch::allclose(mas.importance()[0], torch::tensor({14.0, 2.0}, torch::kFloat64), 1e-14, 1e-14));
  EXPECT_TRUE(torch::allclose(mas.importance()[1], torch::tensor({11.0}, torch::kFloat64), 1e-14, 1e-14));
  EXPECT_TRUE(torch::equal(mas.anchor()[1], b2.detach()));
  EXPECT_NEAR(mas.penalty({w2, b2}).item<double>(), 0.0, 1e-15);
}

TEST(MemoryAwareSynapses, VectorOutputsUseTheSquaredNorm) {
  // F(x) = W x with W = [[1, 0], [0, 2]], x = (1, 1): ‖F‖² = 1 + 4, ∂/∂W = 2 F xᵀ = [[2, 2], [4, 4]].
  auto W = torch::tensor({{1.0, 0.0}, {0.0, 2.0}}, torch::kFloat64).requires_grad_(true);
  auto unused = torch::ones({3}, torch::kFloat64).requires_grad_(true);
  MemoryAwareSynapses mas(1.0);
  mas.accumulate_importance({W, unused}, 1, [&](std::int64_t) { return W.mv(torch::ones({2}, torch::kFloat64)); });
  EXPECT_TRUE(torch::allclose(mas.importance()[0], torch::tensor({{2.0, 2.0}, {4.0, 4.0}}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(mas.importance()[1], torch::zeros({3}, torch::kFloat64)));  // not reached: 0
  EXPECT_THROW(mas.accumulate_importance({W, unused}, 0, {}), sl::UsageError);
  EXPECT_THROW(MemoryAwareSynapses(-0.1), sl::ConfigError);
}
