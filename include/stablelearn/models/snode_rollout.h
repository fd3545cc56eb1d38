// Fused Euler rollout of the sNODE (models/snode.h) with a hand-written backward pass.
//
// Training integrates the projected field with fixed-step Euler over a window of the data grid
// (spec §3.2). Built from tensor operations, every step records ~60 autograd nodes of [B, h]
// tensors (B = 7 demonstrations on LASA), so one HN→sNODE iteration spends most of its time in
// dispatch and the autograd engine rather than arithmetic. `snode_euler_rollout` runs the whole
// window as one autograd node:
//
//   forward   x_{k+1} = x_k + h_k f([x_k, t_k])[0:d], h_k = t_{k+1} − t_k, every intermediate of
//             f̂, the ICNN, ∇V and the projection kept on a tape ((T−1)·B rows, a few hundred KiB);
//   backward  the adjoint recursion λ_k = λ_{k+1} + (∂f/∂x)ᵀ h_k λ_{k+1} + ∂L/∂x_k through the
//             projection, f̂ and the analytic ∇V (whose backward is the ICNN's second derivative:
//             σ'' = 1/r on (0, r)), then every weight gradient as one matrix product over all
//             (T−1)·B rows, and the g(0) term once.
//
// The derivation is written out next to the code (src/models/snode_rollout.cpp). The result equals
// `odeint(snode_rhs, x0, t, Euler)` and its gradient up to float rounding (tested against it and
// against central differences in float64). It is first-order only: diagnostics that need Hessian-
// vector products through the rollout use the tensor path.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "stablelearn/models/snode.h"

namespace stablelearn::models::functional {

/// True when snode_euler_rollout handles these inputs: CPU tensors of float32 or float64 (flat and
/// x0 of the same dtype), analytic ∇V (options.grad_mode()), cond undefined or of numel
/// condition_dim, and n = d + clock ≤ 64 (every shipped data set: at most 33).
bool snode_euler_rollout_supported(const torch::Tensor& flat, const torch::Tensor& x0, const SNodeOptions& options,
                                   const torch::Tensor& cond = {});

/// Euler rollout of ẋ = f([x, t])[0:d] over the grid t [T] (strictly increasing, absolute times)
/// from x0 [B, d], with the weights as one flat vector [P] in snode_layout(options) order. Returns
/// [B, T, d] with x0 first, differentiable (first order) w.r.t. flat, x0 and cond ([c], the
/// conditioning vector of f̂ when condition_dim = c > 0). ShapeError / ConfigError on inputs that
/// snode_euler_rollout_supported rejects, naming what was expected.
torch::Tensor snode_euler_rollout(const torch::Tensor& flat, const torch::Tensor& x0, const torch::Tensor& t,
                                  const SNodeOptions& options, const torch::Tensor& cond = {});

/// How many fused rollouts (snode_euler_rollout forward passes) this process has run, over all
/// threads. A plain counter for tests and profiling: it shows which path a trainer took
/// (train.fused_rollout) without relying on the two paths rounding differently, which depends on
/// the CPU's vector kernels.
std::uint64_t snode_euler_rollout_calls();

}  // namespace stablelearn::models::functional
