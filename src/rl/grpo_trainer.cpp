#include "stablelearn/rl/grpo_trainer.h"

#include <cmath>
#include <limits>
#include <map>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "stablelearn/core/error.h"
#include "stablelearn/rl/advantages.h"
#include "stablelearn/rl/env.h"
#include "stablelearn/rl/grpo.h"
#include "policy_net.h"

namespace stablelearn::rl {

void GrpoOptions::fields(options::Visitor& v) {
  v("env", env, "environment with question groups (Search-v0)").one_of(env_names());
  v("questions", questions, "question groups per iteration").at_least(1);
  v("group", group, "trajectories per question").at_least(2);
  v("epochs", epochs, "full-batch updates per iteration").at_least(1);
  v("hidden", hidden, "width of the policy's two hidden tanh layers").at_least(1);
  v("lr", lr, "Adam learning rate").above(0.0);
  v("clip", clip, "clip range epsilon of the surrogate objective").above(0.0);
  v("kl_coef", kl_coef, "weight of the k3 KL to the initial policy (0 = none)").at_least(0.0);
  v("max_grad_norm", max_grad_norm, "global gradient norm clip (0 = none)").at_least(0.0);
  v("advantage", advantage, "grpo (group-relative), san (stratified) or blend").one_of({"grpo", "san", "blend"});
  v("alpha", alpha, "weight of SAN in the blend").in(0.0, 1.0);
  v("adv_eps", adv_eps, "epsilon of the advantage normalisations").at_least(0.0);
  v("seed", seed, "seed of the network, the questions and the sampling").at_least(0);
  v("levels", levels, "training questions (0 = unlimited)").at_least(0);
  v("start_level", start_level, "first training question id").at_least(0);
  v("max_steps", max_steps, "episode budget of the environment (0 = its own)").at_least(0);
  v("hub", hub, "Search-v0: probability that a fact points to the popular entity 0").in(0.0, 1.0);
}

double cross_stratum_share(const torch::Tensor& rewards, const torch::Tensor& strata) {
  SL_CHECK(rewards.dim() == 2 && rewards.sizes() == strata.sizes(), ShapeError,
           "cross_stratum_share: rewards and strata must be [B, G] of one shape, got ", rewards.sizes(), " and ",
           strata.sizes());
  const auto r = rewards.to(torch::kCPU, torch::kDouble).contiguous();
  const auto s = strata.to(torch::kCPU, torch::kLong).contiguous();
  const auto B = r.size(0), G = r.size(1);
  const double* rp = r.data_ptr<double>();
  const std::int64_t* sp = s.data_ptr<std::int64_t>();
  double between = 0, total = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    double mean = 0;
    for (std::int64_t j = 0; j < G; ++j) mean += rp[b * G + j] / static_cast<double>(G);
    std::map<std::int64_t, std::pair<double, double>> st;  // stratum → (count, sum)
    for (std::int64_t j = 0; j < G; ++j) {
      auto& e = st[sp[b * G + j]];
      e.first += 1;
      e.second += rp[b * G + j];
      total += (rp[b * G + j] - mean) * (rp[b * G + j] - mean) / static_cast<double>(G);
    }
    for (const auto& [k, e] : st) {
      const double mk = e.second / e.first;
      between += e.first * (mk - mean) * (mk - mean) / static_cast<double>(G);
    }
  }
  return total > 0 ? between / total : std::nan("");
}


Grpo::Grpo(GrpoOptions options, torch::Device device) : o_(std::move(options)), device_(device) {
  options::check(o_, "grpo");
  EnvOptions eo;
  eo.num_envs = o_.questions * o_.group;
  eo.group = o_.group;
  eo.auto_reset = true;
  eo.levels = o_.levels;
  eo.start_level = o_.start_level;
  eo.max_steps = o_.max_steps;
  eo.hub = o_.hub;
  env_ = make_env(o_.env, eo);
  torch::manual_seed(static_cast<std::uint64_t>(o_.seed));
  policy_ = detail::tanh_mlp(env_->obs_dim(), o_.hidden, env_->num_actions(), 0.01);
  policy_->to(device_);
  if (o_.kl_coef > 0) {
    ref_ = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(policy_->clone(device_));
    for (auto& p : ref_->parameters()) p.requires_grad_(false);
  }
  opt_ = std::make_unique<torch::optim::Adam>(policy_->parameters(), torch::optim::AdamOptions(o_.lr));
  rng_state_ = stream_seed(static_cast<std::uint64_t>(o_.seed), -1);
}

Grpo::~Grpo() = default;

std::int64_t Grpo::obs_dim() const { return env_->obs_dim(); }

void Grpo::act(const float* obs, std::int64_t n, std::int32_t* actions, bool greedy) {
  torch::NoGradGuard ng;
  const auto x = torch::from_blob(const_cast<float*>(obs), {n, env_->obs_dim()}, torch::kFloat).to(device_);
  const auto logits = policy_->forward(x);
  if (greedy) return detail::greedy_actions(logits, actions);
  detail::sample_actions(torch::softmax(logits, 1), rng_state_, actions);
}

