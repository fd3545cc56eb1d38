// Maze-v0: a procedurally generated grid maze with train/test level splits (issue 23; the
// tree-structured gridworld of the Hyper++ experiment, shared/specs/papers-19-35.md §29, after
// Procgen's Maze), torch-free.
//
// Level L (an id ≥ 0) is a perfect maze on a `grid` × `grid` board (odd side G ≥ 5): the cells
// (2i+1, 2j+1), 0 ≤ i, j < (G−1)/2, are carved by a randomised depth-first search (recursive
// backtracker) from cell (1, 1) with level L's own splitmix64 stream, so every cell is reachable
// along exactly one path (the corridors form a tree); the outer ring and the uncarved walls are
// walls. The agent starts at (1, 1); the goal is a cell drawn from the same stream among the other
// cells. The level is a function of its id alone (the same id, the same maze, in any copy).
//
// Each reset draws a level id for the copy from its own stream: start_level + u mod levels
// (levels > 0; a training split), or start_level + u mod 2³¹ (levels = 0: practically every episode
// a new maze). Held-out levels: a split that starts where the training one ends (start_level =
// levels of training), so no test maze was seen in training.
//
// Observation (3 G² floats, channel-major): walls, the agent, the goal, each a 0/1 map in row-major
// order (row r, column c at r G + c). Actions: 0 up (r − 1), 1 down, 2 left (c − 1), 3 right; a move
// into a wall leaves the agent in place. Reward 10 when the agent steps onto the goal (terminated,
// as Procgen's Maze), 0 otherwise; truncated after max_steps (default 4 G²: 324 for G = 9).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

/// One generated level: the board (1 = wall) row-major G × G, start and goal cells.
struct MazeLevel {
  std::int64_t grid = 0;
  std::vector<std::uint8_t> walls;
  std::int32_t start_row = 1, start_col = 1, goal_row = 0, goal_col = 0;
  bool wall(std::int64_t r, std::int64_t c) const { return walls[static_cast<std::size_t>(r * grid + c)] != 0; }
};

/// Level `id` of side `grid` (odd, >= 5; ConfigError naming env.grid otherwise).
MazeLevel maze_level(std::uint64_t id, std::int64_t grid);

class Maze final : public VecEnv {
 public:
  static constexpr std::int64_t default_grid = 9;
  static constexpr float goal_reward = 10.0f;
  /// ConfigError naming the option for num_envs < 1, max_steps < 0, levels < 0, start_level < 0 or
  /// an even or too small grid.
  explicit Maze(const EnvOptions& options = {});

  const std::string& name() const override { return name_; }
  std::int64_t num_envs() const override { return n_; }
  std::int64_t obs_dim() const override { return 3 * grid_ * grid_; }
  std::int64_t num_actions() const override { return 4; }
  void reset(std::uint64_t seed, float* obs) override;
  void reset_env(std::int64_t i, float* obs_i) override;
  void step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
            std::uint8_t* truncated, float* final_obs = nullptr) override;

  std::int64_t grid() const { return grid_; }
  std::int64_t max_steps() const { return max_steps_; }
  /// The level id copy i is playing, and its position.
  std::uint64_t level(std::int64_t i) const { return level_id_[check_index(i)]; }
  std::int32_t row(std::int64_t i) const { return row_[check_index(i)]; }
  std::int32_t col(std::int64_t i) const { return col_[check_index(i)]; }
  /// Steps taken in copy i's current episode.
  std::int64_t elapsed(std::int64_t i) const { return steps_[check_index(i)]; }

 private:
  std::int64_t check_index(std::int64_t i) const;
  void reset_one(std::int64_t i);
  void write_obs(std::int64_t i, float* obs_i) const;
  std::string name_ = "Maze-v0";
  std::int64_t n_, grid_, max_steps_, levels_, start_level_;
  bool auto_reset_;
  std::vector<MazeLevel> level_;       // each copy's current level
  std::vector<std::uint64_t> level_id_;
  std::vector<std::int32_t> row_, col_, steps_;
  std::vector<std::uint8_t> ended_;
  std::vector<SplitMix64> rng_;
  bool started_ = false;
};

}  // namespace stablelearn::rl
