// Proximal Policy Optimisation (Schulman et al. 2017) for discrete actions over a VecEnv (docs/rl.md):
// rollouts of num_steps × num_envs transitions, GAE (rl/advantages.h), then `epochs` passes of
// `minibatches` shuffled minibatches minimising
//   L = L_clip + vf_coef · L_V − ent_coef · H
//   L_clip = mean max(−A r, −A clip(r, 1 − ε, 1 + ε)),  r = exp(log π(a|s) − log π_old(a|s))
//   L_V    = ½ mean max((V − R)², (V_old + clip(V − V_old, −ε_V, ε_V) − R)²)   (ε_V = 0: ½ mean (V − R)²)
// with A normalised per minibatch (norm_adv), the gradient's global norm clipped, Adam with an
// optionally annealed learning rate. Separate actor and critic MLPs (tanh, orthogonal init: gain √2,
// actor output 0.01, critic output 1), as in the common reference implementations.
//
// Determinism: the network is initialised after torch::manual_seed(seed) (the global generator
// is reseeded); actions are sampled and minibatches shuffled by the trainer's own splitmix64 stream,
// so the same seed, options and thread count give the same run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/rl/hyperbolic.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace stablelearn::rl {

class VecEnv;

struct PpoOptions {
  std::string env = "CartPole-v1";  ///< environment (rl/env.h make_env)
  std::int64_t num_envs = 8;        ///< parallel copies
  std::int64_t num_steps = 128;     ///< rollout length per copy and iteration
  std::int64_t epochs = 4;          ///< passes over each rollout
  std::int64_t minibatches = 4;     ///< minibatches per pass (must divide num_envs · num_steps)
  std::int64_t hidden = 64;         ///< width of the two hidden layers of actor and critic
  double lr = 2.5e-4;               ///< Adam learning rate
  bool anneal_lr = true;            ///< decay the rate linearly to 0 over train()'s step budget
  double adam_eps = 1e-5;
  double gamma = 0.99;              ///< discount γ
  double gae_lambda = 0.95;         ///< GAE λ
  double clip = 0.2;                ///< ε of the clipped surrogate
  double value_clip = 0.2;          ///< ε_V of the value clipping (0 = no clipping)
  double ent_coef = 0.01;           ///< entropy bonus weight
  double vf_coef = 0.5;             ///< value-loss weight
  double max_grad_norm = 0.5;       ///< global gradient-norm clip (0 = none)
  bool norm_adv = true;             ///< normalise advantages per minibatch
  std::int64_t seed = 0;
  // Heads (Hyper++, rl/hyperbolic.h). embed = 0: actor and critic are the plain MLPs above; embed > 0:
  // each MLP ends in an embed-wide linear layer followed by a `head`.
  std::int64_t embed = 0;           ///< width of the encoder output the heads act on (0 = no separate head)
  std::string head = "euclidean";   ///< euclidean | poincare | hyperboloid (needs embed > 0 unless euclidean)
  bool feature_control = false;     ///< Hyper++'s RMSNorm + tanh + learned scaling before expmap₀
  double curvature = 1.0;           ///< c of the curvature −c
  std::string value_loss = "mse";   ///< mse (clipped as value_clip says) | hl_gauss (categorical, Hyper++)
  std::int64_t hl_bins = 51;        ///< HL-Gauss bins
  double hl_min = -10, hl_max = 10;  ///< HL-Gauss support
  // Environment options passed to make_env (procedurally generated environments, rl/env.h).
  std::int64_t levels = 0;          ///< training levels (0 = unlimited)
  std::int64_t start_level = 0;     ///< first training level id
  std::int64_t grid = 0;            ///< grid side (0 = the environment's own)
  std::int64_t max_steps = 0;       ///< episode truncation length (0 = the environment's own)

  void fields(options::Visitor& v);
  void cross_check() const;
};

