// PPO: the clipped objective's value and gradient against hand values and finite differences, the
// clipped value loss, option checks, and the learning test (CartPole-v1 solved, 2 seeds).
#include "stablelearn/rl/ppo.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/env.h"

namespace sl = stablelearn;
using namespace sl::rl;

// ε = 0.2, six samples (n = 6) covering every case of max(−A r, −A clip(r)):
//   i  A     r     active term     loss_i        ∂L/∂log r_i = ∂loss_i/∂log r / n
//   0  +2    1.1   unclipped       −2.2          −2·1.1/6 = −0.3666667
//   1  +2    1.5   clipped (1.2)   −2.4          0
//   2  +2    0.5   unclipped       −1.0          −2·0.5/6 = −0.1666667
//   3  −1    0.9   unclipped       +0.9          +0.9/6   = +0.15
//   4  −1    0.6   clipped (0.8)   +0.8          0
//   5  −1    1.4   unclipped       +1.4          +1.4/6   = +0.2333333
// L = (−2.2 − 2.4 − 1.0 + 0.9 + 0.8 + 1.4)/6 = −2.5/6 = −0.4166667.
TEST(Ppo, ClippedSurrogateValueAndGradientByHand) {
  const std::vector<double> A = {2, 2, 2, -1, -1, -1}, r = {1.1, 1.5, 0.5, 0.9, 0.6, 1.4};
  auto lr = torch::tensor(r, torch::kDouble).log().requires_grad_(true);
  const auto adv = torch::tensor(A, torch::kDouble);
  const auto loss = clipped_surrogate_loss(lr, adv, 0.2);
  EXPECT_NEAR(loss.item<double>(), -2.5 / 6, 1e-12);
  loss.backward();
  const double want[6] = {-2.2 / 6, 0, -1.0 / 6, 0.9 / 6, 0, 1.4 / 6};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(lr.grad()[i].item<double>(), want[i], 1e-12) << i;
  // Central finite differences agree (no sample sits on a kink).
  for (int i = 0; i < 6; ++i) {
    const double h = 1e-6;
    auto p = lr.detach().clone(), m = lr.detach().clone();
    p[i] += h;
    m[i] -= h;
    const double fd = (clipped_surrogate_loss(p, adv, 0.2).item<double>() -
                       clipped_surrogate_loss(m, adv, 0.2).item<double>()) / (2 * h);
    EXPECT_NEAR(fd, want[i], 1e-8) << i;
  }
  EXPECT_THROW(clipped_surrogate_loss(lr, adv.slice(0, 0, 3), 0.2), sl::ShapeError);
}

// V = [1.0, 2.0, 0.0], V_old = [0.5, 2.1, 0.0], R = [2.0, 2.0, 1.0], ε_V = 0.2:
//   unclipped (V − R)² = [1, 0, 1]; clipped V = [0.7, 2.0, 0.0], (· − R)² = [1.69, 0, 1];
//   L_V = ½ mean max = ½ (1.69 + 0 + 1)/3 = 0.4483333; unclipped ½ MSE = ½ · 2/3 = 0.3333333.
TEST(Ppo, ClippedValueLossByHand) {
  const auto v = torch::tensor({1.0, 2.0, 0.0}, torch::kDouble), old = torch::tensor({0.5, 2.1, 0.0}, torch::kDouble);
  const auto ret = torch::tensor({2.0, 2.0, 1.0}, torch::kDouble);
  EXPECT_NEAR(clipped_value_loss(v, old, ret, 0.2).item<double>(), 0.5 * 2.69 / 3, 1e-12);
  EXPECT_NEAR(clipped_value_loss(v, old, ret, 0.0).item<double>(), 1.0 / 3, 1e-12);
}

