#include "stablelearn/theory/causal_minimax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::theory {

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

torch::Tensor index_tensor(const std::vector<std::int64_t>& v, const torch::Device& device) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kInt64)).to(device);
}

// The weight matrix with the mutable rows scaled.
torch::Tensor scaled_weights(const LinearSem& sem, const Scales& scales) {
  const auto n = sem.size();
  const auto mut = sem.mutable_nodes();
  SL_CHECK(scales.size() == mut.size(), ConfigError, "causal minimax: ", scales.size(), " scales for ", mut.size(),
           " mutable nodes");
  auto w = torch::zeros({n, n}, kF64);
  auto a = w.accessor<double, 2>();
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t i = 0; i < n; ++i) a[j][i] = sem.weights[static_cast<std::size_t>(j)][static_cast<std::size_t>(i)];
  for (std::size_t k = 0; k < mut.size(); ++k) {
    SL_CHECK(std::isfinite(scales[k]), ConfigError, "causal minimax: scale of ", sem.names[static_cast<std::size_t>(mut[k])],
             " is not finite");
    w[mut[k]] *= scales[k];
  }
  return w;
}

// Least squares of column `node` on columns `parents` (no intercept): coefficients and RSS.
std::pair<torch::Tensor, double> ols(const torch::Tensor& x, std::int64_t node, const std::vector<std::int64_t>& parents) {
  const auto y = x.select(1, node);
  if (parents.empty()) return {torch::zeros({0}, x.options()), y.dot(y).item<double>()};
  const auto p = x.index_select(1, index_tensor(parents, x.device()));
  const auto beta = torch::linalg_solve(p.t().mm(p), p.t().mv(y));
  const auto r = y - p.mv(beta);
  return {beta, r.dot(r).item<double>()};
}

// Continued fraction of the incomplete beta function (modified Lentz), for x < (a + 1)/(a + b + 2).
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::abs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    const double md = m;
    double num = md * (b - md) * x / ((a + 2 * md - 1) * (a + 2 * md));  // even step
    d = 1 + num * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    num = -(a + md) * (a + b + md) * x / ((a + 2 * md) * (a + 2 * md + 1));  // odd step
    d = 1 + num * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1) < 1e-15) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
  return 1 - front * beta_cf(b, a, 1 - x) / b;
}

void check_envs(const std::vector<EnvironmentData>& envs, std::int64_t nodes) {
  SL_CHECK(envs.size() >= 2, ConfigError, "causal minimax: environments = ", envs.size(),
           ": expected at least 2 training environments");
  for (std::size_t e = 0; e < envs.size(); ++e) {
    SL_CHECK(envs[e].dim() == 2 && envs[e].size(1) == nodes, ShapeError, "causal minimax: environment ", e,
             " has shape ", envs[e].sizes(), ", expected [samples, ", nodes, "]");
    SL_CHECK(torch::isfinite(envs[e]).all().item<bool>(), DataError, "causal minimax: environment ", e,
             " has NaN or infinite values");
  }
}

}  // namespace

void LinearSem::validate() const {
  const auto n = names.size();
  SL_CHECK(n >= 2, ConfigError, "sem.names: ", n, " nodes, expected at least 2 (the target and a feature)");
  SL_CHECK(weights.size() == n, ConfigError, "sem.weights: ", weights.size(), " rows, expected ", n);
  for (std::size_t j = 0; j < n; ++j) {
    SL_CHECK(weights[j].size() == n, ConfigError, "sem.weights[", j, "]: ", weights[j].size(), " entries, expected ", n);
    for (double v : weights[j]) SL_CHECK(std::isfinite(v), ConfigError, "sem.weights[", j, "]: a value is not finite");
    SL_CHECK(weights[j][j] == 0, ConfigError, "sem.weights[", j, "][", j, "] = ", weights[j][j], ": no self-loops");
  }
  SL_CHECK(noise_std.size() == n, ConfigError, "sem.noise_std: ", noise_std.size(), " entries, expected ", n);
  for (std::size_t j = 0; j < n; ++j)
    SL_CHECK(std::isfinite(noise_std[j]) && noise_std[j] > 0, ConfigError, "sem.noise_std[", j, "] = ", noise_std[j],
             ": expected a positive number");
  SL_CHECK(mutable_node.size() == n, ConfigError, "sem.mutable: ", mutable_node.size(), " entries, expected ", n);
  SL_CHECK(target >= 0 && target < static_cast<std::int64_t>(n), ConfigError, "sem.target = ", target, ": expected 0..", n - 1);
  SL_CHECK(!mutable_node[static_cast<std::size_t>(target)], ConfigError, "sem.mutable: the target ", names[static_cast<std::size_t>(target)],
           " must have a stable mechanism");
  for (std::size_t j = 0; j < n; ++j)
    if (mutable_node[j])
      SL_CHECK(!parents(static_cast<std::int64_t>(j)).empty(), ConfigError, "sem.mutable: ", names[j],
               " has no parents, so scaling its mechanism changes nothing");
  topological_order();  // throws on a cycle
}

