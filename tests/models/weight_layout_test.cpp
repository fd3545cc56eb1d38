#include <cmath>

#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/weight_layout.h"

namespace {

using stablelearn::models::WeightLayout;

WeightLayout example() {
  WeightLayout l;
  l.add("a.weight", {2, 3}).add("a.bias", {2}).add("scalar", {}).add("c", {1, 2, 2});
  return l;
}

TEST(WeightLayout, CountsAndOffsets) {
  auto l = example();
  EXPECT_EQ(l.size(), 4u);
  EXPECT_EQ(l.numel(), 6 + 2 + 1 + 4);
  EXPECT_EQ(l.offsets(), (std::vector<std::int64_t>{0, 6, 8, 9}));
  EXPECT_EQ(l[3].numel, 4);
  EXPECT_EQ(l.index_of("scalar"), 2u);
  EXPECT_THROW(l.index_of("nope"), stablelearn::ConfigError);
  EXPECT_THROW(l.add("a.bias", {1}), stablelearn::ConfigError);
  EXPECT_THROW(WeightLayout().add("neg", {2, -1}), stablelearn::ConfigError);
}

TEST(WeightLayout, SplitIsRowMajorInOrder) {
  auto l = example();
  auto flat = torch::arange(13, torch::kFloat64);
  auto parts = l.split(flat);
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].sizes(), torch::IntArrayRef({2, 3}));
  // Row-major: element [i][j] of the first entry is offset 0 + 3 i + j.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(parts[0][i][j].item<double>(), 3 * i + j);
  EXPECT_EQ(parts[1][0].item<double>(), 6);
  EXPECT_EQ(parts[1][1].item<double>(), 7);
  EXPECT_EQ(parts[2].dim(), 0);
  EXPECT_EQ(parts[2].item<double>(), 8);
  EXPECT_EQ(parts[3].sizes(), torch::IntArrayRef({1, 2, 2}));
  EXPECT_EQ(parts[3][0][1][0].item<double>(), 9 + 2);
  // Views: writing into flat shows through.
  flat[7] = 70.0;
  EXPECT_EQ(parts[1][1].item<double>(), 70.0);
}

TEST(WeightLayout, SplitKeepsTheAutogradHistory) {
  auto l = example();
  auto flat = torch::zeros({13}, torch::kFloat64).requires_grad_(true);
  auto parts = l.split(flat);
  (parts[0].sum() * 2 + parts[3].sum()).backward();
  auto g = flat.grad();
  EXPECT_EQ(g.slice(0, 0, 6).sum().item<double>(), 12.0);
  EXPECT_EQ(g.slice(0, 6, 9).sum().item<double>(), 0.0);
  EXPECT_EQ(g.slice(0, 9, 13).sum().item<double>(), 4.0);
}

TEST(WeightLayout, BatchedSplitAndFlattenRoundTrip) {
  auto l = example();
  auto flat = torch::arange(26, torch::kFloat64).reshape({2, 13});
  auto parts = l.split_batched(flat);
  EXPECT_EQ(parts[0].sizes(), torch::IntArrayRef({2, 2, 3}));
  EXPECT_EQ(parts[0][1][1][2].item<double>(), 13 + 5);
  EXPECT_EQ(parts[2].sizes(), torch::IntArrayRef({2}));
  auto single = l.split(flat[1]);
  EXPECT_TRUE(torch::equal(l.flatten(single), flat[1]));
}

TEST(WeightLayout, ShapeErrors) {
  auto l = example();
  EXPECT_THROW(l.split(torch::zeros({12})), stablelearn::ShapeError);
  EXPECT_THROW(l.split(torch::zeros({13, 1})), stablelearn::ShapeError);
  EXPECT_THROW(l.split_batched(torch::zeros({13})), stablelearn::ShapeError);
  auto parts = l.split(torch::zeros({13}));
  parts[1] = torch::zeros({3});
  EXPECT_THROW(l.flatten(parts), stablelearn::ShapeError);
  parts.pop_back();
  EXPECT_THROW(l.flatten(parts), stablelearn::ShapeError);
}

TEST(WeightLayout, EqualityAndText) {
  EXPECT_EQ(example(), example());
  auto other = example();
  other.add("extra", {1});
  EXPECT_NE(example(), other);
  EXPECT_NE(example().to_string().find("a.weight [2, 3]"), std::string::npos);
  EXPECT_NE(example().to_string().find("total 13"), std::string::npos);
}

TEST(WeightLayout, RegisteredParametersAreUniformWithinTheFanInBound) {
  torch::nn::Module m;
  WeightLayout l;
  l.add("big.weight", {200, 50}).add("big.bias", {200});
  auto params = stablelearn::models::register_layout_parameters(m, l, {50, 4});
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(m.named_parameters().size(), 2u);
  EXPECT_TRUE(m.named_parameters().contains("big_weight"));
  const double b0 = 1.0 / std::sqrt(50.0), b1 = 0.5;
  // float32 draws: compare with the bound rounded to float (uniform_ may return it).
  EXPECT_LE(params[0].abs().max().item<double>(), static_cast<double>(static_cast<float>(b0)));
  EXPECT_GT(params[0].abs().max().item<double>(), 0.99 * b0);  // 10,000 draws fill the range
  EXPECT_NEAR(params[0].mean().item<double>(), 0.0, 0.01);
  // Variance of U(−b, b) is b²/3.
  EXPECT_NEAR(params[0].var().item<double>(), b0 * b0 / 3.0, 0.05 * b0 * b0 / 3.0);
  EXPECT_LE(params[1].abs().max().item<double>(), static_cast<double>(static_cast<float>(b1)));
  EXPECT_GT(params[1].abs().max().item<double>(), 0.9 * b1);
  EXPECT_TRUE(params[0].requires_grad());
}

}  // namespace
