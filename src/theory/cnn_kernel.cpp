#include "stablelearn/theory/cnn_kernel.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::theory {

namespace {

constexpr double kPi = 3.14159265358979323846;

// k₁ and k₀ from one angle (see the header).
std::pair<torch::Tensor, torch::Tensor> arccos_pair(const torch::Tensor& c, const torch::Tensor& a, const torch::Tensor& b) {
  const auto nab = (a * b).sqrt().clamp_min(1e-300);
  const auto cos = (c / nab).clamp(-1.0, 1.0);
  const auto theta = torch::acos(cos);
  const auto k1 = nab * ((1 - cos * cos).clamp_min(0.0).sqrt() + (kPi - theta) * cos) / kPi;
  const auto k0 = (kPi - theta) / kPi;
  return {k1, k0};
}

std::string product_text(const std::vector<std::int64_t>& f) {
  std::string s;
  for (std::size_t i = 0; i < f.size(); ++i) s += (i ? " x " : "") + std::to_string(f[i]);
  return s;
}

}  // namespace

void HierarchicalKernelOptions::fields(options::Visitor& v) {
  v("filters", filters, "filter sizes s_1 ... s_L of the layers (non-overlapping, stride = size); their product is the input dimension")
      .expect(!filters.empty(), "at least one layer")
      .each_at_least(1);
  v("inputs", inputs, "d, the input dimension").at_least(1);
}

void HierarchicalKernelOptions::cross_check() const {
  std::int64_t p = 1;
  for (auto s : filters) p *= s;
  SL_CHECK(p == inputs, ConfigError, "filters: the filter sizes ", product_text(filters), " = ", p,
           " do not tile the input dimension d = ", inputs, " (their product must equal d)");
}

HierarchicalKernelOptions HierarchicalKernelOptions::fully_connected(std::int64_t inputs, std::int64_t depth) {
  SL_CHECK(depth >= 1, ConfigError, "depth: must be >= 1, got ", depth);
  HierarchicalKernelOptions o;
  o.inputs = inputs;
  o.filters.assign(static_cast<std::size_t>(depth), 1);
  o.filters[0] = inputs;
  return o;
}

HierarchicalKernelOptions HierarchicalKernelOptions::uniform(std::int64_t filter, std::int64_t depth) {
  SL_CHECK(filter >= 1, ConfigError, "filter: must be >= 1, got ", filter);
  SL_CHECK(depth >= 1, ConfigError, "depth: must be >= 1, got ", depth);
  HierarchicalKernelOptions o;
  o.filters.assign(static_cast<std::size_t>(depth), filter);
  o.inputs = 1;
  for (std::int64_t l = 0; l < depth; ++l) o.inputs *= filter;
  return o;
}

torch::Tensor arccos_kernel1(const torch::Tensor& c, const torch::Tensor& a, const torch::Tensor& b) { return arccos_pair(c, a, b).first; }
torch::Tensor arccos_kernel0(const torch::Tensor& c, const torch::Tensor& a, const torch::Tensor& b) { return arccos_pair(c, a, b).second; }

KernelPair hierarchical_kernels(const torch::Tensor& x, const torch::Tensor& y, const HierarchicalKernelOptions& o) {
  options::check(o);
  const auto d = o.inputs;
  SL_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == d && y.size(1) == d, ShapeError, "hierarchical_kernels: x ", x.sizes(),
           ", y ", y.sizes(), ": expected rows of length d = ", d);
  const auto s1 = o.filters[0], p1 = d / s1, n = x.size(0), m = y.size(0);
  const auto yp = y.reshape({m, p1, s1}).permute({1, 2, 0});  // [P, s, m]
  const auto yy = (y.reshape({m, p1, s1}).pow(2).sum(2) / static_cast<double>(s1)).t().unsqueeze(1);  // [P, 1, m]
  KernelPair out;
  out.nngp = torch::empty({n, m}, x.options());
  out.ntk = torch::empty({n, m}, x.options());
  // Rows in chunks: the level-1 tensors hold P · chunk · m values.
  const auto chunk = std::max<std::int64_t>(1, (1 << 22) / std::max<std::int64_t>(1, p1 * m));
  for (std::int64_t r0 = 0; r0 < n; r0 += chunk) {
    const auto r1 = std::min(n, r0 + chunk), rows = r1 - r0;
    const auto xp = x.slice(0, r0, r1).reshape({rows, p1, s1});
    auto sxy = torch::matmul(xp.permute({1, 0, 2}), yp) / static_cast<double>(s1);  // [P, rows, m]
    auto sxx = (xp.pow(2).sum(2) / static_cast<double>(s1)).t().unsqueeze(2);       // [P, rows, 1]
    auto syy = yy;
    auto theta = sxy;
    auto nodes = p1;
    for (std::size_t l = 1; l < o.filters.size(); ++l) {
      const auto s = o.filters[l];
      nodes /= s;
      const auto [k1, k0] = arccos_pair(sxy, sxx, syy);
      sxy = k1.reshape({nodes, s, rows, m}).mean(1);
      theta = sxy + (k0 * theta).reshape({nodes, s, rows, m}).mean(1);
      sxx = sxx.reshape({nodes, s, rows, 1}).mean(1);  // k₁(a, a, a) = a: the diagonal is carried as is
      syy = syy.reshape({nodes, s, 1, m}).mean(1);
    }
    const auto [k1, k0] = arccos_pair(sxy, sxx, syy);  // [1, rows, m]
    out.nngp.slice(0, r0, r1).copy_(k1.squeeze(0));
    out.ntk.slice(0, r0, r1).copy_((k1 + k0 * theta).squeeze(0));
  }
  return out;
}