std::vector<std::int64_t> LinearSem::parents(std::int64_t j) const {
  std::vector<std::int64_t> p;
  const auto& row = weights.at(static_cast<std::size_t>(j));
  for (std::size_t i = 0; i < row.size(); ++i)
    if (row[i] != 0) p.push_back(static_cast<std::int64_t>(i));
  return p;
}

std::vector<std::int64_t> LinearSem::topological_order() const {
  const auto n = size();
  std::vector<int> indeg(static_cast<std::size_t>(n), 0);
  for (std::int64_t j = 0; j < n; ++j) indeg[static_cast<std::size_t>(j)] = static_cast<int>(parents(j).size());
  std::vector<std::int64_t> order;
  std::vector<bool> done(static_cast<std::size_t>(n), false);
  while (static_cast<std::int64_t>(order.size()) < n) {
    bool progressed = false;
    for (std::int64_t j = 0; j < n; ++j) {
      if (done[static_cast<std::size_t>(j)] || indeg[static_cast<std::size_t>(j)] != 0) continue;
      done[static_cast<std::size_t>(j)] = true;
      order.push_back(j);
      progressed = true;
      for (std::int64_t c = 0; c < n; ++c)
        if (weights[static_cast<std::size_t>(c)][static_cast<std::size_t>(j)] != 0) --indeg[static_cast<std::size_t>(c)];
    }
    SL_CHECK(progressed, ConfigError, "sem.weights: the graph has a cycle");
  }
  return order;
}

std::vector<std::int64_t> LinearSem::mutable_nodes() const {
  std::vector<std::int64_t> m;
  for (std::int64_t j = 0; j < size(); ++j)
    if (mutable_node[static_cast<std::size_t>(j)]) m.push_back(j);
  return m;
}

std::vector<std::int64_t> LinearSem::stable_features() const {
  std::vector<std::int64_t> s;
  for (std::int64_t j = 0; j < size(); ++j)
    if (j != target && !mutable_node[static_cast<std::size_t>(j)]) s.push_back(j);
  return s;
}

std::vector<std::int64_t> LinearSem::features() const {
  std::vector<std::int64_t> s;
  for (std::int64_t j = 0; j < size(); ++j)
    if (j != target) s.push_back(j);
  return s;
}

torch::Tensor sem_covariance(const LinearSem& sem, const Scales& scales) {
  sem.validate();
  const auto w = scaled_weights(sem, scales);
  const auto n = sem.size();
  const auto a_inv = torch::inverse(torch::eye(n, kF64) - w);
  auto d = torch::tensor(sem.noise_std, kF64).square();
  return a_inv.mm(torch::diag(d)).mm(a_inv.t());
}

torch::Tensor sem_sample(const LinearSem& sem, const Scales& scales, std::int64_t n, at::Generator& gen) {
  sem.validate();
  SL_CHECK(n > 0, ConfigError, "causal minimax: samples = ", n, ": expected at least 1");
  const auto w = scaled_weights(sem, scales);
  const auto nodes = sem.size();
  // Noise first, one draw for the whole matrix, then the equations in topological order.
  const auto eps = torch::randn({n, nodes}, gen, kF64) * torch::tensor(sem.noise_std, kF64);
  std::vector<torch::Tensor> col(static_cast<std::size_t>(nodes));
  for (auto j : sem.topological_order()) {
    auto v = eps.select(1, j).clone();
    for (auto i : sem.parents(j)) v += w[j][i].item<double>() * col[static_cast<std::size_t>(i)];
    col[static_cast<std::size_t>(j)] = v;
  }
  return torch::stack(col, 1);
}

torch::Tensor regression_coefficients(const torch::Tensor& m, std::int64_t target, const std::vector<std::int64_t>& features) {
  SL_CHECK(m.dim() == 2 && m.size(0) == m.size(1), ShapeError, "regression: the moment matrix must be square, got ", m.sizes());
  if (features.empty()) return torch::zeros({0}, m.options());
  const auto f = index_tensor(features, m.device());
  const auto mff = m.index_select(0, f).index_select(1, f);
  const auto mfy = m.index_select(0, f).select(1, target);
  const auto eig = torch::linalg_eigvalsh(mff);
  const double lo = eig.min().item<double>(), hi = eig.max().item<double>();
  SL_CHECK(lo > 1e-12 * std::max(hi, 1e-300), DataError, "regression: the features' second-moment matrix is singular (eigenvalues ",
           lo, " .. ", hi, ")");
  return torch::linalg_solve(mff, mfy);
}

