// Policy diagnosis (rl/diagnosis.h): the non-Lipschitz direction against central differences and a
// closed form, power iteration against an explicitly formed matrix's eigendecomposition, Λ and FGSM
// on hand examples, the oscillation by hand, episode collection against evaluate(), adversarial
// DDQN's options and determinism.
#include "stablelearn/rl/diagnosis.h"

#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/dqn.h"

namespace sl = stablelearn;
using namespace sl::rl;

namespace {

// CE(softmax(q), onehot(a)) = logsumexp(q) − q_a, in double.
double ce_at(const QFunction& q, const torch::Tensor& s, std::int64_t a) {
  const auto qv = q(s.unsqueeze(0))[0];
  return (qv.logsumexp(0) - qv[a]).item<double>();
}

}  // namespace

// v(s) of a two-layer tanh Q-network (D = 5, A = 3, double) against central differences of the
// cross-entropy with a* held at argmax Q(s): h = 1e-5, error O(h²) ≈ 1e-10.
TEST(Diagnosis, DirectionMatchesCentralDifferences) {
  torch::manual_seed(3);
  const auto W1 = torch::randn({7, 5}, torch::kDouble), b1 = torch::randn({7}, torch::kDouble);
  const auto W2 = torch::randn({3, 7}, torch::kDouble), b2 = torch::randn({3}, torch::kDouble);
  QFunction q = [&](const torch::Tensor& s) { return torch::tanh(s.matmul(W1.t()) + b1).matmul(W2.t()) + b2; };
  const auto S = torch::randn({4, 5}, torch::kDouble);
  const auto v = non_lipschitz_directions(q, S);
  ASSERT_EQ(v.sizes(), S.sizes());
  const double h = 1e-5;
  for (std::int64_t i = 0; i < 4; ++i) {
    const auto a = q(S[i].unsqueeze(0))[0].argmax().item<std::int64_t>();
    for (std::int64_t d = 0; d < 5; ++d) {
      auto sp = S[i].clone(), sm = S[i].clone();
      sp[d] += h;
      sm[d] -= h;
      const double fd = (ce_at(q, sp, a) - ce_at(q, sm, a)) / (2 * h);
      EXPECT_NEAR(v[i][d].item<double>(), fd, 1e-8) << "row " << i << " dim " << d;
    }
  }
  // normalise: unit rows in the same directions.
  const auto u = non_lipschitz_directions(q, S, true);
  for (std::int64_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(u[i].norm().item<double>(), 1.0, 1e-12);
    EXPECT_TRUE(torch::allclose(u[i] * v[i].norm(), v[i], 1e-10, 1e-12));
  }
  EXPECT_THROW(non_lipschitz_directions(q, torch::zeros({5}, torch::kDouble)), sl::ShapeError);
}

// The DDQN's own dueling network (ReLU, converted to double) against central differences.
TEST(Diagnosis, DirectionOfDuelingNetMatchesCentralDifferences) {
  torch::manual_seed(11);
  DuelingQNet net(4, 2, 16);
  net->to(torch::kDouble);
  QFunction q = [&](const torch::Tensor& s) { return net->forward(s); };
  const auto S = 0.5 * torch::randn({6, 4}, torch::kDouble);
  const auto v = non_lipschitz_directions(q, S);
  const double h = 1e-6;  // ReLU: piecewise linear, exact away from kinks
  for (std::int64_t i = 0; i < 6; ++i) {
    const auto a = q(S[i].unsqueeze(0))[0].argmax().item<std::int64_t>();
    for (std::int64_t d = 0; d < 4; ++d) {
      auto sp = S[i].clone(), sm = S[i].clone();
      sp[d] += h;
      sm[d] -= h;
      EXPECT_NEAR(v[i][d].item<double>(), (ce_at(q, sp, a) - ce_at(q, sm, a)) / (2 * h), 1e-7) << i << " " << d;
    }
  }
}

