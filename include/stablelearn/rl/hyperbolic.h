// Hyperbolic policy and value heads and the categorical value loss of Hyper++ (Klein et al.,
// "Understanding and Improving Hyperbolic Deep Reinforcement Learning", ICLR 2026; seed paper 29,
// shared/specs/papers-19-35.md §29; the authors' hyper-rl code). Curvature −c (c > 0). Every
// manifold operation runs in float64 and returns the input's dtype.
//
// Hyperboloid (Lorentz) model H = {x ∈ R^{d+1} : ⟨x, x⟩_L = −1/c, x₀ > 0}, ⟨x, y⟩_L = −x₀y₀ + Σ xᵢyᵢ:
//     expmap₀(u) = (cosh(√c‖u‖)/√c,  sinh(√c‖u‖) u/(√c‖u‖))                       u ∈ R^d
//     MLR (Bdeir et al. 2023), class j with z_j ∈ R^d, r_j ∈ R:
//         α_j = −x₀ sinh(√c r_j)‖z_j‖ + cosh(√c r_j)⟨z_j, x_{1:}⟩
//         score_j = ‖z_j‖ asinh(√c α_j/‖z_j‖)/√c    (the signed distance to the class hyperplane
//                                                      times ‖z_j‖; positive on the side z_j points to)
// Poincaré ball B = {x : c‖x‖² < 1}:
//     expmap₀(u) = tanh(√c‖u‖) u/(√c‖u‖)
//     x ⊕ y = ((1 + 2c⟨x,y⟩ + c‖y‖²)x + (1 − c‖x‖²)y) / (1 + 2c⟨x,y⟩ + c²‖x‖²‖y‖²)   (Möbius addition)
//     MLR (Ganea et al. 2018), class k with p_k = expmap₀(p̃_k), a_k ∈ R^d:
//         w = −p_k ⊕ x;  score_k = (λ_{p_k}‖a_k‖/√c) asinh(2√c⟨w, a_k⟩ / ((1 − c‖w‖²)‖a_k‖)),
//         λ_p = 2/(1 − c‖p‖²)
// Hyper++'s feature control before the head (encoder output e ∈ R^d): RMSNorm without affine
// parameters, tanh, then x = s·ρ_max·tanh(RMSNorm(e))/√d with s = σ(w·x̄ + b) learned per input and
// ρ_max = atanh(0.95)/√c, so ‖x‖ ≤ ρ_max whatever e is.
// HL-Gauss (Imani & White 2018; Farebrother et al. 2024): `bins` bins on [lo, hi] with centres
// c_i, a target y becomes the probabilities of N(y, σ²) per bin, p_i ∝ Φ((e_{i+1} − y)/σ) −
// Φ((e_i − y)/σ) (renormalised over [lo, hi]); loss = cross-entropy against the value logits;
// value = Σ softmax(logits)_i c_i. σ = 0.75 × bin width.
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace stablelearn::rl::hyperbolic {

torch::Tensor minkowski_dot(const torch::Tensor& x, const torch::Tensor& y);
torch::Tensor hyperboloid_expmap0(const torch::Tensor& u, double c);
/// Scores [..., K] of points x [..., d+1] on the hyperboloid; z [K, d], r [K].
torch::Tensor hyperboloid_mlr(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& r, double c);
torch::Tensor poincare_expmap0(const torch::Tensor& u, double c);
torch::Tensor mobius_add(const torch::Tensor& x, const torch::Tensor& y, double c);
/// Scores [..., K] of points x [..., d] in the ball; p [K, d] (ball points), a [K, d].
torch::Tensor poincare_mlr(const torch::Tensor& x, const torch::Tensor& p, const torch::Tensor& a, double c);

/// HL-Gauss target probabilities [n, bins] of targets y [n]; ConfigError for bins < 2 or hi <= lo.
torch::Tensor hl_gauss_targets(const torch::Tensor& y, std::int64_t bins, double lo, double hi);
/// Cross-entropy of value logits [n, bins] against the HL-Gauss targets of y [n] (mean).
torch::Tensor hl_gauss_loss(const torch::Tensor& logits, const torch::Tensor& y, double lo, double hi);
/// Σ softmax(logits)·centres [n].
torch::Tensor hl_gauss_value(const torch::Tensor& logits, double lo, double hi);

/// A head on d-dimensional encoder features: kind "euclidean" (a linear map), "poincare" (expmap₀
/// onto the ball + Poincaré MLR), "hyperboloid" (expmap₀ + hyperboloid MLR); feature_control adds
/// Hyper++'s RMSNorm + tanh + learned scaling before expmap₀ (hyperbolic kinds only).
struct HeadOptions {
  std::string kind = "euclidean";
  bool feature_control = false;
  double curvature = 1.0;
};

class HeadImpl : public torch::nn::Module {
 public:
  /// init_std: the initial weights' spread (N(0, init_std²) for the class vectors, as the code's
  /// N(0, 1/d) with init_std = 1/√d); biases / offsets start at 0.
  HeadImpl(std::int64_t in, std::int64_t out, HeadOptions options, double init_std);
  torch::Tensor forward(const torch::Tensor& features);
  /// The tangent vector handed to expmap₀ (after feature control) of the last forward, detached;
  /// for euclidean heads the features themselves.
  const torch::Tensor& last_tangent() const { return last_; }
  const HeadOptions& options() const { return o_; }

 private:
  HeadOptions o_;
  torch::Tensor w_, b_;         // euclidean [out, in], [out]; hyperboloid z [out, in], r [out]; poincare a, p̃
  torch::Tensor scale_w_, scale_b_;  // feature control's s = σ(x̄ w + b)
  torch::Tensor last_;
};
TORCH_MODULE(Head);

}  // namespace stablelearn::rl::hyperbolic