/// The clipped surrogate L_clip (a scalar) of log-ratios log π − log π_old and advantages (same
/// shape). Its gradient w.r.t. the log-ratio of sample i is −A_i r_i / n, or 0 where the clip is
/// active (A_i > 0 and r_i > 1 + ε, or A_i < 0 and r_i < 1 − ε).
torch::Tensor clipped_surrogate_loss(const torch::Tensor& log_ratio, const torch::Tensor& advantages, double clip);
/// L_V above (value_clip <= 0: the plain ½ MSE).
torch::Tensor clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values,
                                 const torch::Tensor& returns, double value_clip);

/// Actor and critic MLPs obs → logits [B, A] and obs → value [B] (with options.embed > 0, each an
/// encoder MLP and a head of rl/hyperbolic.h; with value_loss = hl_gauss the critic's head gives
/// hl_bins logits and value() their HL-Gauss mean).
class ActorCriticImpl : public torch::nn::Module {
 public:
  ActorCriticImpl(std::int64_t obs_dim, std::int64_t num_actions, std::int64_t hidden);
  ActorCriticImpl(std::int64_t obs_dim, std::int64_t num_actions, const PpoOptions& options);
  torch::Tensor logits(const torch::Tensor& obs);
  torch::Tensor value(const torch::Tensor& obs);
  /// The critic's raw outputs: [B, hl_bins] logits (hl_gauss) or [B, 1].
  torch::Tensor value_outputs(const torch::Tensor& obs);
  /// Mean norm of the actor head's input tangent vectors (the embedding x_E) at its last forward; 0
  /// without a head.
  double last_embedding_norm() const;

 private:
  torch::nn::Sequential actor_{nullptr}, critic_{nullptr};
  hyperbolic::Head actor_head_{nullptr}, critic_head_{nullptr};
  bool heads_ = false, hl_gauss_ = false;
  double hl_min_ = 0, hl_max_ = 0;
};
TORCH_MODULE(ActorCritic);

/// One PPO iteration's statistics.
struct PpoStats {
  std::int64_t iteration = 0;
  std::int64_t env_steps = 0;       ///< total so far
  std::int64_t episodes = 0;        ///< episodes that ended in this iteration's rollout
  double mean_return = 0;           ///< their mean return (NaN when none ended)
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0;  ///< last epoch's means
  double grad_norm = 0;             ///< largest global gradient norm (before clipping) of the iteration
  double embed_norm = 0;            ///< the actor head's input norm ‖x_E‖ at the last minibatch (0 without a head)
  std::int64_t nonfinite = 0;       ///< minibatches skipped for a non-finite loss or gradient
};

class Ppo {
 public:
  /// ConfigError naming the option for invalid options; UsageError for an unknown env.
  explicit Ppo(PpoOptions options, torch::Device device = torch::kCPU);
  ~Ppo();
  /// Trains until `total_steps` environment steps (the annealing horizon) or until `on_iteration`
  /// returns false. Returns the last iteration's statistics. Can be called again (continues, with
  /// a new horizon).
  PpoStats train(std::int64_t total_steps, const std::function<bool(const PpoStats&)>& on_iteration = {});
  /// Actions of n observations [n, obs_dim]: the most probable (greedy) or sampled from the
  /// trainer's stream.
  void act(const float* obs, std::int64_t n, std::int32_t* actions, bool greedy = true);
  ActorCritic& model() { return model_; }
  const PpoOptions& options() const { return o_; }
  std::int64_t env_steps() const { return env_steps_; }

 private:
  PpoOptions o_;
  torch::Device device_;
  std::unique_ptr<VecEnv> env_;
  ActorCritic model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::uint64_t rng_state_;
  std::vector<float> obs_;        // current observations [N, obs_dim]
  std::vector<double> ep_return_;  // running return per copy
  std::int64_t env_steps_ = 0, iteration_ = 0;
};

}  // namespace stablelearn::rl