// Linear Q(s) = W s with W = [[1, 2], [−1, 0]] at s = (1, 0.5): Q = (2, −1), a* = 0,
// p₁ = 1 / (1 + e³); v = Σ_a (p_a − 1[a = 0]) W_a = p₁ (W₁ − W₀) = p₁ (−2, −2), ‖v‖ = 2√2 p₁.
// FGSM with ε = 0.1 and scale (1, 2): s + 0.1 (1, 2) ⊙ sign(v) = (0.9, 0.3).
TEST(Diagnosis, LinearPolicyDirectionAndFgsmByHand) {
  const auto W = torch::tensor({{1.0, 2.0}, {-1.0, 0.0}}, torch::kDouble);
  QFunction q = [&](const torch::Tensor& s) { return s.matmul(W.t()); };
  const auto s = torch::tensor({{1.0, 0.5}}, torch::kDouble);
  const double p1 = 1 / (1 + std::exp(3.0));
  const auto v = non_lipschitz_directions(q, s);
  EXPECT_NEAR(v[0][0].item<double>(), -2 * p1, 1e-15);
  EXPECT_NEAR(v[0][1].item<double>(), -2 * p1, 1e-15);
  EXPECT_NEAR(direction_norms(q, s)[0].item<double>(), 2 * std::sqrt(2.0) * p1, 1e-15);
  const auto adv = fgsm(q, s, 0.1, torch::tensor({1.0, 2.0}, torch::kDouble));
  EXPECT_NEAR(adv[0][0].item<double>(), 0.9, 1e-15);
  EXPECT_NEAR(adv[0][1].item<double>(), 0.3, 1e-15);
  // Without a scale every dimension moves by ε; ε = 0 leaves the state.
  const auto adv1 = fgsm(q, s, 0.25);
  EXPECT_NEAR(adv1[0][0].item<double>(), 0.75, 1e-15);
  EXPECT_NEAR(adv1[0][1].item<double>(), 0.25, 1e-15);
  EXPECT_TRUE(torch::equal(fgsm(q, s, 0.0), s));
  // The step raises the cross-entropy against the greedy action (first order: by ε ‖v‖₁ > 0).
  EXPECT_GT(ce_at(q, adv1[0], 0), ce_at(q, s[0], 0));
  EXPECT_THROW(fgsm(q, s, -0.1), sl::ConfigError);
  EXPECT_THROW(fgsm(q, s, 0.1, torch::ones({3}, torch::kDouble)), sl::ShapeError);
}

// Power iteration on L = VᵀV (never formed) against the top eigenpair of the explicitly formed L
// from torch::linalg_eigh, for V with a planted spectrum (singular values 3, 2, 1.5, 1, 0.5, 0.2).
TEST(Diagnosis, PowerIterationMatchesExplicitEigendecomposition) {
  torch::manual_seed(5);
  const auto Z = std::get<0>(torch::linalg_qr(torch::randn({40, 6}, torch::kDouble)));
  const auto R = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kDouble)));
  const auto V = Z.matmul(torch::diag(torch::tensor({3.0, 2.0, 1.5, 1.0, 0.5, 0.2}, torch::kDouble))).matmul(R.t());
  const auto L = V.t().matmul(V);
  const auto eig = torch::linalg_eigh(L);
  const auto top = std::get<1>(eig).select(1, 5);  // ascending eigenvalues
  const double lambda = std::get<0>(eig)[5].item<double>();
  EXPECT_NEAR(lambda, 9.0, 1e-10);
  const auto pd = principal_direction(V);
  EXPECT_TRUE(pd.converged);
  EXPECT_NEAR(pd.eigenvalue, lambda, 1e-9);
  EXPECT_NEAR(std::abs(pd.direction.dot(top).item<double>()), 1.0, 1e-9);
  EXPECT_LT(pd.residual, 1e-4);
  EXPECT_NEAR(pd.direction.norm().item<double>(), 1.0, 1e-12);
  // Sign convention: the largest-magnitude entry is positive.
  const auto imax = pd.direction.abs().argmax().item<std::int64_t>();
  EXPECT_GT(pd.direction[imax].item<double>(), 0);
  // Rank one: rows c_i u give u and Σ c_i².
  const auto u = torch::tensor({0.6, 0.0, -0.8}, torch::kDouble);
  const auto c = torch::tensor({1.0, -2.0, 0.5}, torch::kDouble);
  const auto r1 = principal_direction(c.unsqueeze(1) * u.unsqueeze(0));
  EXPECT_NEAR(r1.eigenvalue, 1 + 4 + 0.25, 1e-12);
  EXPECT_NEAR(r1.direction[0].item<double>(), -0.6, 1e-12);  // sign flipped so −0.8 → +0.8
  EXPECT_NEAR(r1.direction[2].item<double>(), 0.8, 1e-12);
  // All-zero directions: eigenvalue 0.
  EXPECT_EQ(principal_direction(torch::zeros({3, 2})).eigenvalue, 0.0);
}

// Baseline rows (3, 0), (0, 1): L(S) = diag(9, 1), G_S = e₁, λ_max = 9.
//   transformed rows along e₂            → G = e₂,          Λ = 1/9
//   transformed rows along (1, 1)/√2     → GᵀLG = (9 + 1)/2, Λ = 5/9
//   the baseline itself                  → Λ = 1
TEST(Diagnosis, FeatureCorrelationQuotientByHand) {
  const auto base = torch::tensor({{3.0, 0.0}, {0.0, 1.0}}, torch::kDouble);
  EXPECT_NEAR(feature_correlation_quotient(base, base), 1.0, 1e-12);
  EXPECT_NEAR(feature_correlation_quotient(torch::tensor({{0.0, 2.0}, {0.0, -5.0}}, torch::kDouble), base), 1.0 / 9, 1e-12);
  EXPECT_NEAR(feature_correlation_quotient(torch::tensor({{1.0, 1.0}, {-2.0, -2.0}}, torch::kDouble), base), 5.0 / 9, 1e-12);
  // Rows scaled or sign-flipped do not change the principal direction: Λ = 1.
  EXPECT_NEAR(feature_correlation_quotient(-2.5 * base, base), 1.0, 1e-12);
  EXPECT_TRUE(std::isnan(feature_correlation_quotient(base, torch::zeros({2, 2}, torch::kDouble))));
  EXPECT_THROW(feature_correlation_quotient(base, torch::zeros({2, 3}, torch::kDouble)), sl::ShapeError);
}

