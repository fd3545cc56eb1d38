// Machine unlearning of a classifier (issue 21 item 4; shared/specs/papers-01-18.md §2;
// docs/unlearn.md): gradient ascent (GA), negative preference optimisation (NPO) and StableUN
// (Wu, Liu, Gao, Wang, Ding, "Beyond Sharp Minima: Robust LLM Unlearning via Feedback-Guided
// Multi-Point Optimization", arXiv 2509.20230), with a relearning attack and a flatness probe.
//
// Forgetting losses on a forget batch (x, y) with log-likelihoods ℓ_i = log π_θ(y_i | x_i):
//   GA   L_f = −CE = mean_i ℓ_i
//   NPO  L_f = −(2/β) mean_i log σ(−β (ℓ_i − ℓ_ref,i)),   ℓ_ref = the original model's ℓ
//        (∂L_f/∂ℓ_i = (2/N) σ(β (ℓ_i − ℓ_ref,i)): at θ = θ_ref exactly GA's gradient, then it fades)
// Retain loss L_r = CE on a retain batch.
//
// Baselines (GA+GD, NPO+GD): θ ← θ − η (λ_f ∇L_f(θ) + λ_r ∇L_r(θ)); 2 forward/backward passes.
// One StableUN step (the paper's Eqs. 10–13 as the spec reads them; 3 forward/backward passes):
//   1. g = ∇L_f(θ), ε = ρ g / ‖g‖, forgetting feedback g_F = ∇L_f(θ + ε)  (sharpness-aware point)
//   2. temporary parameters θ' = θ − α g_F, remembering feedback g_R = ∇L_r(θ')  (look-ahead point)
//   3. if ⟨g_F, g_R⟩ < 0: g_F ← g_F − ⟨g_F, g_R⟩ / (‖g_R‖² + δ) · g_R  (projection onto g_R's normal plane)
//   4. θ ← θ − η (λ_f g_F + λ_r g_R)
// The forgetting loss of StableUN is NPO's (the spec's StableUN(NPO)) or GA's (forget_loss = "ga").
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::unlearn {

/// Logits [N, K] of inputs x under weights w (a graph to w).
using LogitsFn = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& w)>;
/// A scalar loss as a function of the weights (a graph to w).
using WeightLoss = std::function<torch::Tensor(const std::vector<torch::Tensor>& w)>;

/// log π(y_i | x_i) = log_softmax(logits)_{i, y_i}, [N].
torch::Tensor label_log_likelihood(const torch::Tensor& logits, const torch::Tensor& labels);
/// GA's forgetting loss, mean_i log π(y_i | x_i) (= −CE).
torch::Tensor ga_loss(const torch::Tensor& logits, const torch::Tensor& labels);
/// NPO's forgetting loss with the reference log-likelihoods ref [N] (detached) and β > 0.
torch::Tensor npo_loss(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& ref, double beta);

/// ∇ loss(w) at `w` (fresh leaves; one forward and one backward pass); `value` gets the loss.
std::vector<torch::Tensor> gradient_at(const WeightLoss& loss, const std::vector<torch::Tensor>& w, double* value = nullptr);
/// Σ ⟨a_i, b_i⟩ and ‖a‖ over a list of tensors (float64 accumulation).
double dot(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b);
double norm(const std::vector<torch::Tensor>& a);
/// The sharpness-aware point w + ρ g / ‖g‖ (w itself when ‖g‖ = 0).
std::vector<torch::Tensor> perturbed_point(const std::vector<torch::Tensor>& w, const std::vector<torch::Tensor>& g, double rho);
/// PCGrad-style projection: g_f − ⟨g_f, g_r⟩ / (‖g_r‖² + δ) g_r when ⟨g_f, g_r⟩ < 0, else g_f
/// unchanged; `projected` (optional) says which.
std::vector<torch::Tensor> project_conflicting(const std::vector<torch::Tensor>& g_f, const std::vector<torch::Tensor>& g_r,
                                               double delta, bool* projected = nullptr);

/// How to unlearn (ConfigError naming prefix + key from validate()).
struct UnlearnOptions {
  std::string method = "stableun";  ///< ga | npo | stableun
  std::string forget_loss = "npo";  ///< StableUN's forgetting loss: ga | npo
  std::int64_t steps = 200;         ///< update steps
  std::int64_t batch = 128;         ///< forget and retain samples per step (each)
  double lr = 0.01;                 ///< η
  double beta = 0.1;                ///< NPO's β > 0
  double rho = 0.05;                ///< StableUN's perturbation radius ρ >= 0
  double alpha = 0;                 ///< StableUN's look-ahead step α >= 0; 0 = η
  double lambda_f = 1;              ///< forgetting weight λ_f >= 0
  double lambda_r = 1;              ///< retaining weight λ_r >= 0
  double delta = 1e-12;             ///< δ > 0 in the projection's denominator
  std::uint64_t seed = 0;           ///< the batches drawn
  /// Early stop for matched forgetting: every `check_every` steps the accuracy on (up to 1024 of)
  /// the forget samples is measured (forwards only) and unlearning stops once it is <= this
  /// value; < 0 (the default) never stops early.
  double stop_forget_acc = -1;
  std::int64_t check_every = 5;     ///< >= 1
  void validate(const std::string& prefix = "") const;
};

