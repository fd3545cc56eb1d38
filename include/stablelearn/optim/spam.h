// Spike-aware Adam optimisers (seed paper 22, shared/specs/papers-19-35.md §22; docs/optim.md):
// Stable-SPAM and its baseline SPAM, as torch::optim::Optimizer so they drop into any loop, with
// their state in the optimizer's archive (torch::save / torch::load).
//
// Stable-SPAM, per parameter tensor g at step t (counters per tensor):
//   1. AdaClip:  m_max ← γ3 m_max + (1−γ3) max|g|,  m̂_max = m_max / (1 − γ3^t);
//                every g_i with |g_i| > m̂_max becomes g_i · m̂_max / max|g| (sign kept, the largest
//                element becomes exactly ±m̂_max).
//   2. AdaGN:    n = ‖g‖ (after clipping); m_n ← γ1 s m_n + (1 − γ1 s) n, v_n ← γ2 v_n + (1 − γ2) n²,
//                bias-corrected with (γ1 s)^t and γ2^t; g ← g / n · m̂_n / (√v̂_n + ε)  (n > 0).
//   3. MoRet:    every `update_proj_gap` optimizer steps (counted over the whole optimizer), Adam's
//                m and v are reset to 0 and the tensor's step restarts at 1.
//   4. AdamW on g with β1 s: decoupled weight decay p ← p (1 − lr·wd) first, then
//                p ← p − lr / (1 − (β1 s)^t) · m / (√v / √(1 − β2^t) + ε).
// s = 1, or with total_steps > 0 the cosine factor eta_min + (1 − eta_min)(1 + cos(π k/(T+1)))/2
// at optimizer step k (the reference's CosineAnnealingLR over T + 1 steps).
//
// One deliberate difference from the reference code (galore_torch/stablespam.py): at a MoRet step
// the code swaps zero tensors into the state *after* it has taken the local references it updates,
// so the reset step itself still updates the old moments (with the step counter already reset to
// 1: a bias correction of 1/(1 − β1) applied to a full-size m). Here the moments are zeroed before
// the step's update, as the paper describes (the update is then the sign-like m̂/√v̂ = g/(|g|+ε)).
//
// SPAM (galore_torch/SPAM.py without its GaLore density masks):
//   * from optimizer step `grad_accu_steps` on, g_i with g_i² > θ v_i (v Adam's second moment before
//     this step's update) becomes sign(g_i) √(θ v_i)  (θ = `threshold`), except within the first
//     `grad_accu_steps` steps after a momentum reset;
//   * every `update_proj_gap` steps (0 = never; the reference sets it only for GaLore groups) m and v
//     are reset to 0 (the step counter is not), and the update is scaled by a cosine warm-up factor
//     1 − 0.99 (1 + cos(π j / (W + 1)))/2 at j = 0 … W − 1 steps after the reset (W =
//     `warmup_steps`), 1 otherwise;
//   * Adam with bias correction, then decoupled weight decay p ← p − lr·wd·p.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

namespace stablelearn::optim {

struct StableSpamOptions : public torch::optim::OptimizerCloneableOptions<StableSpamOptions> {
  StableSpamOptions(double lr = 1e-3) : lr_(lr) {}  // NOLINT(google-explicit-constructor): as torch::optim
  TORCH_ARG(double, lr) = 1e-3;
  typedef std::tuple<double, double> betas_t;
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0;
  /// AdaGN's first-moment rate γ1 (the reference's 4-bit default; -1 = β1).
  TORCH_ARG(double, gamma1) = 0.7;
  /// AdaGN's second-moment rate γ2.
  TORCH_ARG(double, gamma2) = 0.9;
  /// AdaClip's rate γ3 (θ in the paper).
  TORCH_ARG(double, gamma3) = 0.999;
  /// MoRet period ΔT in optimizer steps (0 = never).
  TORCH_ARG(std::int64_t, update_proj_gap) = 1000;
  /// Total steps T of the cosine factor on β1 and γ1 (0 = no factor).
  TORCH_ARG(std::int64_t, total_steps) = 0;
  /// Floor of that factor.
  TORCH_ARG(double, eta_min) = 0.5;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct StableSpamParamState : public torch::optim::OptimizerCloneableParamState<StableSpamParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);
  TORCH_ARG(double, m_max) = 0;   ///< AdaClip's running max|g|
  TORCH_ARG(double, m_norm) = 0;  ///< AdaGN's running ‖g‖
  TORCH_ARG(double, v_norm) = 0;  ///< AdaGN's running ‖g‖²

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class StableSpam : public torch::optim::Optimizer {
 public:
  explicit StableSpam(std::vector<torch::optim::OptimizerParamGroup> groups, StableSpamOptions defaults = {});
  explicit StableSpam(std::vector<torch::Tensor> params, StableSpamOptions defaults = {})
      : StableSpam({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  /// Optimizer steps taken (MoRet and the cosine factor count these).
  std::int64_t steps() const { return steps_; }

 private:
  std::int64_t steps_ = 0;
};

struct SpamOptions : public torch::optim::OptimizerCloneableOptions<SpamOptions> {
  SpamOptions(double lr = 1e-3) : lr_(lr) {}  // NOLINT(google-explicit-constructor)
  TORCH_ARG(double, lr) = 1e-3;
  typedef std::tuple<double, double> betas_t;
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999);
  TORCH_ARG(double, eps) = 1e-6;
  TORCH_ARG(double, weight_decay) = 0;
  /// Spike threshold θ on g² / v (0 = no clipping).
  TORCH_ARG(double, threshold) = 2000;
  /// Steps before clipping starts (and after each reset).
  TORCH_ARG(std::int64_t, grad_accu_steps) = 20;
  /// Momentum-reset period ΔT (0 = never).
  TORCH_ARG(std::int64_t, update_proj_gap) = 0;
  /// Cosine warm-up length W after a reset.
  TORCH_ARG(std::int64_t, warmup_steps) = 150;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct SpamParamState : public torch::optim::OptimizerCloneableParamState<SpamParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class Spam : public torch::optim::Optimizer {
 public:
  explicit Spam(std::vector<torch::optim::OptimizerParamGroup> groups, SpamOptions defaults = {});
  explicit Spam(std::vector<torch::Tensor> params, SpamOptions defaults = {})
      : Spam({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  std::int64_t steps() const { return steps_; }
  /// Steps since the last momentum reset (the warm-up position).
  std::int64_t since_reset() const { return since_reset_; }

 private:
  std::int64_t steps_ = 0;
  std::int64_t since_reset_ = -1;  ///< -1: no reset yet (factor 1)
};

// The mechanisms on their own (used by the optimisers; tested against hand values).

/// AdaClip on g in place with the running max m_max (updated) at the tensor's step t ≥ 1.
void ada_clip_(torch::Tensor& g, double& m_max, std::int64_t t, double gamma3);
/// AdaGN on g in place (returns the rescaled g; g is replaced, not written into).
torch::Tensor ada_gn(const torch::Tensor& g, double& m_norm, double& v_norm, std::int64_t t, double gamma1, double gamma2,
                     double eps);
/// SPAM's spike clip in place: g_i² > θ v_i → sign(g_i) √(θ v_i).
void spam_clip_(torch::Tensor& g, const torch::Tensor& v, double threshold);
/// The cosine factor of Stable-SPAM at optimizer step k of T (eta_min + (1−eta_min)(1+cos(πk/(T+1)))/2).
double stable_spam_cosine(std::int64_t k, std::int64_t total, double eta_min);

}  // namespace stablelearn::optim
