// Building blocks of hypernetwork training with output regularisation (von Oswald et al. 2020,
// "Continual learning with hypernetworks"; shared/specs/clfd-snode.md §3.3–3.4, §3.6).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <torch/types.h>

#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode_discrete.h"

namespace stablelearn::lfd {

/// Adam exactly as torch.optim.Adam (no weight decay, no amsgrad) with its state kept in the open,
/// so that the look-ahead Δθ can read it without changing it.
///   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps)
class Adam {
 public:
  Adam(std::vector<torch::Tensor> params, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  /// One step with gradients `grads` (one per parameter, same shapes). A parameter whose gradient
  /// is undefined is left alone (its state too); the step count advances once for all.
  void step(const std::vector<torch::Tensor>& grads);
  /// step() with the one-pass float32 kernel allowed or not; the tensor chain (allow_fused = false)
  /// is its definition. The kernel runs on x86 with AVX2 and FMA while libtorch dispatches to its
  /// AVX2 or AVX512 kernels, and there it equals the chain bit for bit (tested with 1 and 2
  /// threads); elsewhere (other CPUs, ATEN_CPU_CAPABILITY=default) the chain runs.
  void step_impl(const std::vector<torch::Tensor>& grads, bool allow_fused);
  /// Look-ahead of spec §3.4 (hypercl's adam_step): from the current state and `grads`, without
  /// changing the state, s = step+1, m' = β1 m + (1−β1) g, v' = β2 v + (1−β2) g²,
  /// Δθ = −lr · √(1−β2^s)/(1−β1^s) · m' / (√v' + eps). Returns detached tensors; an undefined
  /// gradient gives an undefined Δθ (a parameter whose look-ahead the caller computes itself).
  std::vector<torch::Tensor> lookahead(const std::vector<torch::Tensor>& grads) const;
  /// lookahead() with the one-pass float32 kernel allowed or not, under the same rule as step_impl
  /// (bit for bit the tensor chain wherever the kernel runs).
  std::vector<torch::Tensor> lookahead_impl(const std::vector<torch::Tensor>& grads, bool allow_fused) const;
  std::int64_t steps() const { return step_; }
  double lr() const { return lr_; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  const std::vector<torch::Tensor>& exp_avg() const { return m_; }
  const std::vector<torch::Tensor>& exp_avg_sq() const { return v_; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  std::vector<torch::Tensor> params_, m_, v_;
  double lr_, beta1_, beta2_, eps_;
  std::int64_t step_ = 0;
};

/// Which past tasks the regulariser visits this iteration: all of {0..i−1} when num_regs <= 0 or
/// num_regs >= i, else num_regs distinct indices drawn uniformly (spec §3.3; R = 1 is "CHN-1").
std::vector<std::int64_t> sample_regularized_tasks(std::int64_t current_task, std::int64_t num_regs,
                                                   torch::Generator& gen);

/// Output regulariser (1/|S|) Σ_{j∈S} ‖target_j − generate(j)‖² (sum over all generated values).
torch::Tensor output_regularizer(const std::vector<torch::Tensor>& targets, const std::vector<std::int64_t>& tasks,
                                 const std::function<torch::Tensor(std::int64_t)>& generate);

/// Adds the gradient of the output regulariser at the look-ahead point to `grads` in place:
///   grads[k] += ∂(scale · regularizer())/∂θ'_k  at  θ' = θ + Δθ   (spec §3.3–3.4),
/// and returns the (unscaled) regulariser value. θ is moved to θ + Δθ by computing θ + Δθ into
/// `delta`'s buffers and swapping storages with θ (no copy of θ), then moved back bit for bit; the
/// gradient is accumulated tensor by tensor into `grads` by autograd. So the regulariser step needs
/// one θ-sized buffer (Δθ) besides θ and its gradient, instead of three (shifted θ, saved θ, ∇Reg).
/// `regularizer` must build its graph from the tensors in `theta` (the hypernetwork's own
/// parameters); `delta` is consumed.
double add_lookahead_regularizer_grad(const std::vector<torch::Tensor>& theta, std::vector<torch::Tensor> delta,
                                      double scale, const std::function<torch::Tensor()>& regularizer,
                                      std::vector<torch::Tensor>& grads);

/// "Best copy" bookkeeping (spec §3.1, §8.13): a candidate is accepted when its loss is <= the best
/// so far (ties go to the later iteration).
struct BestTracker {
  double best = std::numeric_limits<double>::infinity();
  std::int64_t best_iteration = -1;
  /// True when (iteration, loss) becomes the new best.
  bool offer(std::int64_t iteration, double loss) {
    if (!(loss <= best)) return false;
    best = loss;
    best_iteration = iteration;
    return true;
  }
};

using VectorField = std::function<torch::Tensor(const torch::Tensor& t, const torch::Tensor& x)>;
/// A learned Lyapunov function V(t, x): x [B, d] -> [B] (sNODE).
using LyapunovFunction = std::function<torch::Tensor(const torch::Tensor& t, const torch::Tensor& x)>;

/// A learned skill's map on a time grid, x0 [B, d], t [T] -> [B, T, d] (x0 first): the one solver
/// that training, evaluation and the stability check use for a configuration — an ODE solver on
/// the vector field (ode_rollout), or the discrete-time sNODE map Φ_h (model.discrete_step;
/// models/snode_discrete.h). `stats`, where given, receives Φ's counts (ODE solvers leave it alone).
struct GridRollout {
  std::function<torch::Tensor(const torch::Tensor& x0, const torch::Tensor& t, models::functional::SNodeDiscreteStats* stats)> fn;
  torch::Tensor operator()(const torch::Tensor& x0, const torch::Tensor& t,
                           models::functional::SNodeDiscreteStats* stats = nullptr) const {
    return fn(x0, t, stats);
  }
};
/// models::odeint(f, x0, t, options) as a GridRollout.
GridRollout ode_rollout(VectorField f, models::OdeintOptions options = {});

/// sNODE evaluation protocol (spec §3.6): the grid t [T] is cut into windows of `window` samples;
/// each window is integrated with `rollout` (Euler on the field, or Φ) from the last predicted state
/// of the previous window but at the window's own first time (so the step between windows is
/// skipped and that state repeats). x0 [M, d] -> [M, (T / window) · window, d].
torch::Tensor windowed_rollout(const GridRollout& rollout, const torch::Tensor& x0, const torch::Tensor& t,
                               std::int64_t window);
/// windowed_rollout with Euler on the vector field f.
torch::Tensor windowed_rollout(const VectorField& f, const torch::Tensor& x0, const torch::Tensor& t, std::int64_t window);

}  // namespace stablelearn::lfd
