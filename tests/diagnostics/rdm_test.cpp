// RDMs and geometric stability: ranks and Spearman by hand, RDM entries against a pairwise loop,
// rotation invariance, Shesha's own feature-split checks, and weight-noise stability against
// representations whose RDM provably cannot move (scale, rotation) and the classic d² Spearman.
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/rdm.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

TEST(Rdm, AverageRanksAndSpearmanByHand) {
  EXPECT_TRUE(torch::equal(D::average_ranks(torch::tensor({3.0, 1.0, 4.0, 1.0, 5.0}, f64())),
                           torch::tensor({3.0, 1.5, 4.0, 1.5, 5.0}, f64())));
  // b = [5, 6, 7, 8, 7] has ranks [1, 2, 3.5, 5, 3.5]; Pearson with [1..5] by hand.
  auto ra = torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0}, f64());
  auto rb = torch::tensor({1.0, 2.0, 3.5, 5.0, 3.5}, f64());
  auto ac = ra - 3.0, bc = rb - 3.0;
  const double expected = (ac * bc).sum().item<double>() / std::sqrt((ac * ac).sum().item<double>() * (bc * bc).sum().item<double>());
  EXPECT_NEAR(D::spearman(ra, torch::tensor({5.0, 6.0, 7.0, 8.0, 7.0}, f64())), expected, 1e-15);
  // Monotone transforms do not change Spearman.
  auto x = torch::randn({50}, f64());
  EXPECT_NEAR(D::spearman(x, torch::exp(3 * x)), 1.0, 1e-15);
  EXPECT_NEAR(D::spearman(x, -x), -1.0, 1e-15);
  EXPECT_TRUE(std::isnan(D::spearman(x, torch::ones({50}, f64()))));
}

