#include "stablelearn/rl/ppo.h"

#include <cmath>
#include <limits>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/advantages.h"
#include "stablelearn/rl/env.h"
#include "policy_net.h"

namespace stablelearn::rl {

void PpoOptions::fields(options::Visitor& v) {
  v("env", env, "environment name (CartPole-v1, Maze-v0)").one_of(env_names());
  v("num_envs", num_envs, "parallel environment copies").at_least(1);
  v("num_steps", num_steps, "rollout length per copy and iteration").at_least(1);
  v("epochs", epochs, "optimisation passes over each rollout").at_least(1);
  v("minibatches", minibatches, "minibatches per pass (divides num_envs * num_steps)").at_least(1);
  v("hidden", hidden, "width of the two hidden tanh layers of actor and critic").at_least(1);
  v("lr", lr, "Adam learning rate").above(0.0);
  v("anneal_lr", anneal_lr, "decay the learning rate linearly to 0 over the step budget");
  v("adam_eps", adam_eps, "Adam epsilon").above(0.0);
  v("gamma", gamma, "discount factor").in(0.0, 1.0);
  v("gae_lambda", gae_lambda, "GAE lambda").in(0.0, 1.0);
  v("clip", clip, "clip range epsilon of the surrogate objective").above(0.0);
  v("value_clip", value_clip, "clip range of the value update (0 = unclipped MSE)").at_least(0.0);
  v("ent_coef", ent_coef, "entropy bonus weight").at_least(0.0);
  v("vf_coef", vf_coef, "value loss weight").at_least(0.0);
  v("max_grad_norm", max_grad_norm, "global gradient norm clip (0 = none)").at_least(0.0);
  v("norm_adv", norm_adv, "normalise advantages per minibatch");
  v("seed", seed, "seed of the network, the environments and the sampling").at_least(0);
  v("embed", embed, "width of the encoder output the heads act on (0 = plain MLPs, no separate head)").at_least(0);
  v("head", head, "policy and value heads: euclidean, poincare or hyperboloid (Hyper++)").one_of({"euclidean", "poincare", "hyperboloid"});
  v("feature_control", feature_control, "Hyper++'s RMSNorm + tanh + learned scaling before the hyperbolic heads");
  v("curvature", curvature, "c of the hyperbolic heads' curvature -c").above(0.0);
  v("value_loss", value_loss, "mse (clipped by value_clip) or hl_gauss (categorical, Hyper++)").one_of({"mse", "hl_gauss"});
  v("hl_bins", hl_bins, "bins of the HL-Gauss value distribution").at_least(2);
  v("hl_min", hl_min, "lower end of the HL-Gauss support");
  v("hl_max", hl_max, "upper end of the HL-Gauss support");
  v("levels", levels, "training levels of a procedurally generated environment (0 = unlimited)").at_least(0);
  v("start_level", start_level, "first training level id").at_least(0);
  v("grid", grid, "grid side of a grid environment (0 = its own)").at_least(0);
  v("max_steps", max_steps, "episode truncation length (0 = the environment's own)").at_least(0);
}

void PpoOptions::cross_check() const {
  const auto batch = num_envs * num_steps;
  SL_CHECK(batch % minibatches == 0 && batch / minibatches >= 2, ConfigError,
           "ppo.minibatches: must divide num_envs * num_steps = ", batch, " into minibatches of at least 2, got ",
           minibatches);
  SL_CHECK(embed > 0 || (head == "euclidean" && value_loss == "mse" && !feature_control), ConfigError,
           "ppo.embed: the head \"", head, "\", feature_control and value_loss = hl_gauss need an encoder output (embed > 0)");
  SL_CHECK(!feature_control || head != "euclidean", ConfigError, "ppo.feature_control: applies to the hyperbolic heads only");
  SL_CHECK(hl_max > hl_min, ConfigError, "ppo.hl_max: must be > hl_min = ", hl_min, ", got ", hl_max);
}

torch::Tensor clipped_surrogate_loss(const torch::Tensor& log_ratio, const torch::Tensor& advantages, double clip) {
  SL_CHECK(log_ratio.sizes() == advantages.sizes(), ShapeError, "clipped_surrogate_loss: log_ratio ",
           log_ratio.sizes(), " and advantages ", advantages.sizes(), " differ");
  SL_CHECK(clip > 0, ConfigError, "clipped_surrogate_loss: clip must be > 0, got ", clip);
  const auto ratio = log_ratio.exp();
  return torch::max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean();
}

torch::Tensor clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values,
                                 const torch::Tensor& returns, double value_clip) {
  SL_CHECK(values.sizes() == old_values.sizes() && values.sizes() == returns.sizes(), ShapeError,
           "clipped_value_loss: values ", values.sizes(), ", old_values ", old_values.sizes(), " and returns ",
           returns.sizes(), " differ");
  const auto unclipped = (values - returns).pow(2);
  if (value_clip <= 0) return 0.5 * unclipped.mean();
  const auto clipped = old_values + (values - old_values).clamp(-value_clip, value_clip);
  return 0.5 * torch::max(unclipped, (clipped - returns).pow(2)).mean();
}

