#include "stablelearn/rl/env.h"

#include <algorithm>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/cartpole.h"
#include "stablelearn/rl/cartpole_pixels.h"
#include "stablelearn/rl/maze.h"
#include "stablelearn/rl/search.h"

namespace stablelearn::rl {

std::uint64_t stream_seed(std::uint64_t seed, std::int64_t i) {
  SplitMix64 a{seed};
  SplitMix64 b{a.next() ^ (static_cast<std::uint64_t>(i) * 0xD1B54A32D192ED03ULL)};
  return b.next();
}

std::vector<std::string> env_names() { return {"CartPole-v1", "CartPolePixels-v1", "Maze-v0", "Search-v0"}; }

std::unique_ptr<VecEnv> make_env(const std::string& name, const EnvOptions& options) {
  const auto names = env_names();
  SL_CHECK(name == "CartPolePixels-v1" || options.supersample == 1 || std::find(names.begin(), names.end(), name) == names.end(),
           ConfigError, "env.supersample: only CartPolePixels-v1 renders frames; leave it 1 for ", name);
  if (name == "Search-v0") return std::make_unique<Search>(options);
  const bool known_name = name == "CartPole-v1" || name == "CartPolePixels-v1" || name == "Maze-v0";
  SL_CHECK(!known_name || options.group == 1, ConfigError, "env.group: only Search-v0 has question groups; leave it 1 for ",
           name);
  SL_CHECK(!known_name || options.hub == 0, ConfigError, "env.hub: only Search-v0 has a popular entity; leave it 0 for ", name);
  if (name == "CartPole-v1") {
    SL_CHECK(options.levels == 0 && options.start_level == 0 && options.grid == 0, ConfigError,
             "env.levels / env.start_level / env.grid: CartPole-v1 has no levels or grid; leave them 0");
    return std::make_unique<CartPole>(options);
  }
  if (name == "CartPolePixels-v1") {
    SL_CHECK(options.levels == 0 && options.start_level == 0 && options.grid == 0, ConfigError,
             "env.levels / env.start_level / env.grid: CartPolePixels-v1 has no levels or grid; leave them 0");
    return std::make_unique<CartPolePixels>(options);
  }
  if (name == "Maze-v0") return std::make_unique<Maze>(options);
  std::string known;
  for (const auto& n : env_names()) known += (known.empty() ? "" : ", ") + n;
  SL_THROW(UsageError, "unknown environment \"", name, "\"; known: ", known);
}

std::vector<double> evaluate(const std::string& name, const PolicyFn& policy, std::int64_t episodes, std::uint64_t seed) {
  return evaluate(name, EnvOptions{}, policy, episodes, seed);
}

std::vector<double> evaluate(const std::string& name, const EnvOptions& options, const PolicyFn& policy, std::int64_t episodes,
                             std::uint64_t seed) {
  SL_CHECK(episodes >= 1, ConfigError, "evaluate: episodes must be >= 1, got ", episodes);
  SL_CHECK(static_cast<bool>(policy), UsageError, "evaluate: no policy");
  EnvOptions o = options;
  o.num_envs = episodes;
  o.auto_reset = true;
  auto env = make_env(name, o);
  const auto n = episodes, d = env->obs_dim();
  std::vector<float> obs(n * d), rew(n);
  std::vector<std::uint8_t> term(n), trunc(n), finished(n, 0);
  std::vector<std::int32_t> act(n);
  std::vector<double> ret(n, 0.0);
  env->reset(seed, obs.data());
  std::int64_t left = n;
  while (left > 0) {
    policy(obs.data(), n, act.data());
    env->step(act.data(), obs.data(), rew.data(), term.data(), trunc.data());
    for (std::int64_t i = 0; i < n; ++i) {
      if (finished[i]) continue;
      ret[i] += rew[i];
      if (term[i] || trunc[i]) {
        finished[i] = 1;
        --left;
      }
    }
  }
  return ret;
}

}  // namespace stablelearn::rl
