// GRPO: the k3 KL estimator and the loss against hand values, and an end-to-end test: GRPO (and
// stratified GRPO) learn a verifiable modular-arithmetic task with a tabular policy.
#include "stablelearn/rl/grpo.h"

#include <gtest/gtest.h>

#include <cmath>

#include <torch/optim/adam.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/advantages.h"
#include "stablelearn/rl/env.h"

namespace sl = stablelearn;
using namespace sl::rl;

// π = 0.5, π_ref = 0.25: d = log π_ref − log π = −log 2; k3 = e^d − d − 1 = 0.5 + log 2 − 1
// = 0.1931472; ∂k3/∂log π = 1 − e^d = 0.5. π = π_ref: 0 with zero gradient.
TEST(Grpo, KlK3ByHand) {
  auto logp = torch::tensor({std::log(0.5), std::log(0.3)}, torch::kDouble).requires_grad_(true);
  const auto ref = torch::tensor({std::log(0.25), std::log(0.3)}, torch::kDouble);
  const auto k = kl_k3(logp, ref);
  EXPECT_NEAR(k[0].item<double>(), 0.5 + std::log(2.0) - 1, 1e-12);
  EXPECT_NEAR(k[1].item<double>(), 0.0, 1e-12);
  k.sum().backward();
  EXPECT_NEAR(logp.grad()[0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(logp.grad()[1].item<double>(), 0.0, 1e-12);
}

// Two samples, ε = 0.2, β = 0.1: r = [1.1, 1.5], A = [1, 1]: surrogate −(1.1 + 1.2)/2 = −1.15;
// KL with ref = old, so d = −log r and e^d − d − 1 = 1/r + log r − 1:
// 1/1.1 + log 1.1 − 1 = 0.0044011, 1/1.5 + log 1.5 − 1 = 0.0721318; L = −1.15 + 0.1 · mean.
TEST(Grpo, LossByHand) {
  const auto old = torch::tensor({std::log(0.2), std::log(0.4)}, torch::kDouble);
  const auto logp = old + torch::tensor({std::log(1.1), std::log(1.5)}, torch::kDouble);
  const auto A = torch::tensor({1.0, 1.0}, torch::kDouble);
  const double k3a = 1 / 1.1 + std::log(1.1) - 1, k3b = 1 / 1.5 + std::log(1.5) - 1;
  EXPECT_NEAR(k3a, 0.0044011, 1e-7);
  EXPECT_NEAR(k3b, 0.0721318, 1e-7);
  EXPECT_NEAR(grpo_loss(logp, old, old, A, 0.2, 0.1).item<double>(), -1.15 + 0.1 * (k3a + k3b) / 2, 1e-12);
  EXPECT_NEAR(grpo_loss(logp, old, old, A, 0.2, 0.0).item<double>(), -1.15, 1e-12);
  EXPECT_THROW(grpo_loss(logp, old, old, A, 0.2, -1.0), sl::ConfigError);
  EXPECT_THROW(grpo_loss(logp, old, old, A.slice(0, 0, 1), 0.2, 0.1), sl::ShapeError);
}

namespace {
// A verifiable task: prompt x in [0, 7), the answer (3x + 2) mod 7 earns reward 1, any other 0. A
// tabular softmax policy (logits [7, 7], uniform start: reward 1/7) trained by GRPO with G = 8
// answers per prompt, two clipped updates per batch, β = 0.01 towards the uniform reference.
// Returns (greedy accuracy, mean sampled reward of the last batch).
std::pair<double, double> train_modular(bool stratified, std::uint64_t seed) {
  const int64_t K = 7, G = 8;
  auto logits = torch::zeros({K, K}, torch::requires_grad(true));
  torch::optim::Adam opt({logits}, torch::optim::AdamOptions(0.1));
  const auto ref = torch::log_softmax(torch::zeros({K, K}), 1);
  SplitMix64 rng{seed};
  auto target = [](int64_t x) { return (3 * x + 2) % 7; };
  double last_reward = 0;
  for (int step = 0; step < 100; ++step) {
    const auto logp_all = torch::log_softmax(logits, 1);
    const auto p = logp_all.exp().detach().to(torch::kDouble).contiguous();
    auto actions = torch::empty({K, G}, torch::kLong), rewards = torch::empty({K, G});
    auto strata = torch::empty({K, G}, torch::kLong);
    for (int64_t x = 0; x < K; ++x)
      for (int64_t g = 0; g < G; ++g) {
        const double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
        double c = 0;
        int64_t a = K - 1;
        for (int64_t k = 0; k < K; ++k) {
          c += p[x][k].item<double>();
          if (u < c) {
            a = k;
            break;
          }
        }
        actions[x][g] = a;
        rewards[x][g] = a == target(x) ? 1.f : 0.f;
        strata[x][g] = a % 2;  // a structural label (e.g. a tool-call count) for SAN
      }
    last_reward = rewards.mean().item<double>();
    const auto adv = stratified ? blended_advantages(rewards, strata, 0.5) : group_relative_advantages(rewards);
    const auto old = logp_all.gather(1, actions).detach();
    const auto ref_lp = ref.gather(1, actions);
    for (int inner = 0; inner < 2; ++inner) {
      const auto lp = torch::log_softmax(logits, 1).gather(1, actions);
      const auto loss = grpo_loss(lp, old, ref_lp, adv, 0.2, 0.01);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  const auto greedy = logits.argmax(1);
  int correct = 0;
  for (int64_t x = 0; x < K; ++x) correct += greedy[x].item<int64_t>() == target(x);
  return {correct / static_cast<double>(K), last_reward};
}
}  // namespace

TEST(Grpo, LearnsAVerifiableTask) {
  for (bool stratified : {false, true})
    for (std::uint64_t seed : {1, 2}) {
      const auto [acc, reward] = train_modular(stratified, seed);
      EXPECT_EQ(acc, 1.0) << "stratified " << stratified << " seed " << seed;
      EXPECT_GE(reward, 0.9) << "stratified " << stratified << " seed " << seed;  // from 1/7 at the start
    }
}
