#include "stablelearn/rl/token_grpo.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/sequences.h"
#include "stablelearn/rl/advantages.h"
#include "stablelearn/rl/env.h"
#include "stablelearn/rl/grpo.h"
#include "policy_net.h"

namespace stablelearn::rl {

void TokenTrainerOptions::fields(options::Visitor& v) {
  v("p", p, "modulus of the addition task (answers 0..p-1)").at_least(2);
  v("d_model", d_model, "transformer width").at_least(1);
  v("heads", heads, "attention heads (must divide d_model)").at_least(1);
  v("layers", layers, "transformer blocks").at_least(1);
  v("batch", batch, "prompts per step").at_least(1);
  v("group", group, "sampled answers per prompt (GRPO)").at_least(2);
  v("epochs", epochs, "Adam steps per GRPO batch").at_least(1);
  v("lr", lr, "Adam learning rate").above(0.0);
  v("clip", clip, "clip range epsilon of the surrogate objective").above(0.0);
  v("kl_coef", kl_coef, "weight of the k3 KL to the reference policy (0 = none)").at_least(0.0);
  v("adv_eps", adv_eps, "epsilon of the group normalisation").at_least(0.0);
  v("seed", seed, "seed of the network, the prompts and the sampling").at_least(0);
}

torch::Tensor verifiable_reward(const torch::Tensor& answers, const torch::Tensor& targets) {
  SL_CHECK(answers.dim() == 2 && targets.dim() == 1 && answers.size(0) == targets.size(0), ShapeError,
           "verifiable_reward: expected answers [B, G] and targets [B], got ", answers.sizes(), " and ", targets.sizes());
  return answers.eq(targets.unsqueeze(1)).to(torch::kFloat);
}

torch::Tensor token_grpo_loss(const torch::Tensor& logits, const torch::Tensor& answers, const torch::Tensor& old_logp,
                              const torch::Tensor& ref_logp, const torch::Tensor& advantages, double clip, double kl_coef) {
  SL_CHECK(logits.dim() == 2 && answers.dim() == 2 && answers.size(0) == logits.size(0), ShapeError,
           "token_grpo_loss: expected logits [B, A] and answers [B, G], got ", logits.sizes(), " and ", answers.sizes());
  const auto logp = torch::log_softmax(logits, 1).gather(1, answers);
  return grpo_loss(logp, old_logp, ref_logp, advantages, clip, kl_coef);
}

TokenTrainer::TokenTrainer(TokenTrainerOptions options, torch::Device device) : o_(std::move(options)), device_(device) {
  options::check(o_, "token_grpo");
  models::TransformerOptions mo;
  mo.vocab = o_.p + 2;
  mo.max_len = 4;
  mo.layers = o_.layers;
  mo.outputs = o_.p;
  mo.block.attention.d_model = o_.d_model;
  mo.block.attention.heads = o_.heads;
  options::check(mo, "token_grpo");
  torch::manual_seed(static_cast<std::uint64_t>(o_.seed));
  model_ = models::Transformer(mo);
  model_->to(device_);
  data::ModularAdditionOptions d;
  d.p = o_.p;
  const auto table = data::modular_addition_table(d);
  tokens_ = table.tokens.to(device_);
  answers_ = table.targets.select(1, 3).contiguous().to(device_);
  ref_ = snapshot();
  reset_optimizer();
  rng_state_ = stream_seed(static_cast<std::uint64_t>(o_.seed), -3);
}

TokenTrainer::~TokenTrainer() = default;

void TokenTrainer::reset_optimizer(double lr) {
  SL_CHECK(lr >= 0, ConfigError, "lr: must be > 0 (or 0 for the options' lr), got ", lr);
  opt_ = std::make_unique<torch::optim::Adam>(model_->parameters(), torch::optim::AdamOptions(lr > 0 ? lr : o_.lr));
}

void TokenTrainer::set_reference() { ref_ = snapshot(); }

std::vector<torch::Tensor> TokenTrainer::snapshot() const {
  std::vector<torch::Tensor> w;
  for (const auto& t : model_->weights()) w.push_back(t.detach().clone());
  return w;
}

void TokenTrainer::load(const std::vector<torch::Tensor>& weights) {
  model_->layout().check(weights, "TokenTrainer::load");
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < weights.size(); ++i) model_->weights()[i].copy_(weights[i]);
}

