// Power iteration with deflation and Lanczos with full re-orthogonalisation (see eigen.h).
#include "stablelearn/diagnostics/eigen.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

/// v minus its components along the given unit vectors (two Gram–Schmidt passes).
torch::Tensor project_out(torch::Tensor v, const std::vector<torch::Tensor>& basis) {
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& q : basis) v = v - q * q.dot(v);
  return v;
}

/// Indices of the Ritz values `theta` (ascending, from eigh) in the requested order.
std::vector<std::int64_t> ritz_order(const torch::Tensor& theta, Spectrum which) {
  const auto m = theta.size(0);
  const auto* t = theta.data_ptr<double>();
  std::vector<std::int64_t> idx(static_cast<std::size_t>(m));
  std::iota(idx.begin(), idx.end(), 0);
  switch (which) {
    case Spectrum::LargestAlgebraic:
      std::reverse(idx.begin(), idx.end());
      break;
    case Spectrum::SmallestAlgebraic:
      break;
    case Spectrum::LargestMagnitude:
      std::stable_sort(idx.begin(), idx.end(), [t](std::int64_t a, std::int64_t b) { return std::abs(t[a]) > std::abs(t[b]); });
      break;
  }
  return idx;
}

}  // namespace

EigenResult power_iteration(const CurvatureOperator& op, const PowerIterationOptions& o) {
  const auto dim = op.dim();
  SL_CHECK(o.k() >= 1 && o.k() <= dim, ConfigError, "power_iteration: k = ", o.k(), " must be in [1, ", dim, "]");
  SL_CHECK(o.max_iter() >= 1, ConfigError, "power_iteration: max_iter must be at least 1, got ", o.max_iter());
  SL_CHECK(o.tol() > 0.0, ConfigError, "power_iteration: tol must be positive, got ", o.tol());
  auto gen = detail::make_generator(o.seed());
  const auto opts = op.options();

  EigenResult r;
  r.converged = true;
  std::vector<torch::Tensor> found;
  std::vector<double> values, residuals;
  for (std::int64_t j = 0; j < o.k(); ++j) {
    auto v = project_out(detail::gaussian_probe(dim, gen, opts), found);
    v = v / v.norm();
    double lambda = 0.0, residual = 0.0;
    bool converged = false;
    for (std::int64_t it = 0; it < o.max_iter(); ++it) {
      auto w = project_out(op.apply(v), found);
      ++r.matvecs;
      ++r.iterations;
      const double lam = v.dot(w).item<double>();
      residual = (w - lam * v).norm().item<double>();
      const double wn = w.norm().item<double>();
      const bool settled = it > 0 && std::abs(lam - lambda) <= o.tol() * (std::abs(lambda) + 1e-12);
      lambda = lam;
      if (wn == 0.0 || settled) {  // wn = 0: v spans a null direction, λ = 0 exactly
        converged = true;
        break;
      }
      v = w / wn;
    }
    r.converged = r.converged && converged;
    found.push_back(v);
    values.push_back(lambda);
    residuals.push_back(residual);
  }
  r.eigenvalues = torch::tensor(values, torch::kFloat64);
  r.residuals = torch::tensor(residuals, torch::kFloat64);
  r.eigenvectors = torch::stack(found, 1);
  return r;
}

torch::Tensor LanczosDecomposition::tridiagonal() const {
  const auto m = alpha.size(0);
  auto t = torch::diag(alpha);
  if (m > 1) {
    const auto off = beta.narrow(0, 0, m - 1);
    t = t + torch::diag(off, 1) + torch::diag(off, -1);
  }
  return t;
}

LanczosDecomposition lanczos_decomposition(const CurvatureOperator& op, const torch::Tensor& start, std::int64_t steps) {
  const auto dim = op.dim();
  SL_CHECK(steps >= 1 && steps <= dim, ConfigError, "lanczos: steps = ", steps, " must be in [1, ", dim, "]");
  SL_CHECK(start.defined() && start.numel() == dim, ShapeError, "lanczos: start vector must have ", dim, " elements");
  const auto opts = op.options();
  auto q = start.detach().reshape({dim}).to(opts);
  const double qn = q.norm().item<double>();
  SL_CHECK(qn > 0.0 && std::isfinite(qn), DataError, "lanczos: start vector has norm ", qn);
  q = q / qn;

  auto basis = torch::zeros({steps, dim}, opts);
  std::vector<double> alpha, beta;
  LanczosDecomposition d;
  double scale = 0.0;
  for (std::int64_t j = 0; j < steps; ++j) {
    basis[j].copy_(q);
    auto w = op.apply(q);
    ++d.matvecs;
    const double a = q.dot(w).item<double>();
    w = w - a * q;
    if (j > 0) w = w - beta.back() * basis[j - 1];
    // Full re-orthogonalisation against every Lanczos vector so far, twice ("twice is enough").
    const auto qs = basis.narrow(0, 0, j + 1);
    for (int pass = 0; pass < 2; ++pass) w = w - qs.t().mv(qs.mv(w));
    const double b = w.norm().item<double>();
    alpha.push_back(a);
    beta.push_back(b);
    scale = std::max({scale, std::abs(a), b});
    if (j + 1 == steps) break;
    if (b <= 1e-10 * std::max(scale, 1e-300)) break;  // invariant subspace: T is exact
    q = w / b;
  }
  const auto m = static_cast<std::int64_t>(alpha.size());
  d.alpha = torch::tensor(alpha, torch::kFloat64);
  d.beta = torch::tensor(beta, torch::kFloat64);
  d.basis = basis.narrow(0, 0, m);
  return d;
}

EigenResult lanczos(const CurvatureOperator& op, const LanczosOptions& o) {
  const auto dim = op.dim();
  SL_CHECK(o.k() >= 1 && o.k() <= dim, ConfigError, "lanczos: k = ", o.k(), " must be in [1, ", dim, "]");
  const auto steps = o.steps() > 0 ? o.steps() : std::min(dim, std::max<std::int64_t>(2 * o.k() + 20, 40));
  SL_CHECK(steps >= o.k() && steps <= dim, ConfigError, "lanczos: steps = ", steps, " must be in [k = ", o.k(), ", D = ", dim, "]");
  SL_CHECK(o.tol() > 0.0, ConfigError, "lanczos: tol must be positive, got ", o.tol());
  auto gen = detail::make_generator(o.seed());
  const auto dec = lanczos_decomposition(op, detail::gaussian_probe(dim, gen, op.options()), steps);
  const auto m = dec.alpha.size(0);

  torch::Tensor theta, s;
  std::tie(theta, s) = torch::linalg_eigh(dec.tridiagonal());
  theta = theta.contiguous();
  const auto order = ritz_order(theta, o.which());
  const auto kk = std::min<std::int64_t>(o.k(), m);
  const auto idx = torch::tensor(std::vector<std::int64_t>(order.begin(), order.begin() + kk), torch::kLong);

  EigenResult r;
  r.eigenvalues = theta.index_select(0, idx);
  const auto sk = s.index_select(1, idx);                               // [m, kk]
  auto vecs = dec.basis.t().mm(sk.to(dec.basis.options()));             // [D, kk]
  r.eigenvectors = vecs / vecs.norm(2, {0}, true);
  r.residuals = (dec.beta[m - 1].abs() * sk[m - 1].abs()).contiguous();
  r.matvecs = dec.matvecs;
  r.iterations = m;
  r.converged = (r.residuals <= o.tol() * r.eigenvalues.abs().clamp_min(1e-12)).all().item<bool>();
  return r;
}

}  // namespace stablelearn::diagnostics