TEST(Bootstrap, PercentileIsNumpysLinearInterpolation) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // np.percentile([1, 2, 3, 4], q): h = 3q/100 between order statistics.
  EXPECT_DOUBLE_EQ(D::percentile({4.0, 1.0, 3.0, 2.0}, 25.0), 1.75);
  EXPECT_DOUBLE_EQ(D::percentile({4.0, 1.0, 3.0, 2.0}, 50.0), 2.5);
  EXPECT_DOUBLE_EQ(D::percentile({4.0, 1.0, 3.0, 2.0}, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(D::percentile({4.0, 1.0, 3.0, 2.0}, 100.0), 4.0);
  EXPECT_DOUBLE_EQ(D::percentile({4.0, 1.0, 3.0, 2.0}, 97.5), 3.925);
  EXPECT_DOUBLE_EQ(D::percentile({nan, 7.0, 3.0}, 50.0), 5.0);  // non-finite values dropped
  EXPECT_DOUBLE_EQ(D::percentile({7.0}, 2.5), 7.0);
  EXPECT_TRUE(std::isnan(D::percentile({}, 50.0)));
  EXPECT_THROW(D::percentile({1.0}, 101.0), stablelearn::ConfigError);
  EXPECT_THROW(D::percentile({1.0}, -1.0), stablelearn::ConfigError);
}

// Average ranks by the counting formula 1 + #{v_j < v_i} + ½ #{j ≠ i: v_j = v_i}, then Pearson.
double brute_spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ranks = [](const std::vector<double>& v) {
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      double less = 0, tie = 0;
      for (std::size_t j = 0; j < v.size(); ++j) {
        if (v[j] < v[i]) less += 1;
        if (j != i && v[j] == v[i]) tie += 1;
      }
      r[i] = 1 + less + 0.5 * tie;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += ra[i] / a.size(), mb += rb[i] / a.size();
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : std::numeric_limits<double>::quiet_NaN();
}

TEST(Bootstrap, ResampledRhoFollowsTheExactBootstrapDistribution) {
  // n = 4: all 4⁴ = 256 equally likely index tuples, each ρ by the counting formula (NaN tuples,
  // with a constant side, skipped as the bootstrap skips them): the exact law of a finite resample.
  const std::vector<double> a{1.0, 2.0, 3.0, 4.0}, b{2.0, 1.0, 4.0, 3.0};
  std::map<long long, double> exact;  // ρ·10⁹ rounded → probability
  double finite = 0;
  for (int t = 0; t < 256; ++t) {
    std::vector<double> ra, rb;
    for (int k = 0, u = t; k < 4; ++k, u /= 4) ra.push_back(a[u % 4]), rb.push_back(b[u % 4]);
    const double rho = brute_spearman(ra, rb);
    if (!std::isfinite(rho)) continue;
    exact[std::llround(rho * 1e9)] += 1;
    finite += 1;
  }
  for (auto& kv : exact) kv.second /= finite;
  const auto r = D::spearman_bootstrap(torch::tensor(a, f64()), torch::tensor(b, f64()),
                                       D::BootstrapOptions().resamples(20000).seed(3));
  EXPECT_NEAR(r.rho, brute_spearman(a, b), 1e-15);  // 0.6
  EXPECT_NEAR(r.rho, 0.6, 1e-15);
  EXPECT_EQ(r.pairs, 4);
  // A resample is NaN when a side is constant (here: all four indices equal, 4 of 256 tuples); the
  // finite count is binomial around B·finite/256.
  const double pf = finite / 256.0;
  EXPECT_NEAR(static_cast<double>(r.finite), 20000 * pf, 5 * std::sqrt(20000 * pf * (1 - pf)));
  ASSERT_EQ(static_cast<std::int64_t>(r.resampled.size()), r.finite);
  std::map<long long, double> seen;
  for (double v : r.resampled) seen[std::llround(v * 1e9)] += 1.0 / static_cast<double>(r.finite);
  for (const auto& kv : seen) EXPECT_TRUE(exact.count(kv.first)) << "impossible resampled rho " << kv.first * 1e-9;
  for (const auto& kv : exact) {
    const double p = kv.second, sd = std::sqrt(p * (1 - p) / static_cast<double>(r.finite));
    EXPECT_NEAR(seen[kv.first], p, 5 * sd + 1e-12) << "rho " << kv.first * 1e-9;
  }
  // The interval is the 2.5 and 97.5 percentiles of the resampled values.
  EXPECT_DOUBLE_EQ(r.lo, D::percentile(r.resampled, 2.5));
  EXPECT_DOUBLE_EQ(r.hi, D::percentile(r.resampled, 97.5));
}

TEST(Bootstrap, SpearmanIntervalByHandAndItsEdges) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // The hand value of AverageRanksAndSpearmanByHand, with a NaN pair added that must be dropped.
  const auto a = torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0, nan}, f64()), b = torch::tensor({5.0, 6.0, 7.0, 8.0, 7.0, 1.0}, f64());
  const auto r = D::spearman_bootstrap(a, b, D::BootstrapOptions().resamples(500).seed(1));
  EXPECT_NEAR(r.rho, brute_spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 1e-15);
  EXPECT_EQ(r.pairs, 5);
  EXPECT_LE(r.lo, r.hi);
  // Same seed, same numbers; another seed, other resamples.
  const auto again = D::spearman_bootstrap(a, b, D::BootstrapOptions().resamples(500).seed(1));
  EXPECT_EQ(again.resampled, r.resampled);
  EXPECT_NE(D::spearman_bootstrap(a, b, D::BootstrapOptions().resamples(500).seed(2)).resampled, r.resampled);
  // A monotone relation: every finite resample has ρ = 1, so the interval is [1, 1].
  auto x = torch::randn({30}, f64());
  const auto m = D::spearman_bootstrap(x, torch::exp(x), D::BootstrapOptions().resamples(200));
  EXPECT_NEAR(m.rho, 1.0, 1e-15);
  EXPECT_NEAR(m.lo, 1.0, 1e-12);
  EXPECT_NEAR(m.hi, 1.0, 1e-12);
  // Independent samples of 400: the interval covers 0 and has about the width 2·1.96/√n.
  auto g = at::detail::createCPUGenerator(11);
  const auto u = torch::randn({400}, g, f64()), v = torch::randn({400}, g, f64());
  const auto i = D::spearman_bootstrap(u, v, D::BootstrapOptions().resamples(2000));
  EXPECT_LT(i.lo, i.rho);
  EXPECT_GT(i.hi, i.rho);
  EXPECT_NEAR(i.hi - i.lo, 2 * 1.96 / std::sqrt(400.0), 0.04);
  // Fewer than 3 finite pairs: NaN, nothing resampled.
  const auto few = D::spearman_bootstrap(torch::tensor({1.0, 2.0, nan}, f64()), torch::tensor({1.0, 3.0, 2.0}, f64()));
  EXPECT_TRUE(std::isnan(few.rho) && std::isnan(few.lo) && std::isnan(few.hi));
  EXPECT_EQ(few.finite, 0);
  // Bad input.
  EXPECT_THROW(D::spearman_bootstrap(u, v.narrow(0, 0, 10)), stablelearn::ShapeError);
  EXPECT_THROW(D::spearman_bootstrap(u, v, D::BootstrapOptions().resamples(0)), stablelearn::ConfigError);
  EXPECT_THROW(D::spearman_bootstrap(u, v, D::BootstrapOptions().confidence(1.0)), stablelearn::ConfigError);
}

