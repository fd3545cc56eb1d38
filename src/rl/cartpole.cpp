#include "stablelearn/rl/cartpole.h"

#include <cmath>
#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

namespace {
using C = CartPoleConstants;

// The dynamics over SoA arrays, written so that the compiler vectorises it (pure float arithmetic,
// no aliasing, no calls): sin and cos are Taylor polynomials, exact to ~1e-12 for |θ| <= 12°.
void step_physics(std::int32_t n, const std::int32_t* __restrict actions, float* __restrict x, float* __restrict xd,
                  float* __restrict th, float* __restrict thd, float* __restrict obs) {
  constexpr float inv6 = 1.f / 6.f, inv120 = 1.f / 120.f, inv5040 = 1.f / 5040.f;
  constexpr float inv24 = 1.f / 24.f, inv720 = 1.f / 720.f, inv40320 = 1.f / 40320.f;
  constexpr float four_thirds = 4.f / 3.f;
  for (std::int32_t i = 0; i < n; ++i) {
    const float force = actions[i] == 1 ? C::force_mag : -C::force_mag;
    const float t = th[i], td = thd[i], t2 = t * t;
    const float sin_t = t * (1.f - t2 * (inv6 - t2 * (inv120 - t2 * inv5040)));
    const float cos_t = 1.f - t2 * (0.5f - t2 * (inv24 - t2 * (inv720 - t2 * inv40320)));
    const float temp = (force + C::polemass_length * td * td * sin_t) / C::total_mass;
    const float thacc =
        (C::gravity * sin_t - cos_t * temp) / (C::length * (four_thirds - C::masspole * cos_t * cos_t / C::total_mass));
    const float xacc = temp - C::polemass_length * thacc * cos_t / C::total_mass;
    const float nx = x[i] + C::tau * xd[i];
    const float nxd = xd[i] + C::tau * xacc;
    const float nth = t + C::tau * td;
    const float nthd = td + C::tau * thacc;
    x[i] = nx;
    xd[i] = nxd;
    th[i] = nth;
    thd[i] = nthd;
    obs[4 * i + 0] = nx;
    obs[4 * i + 1] = nxd;
    obs[4 * i + 2] = nth;
    obs[4 * i + 3] = nthd;
  }
}

// Rewards, termination (|x| > 2.4 or |θ| > 12°), truncation (elapsed >= max_steps); returns
// whether any copy ended.
std::uint32_t step_flags(std::int32_t n, const float* __restrict x, const float* __restrict th,
                         std::int32_t* __restrict steps, std::int32_t max_steps, float* __restrict reward,
                         std::uint8_t* __restrict terminated, std::uint8_t* __restrict truncated,
                         std::uint8_t* __restrict done) {
  std::uint32_t any = 0;
  for (std::int32_t i = 0; i < n; ++i) {
    const std::int32_t s = steps[i] + 1;
    steps[i] = s;
    const bool term = (x[i] < -C::x_threshold) | (x[i] > C::x_threshold) | (th[i] < -C::theta_threshold) |
                      (th[i] > C::theta_threshold);
    const bool trunc = s >= max_steps;
    reward[i] = 1.f;
    terminated[i] = term;
    truncated[i] = trunc;
    done[i] = term | trunc;
    any |= static_cast<std::uint32_t>(term | trunc);
  }
  return any;
}
}  // namespace

CartPole::CartPole(const EnvOptions& o)
    : n_(o.num_envs), auto_reset_(o.auto_reset), max_steps_(o.max_steps == 0 ? C::max_steps : o.max_steps) {
  SL_CHECK(o.num_envs >= 1 && o.num_envs <= (std::int64_t{1} << 30), ConfigError, "env.num_envs: must be in [1, 2^30], got ",
           o.num_envs);
  SL_CHECK(o.max_steps >= 0 && o.max_steps <= (std::int64_t{1} << 30), ConfigError,
           "env.max_steps: must be in [0, 2^30] (0 = CartPole-v1's 500), got ", o.max_steps);
  const auto n = static_cast<std::size_t>(n_);
  x_.assign(n, 0.f);
  xd_.assign(n, 0.f);
  th_.assign(n, 0.f);
  thd_.assign(n, 0.f);
  steps_.assign(n, 0);
  ended_.assign(n, 0);
  done_.assign(n, 0);
  rng_.assign(n, SplitMix64{});
  for (std::int64_t i = 0; i < n_; ++i) rng_[i].state = stream_seed(0, i);  // until reset(seed)
}

