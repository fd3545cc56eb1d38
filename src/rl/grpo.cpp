#include "stablelearn/rl/grpo.h"

#include "stablelearn/core/error.h"
#include "stablelearn/rl/ppo.h"

namespace stablelearn::rl {

torch::Tensor kl_k3(const torch::Tensor& logp, const torch::Tensor& ref_logp) {
  SL_CHECK(logp.sizes() == ref_logp.sizes(), ShapeError, "kl_k3: logp ", logp.sizes(), " and ref_logp ",
           ref_logp.sizes(), " differ");
  const auto d = ref_logp - logp;
  return d.exp() - d - 1;
}

torch::Tensor grpo_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, double clip, double kl_coef) {
  SL_CHECK(logp.sizes() == old_logp.sizes() && logp.sizes() == advantages.sizes(), ShapeError, "grpo_loss: logp ",
           logp.sizes(), ", old_logp ", old_logp.sizes(), " and advantages ", advantages.sizes(), " differ");
  SL_CHECK(kl_coef >= 0, ConfigError, "grpo_loss: kl_coef must be >= 0, got ", kl_coef);
  auto loss = clipped_surrogate_loss(logp - old_logp, advantages, clip);
  if (kl_coef > 0) loss = loss + kl_coef * kl_k3(logp, ref_logp).mean();
  return loss;
}

}  // namespace stablelearn::rl
