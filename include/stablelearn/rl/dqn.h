// Double DQN (van Hasselt, Guez & Silver 2016) with a dueling head (Wang et al. 2016) and a uniform
// replay buffer, for discrete actions over a VecEnv (docs/rl.md).
//
//   Q(s, a)   = V(s) + A(s, a) − mean_a' A(s, a')                                     (dueling)
//   y         = r + γ (1 − terminated) Q_target(s', argmax_a' Q_online(s', a'))        (double Q)
//   loss      = mean Huber(Q_online(s, a) − y)   (δ = 1)
// Every `train_freq` env steps (of all copies together), `gradient_steps` Adam steps on minibatches
// drawn uniformly (with replacement) from the buffer; the target network takes the online weights
// every `target_update` gradient steps (θ⁻ ← τ θ + (1 − τ) θ⁻; τ = 1 copies). Exploration is
// ε-greedy with ε decaying linearly from eps_start to eps_end over eps_decay_steps env steps.
// Truncated episodes are bootstrapped (the buffer stores the true next observation and only
// `terminated` stops the bootstrap). With adv_eps > 0 the online network is trained adversarially
// on FGSM-perturbed observations (see DdqnOptions::adv_eps; Korkmaz 2024's robustness diagnosis,
// rl/diagnosis.h); adv_eps = 0 runs exactly the plain algorithm.
//
// The Q-network is an MLP on the observation vector (network "mlp", the default) or, for image
// observations (VecEnv::obs_shape() {C, H, W}, e.g. CartPolePixels-v1's two stacked frames), a
// convolutional stem followed by one hidden layer (network "cnn", ConvStemOptions); both dueling.
//
// Determinism: the network is initialised after torch::manual_seed(seed); exploration and replay
// sampling use the trainer's own splitmix64 streams.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/rl/env.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace stablelearn::rl {

/// The dueling aggregation V + A − mean_a A: value [B] or [B, 1], advantages [B, A] → Q [B, A].
torch::Tensor dueling_aggregate(const torch::Tensor& value, const torch::Tensor& advantages);

/// The double-Q target r + γ (1 − terminated) Q_target(s', argmax_a Q_online(s', a)); rewards and
/// terminated [B], next_q_online and next_q_target [B, A]. No gradient flows through it.
torch::Tensor double_q_targets(const torch::Tensor& rewards, const torch::Tensor& terminated,
                               const torch::Tensor& next_q_online, const torch::Tensor& next_q_target, double gamma);

/// ε at env step t: eps_start + (eps_end − eps_start) · min(1, t / decay_steps) (decay_steps 0: eps_end).
double linear_epsilon(std::int64_t step, double eps_start, double eps_end, std::int64_t decay_steps);

/// A fixed-capacity ring of transitions (s, a, r, terminated, s'), stored as plain arrays; when full,
/// the oldest is overwritten. Sampling is uniform with replacement over the stored transitions,
/// from the buffer's own seeded stream.
class ReplayBuffer {
 public:
  ReplayBuffer(std::int64_t capacity, std::int64_t obs_dim, std::uint64_t seed);
  void add(const float* obs, std::int32_t action, float reward, bool terminated, const float* next_obs);
  std::int64_t size() const { return size_; }
  std::int64_t capacity() const { return capacity_; }
  /// Slot the next add() writes.
  std::int64_t position() const { return pos_; }
  /// `n` slot indices drawn uniformly from [0, size()) (UsageError when empty).
  std::vector<std::int64_t> sample_indices(std::int64_t n);
  struct Batch {
    torch::Tensor obs, actions, rewards, terminated, next_obs;  ///< [B, D], [B] long, [B], [B] (0/1), [B, D]
  };
  /// A batch of the transitions at `idx`, on `device`.
  Batch gather(const std::vector<std::int64_t>& idx, torch::Device device) const;
  Batch sample(std::int64_t n, torch::Device device) { return gather(sample_indices(n), device); }
  /// Transition at slot i (tests, analyses).
  void get(std::int64_t i, float* obs, std::int32_t& action, float& reward, bool& terminated, float* next_obs) const;

 private:
  std::int64_t capacity_, d_, size_ = 0, pos_ = 0;
  std::vector<float> obs_, next_obs_, rewards_, terminated_;
  std::vector<std::int32_t> actions_;
  SplitMix64 rng_;
};

/// The convolutional stem of a DuelingQNet for image observations: the observation [C·H·W] is the
/// row-major flattening of an image {C, H, W} (VecEnv::obs_shape()); layer l is a valid (unpadded)
/// Conv2d(channels[l−1] → channels[l], kernels[l] × kernels[l], stride strides[l]) followed by ReLU.
/// With frame_diff k > 0 the image's channels c_0 … c_{C−1} (e.g. stacked frames, oldest first) enter
/// as [k (c_1 − c_0), …, k (c_{C−1} − c_{C−2}), c_{C−1}]: the frame differences (the motion, weighted
/// by k) and the newest frame; 0 feeds the channels as they are.
struct ConvStemOptions {
  std::vector<std::int64_t> image;  ///< {C, H, W}
  std::vector<std::int64_t> channels = {16, 32}, kernels = {8, 4}, strides = {4, 2};
  double frame_diff = 0;
};

/// The spatial size {h, w} after the stem's convolutions (each: (n − k) / s + 1); ShapeError when a
/// kernel does not fit the image or the lists differ in length.
std::vector<std::int64_t> conv_stem_output(const ConvStemOptions& stem);

