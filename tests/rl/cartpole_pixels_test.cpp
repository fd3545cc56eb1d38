// CartPolePixels-v1: the raster against hand-counted pixels, the frame stack, and the episodes
// against CartPole-v1's for the same seed and actions.
#include "stablelearn/rl/cartpole_pixels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using namespace sl::rl;

namespace {
constexpr std::int64_t H = 40, W = 60;
int lit(const std::vector<float>& f, std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1) {
  int n = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = c0; c < c1; ++c) n += f[r * W + c] != 0.f;
  return n;
}

/// One episode of CartPolePixels-v1 (`options`, auto_reset off) and of CartPole-v1 from the same seed
/// and actions (a push direction held for `hold` steps, at most 500 steps): every observation
/// before each step, and every state.
struct Episode {
  std::vector<float> obs, states;
  std::int64_t steps() const { return static_cast<std::int64_t>(states.size() / 4); }
};
Episode pixel_and_state_episode(const EnvOptions& options, std::uint64_t seed, int hold) {
  auto px = make_env("CartPolePixels-v1", options);
  CartPole cp(EnvOptions{});
  std::vector<float> obs(px->obs_dim()), s(4);
  float r = 0;
  std::uint8_t term = 0, trunc = 0;
  px->reset(seed, obs.data());
  cp.reset(seed, s.data());
  Episode e;
  for (int t = 0; t < 500 && !(term || trunc); ++t) {
    e.obs.insert(e.obs.end(), obs.begin(), obs.end());
    e.states.insert(e.states.end(), s.begin(), s.end());
    const std::int32_t a = (t / hold) % 2;  // long pushes, so the episode ends and the cart moves
    px->step(&a, obs.data(), &r, &term, &trunc);
    cp.step(&a, s.data(), &r, &term, &trunc);
  }
  return e;
}
}  // namespace

// State 0: c = 30 px, cart half-width 0.25 · 60/4.8 = 3.125 → columns whose centre col + 0.5 lies in
// [26.875, 33.125]: 27..32, rows 30..33 (24 pixels). Pole: vertical segment x = 30 from y = 30 to
// y = 10, thickness 0.6 → columns 29 and 30 (centres 0.5 away), rows 10..29 (the centres 9.5 and
// 30.5 are 0.71 from the end points): 40 pixels. 64 in all.
TEST(CartPolePixels, RasterByHand) {
  std::vector<float> f(H * W);
  const float s0[4] = {0, 0, 0, 0};
  rasterise_cartpole(s0, H, W, f.data());
  EXPECT_EQ(lit(f, 0, H, 0, W), 64);
  EXPECT_EQ(lit(f, 30, 34, 27, 33), 24);
  EXPECT_EQ(lit(f, 10, 30, 29, 31), 40);
  EXPECT_EQ(f[30 * W + 26], 0.f);
  EXPECT_EQ(f[9 * W + 29], 0.f);
  // x = 0.96 moves everything by 0.96 · 12.5 = 12 columns: cart 39..44, pole 41..42.
  const float s1[4] = {0.96f, 0, 0, 0};
  rasterise_cartpole(s1, H, W, f.data());
  EXPECT_EQ(lit(f, 30, 34, 39, 45), 24);
  EXPECT_EQ(lit(f, 10, 30, 41, 43), 40);
  EXPECT_EQ(lit(f, 0, H, 0, W), 64);
  // θ = 0.2 rad leans the pole right: its top end at x = 30 + 20 sin 0.2 = 33.97, y = 30 − 20 cos 0.2
  // = 10.40; the pixel there is lit and the vertical pole's top pixels (columns 29, 30 at row 11) not.
  const float s2[4] = {0, 0, 0.2f, 0};
  rasterise_cartpole(s2, H, W, f.data());
  EXPECT_EQ(f[10 * W + 33], 1.f);
  EXPECT_EQ(f[11 * W + 29], 0.f);
  EXPECT_EQ(f[11 * W + 30], 0.f);
  EXPECT_THROW(rasterise_cartpole(s0, 8, W, f.data()), sl::ConfigError);
}

