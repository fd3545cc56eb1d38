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

// data/cl_task_stream.h: tasks computed on demand equal the eager make_stream's (same seeds,
// the same per-task subsampling as `cl run`), bitwise.
#include "stablelearn/data/cl_task_stream.h"

namespace {
ImageSet first_n(const ImageSet& s, std::int64_t n) {
  return n > 0 && n < s.size() ? ImageSet{s.images.narrow(0, 0, n), s.labels.narrow(0, 0, n)} : s;
}
std::shared_ptr<const ImageDataset> shared_fmnist() {
  static const auto d = std::make_shared<const ImageDataset>(fmnist());
  return d;
}
}  // namespace

TEST(TaskStream, EqualsTheEagerStreamBitwise) {
  const std::int64_t ntr = 300, nte = 200;
  for (auto kind : {StreamKind::SplitClassIncremental, StreamKind::SplitDomainIncremental, StreamKind::Permuted, StreamKind::Rotated}) {
    const bool split = kind != StreamKind::Permuted && kind != StreamKind::Rotated;
    StreamOptions o{kind, split ? 5 : 4, 3, 13.0};
    ImageDataset base = fmnist();
    if (!split) base = {first_n(base.train, ntr), first_n(base.test, nte)};
    const auto eager = make_stream(base, o);
    const TaskStream lazy(shared_fmnist(), o, ntr, nte);
    ASSERT_EQ(lazy.size(), static_cast<std::int64_t>(eager.size()));
    for (std::int64_t t = lazy.size() - 1; t >= 0; --t) {  // any order: no state between tasks
      const auto& e = eager[static_cast<std::size_t>(t)];
      const auto k = lazy.task(t);
      const auto etr = first_n(e.train, ntr), ete = first_n(e.test, nte);
      EXPECT_EQ(k.classes, e.classes);
      EXPECT_TRUE(torch::equal(k.train.images, etr.images)) << stream_kind_name(kind) << " task " << t;
      EXPECT_TRUE(torch::equal(k.train.labels, etr.labels));
      EXPECT_TRUE(torch::equal(k.test.images, ete.images));
      EXPECT_TRUE(torch::equal(k.test.labels, ete.labels));
      EXPECT_EQ(lazy.train_size(t), etr.size());
      EXPECT_EQ(lazy.test_size(t), ete.size());
    }
  }
}

TEST(TaskStream, LongStreamsAndTaskCounts) {
  // 300 rotated tasks cost nothing until a task is asked for; task 299 is rotated by 299 · 9°.
  const TaskStream rot(shared_fmnist(), {StreamKind::Rotated, 300, 0, 9.0}, 50, 50);
  EXPECT_EQ(rot.size(), 300);
  const auto last = rot.test(299);
  EXPECT_TRUE(torch::equal(last.images, rotate_images(fmnist().test.images.narrow(0, 0, 50), 299 * 9.0)));
  const TaskStream perm(shared_fmnist(), {StreamKind::Permuted, 300, 1}, 10, 10);
  EXPECT_FALSE(torch::equal(perm.train(298).images, perm.train(299).images));
  // Split: 1..5 tasks; fewer leave the rest of the seeded class order unused.
  const TaskStream split3(shared_fmnist(), {StreamKind::SplitClassIncremental, 3, 0});
  EXPECT_EQ(split3.unused_classes(), (std::vector<std::int64_t>{6, 7, 8, 9}));
  try {
    TaskStream(shared_fmnist(), {StreamKind::SplitTaskIncremental, 6, 0});
    ADD_FAILURE() << "6 split tasks accepted";
  } catch (const sl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("stream.tasks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TaskStream(shared_fmnist(), {StreamKind::Rotated, 0, 0}), sl::ConfigError);
}