/// Dueling Q-network: a trunk (ReLU) with a value head and an advantage head, aggregated by
/// dueling_aggregate. MLP: Linear(obs_dim → hidden), ReLU, Linear(hidden → hidden), ReLU. CNN: the
/// convolutional stem (ConvStemOptions), flattened, Linear(· → hidden), ReLU. Input [B, obs_dim]
/// (flattened images for the CNN) → Q [B, num_actions]; device- and dtype-agnostic.
class DuelingQNetImpl : public torch::nn::Module {
 public:
  DuelingQNetImpl(std::int64_t obs_dim, std::int64_t num_actions, std::int64_t hidden);
  DuelingQNetImpl(const ConvStemOptions& stem, std::int64_t num_actions, std::int64_t hidden);
  torch::Tensor forward(const torch::Tensor& obs);
  bool convolutional() const { return !image_.empty(); }

 private:
  std::vector<std::int64_t> image_;  // {C, H, W}; empty for the MLP
  double frame_diff_ = 0;
  torch::nn::Sequential conv_{nullptr}, trunk_{nullptr};
  torch::nn::Linear value_{nullptr}, advantage_{nullptr};
};
TORCH_MODULE(DuelingQNet);

struct DdqnOptions {
  std::string env = "CartPole-v1";    ///< environment (rl/env.h make_env)
  std::int64_t num_envs = 1;          ///< parallel copies
  std::int64_t supersample = 1;       ///< frames rendered with n × n samples per pixel (CartPolePixels-v1 only)
  /// Q-network: "mlp" (the observation as a vector) or "cnn" (a convolutional stem over image
  /// observations, VecEnv::obs_shape() {C, H, W}; a ConfigError on other envs). Both dueling.
  std::string network = "mlp";
  std::int64_t hidden = 128;          ///< width of the hidden ReLU layers (mlp: two; cnn: one after the stem)
  std::vector<std::int64_t> conv_channels = {16, 32};  ///< cnn: output channels per conv layer
  std::vector<std::int64_t> conv_kernels = {8, 4};     ///< cnn: square kernel size per layer
  std::vector<std::int64_t> conv_strides = {4, 2};     ///< cnn: stride per layer (no padding)
  double frame_diff = 0;              ///< cnn: > 0 feeds the frame differences times this and the newest frame (ConvStemOptions)
  std::int64_t buffer_size = 50000;   ///< replay capacity (transitions)
  std::int64_t batch_size = 64;
  double lr = 1e-3;                   ///< Adam learning rate
  double gamma = 0.99;
  std::int64_t learning_starts = 1000;  ///< env steps of pure exploration before training
  std::int64_t train_freq = 64;        ///< env steps between training phases
  std::int64_t gradient_steps = 32;    ///< gradient steps per training phase
  std::int64_t target_update = 32;     ///< gradient steps between target updates
  double tau = 1.0;                    ///< target update rate (1 = copy)
  double eps_start = 1.0, eps_end = 0.05;
  std::int64_t eps_decay_steps = 10000;  ///< env steps of the linear ε decay
  double max_grad_norm = 10.0;           ///< global gradient-norm clip (0 = none)
  /// FGSM adversarial training (0 = off): the TD loss is taken at s + adv_eps · σ ⊙ sign(v(s)) instead
  /// of s, v(s) the online network's non-Lipschitz direction (rl/diagnosis.h) and σ the minibatch's
  /// per-dimension standard deviation of s; the targets stay those of the clean s'.
  double adv_eps = 0.0;
  /// Units of adv_eps: "std" (σ as above) or "raw" (σ = 1: adv_eps in the observation's own units,
  /// e.g. pixel intensity, as SA-DQN's Atari radius 1/255).
  std::string adv_units = "std";
  std::int64_t seed = 0;

  void fields(options::Visitor& v);
  void cross_check() const;
};

struct DdqnStats {
  std::int64_t env_steps = 0, gradient_steps = 0;
  std::int64_t episodes = 0;  ///< episodes ended since the previous report
  double mean_return = 0;     ///< their mean return (NaN when none)
  double epsilon = 0;
  double loss = 0;            ///< mean TD loss since the previous report (NaN before training)
};

class Ddqn {
 public:
  /// ConfigError naming the option for invalid options; UsageError for an unknown env.
  explicit Ddqn(DdqnOptions options, torch::Device device = torch::kCPU);
  ~Ddqn();
  /// Trains for `total_steps` more env steps; every `report_every` env steps calls `on_report`
  /// (false stops training). Returns the last report's statistics.
  DdqnStats train(std::int64_t total_steps, const std::function<bool(const DdqnStats&)>& on_report = {},
                  std::int64_t report_every = 1000);
  /// Greedy actions argmax_a Q(s, a) of n observations [n, obs_dim].
  void act(const float* obs, std::int64_t n, std::int32_t* actions);
  /// A fresh network of this agent's architecture (env shape, network, hidden, conv_*), on the CPU.
  DuelingQNet make_network() const;
  DuelingQNet& model() { return online_; }
  const ReplayBuffer& buffer() const { return *buffer_; }
  std::int64_t env_steps() const { return env_steps_; }

 private:
  double update();  // one gradient step, returns the loss
  DdqnOptions o_;
  torch::Device device_;
  std::unique_ptr<VecEnv> env_;
  DuelingQNet online_{nullptr}, target_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::unique_ptr<ReplayBuffer> buffer_;
  SplitMix64 explore_;
  std::vector<float> obs_;
  std::vector<double> ep_return_;
  std::int64_t env_steps_ = 0, grad_steps_ = 0;
};

}  // namespace stablelearn::rl
