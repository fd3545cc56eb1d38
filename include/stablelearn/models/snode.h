// sNODE: the stable neural ODE target network of CLfD-sNODE (shared/specs/clfd-snode.md §2.3;
// Auddy et al., arXiv 2311.03600, reference `imitation_cl/model/lsddm_hn_t.py`), i.e. the
// "learning stable deep dynamics models" construction of Manek & Kolter (NeurIPS 2019, eqs. 8–10)
// with a clock input.
//
// State z = [x, t] ∈ R^n, n = d + 1 (explicit_time; t = absolute time of the solver stage,
// appended last). With explicit_time = false, z = x and n = d (no clock component).
//
// 1. Nominal dynamics f̂: ReLU MLP n → h → … → h → d with L = fhat_layers hidden layers, linear
//    output; f̂_aug = [f̂(z), 1] ∈ R^n (the clock's own derivative; omitted without explicit_time).
// 2. Lyapunov candidate (MakePSD(ICNN), "PSD-REHU"), σ = ReHU_r, r = rehu() = 0.01:
//      a1 = W0 z + b0,                         z1 = σ(a1),          W0 ∈ R^{hp×n}
//      a2 = W1 z + b1 + softplus(U0) z1 / hp,  z2 = σ(a2),          W1 ∈ R^{hp×n}, U0 ∈ R^{hp×hp}
//      g(z) = W2 z + b2 + softplus(U1) z2 / 1,                      W2 ∈ R^{1×n},  U1 ∈ R^{1×hp}
//    (the reference divides by U.shape[0]: hp for U0 and 1 for U1), softplus(u) = ln(1 + eᵘ)
//    (β = 1, linear above 20), and
//      V(z) = ReHU_δ(g(z) − g(0_n)) + ε‖z‖²,   δ = psd_rehu() = 1, ε = eps() = 1e-4,
//    with g(0) recomputed from the current weights at every call (0_n includes t = 0).
//    ReHU_δ(s) = 0 (s ≤ 0), s²/(2δ) (0 < s < δ), s − δ/2 (s ≥ δ); ReHU_δ'(s) = clamp(s/δ, 0, 1).
//    V(0) = 0 and V ≥ 0 by construction; V is convex in z (ICNN, Amos et al. 2017).
// 3. Projection (Manek & Kolter eq. 10), per sample, α = alpha() = 0.5:
//      f = f̂_aug − ∇V · ReLU(∇Vᵀ f̂_aug + α V) / ‖∇V‖²
//    so that ∇Vᵀ f ≤ −α V (equality where the projection is active) in the augmented space.
//    No epsilon guards the division (as in the reference). The ODE right-hand side is ẋ = f[0:d];
//    the projected clock component is discarded (the integrated time advances at rate 1, so the
//    decrease condition holds for the augmented field, not exactly for the integrated system,
//    spec §8.1).
//
// ∇V is computed analytically by default (LyapunovGradMode::Analytic, spec §2.3 notes):
//      q2 = σ'(a2) ⊙ softplus(U1)ᵀ,   q1 = σ'(a1) ⊙ (Ũ0ᵀ q2),  Ũ0 = softplus(U0)/hp,
//      ∇g = W2ᵀ + W1ᵀ q2 + W0ᵀ q1,    ∇V = ReHU_δ'(g(z) − g(0)) ∇g + 2 ε z,
// built from differentiable ops (σ' = clamp(a/r, 0, 1) has derivative 1/r on (0, r)), so training
// needs only first-order autograd through it and keeps the second-order terms of the reference.
// LyapunovGradMode::Autograd computes ∇V with torch::autograd::grad(create_graph = true) exactly
// as the reference does; it is the test oracle and a fallback.
//
// Weight list (order of the generated flat vector; spec §2.3, from named_parameters()):
//   fhat.layer_0.weight [h, n]   fhat.layer_0.bias [h]        ([h, c + n] with condition_dim c)
//   fhat.layer_l.weight [h, h]   fhat.layer_l.bias [h]       l = 1 .. L−1
//   fhat.layer_out.weight [d, h] fhat.layer_out.bias [d]
//   V.f.W.0 [hp, n]  V.f.W.1 [hp, n]  V.f.W.2 [1, n]
//   V.f.U.0 [hp, hp] V.f.U.1 [1, hp]
//   V.f.bias.0 [hp]  V.f.bias.1 [hp]  V.f.bias.2 [1]
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

