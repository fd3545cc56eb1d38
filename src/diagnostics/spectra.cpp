// Weight spectra, power-law fit, principal angles (see spectra.h).
#include "stablelearn/diagnostics/spectra.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

torch::Tensor as_matrix(const torch::Tensor& w, const char* who) {
  SL_CHECK(w.defined() && w.dim() >= 2 && w.numel() > 0, ShapeError, who, ": expected a non-empty tensor with at least 2 dimensions");
  return w.detach().reshape({w.size(0), -1}).to(torch::kFloat64).cpu();
}

torch::Tensor singular_values(const torch::Tensor& w, const char* who) { return torch::linalg_svdvals(as_matrix(w, who)); }

}  // namespace

torch::Tensor weight_esd(const torch::Tensor& w, bool normalize) {
  const auto m = as_matrix(w, "weight_esd");
  const auto n = std::max(m.size(0), m.size(1));
  auto ev = torch::linalg_svdvals(m).pow(2);
  if (normalize) ev = ev / static_cast<double>(n);
  return std::get<0>(ev.sort());
}

PowerLawFit fit_power_law(const torch::Tensor& samples, const PowerLawOptions& o) {
  SL_CHECK(o.min_tail() >= 2, ConfigError, "fit_power_law: min_tail must be at least 2, got ", o.min_tail());
  SL_CHECK(samples.defined(), DataError, "fit_power_law: undefined samples");
  const auto flat = samples.detach().reshape({-1}).to(torch::kFloat64).cpu().contiguous();
  SL_CHECK(torch::isfinite(flat).all().item<bool>(), DataError, "fit_power_law: samples contain NaN or inf");
  const auto kept = std::get<0>(flat.masked_select(flat > o.min_value()).sort()).contiguous();
  const auto n = kept.size(0);
  SL_CHECK(n >= o.min_tail(), DataError, "fit_power_law: only ", n, " samples exceed ", o.min_value(), "; need at least ", o.min_tail());
  const double* x = kept.data_ptr<double>();
  // suffix[j] = Σ_{i ≥ j} ln x_i
  std::vector<double> logs(static_cast<std::size_t>(n)), suffix(static_cast<std::size_t>(n) + 1, 0.0);
  for (std::int64_t i = 0; i < n; ++i) logs[i] = std::log(x[i]);
  for (std::int64_t i = n - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + logs[i];

  PowerLawFit best;
  best.num_samples = n;
  best.ks_distance = INFINITY;
  for (std::int64_t j = 0; j + o.min_tail() <= n; ++j) {
    if (j > 0 && x[j] == x[j - 1]) continue;  // each distinct value once
    const auto tail = n - j;
    const double xmin = x[j];
    const double sum_log = suffix[j] - static_cast<double>(tail) * logs[j];
    if (!(sum_log > 0.0)) continue;  // all tail samples equal: no finite α
    const double alpha = 1.0 + static_cast<double>(tail) / sum_log;
    double d = 0.0;
    for (std::int64_t i = 0; i < tail; ++i) {
      const double f = 1.0 - std::exp((1.0 - alpha) * (logs[j + i] - logs[j]));
      const double lo = static_cast<double>(i) / static_cast<double>(tail);
      const double hi = static_cast<double>(i + 1) / static_cast<double>(tail);
      d = std::max({d, std::abs(f - lo), std::abs(f - hi)});
    }
    if (d < best.ks_distance) {
      best.ks_distance = d;
      best.alpha = alpha;
      best.xmin = xmin;
      best.tail_size = tail;
      best.sigma = (alpha - 1.0) / std::sqrt(static_cast<double>(tail));
    }
  }
  SL_CHECK(std::isfinite(best.ks_distance), DataError, "fit_power_law: no x_min leaves a non-degenerate tail of ", o.min_tail(),
           " samples");
  return best;
}

torch::Tensor subspace_angles(const torch::Tensor& u, const torch::Tensor& v) {
  SL_CHECK(u.defined() && v.defined() && u.dim() == 2 && v.dim() == 2 && u.size(0) == v.size(0), ShapeError,
           "subspace_angles: expected two matrices with the same number of rows");
  const auto s = torch::linalg_svdvals(u.to(torch::kFloat64).t().mm(v.to(torch::kFloat64))).clamp(0.0, 1.0);
  return torch::arccos(s);  // σ descending ⇒ angles ascending
}

PrincipalAngles principal_angles(const torch::Tensor& w0, const torch::Tensor& w1, std::int64_t k) {
  const auto a = as_matrix(w0, "principal_angles");
  const auto b = as_matrix(w1, "principal_angles");
  SL_CHECK(a.sizes() == b.sizes(), ShapeError, "principal_angles: shapes ", a.sizes(), " and ", b.sizes(), " differ");
  SL_CHECK(k >= 1 && k <= std::min(a.size(0), a.size(1)), ConfigError, "principal_angles: k = ", k, " must be in [1, ",
           std::min(a.size(0), a.size(1)), "]");
  const auto sa = torch::linalg_svd(a, false);
  const auto sb = torch::linalg_svd(b, false);
  PrincipalAngles r;
  r.left = subspace_angles(std::get<0>(sa).narrow(1, 0, k), std::get<0>(sb).narrow(1, 0, k));
  r.right = subspace_angles(std::get<2>(sa).narrow(0, 0, k).t(), std::get<2>(sb).narrow(0, 0, k).t());
  return r;
}

double spectral_drift(const torch::Tensor& w0, const torch::Tensor& w1, std::int64_t k) {
  auto s0 = singular_values(w0, "spectral_drift");
  auto s1 = singular_values(w1, "spectral_drift");
  SL_CHECK(s0.sizes() == s1.sizes(), ShapeError, "spectral_drift: the matrices have different shapes");
  SL_CHECK(k >= 0 && k <= s0.size(0), ConfigError, "spectral_drift: k = ", k, " must be in [0, ", s0.size(0), "]");
  if (k > 0) s0 = s0.narrow(0, 0, k), s1 = s1.narrow(0, 0, k);
  const double n0 = s0.norm().item<double>();
  SL_CHECK(n0 > 0.0, DataError, "spectral_drift: W0 is zero");
  return (s1 - s0).norm().item<double>() / n0;
}

double stable_rank(const torch::Tensor& w) {
  const auto s = singular_values(w, "stable_rank");
  const double top = s[0].item<double>();
  SL_CHECK(top > 0.0, DataError, "stable_rank: the matrix is zero");
  return s.pow(2).sum().item<double>() / (top * top);
}

}  // namespace stablelearn::diagnostics
