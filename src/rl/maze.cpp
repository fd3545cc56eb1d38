#include "stablelearn/rl/maze.h"

#include <algorithm>
#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::rl {

namespace {
constexpr std::uint64_t kLevelSalt = 0x4D415A4576301ULL;  // "MAZEv0": level streams apart from the copies'
constexpr int kDr[4] = {-1, 1, 0, 0}, kDc[4] = {0, 0, -1, 1};
}  // namespace

MazeLevel maze_level(std::uint64_t id, std::int64_t grid) {
  SL_CHECK(grid >= 5 && grid % 2 == 1 && grid <= 255, ConfigError, "env.grid: must be odd and in [5, 255], got ", grid);
  MazeLevel m;
  m.grid = grid;
  m.walls.assign(static_cast<std::size_t>(grid * grid), 1);
  SplitMix64 rng{stream_seed(kLevelSalt, static_cast<std::int64_t>(id & 0x7FFFFFFFFFFFFFFFULL))};
  const std::int64_t cells = (grid - 1) / 2;
  auto at = [&](std::int64_t r, std::int64_t c) -> std::uint8_t& { return m.walls[static_cast<std::size_t>(r * grid + c)]; };
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(cells * cells), 0);
  std::vector<std::int64_t> stack{0};  // cell index i * cells + j
  seen[0] = 1;
  at(1, 1) = 0;
  while (!stack.empty()) {
    const auto cur = stack.back();
    const auto ci = cur / cells, cj = cur % cells;
    int options[4], k = 0;
    for (int d = 0; d < 4; ++d) {
      const auto ni = ci + kDr[d], nj = cj + kDc[d];
      if (ni >= 0 && ni < cells && nj >= 0 && nj < cells && !seen[static_cast<std::size_t>(ni * cells + nj)]) options[k++] = d;
    }
    if (k == 0) {
      stack.pop_back();
      continue;
    }
    const int d = options[rng.next() % static_cast<std::uint64_t>(k)];
    const auto ni = ci + kDr[d], nj = cj + kDc[d];
    seen[static_cast<std::size_t>(ni * cells + nj)] = 1;
    at(2 * ci + 1 + kDr[d], 2 * cj + 1 + kDc[d]) = 0;  // the wall between
    at(2 * ni + 1, 2 * nj + 1) = 0;
    stack.push_back(ni * cells + nj);
  }
  const auto goal = 1 + static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(cells * cells - 1));  // not cell 0
  m.goal_row = static_cast<std::int32_t>(2 * (goal / cells) + 1);
  m.goal_col = static_cast<std::int32_t>(2 * (goal % cells) + 1);
  return m;
}

Maze::Maze(const EnvOptions& o)
    : n_(o.num_envs),
      grid_(o.grid == 0 ? default_grid : o.grid),
      max_steps_(o.max_steps),
      levels_(o.levels),
      start_level_(o.start_level),
      auto_reset_(o.auto_reset) {
  SL_CHECK(o.num_envs >= 1 && o.num_envs <= (std::int64_t{1} << 24), ConfigError, "env.num_envs: must be in [1, 2^24], got ",
           o.num_envs);
  SL_CHECK(o.grid == 0 || (o.grid >= 5 && o.grid % 2 == 1 && o.grid <= 255), ConfigError,
           "env.grid: must be odd and in [5, 255] (0 = Maze-v0's 9), got ", o.grid);
  SL_CHECK(o.max_steps >= 0 && o.max_steps <= (std::int64_t{1} << 30), ConfigError,
           "env.max_steps: must be in [0, 2^30] (0 = 4 grid^2), got ", o.max_steps);
  SL_CHECK(o.levels >= 0, ConfigError, "env.levels: must be >= 0 (0 = unlimited), got ", o.levels);
  SL_CHECK(o.start_level >= 0, ConfigError, "env.start_level: must be >= 0, got ", o.start_level);
  if (max_steps_ == 0) max_steps_ = 4 * grid_ * grid_;
  const auto n = static_cast<std::size_t>(n_);
  level_.assign(n, MazeLevel{});
  level_id_.assign(n, 0);
  row_.assign(n, 1);
  col_.assign(n, 1);
  steps_.assign(n, 0);
  ended_.assign(n, 0);
  rng_.assign(n, SplitMix64{});
  for (std::int64_t i = 0; i < n_; ++i) rng_[i].state = stream_seed(0, i);
}