using detail::sample_actions;
using detail::uniform01;

ActorCriticImpl::ActorCriticImpl(std::int64_t obs_dim, std::int64_t num_actions, std::int64_t hidden) {
  actor_ = register_module("actor", detail::tanh_mlp(obs_dim, hidden, num_actions, 0.01));
  critic_ = register_module("critic", detail::tanh_mlp(obs_dim, hidden, 1, 1.0));
}

ActorCriticImpl::ActorCriticImpl(std::int64_t obs_dim, std::int64_t num_actions, const PpoOptions& o) {
  if (o.embed == 0) {
    actor_ = register_module("actor", detail::tanh_mlp(obs_dim, o.hidden, num_actions, 0.01));
    critic_ = register_module("critic", detail::tanh_mlp(obs_dim, o.hidden, 1, 1.0));
    return;
  }
  // Encoders end in a linear embed-wide layer (gain 1); the heads' class vectors start N(0, 1/embed).
  heads_ = true;
  hl_gauss_ = o.value_loss == "hl_gauss";
  hl_min_ = o.hl_min;
  hl_max_ = o.hl_max;
  actor_ = register_module("actor", detail::tanh_mlp(obs_dim, o.hidden, o.embed, 1.0));
  critic_ = register_module("critic", detail::tanh_mlp(obs_dim, o.hidden, o.embed, 1.0));
  const hyperbolic::HeadOptions ho{o.head, o.feature_control, o.curvature};
  const double std0 = 1.0 / std::sqrt(static_cast<double>(o.embed));
  actor_head_ = register_module("actor_head", hyperbolic::Head(o.embed, num_actions, ho, std0));
  critic_head_ = register_module("critic_head", hyperbolic::Head(o.embed, hl_gauss_ ? o.hl_bins : 1, ho, std0));
}

torch::Tensor ActorCriticImpl::logits(const torch::Tensor& obs) {
  return heads_ ? actor_head_->forward(actor_->forward(obs)) : actor_->forward(obs);
}
torch::Tensor ActorCriticImpl::value_outputs(const torch::Tensor& obs) {
  return heads_ ? critic_head_->forward(critic_->forward(obs)) : critic_->forward(obs);
}
torch::Tensor ActorCriticImpl::value(const torch::Tensor& obs) {
  const auto out = value_outputs(obs);
  return hl_gauss_ ? hyperbolic::hl_gauss_value(out, hl_min_, hl_max_) : out.squeeze(-1);
}
double ActorCriticImpl::last_embedding_norm() const {
  if (!heads_ || !actor_head_->last_tangent().defined()) return 0;
  return actor_head_->last_tangent().norm(2, -1).mean().item<double>();
}

Ppo::Ppo(PpoOptions options, torch::Device device) : o_(std::move(options)), device_(device) {
  options::check(o_, "ppo");
  EnvOptions eo;
  eo.num_envs = o_.num_envs;
  eo.auto_reset = true;
  eo.levels = o_.levels;
  eo.start_level = o_.start_level;
  eo.grid = o_.grid;
  eo.max_steps = o_.max_steps;
  env_ = make_env(o_.env, eo);
  torch::manual_seed(static_cast<std::uint64_t>(o_.seed));
  model_ = ActorCritic(env_->obs_dim(), env_->num_actions(), o_);
  model_->to(device_);
  opt_ = std::make_unique<torch::optim::Adam>(model_->parameters(),
                                              torch::optim::AdamOptions(o_.lr).eps(o_.adam_eps));
  rng_state_ = stream_seed(static_cast<std::uint64_t>(o_.seed), -1);
  obs_.assign(static_cast<std::size_t>(o_.num_envs * env_->obs_dim()), 0.f);
  ep_return_.assign(static_cast<std::size_t>(o_.num_envs), 0.0);
  env_->reset(static_cast<std::uint64_t>(o_.seed), obs_.data());
}

