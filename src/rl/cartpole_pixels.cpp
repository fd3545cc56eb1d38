#include "stablelearn/rl/cartpole_pixels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

void rasterise_cartpole(const float state[4], std::int64_t height, std::int64_t width, float* frame, std::int64_t supersample) {
  SL_CHECK(height >= 12 && width >= 8, ConfigError, "rasterise_cartpole: need height >= 12 and width >= 8, got ", height,
           " x ", width);
  SL_CHECK(supersample >= 1 && supersample <= 64, ConfigError, "rasterise_cartpole: supersample must be in [1, 64], got ",
           supersample);
  const auto H = height, W = width, n = supersample;
  std::fill(frame, frame + H * W, 0.f);
  const double scale = static_cast<double>(W) / (2 * CartPoleConstants::x_threshold);
  const double c = (static_cast<double>(state[0]) + CartPoleConstants::x_threshold) * scale;
  const double hw = 0.25 * scale;
  const double L = 0.5 * static_cast<double>(H), th = state[2];
  const double x0 = c, y0 = static_cast<double>(H - 10), dx = L * std::sin(th), dy = -L * std::cos(th);
  const double len2 = dx * dx + dy * dy;
  const double r2 = 0.6 * 0.6;
  // Sample point j of a pixel along one axis: offset (j + 1/2) / n (n = 1: the pixel's centre).
  auto at = [n](std::int64_t p, std::int64_t j) {
    return static_cast<double>(p) + (static_cast<double>(j) + 0.5) / static_cast<double>(n);
  };
  auto in_cart = [&](double px) { return std::abs(px - c) <= hw; };  // rows [H − 10, H − 6) hold whole pixels
  auto in_pole = [&](double px, double py) {
    const double ux = px - x0, uy = py - y0;
    const double t = std::clamp((ux * dx + uy * dy) / len2, 0.0, 1.0);
    const double ex = ux - t * dx, ey = uy - t * dy;
    return ex * ex + ey * ey <= r2;
  };
  const float weight = 1.f / static_cast<float>(n * n);
  for (std::int64_t r = H - 10; r < H - 6; ++r)
    for (std::int64_t col = 0; col < W; ++col) {
      std::int64_t hits = 0;
      for (std::int64_t j = 0; j < n; ++j) hits += in_cart(at(col, j)) ? n : 0;
      frame[r * W + col] = static_cast<float>(hits) * weight;
    }
  // Only the pixels of the segment's bounding box (plus the thickness) can be lit by the pole.
  const auto c0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(std::min(x0, x0 + dx) - 1)));
  const auto c1 = std::min<std::int64_t>(W - 1, static_cast<std::int64_t>(std::ceil(std::max(x0, x0 + dx) + 1)));
  const auto r0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(std::min(y0, y0 + dy) - 1)));
  const auto r1 = std::min<std::int64_t>(H - 1, static_cast<std::int64_t>(std::ceil(std::max(y0, y0 + dy) + 1)));
  for (std::int64_t r = r0; r <= r1; ++r)
    for (std::int64_t col = c0; col <= c1; ++col) {
      const bool cart_row = r >= H - 10 && r < H - 6;
      std::int64_t hits = 0;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          const double px = at(col, j), py = at(r, i);
          hits += (cart_row && in_cart(px)) || in_pole(px, py);  // the union of cart and pole
        }
      frame[r * W + col] = static_cast<float>(hits) * weight;
    }
}

void rasterise_episode(const float* states, std::int64_t steps, std::int64_t height, std::int64_t width, float* obs,
                       std::int64_t supersample) {
  SL_CHECK(steps >= 1, ConfigError, "rasterise_episode: need steps >= 1, got ", steps);
  const auto F = height * width;
  for (std::int64_t t = 0; t < steps; ++t) {
    float* row = obs + t * 2 * F;
    rasterise_cartpole(states + 4 * t, height, width, row + F, supersample);
    if (t == 0) std::memcpy(row, row + F, sizeof(float) * F);
    else std::memcpy(row, row - F, sizeof(float) * F);  // the previous row's current frame
  }
}

CartPolePixels::CartPolePixels(const EnvOptions& options) : inner_(options), supersample_(options.supersample) {
  SL_CHECK(supersample_ >= 1 && supersample_ <= 64, ConfigError, "env.supersample: must be in [1, 64], got ", supersample_);
  const auto n = static_cast<std::size_t>(inner_.num_envs());
  states_.assign(n * 4, 0.f);
  final_states_.assign(n * 4, 0.f);
  prev_.assign(n * kHeight * kWidth, 0.f);
}

void CartPolePixels::write_obs(std::int64_t i, const float* state, float* obs_i, bool fresh) {
  const auto F = kHeight * kWidth;
  float* prev = prev_.data() + i * F;
  rasterise_cartpole(state, kHeight, kWidth, obs_i + F, supersample_);
  if (fresh) std::memcpy(prev, obs_i + F, sizeof(float) * F);
  std::memcpy(obs_i, prev, sizeof(float) * F);
  std::memcpy(prev, obs_i + F, sizeof(float) * F);  // the next step's previous frame
}

void CartPolePixels::reset(std::uint64_t seed, float* obs) {
  inner_.reset(seed, states_.data());
  for (std::int64_t i = 0; i < num_envs(); ++i) write_obs(i, states_.data() + 4 * i, obs + i * obs_dim(), true);
}

void CartPolePixels::reset_env(std::int64_t i, float* obs_i) {
  inner_.reset_env(i, states_.data() + 4 * i);
  write_obs(i, states_.data() + 4 * i, obs_i, true);
}

void CartPolePixels::step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
                          std::uint8_t* truncated, float* final_obs) {
  inner_.step(actions, states_.data(), reward, terminated, truncated, final_states_.data());
  const auto D = obs_dim(), F = kHeight * kWidth;
  for (std::int64_t i = 0; i < num_envs(); ++i) {
    const bool ended = terminated[i] || truncated[i];
    if (final_obs) {
      // The episode's last observation: [previous frame, the final state's frame].
      std::memcpy(final_obs + i * D, prev_.data() + i * F, sizeof(float) * F);
      rasterise_cartpole(final_states_.data() + 4 * i, kHeight, kWidth, final_obs + i * D + F, supersample_);
    }
    // With auto_reset an ended copy already holds its next episode's first state: a fresh start.
    write_obs(i, states_.data() + 4 * i, obs + i * D, ended);
  }
}

}  // namespace stablelearn::rl
