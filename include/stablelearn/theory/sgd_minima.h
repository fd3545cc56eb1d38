// GD against SGD minima (seed paper 4: Wu & Su, "The Implicit Regularization of Dynamical Stability
// in Stochastic Gradient Descent", ICML 2023, arXiv 2305.17490; shared/specs/papers-01-18.md §4;
// docs/theory.md): two small models whose Hessian is known in closed form, and plain GD / SGD on them.
//
// Loss L(θ) = (1/2n) Σ_i (f(x_i; θ) − y_i)² (the ½ of the theorem). With J the n × D matrix of the
// per-sample gradients ∇_θ f(x_i) and r_i = f(x_i) − y_i,
//     H = (1/n) JᵀJ + (1/n) Σ_i r_i ∇²_θ f(x_i),
// and at an interpolating minimum (r = 0) H = (1/n) JᵀJ: GD with rate η is linearly stable there
// iff λ_max(H) <= 2/η, SGD with batch 1 only if tr(H) <= 2/η (diagnostics/stability.h).
//
// Diagonal linear network f(x) = <u ⊙ v, x>, θ = (u, v) ∈ R^{2d}, β = u ⊙ v:
//     ∇f(x) = (v ⊙ x, u ⊙ x),   ∂²f/∂u_k∂v_l = δ_kl x_k (no u–u or v–v terms),
// so H = (1/n) JᵀJ + [[0, diag c], [diag c, 0]] with c = (1/n) Σ_i r_i x_i, and, the second part
// having a zero diagonal, tr H = Σ_k (u_k² + v_k²) m_k, m_k = (1/n) Σ_i x_ik², exactly at every θ.
// Since u_k² + v_k² >= 2|β_k|, tr H >= 2 Σ_k m_k |β_k|: a trace bound is a weighted ℓ1 bound.
//
// Two-layer ReLU network f(x) = Σ_j a_j ReLU(w_j·x) (no biases), θ = (a, W) ∈ R^{m + m d}, W's rows
// w_j (row-major after a):
//     ∂f/∂a_j = ReLU(w_j·x),  ∂f/∂w_j = a_j 1[w_j·x > 0] x,
//     ∂²f/∂a_j∂w_j = 1[w_j·x > 0] x, and every other second derivative is 0 where no w_j·x = 0,
// so H = (1/n) JᵀJ + the a_j–w_j cross blocks (1/n) Σ_i r_i 1[w_j·x_i > 0] x_i, and again
// tr H = (1/n) Σ_i ‖∇f(x_i)‖² exactly (a path-norm-like quantity at balance).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace stablelearn::theory {

/// f(x) = <u ⊙ v, x>; u, v of length d (float64 on one device).
struct DiagonalNetwork {
  torch::Tensor u, v;
  torch::Tensor beta() const { return u * v; }
};

/// f(x) = Σ_j a_j ReLU(w_j·x); a [m], W [m, d].
struct TwoLayerRelu {
  torch::Tensor a, W;
};

/// Outputs f(x_i), [n], for inputs x [n, d]. ShapeError for mismatched shapes.
torch::Tensor network_outputs(const DiagonalNetwork& net, const torch::Tensor& x);
torch::Tensor network_outputs(const TwoLayerRelu& net, const torch::Tensor& x);

/// The per-sample gradients ∇_θ f(x_i) as the rows of J [n, D] (D = 2d: u then v; D = m + m d:
/// a then W row-major).
torch::Tensor network_jacobian(const DiagonalNetwork& net, const torch::Tensor& x);
torch::Tensor network_jacobian(const TwoLayerRelu& net, const torch::Tensor& x);

/// The exact Hessian [D, D] of L = (1/2n) Σ (f(x_i) − y_i)² for inputs x [n, d], targets y [n].
torch::Tensor loss_hessian(const DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y);
torch::Tensor loss_hessian(const TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y);

/// L = (1/2n) Σ (f(x_i) − y_i)².
double mean_squared_loss(const torch::Tensor& outputs, const torch::Tensor& y);

/// Curvature of the loss at the current parameters, from the exact Hessian.
struct MinimumCurvature {
  double loss = 0;        ///< L
  double trace = 0;       ///< tr H (exact)
  double lambda_max = 0;  ///< largest eigenvalue of H (eigvalsh; NaN when H is not finite)
  double gauss_newton_trace = 0;  ///< (1/n) Σ ‖∇f(x_i)‖² (= tr H for both models, see above)
};
MinimumCurvature minimum_curvature(const DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y);
MinimumCurvature minimum_curvature(const TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y);

/// Plain (momentum-free) GD / SGD on L.
struct DescentOptions {
  double lr = 0.01;                 ///< η > 0
  std::int64_t batch_size = 1;      ///< B; 0 = full batch (GD). Each step draws B distinct samples
                                    ///< uniformly, independently of earlier steps.
  std::int64_t max_steps = 100000;  ///< >= 1
  double loss_tol = 1e-8;           ///< stop once the full train loss is <= loss_tol (>= 0)
  std::int64_t eval_every = 0;      ///< full-loss evaluations every this many steps (0: n / B, at least 1)
  double divergence = 1e8;          ///< stop (diverged) once the full loss exceeds this or is not finite
  std::uint64_t seed = 0;           ///< the sampling of SGD's batches
};

struct DescentResult {
  std::int64_t steps = 0;
  double initial_loss = 0, final_loss = 0;
  bool converged = false;  ///< final loss <= loss_tol
  bool diverged = false;
};

/// Trains net in place. ConfigError naming the field for a bad option (lr <= 0, batch_size < 0
/// or > n, max_steps < 1, loss_tol < 0); ShapeError for mismatched data.
DescentResult train_descent(DiagonalNetwork& net, const torch::Tensor& x, const torch::Tensor& y, const DescentOptions& o);
DescentResult train_descent(TwoLayerRelu& net, const torch::Tensor& x, const torch::Tensor& y, const DescentOptions& o);

}  // namespace stablelearn::theory
