#include "stablelearn/rl/hyperbolic.h"

#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::rl::hyperbolic {

namespace {
// ‖u‖ over the last dimension, kept away from 0 (the maps' u/‖u‖ then vanish with u).
torch::Tensor safe_norm(const torch::Tensor& u) { return u.norm(2, -1, true).clamp_min(1e-15); }
void check_c(double c) { SL_CHECK(c > 0 && std::isfinite(c), ConfigError, "ppo.curvature: must be > 0, got ", c); }
}  // namespace

torch::Tensor minkowski_dot(const torch::Tensor& x, const torch::Tensor& y) {
  const auto p = x * y;
  return p.narrow(-1, 1, p.size(-1) - 1).sum(-1) - p.select(-1, 0);
}

torch::Tensor hyperboloid_expmap0(const torch::Tensor& u, double c) {
  check_c(c);
  const auto t = u.to(torch::kFloat64);
  const double sc = std::sqrt(c);
  const auto n = safe_norm(t);
  const auto x0 = torch::cosh(sc * n) / sc;
  const auto xs = torch::sinh(sc * n) / (sc * n) * t;
  return torch::cat({x0, xs}, -1).to(u.scalar_type());
}

torch::Tensor hyperboloid_mlr(const torch::Tensor& x, const torch::Tensor& z, const torch::Tensor& r, double c) {
  check_c(c);
  SL_CHECK(x.size(-1) == z.size(1) + 1 && r.dim() == 1 && r.size(0) == z.size(0), ShapeError,
           "hyperboloid_mlr: expected x [..., d+1], z [K, d], r [K], got ", x.sizes(), ", ", z.sizes(), ", ", r.sizes());
  const double sc = std::sqrt(c);
  const auto xd = x.to(torch::kFloat64), zd = z.to(torch::kFloat64), rd = r.to(torch::kFloat64);
  const auto zn = zd.norm(2, -1).clamp_min(1e-15);  // [K]
  const auto x0 = xd.narrow(-1, 0, 1), xs = xd.narrow(-1, 1, xd.size(-1) - 1);
  const auto alpha = -x0 * (torch::sinh(sc * rd) * zn) + torch::cosh(sc * rd) * torch::matmul(xs, zd.t());
  return (zn * torch::asinh(sc * alpha / zn) / sc).to(x.scalar_type());
}

torch::Tensor poincare_expmap0(const torch::Tensor& u, double c) {
  check_c(c);
  const auto t = u.to(torch::kFloat64);
  const double sc = std::sqrt(c);
  const auto n = safe_norm(t);
  return (torch::tanh(sc * n) / (sc * n) * t).to(u.scalar_type());
}

torch::Tensor mobius_add(const torch::Tensor& x, const torch::Tensor& y, double c) {
  const auto xy = (x * y).sum(-1, true), x2 = (x * x).sum(-1, true), y2 = (y * y).sum(-1, true);
  const auto num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y;
  return num / (1 + 2 * c * xy + c * c * x2 * y2).clamp_min(1e-15);
}

torch::Tensor poincare_mlr(const torch::Tensor& x, const torch::Tensor& p, const torch::Tensor& a, double c) {
  check_c(c);
  SL_CHECK(x.size(-1) == p.size(1) && p.sizes() == a.sizes() && p.dim() == 2, ShapeError,
           "poincare_mlr: expected x [..., d], p [K, d], a [K, d], got ", x.sizes(), ", ", p.sizes(), ", ", a.sizes());
  const double sc = std::sqrt(c);
  const auto xd = x.to(torch::kFloat64).unsqueeze(-2);  // [..., 1, d]
  const auto pd = p.to(torch::kFloat64), ad = a.to(torch::kFloat64);
  const auto w = mobius_add(-pd, xd, c);                // [..., K, d]
  const auto an = ad.norm(2, -1).clamp_min(1e-15);      // [K]
  const auto lam = 2.0 / (1 - c * (pd * pd).sum(-1)).clamp_min(1e-15);
  const auto w2 = (w * w).sum(-1);
  const auto arg = 2 * sc * (w * ad).sum(-1) / ((1 - c * w2).clamp_min(1e-15) * an);
  return (lam * an / sc * torch::asinh(arg)).to(x.scalar_type());
}