double linear_risk(const torch::Tensor& cov, std::int64_t target, const std::vector<std::int64_t>& features,
                   const torch::Tensor& beta) {
  SL_CHECK(beta.dim() == 1 && beta.size(0) == static_cast<std::int64_t>(features.size()), ShapeError, "risk: beta has shape ",
           beta.sizes(), ", expected [", features.size(), "]");
  double r = cov[target][target].item<double>();
  if (features.empty()) return r;
  const auto f = index_tensor(features, cov.device());
  const auto b = beta.to(cov.options());
  const auto cff = cov.index_select(0, f).index_select(1, f);
  const auto cfy = cov.index_select(0, f).select(1, target);
  return r - 2 * b.dot(cfy).item<double>() + b.dot(cff.mv(b)).item<double>();
}

WorstCase worst_case_risk(const LinearSem& sem, const ShiftBox& box, const std::vector<std::int64_t>& features,
                          const torch::Tensor& beta) {
  const auto m = sem.mutable_nodes();
  SL_CHECK(box.lo.size() == m.size() && box.hi.size() == m.size(), ConfigError, "causal minimax: the shift box has ",
           box.lo.size(), "/", box.hi.size(), " bounds, expected one per mutable node (", m.size(), ")");
  for (std::size_t k = 0; k < m.size(); ++k)
    SL_CHECK(std::isfinite(box.lo[k]) && std::isfinite(box.hi[k]) && box.lo[k] <= box.hi[k], ConfigError,
             "causal minimax: shift box of ", sem.names[static_cast<std::size_t>(m[k])], " is [", box.lo[k], ", ", box.hi[k],
             "], expected finite lo <= hi");
  SL_CHECK(m.size() <= 16, ConfigError, "causal minimax: ", m.size(), " mutable nodes, at most 16 (2^m box vertices)");
  WorstCase out;
  out.risk = -std::numeric_limits<double>::infinity();
  double lo_risk = std::numeric_limits<double>::infinity();
  const std::uint64_t corners = 1ULL << m.size();
  for (std::uint64_t c = 0; c < corners; ++c) {
    Scales t(m.size());
    for (std::size_t k = 0; k < m.size(); ++k) t[k] = (c >> k) & 1ULL ? box.hi[k] : box.lo[k];
    const double r = linear_risk(sem_covariance(sem, t), sem.target, features, beta);
    lo_risk = std::min(lo_risk, r);
    if (r > out.risk) {
      out.risk = r;
      out.at = t;
    }
  }
  Scales centre(m.size());
  for (std::size_t k = 0; k < m.size(); ++k) centre[k] = (box.lo[k] + box.hi[k]) / 2;
  lo_risk = std::min(lo_risk, linear_risk(sem_covariance(sem, centre), sem.target, features, beta));
  out.invariant = out.risk - lo_risk <= 1e-9 * std::max(1.0, std::abs(out.risk));
  return out;
}

double f_cdf(double f, double d1, double d2) {
  SL_CHECK(d1 > 0 && d2 > 0, ConfigError, "f_cdf: degrees of freedom (", d1, ", ", d2, ") must be positive");
  if (!(f > 0)) return 0;
  if (std::isinf(f)) return 1;
  return incomplete_beta(d1 / 2, d2 / 2, d1 * f / (d1 * f + d2));
}

MechanismTest test_mechanism(const std::vector<EnvironmentData>& envs, std::int64_t node, const std::vector<std::int64_t>& parents) {
  SL_CHECK(envs.size() >= 2, ConfigError, "causal minimax: environments = ", envs.size(),
           ": expected at least 2 training environments");
  MechanismTest t;
  if (parents.empty()) return t;
  const auto k = static_cast<std::int64_t>(parents.size());
  const auto big_k = static_cast<std::int64_t>(envs.size());
  double rss_sep = 0;
  std::int64_t n = 0;
  for (const auto& x : envs) {
    SL_CHECK(x.size(0) > k, DataError, "causal minimax: an environment has ", x.size(0), " samples, the mechanism test of node ",
             node, " needs more than its ", k, " parents");
    rss_sep += ols(x, node, parents).second;
    n += x.size(0);
  }
  const double rss_pool = ols(torch::cat(envs, 0), node, parents).second;
  t.df1 = k * (big_k - 1);
  t.df2 = n - k * big_k;
  SL_CHECK(t.df2 > 0, DataError, "causal minimax: too few samples for the mechanism test of node ", node);
  t.statistic = std::max(0.0, (rss_pool - rss_sep) / static_cast<double>(t.df1)) / (rss_sep / static_cast<double>(t.df2));
  t.p_value = 1 - f_cdf(t.statistic, static_cast<double>(t.df1), static_cast<double>(t.df2));
  return t;
}

