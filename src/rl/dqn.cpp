#include "stablelearn/rl/dqn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/diagnosis.h"

namespace stablelearn::rl {

torch::Tensor dueling_aggregate(const torch::Tensor& value, const torch::Tensor& advantages) {
  SL_CHECK(advantages.dim() == 2, ShapeError, "dueling_aggregate: advantages must be [B, A], got ", advantages.sizes());
  const auto v = value.dim() == 1 ? value.unsqueeze(1) : value;
  SL_CHECK(v.dim() == 2 && v.size(0) == advantages.size(0) && v.size(1) == 1, ShapeError,
           "dueling_aggregate: value must be [B] or [B, 1] with B = ", advantages.size(0), ", got ", value.sizes());
  return v + advantages - advantages.mean(1, true);
}

torch::Tensor double_q_targets(const torch::Tensor& rewards, const torch::Tensor& terminated,
                               const torch::Tensor& next_q_online, const torch::Tensor& next_q_target, double gamma) {
  SL_CHECK(next_q_online.dim() == 2 && next_q_online.sizes() == next_q_target.sizes(), ShapeError,
           "double_q_targets: next_q_online ", next_q_online.sizes(), " and next_q_target ", next_q_target.sizes(),
           " must be the same [B, A]");
  SL_CHECK(rewards.dim() == 1 && rewards.size(0) == next_q_online.size(0) && terminated.sizes() == rewards.sizes(),
           ShapeError, "double_q_targets: rewards ", rewards.sizes(), " and terminated ", terminated.sizes(),
           " must be [B] with B = ", next_q_online.size(0));
  SL_CHECK(gamma >= 0 && gamma <= 1, ConfigError, "double_q_targets: gamma must be in [0, 1], got ", gamma);
  torch::NoGradGuard ng;
  const auto a = next_q_online.argmax(1, true);
  const auto q = next_q_target.gather(1, a).squeeze(1);
  return rewards + gamma * (1 - terminated.to(rewards.scalar_type())) * q;
}

double linear_epsilon(std::int64_t step, double eps_start, double eps_end, std::int64_t decay_steps) {
  if (step >= decay_steps) return eps_end;
  const double f = static_cast<double>(step) / static_cast<double>(decay_steps);
  return eps_start + (eps_end - eps_start) * f;
}

// ---------------------------------------------------------------------------------------------

ReplayBuffer::ReplayBuffer(std::int64_t capacity, std::int64_t obs_dim, std::uint64_t seed)
    : capacity_(capacity), d_(obs_dim), rng_{stream_seed(seed, -2)} {
  SL_CHECK(capacity >= 1, ConfigError, "replay buffer: capacity must be >= 1, got ", capacity);
  SL_CHECK(obs_dim >= 1, ConfigError, "replay buffer: obs_dim must be >= 1, got ", obs_dim);
  const auto c = static_cast<std::size_t>(capacity);
  obs_.resize(c * d_);
  next_obs_.resize(c * d_);
  rewards_.resize(c);
  terminated_.resize(c);
  actions_.resize(c);
}

void ReplayBuffer::add(const float* obs, std::int32_t action, float reward, bool terminated, const float* next_obs) {
  std::memcpy(obs_.data() + pos_ * d_, obs, sizeof(float) * d_);
  std::memcpy(next_obs_.data() + pos_ * d_, next_obs, sizeof(float) * d_);
  actions_[pos_] = action;
  rewards_[pos_] = reward;
  terminated_[pos_] = terminated ? 1.f : 0.f;
  pos_ = (pos_ + 1) % capacity_;
  size_ = std::min(size_ + 1, capacity_);
}

std::vector<std::int64_t> ReplayBuffer::sample_indices(std::int64_t n) {
  SL_CHECK(size_ > 0, UsageError, "replay buffer: sample from an empty buffer");
  SL_CHECK(n >= 1, UsageError, "replay buffer: sample size must be >= 1, got ", n);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  const auto s = static_cast<unsigned __int128>(size_);
  for (auto& i : idx) i = static_cast<std::int64_t>((static_cast<unsigned __int128>(rng_.next()) * s) >> 64);
  return idx;
}

ReplayBuffer::Batch ReplayBuffer::gather(const std::vector<std::int64_t>& idx, torch::Device device) const {
  const auto n = static_cast<std::int64_t>(idx.size());
  auto obs = torch::empty({n, d_}), next = torch::empty({n, d_}), rew = torch::empty({n}), term = torch::empty({n});
  auto act = torch::empty({n}, torch::kLong);
  float *po = obs.data_ptr<float>(), *pn = next.data_ptr<float>(), *pr = rew.data_ptr<float>(), *pt = term.data_ptr<float>();
  auto* pa = act.data_ptr<std::int64_t>();
  for (std::int64_t k = 0; k < n; ++k) {
    const auto i = idx[k];
    SL_CHECK(i >= 0 && i < size_, UsageError, "replay buffer: index ", i, " outside [0, ", size_, ")");
    std::memcpy(po + k * d_, obs_.data() + i * d_, sizeof(float) * d_);
    std::memcpy(pn + k * d_, next_obs_.data() + i * d_, sizeof(float) * d_);
    pr[k] = rewards_[i];
    pt[k] = terminated_[i];
    pa[k] = actions_[i];
  }
  return {obs.to(device), act.to(device), rew.to(device), term.to(device), next.to(device)};
}

void ReplayBuffer::get(std::int64_t i, float* obs, std::int32_t& action, float& reward, bool& terminated,
                       float* next_obs) const {
  SL_CHECK(i >= 0 && i < size_, UsageError, "replay buffer: index ", i, " outside [0, ", size_, ")");
  std::memcpy(obs, obs_.data() + i * d_, sizeof(float) * d_);
  std::memcpy(next_obs, next_obs_.data() + i * d_, sizeof(float) * d_);
  action = actions_[i];
  reward = rewards_[i];
  terminated = terminated_[i] != 0.f;
}

// ---------------------------------------------------------------------------------------------

DuelingQNetImpl::DuelingQNetImpl(std::int64_t obs_dim, std::int64_t num_actions, std::int64_t hidden) {
  trunk_ = register_module("trunk", torch::nn::Sequential(torch::nn::Linear(obs_dim, hidden), torch::nn::ReLU(),
                                                          torch::nn::Linear(hidden, hidden), torch::nn::ReLU()));
  value_ = register_module("value", torch::nn::Linear(hidden, 1));
  advantage_ = register_module("advantage", torch::nn::Linear(hidden, num_actions));
}

std::vector<std::int64_t> conv_stem_output(const ConvStemOptions& stem) {
  SL_CHECK(stem.image.size() == 3 && stem.image[0] >= 1 && stem.image[1] >= 1 && stem.image[2] >= 1, ShapeError,
           "conv stem: the image must be {C, H, W} with positive sizes, got ", options::value_text(stem.image));
  const auto L = stem.channels.size();
  SL_CHECK(L >= 1 && stem.kernels.size() == L && stem.strides.size() == L, ShapeError,
           "conv stem: channels, kernels and strides must be lists of the same length >= 1, got ", L, ", ",
           stem.kernels.size(), ", ", stem.strides.size());
  std::int64_t h = stem.image[1], w = stem.image[2];
  for (std::size_t l = 0; l < L; ++l) {
    const auto k = stem.kernels[l], st = stem.strides[l];
    SL_CHECK(stem.channels[l] >= 1 && k >= 1 && st >= 1, ShapeError, "conv stem: layer ", l,
             " needs channels, kernel and stride >= 1");
    SL_CHECK(k <= h && k <= w, ShapeError, "conv stem: layer ", l, "'s kernel ", k, " does not fit its ", h, " x ", w,
             " input (image ", options::value_text(stem.image), ")");
    h = (h - k) / st + 1;
    w = (w - k) / st + 1;
  }
  return {h, w};
}

DuelingQNetImpl::DuelingQNetImpl(const ConvStemOptions& stem, std::int64_t num_actions, std::int64_t hidden)
    : image_(stem.image), frame_diff_(stem.frame_diff) {
  const auto out = conv_stem_output(stem);
  torch::nn::Sequential conv;
  std::int64_t in = stem.image[0];
  for (std::size_t l = 0; l < stem.channels.size(); ++l) {
    conv->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, stem.channels[l], stem.kernels[l]).stride(stem.strides[l])));
    conv->push_back(torch::nn::ReLU());
    in = stem.channels[l];
  }
  conv_ = register_module("conv", conv);
  trunk_ = register_module("trunk", torch::nn::Sequential(torch::nn::Linear(in * out[0] * out[1], hidden), torch::nn::ReLU()));
  value_ = register_module("value", torch::nn::Linear(hidden, 1));
  advantage_ = register_module("advantage", torch::nn::Linear(hidden, num_actions));
}

