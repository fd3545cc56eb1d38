// `stablelearn rl envs` and `rl train`: the environment list, a short PPO and DDQN run each with
// its files (metrics rows against the iteration count the options give, the evaluation's mean
// recomputed from its returns, the held-out split's first level), and bad input (exit status 2
// naming the key or the name).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_testing.h"
#include "stablelearn/core/fs.h"

namespace sl = stablelearn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
fs::path write_config(const std::string& name, const std::string& text) {
  const auto p = sl::testing::temp_dir("rl_cli") / name;
  std::ofstream(p) << text;
  return p;
}
json read_json(const fs::path& p) { return json::parse(sl::read_file_text(p)); }
}  // namespace

TEST(RlCli, EnvsListsEveryEnvironment) {
  const auto r = sl::testing::run_cli("rl envs");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("CartPole-v1"), std::string::npos);
  EXPECT_NE(r.out.find("observation    4 floats, 2 actions"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Maze-v0"), std::string::npos);
  EXPECT_NE(r.out.find("observation  243 floats, 4 actions"), std::string::npos) << r.out;
}

TEST(RlCli, PpoOnHeldOutMazeLevelsWritesItsRun) {
  const auto cfg = write_config("maze.toml", R"([rl]
algorithm = "ppo"
steps = 4096
eval_episodes = 10
eval_greedy = false
[ppo]
env = "Maze-v0"
levels = 7
max_steps = 50
num_envs = 8
num_steps = 64
embed = 8
head = "hyperboloid"
feature_control = true
value_loss = "hl_gauss"
hl_min = -1.0
hl_max = 11.0
)");
  const auto run = sl::testing::temp_dir("rl_cli_ppo") / "run";
  const auto r = sl::testing::run_cli("rl train " + cfg.string() + " --out " + run.string() + " --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"config.toml", "metrics.jsonl", "results.json", "summary.json", "model.pt"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  // 4096 steps of 8 copies x 64 steps: 8 iterations, one row each.
  const auto rows = sl::read_lines(run / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(json::parse(rows.back()).at("env_steps").get<int>(), 4096);
  const auto res = read_json(run / "results.json");
  const auto returns = res.at("eval_returns").get<std::vector<double>>();
  ASSERT_EQ(returns.size(), 10u);
  double mean = 0;
  for (double x : returns) {
    EXPECT_TRUE(x == 0.0 || x == 10.0) << x;  // a maze pays 10 at the goal only
    mean += x / 10;
  }
  EXPECT_NEAR(res.at("eval_mean_return").get<double>(), mean, 1e-12);
  EXPECT_EQ(res.at("eval_start_level").get<int>(), 7);  // the levels after the training split
  const auto resolved = sl::read_file_text(run / "config.toml");
  EXPECT_NE(resolved.find("feature_control = true"), std::string::npos) << resolved;
  EXPECT_NE(r.out.find("evaluation over 10 episodes"), std::string::npos) << r.out;
}

TEST(RlCli, DdqnOnCartPoleWritesItsRun) {
  const auto cfg = write_config("ddqn.toml", "[rl]\nalgorithm = \"ddqn\"\nsteps = 3000\neval_episodes = 3\n[ddqn]\nlearning_starts = 500\n");
  const auto run = sl::testing::temp_dir("rl_cli_ddqn") / "run";
  const auto r = sl::testing::run_cli("rl train " + cfg.string() + " --out " + run.string() + " --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto res = read_json(run / "results.json");
  const auto returns = res.at("eval_returns").get<std::vector<double>>();
  ASSERT_EQ(returns.size(), 3u);
  for (double x : returns) EXPECT_TRUE(x >= 1 && x <= 500) << x;  // CartPole: one per step, at most 500
  EXPECT_FALSE(sl::read_lines(run / "metrics.jsonl").empty());
}

// The convolutional Q-network from the command line on CartPolePixels-v1 (anti-aliased frames): the
// evaluation runs on the same supersampled env; "cnn" on the 4-D CartPole is a ConfigError.
TEST(RlCli, DdqnCnnOnPixelsWritesItsRun) {
  const auto cfg = write_config("ddqn_cnn.toml",
                                "[rl]\nalgorithm = \"ddqn\"\nsteps = 600\neval_episodes = 2\n[ddqn]\nenv = \"CartPolePixels-v1\"\n"
                                "network = \"cnn\"\nsupersample = 2\nframe_diff = 4.0\nhidden = 32\nbuffer_size = 600\n"
                                "learning_starts = 300\ntrain_freq = 4\ngradient_steps = 1\nbatch_size = 16\n");
  const auto run = sl::testing::temp_dir("rl_cli_ddqn_cnn") / "run";
  const auto r = sl::testing::run_cli("rl train " + cfg.string() + " --out " + run.string() + " --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto res = read_json(run / "results.json");
  EXPECT_EQ(res.at("env"), "CartPolePixels-v1");
  const auto returns = res.at("eval_returns").get<std::vector<double>>();
  ASSERT_EQ(returns.size(), 2u);
  for (double x : returns) EXPECT_TRUE(x >= 1 && x <= 500) << x;
  const auto bad = write_config("ddqn_cnn_bad.toml", "[rl]\nalgorithm = \"ddqn\"\n[ddqn]\nnetwork = \"cnn\"\n");
  sl::testing::expect_usage_error("rl train " + bad.string() + " --out " + (sl::testing::temp_dir("rl_bad_cnn") / "r").string(),
                                  "ddqn.network");
}

TEST(RlCli, BadInputIsExitStatusTwoNamingTheKey) {
  const auto bad_key = write_config("bad_key.toml", "[rl]\nalgorithm = \"ppo\"\n[ppo]\nlearning_rate = 0.1\n");
  sl::testing::expect_usage_error("rl train " + bad_key.string() + " --out " + (sl::testing::temp_dir("rl_bad1") / "r").string(),
                                  "learning_rate");
  const auto bad_env = write_config("bad_env.toml", "[rl]\nalgorithm = \"ppo\"\n[ppo]\nenv = \"Pong\"\n");
  sl::testing::expect_usage_error("rl train " + bad_env.string() + " --out " + (sl::testing::temp_dir("rl_bad2") / "r").string(),
                                  "ppo.env");
  const auto bad_algo = write_config("bad_algo.toml", "[rl]\nalgorithm = \"sac\"\n");
  sl::testing::expect_usage_error("rl train " + bad_algo.string() + " --out " + (sl::testing::temp_dir("rl_bad3") / "r").string(),
                                  "rl.algorithm");
  const auto other_table = write_config("other.toml", "[rl]\nalgorithm = \"ppo\"\n[ddqn]\nseed = 1\n");
  sl::testing::expect_usage_error("rl train " + other_table.string() + " --out " + (sl::testing::temp_dir("rl_bad4") / "r").string(),
                                  "ddqn");
  const auto hyper = write_config("hyper.toml", "[rl]\nalgorithm = \"ppo\"\n[ppo]\nhead = \"poincare\"\n");
  sl::testing::expect_usage_error("rl train " + hyper.string() + " --out " + (sl::testing::temp_dir("rl_bad5") / "r").string(),
                                  "ppo.embed");
}
