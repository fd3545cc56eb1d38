// SGD commutator defect and its projection (see commutator.h).
#include "stablelearn/diagnostics/commutator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_params(const std::vector<torch::Tensor>& params, const char* who) {
  SL_CHECK(!params.empty(), ConfigError, who, ": no parameters");
  for (std::size_t i = 0; i < params.size(); ++i)
    SL_CHECK(params[i].defined() && params[i].requires_grad(), ConfigError, who, ": parameter ", i,
             " does not require grad");
}

/// ∇L(θ; batch) at the current parameters, flat and detached (zeros for unused parameters).
torch::Tensor flat_gradient(const std::vector<torch::Tensor>& params, const LossFn& loss, const Batch& batch) {
  const auto l = loss(batch);
  SL_CHECK(l.numel() == 1, ShapeError, "commutator_defect: the loss must be a scalar, got shape ", l.sizes());
  std::vector<torch::Tensor> parts;
  parts.reserve(params.size());
  if (!l.requires_grad()) {
    for (const auto& p : params) parts.push_back(torch::zeros({p.numel()}, p.options().requires_grad(false)));
    return torch::cat(parts);
  }
  const auto g = torch::autograd::grad({l.reshape({})}, params, {}, false, false, true);
  for (std::size_t i = 0; i < params.size(); ++i)
    parts.push_back(g[i].defined() ? g[i].detach().reshape({-1}) : torch::zeros({params[i].numel()}, params[i].options().requires_grad(false)));
  return torch::cat(parts);
}

/// Writes θ₀ + step into the parameters; restores θ₀ on destruction.
class ParameterShift {
 public:
  explicit ParameterShift(const std::vector<torch::Tensor>& params) : params_(params) {
    torch::NoGradGuard ng;
    for (const auto& p : params_) saved_.push_back(p.detach().clone());
  }
  ~ParameterShift() { restore(); }
  ParameterShift(const ParameterShift&) = delete;
  ParameterShift& operator=(const ParameterShift&) = delete;

  void set(const torch::Tensor& flat_step) {
    torch::NoGradGuard ng;
    const auto parts = unflatten_like(flat_step, params_);
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(saved_[i] + parts[i]);
  }
  void restore() {
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].detach().copy_(saved_[i]);
  }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> saved_;
};

/// Quantile of the finite values (NaN if there are none).
double finite_quantile(const std::vector<double>& v, double q) {
  std::vector<double> f;
  for (double x : v)
    if (std::isfinite(x)) f.push_back(x);
  return f.empty() ? kNaN : quantile(f, q);
}
double median_of(const std::vector<double>& v) { return finite_quantile(v, 0.5); }

}  // namespace

double quantile(std::vector<double> values, double q) {
  SL_CHECK(!values.empty(), ConfigError, "quantile: no values");
  SL_CHECK(q >= 0.0 && q <= 1.0, ConfigError, "quantile: q must be in [0, 1], got ", q);
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + frac * (values[hi] - values[lo]);
}

CommutatorDefect commutator_defect(const std::vector<torch::Tensor>& params, const LossFn& loss, const Batch& a,
                                   const Batch& b, double eta) {
  check_params(params, "commutator_defect");
  SL_CHECK(eta > 0.0 && std::isfinite(eta), ConfigError, "commutator_defect: learning rate must be positive, got ", eta);
  const auto g_a = flat_gradient(params, loss, a);
  const auto g_b = flat_gradient(params, loss, b);
  torch::Tensor g_b_at_a, g_a_at_b;
  {
    ParameterShift shift(params);
    shift.set(-eta * g_a);  // θ_A
    g_b_at_a = flat_gradient(params, loss, b);
    shift.set(-eta * g_b);  // θ_B
    g_a_at_b = flat_gradient(params, loss, a);
  }
  // θ_AB − θ_BA = (−ηg_A − η∇L(θ_A;B)) − (−ηg_B − η∇L(θ_B;A)) = η[(∇L(θ_B;A) − g_A) − (∇L(θ_A;B) − g_B)].
  CommutatorDefect r;
  r.delta = eta * ((g_a_at_b - g_a) - (g_b_at_a - g_b));
  r.norm = r.delta.norm().item<double>();
  r.grad_a_norm = g_a.norm().item<double>();
  r.grad_b_norm = g_b.norm().item<double>();
  const double denom = eta * eta * r.grad_a_norm * r.grad_b_norm;
  r.normalized = denom > 0.0 ? r.norm / denom : kNaN;
  return r;
}