std::vector<bool> detect_mutable(const std::vector<EnvironmentData>& envs, const LinearSem& structure, double level) {
  SL_CHECK(std::isfinite(level) && level > 0 && level < 1, ConfigError, "causal minimax: level = ", level,
           ": expected a significance level in (0, 1)");
  check_envs(envs, structure.size());
  const auto n = structure.size();
  std::vector<bool> out(static_cast<std::size_t>(n), false);
  const double cut = level / static_cast<double>(n - 1);
  for (std::int64_t j = 0; j < n; ++j) {
    if (j == structure.target) continue;
    out[static_cast<std::size_t>(j)] = test_mechanism(envs, j, structure.parents(j)).p_value < cut;
  }
  return out;
}

LinearSem fit_sem(const std::vector<EnvironmentData>& envs, const LinearSem& structure, const std::vector<bool>& mutable_flags,
                  ShiftBox& box) {
  check_envs(envs, structure.size());
  const auto n = structure.size();
  SL_CHECK(static_cast<std::int64_t>(mutable_flags.size()) == n, ConfigError, "causal minimax: ", mutable_flags.size(),
           " mutable flags, expected ", n);
  LinearSem fit = structure;
  fit.mutable_node = mutable_flags;
  box = {};
  const auto pooled = torch::cat(envs, 0);
  for (std::int64_t j = 0; j < n; ++j) {
    const auto pa = structure.parents(j);
    auto& row = fit.weights[static_cast<std::size_t>(j)];
    if (!mutable_flags[static_cast<std::size_t>(j)] || pa.empty()) {
      const auto [beta, rss] = ols(pooled, j, pa);
      for (std::size_t q = 0; q < pa.size(); ++q) row[static_cast<std::size_t>(pa[q])] = beta[static_cast<std::int64_t>(q)].item<double>();
      fit.noise_std[static_cast<std::size_t>(j)] =
          std::sqrt(rss / static_cast<double>(pooled.size(0) - static_cast<std::int64_t>(pa.size())));
      fit.mutable_node[static_cast<std::size_t>(j)] = false;
      continue;
    }
    std::vector<torch::Tensor> coefs;
    double var = 0;
    for (const auto& x : envs) {
      const auto [beta, rss] = ols(x, j, pa);
      coefs.push_back(beta);
      var += rss / static_cast<double>(x.size(0) - static_cast<std::int64_t>(pa.size()));
    }
    const auto c = torch::stack(coefs, 0);  // [K, k]
    auto svd = torch::linalg_svd(c, false);
    auto w = std::get<2>(svd)[0];
    if (w.sum().item<double>() < 0) w = -w;  // a fixed sign; the box covers the scales either way
    const auto t = c.mv(w);
    for (std::size_t q = 0; q < pa.size(); ++q) row[static_cast<std::size_t>(pa[q])] = w[static_cast<std::int64_t>(q)].item<double>();
    fit.noise_std[static_cast<std::size_t>(j)] = std::sqrt(var / static_cast<double>(envs.size()));
    box.lo.push_back(t.min().item<double>());
    box.hi.push_back(t.max().item<double>());
  }
  return fit;
}

torch::Tensor pooled_moment(const std::vector<EnvironmentData>& envs) {
  SL_CHECK(!envs.empty(), ConfigError, "causal minimax: environments = 0: expected at least 1");
  const auto x = torch::cat(envs, 0);
  return x.t().mm(x) / static_cast<double>(x.size(0));
}

MinimaxResult minimax_subsets(const LinearSem& sem, const ShiftBox& box, const torch::Tensor& moment,
                              const std::vector<std::int64_t>& candidates) {
  SL_CHECK(candidates.size() <= 20, ConfigError, "causal minimax: candidates = ", candidates.size(),
           " features, at most 20 for the exhaustive subset search");
  for (auto c : candidates)
    SL_CHECK(c >= 0 && c < sem.size() && c != sem.target, ConfigError, "causal minimax: candidates: ", c,
             " is not a feature of the SEM");
  MinimaxResult out;
  const std::uint64_t count = 1ULL << candidates.size();
  bool have_invariant = false;
  for (std::uint64_t mask = 0; mask < count; ++mask) {
    SubsetRisk s;
    for (std::size_t k = 0; k < candidates.size(); ++k)
      if ((mask >> k) & 1ULL) s.features.push_back(candidates[k]);
    s.beta = regression_coefficients(moment, sem.target, s.features);
    s.worst = worst_case_risk(sem, box, s.features, s.beta);
    out.subsets.push_back(std::move(s));
    const auto i = out.subsets.size() - 1;
    if (out.subsets[i].worst.risk < out.subsets[out.best].worst.risk) out.best = i;
    if (out.subsets[i].worst.invariant &&
        (!have_invariant || out.subsets[i].worst.risk < out.subsets[out.best_invariant].worst.risk)) {
      out.best_invariant = i;
      have_invariant = true;
    }
  }
  return out;
}

}  // namespace stablelearn::theory