torch::Tensor hl_gauss_targets(const torch::Tensor& y, std::int64_t bins, double lo, double hi) {
  SL_CHECK(bins >= 2, ConfigError, "ppo.hl_bins: must be >= 2, got ", bins);
  SL_CHECK(hi > lo, ConfigError, "ppo.hl_max: must be > hl_min = ", lo, ", got ", hi);
  const double width = (hi - lo) / static_cast<double>(bins), sigma = 0.75 * width;
  const auto edges = torch::linspace(lo, hi, bins + 1, y.options().dtype(torch::kFloat64));
  const auto cdf = torch::erf((edges.unsqueeze(0) - y.to(torch::kFloat64).clamp(lo, hi).unsqueeze(1)) / (std::sqrt(2.0) * sigma));
  const auto mass = cdf.narrow(1, 1, bins) - cdf.narrow(1, 0, bins);
  return (mass / mass.sum(1, true)).to(y.scalar_type());
}

torch::Tensor hl_gauss_loss(const torch::Tensor& logits, const torch::Tensor& y, double lo, double hi) {
  SL_CHECK(logits.dim() == 2 && y.dim() == 1 && y.size(0) == logits.size(0), ShapeError,
           "hl_gauss_loss: expected logits [n, bins] and y [n], got ", logits.sizes(), ", ", y.sizes());
  const auto target = hl_gauss_targets(y.detach(), logits.size(1), lo, hi).to(logits.scalar_type());
  return -(target * torch::log_softmax(logits, 1)).sum(1).mean();
}

torch::Tensor hl_gauss_value(const torch::Tensor& logits, double lo, double hi) {
  const auto bins = logits.size(1);
  const double width = (hi - lo) / static_cast<double>(bins);
  const auto centres = torch::linspace(lo + width / 2, hi - width / 2, bins, logits.options());
  return (torch::softmax(logits, 1) * centres).sum(1);
}

HeadImpl::HeadImpl(std::int64_t in, std::int64_t out, HeadOptions options, double init_std) : o_(std::move(options)) {
  SL_CHECK(o_.kind == "euclidean" || o_.kind == "poincare" || o_.kind == "hyperboloid", ConfigError,
           "ppo.head: must be one of euclidean, poincare, hyperboloid, got \"", o_.kind, "\"");
  SL_CHECK(!(o_.feature_control && o_.kind == "euclidean"), ConfigError,
           "ppo.feature_control: applies to the hyperbolic heads (poincare, hyperboloid) only");
  check_c(o_.curvature);
  torch::NoGradGuard ng;
  w_ = register_parameter("weight", torch::randn({out, in}) * init_std);
  b_ = register_parameter(o_.kind == "poincare" ? "offset" : "bias",
                          o_.kind == "poincare" ? torch::zeros({out, in}) : torch::zeros({out}));
  if (o_.feature_control) {
    scale_w_ = register_parameter("scale_weight", torch::randn({1, in}) / std::sqrt(double(in)));
    scale_b_ = register_parameter("scale_bias", torch::zeros({1}));
  }
}

torch::Tensor HeadImpl::forward(const torch::Tensor& features) {
  if (o_.kind == "euclidean") {
    last_ = features.detach();
    return torch::addmm(b_, features, w_.t());
  }
  auto u = features;
  if (o_.feature_control) {
    const double d = static_cast<double>(features.size(-1));
    const auto rms = (features * features).mean(-1, true).add(1e-6).rsqrt();
    const auto t = torch::tanh(features * rms) / std::sqrt(d);
    const auto s = torch::sigmoid(torch::addmm(scale_b_, t, scale_w_.t()));
    const double rho_max = std::atanh(0.95) / std::sqrt(o_.curvature);
    u = s * rho_max * t;
  }
  last_ = u.detach();
  if (o_.kind == "hyperboloid") return hyperboloid_mlr(hyperboloid_expmap0(u, o_.curvature), w_, b_, o_.curvature);
  return poincare_mlr(poincare_expmap0(u, o_.curvature), poincare_expmap0(b_, o_.curvature), w_, o_.curvature);
}

}  // namespace stablelearn::rl::hyperbolic