TEST(Rdm, CosineRdmMatchesAPairwiseLoop) {
  auto x = torch::randn({6, 4}, f64());
  x[2].zero_();  // a zero row: distance 1 to everything
  auto r = D::cosine_rdm(x);
  ASSERT_EQ(r.size(0), 15);
  std::int64_t k = 0;
  for (std::int64_t i = 0; i < 6; ++i)
    for (std::int64_t j = i + 1; j < 6; ++j, ++k) {
      const double ni = x[i].norm().item<double>(), nj = x[j].norm().item<double>();
      const double want = (ni == 0 || nj == 0) ? 1.0 : 1.0 - x[i].dot(x[j]).item<double>() / (ni * nj);
      EXPECT_NEAR(r[k].item<double>(), want, 1e-14) << i << "," << j;
    }
}

TEST(Rdm, SimilarityIsInvariantToRotationAndScaling) {
  auto x = torch::randn({40, 12}, f64());
  EXPECT_NEAR(D::rdm_similarity(x, 2.5 * x.mm(D::testing::random_orthogonal(12, 70))), 1.0, 1e-12);
  EXPECT_LT(std::abs(D::rdm_similarity(x, torch::randn({40, 12}, f64()))), 0.1);
  EXPECT_THROW(D::rdm_similarity(x, torch::randn({39, 12}, f64())), stablelearn::ShapeError);
}

TEST(Rdm, FeatureSplitStabilityOfLowRankAndIsotropicData) {
  // Shesha's test: a rank-10 latent times a random 10×128 projection is stable (> 0.5);
  // isotropic Gaussian features carry no shared geometry across halves (≈ 0).
  auto latent = torch::randn({150, 10}, f64());
  auto low_rank = latent.mm(torch::randn({10, 128}, f64()));
  const auto ten = D::FeatureSplitOptions().splits(10);
  EXPECT_GT(D::feature_split_stability(low_rank, ten), 0.5);
  EXPECT_LT(std::abs(D::feature_split_stability(torch::randn({150, 128}, f64()), ten)), 0.05);
  // Deterministic for a seed; subsampling to max_samples keeps it working.
  const auto o = D::FeatureSplitOptions().splits(5).max_samples(50).seed(3);
  EXPECT_EQ(D::feature_split_stability(low_rank, o), D::feature_split_stability(low_rank, o));
  EXPECT_GT(D::feature_split_stability(low_rank, o), 0.5);
  // Degenerate inputs give NaN, as the library does.
  EXPECT_TRUE(std::isnan(D::feature_split_stability(torch::randn({20, 3}, f64()))));
  EXPECT_TRUE(std::isnan(D::feature_split_stability(torch::randn({3, 20}, f64()))));
}

// ---------------------------------------------------------------------------------------------
// Weight-noise stability

/// A tanh MLP 8 → 32 → 16 on fixed inputs; its representation is the second hidden layer.
struct TinyMlp {
  torch::Tensor x = torch::randn({60, 8}, f64());
  std::vector<torch::Tensor> w{torch::randn({32, 8}, f64()) / std::sqrt(8.0), 0.1 * torch::randn({32}, f64()),
                               torch::randn({16, 32}, f64()) / std::sqrt(32.0), 0.1 * torch::randn({16}, f64())};
  D::RepresentationFn f() const {
    return [x = x](const std::vector<torch::Tensor>& p) {
      return torch::tanh(torch::tanh(x.mm(p[0].t()) + p[1]).mm(p[2].t()) + p[3]);
    };
  }
};