GrpoBatch Grpo::collect() {
  const auto B = o_.questions, G = o_.group, N = B * G, D = env_->obs_dim();
  std::vector<float> obs(static_cast<std::size_t>(N * D)), rew(N);
  std::vector<std::uint8_t> term(N), trunc(N), active(N, 1);
  std::vector<std::int32_t> actions(N);
  std::vector<float> ret(N, 0.f);
  std::vector<std::int64_t> length(N, 0);
  std::vector<float> tok_obs;
  std::vector<std::int64_t> tok_act, tok_traj;
  env_->reset(stream_seed(static_cast<std::uint64_t>(o_.seed), iteration_), obs.data());
  std::int64_t left = N;
  for (std::int64_t t = 0; left > 0; ++t) {
    SL_CHECK(t < 100000, UsageError, "grpo: an episode of ", o_.env, " ran 100000 steps without ending");
    act(obs.data(), N, actions.data(), /*greedy=*/false);
    for (std::int64_t i = 0; i < N; ++i)
      if (active[i]) {
        tok_obs.insert(tok_obs.end(), obs.begin() + i * D, obs.begin() + (i + 1) * D);
        tok_act.push_back(actions[i]);
        tok_traj.push_back(i);
      }
    env_->step(actions.data(), obs.data(), rew.data(), term.data(), trunc.data());
    for (std::int64_t i = 0; i < N; ++i) {
      if (!active[i]) continue;
      ret[i] += rew[i];
      ++length[i];
      if (term[i] || trunc[i]) {
        active[i] = 0;
        --left;
      }
    }
  }
  GrpoBatch b;
  b.rewards = torch::from_blob(ret.data(), {B, G}, torch::kFloat).clone();
  b.strata = torch::from_blob(length.data(), {B, G}, torch::kLong).clone() - 1;
  if (o_.advantage == "grpo")
    b.advantages = group_relative_advantages(b.rewards, o_.adv_eps);
  else if (o_.advantage == "san")
    b.advantages = stratified_advantages(b.rewards, b.strata, o_.adv_eps);
  else
    b.advantages = blended_advantages(b.rewards, b.strata, o_.alpha, o_.adv_eps);
  const auto T = static_cast<std::int64_t>(tok_act.size());
  b.obs = torch::from_blob(tok_obs.data(), {T, D}, torch::kFloat).clone();
  b.actions = torch::from_blob(tok_act.data(), {T}, torch::kLong).clone();
  b.trajectory = torch::from_blob(tok_traj.data(), {T}, torch::kLong).clone();
  {
    torch::NoGradGuard ng;
    b.old_logp = torch::log_softmax(policy_->forward(b.obs.to(device_)), 1)
                     .gather(1, b.actions.to(device_).unsqueeze(1))
                     .squeeze(1);
  }
  ++iteration_;
  episodes_ += N;
  return b;
}

GrpoStats Grpo::train(std::int64_t iterations, const std::function<bool(const GrpoStats&)>& on_iteration) {
  SL_CHECK(iterations >= 1, ConfigError, "grpo: iterations must be >= 1, got ", iterations);
  GrpoStats stats;
  for (std::int64_t it = 0; it < iterations; ++it) {
    const auto b = collect();
    stats = GrpoStats{};
    stats.iteration = iteration_;
    stats.episodes = episodes_;
    stats.mean_reward = b.rewards.mean().item<double>();
    stats.mean_strata = b.strata.to(torch::kDouble).mean().item<double>();
    stats.cross_stratum_share = cross_stratum_share(b.rewards, b.strata);
    stats.adv_sq = b.advantages.pow(2).mean().item<double>();
    const auto x = b.obs.to(device_), a = b.actions.to(device_).unsqueeze(1);
    const auto adv = b.advantages.reshape({-1}).to(device_).index_select(0, b.trajectory.to(device_));
    torch::Tensor ref_lp = b.old_logp;
    if (o_.kl_coef > 0) {
      torch::NoGradGuard ng;
      ref_lp = torch::log_softmax(ref_->forward(x), 1).gather(1, a).squeeze(1);
    }
    for (std::int64_t e = 0; e < o_.epochs; ++e) {
      const auto logp = torch::log_softmax(policy_->forward(x), 1).gather(1, a).squeeze(1);
      const auto loss = grpo_loss(logp, b.old_logp, ref_lp, adv, o_.clip, o_.kl_coef);
      opt_->zero_grad();
      loss.backward();
      const double max_norm = o_.max_grad_norm > 0 ? o_.max_grad_norm : std::numeric_limits<double>::infinity();
      const double gn = torch::nn::utils::clip_grad_norm_(policy_->parameters(), max_norm);
      if (e == 0) stats.grad_norm = gn;
      const double lv = loss.item<double>();
      if (!std::isfinite(gn) || !std::isfinite(lv)) {
        ++stats.nonfinite;
        opt_->zero_grad();
        continue;
      }
      opt_->step();
      stats.loss = lv;
      torch::NoGradGuard ng;
      const auto lr = logp.detach() - b.old_logp;
      stats.approx_kl = (lr.exp() - 1 - lr).mean().item<double>();
    }
    if (on_iteration && !on_iteration(stats)) break;
  }
  return stats;
}

}  // namespace stablelearn::rl