// Supersampling 4 × 4 at x = 0.01 (c = 30.125 px; sample offsets 1/8, 3/8, 5/8, 7/8 of a pixel, no
// sample on an edge). Cart: centres within 3.125 of c, x ∈ [27, 33.25]: columns 27..32 whole, column
// 33 one sample column in four (33.125), column 26 none: 6.25 × 4 rows = 25. Pole: samples within
// 0.6 of the segment x = 30.125, y ∈ [10, 30]: x ∈ {29.625, 29.875 | 30.125, 30.375, 30.625}, so
// column 29 is 1/2 and column 30 3/4 covered in rows 10..29 (20 × 1.25 = 25); above the top end
// (30.125, 10), row 9's samples at y = 9.875 are within 0.6 for |dx| <= 0.587 (x = 29.625 ... 30.625)
// and at y = 9.625 for |dx| <= 0.468 (29.875 ... 30.375), those at 9.375 not (0.625 away): 3/16 in
// column 29, 5/16 in column 30; below, the pole's rounded end lies inside the cart. Total 50.5.
TEST(CartPolePixels, SupersampledRasterByHand) {
  std::vector<float> f(H * W), b(H * W);
  const float s0[4] = {0, 0, 0, 0}, sa[4] = {0.01f, 0, 0, 0};
  rasterise_cartpole(sa, H, W, f.data(), 4);
  double total = 0;
  for (float v : f) total += v;
  EXPECT_NEAR(total, 50.5, 1e-5);
  for (int r = 30; r < 34; ++r) {
    EXPECT_FLOAT_EQ(f[r * W + 26], 0.f) << r;
    EXPECT_FLOAT_EQ(f[r * W + 27], 1.f) << r;
    EXPECT_FLOAT_EQ(f[r * W + 33], 0.25f) << r;
  }
  for (int r = 10; r < 30; ++r) {
    EXPECT_FLOAT_EQ(f[r * W + 29], 0.5f) << r;
    EXPECT_FLOAT_EQ(f[r * W + 30], 0.75f) << r;
    EXPECT_FLOAT_EQ(f[r * W + 28], 0.f) << r;
    EXPECT_FLOAT_EQ(f[r * W + 31], 0.f) << r;
  }
  EXPECT_FLOAT_EQ(f[9 * W + 29], 3.f / 16);
  EXPECT_FLOAT_EQ(f[9 * W + 30], 5.f / 16);
  EXPECT_FLOAT_EQ(f[8 * W + 30], 0.f);
  // n = 1 equals the binary raster (the default), here for a leaning, off-centre pole.
  const float s2[4] = {-0.7f, 0, -0.15f, 0};
  rasterise_cartpole(s2, H, W, f.data(), 1);
  rasterise_cartpole(s2, H, W, b.data());
  EXPECT_EQ(f, b);
  // A sub-pixel move shows only with supersampling: x + 0.004 (0.05 px).
  const float s3[4] = {0.004f, 0, 0, 0};
  rasterise_cartpole(s3, H, W, b.data());
  rasterise_cartpole(s0, H, W, f.data());
  EXPECT_EQ(f, b);
  rasterise_cartpole(s3, H, W, b.data(), 4);
  rasterise_cartpole(s0, H, W, f.data(), 4);
  EXPECT_NE(f, b);
  EXPECT_THROW(rasterise_cartpole(s0, H, W, f.data(), 0), sl::ConfigError);
}

// The same seed and actions: rewards, terminations and truncations equal CartPole-v1's, the current
// frame is the raster of CartPole's state, the previous frame the last step's current frame (and,
// after an auto-reset, the new first frame).
TEST(CartPolePixels, FollowsCartPoleAndStacksFrames) {
  EnvOptions o;
  o.num_envs = 3;
  auto px = make_env("CartPolePixels-v1", o);
  CartPole cp(o);
  ASSERT_EQ(px->obs_dim(), 2 * H * W);
  const auto D = px->obs_dim(), F = H * W;
  std::vector<float> obs(3 * D), s(3 * 4), fin(3 * D), frame(F), prev_cur(3 * F);
  std::vector<float> r1(3), r2(3);
  std::vector<std::uint8_t> t1(3), t2(3), u1(3), u2(3);
  px->reset(5, obs.data());
  cp.reset(5, s.data());
  for (int i = 0; i < 3; ++i) {
    rasterise_cartpole(s.data() + 4 * i, H, W, frame.data());
    for (std::int64_t k = 0; k < F; ++k) {
      ASSERT_EQ(obs[i * D + F + k], frame[k]);
      ASSERT_EQ(obs[i * D + k], frame[k]);  // at a reset the previous frame is the current one
    }
  }
  int resets = 0;
  for (int t = 0; t < 300; ++t) {
    for (int i = 0; i < 3; ++i) std::copy(obs.begin() + i * D + F, obs.begin() + (i + 1) * D, prev_cur.begin() + i * F);
    const std::int32_t a[3] = {t % 2, (t / 3) % 2, 1};
    px->step(a, obs.data(), r1.data(), t1.data(), u1.data(), fin.data());
    cp.step(a, s.data(), r2.data(), t2.data(), u2.data());
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(r1[i], r2[i]);
      ASSERT_EQ(t1[i], t2[i]);
      ASSERT_EQ(u1[i], u2[i]);
      const bool ended = t1[i] || u1[i];
      resets += ended;
      rasterise_cartpole(s.data() + 4 * i, H, W, frame.data());
      for (std::int64_t k = 0; k < F; ++k) {
        ASSERT_EQ(obs[i * D + F + k], frame[k]) << "t " << t << " copy " << i;
        ASSERT_EQ(obs[i * D + k], ended ? frame[k] : prev_cur[i * F + k]) << "t " << t << " copy " << i;
        ASSERT_EQ(fin[i * D + k], prev_cur[i * F + k]);  // the final observation's previous frame
      }
    }
  }
  EXPECT_GT(resets, 3);  // episodes ended and were reset along the way
  const std::int32_t bad[3] = {0, 2, 0};
  EXPECT_THROW(px->step(bad, obs.data(), r1.data(), t1.data(), u1.data()), sl::UsageError);
}

