// CartPolePixels-v1: CartPole-v1 (rl/cartpole.h) observed as a small binary image instead of its
// state, for diagnosing a policy's non-robust directions as a spatial map (Korkmaz 2024; docs/rl.md
// "Policy diagnosis"). Torch-free. Dynamics, rewards, termination, truncation and the random
// streams are CartPole-v1's: the same seed and actions give the same episodes.
//
// Observation: two frames [previous, current], each H × W (row-major, row 0 at the top), 1 where
// the cart or the pole covers the pixel's centre and 0 elsewhere (so velocities are observable). At
// a reset, the previous frame is the current one. The world's x ∈ [−2.4, 2.4] spans the W columns
// (c(x) = (x + 2.4) / 4.8 · W, in pixel units, centres at col + 0.5):
//   cart  rows [H − 10, H − 6), columns whose centre lies within 0.25 · W / 4.8 of c(x)
//         (half the cart's width of 0.5 world units)
//   pole  the pixels whose centre lies within 0.6 of the segment from (c(x), H − 10) to
//         (c(x) + L sin θ, H − 10 − L cos θ), L = H / 2 (a line about one pixel thick)
// (y grows downwards). Defaults H = 40, W = 60: obs_dim 4800, obs_shape {2, 40, 60}. With
// EnvOptions::supersample n > 1 the frames are anti-aliased (grey levels k/n², rasterise_cartpole);
// n = 1, the default, gives the binary frames above.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stablelearn/rl/cartpole.h"
#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

/// One frame of the state (x, ẋ, θ, θ̇) into frame[H · W] (overwritten). H >= 12, W >= 8.
/// supersample n >= 1 (at most 64): each pixel is the fraction of its n × n sample points
/// (col + (j + 1/2)/n, row + (i + 1/2)/n) that the cart or the pole covers, by the rules above (an
/// anti-aliased frame with grey levels k/n², so sub-pixel motion shows); n = 1 samples the pixel's
/// centre only: the binary frame of CartPolePixels-v1.
void rasterise_cartpole(const float state[4], std::int64_t height, std::int64_t width, float* frame,
                        std::int64_t supersample = 1);

/// The observations CartPolePixels-v1 gives along one episode from its CartPole states: `states`
/// [steps × 4] (row t the state at step t, row 0 the reset state) → obs [steps × 2HW], row t =
/// [frame(s_{t−1}), frame(s_t)] with s_{−1} = s_0 (the reset's repeated frame). steps >= 1. Used to
/// label frames with a state policy's values (policy distillation, rl/distill.h). `supersample` as
/// in rasterise_cartpole (1: CartPolePixels-v1's binary frames).
void rasterise_episode(const float* states, std::int64_t steps, std::int64_t height, std::int64_t width, float* obs,
                       std::int64_t supersample = 1);

class CartPolePixels final : public VecEnv {
 public:
  static constexpr std::int64_t kHeight = 40, kWidth = 60;
  /// The options of CartPole (num_envs, auto_reset, max_steps) and `supersample` (n × n samples per
  /// pixel, in [1, 64]; 1 = the binary frames); ConfigError naming the option.
  explicit CartPolePixels(const EnvOptions& options = {});

  const std::string& name() const override { return name_; }
  std::int64_t num_envs() const override { return inner_.num_envs(); }
  std::int64_t obs_dim() const override { return 2 * kHeight * kWidth; }
  /// {2, 40, 60}: the frames [previous, current] as channels.
  std::vector<std::int64_t> obs_shape() const override { return {2, kHeight, kWidth}; }
  std::int64_t supersample() const { return supersample_; }
  std::int64_t num_actions() const override { return 2; }
  void reset(std::uint64_t seed, float* obs) override;
  void reset_env(std::int64_t i, float* obs_i) override;
  void step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
            std::uint8_t* truncated, float* final_obs = nullptr) override;
  /// The underlying CartPole (its states, for analyses).
  const CartPole& state_env() const { return inner_; }

 private:
  void write_obs(std::int64_t i, const float* state, float* obs_i, bool fresh);
  std::string name_ = "CartPolePixels-v1";
  CartPole inner_;
  std::int64_t supersample_ = 1;
  std::vector<float> states_, final_states_, prev_;  // [N, 4], [N, 4], [N, H·W]
};

}  // namespace stablelearn::rl
