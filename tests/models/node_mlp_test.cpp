#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/testing/gradcheck.h"

namespace {

namespace M = stablelearn::models;

/// A U(−b, b) bound as float32 draws can reach it: b rounded to float.
double fbound(double b) { return static_cast<double>(static_cast<float>(b)); }
namespace F = stablelearn::models::functional;

torch::Tensor d(std::vector<double> v, std::vector<std::int64_t> shape) {
  return torch::tensor(v, torch::kFloat64).reshape(shape);
}

TEST(NodeMlp, LayoutMatchesTheSpecCounts) {
  // spec §2.6: LASA 2D NODE 100,100,100 with time input: P = 20,802; 1000³: 2,008,002.
  auto l = M::node_mlp_layout(M::NodeMlpOptions(2));
  EXPECT_EQ(l.numel(), 20802);
  ASSERT_EQ(l.size(), 8u);
  EXPECT_EQ(l[0].name, "layer_0.weight");
  EXPECT_EQ(l[0].shape, (std::vector<std::int64_t>{100, 3}));
  EXPECT_EQ(l[6].name, "layer_out.weight");
  EXPECT_EQ(l[6].shape, (std::vector<std::int64_t>{2, 100}));
  EXPECT_EQ(M::node_mlp_layout(M::NodeMlpOptions(2).hidden({1000, 1000, 1000})).numel(), 2008002);
  // Without time the input is d wide: 20,802 − 100.
  EXPECT_EQ(M::node_mlp_layout(M::NodeMlpOptions(2).explicit_time(false)).numel(), 20702);
  EXPECT_THROW(M::node_mlp_layout(M::NodeMlpOptions(0)), stablelearn::ConfigError);
  EXPECT_THROW(M::node_mlp_layout(M::NodeMlpOptions(2).hidden({3, 0})), stablelearn::ConfigError);
}

TEST(NodeMlp, AppendTimePutsTimeLast) {
  auto x = d({1, 2, 3, 4}, {2, 2});
  auto z = F::append_time(x, torch::scalar_tensor(0.25, torch::kFloat64));
  EXPECT_TRUE(torch::equal(z, d({1, 2, 0.25, 3, 4, 0.25}, {2, 3})));
  EXPECT_THROW(F::append_time(x, torch::zeros({2})), stablelearn::ShapeError);
}

TEST(NodeMlp, FunctionalMatchesAHandComputation) {
  auto opt = M::NodeMlpOptions(2).hidden({2});
  std::vector<torch::Tensor> w{d({0.1, -0.2, 0.3, 0.5, 0.4, -0.6}, {2, 3}), d({0.05, -0.1}, {2}),
                               d({1.0, -1.0, 0.5, 2.0}, {2, 2}), d({0.0, 0.2}, {2})};
  auto x = d({1.0, 2.0}, {1, 2});
  auto out = F::node_rhs(torch::scalar_tensor(0.5, torch::kFloat64), x, w, opt);
  // z = [1, 2, 0.5]; a = W0 z + b0 = [-0.1, 0.9]; ELU: [e^{-0.1} − 1, 0.9].
  const double h0 = std::exp(-0.1) - 1.0, h1 = 0.9;
  EXPECT_NEAR(out[0][0].item<double>(), 1.0 * h0 - 1.0 * h1 + 0.0, 1e-14);
  EXPECT_NEAR(out[0][1].item<double>(), 0.5 * h0 + 2.0 * h1 + 0.2, 1e-14);
  // Without time the third input column is not used (W0 must then be [2, 2]).
  auto opt2 = M::NodeMlpOptions(2).hidden({2}).explicit_time(false);
  std::vector<torch::Tensor> w2{d({0.1, -0.2, 0.5, 0.4}, {2, 2}), w[1], w[2], w[3]};
  auto out2 = F::node_rhs(torch::scalar_tensor(123.0, torch::kFloat64), x, w2, opt2);
  const double g0 = std::exp(0.1 - 0.4 + 0.05) - 1.0, g1 = 0.5 + 0.8 - 0.1;
  EXPECT_NEAR(out2[0][0].item<double>(), g0 - g1, 1e-14);
  EXPECT_NEAR(out2[0][1].item<double>(), 0.5 * g0 + 2.0 * g1 + 0.2, 1e-14);
  // A wrong weight list fails with a ShapeError.
  std::vector<torch::Tensor> bad = w;
  bad[2] = torch::zeros({2, 3}, torch::kFloat64);
  EXPECT_THROW(F::node_rhs(torch::scalar_tensor(0.5), x, bad, opt), stablelearn::ShapeError);
  bad.pop_back();
  EXPECT_THROW(F::node_rhs(torch::scalar_tensor(0.5), x, bad, opt), stablelearn::ShapeError);
}

TEST(NodeMlp, ModuleOwnsInitialisedWeightsAndClones) {
  M::NodeMlp net(M::NodeMlpOptions(2).hidden({64, 32}));
  EXPECT_EQ(net->layout().numel(), 3 * 64 + 64 + 64 * 32 + 32 + 32 * 2 + 2);
  EXPECT_EQ(net->parameters().size(), 6u);
  EXPECT_TRUE(net->named_parameters().contains("layer_out_weight"));
  // U(−1/√fan_in, 1/√fan_in) with fan_in = the layer's input width (3, 64, 32).
  const std::vector<double> fan{3, 3, 64, 64, 32, 32};
  for (std::size_t i = 0; i < fan.size(); ++i)
    EXPECT_LE(net->weights()[i].abs().max().item<double>(), fbound(1.0 / std::sqrt(fan[i])));
  EXPECT_GT(net->weights()[2].abs().max().item<double>(), 0.95 / std::sqrt(64.0));
  auto copy = std::dynamic_pointer_cast<M::NodeMlpImpl>(net->clone());
  ASSERT_TRUE(copy);
  ASSERT_EQ(copy->weights().size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_TRUE(torch::equal(copy->weights()[i], net->weights()[i]));
  {
    torch::NoGradGuard g;
    copy->weights()[0].add_(1.0);
  }
  EXPECT_FALSE(torch::equal(copy->weights()[0], net->weights()[0]));
  // forward(t, x) = [x, t] through the MLP, with its own weights.
  auto x = torch::randn({5, 2});
  auto t = torch::scalar_tensor(0.3);
  EXPECT_TRUE(torch::allclose(net->forward(t, x), F::node_rhs(t, x, net->weights(), net->options)));
}

TEST(NodeMlp, GradcheckWithRespectToWeightsAndState) {
  auto opt = M::NodeMlpOptions(2).hidden({4, 3});
  auto layout = M::node_mlp_layout(opt);
  auto flat = (torch::randn({layout.numel()}, torch::kFloat64) * 0.7).requires_grad_(true);
  auto x = torch::randn({3, 2}, torch::kFloat64).requires_grad_(true);
  auto fn = [&](const std::vector<torch::Tensor>& in) {
    return F::node_rhs(torch::scalar_tensor(0.4, torch::kFloat64), in[0], layout.split(in[1]), opt);
  };
  auto r = stablelearn::testing::gradcheck(fn, {x, flat});
  EXPECT_TRUE(r.ok) << r;
}

}  // namespace
