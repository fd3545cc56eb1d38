#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/classifier.h"
#include "testing.h"

namespace sl = stablelearn;
using sl::models::Classifier;
using sl::models::ClassifierOptions;

namespace {
std::int64_t count(const Classifier& c) {
  std::int64_t n = 0;
  for (const auto& p : c->parameters()) n += p.numel();
  return n;
}
}  // namespace

TEST(Classifier, ParameterCountsOfTheDefaultMlpAndCnn) {
  // MLP 784-400-400-10: 784·400 + 400 + 400·400 + 400 + 400·10 + 10.
  EXPECT_EQ(count(Classifier(ClassifierOptions{})), 784 * 400 + 400 + 400 * 400 + 400 + 4000 + 10);
  // CNN: conv 1→32 (3×3) + conv 32→64 (3×3) + fc 64·7·7 → 128 + out 128 → 10.
  ClassifierOptions o;
  o.kind = "cnn";
  EXPECT_EQ(count(Classifier(o)), (32 * 9 + 32) + (64 * 32 * 9 + 64) + (64 * 49 * 128 + 128) + (128 * 10 + 10));
}

TEST(Classifier, MlpForwardIsTheAffineReluChain) {
  ClassifierOptions o;
  o.hidden = {5};
  o.classes = 3;
  o.input = {1, 2, 2};
  Classifier c(o);
  const auto x = torch::randn({4, 1, 2, 2});
  const auto& w = c->weights();
  const auto h = (x.reshape({4, 4}).matmul(w[0].t()) + w[1]).clamp_min(0);
  EXPECT_TRUE(torch::allclose(c->forward(x), h.matmul(w[2].t()) + w[3], 1e-5, 1e-6));
  // The functional face with other weights equals a module holding those weights.
  std::vector<torch::Tensor> other;
  for (const auto& t : w) other.push_back(torch::randn_like(t));
  const auto h2 = (x.reshape({4, 4}).matmul(other[0].t()) + other[1]).clamp_min(0);
  EXPECT_TRUE(torch::allclose(c->forward(x, other), h2.matmul(other[2].t()) + other[3], 1e-5, 1e-6));
  // Inputs of the linear layers, for GPM.
  const auto in = c->linear_inputs(x);
  ASSERT_EQ(in.size(), 2u);
  EXPECT_TRUE(torch::allclose(in[1], h, 1e-5, 1e-6));
}

TEST(Classifier, CnnShapesAndErrors) {
  ClassifierOptions o;
  o.kind = "cnn";
  Classifier c(o);
  EXPECT_EQ(c->forward(torch::randn({2, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{2, 10}));
  EXPECT_EQ(c->linear_inputs(torch::randn({2, 1, 28, 28}))[0].size(1), 64 * 49);
  sl::testing::expect_error<sl::ShapeError>([&] { c->forward(torch::randn({2, 1, 27, 28})); }, "[N, 1, 28, 28]");
  ClassifierOptions bad;
  bad.kind = "rnn";
  sl::testing::expect_error<sl::ConfigError>([&] { Classifier b(bad); }, "model.kind");
}
