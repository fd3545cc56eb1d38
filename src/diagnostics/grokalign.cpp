// GrokAlign regulariser, centroid alignment and Jacobian PC1 (see grokalign.h).
#include "stablelearn/diagnostics/grokalign.h"

#include <utility>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

/// f(x) with x a fresh leaf requiring grad; outputs flattened to [n, K].
std::pair<torch::Tensor, torch::Tensor> forward_with_input_grad(const OutputFn& model, const torch::Tensor& x,
                                                                const char* who) {
  SL_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 1, ShapeError, who, ": x must be a batch [n, ...] with n ≥ 1");
  SL_CHECK(x.is_floating_point(), ShapeError, who, ": x must be a floating-point tensor");
  auto xr = x.detach().requires_grad_(true);
  const auto f = model(xr);
  SL_CHECK(f.defined() && f.dim() >= 1 && f.size(0) == x.size(0), ShapeError, who, ": the model returned shape ",
           f.defined() ? f.sizes() : torch::IntArrayRef{}, " for a batch of ", x.size(0));
  return {xr, f.reshape({f.size(0), -1})};
}

/// Jᵀu for the flattened outputs f ([n, K]) and cotangents u ([n, K]); zeros where f does not
/// depend on x. Result flattened to [n, d].
torch::Tensor vjp(const torch::Tensor& f, const torch::Tensor& xr, const torch::Tensor& u, bool create_graph) {
  if (!f.requires_grad()) return torch::zeros({xr.size(0), xr.numel() / xr.size(0)}, xr.options().requires_grad(false));
  const auto g = torch::autograd::grad({f}, {xr}, {u}, /*retain_graph=*/true, create_graph, /*allow_unused=*/true)[0];
  if (!g.defined()) return torch::zeros({xr.size(0), xr.numel() / xr.size(0)}, xr.options().requires_grad(false));
  return g.reshape({xr.size(0), -1});
}

/// r_i = √max((K/P) Σ_p ‖J(x_i)ᵀv_{p,i}‖², 1e-8) from a forward pass already made.
torch::Tensor norm_estimates(const torch::Tensor& xr, const torch::Tensor& f, const torch::Tensor& projections,
                             bool create_graph) {
  const auto n = f.size(0), k = f.size(1);
  SL_CHECK(projections.defined() && projections.dim() == 3 && projections.size(0) >= 1 && projections.size(1) == n &&
               projections.size(2) == k,
           ShapeError, "jacobian_norm_estimates: projections must be [P, ", n, ", ", k, "], got ",
           projections.defined() ? projections.sizes() : torch::IntArrayRef{});
  const auto p = projections.size(0);
  const auto v = projections.to(f.options().requires_grad(false));
  torch::Tensor sum;
  for (std::int64_t i = 0; i < p; ++i) {
    const auto sq = vjp(f, xr, v[i], create_graph).pow(2).sum(1);
    sum = sum.defined() ? sum + sq : sq;
  }
  auto r = torch::sqrt(torch::clamp_min(sum * (static_cast<double>(k) / static_cast<double>(p)), 1e-8));
  return create_graph ? r : r.detach();
}

}  // namespace

torch::Tensor grokalign_projections(std::int64_t num_projections, std::int64_t batch, std::int64_t outputs,
                                    at::Generator& gen, const torch::TensorOptions& options) {
  SL_CHECK(num_projections >= 1 && batch >= 1 && outputs >= 1, ConfigError,
           "grokalign_projections: sizes must be positive, got P = ", num_projections, ", n = ", batch, ", K = ", outputs);
  const auto z = torch::randn({num_projections, batch, outputs}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  return (z / z.norm(2, {-1}, true).clamp_min(1e-8)).to(options);
}

torch::Tensor jacobian_norm_estimates(const OutputFn& model, const torch::Tensor& x, const torch::Tensor& projections,
                                      bool create_graph) {
  auto [xr, f] = forward_with_input_grad(model, x, "jacobian_norm_estimates");
  return norm_estimates(xr, f, projections, create_graph);
}

GrokAlign::GrokAlign(OutputFn model, GrokAlignOptions options)
    : model_(std::move(model)), options_(options), gen_(detail::make_generator(options.seed())) {
  SL_CHECK(static_cast<bool>(model_), ConfigError, "GrokAlign: no model");
  SL_CHECK(options_.num_projections() >= 1, ConfigError, "GrokAlign: num_projections must be positive, got ",
           options_.num_projections());
}

torch::Tensor GrokAlign::per_sample(const torch::Tensor& x) {
  auto [xr, f] = forward_with_input_grad(model_, x, "GrokAlign");
  const auto v = grokalign_projections(options_.num_projections(), f.size(0), f.size(1), gen_, f.options().requires_grad(false));
  return norm_estimates(xr, f, v, options_.create_graph());
}

torch::Tensor GrokAlign::operator()(const torch::Tensor& x) { return per_sample(x).mean(); }

CentroidAlignment centroid_alignment(const OutputFn& model, const torch::Tensor& x) {
  auto [xr, f] = forward_with_input_grad(model, x, "centroid_alignment");
  const auto c = vjp(f, xr, torch::ones_like(f), false).detach();  // [n, d]
  const auto xf = x.detach().reshape({x.size(0), -1}).to(c.options());
  CentroidAlignment r;
  r.centroids = c.reshape(x.sizes());
  r.inner_products = (c * xf).sum(1);
  r.norms = c.norm(2, {1});
  r.alignments = r.inner_products / (r.norms * xf.norm(2, {1})).clamp_min(1e-8);
  r.mean_alignment = r.alignments.mean().item<double>();
  return r;
}

torch::Tensor input_jacobians(const OutputFn& model, const torch::Tensor& x, bool create_graph) {
  auto [xr, f] = forward_with_input_grad(model, x, "input_jacobians");
  std::vector<torch::Tensor> rows;
  for (std::int64_t k = 0; k < f.size(1); ++k) {
    auto u = torch::zeros_like(f);
    u.select(1, k).fill_(1.0);
    rows.push_back(vjp(f, xr, u, create_graph));  // row k of every J(x_i): [n, d]
  }
  auto j = torch::stack(rows, 1);  // [n, K, d]
  return create_graph ? j : j.detach();
}

torch::Tensor jacobian_pc1(const OutputFn& model, const torch::Tensor& x) {
  const auto j = input_jacobians(model, x, false).to(torch::kFloat64);
  const auto s2 = torch::linalg_svdvals(j).pow(2);  // [n, min(K, d)] descending
  const auto total = s2.sum(1);
  return s2.select(1, 0) / total;  // 0/0 = NaN for a zero Jacobian
}

}  // namespace stablelearn::diagnostics
