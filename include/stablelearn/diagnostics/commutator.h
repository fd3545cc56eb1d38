// The SGD commutator defect and its projection on an "execution" subspace (Xu 2026, "Low-Dimensional
// Execution Manifolds in Transformer Learning Dynamics", arXiv 2602.10496; code
// skydancerosel/bubble-modadd: helpers.py `commutator_defect`, `commutator_defect_median`,
// `projected_commutator`, bubble_exp_comm_v2.py; shared/specs/diagnostics-anchors.md §2.13, §5.5;
// docs/diagnostics.md).
//
// Two SGD orders from the same θ₀ with batches A and B and step η:
//     θ_A  = θ₀ − η∇L(θ₀; A),   θ_AB = θ_A − η∇L(θ_A; B),
//     θ_B  = θ₀ − η∇L(θ₀; B),   θ_BA = θ_B − η∇L(θ_B; A),
//     δ = θ_AB − θ_BA,   D = ‖δ‖ / (‖η g_A‖ · ‖η g_B‖),  g_X = ∇L(θ₀; X).
// Expanding, δ = η[(∇L(θ_B; A) − g_A) − (∇L(θ_A; B) − g_B)] = η²(H_B g_A − H_A g_B) + O(η³) with
// H_X = ∇²L(θ₀; X); for quadratic losses L(θ; X) = ½θᵀH_Xθ − b_Xᵀθ the O(η³) term is zero, and δ = 0
// when H_A and H_B commute and b_A = b_B = 0. δ is computed in the gradient-difference form above
// (algebraically identical to θ_AB − θ_BA, but without subtracting two parameter vectors of size
// ‖θ₀‖ ≫ ‖δ‖); even so δ/‖g‖ is only accurate to ≈ ε/(η‖H‖), so use float64 for η ~ 1e-3.
//
// Projection on a subspace with orthonormal basis B ∈ R^{D×k} (bubble-modadd: the top trajectory-PCA
// directions, QR-orthonormalised):
//     ρ = ‖BBᵀδ‖ / ‖δ‖ (ρ_exec),  energy fraction ρ² = ‖Bᵀδ‖² / ‖δ‖²,  residual δ − BBᵀδ.
// For a uniformly random k-dimensional subspace E[ρ²] = k/D exactly (ρ² ~ Beta(k/2, (D−k)/2)) and
// ρ ≈ √(k/D); bubble-modadd reports ρ_exec / ρ_rand with ρ_rand the mean over 10 random bases.
//
// The parameters are evaluated in place: the functions write θ_A, θ_B into the parameter tensors
// (under NoGradGuard) and restore θ₀ before returning (also when the loss throws).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

/// One commutator of two batches.
struct CommutatorDefect {
  torch::Tensor delta;     ///< [D] θ_AB − θ_BA (detached, the parameters' dtype and device)
  double norm = 0.0;       ///< ‖δ‖
  double grad_a_norm = 0.0;  ///< ‖g_A‖ = ‖∇L(θ₀; A)‖
  double grad_b_norm = 0.0;  ///< ‖g_B‖
  double normalized = 0.0;   ///< D = ‖δ‖ / (η²‖g_A‖‖g_B‖); NaN if a gradient is zero
};

/// The commutator of one pair of batches at the current parameters with step η = learning_rate.
/// Throws ConfigError for no parameters, a parameter without requires_grad or η ≤ 0, ShapeError
/// for a non-scalar loss.
CommutatorDefect commutator_defect(const std::vector<torch::Tensor>& params, const LossFn& loss, const Batch& a,
                                   const Batch& b, double learning_rate);

/// A split of δ by an orthonormal basis.
struct ProjectedCommutator {
  torch::Tensor in_span;   ///< [D] BBᵀδ
  torch::Tensor residual;  ///< [D] δ − BBᵀδ
  double norm = 0.0;           ///< ‖δ‖
  double in_span_norm = 0.0;   ///< ‖BBᵀδ‖
  double residual_norm = 0.0;  ///< ‖δ − BBᵀδ‖
  double rho = 0.0;              ///< ‖BBᵀδ‖/‖δ‖ (ρ_exec; 0 for δ = 0)
  double energy_fraction = 0.0;  ///< ρ² = ‖Bᵀδ‖²/‖δ‖²
};

