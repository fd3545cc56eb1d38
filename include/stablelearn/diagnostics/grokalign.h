// GrokAlign: Jacobian regularisation and centroid alignment (Walker, Humayun, Balestriero &
// Baraniuk, arXiv 2506.12284; reference code ThomasWalker1/grokalign:utils.py, classes `GrokAlign`,
// `Centroids`, `PC1`; the estimator follows Hoffman, Roberts & Yaida, arXiv 1908.02729;
// shared/specs/diagnostics-anchors.md §2.11, §3.10, §5.2; docs/diagnostics.md).
//
// Notation: a model f maps a batch x ∈ R^{n×d} (any shape [n, ...], flattened to d per sample) to
// outputs R^{n×K}; J(x_i) = ∂f(x_i)/∂x_i ∈ R^{K×d}. Every function assumes sample i's outputs depend
// only on x_i (no batch normalisation in training mode), so one VJP of the whole batch gives every
// J(x_i)ᵀv_i at once.
//
// Regulariser (utils.py `GrokAlign.compute_jacobian_norm` and `__call__`, reproduced exactly):
//     v_{p,i} = z / max(‖z‖, 1e-8),  z ~ N(0, I_K),  p = 1..P (num_projections), i = 1..n,
//     r_i = √( max( (K/P) Σ_p ‖J(x_i)ᵀ v_{p,i}‖², 1e-8 ) ),
//     R(x) = (1/n) Σ_i r_i,
// with J(x)ᵀv from one vector-Jacobian product w.r.t. the *input* with create_graph = true, so
// that R can be added to a task loss (L = L_task + λ_jac R; the paper uses λ_jac = 1e-4 with MSE,
// 1e-3 with cross-entropy) and differentiated w.r.t. the parameters (a double backward). Since
// E[vvᵀ] = I/K for v uniform on the unit sphere, E (K/P) Σ_p ‖Jᵀv_p‖² = ‖J‖_F², so r_i estimates
// ‖J(x_i)‖_F; it is exact for every v when JJᵀ = s²I.
//
// Centroid alignment (utils.py `Centroids`): c(x_i) = ∇_{x_i} Σ_k f_k(x_i) = J(x_i)ᵀ1,
//     ⟨c, x⟩,  ‖c‖,  alignment cos = ⟨c(x_i), x_i⟩ / max(‖c(x_i)‖‖x_i‖, 1e-8),
// reported per sample and as the mean alignment. For a piecewise-affine network f(x) = J(x)x + b(x),
// so a Jacobian aligned with x acts on x along x (the paper's reading).
//
// Jacobian rank proxy (utils.py `PC1`): PC1(x_i) = σ₁(J(x_i))² / Σ_j σ_j(J(x_i))², from the full
// Jacobian (K VJPs here instead of torch.autograd.functional.jacobian), averaged over samples.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

/// v_{p,i}: [P, n, K] Gaussian vectors normalised to unit length (clamped at 1e-8), drawn in
/// float64 on the CPU from `gen`, then converted to `options`. ConfigError for a non-positive size.
torch::Tensor grokalign_projections(std::int64_t num_projections, std::int64_t batch, std::int64_t outputs,
                                    at::Generator& gen, const torch::TensorOptions& options);

/// r_i for given projections ([P, n, K]); a [n] tensor with a graph to the model's parameters when
/// create_graph is true (then differentiable w.r.t. them), detached otherwise. ShapeError for
/// projections that do not match the batch and output size.
torch::Tensor jacobian_norm_estimates(const OutputFn& model, const torch::Tensor& x, const torch::Tensor& projections,
                                      bool create_graph = true);

struct GrokAlignOptions {
  /// P, random projections per sample (reference default 1)
  TORCH_ARG(std::int64_t, num_projections) = 1;
  /// Keep the graph of Jᵀv so the regulariser can be trained through (reference: always true)
  TORCH_ARG(bool, create_graph) = true;
  /// Seed of the projection generator (the reference draws from torch's global generator)
  TORCH_ARG(std::uint64_t, seed) = 0;
};

/// The regulariser R(x) as a callable that draws fresh projections on every call (as the
/// reference does) from its own seeded generator.
class GrokAlign {
 public:
  explicit GrokAlign(OutputFn model, GrokAlignOptions options = {});
  /// R(x), a scalar (mean over the batch of r_i).
  torch::Tensor operator()(const torch::Tensor& x);
  /// r_i, [n].
  torch::Tensor per_sample(const torch::Tensor& x);
  const GrokAlignOptions& options() const { return options_; }

 private:
  OutputFn model_;
  GrokAlignOptions options_;
  at::Generator gen_;
};

/// Centroids and their alignment with the inputs (all detached, float in the outputs' dtype).
struct CentroidAlignment {
  torch::Tensor centroids;       ///< c(x_i) = J(x_i)ᵀ1, shaped like x
  torch::Tensor inner_products;  ///< [n] ⟨c(x_i), x_i⟩
  torch::Tensor norms;           ///< [n] ‖c(x_i)‖
  torch::Tensor alignments;      ///< [n] ⟨c, x⟩ / max(‖c‖‖x‖, 1e-8)
  double mean_alignment = 0.0;   ///< mean of alignments
};
CentroidAlignment centroid_alignment(const OutputFn& model, const torch::Tensor& x);

/// The full input-output Jacobians J(x_i), [n, K, d] (d = elements per sample), by K VJPs;
/// detached unless create_graph.
torch::Tensor input_jacobians(const OutputFn& model, const torch::Tensor& x, bool create_graph = false);

/// PC1(x_i) = σ₁² / Σσ_j² of each J(x_i) ([n], float64; NaN for a zero Jacobian).
torch::Tensor jacobian_pc1(const OutputFn& model, const torch::Tensor& x);

}  // namespace stablelearn::diagnostics
