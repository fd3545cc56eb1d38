// RDMs, Spearman correlation, Shesha's feature-split and weight-noise stability (see rdm.h).
#include "stablelearn/diagnostics/rdm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "probes.h"
#include "stablelearn/core/error.h"

namespace stablelearn::diagnostics {
namespace {

torch::Tensor rows(const torch::Tensor& x, const char* who) {
  SL_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 2, ShapeError, who, ": expected at least 2 samples");
  return x.detach().reshape({x.size(0), -1}).to(torch::kFloat64).cpu();
}

double pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ac = a - a.mean();
  const auto bc = b - b.mean();
  const double den = std::sqrt(ac.pow(2).sum().item<double>() * bc.pow(2).sum().item<double>());
  if (!(den > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  return (ac * bc).sum().item<double>() / den;
}

}  // namespace

torch::Tensor average_ranks(const torch::Tensor& values) {
  SL_CHECK(values.defined() && values.dim() == 1, ShapeError, "average_ranks: expected a 1-D tensor");
  const auto v = values.detach().to(torch::kFloat64).cpu().contiguous();
  const auto n = v.size(0);
  const double* x = v.data_ptr<double>();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [x](std::int64_t a, std::int64_t b) { return x[a] < x[b]; });
  auto out = torch::empty({n}, torch::kFloat64);
  double* r = out.data_ptr<double>();
  for (std::int64_t i = 0; i < n;) {
    std::int64_t j = i;
    while (j + 1 < n && x[order[j + 1]] == x[order[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j) + 1.0;  // ranks i+1..j+1
    for (std::int64_t t = i; t <= j; ++t) r[order[t]] = avg;
    i = j + 1;
  }
  return out;
}

double spearman(const torch::Tensor& a, const torch::Tensor& b) {
  SL_CHECK(a.defined() && b.defined() && a.dim() == 1 && b.dim() == 1 && a.size(0) == b.size(0) && a.size(0) >= 2, ShapeError,
           "spearman: expected two 1-D tensors of the same length ≥ 2");
  return pearson(average_ranks(a), average_ranks(b));
}

double percentile(std::vector<double> values, double q) {
  SL_CHECK(q >= 0.0 && q <= 100.0, ConfigError, "percentile: q must be in [0, 100], got ", q);
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const double h = static_cast<double>(values.size() - 1) * q / 100.0;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const auto hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (h - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

SpearmanInterval spearman_bootstrap(const torch::Tensor& a, const torch::Tensor& b, const BootstrapOptions& o) {
  SL_CHECK(a.defined() && b.defined() && a.dim() == 1 && b.dim() == 1 && a.size(0) == b.size(0), ShapeError,
           "spearman_bootstrap: expected two 1-D tensors of the same length");
  SL_CHECK(o.resamples() >= 1, ConfigError, "spearman_bootstrap: resamples must be at least 1, got ", o.resamples());
  SL_CHECK(o.confidence() > 0.0 && o.confidence() < 1.0, ConfigError,
           "spearman_bootstrap: confidence must be in (0, 1), got ", o.confidence());
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto x = a.detach().to(torch::kFloat64).cpu(), y = b.detach().to(torch::kFloat64).cpu();
  const auto keep = torch::isfinite(x).logical_and(torch::isfinite(y));
  const auto xs = x.masked_select(keep), ys = y.masked_select(keep);
  SpearmanInterval out;
  out.pairs = xs.size(0);
  out.rho = out.lo = out.hi = nan;
  if (out.pairs < 3) return out;
  out.rho = spearman(xs, ys);
  auto gen = detail::make_generator(o.seed());
  for (std::int64_t r = 0; r < o.resamples(); ++r) {
    const auto idx = torch::randint(0, out.pairs, {out.pairs}, gen, torch::TensorOptions().dtype(torch::kLong));
    const double rho = spearman(xs.index_select(0, idx), ys.index_select(0, idx));
    if (std::isfinite(rho)) out.resampled.push_back(rho);
  }
  out.finite = static_cast<std::int64_t>(out.resampled.size());
  out.lo = percentile(out.resampled, 50.0 * (1.0 - o.confidence()));
  out.hi = percentile(out.resampled, 50.0 * (1.0 + o.confidence()));
  return out;
}

torch::Tensor cosine_rdm(const torch::Tensor& x) {
  const auto f = rows(x, "cosine_rdm");
  const auto norms = f.norm(2, {1}, true);
  const auto unit = torch::where(norms > 0, f / norms.clamp_min(1e-300), torch::zeros_like(f));
  const auto d = 1.0 - unit.mm(unit.t());
  const auto n = f.size(0);
  const auto upper = torch::ones({n, n}, torch::kBool).triu(1);
  return d.masked_select(upper);  // row-major i < j: scipy's pdist order
}

double rdm_similarity(const torch::Tensor& x, const torch::Tensor& y) {
  const auto rx = cosine_rdm(x);
  const auto ry = cosine_rdm(y);
  SL_CHECK(x.size(0) == y.size(0), ShapeError, "rdm_similarity: ", x.size(0), " vs ", y.size(0), " samples");
  SL_CHECK(x.size(0) >= 3, ShapeError, "rdm_similarity: need at least 3 samples");
  return spearman(rx, ry);
}

double feature_split_stability(const torch::Tensor& x, const FeatureSplitOptions& o) {
  SL_CHECK(o.splits() >= 1, ConfigError, "feature_split_stability: splits must be at least 1, got ", o.splits());
  SL_CHECK(o.max_samples() >= 4, ConfigError, "feature_split_stability: max_samples must be at least 4, got ", o.max_samples());
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  SL_CHECK(x.defined() && x.dim() >= 1, ShapeError, "feature_split_stability: undefined input");
  if (x.size(0) < 4) return nan;
  auto f = rows(x, "feature_split_stability");
  const auto n = f.size(0), features = f.size(1);
  if (features < 4) return nan;
  auto gen = detail::make_generator(o.seed());
  if (n > o.max_samples()) f = f.index_select(0, torch::randperm(n, gen, torch::kLong).narrow(0, 0, o.max_samples()));
  const auto half = features / 2;
  double total = 0.0;
  std::int64_t used = 0;
  for (std::int64_t s = 0; s < o.splits(); ++s) {
    const auto perm = torch::randperm(features, gen, torch::kLong);
    const auto ra = cosine_rdm(f.index_select(1, perm.narrow(0, 0, half)));
    const auto rb = cosine_rdm(f.index_select(1, perm.narrow(0, half, half)));
    if (ra.std().item<double>() < 1e-12 || rb.std().item<double>() < 1e-12) continue;
    const double rho = spearman(ra, rb);
    if (std::isnan(rho)) continue;
    total += rho;
    ++used;
  }
  return used > 0 ? total / static_cast<double>(used) : nan;
}

std::vector<torch::Tensor> perturb_weights(const std::vector<torch::Tensor>& weights, double sigma, at::Generator& gen) {
  SL_CHECK(sigma >= 0.0 && std::isfinite(sigma), ConfigError, "perturb_weights: the noise scale must be finite and >= 0, got ",
           sigma);
  std::vector<torch::Tensor> out;
  out.reserve(weights.size());
  for (std::size_t k = 0; k < weights.size(); ++k) {
    const auto& w = weights[k];
    SL_CHECK(w.defined(), ShapeError, "perturb_weights: weight tensor ", k, " is undefined");
    const auto p = w.detach();
    if (sigma == 0.0 || p.numel() <= 1) {
      out.push_back(p);
      continue;
    }
    const double sd = p.to(torch::kFloat64).std().item<double>();  // unbiased, as torch's p.std()
    if (!(sd > 0.0)) {
      out.push_back(p);
      continue;
    }
    const auto e = torch::randn(p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat64));
    out.push_back(p + (sigma * sd * e).to(p.options()));
  }
  return out;
}

std::vector<WeightNoisePoint> weight_noise_stability(const RepresentationFn& f, const std::vector<torch::Tensor>& weights,
                                                     const WeightNoiseOptions& o) {
  SL_CHECK(static_cast<bool>(f), ConfigError, "weight_noise_stability: no representation function");
  SL_CHECK(!weights.empty(), ConfigError, "weight_noise_stability: empty weight list");
  SL_CHECK(!o.sigmas().empty(), ConfigError, "weight_noise_stability: no noise scales");
  for (const double s : o.sigmas())
    SL_CHECK(s >= 0.0 && std::isfinite(s), ConfigError, "weight_noise_stability: noise scales must be finite and >= 0, got ", s);
  SL_CHECK(o.draws() >= 1, ConfigError, "weight_noise_stability: draws must be at least 1, got ", o.draws());
  torch::NoGradGuard no_grad;
  const auto clean = f(weights);
  SL_CHECK(clean.defined() && clean.dim() >= 1 && clean.size(0) >= 3, ShapeError,
           "weight_noise_stability: the representation needs at least 3 samples");
  const auto clean_ranks = average_ranks(cosine_rdm(clean));  // ranked once: ρ = Pearson of the ranks
  auto gen = detail::make_generator(o.seed());
  std::vector<WeightNoisePoint> curve;
  for (const double sigma : o.sigmas()) {
    WeightNoisePoint point;
    point.sigma = sigma;
    for (std::int64_t r = 0; r < o.draws(); ++r) {
      const auto noisy = f(perturb_weights(weights, sigma, gen));
      SL_CHECK(noisy.defined() && noisy.sizes() == clean.sizes(), ShapeError,
               "weight_noise_stability: the noisy representation has shape ", noisy.defined() ? noisy.sizes() : at::IntArrayRef{},
               ", the clean one ", clean.sizes());
      const double rho = pearson(clean_ranks, average_ranks(cosine_rdm(noisy)));
      point.similarities.push_back(std::isfinite(rho) ? rho : 0.0);
    }
    const auto v = torch::tensor(point.similarities, torch::kFloat64);
    point.mean = v.mean().item<double>();
    point.std = o.draws() > 1 ? v.std().item<double>() : 0.0;
    curve.push_back(std::move(point));
  }
  return curve;
}

}  // namespace stablelearn::diagnostics
