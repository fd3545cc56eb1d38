// Causal minimax (theory/causal_minimax.h) against hand-derived values on a 3-variable SEM, the F
// distribution against its closed forms, the Chow statistic on a hand example, the estimators on
// large samples, and bad input.
//
// The hand SEM (nodes 0 Y, 1 M, 2 Z):
//   Y = ε_Y,  M = t · Y + ε_M (mutable, base weight 1),  Z = Y + M + ε_Z,  every σ = 1.
// At scale t: var Y = 1, cov(Y, M) = t, var M = t² + 1, Z = (1 + t) Y + ε_M + ε_Z so
//   var Z = (1 + t)² + 2, cov(Y, Z) = 1 + t, cov(M, Z) = t (1 + t) + 1.
// Training on t ∈ {−1, 1} (equal weights), pooled second moments:
//   M_ZZ = ((0 + 2) + (4 + 2)) / 2 = 4, M_ZY = (0 + 2) / 2 = 1          → b_Z = 1/4;
//   M_MM = 2, M_MZ = ((−1·0 + 1) + (1·2 + 1)) / 2 = 2, M_MY = 0            → on {M, Z}:
//   [[2, 2], [2, 4]] β = [0, 1] → β = (−1/2, 1/2): prediction (Z − M)/2 = (Y + ε_Z)/2, residual
//   (Y − ε_Z)/2, risk 1/2 at every t (invariant).
// Risk of b_Z = 1/4 on {Z}: R(t) = 1 − 2 b (1 + t) + b² ((1 + t)² + 2):
//   R(−1) = 1 + 2/16 = 1.125, R(1) = 1 − 1 + 6/16 = 0.375, R(0) = 1 − 0.5 + 3/16 = 0.6875.
// Over the box t ∈ [−1, 1] the worst case is 1.125 at t = −1; the empty set has risk 1 at every t;
// {M} gets β = 0 (M_MY = 0), risk 1. Minimax over subsets of {M, Z}: {M, Z} (0.5); over subsets of
// the stable set {Z}: ∅ (1 < 1.125).
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/theory/causal_minimax.h"
#include "testing.h"

namespace sl = stablelearn;
namespace th = stablelearn::theory;

namespace {

th::LinearSem hand_sem() {
  th::LinearSem s;
  s.names = {"Y", "M", "Z"};
  s.target = 0;
  s.weights = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}};
  s.noise_std = {1, 1, 1};
  s.mutable_node = {false, true, false};
  return s;
}

torch::Tensor train_moment() {
  const auto s = hand_sem();
  return (th::sem_covariance(s, {-1.0}) + th::sem_covariance(s, {1.0})) / 2;
}

std::vector<th::EnvironmentData> sample_envs(const th::LinearSem& s, const std::vector<double>& scales, std::int64_t n,
                                             std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<th::EnvironmentData> envs;
  for (double t : scales) envs.push_back(th::sem_sample(s, {t}, n, gen));
  return envs;
}

}  // namespace

TEST(CausalMinimax, CovarianceMatchesTheHandFormulas) {
  const auto c = th::sem_covariance(hand_sem(), {2.0});
  const double t = 2;
  EXPECT_NEAR(c[0][0].item<double>(), 1, 1e-12);
  EXPECT_NEAR(c[0][1].item<double>(), t, 1e-12);
  EXPECT_NEAR(c[1][1].item<double>(), t * t + 1, 1e-12);
  EXPECT_NEAR(c[2][2].item<double>(), (1 + t) * (1 + t) + 2, 1e-12);
  EXPECT_NEAR(c[0][2].item<double>(), 1 + t, 1e-12);
  EXPECT_NEAR(c[1][2].item<double>(), t * (1 + t) + 1, 1e-12);
  EXPECT_NEAR(c[2][1].item<double>(), t * (1 + t) + 1, 1e-12);
}

