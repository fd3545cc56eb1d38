// Curvature operators (see include/stablelearn/diagnostics/curvature.h for the maths).
#include "stablelearn/diagnostics/curvature.h"

#include <torch/autograd.h>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

/// Flattens gradients, writing zeros for parameters the output did not depend on.
torch::Tensor flatten_grads(const std::vector<torch::Tensor>& grads, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    parts.push_back(grads[i].defined() ? grads[i].detach().reshape({-1}) : torch::zeros({params[i].numel()}, params[i].options()));
  return torch::cat(parts);
}

/// Checks and converts an input vector of an operator.
torch::Tensor prepare(const torch::Tensor& v, std::int64_t dim, const torch::TensorOptions& options) {
  SL_CHECK(v.defined(), ShapeError, "curvature operator: undefined input vector");
  SL_CHECK(v.numel() == dim, ShapeError, "curvature operator: input vector has ", v.numel(), " elements, expected ", dim);
  return v.detach().reshape({dim}).to(options);
}

/// Σ_i ⟨a_i, b_i⟩ over the defined a_i, as a scalar tensor (keeps a graph through a).
torch::Tensor dot_all(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  torch::Tensor dot;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined()) continue;
    auto term = (a[i] * b[i]).sum();
    dot = dot.defined() ? dot + term : term;
  }
  return dot;
}

torch::Tensor batch_outputs(const OutputFn& model, const Batch& b) {
  auto out = model(b.x);
  SL_CHECK(out.dim() == 2 && out.size(0) == b.size(), ShapeError, "GaussNewtonOperator: model output must have shape [",
           b.size(), ", k], got ", out.sizes());
  return out;
}

/// H_out u per sample for the chosen loss; `out` detached outputs [n, k], u [n, k].
torch::Tensor output_hessian_product(OutputLoss loss, const torch::Tensor& out, const torch::Tensor& u) {
  if (loss == OutputLoss::MeanSquaredError) return u;
  auto p = torch::softmax(out, 1);
  return p * u - p * (p * u).sum(1, true);
}

}  // namespace

torch::Tensor flatten_tensors(const std::vector<torch::Tensor>& tensors) {
  SL_CHECK(!tensors.empty(), ShapeError, "flatten_tensors: no tensors");
  std::vector<torch::Tensor> parts;
  parts.reserve(tensors.size());
  for (const auto& t : tensors) parts.push_back(t.detach().reshape({-1}));
  return torch::cat(parts);
}

