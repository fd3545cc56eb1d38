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

TEST(Classifier, HiddenActivationsAreTheReluOutputsBeforeTheHead) {
  // MLP 4-5-3-2: two hidden layers, the hand-written affine-ReLU chain with other weights.
  ClassifierOptions o;
  o.hidden = {5, 3};
  o.classes = 2;
  o.input = {1, 2, 2};
  Classifier c(o);
  EXPECT_EQ(c->hidden_layers(), 2);
  std::vector<torch::Tensor> w;
  for (const auto& t : c->weights()) w.push_back(torch::randn_like(t));
  const auto x = torch::randn({6, 1, 2, 2});
  const auto h0 = (x.reshape({6, 4}).matmul(w[0].t()) + w[1]).clamp_min(0);
  const auto h1 = (h0.matmul(w[2].t()) + w[3]).clamp_min(0);
  const auto h = c->hidden_activations(x, w);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_TRUE(torch::allclose(h[0], h0, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(h[1], h1, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(c->forward(x, w), h1.matmul(w[4].t()) + w[5], 1e-5, 1e-6));
  // CNN: two pooled conv blocks and the fc layer; the last is the input of the output layer.
  ClassifierOptions oc;
  oc.kind = "cnn";
  oc.channels = {4, 6};
  oc.fc = 7;
  Classifier cnn(oc);
  EXPECT_EQ(cnn->hidden_layers(), 3);
  const auto xi = torch::randn({2, 1, 28, 28});
  const auto hc = cnn->hidden_activations(xi, cnn->weights());
  ASSERT_EQ(hc.size(), 3u);
  EXPECT_EQ(hc[0].sizes(), (std::vector<std::int64_t>{2, 4 * 14 * 14}));
  EXPECT_EQ(hc[1].sizes(), (std::vector<std::int64_t>{2, 6 * 7 * 7}));
  EXPECT_EQ(hc[2].sizes(), (std::vector<std::int64_t>{2, 7}));
  EXPECT_TRUE(torch::allclose(hc[1], cnn->linear_inputs(xi)[0], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(hc[2], cnn->linear_inputs(xi)[1], 1e-5, 1e-6));
  // Softmax regression has none.
  ClassifierOptions lin;
  lin.hidden = {};
  EXPECT_TRUE(Classifier(lin)->hidden_activations(torch::randn({2, 1, 28, 28}), Classifier(lin)->weights()).empty());
}
