// Private to the repro entries rlvr-geometry and relex (seed papers 16 and 32): the shared task —
// a transformer answering a + b mod p with one token (rl/token_grpo.h), pre-trained by SFT to a
// moderate accuracy before the RL (GRPO, verifiable reward) and SFT phases each entry compares.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "entries.h"
#include "stablelearn/rl/token_grpo.h"

namespace stablelearn::experiments::repro {

/// The options both entries share: p, d_model, layers, batch, group, lr (documented as `lr_doc`),
/// kl_coef, base_accuracy, eval_every, max_steps (documented as `max_steps_doc`).
std::vector<ReproOption> token_task_options(const std::string& lr_doc, const std::string& max_steps_doc);

/// The trainer options of seed k from the entry's options p, d_model, layers, batch, group, lr and
/// kl_coef (4 heads, 2 Adam steps per GRPO batch, clip 0.2); seed ctx.seed + k.
rl::TokenTrainerOptions token_trainer_options(const ReproContext& ctx, std::int64_t k);

/// SFT from the random initialisation until the greedy table accuracy reaches the option
/// base_accuracy (checked every eval_every steps, at most max_steps steps); the weights then are the
/// base of both phases and the reference of GRPO's KL.
struct TokenBase {
  std::unique_ptr<rl::TokenTrainer> trainer;
  rl::TrainUntil pretrain;
  std::vector<torch::Tensor> weights;
};
TokenBase pretrained_token_base(const ReproContext& ctx, std::int64_t k);

/// The setup lines both entries share (task, model, pre-training, GRPO).
nlohmann::json token_task_setup(const ReproContext& ctx);

/// Indices (transformer layout order) of the weight matrices the geometry is measured on: every
/// 2-D weight except the position embedding (4 rows).
std::vector<std::size_t> token_weight_matrices(const rl::TokenTrainer& t);

}  // namespace stablelearn::experiments::repro