/// Splits `delta` ([D]) by the column space of `basis` ([D, k], orthonormal columns; results in
/// float64). Throws ShapeError for mismatched shapes, DataError unless ‖BᵀB − I‖_max ≤ 1e-6.
ProjectedCommutator projected_commutator(const torch::Tensor& delta, const torch::Tensor& basis);

/// Orthonormal basis ([D, k], float64) of the span of the rows of `vectors` ([k, D], e.g.
/// TrajectoryPca::components or per-block directions placed in full parameter space), by QR.
/// Throws ShapeError for k > D, DataError if the rows are linearly dependent (|R_ii| ≤ 1e-10 max|R|).
torch::Tensor orthonormal_basis(const torch::Tensor& vectors);

/// ρ and ρ² of `delta` in random k-dimensional subspaces (Gaussian [D, k] matrices, QR), averaged
/// over `trials` bases drawn from a generator seeded with `seed`.
struct RandomSubspaceBaseline {
  double mean_rho = 0.0;              ///< ρ_rand
  double mean_energy_fraction = 0.0;  ///< mean ρ²
  double expected_energy_fraction = 0.0;  ///< k/D, the exact expectation of ρ²
  double expected_rho = 0.0;              ///< √(k/D), the usual approximation of E ρ
  std::int64_t trials = 0;
};
/// Throws ConfigError unless 1 ≤ k ≤ D and trials ≥ 1, DataError for δ = 0.
RandomSubspaceBaseline random_subspace_baseline(const torch::Tensor& delta, std::int64_t k, std::int64_t trials = 10,
                                                std::uint64_t seed = 0);

struct CommutatorOptions {
  /// SGD step η of the two orders (bubble-modadd: 1e-3)
  TORCH_ARG(double, learning_rate) = 1e-3;
  /// Batch pairs K (bubble-modadd: 9)
  TORCH_ARG(std::int64_t, pairs) = 9;
  /// Random bases per pair for ρ_rand (bubble-modadd: 10)
  TORCH_ARG(std::int64_t, random_bases) = 10;
  /// Seed of the pair draws and the random bases
  TORCH_ARG(std::uint64_t, seed) = 0;
};

/// The commutator over K batch pairs, and its projection when a basis is given.
struct CommutatorStatistics {
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;  ///< batch indices (A, B), A ≠ B
  std::vector<double> normalized;  ///< D per pair
  std::vector<double> norms;       ///< ‖δ‖ per pair
  double median = 0.0;             ///< median of D over the finite values (numpy's linear interpolation)
  double p90 = 0.0;                ///< 90th percentile of D
  double median_norm = 0.0;        ///< median ‖δ‖
  // With a basis (all per-pair vectors empty and medians NaN otherwise):
  std::int64_t basis_dim = 0;                 ///< k
  std::vector<double> rho;                    ///< ρ_exec per pair
  std::vector<double> energy_fraction;        ///< ρ_exec² per pair
  std::vector<double> random_rho;             ///< ρ_rand per pair (mean over random bases)
  std::vector<double> random_energy_fraction; ///< mean ρ² over random bases, per pair
  double median_rho = 0.0, median_energy_fraction = 0.0;
  double median_random_rho = 0.0, median_random_energy_fraction = 0.0;
  double median_rho_ratio = 0.0;               ///< median over pairs of ρ_exec/ρ_rand
  double expected_random_energy_fraction = 0.0;  ///< k/D
};

/// Draws K pairs of distinct batches (uniformly, from a generator seeded with options.seed()),
/// computes their commutators at the current parameters and, if `basis` ([D, k], orthonormal) is
/// defined, projects each δ on it and on options.random_bases() random k-dimensional subspaces.
/// Throws ConfigError for fewer than two batches or K < 1.
CommutatorStatistics commutator_statistics(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                           const std::vector<Batch>& batches, const CommutatorOptions& options = {},
                                           const torch::Tensor& basis = {});

/// The q-quantile (q ∈ [0, 1]) with linear interpolation between order statistics (numpy's
/// default `percentile`/`quantile`). Throws ConfigError for no values or q outside [0, 1].
double quantile(std::vector<double> values, double q);

}  // namespace stablelearn::diagnostics
