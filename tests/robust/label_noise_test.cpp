// Label noise (robust/label_noise.h): the corrupted count, where corrupted labels go, seeding,
// bad options, and the memorisation shares on a hand example.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/robust/label_noise.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::robust::LabelNoiseOptions;

namespace {

torch::Tensor balanced_labels(std::int64_t n, std::int64_t classes) { return torch::arange(n, torch::kInt64).remainder(classes); }

LabelNoiseOptions opts(const std::string& kind, double rate, std::uint64_t seed) {
  LabelNoiseOptions o;
  o.kind = kind;
  o.rate = rate;
  o.seed = seed;
  return o;
}

TEST(LabelNoise, SymmetricCorruptsExactlyTheRateToOtherClassesUniformly) {
  const auto y = balanced_labels(10000, 10);
  const auto n = sl::robust::corrupt_labels(y, 10, opts("symmetric", 0.4, 3));
  EXPECT_EQ(n.count(), 4000);  // round(0.4 · 10000), and never the sample's own class
  EXPECT_TRUE(torch::equal(n.clean, y));
  EXPECT_TRUE(torch::equal(n.corrupted, n.labels.ne(y)));
  // Uniform over the 9 other classes: each offset (noisy − clean) mod 10 in 1..9 about 4000 / 9 =
  // 444 times (binomial s.d. about 20; 6 s.d. = 120).
  const auto off = (n.labels - y).remainder(10).masked_select(n.corrupted);
  for (std::int64_t k = 1; k < 10; ++k) {
    const auto c = off.eq(k).sum().item<std::int64_t>();
    EXPECT_NEAR(static_cast<double>(c), 4000.0 / 9, 120) << "offset " << k;
  }
  // Every class loses about 40 % of its samples (binomial s.d. about 15.5 of 1000).
  for (std::int64_t c = 0; c < 10; ++c)
    EXPECT_NEAR(n.corrupted.masked_select(y.eq(c)).sum().item<double>(), 400, 100) << "class " << c;
}

TEST(LabelNoise, SameSeedSameCorruptionOtherSeedAnother) {
  const auto y = balanced_labels(500, 10);
  const auto a = sl::robust::corrupt_labels(y, 10, opts("symmetric", 0.3, 7));
  const auto b = sl::robust::corrupt_labels(y, 10, opts("symmetric", 0.3, 7));
  const auto c = sl::robust::corrupt_labels(y, 10, opts("symmetric", 0.3, 8));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_FALSE(torch::equal(a.labels, c.labels));
  EXPECT_EQ(c.count(), 150);
}

TEST(LabelNoise, AsymmetricFlipsToThePairedClass) {
  const auto y = balanced_labels(1000, 4);
  const auto n = sl::robust::corrupt_labels(y, 4, opts("asymmetric", 0.2, 1));
  EXPECT_EQ(n.count(), 200);
  const auto cy = y.masked_select(n.corrupted), cn = n.labels.masked_select(n.corrupted);
  EXPECT_TRUE(torch::equal(cn, (cy + 1).remainder(4)));  // default pairs c → c + 1 mod C
  // Custom pairs: 0 ↔ 1, 2 → 3, 3 stays (never corrupted; its share of the draw is skipped).
  auto o = opts("asymmetric", 0.5, 2);
  o.pairs = {1, 0, 3, 3};
  const auto m = sl::robust::corrupt_labels(y, 4, o);
  EXPECT_EQ(m.corrupted.masked_select(y.eq(3)).sum().item<std::int64_t>(), 0);
  const std::vector<std::int64_t> want{1, 0, 3};
  for (std::int64_t c = 0; c < 3; ++c) {
    const auto flipped = m.labels.masked_select(m.corrupted & y.eq(c));
    EXPECT_GT(flipped.numel(), 0);
    EXPECT_TRUE(flipped.eq(want[static_cast<std::size_t>(c)]).all().item<bool>()) << "class " << c;
  }
  EXPECT_LT(m.count(), 500);
  EXPECT_GT(m.count(), 300);  // about 3/4 of the 500 drawn
}

TEST(LabelNoise, NoneAndZeroRateLeaveTheLabels) {
  const auto y = balanced_labels(100, 10);
  EXPECT_EQ(sl::robust::corrupt_labels(y, 10, opts("none", 0.5, 1)).count(), 0);
  EXPECT_EQ(sl::robust::corrupt_labels(y, 10, opts("symmetric", 0.0, 1)).count(), 0);
}

TEST(LabelNoise, BadOptionsNameTheKey) {
  const auto y = balanced_labels(10, 10);
  sl::testing::expect_error<sl::ConfigError>([&] { sl::robust::corrupt_labels(y, 10, opts("symmetric", 1.0, 1)); },
                                             "label_noise_rate = 1: expected a fraction in [0, 1)");
  sl::testing::expect_error<sl::ConfigError>([&] { sl::robust::corrupt_labels(y, 10, opts("symmetric", -0.1, 1)); },
                                             "label_noise_rate = -0.1");
  sl::testing::expect_error<sl::ConfigError>([&] { sl::robust::corrupt_labels(y, 10, opts("pairwise", 0.1, 1)); },
                                             "label_noise = \"pairwise\": expected one of none, symmetric, asymmetric");
  auto o = opts("asymmetric", 0.1, 1);
  o.pairs = {1, 0};
  sl::testing::expect_error<sl::ConfigError>([&] { sl::robust::corrupt_labels(y, 10, o); },
                                             "label_noise_pairs: 2 entries, expected one per class (10)");
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(10, "stream."); }, "stream.label_noise_pairs");
  sl::testing::expect_error<sl::DataError>(
      [&] { sl::robust::corrupt_labels(torch::tensor({0, 12}, torch::kInt64), 10, opts("symmetric", 0.1, 1)); },
      "labels must be in 0..9, got 0..12");
}

TEST(LabelNoise, MemorisationSharesOnAHandExample) {
  sl::robust::NoisyLabels n;
  n.clean = torch::tensor({0, 1, 2, 3, 4}, torch::kInt64);
  n.labels = torch::tensor({0, 2, 0, 1, 4}, torch::kInt64);  // samples 1, 2, 3 corrupted
  n.corrupted = n.labels.ne(n.clean);
  // Predictions: sample 1 as its noisy label 2 (memorised), 2 as its clean 2 (corrected), 3 as
  // neither; samples 0 and 4 (clean) do not count.
  const auto m = sl::robust::memorisation(torch::tensor({0, 2, 2, 0, 1}, torch::kInt64), n);
  EXPECT_EQ(m.corrupted, 3);
  EXPECT_DOUBLE_EQ(m.memorised, 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.corrected, 1.0 / 3);
}

}  // namespace
