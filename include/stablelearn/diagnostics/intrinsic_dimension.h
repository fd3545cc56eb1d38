// Intrinsic dimension of an objective landscape by training in a random subspace (Li, Farkhoor,
// Liu, Yosinski, ICLR 2018; code uber-research/intrinsic-dimension; docs/diagnostics.md).
//
// θ = θ₀ + P θ_d with θ₀ the current parameters, P ∈ R^{D×d} fixed and θ_d ∈ R^d (starting at 0)
// the only trained variables. Three projections (diagnostics-anchors §2.6):
// * dense: P has i.i.d. N(0, 1) entries and each column is scaled to unit norm over all D (Li et
//   al.'s global normalisation); optionally P is made exactly orthonormal (QR), so that d = D
//   reproduces full-space training step by step. Memory D·d.
// * sparse (`OffsetCreatorSparseProj`, i.e. sklearn's SparseRandomProjection, Li, Hastie & Church
//   2006): each entry is non-zero with probability s = 1/√D, the non-zeros are ±1 with equal
//   probability, and each column is scaled to unit norm (±1/√nnz_j). Memory ≈ 3·d·√D numbers.
// * fastfood (`tf_fastfood_transform`, Le, Sarlós & Smola 2013): with L = 2^⌈log₂D⌉,
//   P θ_d = [H G Π H B pad_L(θ_d)]_{1:D} / (√(L·ΣG²)·√(D/L)), where B is a ±1 diagonal, Π a
//   permutation ((Πx)_i = x_{π(i)}), G an N(0, 1) diagonal and H the unnormalised (Sylvester)
//   Walsh–Hadamard matrix; every column has unit norm over all L coordinates, hence norm ≈ 1 over
//   the first D in expectation. O(L log L) time and O(L) memory per product.
// Because θ is affine in θ_d, ∇_{θ_d} L = Pᵀ ∇_θ L: each step writes θ₀ + Pθ_d into the parameters,
// takes the ordinary gradient through the caller's loss closure and projects it with to_subspace,
// which is the exact transpose of to_full for every projection.
// d_int90 is then the smallest d on a grid whose (seed-averaged) score reaches 90 % of a baseline;
// which baseline (the trained full model, or an absolute 0.90 as in the paper's MNIST numbers) is
// the caller's choice and must be reported (diagnostics-anchors §3.1).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

namespace stablelearn::diagnostics {

/// The kind of random projection (see the file comment).
enum class Projection { Dense, Sparse, Fastfood };

/// "dense", "sparse" or "fastfood".
const char* projection_name(Projection kind);
/// Inverse of projection_name; throws ConfigError naming the known projections.
Projection parse_projection(const std::string& name);

/// The unnormalised Walsh–Hadamard transform along the last dimension, in Sylvester (natural)
/// order: H_1 = [1], H_{2n} = [[H_n, H_n], [H_n, −H_n]], so H x for x = [1,0,1,0,0,1,1,0] is
/// [4,2,0,−2,0,2,0,2] and H H = L·I. Reshape-based butterfly (log₂L tensor operations of O(L) each,
/// on the tensor's own device, differentiable); throws ShapeError unless the last dimension is a
/// power of two.
torch::Tensor fast_walsh_hadamard(const torch::Tensor& x);

/// A fixed random D×d projection.
class RandomSubspace {
 public:
  /// The dense projection. Throws ConfigError unless 1 ≤ d ≤ D.
  RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                 bool orthonormal = false);
  /// Any projection; `orthonormal` is only allowed with Projection::Dense. Throws ConfigError
  /// unless 1 ≤ d ≤ D. The random draws are made on the CPU from `seed` and then moved to
  /// `options`, so the same seed gives the same projection on every device. libtorch's CPU
  /// generator (mt19937) uses only the low 32 bits of the seed: seeds equal mod 2³² coincide.
  RandomSubspace(std::int64_t full_dim, std::int64_t dim, std::uint64_t seed, torch::TensorOptions options,
                 Projection kind, bool orthonormal = false);
  std::int64_t full_dim() const { return full_dim_; }
  std::int64_t dim() const { return dim_; }
  Projection kind() const { return kind_; }
  /// P θ_d, [D].
  torch::Tensor to_full(const torch::Tensor& theta_d) const;
  /// Pᵀ g, [d] (the exact adjoint of to_full).
  torch::Tensor to_subspace(const torch::Tensor& g) const;
  /// The dense D×d matrix; throws ConfigError for the other projections (see to_dense()).
  const torch::Tensor& matrix() const;
  /// P materialised as a D×d matrix (to_full of the identity columns): O(D·d) memory, for tests
  /// and small problems.
  torch::Tensor to_dense() const;