/// How ∇V is obtained (see the file comment).
enum class LyapunovGradMode {
  Analytic,  ///< closed-form ∇V from differentiable ops (default; first-order autograd suffices)
  Autograd,  ///< torch::autograd::grad(V, z, create_graph = true), as the reference code
};

struct SNodeOptions {
  /// `dim` = state dimension d (--tnet_dim).
  explicit SNodeOptions(std::int64_t dim) : dim_(dim) {}
  /// State dimension d. No default: required.
  TORCH_ARG(std::int64_t, dim);
  /// f̂ hidden width h (--lsddm_h). Default 100 (HN→sNODE on LASA; CHN→sNODE uses 1000).
  TORCH_ARG(std::int64_t, hidden) = 100;
  /// Number of f̂ hidden layers L (--fhat_layers). Default 3 (every documented command). ≥ 1.
  TORCH_ARG(std::int64_t, fhat_layers) = 3;
  /// ICNN hidden width hp (--lsddm_hp). Default 100.
  TORCH_ARG(std::int64_t, icnn_hidden) = 100;
  /// Decay rate α of the projection (--lsddm_a). Default 0.5.
  TORCH_ARG(double, alpha) = 0.5;
  /// ε of the quadratic term ε‖z‖² (--lsddm_projfn_eps). Default 1e-4.
  TORCH_ARG(double, eps) = 1e-4;
  /// r of the ICNN activation ReHU_r (--lsddm_rehu). Default 0.01.
  TORCH_ARG(double, rehu) = 0.01;
  /// δ of the outer ReHU_δ in MakePSD (hard-coded 1.0 in the reference). Default 1.0.
  TORCH_ARG(double, psd_rehu) = 1.0;
  /// Append time as the last feature (--explicit_time). Default true (every experiment).
  TORCH_ARG(bool, explicit_time) = true;
  /// How ∇V is computed. Default Analytic.
  TORCH_ARG(LyapunovGradMode, grad_mode) = LyapunovGradMode::Analytic;
  /// Width c of a conditioning vector (a task embedding) given to f̂ only: f̂([cond, z]); V, ∇V
  /// and the projection stay in z-space, so the guarantee holds for every cond and the output
  /// is the state's own components (the FT/REP/SI/MAS baselines with spec §8.2 fixed).
  /// Default 0 (none).
  TORCH_ARG(std::int64_t, condition_dim) = 0;
  /// Centre the nominal field at the goal: use f̂(z) − f̂(0_n) (with a conditioning vector,
  /// f̂([cond, z]) − f̂([cond, 0_n])) wherever f̂ enters, so that f̂ and the projected field vanish
  /// at the goal z = 0 (‖f(z)‖ ≤ 2‖f̂(z) − f̂(0)‖ + α‖z‖, docs/lfd.md §7). Equivalent to an output
  /// bias of −W_out·h(0): the same weight layout; exports fold it into the bias. Default false.
  TORCH_ARG(bool, center_fhat) = false;

 public:

  /// n = d + explicit_time: the width of z, of f̂_aug and of ∇V.
  std::int64_t input_dim() const { return dim_ + (explicit_time_ ? 1 : 0); }
  /// Input width of f̂: condition_dim + n.
  std::int64_t fhat_input_dim() const { return condition_dim_ + input_dim(); }
  /// ConfigError for non-positive sizes, fhat_layers < 1, α < 0, ε < 0, r ≤ 0 or δ ≤ 0.
  void validate() const;
};