std::int64_t CartPole::check_index(std::int64_t i) const {
  SL_CHECK(i >= 0 && i < n_, UsageError, name_, ": copy index ", i, " out of range [0, ", n_, ")");
  return i;
}

void CartPole::reset_one(std::int64_t i) {
  auto& r = rng_[i];
  const float lo = -C::reset_bound, w = 2 * C::reset_bound;
  x_[i] = lo + w * r.uniform01();
  xd_[i] = lo + w * r.uniform01();
  th_[i] = lo + w * r.uniform01();
  thd_[i] = lo + w * r.uniform01();
  steps_[i] = 0;
  ended_[i] = 0;
}

void CartPole::reset(std::uint64_t seed, float* obs) {
  for (std::int64_t i = 0; i < n_; ++i) {
    rng_[i].state = stream_seed(seed, i);
    reset_one(i);
    get_state(i, obs + 4 * i);
  }
  started_ = true;
}

void CartPole::reset_env(std::int64_t i, float* obs_i) {
  SL_CHECK(started_, UsageError, name_, ": reset_env() before reset(seed)");
  reset_one(check_index(i));
  get_state(i, obs_i);
}

void CartPole::set_state(std::int64_t i, const float s[4], std::int64_t elapsed) {
  check_index(i);
  for (int k = 0; k < 4; ++k)
    SL_CHECK(std::isfinite(s[k]), UsageError, name_, ": set_state of copy ", i, ": component ", k, " is not finite");
  SL_CHECK(std::fabs(s[0]) <= C::x_threshold && std::fabs(s[2]) <= C::theta_threshold, UsageError, name_,
           ": set_state of copy ", i, ": (x, theta) = (", s[0], ", ", s[2],
           ") is a terminal state; expected |x| <= 2.4 and |theta| <= 12 degrees");
  SL_CHECK(elapsed >= 0 && elapsed < max_steps_, UsageError, name_, ": set_state of copy ", i, ": elapsed ",
           elapsed, " outside [0, ", max_steps_, ")");
  x_[i] = s[0];
  xd_[i] = s[1];
  th_[i] = s[2];
  thd_[i] = s[3];
  steps_[i] = static_cast<std::int32_t>(elapsed);
  ended_[i] = 0;
  started_ = true;
}

void CartPole::get_state(std::int64_t i, float s[4]) const {
  check_index(i);
  s[0] = x_[i];
  s[1] = xd_[i];
  s[2] = th_[i];
  s[3] = thd_[i];
}

void CartPole::step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
                    std::uint8_t* truncated, float* final_obs) {
  SL_CHECK(started_, UsageError, name_, ": step() before reset(seed)");
  const std::int64_t n = n_;
  // Validate everything before anything moves.
  std::uint32_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) bad |= static_cast<std::uint32_t>(actions[i]) > 1u;
  if (bad)
    for (std::int64_t i = 0; i < n; ++i)
      SL_CHECK(actions[i] == 0 || actions[i] == 1, UsageError, name_, ": action of copy ", i, " is ", actions[i],
               "; expected 0 (push left) or 1 (push right)");
  if (!auto_reset_)
    for (std::int64_t i = 0; i < n; ++i)
      SL_CHECK(!ended_[i], UsageError, name_, ": copy ", i,
               " is stepped after its episode ended; call reset_env(i) first (or enable auto_reset)");

  const auto n32 = static_cast<std::int32_t>(n);
  step_physics(n32, actions, x_.data(), xd_.data(), th_.data(), thd_.data(), obs);
  const std::uint32_t any_done = step_flags(n32, x_.data(), th_.data(), steps_.data(), static_cast<std::int32_t>(max_steps_),
                                            reward, terminated, truncated, done_.data());
  std::uint8_t* done = done_.data();
  if (final_obs) std::memcpy(final_obs, obs, sizeof(float) * 4 * static_cast<std::size_t>(n));
  if (!any_done) return;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!done[i]) continue;
    if (auto_reset_) {
      reset_one(i);
      get_state(i, obs + 4 * i);
    } else {
      ended_[i] = 1;
    }
  }
}

}  // namespace stablelearn::rl