std::vector<torch::Tensor> unflatten_like(const torch::Tensor& flat, const std::vector<torch::Tensor>& like) {
  const auto n = total_numel(like);
  SL_CHECK(flat.dim() == 1 && flat.numel() == n, ShapeError, "unflatten_like: vector of shape ", flat.sizes(),
           " does not hold ", n, " elements");
  std::vector<torch::Tensor> out;
  out.reserve(like.size());
  std::int64_t offset = 0;
  for (const auto& t : like) {
    out.push_back(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
  return out;
}

std::int64_t total_numel(const std::vector<torch::Tensor>& tensors) {
  std::int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

// ---------------------------------------------------------------------------------------------

DenseOperator::DenseOperator(torch::Tensor matrix, double symmetry_tol) : matrix_(std::move(matrix)) {
  SL_CHECK(matrix_.defined() && matrix_.dim() == 2 && matrix_.size(0) == matrix_.size(1) && matrix_.size(0) > 0, ShapeError,
           "DenseOperator: expected a non-empty square matrix, got shape ",
           matrix_.defined() ? matrix_.sizes() : torch::IntArrayRef{});
  SL_CHECK(matrix_.is_floating_point(), DataError, "DenseOperator: expected a floating-point matrix");
  matrix_ = matrix_.detach();
  const double scale = std::max(1.0, matrix_.abs().max().item<double>());
  const double asym = (matrix_ - matrix_.t()).abs().max().item<double>();
  SL_CHECK(asym <= symmetry_tol * scale, DataError, "DenseOperator: matrix is not symmetric (max |A − Aᵀ| = ", asym, ")");
}

torch::Tensor DenseOperator::apply(const torch::Tensor& v) const {
  return matrix_.mv(prepare(v, dim(), options()));
}

LambdaOperator::LambdaOperator(std::int64_t dim, torch::TensorOptions options,
                               std::function<torch::Tensor(const torch::Tensor&)> fn)
    : dim_(dim), options_(options), fn_(std::move(fn)) {
  SL_CHECK(dim_ > 0, ShapeError, "LambdaOperator: dimension must be positive, got ", dim_);
  SL_CHECK(static_cast<bool>(fn_), ConfigError, "LambdaOperator: empty function");
}

torch::Tensor LambdaOperator::apply(const torch::Tensor& v) const {
  auto out = fn_(prepare(v, dim_, options_));
  SL_CHECK(out.defined() && out.numel() == dim_, ShapeError, "LambdaOperator: function returned ",
           out.defined() ? out.numel() : 0, " elements, expected ", dim_);
  return out.detach().reshape({dim_}).to(options_);
}

// ---------------------------------------------------------------------------------------------

ParameterOperator::ParameterOperator(std::vector<torch::Tensor> params, std::vector<Batch> batches)
    : params_(std::move(params)), batches_(std::move(batches)) {
  SL_CHECK(!params_.empty(), ConfigError, "curvature operator: no parameters");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    SL_CHECK(params_[i].defined() && params_[i].requires_grad(), ConfigError, "curvature operator: parameter ", i,
             " is undefined or does not require grad");
    SL_CHECK(params_[i].is_floating_point(), ConfigError, "curvature operator: parameter ", i, " is not floating point");
    SL_CHECK(params_[i].scalar_type() == params_[0].scalar_type() && params_[i].device() == params_[0].device(), ConfigError,
             "curvature operator: parameter ", i, " has a different dtype or device than parameter 0");
  }
  SL_CHECK(!batches_.empty(), ConfigError, "curvature operator: no batches");
  for (std::size_t b = 0; b < batches_.size(); ++b) {
    SL_CHECK(batches_[b].x.defined() && batches_[b].x.dim() >= 1 && batches_[b].size() > 0, ConfigError,
             "curvature operator: batch ", b, " is empty");
    num_samples_ += batches_[b].size();
  }
  dim_ = total_numel(params_);
}

torch::TensorOptions ParameterOperator::options() const {
  return torch::TensorOptions().dtype(params_[0].scalar_type()).device(params_[0].device());
}

// ---------------------------------------------------------------------------------------------

HessianOperator::HessianOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches)
    : ParameterOperator(std::move(params), std::move(batches)), loss_(std::move(loss)) {
  SL_CHECK(static_cast<bool>(loss_), ConfigError, "HessianOperator: empty loss function");
}

const std::vector<std::vector<torch::Tensor>>& HessianOperator::batch_gradients() const {
  std::vector<std::int64_t> now;
  for (const auto& p : params_) now.push_back(static_cast<std::int64_t>(p._version()));
  if (reuse_ && !grads_.empty() && now == versions_) return grads_;
  grads_.clear();
  for (const auto& b : batches_) {
    const auto loss = loss_(b);
    SL_CHECK(loss.numel() == 1, ShapeError, "HessianOperator: the loss must be a scalar, got shape ", loss.sizes());
    if (!loss.requires_grad()) {  // constant in θ: zero curvature
      grads_.emplace_back();
      continue;
    }
    grads_.push_back(torch::autograd::grad({loss.reshape({})}, params_, {}, true, true, true));
  }
  versions_ = std::move(now);
  return grads_;
}

torch::Tensor HessianOperator::apply(const torch::Tensor& v_in) const {
  torch::AutoGradMode grad_mode(true);
  const auto v = prepare(v_in, dim_, options());
  const auto vs = unflatten_like(v, params_);
  auto out = torch::zeros({dim_}, options());
  const auto& grads = batch_gradients();
  for (std::size_t k = 0; k < batches_.size(); ++k) {
    if (grads[k].empty()) continue;
    const auto dot = dot_all(grads[k], vs);
    if (!dot.defined() || !dot.requires_grad()) continue;  // gradient constant in θ
    // retain_graph: the gradient graph serves the next product too.
    const auto hv = torch::autograd::grad({dot}, params_, {}, /*retain_graph=*/reuse_, false, true);
    out.add_(flatten_grads(hv, params_),
             static_cast<double>(batches_[k].size()) / static_cast<double>(num_samples_));
  }
  if (!reuse_) clear_cache();
  return out;
}

std::pair<double, torch::Tensor> HessianOperator::loss_and_gradient() const {
  torch::AutoGradMode grad_mode(true);
  double total = 0.0;
  auto g = torch::zeros({dim_}, options());
  for (const auto& b : batches_) {
    const auto loss = loss_(b);
    SL_CHECK(loss.numel() == 1, ShapeError, "HessianOperator: the loss must be a scalar, got shape ", loss.sizes());
    const double w = static_cast<double>(b.size()) / static_cast<double>(num_samples_);
    total += w * loss.item<double>();
    if (!loss.requires_grad()) continue;
    const auto grads = torch::autograd::grad({loss.reshape({})}, params_, {}, false, false, true);
    g.add_(flatten_grads(grads, params_), w);
  }
  return {total, g};
}

// ---------------------------------------------------------------------------------------------

GaussNewtonOperator::GaussNewtonOperator(std::vector<torch::Tensor> params, OutputFn model, OutputLoss loss,
                                         std::vector<Batch> batches)
    : ParameterOperator(std::move(params), std::move(batches)), model_(std::move(model)), loss_(loss) {
  SL_CHECK(static_cast<bool>(model_), ConfigError, "GaussNewtonOperator: empty model function");
}

torch::Tensor GaussNewtonOperator::apply(const torch::Tensor& v_in) const {
  torch::AutoGradMode grad_mode(true);
  const auto v = prepare(v_in, dim_, options());
  const auto vs = unflatten_like(v, params_);
  auto out = torch::zeros({dim_}, options());
  for (const auto& b : batches_) {
    const auto f = batch_outputs(model_, b);
    if (!f.requires_grad()) continue;
    // Jᵀu with a graph to the dummy u, then J v = ∂(Jᵀu · v)/∂u.
    auto u = torch::zeros_like(f).requires_grad_(true);
    const auto jtu = torch::autograd::grad({f}, params_, {u}, true, true, true);
    const auto dot = dot_all(jtu, vs);
    if (!dot.defined() || !dot.requires_grad()) continue;
    const auto jv_list = torch::autograd::grad({dot}, {u}, {}, true, false, true);
    if (!jv_list[0].defined()) continue;
    const auto w = output_hessian_product(loss_, f.detach(), jv_list[0].detach());
    const auto jtw = torch::autograd::grad({f}, params_, {w}, false, false, true);
    out.add_(flatten_grads(jtw, params_));
  }
  return out.div_(static_cast<double>(num_samples_));
}

double GaussNewtonOperator::exact_trace() const {
  torch::AutoGradMode grad_mode(true);
  double total = 0.0;
  for (const auto& b : batches_) {
    for (std::int64_t i = 0; i < b.size(); ++i) {
      const Batch one{b.x.narrow(0, i, 1), b.y.defined() ? b.y.narrow(0, i, 1) : b.y};
      const auto f = batch_outputs(model_, one);
      if (!f.requires_grad()) continue;
      const auto k = f.size(1);
      std::vector<torch::Tensor> rows;
      for (std::int64_t c = 0; c < k; ++c) {
        const auto g = torch::autograd::grad({f[0][c]}, params_, {}, true, false, true);
        rows.push_back(flatten_grads(g, params_));
      }
      const auto jac = torch::stack(rows);  // [k, D]
      const auto jjt = jac.mm(jac.t());     // [k, k]
      if (loss_ == OutputLoss::MeanSquaredError) {
        total += jjt.trace().item<double>();
      } else {
        const auto p = torch::softmax(f.detach()[0], 0);
        const auto h = torch::diag(p) - torch::outer(p, p);
        total += (h * jjt).sum().item<double>();
      }
    }
  }
  return total / static_cast<double>(num_samples_);
}

// ---------------------------------------------------------------------------------------------

EmpiricalFisherOperator::EmpiricalFisherOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches)
    : ParameterOperator(std::move(params), std::move(batches)) {
  SL_CHECK(static_cast<bool>(loss), ConfigError, "EmpiricalFisherOperator: empty loss function");
  torch::AutoGradMode grad_mode(true);
  std::vector<torch::Tensor> rows;
  rows.reserve(static_cast<std::size_t>(num_samples_));
  for (const auto& b : batches_) {
    for (std::int64_t i = 0; i < b.size(); ++i) {
      const Batch one{b.x.narrow(0, i, 1), b.y.defined() ? b.y.narrow(0, i, 1) : b.y};
      const auto l = loss(one);
      SL_CHECK(l.numel() == 1, ShapeError, "EmpiricalFisherOperator: the loss must be a scalar, got shape ", l.sizes());
      if (!l.requires_grad()) {
        rows.push_back(torch::zeros({dim_}, options()));
        continue;
      }
      rows.push_back(flatten_grads(torch::autograd::grad({l.reshape({})}, params_, {}, false, false, true), params_));
    }
  }
  grads_ = torch::stack(rows);
}

