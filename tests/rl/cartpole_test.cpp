// CartPole-v1 against hand-derived steps, termination/truncation, seeding and bad input.
#include "stablelearn/rl/cartpole.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using sl::rl::CartPole;
using sl::rl::EnvOptions;

namespace {

EnvOptions opts(std::int64_t n, bool auto_reset = true) {
  EnvOptions o;
  o.num_envs = n;
  o.auto_reset = auto_reset;
  return o;
}

struct Buffers {
  explicit Buffers(std::int64_t n) : obs(4 * n), fin(4 * n), rew(n), term(n), trunc(n), act(n, 0) {}
  std::vector<float> obs, fin, rew;
  std::vector<std::uint8_t> term, trunc;
  std::vector<std::int32_t> act;
};

void step(CartPole& env, Buffers& b) {
  env.step(b.act.data(), b.obs.data(), b.rew.data(), b.term.data(), b.trunc.data(), b.fin.data());
}

}  // namespace

// Values derived by hand from the equations of motion (gym's classic-control CartPole), computed
// in double with Python's math module:
//   s = (x, ẋ, θ, θ̇) = (0.01, −0.02, 0.03, 0.04), F = +10:
//   sin θ = 0.0299955002025, cos θ = 0.999550033749
//   t  = (10 + 0.05·0.04²·sin θ)/1.1                       = 9.0909112724
//   θ̈  = (9.8 sin θ − cos θ·t) / (0.5 (4/3 − 0.1 cos²θ/1.1)) = −14.153435898
//   ẍ  = t − 0.05 θ̈ cos θ / 1.1                             = 9.73395978738
//   s' = (0.01 + 0.02·(−0.02), −0.02 + 0.02 ẍ, 0.03 + 0.02·0.04, 0.04 + 0.02 θ̈)
//      = (0.0096, 0.174679195748, 0.0308, −0.24306871796)
// and likewise for F = −10 and for a state far from the origin.
TEST(CartPole, OneStepMatchesHandDerivedDynamics) {
  CartPole env(opts(3));
  const float s0[4] = {0.01f, -0.02f, 0.03f, 0.04f};
  const float s2[4] = {-1.5f, 0.7f, -0.18f, -1.2f};
  env.set_state(0, s0);
  env.set_state(1, s0);
  env.set_state(2, s2);
  Buffers b(3);
  b.act = {1, 0, 1};
  step(env, b);
  const double want[3][4] = {{0.0096, 0.174679195748, 0.0308, -0.24306871796},
                             {0.0096, -0.215539017103, 0.0308, 0.341995223776},
                             {-1.486, 0.896934641879, -0.204, -1.54326405254}};
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(b.obs[4 * i + k], want[i][k], 2e-6 * (1 + std::fabs(want[i][k]))) << i << "," << k;
    EXPECT_EQ(b.rew[i], 1.f);
    EXPECT_EQ(b.term[i], 0);
    EXPECT_EQ(b.trunc[i], 0);
    EXPECT_EQ(env.elapsed(i), 1);
  }
}

// A second, naive implementation in double with std::sin/std::cos: a 60-step trajectory under a
// fixed action pattern stays within float rounding (the Taylor sin/cos and float state are exact
// enough), and terminates at the same step.
TEST(CartPole, TrajectoryMatchesDoublePrecisionReference) {
  CartPole env(opts(1, /*auto_reset=*/false));
  const float s0[4] = {0.02f, 0.1f, -0.04f, 0.05f};
  env.set_state(0, s0);
  double s[4] = {0.02f, 0.1f, -0.04f, 0.05f};
  Buffers b(1);
  bool ended = false;
  for (int t = 0; t < 200 && !ended; ++t) {
    const int a = (t / 3) % 2;
    const double f = a ? 10.0 : -10.0, c = std::cos(s[2]), sn = std::sin(s[2]);
    const double temp = (f + 0.05 * s[3] * s[3] * sn) / 1.1;
    const double thacc = (9.8 * sn - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * c * c / 1.1));
    const double xacc = temp - 0.05 * thacc * c / 1.1;
    const double n[4] = {s[0] + 0.02 * s[1], s[1] + 0.02 * xacc, s[2] + 0.02 * s[3], s[3] + 0.02 * thacc};
    for (int k = 0; k < 4; ++k) s[k] = n[k];
    const bool term = std::fabs(s[0]) > 2.4 || std::fabs(s[2]) > 12 * 2 * M_PI / 360;
    b.act[0] = a;
    step(env, b);
    for (int k = 0; k < 4; ++k) ASSERT_NEAR(b.obs[k], s[k], 1e-4) << "t=" << t << " k=" << k;
    ASSERT_EQ(b.term[0], term) << "t=" << t;
    ended = term;
  }
  EXPECT_TRUE(ended);
}

TEST(CartPole, TerminatesOutsideTheBounds) {
  CartPole env(opts(5, /*auto_reset=*/false));
  const float cases[5][4] = {
      {2.39f, 1.0f, 0.f, 0.f},    // x' = 2.41 > 2.4
      {-2.39f, -1.0f, 0.f, 0.f},  // x' = -2.41
      {2.39f, 0.4f, 0.f, 0.f},    // x' = 2.398: still inside
      {0.f, 0.f, 0.2f, 1.0f},     // θ' = 0.22 > 12° = 0.20944
      {0.f, 0.f, -0.2f, 0.3f},    // θ' = -0.194: inside
  };
  for (int i = 0; i < 5; ++i) env.set_state(i, cases[i]);
  Buffers b(5);
  step(env, b);
  const std::uint8_t want[5] = {1, 1, 0, 1, 0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(b.term[i], want[i]) << i;
    EXPECT_EQ(b.trunc[i], 0) << i;
    EXPECT_EQ(b.rew[i], 1.f) << i;  // the terminating step is rewarded too
  }
  // Without auto_reset, an ended copy cannot be stepped until it is reset.
  try {
    step(env, b);
    FAIL() << "stepping an ended copy must throw";
  } catch (const sl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("copy 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reset_env"), std::string::npos) << e.what();
  }
  for (int i : {0, 1, 3}) env.reset_env(i, b.obs.data() + 4 * i);
  EXPECT_NO_THROW(step(env, b));
}