TEST(Ppo, InvalidOptionsNameTheOption) {
  auto expect_error = [](PpoOptions o, const std::string& key) {
    try {
      Ppo p(o);
      FAIL() << "expected an error naming " << key;
    } catch (const sl::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  PpoOptions o;
  o.lr = -1;
  expect_error(o, "ppo.lr");
  o = {};
  o.gamma = 1.5;
  expect_error(o, "ppo.gamma");
  o = {};
  o.minibatches = 3;  // 8 * 128 = 1024 is not divisible by 3
  expect_error(o, "ppo.minibatches");
  o = {};
  o.env = "Pong";
  expect_error(o, "ppo.env");
  o = {};
  o.num_envs = 0;
  expect_error(o, "ppo.num_envs");
}

TEST(Ppo, SameSeedSameRun) {
  PpoOptions o;
  o.num_envs = 4;
  o.num_steps = 32;
  o.seed = 3;
  auto run = [&] {
    Ppo p(o);
    auto s = p.train(4 * 4 * 32);
    std::vector<float> w;
    for (const auto& t : p.model()->parameters()) {
      auto f = t.detach().flatten();
      w.insert(w.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    return std::make_pair(s.policy_loss, w);
  };
  const auto a = run(), b = run();
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  o.seed = 4;
  EXPECT_NE(run().second, a.second);
}

// The learning test: CartPole-v1 is solved (mean greedy return >= 475 over 20 evaluation episodes)
// within a budget of 200k env steps, on three seeds. Once the training episodes average >= 200,
// every iteration is followed by a 50-episode greedy evaluation; training stops when it averages
// >= 490 (a stricter bar than the check, so stopping on a lucky evaluation does not pass the test).
// The check is a fresh 20-episode evaluation on other environment seeds: mean >= 475. Measured
// (docs/rl.md): seeds 1-8 all pass, after 15k-45k env steps, 1-5 s each at one thread.
TEST(Ppo, SolvesCartPole) {
  const std::int64_t budget = 200000;
  for (std::int64_t seed : {1, 2, 3}) {
    const auto t0 = std::chrono::steady_clock::now();
    PpoOptions o;  // the defaults (8 copies x 128 steps, 4 epochs x 4 minibatches) with a constant 1e-3 rate
    o.seed = seed;
    o.lr = 1e-3;
    o.anneal_lr = false;
    Ppo ppo(o);
    auto policy = [&](const float* obs, std::int64_t n, std::int32_t* a) { ppo.act(obs, n, a, /*greedy=*/true); };
    auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
    bool solved = false;
    ppo.train(budget, [&](const PpoStats& s) {
      if (!(s.mean_return >= 200)) return true;
      solved = mean(evaluate("CartPole-v1", policy, 50, 1000 + s.iteration)) >= 490;
      return !solved;
    });
    const double final_mean = mean(evaluate("CartPole-v1", policy, 20, 999999));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ppo] seed %ld: %ld env steps, fresh 20-episode greedy mean %.1f, %.1f s\n", static_cast<long>(seed),
                static_cast<long>(ppo.env_steps()), final_mean, secs);
    EXPECT_TRUE(solved) << "seed " << seed << " not solved within " << budget << " env steps";
    EXPECT_GE(final_mean, 475.0) << "seed " << seed;
  }
}

// Options from TOML through the one declaration (core/options.h): values read, unknown keys and
// broken rules are ConfigErrors naming the key.
TEST(Ppo, OptionsFromToml) {
  auto cfg = sl::Config::from_string("[ppo]\nlr = 0.001\nnum_envs = 4\nnorm_adv = false\n");
  auto s = cfg.section("ppo");
  const auto o = sl::options::read<PpoOptions>(s);
  s.finish();
  EXPECT_EQ(o.num_envs, 4);
  EXPECT_DOUBLE_EQ(o.lr, 0.001);
  EXPECT_FALSE(o.norm_adv);
  EXPECT_EQ(o.num_steps, PpoOptions{}.num_steps);
  auto bad = sl::Config::from_string("[ppo]\nlearning_rate = 0.001\n");
  auto s2 = bad.section("ppo");
  sl::options::read<PpoOptions>(s2);
  EXPECT_THROW(s2.finish(), sl::ConfigError);
  auto neg = sl::Config::from_string("[ppo]\nclip = -0.1\n");
  auto s3 = neg.section("ppo");
  try {
    sl::options::read<PpoOptions>(s3);
    FAIL();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("clip"), std::string::npos) << e.what();
  }
}