// [1, 3, 2]: mean |Δ| = (2 + 1)/2 = 1.5, mean = 2 → 0.75; a constant series 0; one value NaN.
TEST(Diagnosis, TemporalOscillationByHand) {
  EXPECT_DOUBLE_EQ(temporal_oscillation({1, 3, 2}), 0.75);
  EXPECT_DOUBLE_EQ(temporal_oscillation({4, 4, 4, 4}), 0.0);
  EXPECT_TRUE(std::isnan(temporal_oscillation({1})));
  EXPECT_TRUE(std::isnan(temporal_oscillation({0, 0})));
}

// CartPole pays 1 per step, so every episode's state count equals its return; the returns equal
// evaluate()'s for the same policy and seed; the first state lies in the reset box [−0.05, 0.05)⁴.
TEST(Diagnosis, CollectEpisodesMatchesEvaluate) {
  PolicyFn lean = [](const float* obs, std::int64_t n, std::int32_t* a) {
    for (std::int64_t i = 0; i < n; ++i) a[i] = obs[4 * i + 2] + 0.5f * obs[4 * i + 3] > 0 ? 1 : 0;
  };
  const auto r = collect_episodes("CartPole-v1", lean, 5, 42);
  const auto want = evaluate("CartPole-v1", lean, 5, 42);
  ASSERT_EQ(r.states.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r.returns[i], want[i]) << i;
    EXPECT_EQ(r.states[i].size(0), static_cast<std::int64_t>(want[i])) << i;
    EXPECT_EQ(r.states[i].size(1), 4);
    EXPECT_LE(r.states[i][0].abs().max().item<float>(), 0.05f);
  }
  EXPECT_THROW(collect_episodes("CartPole-v1", lean, 0, 1), sl::ConfigError);
}

TEST(Diagnosis, AdversarialDdqnOptionsAndDeterminism) {
  DdqnOptions o;
  EXPECT_EQ(o.adv_eps, 0.0);  // off by default: plain DDQN
  o.adv_eps = -0.1;
  try {
    Ddqn d(o);
    FAIL() << "expected a ConfigError naming ddqn.adv_eps";
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ddqn.adv_eps"), std::string::npos) << e.what();
  }
  o.adv_eps = 0.2;
  o.learning_starts = 200;
  o.train_freq = 50;
  o.gradient_steps = 5;
  o.seed = 9;
  auto run = [&](double eps) {
    o.adv_eps = eps;
    Ddqn d(o);
    d.train(600);
    std::vector<float> w;
    for (const auto& t : d.model()->parameters()) {
      auto f = t.detach().flatten();
      w.insert(w.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    return w;
  };
  const auto a = run(0.2);
  EXPECT_EQ(a, run(0.2));
  EXPECT_NE(a, run(0.0));  // the perturbation changes the updates
}

// map(r, c) = cos(2π (2 r / 8 + 3 c / 12)) on 8 × 12: all the energy at k = ±(2/8, 3/12), each
// |FFT|² = (8 · 12 / 2)² = 2304, at the shifted indices (4 ± 2, 6 ± 3); the spread is
// ‖(1/4, 1/4)‖ = √2/4. A constant map has no spread (NaN); adding a constant does not change it.
TEST(Diagnosis, PowerSpectrumAndSpreadOfACosine) {
  const double pi = std::acos(-1.0);
  auto map = torch::empty({8, 12}, torch::kDouble);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 12; ++c) map[r][c] = std::cos(2 * pi * (2.0 * r / 8 + 3.0 * c / 12));
  const auto P = power_spectrum_2d(map);
  ASSERT_EQ(P.sizes(), map.sizes());
  EXPECT_NEAR(P[6][9].item<double>(), 2304.0, 1e-8);
  EXPECT_NEAR(P[2][3].item<double>(), 2304.0, 1e-8);
  EXPECT_NEAR(P.sum().item<double>(), 2 * 2304.0, 1e-7);
  EXPECT_NEAR(P.sum().item<double>(), 96 * map.pow(2).sum().item<double>(), 1e-7);  // Parseval
  EXPECT_NEAR(spectral_spread(map), std::sqrt(2.0) / 4, 1e-12);
  EXPECT_NEAR(spectral_spread(map + 5.0), std::sqrt(2.0) / 4, 1e-12);
  EXPECT_TRUE(std::isnan(spectral_spread(torch::ones({4, 4}, torch::kDouble))));
  EXPECT_THROW(power_spectrum_2d(torch::ones({4}, torch::kDouble)), sl::ShapeError);
}
