// Model-agnostic importance-weighted quadratic penalties for continual learning, on a plain list of
// parameter tensors (so the LfD baselines and the classification engine share one implementation):
//
//   penalty(θ) = strength · Σ_k Ω_k (θ_k − θ*_k)²        (element-wise; Ω ≥ 0 importance, θ* anchor)
//
// * SynapticIntelligence (Zenke, Poole & Ganguli, "Continual Learning Through Synaptic
//   Intelligence", ICML 2017, eqs. 3–5): during task μ the path integral of the loss decrease is
//   accumulated per parameter after every optimiser step as ω_k += −g_k · Δθ_k (g = gradient used for
//   the step, Δθ = the step's parameter change); ω is reset at the start of every task. At the end
//   of task μ: Ω_k += ω_k / ((θ_k(t^μ) − θ_k(t^{μ−1}))² + ξ) with θ(t^{μ−1}) the parameters at the
//   start of the task, and θ* = θ(t^μ). strength = c.
//   (The CLfD reference never resets ω between tasks, shared/specs/clfd-snode.md §8.4; here ω is
//   reset as in the paper.)
// * MemoryAwareSynapses (Aljundi et al., "Memory Aware Synapses: Learning what (not) to forget",
//   ECCV 2018, eqs. 3–4, the global ℓ2 version): after a task, Ω_k += (1/N) Σ_n |∂‖F(x_n)‖²/∂θ_k|
//   over N samples x_n of that task (F = the network's output; one backward pass per sample, so the
//   absolute values are taken per sample), accumulated over all tasks including the first, and
//   θ* = θ at the task's end. strength = λ.
//   (The CLfD reference skips task 0, never zeroes gradients between samples and double-counts;
//   shared/specs/clfd-snode.md §8.3. None of that is reproduced.)
//
// Contract: the parameter list passed to every call has the same length, order and shapes as the
// one given to the first call. Importances and anchors are detached copies (float64 is kept when
// the parameters are float64). penalty() is differentiable w.r.t. the parameters and is an
// undefined tensor before the first end_task() (nothing to protect yet).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

namespace stablelearn::continual {

/// Common state: importance Ω and anchor θ* per parameter tensor, penalty strength·ΣΩ(θ−θ*)².
class QuadraticAnchorPenalty {
 public:
  explicit QuadraticAnchorPenalty(double strength) : strength_(strength) {}
  /// strength · Σ_k Ω_k (θ_k − θ*_k)²; undefined before any anchor exists.
  torch::Tensor penalty(const std::vector<torch::Tensor>& params) const;
  bool has_anchor() const { return !anchor_.empty(); }
  const std::vector<torch::Tensor>& importance() const { return omega_; }
  const std::vector<torch::Tensor>& anchor() const { return anchor_; }
  double strength() const { return strength_; }
  /// Replaces the state (checkpoint restore); both lists as returned by importance()/anchor().
  void set_state(std::vector<torch::Tensor> importance, std::vector<torch::Tensor> anchor);

 protected:
  void check_params(const std::vector<torch::Tensor>& params, const char* who) const;
  void ensure_importance(const std::vector<torch::Tensor>& params);
  void set_anchor(const std::vector<torch::Tensor>& params);

  double strength_;
  std::vector<torch::Tensor> omega_, anchor_;
};

/// Synaptic Intelligence (see the file comment). Usage per task: begin_task(θ); after every
/// optimiser step after_step(θ, g) with g the gradient that step used; end_task(θ) with the
/// parameters the next task starts from; the loss of later tasks adds penalty(θ).
class SynapticIntelligence : public QuadraticAnchorPenalty {
 public:
  /// c = penalty strength (si_c, 0.3 in the CLfD commands), xi = damping ξ (si_epsilon, 0.3 there;
  /// Zenke et al. used 1e-3 with c ∈ [0.01, 0.1] on MNIST). ConfigError when c < 0 or xi <= 0.
  SynapticIntelligence(double c, double xi);
  /// Resets ω to 0 and remembers θ(t^{μ−1}) and the current θ for the next step's Δθ.
  void begin_task(const std::vector<torch::Tensor>& params);
  /// ω += −g · (θ − θ_previous); θ_previous = θ. Call after the optimiser changed θ.
  void after_step(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads);
  /// Ω += ω / ((θ − θ_task_start)² + ξ); θ* = θ.
  void end_task(const std::vector<torch::Tensor>& params);
  /// The running path integral ω of the current task.
  const std::vector<torch::Tensor>& path_integral() const { return small_omega_; }
  double xi() const { return xi_; }

 private:
  double xi_;
  std::vector<torch::Tensor> small_omega_, previous_, task_start_;
};

/// Memory Aware Synapses (see the file comment). Usage per task: train with penalty(θ) added to
/// the loss; at the task's end accumulate_importance(θ, N, output) with output(n) = F(x_n), then
/// end_task(θ).
class MemoryAwareSynapses : public QuadraticAnchorPenalty {
 public:
  /// lambda = penalty strength (mas_lambda, 0.1 in the CLfD commands). ConfigError when < 0.
  explicit MemoryAwareSynapses(double lambda);
  /// Ω += (1/N) Σ_{n<N} |∂‖output(n)‖²/∂θ| (‖·‖² = sum of squares of all output elements).
  /// output(n) must depend differentiably on `params`; parameters it does not reach get 0.
  void accumulate_importance(const std::vector<torch::Tensor>& params, std::int64_t samples,
                             const std::function<torch::Tensor(std::int64_t)>& output);
  /// θ* = θ.
  void end_task(const std::vector<torch::Tensor>& params);
};

}  // namespace stablelearn::continual
