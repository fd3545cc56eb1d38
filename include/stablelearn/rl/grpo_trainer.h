// GRPO over groups of trajectories per question (docs/rl.md; seed paper 28, Stratified GRPO):
// a critic-free trainer for episodic, verifiable-reward environments whose copies come in question
// groups (EnvOptions.group; Search-v0). Each iteration:
//   1. reset(seed of the iteration): `questions` groups of `group` copies, one new question per
//      group; every copy plays one episode with actions sampled from the policy (later episodes of
//      a copy that ended early are not used, as evaluate() does);
//   2. the episode's reward R (the sum of its rewards) and its stratum: the number of steps before
//      the last one (Search-v0: the number of tool calls);
//   3. advantages per trajectory, rows = groups: `grpo` (rl/advantages.h group_relative_advantages),
//      `san` (stratified_advantages by the strata) or `blend` (α · SAN + (1 − α) · GRPO); each
//      step ("token") of a trajectory gets its trajectory's advantage;
//   4. `epochs` full-batch steps of Adam on grpo_loss (rl/grpo.h: the clipped surrogate over all
//      steps of the batch, a token-level mean, + β · k3 KL to the initial policy when kl_coef > 0),
//      the global gradient norm clipped at max_grad_norm (its pre-clip value reported); a step
//      with a non-finite loss or gradient is skipped and counted.
// Policy: an MLP obs → hidden → hidden → logits (tanh, orthogonal init with gain √2, the output
// layer 0.01, so it starts near uniform), as PPO's actor.
//
// Determinism: the network is initialised after torch::manual_seed(seed); actions are sampled by
// the trainer's own splitmix64 stream and each iteration's questions come from stream_seed(seed,
// iteration), so the same seed and options give the same run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace stablelearn::rl {

class VecEnv;

struct GrpoOptions {
  std::string env = "Search-v0";     ///< an environment with question groups (rl/env.h make_env)
  std::int64_t questions = 32;       ///< groups (prompts) per iteration, B
  std::int64_t group = 8;            ///< trajectories per question, G
  std::int64_t epochs = 2;           ///< full-batch updates per iteration
  std::int64_t hidden = 64;          ///< width of the policy's two hidden tanh layers
  double lr = 1e-3;                  ///< Adam learning rate
  double clip = 0.2;                 ///< ε of the clipped surrogate
  double kl_coef = 0.0;              ///< β of the k3 KL to the initial policy (0 = none)
  double max_grad_norm = 1.0;        ///< global gradient-norm clip (0 = none)
  std::string advantage = "grpo";    ///< grpo | san | blend
  double alpha = 0.5;                ///< the blend's weight on SAN
  double adv_eps = 1e-6;             ///< ε of the advantage normalisations
  std::int64_t seed = 0;
  std::int64_t levels = 0;           ///< training questions (0 = unlimited)
  std::int64_t start_level = 0;      ///< first training question id
  std::int64_t max_steps = 0;        ///< the environment's episode budget (0 = its own)
  double hub = 0;                    ///< Search-v0's popular-entity probability (EnvOptions.hub)

  void fields(options::Visitor& v);
};

/// One iteration's batch: B groups of G trajectories.
struct GrpoBatch {
  torch::Tensor rewards;     ///< [B, G] float, each trajectory's return
  torch::Tensor strata;      ///< [B, G] long, steps before the last (Search-v0: tool calls)
  torch::Tensor advantages;  ///< [B, G] float, by options.advantage
  torch::Tensor obs;         ///< [T, obs_dim] every step of every trajectory
  torch::Tensor actions;     ///< [T] long
  torch::Tensor old_logp;    ///< [T] log π_old of the actions
  torch::Tensor trajectory;  ///< [T] long, the copy (b · G + g) each step belongs to
};

/// Σ over the rows of (1/G) Σ_k n_k (R̄_k − R̄)² (the cross-stratum part of the rows' reward
/// variance) divided by Σ over the rows of the population variance of R; NaN when every row has
/// equal rewards. rewards, strata [B, G].
double cross_stratum_share(const torch::Tensor& rewards, const torch::Tensor& strata);

struct GrpoStats {
  std::int64_t iteration = 0;
  std::int64_t episodes = 0;       ///< trajectories so far
  double mean_reward = 0;          ///< the batch's mean reward (accuracy of the sampled answers)
  double mean_strata = 0;          ///< mean stratum (Search-v0: tool calls per trajectory)
  double cross_stratum_share = 0;  ///< of the batch (NaN when every group has equal rewards)
  double adv_sq = 0;               ///< mean A² over the trajectories
  double loss = 0, approx_kl = 0;  ///< last epoch's loss and mean (r − 1) − log r
  double grad_norm = 0;            ///< the first epoch's global gradient norm before clipping
  std::int64_t nonfinite = 0;      ///< updates skipped for a non-finite loss or gradient
};

class Grpo {
 public:
  /// ConfigError naming the option for invalid options; UsageError for an unknown environment.
  explicit Grpo(GrpoOptions options, torch::Device device = torch::kCPU);
  ~Grpo();
  /// Runs `iterations` iterations (or until on_iteration returns false); returns the last stats.
  GrpoStats train(std::int64_t iterations, const std::function<bool(const GrpoStats&)>& on_iteration = {});
  /// Step 1–3 above for the next iteration, without an update (train() calls it).
  GrpoBatch collect();
  /// Actions of n observations [n, obs_dim]: greedy or sampled from the trainer's stream.
  void act(const float* obs, std::int64_t n, std::int32_t* actions, bool greedy = true);
  torch::nn::Sequential& policy() { return policy_; }
  const GrpoOptions& options() const { return o_; }
  std::int64_t obs_dim() const;

 private:
  GrpoOptions o_;
  torch::Device device_;
  std::unique_ptr<VecEnv> env_;
  torch::nn::Sequential policy_{nullptr}, ref_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::uint64_t rng_state_;
  std::int64_t iteration_ = 0, episodes_ = 0;
};

}  // namespace stablelearn::rl
