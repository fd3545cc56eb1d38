// Maze-v0: every level a perfect maze (all cells reachable, the open squares a tree) by a breadth-
// first search written here, levels a function of their id, the split of level ids, the shortest
// path (found here) reaching the goal with the reward at exactly its length, walls blocking,
// truncation, the observation's channels, seeding, and bad input.
#include "stablelearn/rl/maze.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <set>
#include <vector>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;
using sl::rl::EnvOptions;
using sl::rl::Maze;
using sl::rl::MazeLevel;

namespace {

constexpr int kDr[4] = {-1, 1, 0, 0}, kDc[4] = {0, 0, -1, 1};

// Distances (−1: unreachable) from (r0, c0) over open squares, and each square's first move on a
// shortest path back towards the source (so moves from any square lead to the source).
struct Bfs {
  std::vector<int> dist, back;  // back: the action from this square that steps towards the source
};
Bfs bfs(const MazeLevel& m, int r0, int c0) {
  const int g = static_cast<int>(m.grid);
  Bfs b{std::vector<int>(g * g, -1), std::vector<int>(g * g, -1)};
  std::deque<int> q{r0 * g + c0};
  b.dist[r0 * g + c0] = 0;
  while (!q.empty()) {
    const int cur = q.front();
    q.pop_front();
    for (int d = 0; d < 4; ++d) {
      const int r = cur / g + kDr[d], c = cur % g + kDc[d];
      if (r < 0 || r >= g || c < 0 || c >= g || m.wall(r, c) || b.dist[r * g + c] >= 0) continue;
      b.dist[r * g + c] = b.dist[cur] + 1;
      b.back[r * g + c] = d ^ 1;  // the opposite move (0<->1, 2<->3)
      q.push_back(r * g + c);
    }
  }
  return b;
}

struct Buffers {
  Buffers(std::int64_t n, std::int64_t d) : obs(n * d), fin(n * d), rew(n), term(n), trunc(n), act(n, 0) {}
  std::vector<float> obs, fin, rew;
  std::vector<std::uint8_t> term, trunc;
  std::vector<std::int32_t> act;
};
void step(Maze& env, Buffers& b) {
  env.step(b.act.data(), b.obs.data(), b.rew.data(), b.term.data(), b.trunc.data(), b.fin.data());
}

}  // namespace

TEST(Maze, EveryLevelIsAPerfectMazeWithAReachableGoal) {
  for (const std::int64_t g : {5, 9, 15}) {
    const int cells = static_cast<int>((g - 1) / 2);
    for (std::uint64_t id = 0; id < 200; ++id) {
      const auto m = sl::rl::maze_level(id, g);
      ASSERT_EQ(m.walls.size(), static_cast<std::size_t>(g * g));
      for (int k = 0; k < g; ++k) {  // the outer ring is wall
        EXPECT_TRUE(m.wall(0, k) && m.wall(g - 1, k) && m.wall(k, 0) && m.wall(k, g - 1));
      }
      const auto b = bfs(m, 1, 1);
      int open = 0, edges = 0;
      for (int r = 0; r < g; ++r)
        for (int c = 0; c < g; ++c) {
          if (m.wall(r, c)) continue;
          ++open;
          EXPECT_GE(b.dist[r * g + c], 0) << "unreachable square in level " << id;
          if (!m.wall(r + 1, c)) ++edges;
          if (!m.wall(r, c + 1)) ++edges;
          if (r % 2 == 0 && c % 2 == 0) ADD_FAILURE() << "a lattice corner is open in level " << id;
        }
      // A tree over the cells: cells² cells and cells² − 1 carved walls between them, no cycle.
      EXPECT_EQ(open, 2 * cells * cells - 1) << id;
      EXPECT_EQ(edges, open - 1) << id;
      EXPECT_TRUE(m.goal_row % 2 == 1 && m.goal_col % 2 == 1);
      EXPECT_FALSE(m.goal_row == 1 && m.goal_col == 1);
      EXPECT_EQ(m.start_row, 1);
      EXPECT_EQ(m.start_col, 1);
    }
  }
  // A function of the id alone; different ids give different mazes.
  std::set<std::vector<std::uint8_t>> distinct;
  for (std::uint64_t id = 0; id < 50; ++id) {
    EXPECT_EQ(sl::rl::maze_level(id, 9).walls, sl::rl::maze_level(id, 9).walls);
    distinct.insert(sl::rl::maze_level(id, 9).walls);
  }
  EXPECT_GE(distinct.size(), 45u);
}