ProjectedCommutator projected_commutator(const torch::Tensor& delta, const torch::Tensor& basis) {
  SL_CHECK(delta.defined() && delta.dim() == 1, ShapeError, "projected_commutator: delta must be a vector");
  SL_CHECK(basis.defined() && basis.dim() == 2 && basis.size(0) == delta.size(0) && basis.size(1) >= 1, ShapeError,
           "projected_commutator: basis must be [D, k] with D = ", delta.size(0), ", got ",
           basis.defined() ? basis.sizes() : torch::IntArrayRef{});
  const auto b = basis.detach().to(delta.device(), torch::kFloat64);
  const auto d = delta.detach().to(torch::kFloat64);
  const auto gram_err = (b.t().mm(b) - torch::eye(b.size(1), b.options())).abs().max().item<double>();
  SL_CHECK(gram_err <= 1e-6, DataError, "projected_commutator: the basis columns are not orthonormal (max |BᵀB − I| = ",
           gram_err, "); use orthonormal_basis()");
  ProjectedCommutator r;
  const auto coef = b.t().mv(d);
  r.in_span = b.mv(coef);
  r.residual = d - r.in_span;
  r.norm = d.norm().item<double>();
  r.in_span_norm = r.in_span.norm().item<double>();
  r.residual_norm = r.residual.norm().item<double>();
  if (r.norm > 0.0) {
    r.rho = std::min(1.0, r.in_span_norm / r.norm);
    r.energy_fraction = std::min(1.0, coef.pow(2).sum().item<double>() / (r.norm * r.norm));
  }
  return r;
}

torch::Tensor orthonormal_basis(const torch::Tensor& vectors) {
  SL_CHECK(vectors.defined() && vectors.dim() == 2 && vectors.size(0) >= 1, ShapeError,
           "orthonormal_basis: expected a [k, D] matrix of row vectors");
  SL_CHECK(vectors.size(0) <= vectors.size(1), ShapeError, "orthonormal_basis: ", vectors.size(0),
           " vectors cannot be independent in dimension ", vectors.size(1));
  torch::Tensor q, r;
  std::tie(q, r) = torch::linalg_qr(vectors.detach().to(torch::kFloat64).t());
  const auto diag = r.diagonal().abs();
  SL_CHECK(diag.min().item<double>() > 1e-10 * r.abs().max().item<double>(), DataError,
           "orthonormal_basis: the vectors are linearly dependent");
  return q.contiguous();
}

RandomSubspaceBaseline random_subspace_baseline(const torch::Tensor& delta, std::int64_t k, std::int64_t trials,
                                                std::uint64_t seed) {
  SL_CHECK(delta.defined() && delta.dim() == 1, ShapeError, "random_subspace_baseline: delta must be a vector");
  const auto dim = delta.size(0);
  SL_CHECK(k >= 1 && k <= dim, ConfigError, "random_subspace_baseline: k = ", k, " must be in [1, ", dim, "]");
  SL_CHECK(trials >= 1, ConfigError, "random_subspace_baseline: trials must be positive, got ", trials);
  const auto d = delta.detach().to(torch::kCPU, torch::kFloat64);
  const double n2 = d.pow(2).sum().item<double>();
  SL_CHECK(n2 > 0.0, DataError, "random_subspace_baseline: delta is zero");
  auto gen = detail::make_generator(seed);
  RandomSubspaceBaseline r;
  r.trials = trials;
  r.expected_energy_fraction = static_cast<double>(k) / static_cast<double>(dim);
  r.expected_rho = std::sqrt(r.expected_energy_fraction);
  for (std::int64_t t = 0; t < trials; ++t) {
    const auto g = torch::randn({dim, k}, gen, torch::TensorOptions().dtype(torch::kFloat64));
    const auto q = std::get<0>(torch::linalg_qr(g));
    const double e = std::min(1.0, q.t().mv(d).pow(2).sum().item<double>() / n2);
    r.mean_energy_fraction += e;
    r.mean_rho += std::sqrt(e);
  }
  r.mean_energy_fraction /= static_cast<double>(trials);
  r.mean_rho /= static_cast<double>(trials);
  return r;
}