torch::Tensor EmpiricalFisherOperator::apply(const torch::Tensor& v_in) const {
  const auto v = prepare(v_in, dim_, options());
  return grads_.t().mv(grads_.mv(v)).div_(static_cast<double>(num_samples_));
}

double EmpiricalFisherOperator::exact_trace() const {
  return grads_.pow(2).sum().item<double>() / static_cast<double>(num_samples_);
}

// ---------------------------------------------------------------------------------------------

HessianVarianceOperator::HessianVarianceOperator(std::vector<torch::Tensor> params, LossFn loss, std::vector<Batch> batches)
    : ParameterOperator(std::move(params), std::move(batches)), loss_(std::move(loss)) {
  SL_CHECK(static_cast<bool>(loss_), ConfigError, "HessianVarianceOperator: empty loss function");
  for (const auto& b : batches_)
    for (std::int64_t i = 0; i < b.size(); ++i) samples_.push_back({b.x.narrow(0, i, 1), b.y.defined() ? b.y.narrow(0, i, 1) : b.y});
}

torch::Tensor HessianVarianceOperator::apply(const torch::Tensor& v_in) const {
  const auto v = prepare(v_in, dim_, options());
  const HessianOperator full(params_, loss_, batches_);
  auto out = full.apply(full.apply(v)).neg_();
  const double w = 1.0 / static_cast<double>(num_samples_);
  for (const auto& s : samples_) {
    const HessianOperator hi(params_, loss_, {s});
    out.add_(hi.apply(hi.apply(v)), w);
  }
  return out;
}

}  // namespace stablelearn::diagnostics