torch::Tensor DuelingQNetImpl::forward(const torch::Tensor& obs) {
  torch::Tensor h;
  if (image_.empty()) {
    h = trunk_->forward(obs);
  } else {
    SL_CHECK(obs.dim() == 2 && obs.size(1) == image_[0] * image_[1] * image_[2], ShapeError,
             "DuelingQNet: observations must be [B, ", image_[0] * image_[1] * image_[2], "] (flattened images ",
             options::value_text(image_), "), got ", obs.sizes());
    auto x = obs.reshape({obs.size(0), image_[0], image_[1], image_[2]});
    if (frame_diff_ > 0 && image_[0] > 1) {
      const auto C = image_[0];
      x = torch::cat({frame_diff_ * (x.slice(1, 1, C) - x.slice(1, 0, C - 1)), x.slice(1, C - 1, C)}, 1);
    }
    h = trunk_->forward(conv_->forward(x).flatten(1));
  }
  return dueling_aggregate(value_->forward(h), advantage_->forward(h));
}

void DdqnOptions::fields(options::Visitor& v) {
  v("env", env, "environment name (CartPole-v1)").one_of(env_names());
  v("num_envs", num_envs, "parallel environment copies").at_least(1);
  v("supersample", supersample, "frames rendered with n x n samples per pixel (CartPolePixels-v1; 1 = binary frames)")
      .in(std::int64_t{1}, std::int64_t{64});
  v("network", network, "Q-network: mlp, or cnn (a convolutional stem; image observations such as CartPolePixels-v1)")
      .one_of({"mlp", "cnn"});
  v("hidden", hidden, "width of the hidden ReLU layers (mlp: two; cnn: one after the convolutions)").at_least(1);
  v("conv_channels", conv_channels, "cnn: output channels of each convolution").each_at_least(1);
  v("conv_kernels", conv_kernels, "cnn: square kernel size of each convolution").each_at_least(1);
  v("conv_strides", conv_strides, "cnn: stride of each convolution (no padding)").each_at_least(1);
  v("frame_diff", frame_diff, "cnn: > 0 inputs the frame differences times this and the newest frame instead of the frames")
      .at_least(0.0);
  v("buffer_size", buffer_size, "replay capacity in transitions").at_least(1);
  v("batch_size", batch_size, "minibatch size").at_least(1);
  v("lr", lr, "Adam learning rate").above(0.0);
  v("gamma", gamma, "discount factor").in(0.0, 1.0);
  v("learning_starts", learning_starts, "env steps of pure exploration before training").at_least(0);
  v("train_freq", train_freq, "env steps between training phases").at_least(1);
  v("gradient_steps", gradient_steps, "gradient steps per training phase").at_least(1);
  v("target_update", target_update, "gradient steps between target-network updates").at_least(1);
  v("tau", tau, "target update rate (1 = copy the online weights)").expect(tau > 0 && tau <= 1, "in (0, 1]");
  v("eps_start", eps_start, "initial exploration rate").in(0.0, 1.0);
  v("eps_end", eps_end, "final exploration rate").in(0.0, 1.0);
  v("eps_decay_steps", eps_decay_steps, "env steps of the linear epsilon decay").at_least(0);
  v("max_grad_norm", max_grad_norm, "global gradient norm clip (0 = none)").at_least(0.0);
  v("adv_eps", adv_eps, "FGSM adversarial training radius in minibatch standard deviations (0 = off)").at_least(0.0);
  v("adv_units", adv_units, "units of adv_eps: std (minibatch standard deviation per dimension) or raw (observation units)")
      .one_of({"std", "raw"});
  v("seed", seed, "seed of the network, the environments, exploration and replay").at_least(0);
}

