// Advantage estimators (docs/rl.md): generalised advantage estimation (Schulman et al. 2016) for
// PPO, advantage normalisation, and the critic-free group-relative advantages of GRPO (Shao et al.
// 2024, DeepSeekMath) with the stratified normalisation of Stratified GRPO (seed paper 28,
// shared/specs/papers-19-35.md §28). Tensors stay on the device they come on.
#pragma once

#include <torch/types.h>

namespace stablelearn::rl {

/// GAE over a rollout of T steps of N copies, every argument [T, N] (float):
///   δ_t = r_t + γ (1 − terminated_t) V'_t − V_t
///   A_t = δ_t + γ λ (1 − done_t) A_{t+1},    A_T = 0
/// where V'_t is the value of the state that step t reached (for a step that ended by truncation,
/// the final observation's value: the episode is cut, not over, so it is still bootstrapped), and
/// done_t = terminated_t or truncated_t stops the recursion at episode boundaries (with auto-reset
/// the next row belongs to a new episode). The last row bootstraps from V'_{T−1}. Returns A;
/// the value targets are A + V. ShapeError on mismatched shapes, ConfigError for γ, λ outside [0, 1].
torch::Tensor gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& next_values,
                  const torch::Tensor& terminated, const torch::Tensor& done, double gamma, double lambda);

/// (A − mean A) / (std A + eps) over all elements, std with Bessel's correction (n − 1), as PPO
/// implementations do per minibatch. Needs at least 2 elements (ShapeError otherwise).
torch::Tensor normalize_advantages(const torch::Tensor& advantages, double eps = 1e-8);

/// GRPO's group-relative advantages: rewards [B, G] (B prompts, G sampled answers each) →
/// (R_ij − mean_j R_ij) / (std_j R_ij + eps) per row, std the population one (divide by G), so a
/// row has mean 0 and (eps = 0) variance 1; a row of equal rewards gets 0. scale = false returns
/// the mean-centred R − mean only.
torch::Tensor group_relative_advantages(const torch::Tensor& rewards, double eps = 1e-6, bool scale = true);

/// Stratified advantage normalisation (SAN, Stratified GRPO): rewards and strata [B, G] (strata:
/// an integer label per trajectory, e.g. its number of tool calls); within each row the trajectories
/// of one stratum k are normalised among themselves: (R_i − mean_k) / (std_k + eps) (population
/// std; scale = false: R_i − mean_k). A stratum with one trajectory gets 0. The global advantage
/// R_i − mean = (R_i − mean_k) + (mean_k − mean) carries the cross-stratum term mean_k − mean; SAN
/// removes it, and Var[R − mean] − Var[R − mean_k] = (1/G) Σ_k n_k (mean_k − mean)² ≥ 0.
torch::Tensor stratified_advantages(const torch::Tensor& rewards, const torch::Tensor& strata, double eps = 1e-6,
                                    bool scale = true);

/// The blend α · SAN + (1 − α) · GRPO of Stratified GRPO (α in [0, 1]; ConfigError otherwise).
torch::Tensor blended_advantages(const torch::Tensor& rewards, const torch::Tensor& strata, double alpha,
                                 double eps = 1e-6);

}  // namespace stablelearn::rl
