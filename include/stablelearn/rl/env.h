// Vectorised environments (shared/DESIGN.md "rl/"; docs/rl.md). Torch-free: an environment steps N
// independent copies over plain arrays, so the step costs no tensor dispatch; a learner wraps the
// arrays in tensors (torch::from_blob) without copying.
//
// Contract of every VecEnv:
//   * reset(seed, obs) starts every copy; copy i draws from its own random stream derived from
//     (seed, i), so the same seed gives the same episodes whatever else happens in the process.
//   * step(actions, ...) advances every copy by one step. With auto_reset, a copy whose episode ends
//     (terminated or truncated) is reset at once from its own stream and `obs` holds the first
//     observation of the next episode, while `final_obs` (if not null) holds the last observation
//     of the episode that ended (for bootstrapping a truncated episode). Without auto_reset, a copy
//     that ended must be reset (reset_env) before it is stepped again; stepping it is a UsageError.
//   * An action outside [0, num_actions) is a UsageError naming the copy and the action; nothing
//     is stepped then.
//   * The arrays passed to step() must not overlap one another (the step is vectorised).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stablelearn::rl {

class VecEnv {
 public:
  virtual ~VecEnv() = default;
  virtual const std::string& name() const = 0;
  /// Number of copies N.
  virtual std::int64_t num_envs() const = 0;
  /// Length of one observation (floats).
  virtual std::int64_t obs_dim() const = 0;
  /// Shape of one observation, whose row-major flattening is the obs_dim() floats: {obs_dim()} for a
  /// vector (the default), {C, H, W} for an image of C channels (e.g. stacked frames), H rows and W
  /// columns (CartPolePixels-v1: {2, 40, 60}). Learners with convolutional networks read it.
  virtual std::vector<std::int64_t> obs_shape() const { return {obs_dim()}; }
  /// Number of discrete actions.
  virtual std::int64_t num_actions() const = 0;
  /// Starts every copy from the random streams of `seed`; writes obs [N, obs_dim].
  virtual void reset(std::uint64_t seed, float* obs) = 0;
  /// Restarts copy i from its own stream (continuing it); writes its observation [obs_dim].
  virtual void reset_env(std::int64_t i, float* obs_i) = 0;
  /// One step of every copy. actions [N] in [0, num_actions); writes obs [N, obs_dim], reward [N],
  /// terminated [N] and truncated [N] (0/1); final_obs [N, obs_dim] may be null (see above; rows of
  /// copies that did not end hold their current observation).
  virtual void step(const std::int32_t* actions, float* obs, float* reward, std::uint8_t* terminated,
                    std::uint8_t* truncated, float* final_obs = nullptr) = 0;
};

/// Common options of the built-in environments.
struct EnvOptions {
  std::int64_t num_envs = 1;   ///< copies N (>= 1)
  bool auto_reset = true;      ///< reset a copy as soon as its episode ends
  std::int64_t max_steps = 0;  ///< truncation length (0 = the environment's own: 500 for CartPole-v1)
  // Procedurally generated environments (Maze-v0; others reject non-default values):
  std::int64_t levels = 0;       ///< distinct levels drawn from, ids [start_level, start_level + levels); 0 = unlimited
  std::int64_t start_level = 0;  ///< first level id (a held-out split starts where the training split ends)
  std::int64_t grid = 0;         ///< side of the grid (odd); 0 = the environment's own (Maze-v0: 9)
  // Episodic generators for GRPO (Search-v0; others reject values other than 1):
  std::int64_t group = 1;  ///< copies sharing one question stream: copy i draws from (seed, i / group)
  double hub = 0;          ///< Search-v0: probability that a fact points to the popular entity 0 (others: 0)
  // Rendered frames (CartPolePixels-v1; others reject values other than 1):
  std::int64_t supersample = 1;  ///< n × n samples per pixel, anti-aliased frames (rasterise_cartpole); 1 = binary frames
};

/// Names of the built-in environments ("CartPole-v1", "CartPolePixels-v1", "Maze-v0", "Search-v0").
std::vector<std::string> env_names();
/// A built-in environment by name; an unknown name is a UsageError listing the known ones, bad
/// options a ConfigError naming the option.
std::unique_ptr<VecEnv> make_env(const std::string& name, const EnvOptions& options = {});

/// A policy for evaluation: actions [n] of observations [n, obs_dim].
using PolicyFn = std::function<void(const float* obs, std::int64_t n, std::int32_t* actions)>;

/// The returns of `episodes` complete episodes of `policy` in environment `name`: one copy per
/// episode (so short episodes are not over-represented), copy i seeded from (seed, i), each
/// copy's first episode counted (truncation included).
std::vector<double> evaluate(const std::string& name, const PolicyFn& policy, std::int64_t episodes, std::uint64_t seed);
/// The same with the environment's options (num_envs and auto_reset are set here; e.g. the levels
/// of a held-out split).
std::vector<double> evaluate(const std::string& name, const EnvOptions& options, const PolicyFn& policy, std::int64_t episodes,
                             std::uint64_t seed);

/// The end of copy i's step in an environment stepped copy by copy (Maze-v0, Search-v0), once its
/// observation obs_i [d] is written: copies it to final_obs_i (when not null); if the episode ended,
/// restarts the copy with `reset_and_write` (auto_reset; it rewrites obs_i) or returns true (the
/// copy must be reset before it is stepped again). Returns false otherwise.
template <class ResetAndWrite>
bool end_copy_step(bool ended, bool auto_reset, const float* obs_i, float* final_obs_i, std::int64_t d,
                   ResetAndWrite&& reset_and_write) {
  if (final_obs_i)
    for (std::int64_t k = 0; k < d; ++k) final_obs_i[k] = obs_i[k];
  if (!ended) return false;
  if (!auto_reset) return true;
  reset_and_write();
  return false;
}

/// splitmix64: the generator behind every environment's random stream (and its seeding).
struct SplitMix64 {
  std::uint64_t state = 0;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 24 random bits (exact in float).
  float uniform01() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }
};

/// The seed of copy i's stream for reset(seed): two rounds of splitmix64 over (seed, i).
std::uint64_t stream_seed(std::uint64_t seed, std::int64_t i);

}  // namespace stablelearn::rl