TEST(WeightNoise, ZeroScaleGivesOneAndTheCallersWeightsStayPut) {
  TinyMlp m;
  std::vector<torch::Tensor> before;
  for (auto& t : m.w) {
    t.requires_grad_(true);
    before.push_back(t.detach().clone());
  }
  const auto curve = D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions().sigmas({0.0, 0.2}).draws(3));
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_EQ(curve[0].sigma, 0.0);
  ASSERT_EQ(curve[0].similarities.size(), 3u);
  for (const double rho : curve[0].similarities) EXPECT_DOUBLE_EQ(rho, 1.0);
  EXPECT_DOUBLE_EQ(curve[0].mean, 1.0);
  EXPECT_LT(curve[0].std, 1e-15);
  EXPECT_LT(curve[1].mean, 1.0);
  for (std::size_t k = 0; k < m.w.size(); ++k) EXPECT_TRUE(torch::equal(m.w[k].detach(), before[k])) << k;
}

TEST(WeightNoise, ScaleAndRotationOfTheRepresentationKeepTheRdm) {
  // f(W) = X·‖W‖_F only rescales X and f(W) = X·Q(W) (Q the orthogonal QR factor of W) only rotates
  // it: the cosine RDM cannot move, whatever the noise. f(W) = X·W is the control that does move.
  const auto x = torch::randn({30, 12}, f64());
  const std::vector<torch::Tensor> w{torch::randn({12, 12}, f64())};
  const auto o = D::WeightNoiseOptions().sigmas({0.3, 1.0}).draws(4).seed(5);
  const D::RepresentationFn scale = [&](const std::vector<torch::Tensor>& p) { return x * p[0].norm(); };
  const D::RepresentationFn rotate = [&](const std::vector<torch::Tensor>& p) { return x.mm(std::get<0>(torch::linalg_qr(p[0]))); };
  const D::RepresentationFn linear = [&](const std::vector<torch::Tensor>& p) { return x.mm(p[0]); };
  for (const auto& fn : {scale, rotate})
    for (const auto& point : D::weight_noise_stability(fn, w, o))
      for (const double rho : point.similarities) EXPECT_NEAR(rho, 1.0, 1e-12) << point.sigma;
  const auto control = D::weight_noise_stability(linear, w, o);
  EXPECT_LT(control[0].mean, 0.99);
  EXPECT_LT(control[1].mean, control[0].mean);
}

TEST(WeightNoise, NoiseLawSkipsScalarsAndConstantsAndScalesWithTheStd) {
  auto gen = at::detail::createCPUGenerator(11);
  const auto big = 3.0 + 2.0 * torch::randn({200, 300}, torch::kFloat32);
  const std::vector<torch::Tensor> w{torch::tensor({4.0}, f64()), torch::full({4, 4}, 2.0, f64()), big};
  const auto big_before = big.clone();
  const auto noisy = D::perturb_weights(w, 0.1, gen);
  ASSERT_EQ(noisy.size(), 3u);
  EXPECT_TRUE(torch::equal(noisy[0], w[0]));  // one element: untouched
  EXPECT_TRUE(torch::equal(noisy[1], w[1]));  // std 0: untouched
  EXPECT_EQ(noisy[2].scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(big, big_before));
  // (W̃ − W)/(α·std W) is standard normal: 60,000 entries, mean within 0.02, std within 0.02 of 1.
  const double sd = big.to(torch::kFloat64).std().item<double>();
  const auto e = (noisy[2].to(torch::kFloat64) - big.to(torch::kFloat64)) / (0.1 * sd);
  EXPECT_LT(std::abs(e.mean().item<double>()), 0.02);
  EXPECT_NEAR(e.std().item<double>(), 1.0, 0.02);
  EXPECT_THROW(D::perturb_weights(w, -0.1, gen), stablelearn::ConfigError);
}