  /// Sparse projection in coordinate form: P[rows[k], cols[k]] = values[k] (int64 rows and cols).
  const torch::Tensor& sparse_rows() const { return rows_; }
  const torch::Tensor& sparse_cols() const { return cols_; }
  const torch::Tensor& sparse_values() const { return values_; }
  /// Fastfood factors: B (±1, [L]), π (int64 [L], (Πx)_i = x_{π(i)}), G ([L]) and the divisor
  /// √(L·ΣG²)·√(D/L).
  std::int64_t fastfood_length() const { return length_; }
  const torch::Tensor& fastfood_signs() const { return signs_; }
  const torch::Tensor& fastfood_permutation() const { return perm_; }
  const torch::Tensor& fastfood_gaussian() const { return gauss_; }
  double fastfood_divisor() const { return divisor_; }

 private:
  std::int64_t full_dim_ = 0, dim_ = 0;
  Projection kind_ = Projection::Dense;
  torch::TensorOptions options_;
  torch::Tensor matrix_;                 // dense
  torch::Tensor rows_, cols_, values_;   // sparse
  std::int64_t length_ = 0;              // fastfood: L
  torch::Tensor signs_, perm_, inverse_perm_, gauss_;
  double divisor_ = 1.0;
};

struct SubspaceTrainingOptions {
  /// D
  TORCH_ARG(std::int64_t, dim) = 10;
  /// Optimiser steps; each visits every batch once (full-batch gradient)
  TORCH_ARG(std::int64_t, steps) = 100;
  TORCH_ARG(double, learning_rate) = 1e-2;
  /// Adam (β = 0.9, 0.999, ε = 1e-8; Li et al. use Adam) instead of plain GD
  TORCH_ARG(bool, adam) = false;
  /// Orthonormal P (see above; dense projection only)
  TORCH_ARG(bool, orthonormal) = false;
  /// Dense (default; memory D·d), sparse (density 1/√D) or Fastfood (memory O(D)); Li et al. 2018
  TORCH_ARG(Projection, projection) = Projection::Dense;
  TORCH_ARG(std::uint64_t, seed) = 0;
};

struct SubspaceTrainingResult {
  torch::Tensor theta_d;         ///< final θ_d [d]
  std::vector<double> losses;    ///< full-data mean loss before each step, then after the last
};

/// Trains `params` (in place: they end at θ₀ + Pθ_d) in a random d-dimensional subspace through
/// the full-data mean of `loss` over `batches` (weighted by batch size, as HessianOperator).
SubspaceTrainingResult train_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                         const std::vector<Batch>& batches, const SubspaceTrainingOptions& options);

// ---- fine-tuning in a subspace: DID and SAID (Aghajanyan, Zettlemoyer & Gupta, ACL 2021) -------
//
// The same reparametrisation around a *pre-trained* θ₀ (shared/specs/papers-01-18.md §18):
// * DID (direct intrinsic dimension): θ = θ₀ + P θ_d, P ∈ R^{D×d} one random projection (as above),
//   θ_d ∈ R^d starting at 0; d numbers are trained.
// * SAID (structure-aware): with the D coordinates split into m segments (one per parameter tensor
//   of `params`, "layer" i), θ_i = θ₀_i + λ_i (P θ_{d−m})_i, P ∈ R^{D×(d−m)}; the m scales λ are
//   trained too and come out of the budget, so again d numbers are trained. λ starts at 1 (as in the
//   authors' code, `intrinsic_parameter_said = ones`); with λ held at 1, SAID of budget d is DID of
//   dimension d − m with the same P, bit for bit. Unlike the authors' code, which draws one Fastfood
//   transform per layer, P is one global projection cut into the layers' rows (the paper's notation
//   P(θ^{d−m})_i), so that the relation to DID is exact.
// Gradients, with g = ∇_θ L at θ and λ̃ the scales repeated over each segment:
//   ∂L/∂θ_d = Pᵀ(λ̃ ⊙ g),   ∂L/∂λ_i = ⟨g_i, (P θ_d)_i⟩.
// At θ_d = 0 the parameters are θ₀ exactly (θ₀ + P·0 adds zeros).

struct SubspaceFinetuneOptions {
  /// d, the number of trained values (DID: d subspace coordinates; SAID: d − m coordinates and m
  /// scales). d = 0 is allowed for DID (nothing is trained: θ stays θ₀); SAID needs d > m.
  TORCH_ARG(std::int64_t, dim) = 10;
  /// SAID (per-tensor scales λ) instead of DID; default false
  TORCH_ARG(bool, structure_aware) = false;
  /// SAID: train λ (default true); false holds λ at 1 (then SAID = DID of dimension d − m)
  TORCH_ARG(bool, learn_scales) = true;
  /// Full-batch optimiser steps (≥ 0)
  TORCH_ARG(std::int64_t, steps) = 100;
  /// Rate of θ_d and λ (> 0)
  TORCH_ARG(double, learning_rate) = 1e-2;
  /// Adam (β = 0.9, 0.999, ε = 1e-8, the same update as train_in_subspace) instead of plain GD; default true
  TORCH_ARG(bool, adam) = true;
  /// Random projection; default Fastfood (the paper's)
  TORCH_ARG(Projection, projection) = Projection::Fastfood;
  /// Projection seed (the same seed and dimension give the same P as RandomSubspace / train_in_subspace)
  TORCH_ARG(std::uint64_t, seed) = 0;
};