/// The weight layout of the spec's list (see the file comment).
WeightLayout snode_layout(const SNodeOptions& options);
/// fan_in per layout entry for U(−1/√fan_in, 1/√fan_in): the layer input width for f̂;
/// n for W_i and bias_i (the reference ICNN bounds its biases by W_i's fan-in); hp for U0, U1.
std::vector<std::int64_t> snode_fan_in(const SNodeOptions& options);

namespace functional {

/// ReHU_δ(s), computed as the reference: max(clamp(sign(s)·s²/(2δ), 0, δ/2), s − δ/2).
torch::Tensor rehu(const torch::Tensor& s, double delta);
/// ReHU_δ'(s) = clamp(s/δ, 0, 1) (differentiable: second derivative 1/δ on (0, δ)).
torch::Tensor rehu_derivative(const torch::Tensor& s, double delta);

/// Nominal dynamics f̂(z): z [B, n] -> [B, d] (ReLU MLP, without the appended 1; minus f̂(0_n) with
/// center_fhat). With condition_dim c > 0, `cond` ([c] or [B, c]) is required and f̂ sees [cond, z].
torch::Tensor snode_fhat(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                         const SNodeOptions& options, const torch::Tensor& cond = {});
/// ICNN output g(z): z [B, n] -> [B].
torch::Tensor snode_icnn(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                         const SNodeOptions& options);
/// Lyapunov function V(z): z [B, n] -> [B].
torch::Tensor snode_lyapunov(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                             const SNodeOptions& options);
/// ∇V(z): z [B, n] -> [B, n], with the given mode (the result stays differentiable w.r.t. the
/// weights and z in both modes; under torch::NoGradGuard the Autograd mode still works and
/// returns a detached result).
torch::Tensor snode_lyapunov_grad(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                                  const SNodeOptions& options, LyapunovGradMode mode);

/// Every intermediate of one evaluation, for diagnostics and tests.
struct SNodeEval {
  torch::Tensor fhat_aug;  ///< [B, n] f̂_aug = [f̂(z), 1]
  torch::Tensor V;         ///< [B]
  torch::Tensor grad_V;    ///< [B, n]
  torch::Tensor f;         ///< [B, n] projected augmented field
};
/// Evaluates f̂_aug, V, ∇V (options.grad_mode()) and the projected field at z [B, n].
SNodeEval snode_eval(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                     const SNodeOptions& options, const torch::Tensor& cond = {});
/// Projected augmented field f(z) [B, n].
torch::Tensor snode_field(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                          const SNodeOptions& options, const torch::Tensor& cond = {});
/// ODE right-hand side ẋ = f([x, t])[0:d]: x [B, d], t scalar tensor -> [B, d].
torch::Tensor snode_rhs(const torch::Tensor& t, const torch::Tensor& x,
                        const std::vector<torch::Tensor>& weights, const SNodeOptions& options,
                        const torch::Tensor& cond = {});

}  // namespace functional
namespace F = functional;

/// Owned-weight sNODE (SG-sNODE / LSDDM baseline). Parameters registered under the layout names
/// with '.' -> '_'; initialised as the reference (PyTorch defaults, see snode_fan_in).
class SNodeImpl : public torch::nn::Cloneable<SNodeImpl> {
 public:
  explicit SNodeImpl(SNodeOptions options);
  void reset() override;
  /// ẋ = f([x, t])[0:d]: x [B, d], t scalar tensor.
  torch::Tensor forward(const torch::Tensor& t, const torch::Tensor& x);
  /// All intermediates at z [B, n].
  F::SNodeEval eval(const torch::Tensor& z) const;
  /// V(z) [B].
  torch::Tensor lyapunov(const torch::Tensor& z) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  void pretty_print(std::ostream& stream) const override;

  SNodeOptions options;

 private:
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(SNode);

}  // namespace stablelearn::models
