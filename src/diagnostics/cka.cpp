// HSIC and CKA (see cka.h).
#include "stablelearn/diagnostics/cka.h"

#include <cmath>
#include <limits>

#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

torch::Tensor as_features(const torch::Tensor& x, const char* who) {
  SL_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 2, ShapeError, who,
           ": expected at least 2 samples in the first dimension");
  return x.detach().reshape({x.size(0), -1}).to(torch::kFloat64);
}

torch::Tensor squared_distances(const torch::Tensor& f) {
  const auto g = f.mm(f.t());
  const auto sq = g.diagonal();
  return (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * g).clamp_min(0.0);
}

void check_grams(const torch::Tensor& k, const torch::Tensor& l) {
  SL_CHECK(k.defined() && l.defined() && k.dim() == 2 && k.size(0) == k.size(1) && k.sizes() == l.sizes(), ShapeError,
           "hsic: expected two square Gram matrices of the same size, got ", k.sizes(), " and ", l.sizes());
}

}  // namespace

torch::Tensor gram_linear(const torch::Tensor& x) {
  const auto f = as_features(x, "gram_linear");
  return f.mm(f.t());
}

torch::Tensor gram_rbf_variance(const torch::Tensor& x, double variance) {
  SL_CHECK(variance > 0.0 && std::isfinite(variance), ConfigError, "gram_rbf: the variance must be positive, got ", variance);
  return torch::exp(-squared_distances(as_features(x, "gram_rbf")) / (2.0 * variance));
}

torch::Tensor gram_rbf(const torch::Tensor& x, double threshold) {
  SL_CHECK(threshold > 0.0, ConfigError, "gram_rbf: threshold must be positive, got ", threshold);
  const auto d2 = squared_distances(as_features(x, "gram_rbf"));
  const double median = torch::quantile(d2.flatten(), 0.5).item<double>();
  SL_CHECK(median > 0.0, DataError, "gram_rbf: the median squared distance is 0 (too many identical samples)");
  return torch::exp(-d2 / (2.0 * threshold * threshold * median));
}

double hsic(const torch::Tensor& k_in, const torch::Tensor& l_in, HsicEstimator estimator) {
  check_grams(k_in, l_in);
  const auto k = k_in.to(torch::kFloat64);
  const auto l = l_in.to(torch::kFloat64);
  const auto n = k.size(0);
  const double dn = static_cast<double>(n);
  if (estimator == HsicEstimator::Biased) {
    SL_CHECK(n >= 2, ShapeError, "hsic: the biased estimator needs n ≥ 2, got ", n);
    const auto kc = k - k.mean(0, true) - k.mean(1, true) + k.mean();  // C K C
    return (kc * l).sum().item<double>() / ((dn - 1.0) * (dn - 1.0));   // tr(CKC L) = tr(KCLC)
  }
  SL_CHECK(n >= 4, ShapeError, "hsic: the unbiased estimator needs n ≥ 4, got ", n);
  const auto mask = 1.0 - torch::eye(n, k.options());
  const auto kt = k * mask;
  const auto lt = l * mask;
  const double tr = (kt * lt).sum().item<double>();  // tr(K̃L̃), both symmetric
  const double sk = kt.sum().item<double>();
  const double sl = lt.sum().item<double>();
  const double skl = kt.sum(0).dot(lt.sum(1)).item<double>();  // 1ᵀK̃L̃1
  return (tr + sk * sl / ((dn - 1.0) * (dn - 2.0)) - 2.0 * skl / (dn - 2.0)) / (dn * (dn - 3.0));
}

double cka(const torch::Tensor& k, const torch::Tensor& l, bool debiased) {
  const auto est = debiased ? HsicEstimator::Unbiased : HsicEstimator::Biased;
  const double kl = hsic(k, l, est);
  const double denom = hsic(k, k, est) * hsic(l, l, est);
  if (!(denom > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  return kl / std::sqrt(denom);
}

double linear_cka(const torch::Tensor& x, const torch::Tensor& y, bool debiased) {
  const auto k = gram_linear(x);
  const auto l = gram_linear(y);
  SL_CHECK(k.size(0) == l.size(0), ShapeError, "linear_cka: ", k.size(0), " vs ", l.size(0), " samples");
  return cka(k, l, debiased);
}

double rbf_cka(const torch::Tensor& x, const torch::Tensor& y, double threshold, bool debiased) {
  const auto k = gram_rbf(x, threshold);
  const auto l = gram_rbf(y, threshold);
  SL_CHECK(k.size(0) == l.size(0), ShapeError, "rbf_cka: ", k.size(0), " vs ", l.size(0), " samples");
  return cka(k, l, debiased);
}

}  // namespace stablelearn::diagnostics
