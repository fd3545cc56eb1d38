// A token-level policy trained on a verifiable task: RLVR with GRPO against plain SFT (seed papers
// 16, "The Path Not Taken", and 32, RELEX; shared/specs/papers-01-18.md §16, papers-19-35.md §32;
// docs/rl.md). The smallest faithful stand-in for an LLM fine-tuned on maths answers:
//
//   task    modular addition (data/sequences.h modular_addition_table): the prompt [a, +, b, =],
//           one answer token y = (a + b) mod p read from the logits at "=" (position 3);
//   policy  the project's causal transformer (models/transformer.h) with outputs = p, so π(·|a, b)
//           = softmax of the answer logits z ∈ R^p;
//   SFT     one Adam step on the cross-entropy −log π(y|a, b) of `batch` prompts drawn uniformly
//           (with replacement) from the p² table;
//   GRPO    `batch` prompts, `group` answers ŷ_bg sampled from π_old per prompt, the verifiable
//           reward R_bg = 1[ŷ_bg = y_b], group-relative advantages A = (R − mean_g R) / (std_g R + ε)
//           (rl/advantages.h; a group of equal rewards gets 0), then `epochs` Adam steps on
//           token_grpo_loss (rl/grpo.h grpo_loss over the B·G answer tokens: the clipped surrogate
//           with r = π/π_old and β · k3 KL to the reference policy, `set_reference()`).
//
// Accuracy is the greedy accuracy over the whole p² table. train_until() runs one kind of step
// until that accuracy reaches a target (checked every `eval_every` steps): the matched-gain
// stopping of paper 16 ("stop both at the same accuracy gain").
//
// Determinism: the transformer is initialised after torch::manual_seed(seed); prompts and sampled
// answers come from the trainer's own splitmix64 stream (rl/env.h stream_seed(seed, −3)), so the
// same options give the same run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/transformer.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace stablelearn::rl {

struct TokenTrainerOptions {
  std::int64_t p = 23;           ///< modulus; vocabulary p + 2 ("+", "="), p answers
  std::int64_t d_model = 64;     ///< transformer width
  std::int64_t heads = 4;
  std::int64_t layers = 1;       ///< standard pre-LayerNorm blocks (attention + MLP 4d)
  std::int64_t batch = 64;       ///< prompts per step, B
  std::int64_t group = 8;        ///< sampled answers per prompt, G (GRPO)
  std::int64_t epochs = 1;       ///< Adam steps per GRPO batch
  double lr = 1e-3;              ///< Adam learning rate (SFT and GRPO)
  double clip = 0.2;             ///< ε of the clipped surrogate
  double kl_coef = 0.02;         ///< β of the k3 KL to the reference policy (0 = none)
  double adv_eps = 1e-6;         ///< ε of the group normalisation
  std::int64_t seed = 0;
  void fields(options::Visitor& v);
};

/// R_bg = 1[answers_bg = targets_b] as float: answers [B, G], targets [B] (int64). ShapeError otherwise.
torch::Tensor verifiable_reward(const torch::Tensor& answers, const torch::Tensor& targets);

/// GRPO's loss over answer tokens: logits [B, A] (with gradient), answers [B, G] (int64), old_logp,
/// ref_logp and advantages [B, G]; log π(answers) gathered from log_softmax(logits) and passed to
/// grpo_loss (rl/grpo.h: mean over the B·G tokens).
torch::Tensor token_grpo_loss(const torch::Tensor& logits, const torch::Tensor& answers, const torch::Tensor& old_logp,
                              const torch::Tensor& ref_logp, const torch::Tensor& advantages, double clip, double kl_coef);

struct TokenGrpoStats {
  double mean_reward = 0;   ///< share of right sampled answers in the batch
  double mixed_groups = 0;  ///< share of groups with unequal rewards (a non-zero advantage)
  double loss = 0;          ///< the last epoch's loss
};

/// Result of train_until().
struct TrainUntil {
  std::int64_t steps = 0;       ///< steps taken
  double accuracy = 0;          ///< accuracy at the stop
  bool reached = false;         ///< accuracy >= target
  std::vector<double> trace;    ///< the accuracy at every check (steps eval_every, 2 eval_every, ..., and max_steps)
};

class TokenTrainer {
 public:
  /// ConfigError naming the option for invalid options.
  explicit TokenTrainer(TokenTrainerOptions options, torch::Device device = torch::kCPU);
  ~TokenTrainer();
  /// One SFT step; returns the batch's cross-entropy.
  double sft_step();
  /// One GRPO step (collect B·G answers, `epochs` updates).
  TokenGrpoStats grpo_step();
  /// Greedy accuracy over the p² table, of the model's weights or of `weights` (transformer layout).
  double accuracy() const;
  double accuracy(const std::vector<torch::Tensor>& weights) const;
  /// Runs sft_step (`grpo` false) or grpo_step until accuracy() >= target, checked after every
  /// `eval_every` steps, or `max_steps` steps (ConfigError unless eval_every >= 1, max_steps >= 0).
  /// on_step(step) runs after every step.
  TrainUntil train_until(bool grpo, double target, std::int64_t eval_every, std::int64_t max_steps,
                         const std::function<void(std::int64_t)>& on_step = {});
  /// The reference policy of the KL term := the current weights (the trainer starts with its
  /// initial weights as reference).
  void set_reference();
  /// A fresh Adam state (e.g. after pre-training, before a fine-tuning phase), learning rate `lr`
  /// (0 = options().lr).
  void reset_optimizer(double lr = 0);
  /// Detached copies of the weights (transformer_layout order).
  std::vector<torch::Tensor> snapshot() const;
  /// Copies `weights` into the model.
  void load(const std::vector<torch::Tensor>& weights);
  /// The sampled answers [B, G] and prompts' rows [B] of the last GRPO step (for tests).
  const torch::Tensor& last_answers() const { return last_answers_; }
  const torch::Tensor& last_rows() const { return last_rows_; }
  const models::Transformer& model() const { return model_; }
  const TokenTrainerOptions& options() const { return o_; }

 private:
  torch::Tensor draw_rows();  // B row ids of the table from the stream
  torch::Tensor answer_logits(const torch::Tensor& tokens) const;

  TokenTrainerOptions o_;
  torch::Device device_;
  models::Transformer model_{nullptr};
  std::vector<torch::Tensor> ref_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  torch::Tensor tokens_, answers_;  // the p² table: [p², 4] and [p²]
  torch::Tensor last_answers_, last_rows_;
  std::uint64_t rng_state_;
};

}  // namespace stablelearn::rl
