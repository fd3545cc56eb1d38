// Hutchinson, Hutch++ and Frobenius-norm estimators (see trace.h).
#include "stablelearn/diagnostics/trace.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

torch::Tensor probe(ProbeDistribution d, std::int64_t n, at::Generator& gen, const torch::TensorOptions& opts) {
  return d == ProbeDistribution::Rademacher ? detail::rademacher_probe(n, gen, opts) : detail::gaussian_probe(n, gen, opts);
}

/// Fills estimate (mean of samples + offset) and standard error (sample std / √n).
void summarise(TraceResult& r, double offset) {
  const auto n = static_cast<double>(r.samples.size());
  const double mean = std::accumulate(r.samples.begin(), r.samples.end(), 0.0) / n;
  double ss = 0.0;
  for (double s : r.samples) ss += (s - mean) * (s - mean);
  r.standard_error = n > 1 ? std::sqrt(ss / (n - 1) / n) : 0.0;
  r.estimate = mean + offset;
  for (double& s : r.samples) s += offset;
}

}  // namespace

TraceResult hutchinson_trace(const CurvatureOperator& op, const TraceOptions& o) {
  SL_CHECK(o.matvecs() >= 2, ConfigError, "hutchinson_trace: matvecs must be at least 2, got ", o.matvecs());
  auto gen = detail::make_generator(o.seed());
  TraceResult r;
  for (std::int64_t i = 0; i < o.matvecs(); ++i) {
    const auto z = probe(o.distribution(), op.dim(), gen, op.options());
    r.samples.push_back(z.dot(op.apply(z)).item<double>());
    ++r.matvecs;
  }
  summarise(r, 0.0);
  return r;
}

TraceResult hutchpp_trace(const CurvatureOperator& op, const TraceOptions& o) {
  SL_CHECK(o.matvecs() >= 4, ConfigError, "hutchpp_trace: matvecs must be at least 4, got ", o.matvecs());
  const auto dim = op.dim();
  const auto opts = op.options();
  auto gen = detail::make_generator(o.seed());
  const auto k = std::min<std::int64_t>(o.matvecs() / 3, dim);
  const auto g = o.matvecs() - 2 * k;
  TraceResult r;
  // Sketch: Y = A S, Q = orth(Y).
  std::vector<torch::Tensor> ys;
  for (std::int64_t j = 0; j < k; ++j) {
    ys.push_back(op.apply(probe(o.distribution(), dim, gen, opts)));
    ++r.matvecs;
  }
  const auto q = std::get<0>(torch::linalg_qr(torch::stack(ys, 1)));  // [D, k]
  double exact = 0.0;
  for (std::int64_t j = 0; j < k; ++j) {
    const auto qj = q.select(1, j).contiguous();
    exact += qj.dot(op.apply(qj)).item<double>();
    ++r.matvecs;
  }
  for (std::int64_t j = 0; j < g; ++j) {
    auto z = probe(o.distribution(), dim, gen, opts);
    z = z - q.mv(q.t().mv(z));
    r.samples.push_back(z.dot(op.apply(z)).item<double>());
    ++r.matvecs;
  }
  summarise(r, exact);
  return r;
}

TraceResult frobenius_norm_squared(const CurvatureOperator& op, const TraceOptions& o) {
  SL_CHECK(o.matvecs() >= 2, ConfigError, "frobenius_norm_squared: matvecs must be at least 2, got ", o.matvecs());
  auto gen = detail::make_generator(o.seed());
  TraceResult r;
  for (std::int64_t i = 0; i < o.matvecs(); ++i) {
    const auto z = probe(o.distribution(), op.dim(), gen, op.options());
    r.samples.push_back(op.apply(z).pow(2).sum().item<double>());
    ++r.matvecs;
  }
  summarise(r, 0.0);
  return r;
}

}  // namespace stablelearn::diagnostics