TEST(CartPole, TruncatesAt500AndAutoResets) {
  CartPole env(opts(2));
  Buffers b(2);
  env.reset(7, b.obs.data());
  const float s[4] = {0.f, 0.f, 0.f, 0.f};
  env.set_state(0, s, 498);
  env.set_state(1, s, 0);
  b.act = {1, 0};
  step(env, b);
  EXPECT_EQ(b.trunc[0], 0);
  EXPECT_EQ(env.elapsed(0), 499);
  float before[4];
  env.get_state(0, before);
  step(env, b);  // step 500 of copy 0
  EXPECT_EQ(b.trunc[0], 1);
  EXPECT_EQ(b.term[0], 0);
  EXPECT_EQ(b.trunc[1], 0);
  EXPECT_EQ(env.elapsed(0), 0);  // auto-reset
  // final_obs holds the last state of the ended episode (one Euler step from `before`), obs the
  // first state of the next one.
  EXPECT_FLOAT_EQ(b.fin[0], before[0] + 0.02f * before[1]);
  EXPECT_FLOAT_EQ(b.fin[2], before[2] + 0.02f * before[3]);
  for (int k = 0; k < 4; ++k) {
    EXPECT_LT(std::fabs(b.obs[k]), 0.05f);
    EXPECT_EQ(b.fin[4 + k], b.obs[4 + k]);  // copies that did not end: the same row
  }
  // A whole episode under a constant push: terminated well before 500, reward = its length.
  CartPole one(opts(1, false));
  Buffers c(1);
  one.reset(3, c.obs.data());
  c.act[0] = 1;
  int len = 0;
  float ret = 0;
  do {
    step(one, c);
    ++len;
    ret += c.rew[0];
  } while (!c.term[0] && !c.trunc[0]);
  EXPECT_TRUE(c.term[0]);
  EXPECT_LT(len, 20);
  EXPECT_EQ(ret, static_cast<float>(len));
}

TEST(CartPole, SeedingIsReproducibleAndPerCopy) {
  auto run = [](std::uint64_t seed, std::int64_t n) {
    CartPole env(opts(n));
    Buffers b(n);
    std::vector<float> trace;
    env.reset(seed, b.obs.data());
    trace.insert(trace.end(), b.obs.begin(), b.obs.end());
    for (int t = 0; t < 300; ++t) {
      for (std::int64_t i = 0; i < n; ++i) b.act[i] = static_cast<std::int32_t>((t * 7 + i * 3) % 5 < 2);
      step(env, b);
      trace.insert(trace.end(), b.obs.begin(), b.obs.end());
    }
    return trace;
  };
  const auto a = run(42, 3), b = run(42, 3), c = run(43, 3);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Copy i's stream depends on (seed, i) only: the first rows of a wider env start the same.
  CartPole e3(opts(3)), e5(opts(5));
  std::vector<float> o3(12), o5(20);
  e3.reset(11, o3.data());
  e5.reset(11, o5.data());
  for (int k = 0; k < 12; ++k) EXPECT_EQ(o3[k], o5[k]);
  for (float v : o5) {
    EXPECT_GE(v, -0.05f);
    EXPECT_LT(v, 0.05f);
  }
  // Distinct copies get distinct starts.
  EXPECT_NE(o5[0], o5[4]);
}

TEST(CartPole, BadInputIsAClearError) {
  CartPole env(opts(3));
  Buffers b(3);
  EXPECT_THROW(step(env, b), sl::UsageError);  // before reset
  env.reset(1, b.obs.data());
  float s[4];
  env.get_state(1, s);
  b.act = {0, 2, 1};
  try {
    step(env, b);
    FAIL();
  } catch (const sl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("action of copy 1 is 2"), std::string::npos) << e.what();
  }
  b.act = {0, 1, -1};
  EXPECT_THROW(step(env, b), sl::UsageError);
  float after[4];
  env.get_state(1, after);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(s[k], after[k]);  // nothing moved
  EXPECT_EQ(env.elapsed(1), 0);

  const float terminal[4] = {2.5f, 0.f, 0.f, 0.f};
  EXPECT_THROW(env.set_state(0, terminal), sl::UsageError);
  const float nan_state[4] = {0.f, NAN, 0.f, 0.f};
  EXPECT_THROW(env.set_state(0, nan_state), sl::UsageError);
  EXPECT_THROW(env.get_state(3, s), sl::UsageError);

  try {
    sl::rl::make_env("CartPole-v0");
    FAIL();
  } catch (const sl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("CartPole-v1"), std::string::npos) << e.what();
  }
  try {
    sl::rl::make_env("CartPole-v1", opts(0));
    FAIL();
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("env.num_envs"), std::string::npos) << e.what();
  }
  auto env2 = sl::rl::make_env("CartPole-v1", opts(4));
  EXPECT_EQ(env2->num_envs(), 4);
  EXPECT_EQ(env2->obs_dim(), 4);
  EXPECT_EQ(env2->num_actions(), 2);
}