torch::Tensor TokenTrainer::draw_rows() {
  const auto n = tokens_.size(0);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(o_.batch));
  for (auto& r : rows) r = std::min<std::int64_t>(n - 1, static_cast<std::int64_t>(detail::uniform01(rng_state_) * double(n)));
  return torch::tensor(rows, torch::kLong).to(device_);
}

torch::Tensor TokenTrainer::answer_logits(const torch::Tensor& tokens) const { return model_->forward(tokens).select(1, 3); }

double TokenTrainer::sft_step() {
  const auto rows = draw_rows();
  const auto loss = torch::nn::functional::cross_entropy(answer_logits(tokens_.index_select(0, rows)),
                                                         answers_.index_select(0, rows));
  opt_->zero_grad();
  loss.backward();
  opt_->step();
  return loss.item<double>();
}

TokenGrpoStats TokenTrainer::grpo_step() {
  const auto B = o_.batch, G = o_.group;
  const auto rows = draw_rows();
  const auto tokens = tokens_.index_select(0, rows), y = answers_.index_select(0, rows);
  torch::Tensor answers, old_logp, ref_logp;
  {
    torch::NoGradGuard ng;
    const auto logp = torch::log_softmax(answer_logits(tokens), 1);
    std::vector<std::int32_t> a(static_cast<std::size_t>(B * G));
    detail::sample_actions(logp.exp().repeat_interleave(G, 0), rng_state_, a.data());
    answers = torch::tensor(a, torch::kInt).to(device_, torch::kLong).view({B, G});
    old_logp = logp.gather(1, answers);
    ref_logp = o_.kl_coef > 0
                   ? torch::log_softmax(models::functional::transformer(tokens, ref_, model_->options()).select(1, 3), 1)
                         .gather(1, answers)
                   : old_logp;
  }
  const auto rewards = verifiable_reward(answers, y);
  const auto adv = group_relative_advantages(rewards, o_.adv_eps);
  TokenGrpoStats s;
  s.mean_reward = rewards.mean().item<double>();
  s.mixed_groups = (rewards.amax(1) > rewards.amin(1)).to(torch::kDouble).mean().item<double>();
  for (std::int64_t e = 0; e < o_.epochs; ++e) {
    const auto loss = token_grpo_loss(answer_logits(tokens), answers, old_logp, ref_logp, adv, o_.clip, o_.kl_coef);
    opt_->zero_grad();
    loss.backward();
    opt_->step();
    s.loss = loss.item<double>();
  }
  last_answers_ = answers;
  last_rows_ = rows;
  return s;
}

double TokenTrainer::accuracy() const { return accuracy(model_->weights()); }

double TokenTrainer::accuracy(const std::vector<torch::Tensor>& weights) const {
  torch::NoGradGuard ng;
  const auto logits = models::functional::transformer(tokens_, weights, model_->options()).select(1, 3);
  return logits.argmax(1).eq(answers_).to(torch::kDouble).mean().item<double>();
}

TrainUntil TokenTrainer::train_until(bool grpo, double target, std::int64_t eval_every, std::int64_t max_steps,
                                     const std::function<void(std::int64_t)>& on_step) {
  SL_CHECK(eval_every >= 1, ConfigError, "eval_every: must be >= 1, got ", eval_every);
  SL_CHECK(max_steps >= 0, ConfigError, "max_steps: must be >= 0, got ", max_steps);
  TrainUntil r;
  r.accuracy = accuracy();
  r.reached = r.accuracy >= target;
  while (!r.reached && r.steps < max_steps) {
    if (grpo) grpo_step();
    else sft_step();
    ++r.steps;
    if (on_step) on_step(r.steps);
    if (r.steps % eval_every == 0 || r.steps == max_steps) {
      r.accuracy = accuracy();
      r.trace.push_back(r.accuracy);
      r.reached = r.accuracy >= target;
    }
  }
  return r;
}

}  // namespace stablelearn::rl
