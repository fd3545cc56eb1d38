// The GRPO objective (Shao et al. 2024, DeepSeekMath; seed papers 16, 28, 32): no critic; the
// advantages are group-relative (rl/advantages.h: group_relative_advantages, or the stratified /
// blended ones of Stratified GRPO), used in PPO's clipped surrogate, with a KL penalty to a frozen
// reference policy estimated by the non-negative, unbiased "k3" estimator:
//   KL_k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1
//   L     = mean[ max(−A r, −A clip(r, 1 − ε, 1 + ε)) ] + β · mean[ KL_k3 ],  r = π / π_old
// over all sampled tokens (here: one answer per sample; for sequences, flatten the tokens and
// repeat each sample's advantage over its tokens).
#pragma once

#include <torch/types.h>

namespace stablelearn::rl {

/// Elementwise k3 estimate of KL(π ‖ π_ref) from log-probabilities of the sampled actions.
/// Its gradient w.r.t. log π is 1 − exp(log π_ref − log π) (zero where π = π_ref).
torch::Tensor kl_k3(const torch::Tensor& logp, const torch::Tensor& ref_logp);

/// L above (a scalar). logp (with gradient), old_logp, ref_logp and advantages of the same shape;
/// clip > 0, kl_coef >= 0 (ConfigError otherwise; kl_coef 0 skips the reference).
torch::Tensor grpo_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                        const torch::Tensor& advantages, double clip, double kl_coef);

}  // namespace stablelearn::rl