std::int64_t Maze::check_index(std::int64_t i) const {
  SL_CHECK(i >= 0 && i < n_, UsageError, name_, ": copy index ", i, " out of range [0, ", n_, ")");
  return i;
}

void Maze::reset_one(std::int64_t i) {
  const auto u = rng_[i].next();
  const std::uint64_t span = levels_ > 0 ? static_cast<std::uint64_t>(levels_) : (std::uint64_t{1} << 31);
  const auto id = static_cast<std::uint64_t>(start_level_) + u % span;
  if (level_id_[i] != id || level_[i].grid != grid_) {
    level_[i] = maze_level(id, grid_);
    level_id_[i] = id;
  }
  row_[i] = level_[i].start_row;
  col_[i] = level_[i].start_col;
  steps_[i] = 0;
  ended_[i] = 0;
}

void Maze::write_obs(std::int64_t i, float* o) const {
  const auto g2 = grid_ * grid_;
  const auto& m = level_[i];
  for (std::int64_t k = 0; k < g2; ++k) o[k] = m.walls[static_cast<std::size_t>(k)];
  std::memset(o + g2, 0, sizeof(float) * static_cast<std::size_t>(2 * g2));
  o[g2 + row_[i] * grid_ + col_[i]] = 1.f;
  o[2 * g2 + m.goal_row * grid_ + m.goal_col] = 1.f;
}

void Maze::reset(std::uint64_t seed, float* obs) {
  for (std::int64_t i = 0; i < n_; ++i) {
    rng_[i].state = stream_seed(seed, i);
    reset_one(i);
    write_obs(i, obs + obs_dim() * i);
  }
  started_ = true;
}

void Maze::reset_env(std::int64_t i, float* obs_i) {
  SL_CHECK(started_, UsageError, name_, ": reset_env() before reset(seed)");
  reset_one(check_index(i));
  write_obs(i, obs_i);
}

void Maze::step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated, std::uint8_t* truncated,
                float* final_obs) {
  SL_CHECK(started_, UsageError, name_, ": step() before reset(seed)");
  for (std::int64_t i = 0; i < n_; ++i)
    SL_CHECK(actions[i] >= 0 && actions[i] < 4, UsageError, name_, ": action of copy ", i, " is ", actions[i],
             "; expected 0 (up), 1 (down), 2 (left) or 3 (right)");
  if (!auto_reset_)
    for (std::int64_t i = 0; i < n_; ++i)
      SL_CHECK(!ended_[i], UsageError, name_, ": copy ", i,
               " is stepped after its episode ended; call reset_env(i) first (or enable auto_reset)");
  const auto d = obs_dim();
  for (std::int64_t i = 0; i < n_; ++i) {
    const auto& m = level_[i];
    const int a = actions[i];
    const auto r = row_[i] + kDr[a], c = col_[i] + kDc[a];
    if (!m.wall(r, c)) {  // the outer ring is wall, so (r, c) stays on the board
      row_[i] = r;
      col_[i] = c;
    }
    ++steps_[i];
    const bool term = row_[i] == m.goal_row && col_[i] == m.goal_col;
    const bool trunc = !term && steps_[i] >= max_steps_;
    reward[i] = term ? goal_reward : 0.f;
    terminated[i] = term;
    truncated[i] = trunc;
    write_obs(i, obs + d * i);
    if (end_copy_step(term || trunc, auto_reset_, obs + d * i, final_obs ? final_obs + d * i : nullptr, d, [&] {
          reset_one(i);
          write_obs(i, obs + d * i);
        }))
      ended_[i] = 1;
  }
}

}  // namespace stablelearn::rl
