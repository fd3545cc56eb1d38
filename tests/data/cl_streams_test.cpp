#include <set>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/cl_streams.h"

namespace sl = stablelearn;
using namespace sl::data;

namespace {
const ImageDataset& fmnist() {
  static const ImageDataset d = load_fashion_mnist();
  return d;
}
}  // namespace

TEST(FashionMnist, LoadsTheDebianPackageWithTheDocumentedNormalisation) {
  const auto& d = fmnist();
  EXPECT_EQ(d.train.images.sizes().vec(), (std::vector<std::int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(d.test.size(), 10000);
  // Normalised with mean 0.2860 and std 0.3530 of the training pixels: the result has mean ~0 and
  // std ~1 (the constants are rounded to 4 digits).
  EXPECT_NEAR(d.train.images.mean().item<double>(), 0.0, 2e-3);
  EXPECT_NEAR(d.train.images.std().item<double>(), 1.0, 2e-3);
  EXPECT_EQ(torch::bincount(d.train.labels).min().item<std::int64_t>(), 6000);
  EXPECT_THROW(load_fashion_mnist("/nonexistent"), sl::IoError);
}

TEST(ClStreams, SplitHasFiveDisjointPairsCoveringAllClasses) {
  for (std::int64_t seed : {0, 3}) {
    const auto tasks = make_stream(fmnist(), {StreamKind::SplitClassIncremental, 5, seed});
    ASSERT_EQ(tasks.size(), 5u);
    std::set<std::int64_t> seen;
    std::int64_t total = 0;
    for (const auto& t : tasks) {
      ASSERT_EQ(t.classes.size(), 2u);
      seen.insert(t.classes.begin(), t.classes.end());
      EXPECT_EQ(t.train.size(), 12000);  // 6000 per class
      EXPECT_EQ(t.test.size(), 2000);
      const auto in_task = (t.train.labels == t.classes[0]) | (t.train.labels == t.classes[1]);
      EXPECT_TRUE(in_task.all().item<bool>());
      total += t.train.size();
    }
    EXPECT_EQ(seen.size(), 10u);
    EXPECT_EQ(total, 60000);
    if (seed == 0) EXPECT_EQ(tasks[1].classes, (std::vector<std::int64_t>{2, 3}));
  }
  const auto dom = make_stream(fmnist(), {StreamKind::SplitDomainIncremental, 5, 0});
  EXPECT_EQ(dom[2].train.labels.max().item<std::int64_t>(), 1);  // relabelled 0/1
  EXPECT_EQ(dom[2].train.labels.sum().item<std::int64_t>(), 6000);
  EXPECT_THROW(make_stream(fmnist(), {StreamKind::SplitClassIncremental, 4, 0}), sl::ConfigError);
}

TEST(ClStreams, PermutedKeepsTaskZeroAndPermutesTheRestConsistently) {
  const auto tasks = make_stream(fmnist(), {StreamKind::Permuted, 3, 7});
  EXPECT_TRUE(torch::equal(tasks[0].train.images, fmnist().train.images));
  // A permutation keeps every image's multiset of pixel values but moves them.
  const auto a = fmnist().test.images[5].flatten(), b = tasks[1].test.images[5].flatten();
  EXPECT_FALSE(torch::equal(a, b));
  EXPECT_TRUE(torch::equal(std::get<0>(a.sort()), std::get<0>(b.sort())));
  // Different tasks use different permutations.
  EXPECT_FALSE(torch::equal(tasks[1].train.images, tasks[2].train.images));
  const auto again = make_stream(fmnist(), {StreamKind::Permuted, 3, 7});
  EXPECT_TRUE(torch::equal(again[2].test.images, tasks[2].test.images));  // seeded
}

TEST(ClStreams, PermutePixelsMovesPixelsAsTheIndexSays) {
  const auto img = torch::arange(4, torch::kFloat32).reshape({1, 1, 2, 2});  // [[0,1],[2,3]]
  const auto out = permute_pixels(img, torch::tensor({3, 2, 1, 0}, torch::kInt64));
  EXPECT_TRUE(torch::equal(out.flatten(), torch::tensor({3.f, 2.f, 1.f, 0.f})));
}

TEST(ClStreams, RotationIsCounterClockwiseAboutTheCentre) {
  // 3x3 image with a single bright pixel at row 0, column 1 (top middle). A 90° counter-clockwise
  // rotation moves it to row 1, column 0 (left middle); 180° to row 2, column 1.
  auto img = torch::zeros({1, 1, 3, 3});
  img[0][0][0][1] = 1.0f;
  const auto r90 = rotate_images(img, 90);
  EXPECT_NEAR(r90[0][0][1][0].item<float>(), 1.0f, 1e-5);
  EXPECT_NEAR(r90.sum().item<float>(), 1.0f, 1e-5);
  const auto r180 = rotate_images(img, 180);
  EXPECT_NEAR(r180[0][0][2][1].item<float>(), 1.0f, 1e-5);
  EXPECT_TRUE(torch::allclose(rotate_images(img, 0), img, 0, 1e-6));
  EXPECT_TRUE(torch::allclose(rotate_images(img, 360), img, 0, 1e-5));
  const auto tasks = make_stream(fmnist(), {StreamKind::Rotated, 3, 0, 80.0});
  EXPECT_TRUE(torch::equal(tasks[0].test.images, fmnist().test.images));
  EXPECT_FALSE(torch::equal(tasks[2].test.images, fmnist().test.images));
}
