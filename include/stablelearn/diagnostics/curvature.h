// Curvature operators: the matrix-free core of the stability lab (shared/DESIGN.md "diagnostics/").
//
// A CurvatureOperator is a symmetric linear map A on the flat parameter space R^D, given only
// through products v ↦ A v. Everything spectral (eigen.h, trace.h, density.h, stability.h) is
// written against this interface, so the same algorithm runs on an explicit matrix in a test,
// on a Hessian, a Gauss–Newton matrix or an empirical Fisher.
//
// Conventions (docs/diagnostics.md):
// * A data set is a list of batches; the objective is the sample mean over the whole data,
//       L(θ) = (1/N) Σ_i ℓ_i(θ),  N = Σ_b n_b,
//   and every operator here is the curvature of that full-data mean. A loss closure returns the
//   *mean* loss of one batch, so batch results are weighted by n_b / N (PyHessian's weighting;
//   eigenthings v1 weights batches equally, which is wrong for a short last batch).
// * MSE means ℓ_i = ½‖f(x_i) − y_i‖² (Wu & Su 2023's convention), so its output Hessian is I and,
//   for a linear model f = Xw, H = XᵀX / N.
// * Cross-entropy means ℓ_i = −log softmax(f(x_i))_{y_i}; output Hessian diag(p) − ppᵀ.
// * Vectors live on the device and in the dtype of the parameters (options()); models must be
//   put in eval mode by the caller if they have dropout or batch norm.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

namespace stablelearn::diagnostics {

/// A symmetric linear operator on R^D, known through matrix-vector products.
class CurvatureOperator {
 public:
  virtual ~CurvatureOperator() = default;
  /// D, the length of the flat vectors apply() takes and returns.
  virtual std::int64_t dim() const = 0;
  /// dtype and device of the vectors (those of the parameters).
  virtual torch::TensorOptions options() const = 0;
  /// A v for a flat vector v of length dim() (any dtype/device: it is converted to options()).
  /// The result is detached, of length dim(), with options().
  virtual torch::Tensor apply(const torch::Tensor& v) const = 0;
};

/// One batch of a data set: inputs x (first dimension = samples) and targets y.
struct Batch {
  torch::Tensor x;
  torch::Tensor y;
  std::int64_t size() const { return x.size(0); }
};

/// Mean loss of one batch (a scalar tensor with a graph to the parameters).
using LossFn = std::function<torch::Tensor(const Batch&)>;
/// Model outputs f(x) of one batch, shape [n, k] (a graph to the parameters).
using OutputFn = std::function<torch::Tensor(const torch::Tensor& x)>;

/// Output losses with a closed-form output Hessian (for GaussNewtonOperator).
enum class OutputLoss {
  MeanSquaredError,  ///< ℓ = ½‖f − y‖², y of shape [n, k]; H_out = I
  CrossEntropy,      ///< ℓ = −log softmax(f)_y, y int64 class indices [n]; H_out = diag(p) − ppᵀ
};

/// Concatenates the flattened tensors into one vector (detached).
torch::Tensor flatten_tensors(const std::vector<torch::Tensor>& tensors);
/// Splits a flat vector into views shaped like `like` (inverse of flatten_tensors).
std::vector<torch::Tensor> unflatten_like(const torch::Tensor& flat, const std::vector<torch::Tensor>& like);
/// Total number of elements of the tensors.
std::int64_t total_numel(const std::vector<torch::Tensor>& tensors);

/// An explicit symmetric matrix A (D × D); for tests and for small problems.
class DenseOperator final : public CurvatureOperator {
 public:
  /// Throws ShapeError unless A is square; DataError unless ‖A − Aᵀ‖_max ≤ tol · max(1, ‖A‖_max).
  explicit DenseOperator(torch::Tensor matrix, double symmetry_tol = 1e-10);
  std::int64_t dim() const override { return matrix_.size(0); }
  torch::TensorOptions options() const override { return matrix_.options(); }
  torch::Tensor apply(const torch::Tensor& v) const override;
  const torch::Tensor& matrix() const { return matrix_; }

 private:
  torch::Tensor matrix_;
};

/// Any callable v ↦ A v, declared symmetric by the caller.
class LambdaOperator final : public CurvatureOperator {
 public:
  LambdaOperator(std::int64_t dim, torch::TensorOptions options, std::function<torch::Tensor(const torch::Tensor&)> fn);
  std::int64_t dim() const override { return dim_; }
  torch::TensorOptions options() const override { return options_; }
  torch::Tensor apply(const torch::Tensor& v) const override;

 private:
  std::int64_t dim_;
  torch::TensorOptions options_;
  std::function<torch::Tensor(const torch::Tensor&)> fn_;
};

/// Base of the operators defined by parameters and a data set.
class ParameterOperator : public CurvatureOperator {
 public:
  std::int64_t dim() const override { return dim_; }
  torch::TensorOptions options() const override;
  const std::vector<torch::Tensor>& parameters() const { return params_; }
  /// N, the total number of samples over all batches.
  std::int64_t num_samples() const { return num_samples_; }

