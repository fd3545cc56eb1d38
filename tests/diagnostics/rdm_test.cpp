// RDMs and geometric stability: ranks and Spearman by hand, RDM entries against a pairwise loop,
// rotation invariance, and Shesha's own feature-split checks.
#include <cmath>

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

}  // namespace
