// Vectorised CartPole with the classic-control dynamics of gym's CartPole-v1 (Barto, Sutton &
// Anderson 1983; equations of Florian 2007 as gym implements them), torch-free.
//
// State s = (x, ẋ, θ, θ̇); action 0 pushes left, 1 right with force F = ±10 N. Constants: g = 9.8,
// cart mass 1.0, pole mass m = 0.1, total mass M = 1.1, half pole length l = 0.5, m l = 0.05,
// τ = 0.02 s. One step (explicit Euler, gym's "euler" kinematics):
//   t  = (F + m l θ̇² sin θ) / M
//   θ̈  = (g sin θ − cos θ · t) / (l (4/3 − m cos²θ / M))
//   ẍ  = t − m l θ̈ cos θ / M
//   x ← x + τ ẋ,  ẋ ← ẋ + τ ẍ,  θ ← θ + τ θ̇,  θ̇ ← θ̇ + τ θ̈      (the old ẋ, θ̇ move x, θ)
// Reward 1 for every step (the terminating one included). Terminated when |x| > 2.4 or
// |θ| > 12° (12·2π/360 rad) after the step; truncated when the episode reaches max_steps (500).
// Reset: every state component uniform in [−0.05, 0.05) from the copy's stream.
//
// Differences from gym, all below float resolution or in the API only: the state is kept in float
// (gym: float64, observed as float32); sin and cos are their Taylor polynomials to degree 7 and 8,
// exact to ~1e-12 on the only angles ever stepped (a copy that ended is never stepped again, so
// |θ| <= 12° at every step); the random streams are splitmix64, not NumPy's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

struct CartPoleConstants {
  static constexpr float gravity = 9.8f;
  static constexpr float masscart = 1.0f;
  static constexpr float masspole = 0.1f;
  static constexpr float total_mass = masspole + masscart;
  static constexpr float length = 0.5f;  ///< half the pole's length
  static constexpr float polemass_length = masspole * length;
  static constexpr float force_mag = 10.0f;
  static constexpr float tau = 0.02f;
  static constexpr float theta_threshold = 12.0f * 2.0f * 3.14159265358979323846f / 360.0f;
  static constexpr float x_threshold = 2.4f;
  static constexpr float reset_bound = 0.05f;
  static constexpr std::int64_t max_steps = 500;
};

class CartPole final : public VecEnv {
 public:
  /// ConfigError naming the option for num_envs < 1 or max_steps < 0.
  explicit CartPole(const EnvOptions& options = {});

  const std::string& name() const override { return name_; }
  std::int64_t num_envs() const override { return n_; }
  std::int64_t obs_dim() const override { return 4; }
  std::int64_t num_actions() const override { return 2; }
  void reset(std::uint64_t seed, float* obs) override;
  void reset_env(std::int64_t i, float* obs_i) override;
  void step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
            std::uint8_t* truncated, float* final_obs = nullptr) override;

  /// Sets copy i to state (x, ẋ, θ, θ̇) at episode step `elapsed`; the state must be one CartPole
  /// can be stepped from (|x| <= 2.4, |θ| <= 12°, finite), else a UsageError. For tests and
  /// analyses (e.g. the states an agent visits).
  void set_state(std::int64_t i, const float state[4], std::int64_t elapsed = 0);
  /// Copy i's state (x, ẋ, θ, θ̇).
  void get_state(std::int64_t i, float state[4]) const;
  /// Steps taken in copy i's current episode.
  std::int64_t elapsed(std::int64_t i) const { return steps_[check_index(i)]; }
  std::int64_t max_steps() const { return max_steps_; }

 private:
  std::int64_t check_index(std::int64_t i) const;
  void reset_one(std::int64_t i);
  std::string name_ = "CartPole-v1";
  std::int64_t n_;
  bool auto_reset_;
  std::int64_t max_steps_;
  std::vector<float> x_, xd_, th_, thd_;  // SoA state
  std::vector<std::int32_t> steps_;
  std::vector<std::uint8_t> ended_;       // without auto_reset: episode over, must be reset
  std::vector<std::uint8_t> done_;        // scratch of step()
  std::vector<SplitMix64> rng_;
  bool started_ = false;
};

}  // namespace stablelearn::rl
