// Token-level GRPO on modular addition (rl/token_grpo.h): the verifiable reward and the loss's
// gradient with respect to the answer logits against hand-derived values, the accuracy against a
// brute-force loop over the table, sampling determinism, the reference policy of the KL term, the
// matched-gain stopping of train_until, and that GRPO raises the accuracy of an SFT-started policy.
#include "stablelearn/rl/token_grpo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "stablelearn/core/error.h"
#include "stablelearn/models/transformer.h"
#include "testing.h"

namespace sl = stablelearn;
using namespace sl::rl;

namespace {
std::vector<double> softmax(const std::vector<double>& z) {
  double m = z[0], s = 0;
  for (double x : z) m = std::max(m, x);
  std::vector<double> p;
  for (double x : z) s += std::exp(x - m);
  for (double x : z) p.push_back(std::exp(x - m) / s);
  return p;
}

TokenTrainerOptions small(std::int64_t seed = 0) {
  TokenTrainerOptions o;
  o.p = 7;
  o.d_model = 16;
  o.heads = 2;
  o.batch = 16;
  o.group = 4;
  o.seed = seed;
  return o;
}
}  // namespace

TEST(TokenGrpo, VerifiableRewardByHand) {
  const auto answers = torch::tensor({1, 2, 3, 3}, torch::kLong).view({2, 2});
  const auto r = verifiable_reward(answers, torch::tensor({2, 3}, torch::kLong));
  EXPECT_TRUE(torch::equal(r, torch::tensor({0.f, 1.f, 1.f, 1.f}).view({2, 2})));
  sl::testing::expect_error<sl::ShapeError>([&] { verifiable_reward(answers, torch::tensor({2}, torch::kLong)); },
                                            "verifiable_reward");
}

// β = 0, π_old = π (r = 1, inside the clip): L = −(1/n) Σ A_i log π(y_i), n = B·G, so
// ∂L/∂z_b = −(1/n) Σ_g A_bg (e_{y_bg} − π_b). One prompt, answers {0, 2}, A = {1, −1}:
// −(1/2)(e_0 − e_2) = [−0.5, 0, 0.5] whatever π is. A second prompt with answers {1, 1}, A = {0.5, 0.5}
// (n = 4): −(1/4)(e_1 − π_2).
TEST(TokenGrpo, LossGradientOnAnswerLogitsByHand) {
  const std::vector<double> z0 = {0.3, -0.7, 1.1}, z1 = {-0.2, 0.4, 0.0};
  auto logits = torch::tensor({z0[0], z0[1], z0[2], z1[0], z1[1], z1[2]}, torch::kDouble).view({2, 3}).requires_grad_(true);
  const auto answers = torch::tensor({0, 2, 1, 1}, torch::kLong).view({2, 2});
  const auto adv = torch::tensor({1.0, -1.0, 0.5, 0.5}, torch::kDouble).view({2, 2});
  const auto old = torch::log_softmax(logits, 1).gather(1, answers).detach();
  token_grpo_loss(logits, answers, old, old, adv, 0.2, 0.0).backward();
  const auto p1 = softmax(z1);
  const double expect[6] = {-0.25, 0, 0.25, 0.25 * p1[0], -0.25 * (1 - p1[1]), 0.25 * p1[2]};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(logits.grad().view({-1})[i].item<double>(), expect[i], 1e-12) << i;
}

// The clip: π_old(y) = π(y) / 1.5 for a positive advantage (r = 1.5 > 1 + ε) gives that token no
// gradient; the KL: ∂(β/n Σ k3)/∂log π_i = (β/n)(1 − π_ref,i/π_i), chained by e_{y_i} − π.
TEST(TokenGrpo, ClipAndKlGradientByHand) {
  const std::vector<double> z = {0.5, -0.1, 0.2, 0.0};
  auto logits = torch::tensor(z, torch::kDouble).view({1, 4}).requires_grad_(true);
  const auto p = softmax(z);
  const auto answers = torch::tensor({0, 3}, torch::kLong).view({1, 2});
  const auto adv = torch::tensor({2.0, -1.0}, torch::kDouble).view({1, 2});
  const auto old = torch::tensor({std::log(p[0] / 1.5), std::log(p[3])}, torch::kDouble).view({1, 2});
  const double ref0 = 0.1, ref3 = 0.4, beta = 0.3;
  const auto ref = torch::tensor({std::log(ref0), std::log(ref3)}, torch::kDouble).view({1, 2});
  token_grpo_loss(logits, answers, old, ref, adv, 0.2, beta).backward();
  // Token 0: clipped (A > 0, r = 1.5): surrogate gradient 0. Token 1: r = 1, −A/2 · (e_3 − π) = 0.5 (e_3 − π).
  // KL: c_i = (β/2)(1 − ref_i / π_i) times (e_{y_i} − π).
  const double c0 = beta / 2 * (1 - ref0 / p[0]), c3 = beta / 2 * (1 - ref3 / p[3]);
  for (int k = 0; k < 4; ++k) {
    const double e0 = k == 0, e3 = k == 3;
    const double expect = 0.5 * (e3 - p[k]) + c0 * (e0 - p[k]) + c3 * (e3 - p[k]);
    EXPECT_NEAR(logits.grad()[0][k].item<double>(), expect, 1e-12) << k;
  }
}