Ppo::~Ppo() = default;

void Ppo::act(const float* obs, std::int64_t n, std::int32_t* actions, bool greedy) {
  torch::NoGradGuard ng;
  const auto d = env_->obs_dim();
  const auto x = torch::from_blob(const_cast<float*>(obs), {n, d}, torch::kFloat).to(device_);
  const auto logits = model_->logits(x);
  if (greedy) return detail::greedy_actions(logits, actions);
  sample_actions(torch::softmax(logits, 1), rng_state_, actions);
}

PpoStats Ppo::train(std::int64_t total_steps, const std::function<bool(const PpoStats&)>& on_iteration) {
  SL_CHECK(total_steps >= 1, ConfigError, "ppo: total_steps must be >= 1, got ", total_steps);
  const auto N = o_.num_envs, T = o_.num_steps, D = env_->obs_dim(), B = N * T;
  const auto fopt = torch::TensorOptions().dtype(torch::kFloat).device(device_);
  const std::int64_t iterations = std::max<std::int64_t>(1, total_steps / B);
  auto obs_buf = torch::empty({T, N, D}, fopt), next_obs_buf = torch::empty({T, N, D}, fopt);
  auto act_buf = torch::empty({T, N}, fopt.dtype(torch::kLong)), logp_buf = torch::empty({T, N}, fopt);
  auto val_buf = torch::empty({T, N}, fopt), rew_buf = torch::empty({T, N}, fopt);
  auto term_buf = torch::empty({T, N}, fopt), done_buf = torch::empty({T, N}, fopt);
  std::vector<float> rew(N), fin(N * D), termf(N), donef(N);
  std::vector<std::uint8_t> term(N), trunc(N);
  std::vector<std::int32_t> act(N);
  std::vector<std::int64_t> act64(N);
  std::vector<std::int64_t> perm(B);
  PpoStats stats;
  for (std::int64_t it = 0; it < iterations; ++it) {
    if (o_.anneal_lr) {
      const double lr = o_.lr * (1.0 - static_cast<double>(it) / static_cast<double>(iterations));
      for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    }
    double ret_sum = 0;
    std::int64_t episodes = 0;
    stats.grad_norm = 0;
    stats.nonfinite = 0;
    // Rollout.
    {
      torch::NoGradGuard ng;
      for (std::int64_t t = 0; t < T; ++t) {
        const auto x = torch::from_blob(obs_.data(), {N, D}, torch::kFloat);
        obs_buf[t].copy_(x);
        const auto xt = obs_buf[t];
        const auto logp_all = torch::log_softmax(model_->logits(xt), 1);
        val_buf[t].copy_(model_->value(xt));
        sample_actions(logp_all.exp(), rng_state_, act.data());
        for (std::int64_t i = 0; i < N; ++i) act64[i] = act[i];
        const auto at = torch::from_blob(act64.data(), {N}, torch::kLong).to(device_);
        act_buf[t].copy_(at);
        logp_buf[t].copy_(logp_all.gather(1, at.unsqueeze(1)).squeeze(1));
        env_->step(act.data(), obs_.data(), rew.data(), term.data(), trunc.data(), fin.data());
        for (std::int64_t i = 0; i < N; ++i) {
          termf[i] = term[i];
          donef[i] = static_cast<float>(term[i] | trunc[i]);
          ep_return_[i] += rew[i];
          if (term[i] || trunc[i]) {
            ret_sum += ep_return_[i];
            ++episodes;
            ep_return_[i] = 0;
          }
        }
        rew_buf[t].copy_(torch::from_blob(rew.data(), {N}, torch::kFloat));
        term_buf[t].copy_(torch::from_blob(termf.data(), {N}, torch::kFloat));
        done_buf[t].copy_(torch::from_blob(donef.data(), {N}, torch::kFloat));
        next_obs_buf[t].copy_(torch::from_blob(fin.data(), {N, D}, torch::kFloat));
      }
      env_steps_ += B;
    }
    torch::Tensor adv, ret;
    {
      torch::NoGradGuard ng;
      const auto next_values = model_->value(next_obs_buf.view({B, D})).view({T, N});
      adv = gae(rew_buf, val_buf, next_values, term_buf, done_buf, o_.gamma, o_.gae_lambda);
      ret = adv + val_buf;
    }
    const auto b_obs = obs_buf.view({B, D}), b_act = act_buf.view({B}), b_logp = logp_buf.view({B});
    const auto b_adv = adv.view({B}), b_ret = ret.view({B}), b_val = val_buf.view({B});
    const auto mb = B / o_.minibatches;
    for (std::int64_t i = 0; i < B; ++i) perm[i] = i;
    for (std::int64_t e = 0; e < o_.epochs; ++e) {
      for (std::int64_t i = B - 1; i > 0; --i) {  // Fisher–Yates from the trainer's stream
        const auto j = static_cast<std::int64_t>(uniform01(rng_state_) * static_cast<double>(i + 1));
        std::swap(perm[i], perm[std::min(j, i)]);
      }
      const auto idx_all = torch::from_blob(perm.data(), {B}, torch::kLong).to(device_, /*non_blocking=*/false, /*copy=*/true);
      double pl = 0, vl = 0, ent = 0, kl = 0, cf = 0;
      for (std::int64_t m = 0; m < o_.minibatches; ++m) {
        const auto idx = idx_all.slice(0, m * mb, (m + 1) * mb);
        const auto x = b_obs.index_select(0, idx);
        const auto logp_all = torch::log_softmax(model_->logits(x), 1);
        const auto new_logp = logp_all.gather(1, b_act.index_select(0, idx).unsqueeze(1)).squeeze(1);
        const auto entropy = -(logp_all.exp() * logp_all).sum(1).mean();
        const auto log_ratio = new_logp - b_logp.index_select(0, idx);
        auto a = b_adv.index_select(0, idx);
        if (o_.norm_adv) a = normalize_advantages(a);
        const auto pg = clipped_surrogate_loss(log_ratio, a, o_.clip);
        const auto v = o_.value_loss == "hl_gauss"
                           ? hyperbolic::hl_gauss_loss(model_->value_outputs(x), b_ret.index_select(0, idx), o_.hl_min, o_.hl_max)
                           : clipped_value_loss(model_->value(x), b_val.index_select(0, idx), b_ret.index_select(0, idx),
                                                o_.value_clip);
        const auto loss = pg - o_.ent_coef * entropy + o_.vf_coef * v;
        opt_->zero_grad();
        loss.backward();
        // The global norm before clipping; a non-finite loss or gradient skips the step (counted).
        const double gn = torch::nn::utils::clip_grad_norm_(model_->parameters(),
                                                            o_.max_grad_norm > 0 ? o_.max_grad_norm
                                                                                 : std::numeric_limits<double>::infinity());
        if (!std::isfinite(gn) || !std::isfinite(loss.item<double>())) {
          ++stats.nonfinite;
          opt_->zero_grad();
          continue;
        }
        stats.grad_norm = std::max(stats.grad_norm, gn);
        opt_->step();
        {
          torch::NoGradGuard ng;
          const auto r = log_ratio.exp();
          pl += pg.item<double>();
          vl += v.item<double>();
          ent += entropy.item<double>();
          kl += ((r - 1) - log_ratio).mean().item<double>();
          cf += ((r - 1).abs() > o_.clip).to(torch::kFloat).mean().item<double>();
        }
      }
      const double k = static_cast<double>(o_.minibatches);
      stats.policy_loss = pl / k;
      stats.value_loss = vl / k;
      stats.entropy = ent / k;
      stats.approx_kl = kl / k;
      stats.clip_fraction = cf / k;
    }
    stats.embed_norm = model_->last_embedding_norm();
    stats.iteration = ++iteration_;
    stats.env_steps = env_steps_;
    stats.episodes = episodes;
    stats.mean_return = episodes ? ret_sum / static_cast<double>(episodes) : std::numeric_limits<double>::quiet_NaN();
    if (on_iteration && !on_iteration(stats)) break;
  }
  return stats;
}

}  // namespace stablelearn::rl