 protected:
  /// Throws ConfigError for no parameters, a parameter without requires_grad, no batches or
  /// an empty batch.
  ParameterOperator(std::vector<torch::Tensor> params, std::vector<Batch> batches);
  std::vector<torch::Tensor> params_;
  std::vector<Batch> batches_;
  std::int64_t dim_ = 0;
  std::int64_t num_samples_ = 0;
};

/// The Hessian of the full-data mean loss, H = Σ_b (n_b/N) ∇²L_b(θ), by Pearlmutter's exact HVP:
/// per batch the gradient g_b with create_graph, then Hv = Σ_b (n_b/N) ∂(g_b·v)/∂θ.
/// The gradient graphs are built on the first product and kept for the following ones (as
/// PyHessian does), so a product costs one double backward per batch instead of a forward, a
/// backward and a double backward; memory: every batch's forward and gradient graph at once. They
/// are rebuilt when a parameter was modified in place since (its version counter moved: e.g. a
/// training step between two measurements); a loss closure that reads other state that changes
/// needs clear_cache() (or reuse_graph(false)).
class HessianOperator final : public ParameterOperator {
 public:
  HessianOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches);
  torch::Tensor apply(const torch::Tensor& v) const override;
  /// The full-data mean loss and its gradient (flat), batch-weighted as the Hessian.
  std::pair<double, torch::Tensor> loss_and_gradient() const;
  /// Keep the gradient graphs between products (default true); false rebuilds them every product.
  HessianOperator& reuse_graph(bool on) {
    reuse_ = on;
    clear_cache();
    return *this;
  }
  /// Drops the kept gradient graphs.
  void clear_cache() const {
    grads_.clear();
    versions_.clear();
  }

 private:
  /// The per-batch gradients with their graphs (empty entries: the batch's loss or gradient is
  /// constant in θ), built or reused.
  const std::vector<std::vector<torch::Tensor>>& batch_gradients() const;
  LossFn loss_;
  bool reuse_ = true;
  mutable std::vector<std::vector<torch::Tensor>> grads_;
  mutable std::vector<std::int64_t> versions_;
};

/// The generalised Gauss–Newton matrix G = (1/N) Σ_i J_iᵀ H_out,i J_i with J_i = ∂f(x_i)/∂θ.
/// J v is formed without forward-mode AD by the double-VJP trick: g(u) = Jᵀu is linear in u,
/// so J v = ∂(g(u)·v)/∂u. Per batch: one forward, three backward passes.
/// G is positive semi-definite and equals the Hessian when the model is linear in θ.
class GaussNewtonOperator final : public ParameterOperator {
 public:
  GaussNewtonOperator(std::vector<torch::Tensor> params, OutputFn model, OutputLoss loss, std::vector<Batch> batches);
  torch::Tensor apply(const torch::Tensor& v) const override;
  /// tr(G) exactly, from per-sample output Jacobians: (1/N) Σ_i tr(H_out,i J_i J_iᵀ).
  /// Cost: N·k backward passes (k outputs); for small models and data.
  double exact_trace() const;

 private:
  OutputFn model_;
  OutputLoss loss_;
};

/// The empirical Fisher F = (1/N) Σ_i g_i g_iᵀ, g_i = ∇ℓ_i(θ) the per-sample gradient.
/// The per-sample gradients are computed once, at construction (N backward passes on batches of
/// one sample each, through the same loss closure) and kept as an N × D matrix; apply() is then
/// two matrix-vector products. Memory N·D; meant for small models and data.
class EmpiricalFisherOperator final : public ParameterOperator {
 public:
  EmpiricalFisherOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches);
  torch::Tensor apply(const torch::Tensor& v) const override;
  /// The per-sample gradients, [N, D].
  const torch::Tensor& sample_gradients() const { return grads_; }
  /// tr(F) = (1/N) Σ_i ‖g_i‖², exactly.
  double exact_trace() const;

 private:
  torch::Tensor grads_;
};

/// The per-sample Hessian variance Σ = (1/N) Σ_i H_i² − H², H_i = ∇²ℓ_i, H = (1/N) Σ_i H_i: the
/// operator behind Wu, Ma & E's (2018) "non-uniformity" s = √λ_max(Σ) (sgd.stability's
/// eigen_variance). Σ = (1/N) Σ_i (H_i − H)² is positive semi-definite. Each product costs
/// 2N per-sample HVPs (one-sample batches through the loss closure) plus two full HVPs.
class HessianVarianceOperator final : public ParameterOperator {
 public:
  HessianVarianceOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches);
  torch::Tensor apply(const torch::Tensor& v) const override;

 private:
  LossFn loss_;
  std::vector<Batch> samples_;  ///< one-sample batches
};

}  // namespace stablelearn::diagnostics