CommutatorStatistics commutator_statistics(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                           const std::vector<Batch>& batches, const CommutatorOptions& o,
                                           const torch::Tensor& basis) {
  const auto nb = static_cast<std::int64_t>(batches.size());
  SL_CHECK(nb >= 2, ConfigError, "commutator_statistics: need at least two batches, got ", nb);
  SL_CHECK(o.pairs() >= 1, ConfigError, "commutator_statistics: pairs must be positive, got ", o.pairs());
  SL_CHECK(o.random_bases() >= 1, ConfigError, "commutator_statistics: random_bases must be positive, got ", o.random_bases());
  const auto dim = total_numel(params);
  if (basis.defined())
    SL_CHECK(basis.dim() == 2 && basis.size(0) == dim && basis.size(1) >= 1 && basis.size(1) <= dim, ShapeError,
             "commutator_statistics: basis must be [D, k] with D = ", dim, ", got ", basis.sizes());
  auto gen = detail::make_generator(o.seed());
  CommutatorStatistics s;
  for (std::int64_t p = 0; p < o.pairs(); ++p) {
    const auto perm = torch::randperm(nb, gen, torch::TensorOptions().dtype(torch::kInt64));
    const auto ia = perm[0].item<std::int64_t>(), ib = perm[1].item<std::int64_t>();
    s.pairs.emplace_back(ia, ib);
    const auto c = commutator_defect(params, loss, batches[static_cast<std::size_t>(ia)],
                                     batches[static_cast<std::size_t>(ib)], o.learning_rate());
    s.normalized.push_back(c.normalized);
    s.norms.push_back(c.norm);
    if (basis.defined() && c.norm > 0.0) {
      const auto pc = projected_commutator(c.delta, basis);
      const auto rb = random_subspace_baseline(c.delta, basis.size(1), o.random_bases(), o.seed() * 1000003ULL + static_cast<std::uint64_t>(p));
      s.rho.push_back(pc.rho);
      s.energy_fraction.push_back(pc.energy_fraction);
      s.random_rho.push_back(rb.mean_rho);
      s.random_energy_fraction.push_back(rb.mean_energy_fraction);
    }
  }
  s.median = median_of(s.normalized);
  s.p90 = finite_quantile(s.normalized, 0.9);
  s.median_norm = median_of(s.norms);
  s.median_rho = median_of(s.rho);
  s.median_energy_fraction = median_of(s.energy_fraction);
  s.median_random_rho = median_of(s.random_rho);
  s.median_random_energy_fraction = median_of(s.random_energy_fraction);
  std::vector<double> ratio;
  for (std::size_t i = 0; i < s.rho.size(); ++i) ratio.push_back(s.random_rho[i] > 0.0 ? s.rho[i] / s.random_rho[i] : kNaN);
  s.median_rho_ratio = median_of(ratio);
  if (basis.defined()) {
    s.basis_dim = basis.size(1);
    s.expected_random_energy_fraction = static_cast<double>(basis.size(1)) / static_cast<double>(dim);
  }
  return s;
}

}  // namespace stablelearn::diagnostics