torch::Tensor sample_patch_spheres(std::int64_t n, const HierarchicalKernelOptions& o, at::Generator& gen) {
  options::check(o);
  SL_CHECK(n >= 1, ConfigError, "samples: must be >= 1, got ", n);
  const auto s1 = o.filters[0];
  const auto z = torch::randn({n, o.inputs / s1, s1}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  return (z / z.norm(2, {2}, true) * std::sqrt(static_cast<double>(s1))).reshape({n, o.inputs});
}

torch::Tensor sample_gaussian_process(const torch::Tensor& k, double noise, at::Generator& gen) {
  SL_CHECK(std::isfinite(noise) && noise >= 0, ConfigError, "noise: must be >= 0, got ", noise);
  SL_CHECK(k.dim() == 2 && k.size(0) == k.size(1), ShapeError, "sample_gaussian_process: covariance ", k.sizes(), ", expected [n, n]");
  const auto n = k.size(0);
  const double scale = k.diagonal().mean().item<double>();
  const auto eye = torch::eye(n, k.options());
  for (double jitter = 1e-12; jitter <= 1e-6 * 1.0001; jitter *= 100) {
    const auto [l, info] = torch::linalg_cholesky_ex(k + jitter * scale * eye);
    if (info.item<std::int64_t>() != 0) continue;
    const auto z = torch::randn({n}, gen, k.options());
    auto f = l.mv(z);
    if (noise > 0) f = f + noise * torch::randn({n}, gen, k.options());
    return f;
  }
  SL_THROW(DataError, "sample_gaussian_process: the covariance is not positive definite even with a jitter of 1e-6 x its mean diagonal");
}

torch::Tensor kernel_regression(const torch::Tensor& k_train, const torch::Tensor& y, const torch::Tensor& k_test, double ridge) {
  SL_CHECK(std::isfinite(ridge) && ridge >= 0, ConfigError, "ridge: must be >= 0, got ", ridge);
  SL_CHECK(k_train.dim() == 2 && k_train.size(0) == k_train.size(1) && y.dim() == 1 && y.size(0) == k_train.size(0) &&
               k_test.dim() == 2 && k_test.size(1) == k_train.size(0),
           ShapeError, "kernel_regression: k_train ", k_train.sizes(), ", y ", y.sizes(), ", k_test ", k_test.sizes(),
           ": expected [n, n], [n], [m, n]");
  const auto a = ridge > 0 ? k_train + ridge * torch::eye(k_train.size(0), k_train.options()) : k_train;
  const auto [lu, pivots, info] = torch::linalg_lu_factor_ex(a);
  SL_CHECK(info.item<std::int64_t>() == 0, DataError, "kernel_regression: the Gram matrix is singular; use a ridge > 0");
  const auto coef = torch::linalg_lu_solve(lu, pivots, y.unsqueeze(1)).squeeze(1);
  return k_test.mv(coef);
}

std::vector<double> nested_learning_curve(const torch::Tensor& k_pool, const torch::Tensor& y_pool, const torch::Tensor& k_test,
                                          const torch::Tensor& y_test, const std::vector<std::int64_t>& sizes, double ridge) {
  SL_CHECK(std::isfinite(ridge) && ridge >= 0, ConfigError, "ridge: must be >= 0, got ", ridge);
  const auto n = k_pool.size(0);
  SL_CHECK(k_pool.dim() == 2 && k_pool.size(1) == n && y_pool.dim() == 1 && y_pool.size(0) == n && k_test.dim() == 2 &&
               k_test.size(1) == n && y_test.dim() == 1 && y_test.size(0) == k_test.size(0),
           ShapeError, "nested_learning_curve: k_pool ", k_pool.sizes(), ", y_pool ", y_pool.sizes(), ", k_test ", k_test.sizes(),
           ", y_test ", y_test.sizes());
  std::int64_t prev = 0;
  for (auto s : sizes) {
    SL_CHECK(s > prev && s <= n, ConfigError, "sizes: must increase within 1 ... ", n, ", got ", s, " after ", prev);
    prev = s;
  }
  const auto a = ridge > 0 ? k_pool + ridge * torch::eye(n, k_pool.options()) : k_pool;
  const auto [l, info] = torch::linalg_cholesky_ex(a);
  SL_CHECK(info.item<std::int64_t>() == 0, DataError,
           "nested_learning_curve: the Gram matrix is not numerically positive definite (leading minor ", info.item<std::int64_t>(),
           "); use a ridge > 0");
  std::vector<double> out;
  for (auto s : sizes) {
    const auto coef = torch::cholesky_solve(y_pool.slice(0, 0, s).unsqueeze(1), l.slice(0, 0, s).slice(1, 0, s)).squeeze(1);
    out.push_back((k_test.slice(1, 0, s).mv(coef) - y_test).pow(2).mean().item<double>());
  }
  return out;
}

PowerLaw fit_power_law(const std::vector<double>& n, const std::vector<double>& error) {
  SL_CHECK(n.size() == error.size() && n.size() >= 2, ConfigError, "fit_power_law: ", n.size(), " sizes and ", error.size(),
           " errors; expected at least 2 of each");
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    SL_CHECK(n[i] > 0 && error[i] > 0 && std::isfinite(error[i]), ConfigError, "fit_power_law: point ", i, " (", n[i], ", ", error[i],
             ") is not positive");
    mx += std::log(n[i]);
    my += std::log(error[i]);
  }
  mx /= static_cast<double>(n.size());
  my /= static_cast<double>(n.size());
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const double dx = std::log(n[i]) - mx;
    sxy += dx * (std::log(error[i]) - my);
    sxx += dx * dx;
  }
  SL_CHECK(sxx > 0, ConfigError, "fit_power_law: every size is the same");
  const double slope = sxy / sxx;
  return {-slope, std::exp(my - slope * mx)};
}

}  // namespace stablelearn::theory
