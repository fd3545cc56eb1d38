// Low-rank trajectory extrapolation (see relex.h).
#include "stablelearn/diagnostics/relex.h"

#include <algorithm>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

torch::Tensor RelexFit::predict(double ahead) const {
  const double tau = static_cast<double>(window - 1) + ahead;
  return base + (slope * tau + intercept).unsqueeze(0).mm(basis).squeeze(0);
}

torch::Tensor RelexFit::reconstruct(std::int64_t t) const {
  SL_CHECK(t >= 0 && t < coefficients.size(0), ConfigError, "RelexFit::reconstruct: row ", t, " outside [0, ",
           coefficients.size(0), ")");
  return base + coefficients[t].unsqueeze(0).mm(basis).squeeze(0);
}

RelexFit relex_fit(const torch::Tensor& base_in, const torch::Tensor& history, const RelexOptions& o) {
  SL_CHECK(history.defined() && history.dim() >= 1 && history.size(0) >= 2, ShapeError,
           "relex_fit: the history needs at least 2 steps");
  const auto t = history.size(0);
  const auto m_raw = history.detach().reshape({t, -1}).to(torch::kFloat64);
  SL_CHECK(base_in.defined() && base_in.numel() == m_raw.size(1), ShapeError, "relex_fit: base has ",
           base_in.defined() ? base_in.numel() : 0, " elements, each history row ", m_raw.size(1));
  SL_CHECK(o.rank() >= 1 && o.rank() <= t, ConfigError, "relex_fit: rank = ", o.rank(), " must be in [1, ", t, "]");
  const auto w = o.window() > 0 ? o.window() : t;
  SL_CHECK(w >= 2 && w <= t, ConfigError, "relex_fit: window = ", w, " must be in [2, ", t, "]");

  RelexFit f;
  f.base = base_in.detach().reshape({-1}).to(m_raw.options());
  f.window = w;
  const auto m = m_raw - f.base;
  torch::Tensor lambda, u;
  std::tie(lambda, u) = torch::linalg_eigh(m.mm(m.t()));
  lambda = lambda.flip(0);
  u = u.flip(1);
  const auto pos = lambda.clamp_min(0.0);
  const double total = pos.sum().item<double>();
  SL_CHECK(total > 0.0, DataError, "relex_fit: every history step equals the base");
  const auto s = pos.narrow(0, 0, o.rank()).sqrt();
  const auto keep = s.gt(1e-6 * s[0].item<double>());
  auto v = m.t().mm(u.narrow(1, 0, o.rank())) / s.clamp_min(1e-300);  // [D, r]
  v = v * keep.to(v.dtype());
  f.basis = v.t().contiguous();
  f.coefficients = m.mm(v);  // [T, r]
  f.explained_variance = pos.narrow(0, 0, o.rank()).sum().item<double>() / total;
  // Ordinary least squares c = a τ + b on the last W rows, τ = 0..W−1.
  const auto c = f.coefficients.narrow(0, t - w, w);
  const auto tau = torch::arange(w, m.options());
  const auto tau_c = tau - tau.mean();
  const auto c_mean = c.mean(0);
  f.slope = tau_c.matmul(c - c_mean) / tau_c.pow(2).sum();
  f.intercept = c_mean - f.slope * tau.mean();
  return f;
}

}  // namespace stablelearn::diagnostics