TEST(Maze, TheShortestPathReachesTheGoalWithTheRewardAtItsLength) {
  EnvOptions o;
  o.num_envs = 3;
  o.levels = 10;
  Maze env(o);
  Buffers b(3, env.obs_dim());
  env.reset(7, b.obs.data());
  const int g = 9;
  std::vector<Bfs> from_goal;
  std::vector<int> length;
  for (int i = 0; i < 3; ++i) {
    const auto m = sl::rl::maze_level(env.level(i), g);
    from_goal.push_back(bfs(m, m.goal_row, m.goal_col));
    length.push_back(from_goal.back().dist[1 * g + 1]);
    ASSERT_GT(length.back(), 0);
  }
  const int longest = *std::max_element(length.begin(), length.end());
  std::vector<int> done_at(3, -1);
  for (int t = 1; t <= longest; ++t) {
    for (int i = 0; i < 3; ++i)
      b.act[i] = done_at[i] >= 0 ? 0 : from_goal[i].back[env.row(i) * g + env.col(i)];
    step(env, b);
    for (int i = 0; i < 3; ++i) {
      if (done_at[i] >= 0) continue;
      if (b.term[i]) {
        done_at[i] = t;
        EXPECT_EQ(b.rew[i], 10.0f);
      } else {
        EXPECT_EQ(b.rew[i], 0.0f);
      }
      EXPECT_EQ(b.trunc[i], 0);
    }
  }
  EXPECT_EQ(done_at, length);
}

TEST(Maze, WallsBlockTruncationEndsAndTheObservationHasThreeChannels) {
  EnvOptions o;
  o.num_envs = 1;
  o.max_steps = 5;
  o.auto_reset = false;
  Maze env(o);
  Buffers b(1, env.obs_dim());
  env.reset(3, b.obs.data());
  const auto m = sl::rl::maze_level(env.level(0), 9);
  // Channel sums and positions at the start.
  double walls = 0, agent = 0, goal = 0;
  for (int k = 0; k < 81; ++k) {
    EXPECT_EQ(b.obs[k], m.walls[k] ? 1.0f : 0.0f);
    walls += b.obs[k];
    agent += b.obs[81 + k];
    goal += b.obs[162 + k];
  }
  EXPECT_EQ(agent, 1);
  EXPECT_EQ(goal, 1);
  EXPECT_EQ(b.obs[81 + 1 * 9 + 1], 1.0f);
  EXPECT_EQ(b.obs[162 + m.goal_row * 9 + m.goal_col], 1.0f);
  // Up from (1, 1) is the outer wall: the agent stays; 5 such steps truncate.
  b.act[0] = 0;
  for (int t = 1; t <= 5; ++t) {
    step(env, b);
    EXPECT_EQ(env.row(0), 1);
    EXPECT_EQ(env.col(0), 1);
    EXPECT_EQ(b.trunc[0], t == 5 ? 1 : 0);
    EXPECT_EQ(b.term[0], 0);
  }
  EXPECT_THROW(step(env, b), sl::UsageError);  // ended, no auto-reset
  env.reset_env(0, b.obs.data());
  EXPECT_EQ(env.elapsed(0), 0);
}

TEST(Maze, LevelSplitsAndSeeding) {
  EnvOptions train;
  train.num_envs = 64;
  train.levels = 5;
  Maze a(train), a2(train);
  Buffers b(64, a.obs_dim()), b2(64, a.obs_dim());
  a.reset(11, b.obs.data());
  a2.reset(11, b2.obs.data());
  EXPECT_EQ(b.obs, b2.obs);  // same seed, same levels
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 64; ++i) ids.insert(a.level(i));
  EXPECT_EQ(ids, (std::set<std::uint64_t>{0, 1, 2, 3, 4}));
  EnvOptions test;
  test.num_envs = 64;
  test.start_level = 5;
  Maze t(test);
  t.reset(11, b.obs.data());
  for (int i = 0; i < 64; ++i) EXPECT_GE(t.level(i), 5u);
  a2.reset(12, b2.obs.data());
  std::set<std::uint64_t> other;
  for (int i = 0; i < 64; ++i) other.insert(a2.level(i));
  EXPECT_EQ(other.size(), 5u);
}

TEST(Maze, BadOptionsAndActionsAreClearErrors) {
  EnvOptions o;
  o.grid = 8;
  EXPECT_THROW({ Maze m(o); }, sl::ConfigError);
  o.grid = 3;
  EXPECT_THROW({ Maze m(o); }, sl::ConfigError);
  o.grid = 0;
  o.levels = -1;
  EXPECT_THROW({ Maze m(o); }, sl::ConfigError);
  o.levels = 0;
  o.start_level = -2;
  EXPECT_THROW({ Maze m(o); }, sl::ConfigError);
  EnvOptions c;
  c.levels = 3;
  EXPECT_THROW(sl::rl::make_env("CartPole-v1", c), sl::ConfigError);
  EXPECT_EQ(sl::rl::make_env("Maze-v0", EnvOptions{})->obs_dim(), 243);
  Maze m(EnvOptions{});
  Buffers b(1, m.obs_dim());
  EXPECT_THROW(step(m, b), sl::UsageError);  // before reset
  m.reset(1, b.obs.data());
  b.act[0] = 4;
  EXPECT_THROW(step(m, b), sl::UsageError);
  EXPECT_EQ(m.elapsed(0), 0);  // nothing moved
}
