#include "stablelearn/rl/env.h"

#include "stablelearn/core/error.h"
#include "stablelearn/rl/cartpole.h"

namespace stablelearn::rl {

std::uint64_t stream_seed(std::uint64_t seed, std::int64_t i) {
  SplitMix64 a{seed};
  SplitMix64 b{a.next() ^ (static_cast<std::uint64_t>(i) * 0xD1B54A32D192ED03ULL)};
  return b.next();
}

std::vector<std::string> env_names() { return {"CartPole-v1"}; }

std::unique_ptr<VecEnv> make_env(const std::string& name, const EnvOptions& options) {
  if (name == "CartPole-v1") return std::make_unique<CartPole>(options);
  std::string known;
  for (const auto& n : env_names()) known += (known.empty() ? "" : ", ") + n;
  SL_THROW(UsageError, "unknown environment \"", name, "\"; known: ", known);
}

}  // namespace stablelearn::rl
