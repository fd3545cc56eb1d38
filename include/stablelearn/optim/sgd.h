// optim/: optimisers beyond libtorch's (shared/DESIGN.md "optim/").
//
// SgdMomentum: stochastic gradient descent with heavy-ball momentum, the update of
// torch::optim::SGD without dampening, Nesterov or weight decay (Polyak 1964; PyTorch's form):
//
//   b ← g                    at a parameter's first step,
//   b ← fl(fl(μ·b) + g)      afterwards,                      θ ← fl(θ + (−η)·b)
//   (μ = 0: no buffer, θ ← fl(θ + (−η)·g))
//
// torch::optim::SGD runs this as three ATen passes over every parameter (b.mul_(μ), b.add_(g),
// θ.add_(b, −η)); SgdMomentum makes one pass (reads θ, b, g once, writes θ, b once) with the same
// floating-point operations and roundings, so both give the same bits. ATen's vectorised
// add-with-alpha rounds θ + (−η)·b once (a fused multiply-add) where the CPU has FMA and twice where
// it runs its portable kernels; the constructor measures which on a probe (the three ATen ops
// against each fused variant, bitwise, with the run's lr, momentum and thread count) and uses the
// variant that matches, or ATen's three ops where none does (also for non-float32, non-contiguous or
// non-CPU parameters). Subnormal values (a momentum buffer decaying as μ^t once its gradient stops)
// are computed in the AVX2 loops without floating-point operations on them, which on Intel cores
// take a ~150-cycle microcode assist each: same results, exactly (sgd.cpp says how).
#pragma once

#include <vector>

#include <torch/types.h>

namespace stablelearn::optim {

class SgdMomentum {
 public:
  /// lr η > 0, momentum μ in [0, 1). The momentum buffers start empty (a new task's optimiser).
  SgdMomentum(std::vector<torch::Tensor> params, double lr, double momentum);

  /// One step with the gradients in params[i].grad(); parameters without a gradient are skipped
  /// (their buffers untouched), as torch::optim::SGD does.
  void step();
  /// One step with gradient grads[i] for params[i] (same shapes; undefined = skipped).
  void step(const std::vector<torch::Tensor>& grads);
  /// The step of parameter i alone, with gradient `grad` (the others untouched): a step may go
  /// parameter by parameter, e.g. as backward produces the gradients (models::MlpLossGrad).
  void step(std::size_t i, const torch::Tensor& grad);

  /// Momentum accumulated by the caller: parameter i's buffer scaled to fl(μ·b) (what ATen's
  /// b.mul_(μ) gives), into which the caller adds the gradient itself — a matrix product with
  /// beta = 1, b ← fl(fl(μ·b) + g) where that rounds as ATen's add (models::MlpLossGrad checks it) —
  /// and then calls step_accumulated(i). The gradient is never stored, and the pass over the
  /// parameter that follows also scales the buffer for the next step. Undefined where parameter i
  /// has no buffer yet (its first step, μ = 0) or runs ATen's ops: use step(i, g) then.
  torch::Tensor scaled_buffer(std::size_t i);
  /// θ_i ← fl(θ_i + (−η)·b_i) with the buffer the caller completed (see scaled_buffer).
  void step_accumulated(std::size_t i);

  /// How a float32 CPU parameter is updated: "fused-fma", "fused" (two roundings) or "aten".
  const char* kernel() const;
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  enum class Kernel { Aten, Fused, FusedFma };
  void update(std::size_t i, const torch::Tensor& g);
  std::vector<torch::Tensor> params_, buffers_;
  std::vector<char> scaled_;  // buffers_[i] holds fl(μ·b), not b (scaled_buffer, step_accumulated)
  double lr_, momentum_;
  Kernel kernel_ = Kernel::Aten;
};

}  // namespace stablelearn::optim
