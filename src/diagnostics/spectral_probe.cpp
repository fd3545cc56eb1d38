#include "stablelearn/diagnostics/spectral_probe.h"

#include <cmath>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {

namespace {

void check_d(const RepresentationSpectrum& s, std::int64_t d) {
  SL_CHECK(s.mean.defined() && s.mean.dim() == 1, InternalError, "spectral probe: an empty spectrum");
  SL_CHECK(d >= 1 && d <= s.width(), ConfigError, "spectral probe: d = ", d, ": expected 1..", s.width(),
           " (the representation's width)");
}

torch::Tensor as_f64(const torch::Tensor& h, const RepresentationSpectrum& s) {
  SL_CHECK(h.dim() == 2 && h.size(1) == s.width(), ShapeError, "spectral probe: representation of shape ", h.sizes(),
           ", expected [n, ", s.width(), "]");
  return h.to(s.mean.device(), torch::kFloat64);
}

}  // namespace

RepresentationSpectrum representation_spectrum(const torch::Tensor& h) {
  SL_CHECK(h.dim() == 2 && h.size(0) >= 2 && h.size(1) >= 1, ShapeError, "spectral probe: representation of shape ", h.sizes(),
           ", expected [n >= 2, D >= 1]");
  const auto x = h.detach().to(torch::kFloat64);
  SL_CHECK(torch::isfinite(x).all().item<bool>(), DataError, "spectral probe: the representation has NaN or infinite values");
  RepresentationSpectrum s;
  s.mean = x.mean(0);
  const auto c = x - s.mean;
  const auto cov = c.t().mm(c) / static_cast<double>(x.size(0));
  auto [vals, vecs] = torch::linalg_eigh(cov);  // ascending
  s.eigenvalues = vals.flip(0).clamp_min(0);
  s.directions = vecs.flip(1).contiguous();
  return s;
}

torch::Tensor principal_coordinates(const torch::Tensor& h, const RepresentationSpectrum& s, std::int64_t d) {
  check_d(s, d);
  return (as_f64(h, s) - s.mean).mm(s.directions.slice(1, 0, d));
}

torch::Tensor truncate_representation(const torch::Tensor& h, const RepresentationSpectrum& s, std::int64_t d) {
  check_d(s, d);
  const auto v = s.directions.slice(1, 0, d);
  const auto x = as_f64(h, s);
  return (s.mean + (x - s.mean).mm(v).mm(v.t())).to(h.device(), h.scalar_type());
}

torch::Tensor SpectralProbe::scores(const torch::Tensor& h, const RepresentationSpectrum& s) const {
  SL_CHECK(weight.defined(), InternalError, "spectral probe: not fitted");
  return principal_coordinates(h, s, d).mm(weight) + bias;
}

torch::Tensor SpectralProbe::predict(const torch::Tensor& h, const RepresentationSpectrum& s) const {
  return scores(h, s).argmax(1);
}

SpectralProbe fit_spectral_probe(const torch::Tensor& h, const torch::Tensor& labels, std::int64_t classes,
                                 const RepresentationSpectrum& s, std::int64_t d, double ridge) {
  SL_CHECK(classes >= 2, ConfigError, "spectral probe: classes = ", classes, ": expected at least 2");
  SL_CHECK(std::isfinite(ridge) && ridge >= 0, ConfigError, "spectral probe: ridge = ", ridge, ": expected a finite value >= 0");
  SL_CHECK(labels.dim() == 1 && labels.size(0) == h.size(0) && labels.scalar_type() == torch::kInt64, ShapeError,
           "spectral probe: labels of shape ", labels.sizes(), " (", labels.scalar_type(), "), expected [", h.size(0), "] int64");
  const auto lo = labels.min().item<std::int64_t>(), hi = labels.max().item<std::int64_t>();
  SL_CHECK(lo >= 0 && hi < classes, DataError, "spectral probe: labels in ", lo, "..", hi, ", expected 0..", classes - 1);
  const auto z = principal_coordinates(h, s, d);
  const auto y = torch::one_hot(labels.to(z.device()), classes).to(torch::kFloat64);
  // The intercept is unpenalised: centre Z and Y, solve the ridge system, b = ȳ − z̄ W.
  const auto zm = z.mean(0), ym = y.mean(0);
  const auto zc = z - zm, yc = y - ym;
  const auto a = zc.t().mm(zc) + ridge * torch::eye(d, z.options());
  SpectralProbe p;
  p.d = d;
  p.weight = torch::linalg_solve(a, zc.t().mm(yc));
  p.bias = ym - zm.matmul(p.weight);
  return p;
}

double probe_accuracy(const torch::Tensor& predictions, const torch::Tensor& labels) {
  SL_CHECK(predictions.sizes() == labels.sizes(), ShapeError, "probe accuracy: predictions ", predictions.sizes(), " vs labels ",
           labels.sizes());
  if (labels.numel() == 0) return std::nan("");
  return predictions.to(labels.device()).eq(labels).to(torch::kFloat64).mean().item<double>();
}

}  // namespace stablelearn::diagnostics
