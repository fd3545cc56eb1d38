// Stochastic Lanczos quadrature (see density.h).
#include "stablelearn/diagnostics/density.h"

#include <algorithm>
#include <cmath>

#include "probes.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/eigen.h"

namespace stablelearn::diagnostics {

double SpectralDensity::mean() const {
  double total = 0.0;
  for (std::size_t r = 0; r < nodes.size(); ++r) total += (nodes[r] * weights[r]).sum().item<double>();
  return nodes.empty() ? 0.0 : total / static_cast<double>(nodes.size());
}

double SpectralDensity::mass(double lo, double hi) const {
  double total = 0.0;
  for (std::size_t r = 0; r < nodes.size(); ++r) {
    const auto in = nodes[r].ge(lo).logical_and(nodes[r].le(hi));
    total += weights[r].masked_select(in).sum().item<double>();
  }
  return nodes.empty() ? 0.0 : total / static_cast<double>(nodes.size());
}

SpectralDensity spectral_density(const CurvatureOperator& op, const DensityOptions& o) {
  SL_CHECK(o.runs() >= 1, ConfigError, "spectral_density: runs must be at least 1, got ", o.runs());
  SL_CHECK(o.steps() >= 1, ConfigError, "spectral_density: steps must be at least 1, got ", o.steps());
  SL_CHECK(o.grid_points() >= 2, ConfigError, "spectral_density: grid_points must be at least 2, got ", o.grid_points());
  SL_CHECK(o.sigma() >= 0.0, ConfigError, "spectral_density: sigma must be non-negative, got ", o.sigma());
  SL_CHECK(o.padding() >= 0.0, ConfigError, "spectral_density: padding must be non-negative, got ", o.padding());
  const auto dim = op.dim();
  const auto steps = std::min(o.steps(), dim);
  auto gen = detail::make_generator(o.seed());

  SpectralDensity out;
  double lo = INFINITY, hi = -INFINITY;
  for (std::int64_t r = 0; r < o.runs(); ++r) {
    const auto dec = lanczos_decomposition(op, detail::rademacher_probe(dim, gen, op.options()), steps);
    out.matvecs += dec.matvecs;
    torch::Tensor theta, s;
    std::tie(theta, s) = torch::linalg_eigh(dec.tridiagonal());
    out.nodes.push_back(theta.contiguous());
    out.weights.push_back(s[0].pow(2).contiguous());
    lo = std::min(lo, theta.min().item<double>());
    hi = std::max(hi, theta.max().item<double>());
  }
  const double range = hi - lo;
  double sigma = o.sigma();
  if (sigma == 0.0) sigma = range > 0.0 ? range / static_cast<double>(steps) : 1e-3 * std::max(1.0, std::abs(hi));
  out.sigma = sigma;
  const double pad = std::max(o.padding() * range, 5.0 * sigma);
  out.grid = torch::linspace(lo - pad, hi + pad, o.grid_points(), torch::kFloat64);
  out.density = torch::zeros({o.grid_points()}, torch::kFloat64);
  const double norm = 1.0 / (sigma * std::sqrt(2.0 * M_PI) * static_cast<double>(o.runs()));
  for (std::size_t r = 0; r < out.nodes.size(); ++r) {
    const auto diff = out.grid.unsqueeze(1) - out.nodes[r].unsqueeze(0);  // [G, m]
    out.density += torch::exp(-0.5 * diff.pow(2) / (sigma * sigma)).mv(out.weights[r]) * norm;
  }
  return out;
}

}  // namespace stablelearn::diagnostics
