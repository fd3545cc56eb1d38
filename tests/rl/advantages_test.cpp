// GAE, advantage normalisation, GRPO group-relative and stratified advantages against hand values.
#include "stablelearn/rl/advantages.h"

#include <gtest/gtest.h>

#include <cmath>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using namespace sl::rl;

namespace {
torch::Tensor col(std::vector<float> v) { return torch::tensor(v).unsqueeze(1); }
}  // namespace

// A hand trajectory of 5 steps (one copy), γ = 0.9, λ = 0.8 (γλ = 0.72):
//   t  r  V    V'   term done   δ_t = r + γ(1−term)V' − V
//   0  1  0.5  0.6  0    0      1 + 0.54 − 0.5           = 1.04
//   1  1  0.6  5.0  1    1      1 − 0.6                  = 0.4     (terminated: V' unused)
//   2  1  0.7  0.8  0    0      1 + 0.72 − 0.7           = 1.02
//   3  1  0.8  2.0  0    1      1 + 1.8 − 0.8            = 2.0     (truncated: bootstrapped)
//   4  1  0.9  1.0  0    0      1 + 0.9 − 0.9            = 1.0     (end of rollout: bootstrapped)
// A_4 = 1.0; A_3 = 2.0 (done stops the recursion); A_2 = 1.02 + 0.72·2.0 = 2.46;
// A_1 = 0.4; A_0 = 1.04 + 0.72·0.4 = 1.328.
TEST(Gae, HandTrajectoryWithTerminationAndTruncation) {
  const auto r = col({1, 1, 1, 1, 1}), v = col({0.5, 0.6, 0.7, 0.8, 0.9}), nv = col({0.6, 5.0, 0.8, 2.0, 1.0});
  const auto term = col({0, 1, 0, 0, 0}), done = col({0, 1, 0, 1, 0});
  const auto a = gae(r, v, nv, term, done, 0.9, 0.8);
  const float want[5] = {1.328f, 0.4f, 2.46f, 2.0f, 1.0f};
  ASSERT_EQ(a.sizes(), r.sizes());
  for (int t = 0; t < 5; ++t) EXPECT_NEAR(a[t][0].item<float>(), want[t], 1e-5) << t;
  // Columns are independent copies: a second column with no episode end, λ = 1 and γ = 1 gives
  // the Monte-Carlo return minus V: A_t = Σ_{k>=t} r_k + V'_{T−1} − V_t.
  const auto r2 = torch::stack({r.squeeze(1), torch::tensor({0.f, 0.f, 1.f, 0.f, 2.f})}, 1);
  const auto v2 = torch::stack({v.squeeze(1), torch::tensor({1.f, 2.f, 3.f, 4.f, 5.f})}, 1);
  const auto nv2 = torch::stack({nv.squeeze(1), torch::tensor({2.f, 3.f, 4.f, 5.f, 10.f})}, 1);
  const auto t2 = torch::stack({term.squeeze(1), torch::zeros({5})}, 1);
  const auto d2 = torch::stack({done.squeeze(1), torch::zeros({5})}, 1);
  const auto b = gae(r2, v2, nv2, t2, d2, 1.0, 1.0);
  const float mc[5] = {13 - 1.f, 13 - 2.f, 13 - 3.f, 12 - 4.f, 12 - 5.f};
  for (int t = 0; t < 5; ++t) EXPECT_NEAR(b[t][1].item<float>(), mc[t], 1e-5) << t;
  EXPECT_THROW(gae(r, v, nv.squeeze(1), term, done, 0.9, 0.8), sl::ShapeError);
  EXPECT_THROW(gae(r, v, nv, term, done, 1.5, 0.8), sl::ConfigError);
}

