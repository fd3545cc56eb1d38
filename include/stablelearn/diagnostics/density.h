// Spectral density by stochastic Lanczos quadrature (SLQ; Lin, Saad, Yang 2016; Ghorbani et al.
// 2019; PyHessian density(); docs/diagnostics.md).
//
// The spectral density of a symmetric D×D matrix A is φ(t) = (1/D) Σ_i δ(t − λ_i). For a unit
// probe v = z/‖z‖ (z Rademacher), vᵀ f(A) v = Σ_i (vᵀu_i)² f(λ_i) is approximated by m-point
// Gauss quadrature from m Lanczos steps started at v: nodes θ_j (eigenvalues of the tridiagonal
// T) and weights τ_j = (e₁ᵀ s_j)² (squared first components of T's eigenvectors, from the
// *symmetric* solver linalg_eigh; PyHessian's linalg.eig gave complex weights). Averaging over
// R probes and broadening every node with a Gaussian of standard deviation σ gives
//     φ̂(t) = (1/R) Σ_r Σ_j τ_rj N(t; θ_rj, σ²).
// Σ_j τ_rj = 1, so φ̂ integrates to 1 over R (not renormalised on the grid; the grid is padded by
// max(padding · range, 5σ) on each side so the tails it cuts off are < 1e-6).
// The quadrature mean Σ_j τ_rj θ_rj = α₁ = vᵀAv, so mean() is exactly the Hutchinson estimate of
// tr(A)/D from the same probes.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

struct DensityOptions {
  /// Probes R (eigenthings v1: 10; PyHessian: 1)
  TORCH_ARG(std::int64_t, runs) = 10;
  /// Lanczos steps per probe, capped at D (eigenthings: 80; PyHessian: 100)
  TORCH_ARG(std::int64_t, steps) = 80;
  /// Points of the output grid
  TORCH_ARG(std::int64_t, grid_points) = 1000;
  /// Gaussian broadening; 0 = (max θ − min θ) / steps (eigenthings)
  TORCH_ARG(double, sigma) = 0.0;
  /// Grid padding as a fraction of the node range
  TORCH_ARG(double, padding) = 0.1;
  TORCH_ARG(std::uint64_t, seed) = 0;
};

struct SpectralDensity {
  torch::Tensor grid;                  ///< [G] float64, uniform
  torch::Tensor density;               ///< [G] float64, φ̂ on the grid
  std::vector<torch::Tensor> nodes;    ///< per run: Ritz values θ_rj (float64)
  std::vector<torch::Tensor> weights;  ///< per run: τ_rj, summing to 1
  double sigma = 0.0;                  ///< broadening used
  std::int64_t matvecs = 0;
  /// (1/R) Σ_r Σ_j τ_rj θ_rj: the quadrature estimate of tr(A)/D.
  double mean() const;
  /// (1/R) Σ_r Σ_{j: lo ≤ θ_rj ≤ hi} τ_rj: the estimated fraction of eigenvalues in [lo, hi].
  double mass(double lo, double hi) const;
};

/// SLQ spectral density. Throws ConfigError for runs < 1, steps < 1, grid_points < 2,
/// sigma < 0 or padding < 0.
SpectralDensity spectral_density(const CurvatureOperator& op, const DensityOptions& options = {});

}  // namespace stablelearn::diagnostics
