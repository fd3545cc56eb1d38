#include <gtest/gtest.h>

#include "stablelearn/continual/buffer.h"

using stablelearn::continual::Memory;

TEST(Memory, ReservoirKeepsEverySampleWithEqualProbability) {
  // A stream of 100 samples (label = position) into a memory of 10, 2000 times: every sample must
  // be kept with probability 10/100 (Vitter's algorithm R). Expected count 200 each, sd ≈ 13.4.
  auto gen = at::detail::createCPUGenerator(3);
  std::vector<int> counts(100, 0);
  for (int rep = 0; rep < 2000; ++rep) {
    Memory m(10, Memory::Policy::Reservoir);
    for (int b = 0; b < 100; b += 20) {
      const auto y = torch::arange(b, b + 20, torch::kInt64);
      m.add_reservoir(y.to(torch::kFloat32).unsqueeze(1), y, torch::zeros({20}, torch::kInt64), {}, gen);
    }
    ASSERT_EQ(m.size(), 10);
    const auto lab = m.labels();
    for (int i = 0; i < 10; ++i) ++counts[lab[i].item<std::int64_t>()];
  }
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(counts[i], 200, 60) << "sample " << i;
}

TEST(Memory, ClassBalancedSplitsCapacityOverSeenClasses) {
  auto gen = at::detail::createCPUGenerator(1);
  Memory m(12, Memory::Policy::ClassBalanced);
  auto y0 = torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, torch::kInt64);
  m.add_class_balanced(y0.to(torch::kFloat32).unsqueeze(1), y0, torch::zeros({16}, torch::kInt64), gen);
  EXPECT_EQ(m.size(), 12);
  EXPECT_EQ((m.labels() == 0).sum().item<std::int64_t>(), 6);
  auto y1 = torch::tensor({2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3}, torch::kInt64);
  m.add_class_balanced(y1.to(torch::kFloat32).unsqueeze(1), y1, torch::ones({12}, torch::kInt64), gen);
  EXPECT_EQ(m.size(), 12);
  for (int c = 0; c < 4; ++c) EXPECT_EQ((m.labels() == c).sum().item<std::int64_t>(), 3) << c;
  // Save/load round trip keeps the content.
  std::map<std::string, torch::Tensor> st;
  m.save(st, "m");
  Memory r(12, Memory::Policy::ClassBalanced);
  r.load(st, "m");
  EXPECT_TRUE(torch::equal(r.labels(), m.labels()));
}