TEST(CausalMinimax, SamplesHaveTheCovariance) {
  const auto s = hand_sem();
  auto gen = at::detail::createCPUGenerator(5);
  const auto x = th::sem_sample(s, {0.5}, 200000, gen);
  const auto emp = x.t().mm(x) / 200000.0;
  const auto c = th::sem_covariance(s, {0.5});
  // Largest variance 4.25; the s.e. of a second moment is about sqrt(2) · 4.25 / sqrt(2e5) ≈ 0.013.
  EXPECT_LT((emp - c).abs().max().item<double>(), 0.08);
}

TEST(CausalMinimax, RegressionAndRiskMatchTheHandValues) {
  const auto m = train_moment();
  const auto bz = th::regression_coefficients(m, 0, {2});
  EXPECT_NEAR(bz[0].item<double>(), 0.25, 1e-12);
  const auto bmz = th::regression_coefficients(m, 0, {1, 2});
  EXPECT_NEAR(bmz[0].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(bmz[1].item<double>(), 0.5, 1e-12);
  const auto s = hand_sem();
  EXPECT_NEAR(th::linear_risk(th::sem_covariance(s, {-1.0}), 0, {2}, bz), 1.125, 1e-12);
  EXPECT_NEAR(th::linear_risk(th::sem_covariance(s, {1.0}), 0, {2}, bz), 0.375, 1e-12);
  EXPECT_NEAR(th::linear_risk(th::sem_covariance(s, {0.0}), 0, {2}, bz), 0.6875, 1e-12);
  for (double t : {-3.0, 0.0, 7.0}) EXPECT_NEAR(th::linear_risk(th::sem_covariance(s, {t}), 0, {1, 2}, bmz), 0.5, 1e-10) << t;
  EXPECT_NEAR(th::linear_risk(th::sem_covariance(s, {4.0}), 0, {}, torch::zeros({0}, torch::kFloat64)), 1, 1e-12);
}

TEST(CausalMinimax, WorstCaseIsTheHandMaximumAtAVertex) {
  const auto s = hand_sem();
  const th::ShiftBox box{{-1.0}, {1.0}};
  const auto w = th::worst_case_risk(s, box, {2}, torch::tensor({0.25}, torch::kFloat64));
  EXPECT_NEAR(w.risk, 1.125, 1e-12);
  ASSERT_EQ(w.at.size(), 1u);
  EXPECT_EQ(w.at[0], -1.0);
  EXPECT_FALSE(w.invariant);
  // A dense grid never exceeds the vertex maximum (convexity in t).
  for (int k = 0; k <= 100; ++k) {
    const double t = -1 + 0.02 * k;
    EXPECT_LE(th::linear_risk(th::sem_covariance(s, {t}), 0, {2}, torch::tensor({0.25}, torch::kFloat64)), w.risk + 1e-12);
  }
  const auto inv = th::worst_case_risk(s, box, {1, 2}, torch::tensor({-0.5, 0.5}, torch::kFloat64));
  EXPECT_NEAR(inv.risk, 0.5, 1e-10);
  EXPECT_TRUE(inv.invariant);
}

TEST(CausalMinimax, MinimaxSearchPicksTheHandOptimum) {
  const auto s = hand_sem();
  const th::ShiftBox box{{-1.0}, {1.0}};
  const auto all = th::minimax_subsets(s, box, train_moment(), {1, 2});
  ASSERT_EQ(all.subsets.size(), 4u);  // ∅, {M}, {Z}, {M, Z}
  EXPECT_NEAR(all.subsets[0].worst.risk, 1, 1e-12);
  EXPECT_NEAR(all.subsets[1].worst.risk, 1, 1e-12);
  EXPECT_NEAR(all.subsets[2].worst.risk, 1.125, 1e-12);
  EXPECT_NEAR(all.subsets[3].worst.risk, 0.5, 1e-10);
  EXPECT_EQ(all.best, 3u);
  EXPECT_EQ(all.best_invariant, 3u);
  const auto stable = th::minimax_subsets(s, box, train_moment(), s.stable_features());
  ASSERT_EQ(stable.subsets.size(), 2u);
  EXPECT_EQ(stable.best, 0u);  // ∅ (risk 1) beats {Z} (worst case 1.125)
  EXPECT_EQ(stable.best_invariant, 0u);
}

TEST(CausalMinimax, FDistributionMatchesClosedForms) {
  // F(2, 2): P(F ≤ f) = f / (1 + f). F(2, d): 1 − (d / (d + 2 f))^{d/2}. Both branches of the
  // continued fraction (x below and above (a + 1)/(a + b + 2)).
  for (double f : {0.05, 0.7, 1.0, 3.0, 40.0}) EXPECT_NEAR(th::f_cdf(f, 2, 2), f / (1 + f), 1e-12) << f;
  for (double d : {3.0, 10.0, 57.0})
    for (double f : {0.1, 1.3, 5.0}) EXPECT_NEAR(th::f_cdf(f, 2, d), 1 - std::pow(d / (d + 2 * f), d / 2), 1e-12) << d << " " << f;
  // F(1, d) is t² with d degrees of freedom; for d = 1 (Cauchy): P(F ≤ f) = (2/π) atan(sqrt f).
  for (double f : {0.2, 1.0, 9.0}) EXPECT_NEAR(th::f_cdf(f, 1, 1), 2 / M_PI * std::atan(std::sqrt(f)), 1e-12) << f;
  EXPECT_EQ(th::f_cdf(0, 3, 4), 0);
  EXPECT_EQ(th::f_cdf(-1, 3, 4), 0);
}

TEST(CausalMinimax, ChowStatisticOnAHandExample) {
  // Column 0 = x (parent), column 1 = y. Environment 1: (1, 1), (1, 2), (2, 2): Σxy = 7, Σx² = 6,
  // Σy² = 9, RSS = 9 − 49/6 = 5/6. Environment 2: (1, 2), (1, 3), (2, 4): Σxy = 13, Σx² = 6,
  // Σy² = 29, RSS = 29 − 169/6 = 5/6. Pooled: 38 − 400/12 = 14/3.
  // F = ((14/3 − 5/3) / 1) / ((5/3) / (6 − 2)) = 36/5, df (1, 4).
  const auto e1 = torch::tensor({1.0, 1.0, 1.0, 2.0, 2.0, 2.0}, torch::kFloat64).reshape({3, 2});
  const auto e2 = torch::tensor({1.0, 2.0, 1.0, 3.0, 2.0, 4.0}, torch::kFloat64).reshape({3, 2});
  const auto t = th::test_mechanism({e1, e2}, 1, {0});
  EXPECT_NEAR(t.statistic, 7.2, 1e-12);
  EXPECT_EQ(t.df1, 1);
  EXPECT_EQ(t.df2, 4);
  EXPECT_NEAR(t.p_value, 1 - th::f_cdf(7.2, 1, 4), 1e-15);
  EXPECT_GT(t.p_value, 0.01);
  EXPECT_LT(t.p_value, 0.1);
}

TEST(CausalMinimax, DetectsTheMutableNodeAndFitsTheSem) {
  const auto s = hand_sem();
  const auto envs = sample_envs(s, {-1.0, -0.5, 0.5, 1.0}, 20000, 11);
  const auto flags = th::detect_mutable(envs, s);
  EXPECT_EQ(flags, (std::vector<bool>{false, true, false}));
  th::ShiftBox box;
  const auto fit = th::fit_sem(envs, s, flags, box);
  // Z's weights (1, 1) by pooled least squares; M's base weight is the unit vector (1), its scales
  // the environments' t (standard error about 1/sqrt(20000) each).
  EXPECT_NEAR(fit.weights[2][0], 1, 0.03);
  EXPECT_NEAR(fit.weights[2][1], 1, 0.03);
  EXPECT_NEAR(fit.noise_std[2], 1, 0.03);
  EXPECT_NEAR(fit.weights[1][0], 1, 1e-12);
  ASSERT_EQ(box.lo.size(), 1u);
  EXPECT_NEAR(box.lo[0], -1, 0.03);
  EXPECT_NEAR(box.hi[0], 1, 0.03);
  EXPECT_NEAR(fit.noise_std[1], 1, 0.03);
}

TEST(CausalMinimax, EndToEndTheSearchFromDataFindsTheMinimaxSubset) {
  // Training data from t ∈ {−1, 1}: the estimated search over the stable set {Z} picks ∅, and over
  // {M, Z} picks {M, Z}, as the population values say (gaps 0.125 and 0.5).
  const auto s = hand_sem();
  const auto envs = sample_envs(s, {-1.0, 1.0}, 5000, 3);
  const auto flags = th::detect_mutable(envs, s);
  th::ShiftBox box;
  const auto fit = th::fit_sem(envs, s, flags, box);
  const auto moment = th::pooled_moment(envs);
  const auto stable = th::minimax_subsets(fit, box, moment, fit.stable_features());
  EXPECT_TRUE(stable.subsets[stable.best].features.empty());
  const auto all = th::minimax_subsets(fit, box, moment, fit.features());
  EXPECT_EQ(all.subsets[all.best].features, (std::vector<std::int64_t>{1, 2}));
  // Its true worst case (the true SEM, the true box) is within sampling error of 0.5.
  const auto w = th::worst_case_risk(s, {{-1.0}, {1.0}}, all.subsets[all.best].features, all.subsets[all.best].beta);
  EXPECT_NEAR(w.risk, 0.5, 0.05);
}

TEST(CausalMinimax, BadInputNamesTheProblem) {
  auto s = hand_sem();
  const auto envs = sample_envs(s, {-1.0, 1.0}, 50, 1);
  sl::testing::expect_error<sl::ConfigError>([&] { th::detect_mutable({envs[0]}, s); }, "environments = 1");
  sl::testing::expect_error<sl::ConfigError>([&] { th::test_mechanism({envs[0]}, 2, {0, 1}); }, "at least 2 training environments");
  sl::testing::expect_error<sl::ShapeError>([&] { th::detect_mutable({envs[0], envs[1].slice(1, 0, 2)}, s); }, "expected [samples, 3]");
  auto nan = envs[1].clone();
  nan[0][0] = std::nan("");
  sl::testing::expect_error<sl::DataError>([&] { th::detect_mutable({envs[0], nan}, s); }, "NaN");
  sl::testing::expect_error<sl::ConfigError>([&] { th::detect_mutable(envs, s, 1.5); }, "level = 1.5");
  sl::testing::expect_error<sl::ConfigError>(
      [&] { th::worst_case_risk(s, {{1.0}, {-1.0}}, {2}, torch::tensor({0.25}, torch::kFloat64)); }, "expected finite lo <= hi");
  sl::testing::expect_error<sl::ConfigError>(
      [&] { th::worst_case_risk(s, {{}, {}}, {2}, torch::tensor({0.25}, torch::kFloat64)); }, "one per mutable node");
  auto cyc = hand_sem();
  cyc.weights[0][2] = 0.5;
  sl::testing::expect_error<sl::ConfigError>([&] { cyc.validate(); }, "cycle");
  auto tm = hand_sem();
  tm.mutable_node = {true, false, false};
  sl::testing::expect_error<sl::ConfigError>([&] { tm.validate(); }, "must have a stable mechanism");
  auto root = hand_sem();
  root.mutable_node = {false, false, false};
  root.weights[1][0] = 0;
  root.mutable_node[1] = true;
  sl::testing::expect_error<sl::ConfigError>([&] { root.validate(); }, "has no parents");
  auto neg = hand_sem();
  neg.noise_std[1] = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { neg.validate(); }, "sem.noise_std[1]");
  std::vector<std::int64_t> many(21, 2);
  sl::testing::expect_error<sl::ConfigError>([&] { th::minimax_subsets(s, {{-1.0}, {1.0}}, train_moment(), many); },
                                             "at most 20");
  sl::testing::expect_error<sl::ConfigError>([&] { th::minimax_subsets(s, {{-1.0}, {1.0}}, train_moment(), {0}); },
                                             "not a feature");
}