// rasterise_episode from CartPole-v1's states reproduces the observations CartPolePixels-v1 gave
// along the same episode (same seed and actions), step by step from the reset to the last step.
TEST(CartPolePixels, EpisodeFromStatesMatchesTheEnvironment) {
  EnvOptions o;
  o.num_envs = 1;
  o.auto_reset = false;
  const auto D = 2 * H * W;
  const auto e = pixel_and_state_episode(o, 9, 4);
  const auto& seen_obs = e.obs;
  const auto& seen_states = e.states;
  const auto T = e.steps();
  ASSERT_GT(T, 5);
  std::vector<float> mine(T * D);
  rasterise_episode(seen_states.data(), T, H, W, mine.data());
  for (std::int64_t k = 0; k < T * D; ++k) ASSERT_EQ(mine[k], seen_obs[k]) << "step " << k / D << " index " << k % D;
  EXPECT_THROW(rasterise_episode(seen_states.data(), 0, H, W, mine.data()), sl::ConfigError);
  // Supersampled: every row's current frame is rasterise_cartpole's, its previous frame the last row's.
  rasterise_episode(seen_states.data(), T, H, W, mine.data(), 3);
  std::vector<float> frame(H * W);
  for (std::int64_t t = 0; t < T; ++t) {
    rasterise_cartpole(seen_states.data() + 4 * t, H, W, frame.data(), 3);
    for (std::int64_t k = 0; k < H * W; ++k) {
      ASSERT_EQ(mine[t * D + H * W + k], frame[k]) << t;
      ASSERT_EQ(mine[t * D + k], t == 0 ? frame[k] : mine[(t - 1) * D + H * W + k]) << t;
    }
  }
}

// EnvOptions::supersample renders the environment's frames anti-aliased: along an episode every
// observation equals rasterise_episode's with the same n (and n = 1 stays the binary default). The
// shape {2, 40, 60} is declared; out-of-range n and n != 1 for a state environment are ConfigErrors.
TEST(CartPolePixels, SupersampledEnvironmentAndShape) {
  EnvOptions o;
  o.auto_reset = false;
  o.supersample = 4;
  EXPECT_EQ(make_env("CartPolePixels-v1", o)->obs_shape(), (std::vector<std::int64_t>{2, H, W}));
  EXPECT_EQ(make_env("CartPole-v1")->obs_shape(), (std::vector<std::int64_t>{4}));
  const auto D = 2 * H * W;
  const auto e = pixel_and_state_episode(o, 5, 3);
  const auto& seen_obs = e.obs;
  const auto& seen_states = e.states;
  const auto T = e.steps();
  ASSERT_GT(T, 5);
  std::vector<float> mine(T * D);
  rasterise_episode(seen_states.data(), T, H, W, mine.data(), 4);
  bool grey = false;
  for (std::int64_t k = 0; k < T * D; ++k) {
    ASSERT_EQ(mine[k], seen_obs[k]) << "step " << k / D << " index " << k % D;
    grey = grey || (seen_obs[k] > 0.f && seen_obs[k] < 1.f);
  }
  EXPECT_TRUE(grey);  // anti-aliased, not binary
  for (std::int64_t bad : {0, 65}) {
    o.supersample = bad;
    EXPECT_THROW(make_env("CartPolePixels-v1", o), sl::ConfigError) << bad;
  }
  o.supersample = 2;
  for (const char* name : {"CartPole-v1", "Maze-v0", "Search-v0"}) {
    try {
      make_env(name, o);
      ADD_FAILURE() << name << ": expected a ConfigError naming env.supersample";
    } catch (const sl::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("env.supersample"), std::string::npos) << e.what();
    }
  }
}