// Accuracy over the table against a loop over every (a, b) through the model's own forward.
TEST(TokenGrpo, AccuracyIsTheGreedyShareOfTheTableByBruteForce) {
  TokenTrainer t(small(3));
  for (int i = 0; i < 30; ++i) t.sft_step();
  const auto p = t.options().p;
  double right = 0;
  torch::NoGradGuard ng;
  for (std::int64_t a = 0; a < p; ++a)
    for (std::int64_t b = 0; b < p; ++b) {
      const auto logits = t.model()->forward(torch::tensor({a, p, b, p + 1}, torch::kLong).view({1, 4}));
      right += logits[0][3].argmax().item<std::int64_t>() == (a + b) % p;
    }
  EXPECT_NEAR(t.accuracy(), right / double(p * p), 1e-12);
  EXPECT_NEAR(t.accuracy(t.snapshot()), t.accuracy(), 0.0);
}

TEST(TokenGrpo, SamplingIsDeterministicPerSeed) {
  TokenTrainer a(small(1)), b(small(1)), c(small(2));
  for (int i = 0; i < 3; ++i) {
    a.grpo_step();
    b.grpo_step();
    c.grpo_step();
    EXPECT_TRUE(torch::equal(a.last_answers(), b.last_answers()));
    EXPECT_TRUE(torch::equal(a.last_rows(), b.last_rows()));
  }
  EXPECT_FALSE(torch::equal(a.last_rows(), c.last_rows()));
  const auto wa = a.snapshot(), wb = b.snapshot();
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::equal(wa[i], wb[i])) << i;
  EXPECT_EQ(a.last_answers().sizes(), (std::vector<std::int64_t>{16, 4}));
  EXPECT_GE(a.last_answers().min().item<std::int64_t>(), 0);
  EXPECT_LT(a.last_answers().max().item<std::int64_t>(), 7);
}

// With the reference equal to the current policy, the k3 term's gradient is 0 at the first update:
// one GRPO step with β = 0.5 equals one with β = 0. After set_reference() to other weights it does not.
TEST(TokenGrpo, KlReferenceIsTheInitialOrTheSetPolicy) {
  auto o = small(4);
  o.kl_coef = 0.5;
  auto o0 = small(4);
  o0.kl_coef = 0;
  TokenTrainer a(o), b(o0);
  a.grpo_step();
  b.grpo_step();
  auto wa = a.snapshot(), wb = b.snapshot();
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::allclose(wa[i], wb[i], 1e-6, 1e-7)) << i;
  TokenTrainer c(o), d(o0);
  for (int i = 0; i < 20; ++i) c.sft_step(), d.sft_step();
  c.set_reference();  // the reference moves to the SFT weights: still equal updates
  c.grpo_step();
  d.grpo_step();
  wa = c.snapshot(), wb = d.snapshot();
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(torch::allclose(wa[i], wb[i], 1e-6, 1e-7)) << i;
  TokenTrainer e(o), f(o0);  // reference = the initial weights, policy moved by SFT: the KL pulls back
  for (int i = 0; i < 20; ++i) e.sft_step(), f.sft_step();
  e.grpo_step();
  f.grpo_step();
  double diff = 0;
  wa = e.snapshot(), wb = f.snapshot();
  for (std::size_t i = 0; i < wa.size(); ++i) diff += (wa[i] - wb[i]).abs().sum().item<double>();
  EXPECT_GT(diff, 1e-4);
}

// Matched-gain stopping: the first check at or above the target stops, every earlier one is below;
// an unreachable target stops at max_steps with a last check there.
TEST(TokenGrpo, TrainUntilStopsAtTheFirstCheckReachingTheTarget) {
  TokenTrainer t(small(5));
  const double a0 = t.accuracy();
  const auto r = t.train_until(false, a0 + 0.15, 5, 3000);
  ASSERT_TRUE(r.reached);
  EXPECT_GE(r.accuracy, a0 + 0.15);
  EXPECT_EQ(r.steps % 5, 0);
  ASSERT_EQ(static_cast<std::int64_t>(r.trace.size()), r.steps / 5);
  for (std::size_t i = 0; i + 1 < r.trace.size(); ++i) EXPECT_LT(r.trace[i], a0 + 0.15) << i;
  EXPECT_DOUBLE_EQ(r.trace.back(), r.accuracy);
  EXPECT_DOUBLE_EQ(t.accuracy(), r.accuracy);
  std::int64_t calls = 0;
  const auto u = t.train_until(true, 1.01, 5, 7, [&](std::int64_t s) { EXPECT_EQ(s, ++calls); });
  EXPECT_FALSE(u.reached);
  EXPECT_EQ(u.steps, 7);
  EXPECT_EQ(calls, 7);
  EXPECT_EQ(u.trace.size(), 2u);
  const auto z = t.train_until(true, 0.0, 5, 7);  // already there: no step
  EXPECT_TRUE(z.reached);
  EXPECT_EQ(z.steps, 0);
  sl::testing::expect_error<sl::ConfigError>([&] { t.train_until(true, 1, 0, 7); }, "eval_every");
  auto bad = small();
  bad.group = 1;
  sl::testing::expect_error<sl::ConfigError>([&] { TokenTrainer x(bad); }, "group");
}

// RLVR learns: after SFT to a partial accuracy, GRPO with the verifiable reward raises it.
TEST(TokenGrpo, GrpoRaisesTheAccuracyOfAnSftStartedPolicy) {
  auto o = small(6);
  o.batch = 32;
  o.group = 8;
  o.lr = 3e-3;
  TokenTrainer t(o);
  const auto pre = t.train_until(false, 0.4, 5, 3000);
  ASSERT_TRUE(pre.reached);
  t.set_reference();
  t.reset_optimizer();
  const double base = t.accuracy();
  const auto rl = t.train_until(true, base + 0.2, 10, 1500);
  EXPECT_TRUE(rl.reached) << "base " << base << ", after " << rl.steps << " GRPO steps " << rl.accuracy;
}