// [1, 2, 3, 4]: mean 2.5, sample std √(5/3) = 1.2909944; (x − 2.5)/1.2909944.
TEST(Advantages, NormalisationUsesMeanAndSampleStd) {
  const auto a = normalize_advantages(torch::tensor({1.f, 2.f, 3.f, 4.f}), 0.0);
  const float want[4] = {-1.1618950f, -0.3872983f, 0.3872983f, 1.1618950f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(a[i].item<float>(), want[i], 1e-6);
  EXPECT_THROW(normalize_advantages(torch::tensor({1.f})), sl::ShapeError);
}

// Group of 4 rewards [1, 0, 0, 1]: mean 0.5, population std 0.5 → [1, −1, −1, 1]; a group of equal
// rewards → 0; [3, 1, 2]: mean 2, std √(2/3) = 0.8164966 → [1.2247449, −1.2247449, 0].
TEST(Grpo, GroupRelativeAdvantagesHandValues) {
  const auto a = group_relative_advantages(torch::tensor({{1.f, 0.f, 0.f, 1.f}, {2.f, 2.f, 2.f, 2.f}}), 0.0);
  const float want[2][4] = {{1, -1, -1, 1}, {0, 0, 0, 0}};
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(a[b][j].item<float>(), want[b][j], 1e-6);
  const auto c = group_relative_advantages(torch::tensor({{3.f, 1.f, 2.f}}), 0.0);
  EXPECT_NEAR(c[0][0].item<float>(), 1.2247449f, 1e-6);
  EXPECT_NEAR(c[0][1].item<float>(), -1.2247449f, 1e-6);
  EXPECT_NEAR(c[0][2].item<float>(), 0.f, 1e-6);
  const auto m = group_relative_advantages(torch::tensor({{3.f, 1.f, 2.f}}), 0.0, /*scale=*/false);
  EXPECT_NEAR(m[0][0].item<float>(), 1.f, 1e-6);
  EXPECT_THROW(group_relative_advantages(torch::tensor({1.f, 2.f})), sl::ShapeError);
}

// One group of 8 with strata (tool calls) [0, 0, 0, 1, 1, 1, 1, 2] and rewards
// [1, 0, 1, 0, 0, 1, 0, 1]:
//   stratum 0: {1, 0, 1}, mean 2/3, std √(2/9) = 0.4714045 → [0.7071068, −1.4142136, 0.7071068]
//   stratum 1: {0, 0, 1, 0}, mean 1/4, std √(3/16) = 0.4330127 → [−0.5773503 ×3, 1.7320508]
//   stratum 2: a single trajectory → 0.
TEST(Grpo, StratifiedAdvantagesHandValues) {
  const auto r = torch::tensor({{1.f, 0.f, 1.f, 0.f, 0.f, 1.f, 0.f, 1.f}});
  const auto s = torch::tensor({{0, 0, 0, 1, 1, 1, 1, 2}}, torch::kLong);
  const auto a = stratified_advantages(r, s, 0.0);
  const float want[8] = {0.7071068f, -1.4142136f, 0.7071068f, -0.5773503f, -0.5773503f, 1.7320508f, -0.5773503f, 0.f};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(a[0][j].item<float>(), want[j], 1e-6) << j;
  // Blend α = 0.25 with the global advantages (mean 0.5, std 0.5: ±1).
  const auto bl = blended_advantages(r, s, 0.25, 0.0);
  for (int j = 0; j < 8; ++j) {
    const float g = r[0][j].item<float>() > 0.5f ? 1.f : -1.f;
    EXPECT_NEAR(bl[0][j].item<float>(), 0.25f * want[j] + 0.75f * g, 1e-6) << j;
  }
  EXPECT_THROW(blended_advantages(r, s, 1.5), sl::ConfigError);
  EXPECT_THROW(stratified_advantages(r, s.to(torch::kFloat)), sl::ShapeError);
}

// Paper 28's decomposition on synthetic strata with very different means: the global mean-centred
// advantage is the stratified one plus the cross-stratum term (mean_k − mean); the stratified
// estimator removes exactly that term, the variance falls by (1/N) Σ_k n_k (mean_k − mean)², and
// shifting a whole stratum's rewards by a constant leaves SAN unchanged but not GRPO.
TEST(Grpo, StratifiedEstimatorRemovesTheCrossStratumTerm) {
  torch::manual_seed(5);
  const int64_t N = 60;
  auto strata = torch::cat({torch::zeros({20}), torch::ones({25}), torch::full({15}, 2.0)}).to(torch::kLong);
  const auto offset = torch::cat({torch::full({20}, 0.1), torch::full({25}, 0.6), torch::full({15}, 0.9)});
  auto r = (offset + 0.2 * torch::randn({N}, torch::kDouble)).to(torch::kFloat).unsqueeze(0);
  strata = strata.unsqueeze(0);
  const auto ag = group_relative_advantages(r, 0.0, false).squeeze(0).to(torch::kDouble);
  const auto as = stratified_advantages(r, strata, 0.0, false).squeeze(0).to(torch::kDouble);
  // Independent computation of the stratum means, in double on plain loops.
  const auto rd = r.squeeze(0).to(torch::kDouble);
  double mean = 0, mk[3] = {0, 0, 0}, nk[3] = {0, 0, 0};
  for (int64_t i = 0; i < N; ++i) {
    const auto k = strata[0][i].item<int64_t>();
    mk[k] += rd[i].item<double>();
    nk[k] += 1;
    mean += rd[i].item<double>();
  }
  mean /= N;
  for (int k = 0; k < 3; ++k) mk[k] /= nk[k];
  for (int64_t i = 0; i < N; ++i) {
    const auto k = strata[0][i].item<int64_t>();
    EXPECT_NEAR(ag[i].item<double>() - as[i].item<double>(), mk[k] - mean, 1e-5) << i;
  }
  double cross = 0;
  for (int k = 0; k < 3; ++k) cross += nk[k] * (mk[k] - mean) * (mk[k] - mean);
  cross /= N;
  const double var_g = ag.pow(2).mean().item<double>(), var_s = as.pow(2).mean().item<double>();
  EXPECT_GT(cross, 0.05);  // the strata really differ
  EXPECT_NEAR(var_g - var_s, cross, 1e-5);
  // Shift stratum 2 by +5: SAN (normalised too) is unchanged, GRPO's advantages change.
  const auto shifted = r + 5.0 * (strata == 2).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(stratified_advantages(shifted, strata, 0.0), stratified_advantages(r, strata, 0.0), 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(group_relative_advantages(shifted, 0.0), group_relative_advantages(r, 0.0), 1e-2, 1e-2));
  // Within each stratum SAN has mean 0 and unit (population) variance.
  const auto sn = stratified_advantages(r, strata, 0.0).squeeze(0);
  for (int k = 0; k < 3; ++k) {
    const auto part = sn.masked_select(strata.squeeze(0) == k).to(torch::kDouble);
    EXPECT_NEAR(part.mean().item<double>(), 0.0, 1e-5);
    EXPECT_NEAR(part.pow(2).mean().item<double>(), 1.0, 1e-4);
  }
}