TEST(WeightNoise, EachDrawIsTheClassicSpearmanOfPairwiseCosineDistances) {
  // The representation is the weight matrix itself (n = 5 samples, 3 features), so each draw's ρ
  // can be recomputed from the documented noise stream (one generator, scales then draws in order)
  // with a pairwise loop and Spearman's 1 − 6Σd²/(m(m² − 1)) over the m = 10 distances (no ties).
  const std::vector<torch::Tensor> w{torch::randn({5, 3}, f64())};
  const D::RepresentationFn identity = [](const std::vector<torch::Tensor>& p) { return p[0]; };
  const auto o = D::WeightNoiseOptions().sigmas({0.2, 0.6}).draws(3).seed(17);
  const auto curve = D::weight_noise_stability(identity, w, o);
  auto distances = [](const torch::Tensor& y) {
    std::vector<double> d;
    for (std::int64_t i = 0; i < 5; ++i)
      for (std::int64_t j = i + 1; j < 5; ++j)
        d.push_back(1.0 - y[i].dot(y[j]).item<double>() / (y[i].norm().item<double>() * y[j].norm().item<double>()));
    return d;
  };
  auto ranks = [](const std::vector<double>& v) {
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      r[i] = 1.0;
      for (std::size_t j = 0; j < v.size(); ++j) r[i] += v[j] < v[i] ? 1.0 : 0.0;
    }
    return r;
  };
  const auto rc = ranks(distances(w[0]));
  auto gen = at::detail::createCPUGenerator(17);
  for (const auto& point : curve) {
    double sum = 0.0;
    for (const double rho : point.similarities) {
      const auto rn = ranks(distances(D::perturb_weights(w, point.sigma, gen)[0]));
      double d2 = 0.0;
      for (std::size_t i = 0; i < rc.size(); ++i) d2 += (rc[i] - rn[i]) * (rc[i] - rn[i]);
      EXPECT_NEAR(rho, 1.0 - 6.0 * d2 / (10.0 * 99.0), 1e-12) << point.sigma;
      sum += rho;
    }
    EXPECT_NEAR(point.mean, sum / 3.0, 1e-15);
    double ss = 0.0;
    for (const double rho : point.similarities) ss += (rho - point.mean) * (rho - point.mean);
    EXPECT_NEAR(point.std, std::sqrt(ss / 2.0), 1e-12);
  }
}

TEST(WeightNoise, MeanSimilarityFallsWithTheScaleOfARandomMlp) {
  TinyMlp m;
  const auto curve = D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions().sigmas({0.01, 0.1, 0.3, 1.0}).draws(8));
  ASSERT_EQ(curve.size(), 4u);
  EXPECT_GT(curve[0].mean, 0.98);
  for (std::size_t i = 0; i < curve.size(); ++i) {
    EXPECT_LE(curve[i].mean, 1.0);
    EXPECT_GE(curve[i].std, 0.0);
    if (i > 0) {
      EXPECT_LT(curve[i].mean, curve[i - 1].mean) << curve[i].sigma;
    }
  }
}

TEST(WeightNoise, SameSeedSameNumbersOtherSeedOtherNumbers) {
  TinyMlp m;
  const auto o = D::WeightNoiseOptions().sigmas({0.1, 0.3}).draws(3).seed(4);
  const auto a = D::weight_noise_stability(m.f(), m.w, o);
  const auto b = D::weight_noise_stability(m.f(), m.w, o);
  const auto c = D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions(o).seed(5));
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].similarities, b[i].similarities);
    EXPECT_NE(a[i].similarities, c[i].similarities);
  }
}

TEST(WeightNoise, BadInputsThrow) {
  TinyMlp m;
  using stablelearn::ConfigError;
  using stablelearn::ShapeError;
  EXPECT_THROW(D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions().sigmas({0.1, -0.1})), ConfigError);
  EXPECT_THROW(D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions().sigmas({})), ConfigError);
  EXPECT_THROW(D::weight_noise_stability(m.f(), m.w, D::WeightNoiseOptions().draws(0)), ConfigError);
  EXPECT_THROW(D::weight_noise_stability(m.f(), {}, D::WeightNoiseOptions()), ConfigError);
  EXPECT_THROW(D::weight_noise_stability(nullptr, m.w, D::WeightNoiseOptions()), ConfigError);
  const D::RepresentationFn two = [](const std::vector<torch::Tensor>& p) { return p[0].narrow(0, 0, 2); };
  EXPECT_THROW(D::weight_noise_stability(two, m.w, D::WeightNoiseOptions().draws(1)), ShapeError);
  int calls = 0;
  const D::RepresentationFn changing = [&](const std::vector<torch::Tensor>&) {
    return torch::randn({10, ++calls == 1 ? 4 : 5}, f64());
  };
  EXPECT_THROW(D::weight_noise_stability(changing, m.w, D::WeightNoiseOptions().draws(1)), ShapeError);
}

}  // namespace