void DdqnOptions::cross_check() const {
  SL_CHECK(batch_size <= buffer_size, ConfigError, "ddqn.batch_size: must be <= buffer_size = ", buffer_size, ", got ",
           batch_size);
  SL_CHECK(!conv_channels.empty() && conv_kernels.size() == conv_channels.size() && conv_strides.size() == conv_channels.size(),
           ConfigError, "ddqn.conv_channels: conv_channels, conv_kernels and conv_strides must have the same length >= 1, got ",
           conv_channels.size(), ", ", conv_kernels.size(), ", ", conv_strides.size());
}

Ddqn::Ddqn(DdqnOptions options, torch::Device device)
    : o_(std::move(options)), device_(device), explore_{stream_seed(static_cast<std::uint64_t>(o_.seed), -3)} {
  options::check(o_, "ddqn");
  EnvOptions eo;
  eo.num_envs = o_.num_envs;
  eo.auto_reset = true;
  eo.supersample = o_.supersample;
  env_ = make_env(o_.env, eo);
  const auto shape = env_->obs_shape();
  SL_CHECK(o_.network == "mlp" || shape.size() == 3, ConfigError, "ddqn.network: \"cnn\" needs image observations {C, H, W}; ",
           o_.env, " observes a vector of ", env_->obs_dim(), " floats (use \"mlp\")");
  if (o_.network == "cnn") {
    ConvStemOptions stem{shape, o_.conv_channels, o_.conv_kernels, o_.conv_strides, o_.frame_diff};
    try {
      conv_stem_output(stem);
    } catch (const ShapeError& e) {
      SL_THROW(ConfigError, "ddqn.conv_kernels: the convolutions do not fit ", o_.env, "'s images: ", e.what());
    }
  }
  torch::manual_seed(static_cast<std::uint64_t>(o_.seed));
  online_ = make_network();
  target_ = make_network();
  online_->to(device_);
  target_->to(device_);
  {
    torch::NoGradGuard ng;
    const auto src = online_->parameters(), dst = target_->parameters();
    for (std::size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  target_->eval();
  opt_ = std::make_unique<torch::optim::Adam>(online_->parameters(), torch::optim::AdamOptions(o_.lr));
  buffer_ = std::make_unique<ReplayBuffer>(o_.buffer_size, env_->obs_dim(), static_cast<std::uint64_t>(o_.seed));
  obs_.assign(static_cast<std::size_t>(o_.num_envs * env_->obs_dim()), 0.f);
  ep_return_.assign(static_cast<std::size_t>(o_.num_envs), 0.0);
  env_->reset(static_cast<std::uint64_t>(o_.seed), obs_.data());
}

Ddqn::~Ddqn() = default;

DuelingQNet Ddqn::make_network() const {
  if (o_.network == "mlp") return DuelingQNet(env_->obs_dim(), env_->num_actions(), o_.hidden);
  return DuelingQNet(ConvStemOptions{env_->obs_shape(), o_.conv_channels, o_.conv_kernels, o_.conv_strides, o_.frame_diff},
                     env_->num_actions(), o_.hidden);
}

void Ddqn::act(const float* obs, std::int64_t n, std::int32_t* actions) {
  torch::NoGradGuard ng;
  const auto x = torch::from_blob(const_cast<float*>(obs), {n, env_->obs_dim()}, torch::kFloat).to(device_);
  const auto a = online_->forward(x).argmax(1).to(torch::kCPU, torch::kInt).contiguous();
  std::copy(a.data_ptr<std::int32_t>(), a.data_ptr<std::int32_t>() + n, actions);
}

double Ddqn::update() {
  const auto b = buffer_->sample(o_.batch_size, device_);
  const auto B = o_.batch_size;
  auto obs = b.obs;
  if (o_.adv_eps > 0) {
    // FGSM against the online network's greedy action, per-dimension radius adv_eps · σ_d (raw: adv_eps).
    const auto scale = o_.adv_units == "std" ? b.obs.std(0, /*unbiased=*/false) : torch::Tensor();
    obs = fgsm([this](const torch::Tensor& x) { return online_->forward(x); }, b.obs, o_.adv_eps, scale);
  }
  // One online pass over [s; s'] (the s' half only chooses the argmax, without gradient).
  const auto q_all = online_->forward(torch::cat({obs, b.next_obs}, 0));
  torch::Tensor y;
  {
    torch::NoGradGuard ng;
    y = double_q_targets(b.rewards, b.terminated, q_all.slice(0, B, 2 * B).detach(), target_->forward(b.next_obs),
                         o_.gamma);
  }
  const auto q = q_all.slice(0, 0, B).gather(1, b.actions.unsqueeze(1)).squeeze(1);
  const auto loss = torch::nn::functional::smooth_l1_loss(q, y);
  opt_->zero_grad();
  loss.backward();
  if (o_.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(online_->parameters(), o_.max_grad_norm);
  opt_->step();
  if (++grad_steps_ % o_.target_update == 0) {
    torch::NoGradGuard ng;
    const auto src = online_->parameters(), dst = target_->parameters();
    for (std::size_t i = 0; i < src.size(); ++i) dst[i].mul_(1 - o_.tau).add_(src[i], o_.tau);
  }
  return loss.item<double>();
}

DdqnStats Ddqn::train(std::int64_t total_steps, const std::function<bool(const DdqnStats&)>& on_report,
                      std::int64_t report_every) {
  SL_CHECK(total_steps >= 1, ConfigError, "ddqn: total_steps must be >= 1, got ", total_steps);
  SL_CHECK(report_every >= 1, ConfigError, "ddqn: report_every must be >= 1, got ", report_every);
  const auto N = o_.num_envs, D = env_->obs_dim(), A = env_->num_actions();
  std::vector<float> rew(N), fin(N * D), prev(N * D);
  std::vector<std::uint8_t> term(N), trunc(N);
  std::vector<std::int32_t> act(N), greedy(N);
  DdqnStats stats;
  double ret_sum = 0, loss_sum = 0;
  std::int64_t episodes = 0, losses = 0, since_train = 0, since_report = 0;
  const std::int64_t end = env_steps_ + total_steps;
  while (env_steps_ < end) {
    const double eps = linear_epsilon(env_steps_, o_.eps_start, o_.eps_end, o_.eps_decay_steps);
    {
      bool any_greedy = false;
      for (std::int64_t i = 0; i < N; ++i) {
        const bool explore = env_steps_ < o_.learning_starts || explore_.uniform01() < eps;
        act[i] = explore ? static_cast<std::int32_t>((explore_.next() >> 33) % static_cast<std::uint64_t>(A)) : -1;
        any_greedy = any_greedy || !explore;
      }
      if (any_greedy) {
        this->act(obs_.data(), N, greedy.data());
        for (std::int64_t i = 0; i < N; ++i)
          if (act[i] < 0) act[i] = greedy[i];
      }
    }
    prev = obs_;
    env_->step(act.data(), obs_.data(), rew.data(), term.data(), trunc.data(), fin.data());
    for (std::int64_t i = 0; i < N; ++i) {
      buffer_->add(prev.data() + i * D, act[i], rew[i], term[i] != 0, fin.data() + i * D);
      ep_return_[i] += rew[i];
      if (term[i] || trunc[i]) {
        ret_sum += ep_return_[i];
        ++episodes;
        ep_return_[i] = 0;
      }
    }
    env_steps_ += N;
    since_train += N;
    since_report += N;
    if (env_steps_ >= o_.learning_starts && since_train >= o_.train_freq) {
      since_train = 0;
      for (std::int64_t g = 0; g < o_.gradient_steps; ++g) {
        loss_sum += update();
        ++losses;
      }
    }
    if (since_report >= report_every || env_steps_ >= end) {
      since_report = 0;
      stats.env_steps = env_steps_;
      stats.gradient_steps = grad_steps_;
      stats.episodes = episodes;
      stats.mean_return = episodes ? ret_sum / static_cast<double>(episodes) : std::numeric_limits<double>::quiet_NaN();
      stats.epsilon = eps;
      stats.loss = losses ? loss_sum / static_cast<double>(losses) : std::numeric_limits<double>::quiet_NaN();
      ret_sum = loss_sum = 0;
      episodes = losses = 0;
      if (on_report && !on_report(stats)) break;
    }
  }
  return stats;
}

}  // namespace stablelearn::rl