/// What one step did.
struct StepStats {
  double forget_loss = 0;  ///< L_f at θ
  double retain_loss = 0;  ///< L_r at θ (baselines) or at θ' (StableUN)
  double inner = 0;        ///< StableUN: ⟨g_F, g_R⟩ before projection; baselines: ⟨∇L_f, ∇L_r⟩
  bool projected = false;
  std::int64_t passes = 0;  ///< forward/backward passes (gradient evaluations) of the step
};

/// One GA+GD / NPO+GD step on w (updated in place, no graph): θ ← θ − η (λ_f ∇L_f + λ_r ∇L_r).
StepStats descent_step(std::vector<torch::Tensor>& w, const WeightLoss& forget, const WeightLoss& retain, const UnlearnOptions& o);
/// One StableUN step on w (updated in place; see the file comment).
StepStats stableun_step(std::vector<torch::Tensor>& w, const WeightLoss& forget, const WeightLoss& retain, const UnlearnOptions& o);

/// Forget and retain sets of a classifier's training data.
struct UnlearnData {
  torch::Tensor x_forget, y_forget, x_retain, y_retain;
};

/// Per-step record of unlearn().
struct UnlearnTrace {
  std::vector<double> forget_loss, retain_loss;
  std::int64_t projections = 0;  ///< StableUN steps whose gradients conflicted
  std::int64_t passes = 0;       ///< forward/backward passes in all (not counting the reference's forward)
  std::int64_t steps = 0;        ///< steps taken (< options.steps after an early stop)
  bool stopped_early = false;
  /// A loss was not finite (a runaway ascent): unlearning stopped and w holds the weights at the
  /// start of the last step whose losses were finite (`steps` counts the steps before that one).
  bool diverged = false;
};

/// Unlearns the forget set from the classifier f with weights w (updated in place) by
/// o.method, each step on o.batch forget and o.batch retain samples drawn with o.seed. NPO's
/// reference is w as given (its log-likelihoods on the whole forget set, computed once).
/// ShapeError for mismatched data; ConfigError for bad options; a loss that is not finite stops it
/// (UnlearnTrace::diverged); `step_done` (optional) after each finite step.
UnlearnTrace unlearn(std::vector<torch::Tensor>& w, const LogitsFn& f, const UnlearnData& d, const UnlearnOptions& o,
                     const std::function<void(std::int64_t step, const StepStats&)>& step_done = {});

/// Accuracy of f under w on (x, y), in batches of 1024, without a graph.
double accuracy(const LogitsFn& f, const std::vector<torch::Tensor>& w, const torch::Tensor& x, const torch::Tensor& y);

/// The relearning attack: Adam (lr) fine-tuning of a copy of w with CE on (x_attack, y_attack),
/// full batch, for `steps` steps; the accuracy on (x_eval, y_eval) before the attack and after each step.
struct RelearnOptions {
  std::int64_t steps = 50;
  double lr = 1e-3;
  void validate(const std::string& prefix = "") const;
};
struct RelearnCurve {
  std::vector<double> accuracy;  ///< [steps + 1]: step 0 = before the attack
  double auc = 0;                ///< area under accuracy(step) by the trapezoid rule, divided by steps (in [0, 1])
  std::int64_t steps_to_half = -1;  ///< the first step with accuracy >= 0.5 (−1: never)
};
RelearnCurve relearn_attack(const std::vector<torch::Tensor>& w, const LogitsFn& f, const torch::Tensor& x_attack,
                            const torch::Tensor& y_attack, const torch::Tensor& x_eval, const torch::Tensor& y_eval,
                            const RelearnOptions& o);

/// The flatness probe: the largest-magnitude Hessian eigenvalue of the cross-entropy of f on (x, y)
/// at w (the forget set's loss, whose sharpness the relearning attack descends), by the existing
/// Lanczos (diagnostics/eigen.h) with `steps` steps, in batches of 1024.
double forget_sharpness(const std::vector<torch::Tensor>& w, const LogitsFn& f, const torch::Tensor& x, const torch::Tensor& y,
                        std::int64_t steps = 20, std::uint64_t seed = 0);

}  // namespace stablelearn::unlearn