/// The DID / SAID objective around θ₀: the full-data mean loss (batch-size weighted, as
/// HessianOperator) as a function of (θ_d, λ). It writes into the caller's `params`.
class SubspaceFinetuneObjective {
 public:
  /// θ₀ = the current values of `params` (copied). ConfigError for d < 0, d > D (DID) or d − m
  /// outside 1..D (SAID), and as HessianOperator for the parameters and batches.
  SubspaceFinetuneObjective(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches,
                            const SubspaceFinetuneOptions& options);
  std::int64_t full_dim() const { return theta0_.numel(); }
  /// Length of θ_d: d (DID) or d − m (SAID).
  std::int64_t subspace_dim() const { return subspace_dim_; }
  /// m: the number of scales (SAID: the number of parameter tensors; DID: 0).
  std::int64_t scale_count() const { return scale_count_; }
  bool structure_aware() const { return scale_count_ > 0; }
  const torch::Tensor& theta0() const { return theta0_; }
  /// The projection (throws ConfigError when subspace_dim() = 0).
  const RandomSubspace& projection() const;
  /// θ_d = 0 and λ = 1 (an empty tensor for DID).
  torch::Tensor initial_theta_d() const;
  torch::Tensor initial_scales() const;
  /// θ(θ_d, λ), flat [D] (λ is ignored for DID and may be undefined). ShapeError for wrong lengths.
  torch::Tensor parameters_at(const torch::Tensor& theta_d, const torch::Tensor& scales) const;
  /// Writes θ(θ_d, λ) into the parameters.
  void write(const torch::Tensor& theta_d, const torch::Tensor& scales) const;

  struct Value {
    double loss = 0.0;
    torch::Tensor grad_theta_d;  ///< ∂L/∂θ_d [subspace_dim()]
    torch::Tensor grad_scales;   ///< ∂L/∂λ [m] (empty for DID)
  };
  /// Writes θ(θ_d, λ) into the parameters and returns the loss and its gradients there.
  Value evaluate(const torch::Tensor& theta_d, const torch::Tensor& scales) const;

 private:
  std::vector<torch::Tensor> params_;
  HessianOperator objective_;
  torch::Tensor theta0_;
  std::vector<std::int64_t> sizes_;  // numel per tensor
  std::int64_t subspace_dim_ = 0, scale_count_ = 0;
  std::shared_ptr<RandomSubspace> projection_;
};

struct SubspaceFinetuneResult {
  torch::Tensor theta_d;        ///< final θ_d [d or d − m]
  torch::Tensor scales;         ///< final λ [m] (SAID; empty for DID)
  std::vector<double> losses;   ///< full-data mean loss before each step, then after the last
};

/// DID / SAID fine-tuning: from θ₀ = the current `params`, trains only θ_d (and λ for SAID) for
/// options.steps full-batch steps; `params` end at θ(θ_d, λ). With DID and the same seed,
/// projection and rate this is train_in_subspace (bit for bit); with d = 0 or steps = 0 the
/// parameters stay θ₀ bit for bit.
SubspaceFinetuneResult finetune_in_subspace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                            const std::vector<Batch>& batches, const SubspaceFinetuneOptions& options);

/// d90 read off a grid: the smallest d in `dims` (increasing) whose score reaches `threshold`,
/// interpolated linearly in log d between it and the grid point before (where that one fails);
/// the first grid point when it already passes; NaN when none passes. `dims` and `scores` of equal
/// length, dims positive and increasing (ConfigError otherwise).
double interpolated_crossing(const std::vector<std::int64_t>& dims, const std::vector<double>& scores, double threshold);

/// The smallest d in `dims` (visited in increasing order) with score(d) ≥ threshold, or −1.
std::int64_t smallest_passing_dimension(std::vector<std::int64_t> dims, const std::function<double(std::int64_t)>& score,
                                        double threshold);

/// The result of bisect_passing_dimension: the d found (or −1) and every predicate evaluation in
/// the order made.
struct DimensionBisection {
  std::int64_t dim = -1;
  std::vector<std::pair<std::int64_t, bool>> probes;  ///< (d, passes(d))
};

/// Bisection for the smallest passing d on a grid (Li et al. sweep d and read off the crossing; a
/// bisection reads it off with ⌈log₂(n + 1)⌉ trainings instead of n). `dims` is sorted and made
/// unique; `passes` is evaluated at most ⌈log₂(n + 1)⌉ times, never twice at one d. When `passes` is
/// monotone (false below some d, true from there on) the result is smallest_passing_dimension's
/// (−1 when no d passes). Otherwise it is still a crossing: the returned d passed and its grid
/// predecessor, if any, was evaluated and failed; −1 means the largest d was evaluated and failed.
/// ConfigError for an empty `dims`.
DimensionBisection bisect_passing_dimension(std::vector<std::int64_t> dims, const std::function<bool(std::int64_t)>& passes);

/// Options of intrinsic_dimension_sweep: Li et al.'s d_int90 experiment (full-batch Adam in the
/// full space and in random d-dimensional subspaces, all from the same θ₀).
struct IntrinsicDimensionOptions {
  /// Subspace dimensions d (any order; visited in increasing order; each 1 ≤ d ≤ D)
  TORCH_ARG(std::vector<std::int64_t>, dims) = std::vector<std::int64_t>{10, 50, 100, 200, 400, 800};
  /// Full-batch Adam steps of every training (the full model and every (d, seed)); default 200
  TORCH_ARG(std::int64_t, steps) = 200;
  /// Adam rate in the subspace (default 1e-2, Li et al.'s MNIST setting)
  TORCH_ARG(double, learning_rate) = 1e-2;
  /// Adam rate (torch::optim::Adam defaults otherwise) of the full-space reference; default 1e-3
  TORCH_ARG(double, full_learning_rate) = 1e-3;
  /// Random projection P (see the file comment); default dense
  TORCH_ARG(Projection, projection) = Projection::Dense;
  /// Projections per d (≥ 1); rows report the mean and sample std, d_int90 uses the means
  TORCH_ARG(std::int64_t, seeds) = 1;
  /// Base seed: projection k of dimension d uses seed + d + 1000003·k (libtorch's mt19937 uses
  /// only the low 32 bits, hence no high-bit stride)
  TORCH_ARG(std::uint64_t, seed) = 0;
  /// Absolute test-accuracy threshold (Li et al.'s MNIST convention); default 0.90
  TORCH_ARG(double, absolute_threshold) = 0.9;
  /// Relative threshold: this fraction of the full-space reference's test accuracy; default 0.90
  TORCH_ARG(double, fraction) = 0.9;
};

/// What the caller's evaluation reports about the current parameters.
struct IntrinsicDimensionEvaluation {
  double test_accuracy = 0.0, train_accuracy = 0.0, loss = 0.0;
};

/// One dimension d of the sweep (over options.seeds projections).
struct IntrinsicDimensionRow {
  std::int64_t dim = 0;
  double test_accuracy = 0.0, train_accuracy = 0.0;  ///< means over the seeds
  double test_accuracy_std = 0.0, train_accuracy_std = 0.0;  ///< sample std (n − 1); NaN for one seed
  double loss = 0.0;                                 ///< mean final training loss
  std::vector<double> test_accuracies;               ///< per seed
  std::vector<std::uint64_t> projection_seeds;       ///< per seed
};

struct IntrinsicDimensionResult {
  std::int64_t full_dim = 0;              ///< D
  IntrinsicDimensionEvaluation initial;   ///< at θ₀
  IntrinsicDimensionEvaluation full;      ///< after the full-space reference training
  std::vector<IntrinsicDimensionRow> rows;  ///< increasing d
  double relative_threshold = 0.0;        ///< fraction · full.test_accuracy
  std::int64_t d_int90_absolute = -1;     ///< smallest d with mean test accuracy ≥ absolute_threshold, or −1
  std::int64_t d_int90_relative = -1;     ///< smallest d with mean test accuracy ≥ relative_threshold, or −1
};

/// The d_int90 sweep of Li et al. 2018 on any model: from the current parameters θ₀, (1) trains the
/// full space with torch::optim::Adam (full_learning_rate, `steps` full-batch steps of the
/// batch-size-weighted mean of `loss` over `batches`) as the reference of the relative convention,
/// (2) for every d and seed restores θ₀ and runs train_in_subspace (Adam, `steps`), calling
/// `evaluate` after each training. `evaluate` (no graph needed) reports test/train accuracy and
/// loss of the parameters as they are; `on_row` (optional) sees each finished row, e.g. for
/// progress. `params` are restored to θ₀ at the end. ConfigError for an empty `dims`, d outside
/// 1..D, seeds < 1 or steps < 1.
IntrinsicDimensionResult intrinsic_dimension_sweep(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                                   const std::vector<Batch>& batches,
                                                   const std::function<IntrinsicDimensionEvaluation()>& evaluate,
                                                   const IntrinsicDimensionOptions& options,
                                                   const std::function<void(const IntrinsicDimensionRow&)>& on_row = {});

}  // namespace stablelearn::diagnostics
