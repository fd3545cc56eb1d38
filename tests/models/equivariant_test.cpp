// models/equivariant: p4 lifting and group convolutions against a convolution-by-convolution sum
// written from the formula, exact equivariance under rotations by 90° (feature maps rotate and
// shift cyclically along the rotation axis; group-pooled and globally pooled outputs are invariant),
// the message-passing layer against a loop over nodes and edges, permutation equivariance and
// invariance, bad options, and small learning tests.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/models/equivariant.h"
#include "testing.h"

namespace sm = stablelearn::models;
namespace smf = stablelearn::models::functional;
namespace sl = stablelearn;

namespace {

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

torch::Tensor corr(const torch::Tensor& x2d, const torch::Tensor& k2d) {
  // One-channel "same" correlation of [H, W] with [k, k].
  return torch::conv2d(x2d.unsqueeze(0).unsqueeze(0), k2d.unsqueeze(0).unsqueeze(0), {}, 1, k2d.size(0) / 2)[0][0];
}

}  // namespace

TEST(P4Conv, LiftingAndGroupConvolutionsMatchTheirDefiningSums) {
  const auto x = torch::randn({2, 3, 7, 7}, torch::kFloat64);
  const auto psi = torch::randn({4, 3, 3, 3}, torch::kFloat64), bias = torch::randn({4}, torch::kFloat64);
  const auto lift = smf::p4_lift_conv(x, psi, bias);
  ASSERT_EQ(lift.sizes(), (std::vector<std::int64_t>{2, 4, 4, 7, 7}));
  const auto f = torch::randn({2, 3, 4, 7, 7}, torch::kFloat64);
  const auto phi = torch::randn({2, 3, 4, 3, 3}, torch::kFloat64), beta = torch::randn({2}, torch::kFloat64);
  const auto g = smf::p4_group_conv(f, phi, beta);
  ASSERT_EQ(g.sizes(), (std::vector<std::int64_t>{2, 2, 4, 7, 7}));
  double lift_err = 0, group_err = 0;
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t r = 0; r < 4; ++r) {
      for (std::int64_t o = 0; o < 4; ++o) {
        auto s = bias[o] + torch::zeros({7, 7}, torch::kFloat64);
        for (std::int64_t i = 0; i < 3; ++i) s = s + corr(x[n][i], torch::rot90(psi[o][i], r, {0, 1}));
        lift_err = std::max(lift_err, max_abs(lift[n][o][r] - s));
      }
      for (std::int64_t o = 0; o < 2; ++o) {
        auto s = beta[o] + torch::zeros({7, 7}, torch::kFloat64);
        for (std::int64_t i = 0; i < 3; ++i)
          for (std::int64_t q = 0; q < 4; ++q) s = s + corr(f[n][i][q], torch::rot90(phi[o][i][((q - r) % 4 + 4) % 4], r, {0, 1}));
        group_err = std::max(group_err, max_abs(g[n][o][r] - s));
      }
    }
  EXPECT_LT(lift_err, 1e-12);
  EXPECT_LT(group_err, 1e-12);
}

TEST(P4Conv, RotatingTheInputRotatesTheFeatureMapsAndShiftsTheRotationAxis) {
  const auto x = torch::randn({2, 2, 9, 9}, torch::kFloat64);
  const auto psi = torch::randn({3, 2, 3, 3}, torch::kFloat64), bias = torch::randn({3}, torch::kFloat64);
  const auto phi = torch::randn({4, 3, 4, 5, 5}, torch::kFloat64), beta = torch::randn({4}, torch::kFloat64);
  const auto net = [&](const torch::Tensor& in) { return smf::p4_group_conv(smf::p4_lift_conv(in, psi, bias).relu(), phi, beta); };
  const auto y = net(x);
  for (std::int64_t k = 1; k < 4; ++k) {
    const auto xr = torch::rot90(x, k, {2, 3});
    EXPECT_LT(max_abs(smf::p4_lift_conv(xr, psi, bias) - smf::p4_rotate(smf::p4_lift_conv(x, psi, bias), k)), 1e-6) << k;
    EXPECT_LT(max_abs(net(xr) - smf::p4_rotate(y, k)), 1e-6) << k;
    // Group pooling: rotation-equivariant planar maps; a global mean: invariant.
    for (const char* how : {"max", "mean"}) {
      EXPECT_LT(max_abs(smf::p4_group_pool(net(xr), how) - torch::rot90(smf::p4_group_pool(y, how), k, {2, 3})), 1e-6) << how;
      EXPECT_LT(max_abs(smf::p4_group_pool(net(xr), how).mean({2, 3}) - smf::p4_group_pool(y, how).mean({2, 3})), 1e-6) << how;
    }
    // Without the cyclic shift the rotated maps do not match: the shift is part of the action.
    EXPECT_GT(max_abs(net(xr) - torch::rot90(y, k, {3, 4})), 1e-3) << k;
  }
}

TEST(GroupCnn, TheP4CnnIsInvariantToRotationsByNinetyDegreesAndThePlainCnnIsNot) {
  for (const std::int64_t rot : {4, 1}) {
    sm::GroupCnnOptions o;
    o.rotations = rot;
    o.channels = {4, 6, 5};
    o.input = {1, 16, 16};
    sm::GroupCnn net(o);
    net->to(torch::kFloat64);
    const auto x = torch::randn({3, 1, 16, 16}, torch::kFloat64);
    torch::NoGradGuard ng;
    const auto y = net->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<std::int64_t>{3, 10}));
    for (std::int64_t k = 1; k < 4; ++k) {
      const double d = max_abs(net->forward(torch::rot90(x, k, {2, 3})) - y);
      if (rot == 4) {
        EXPECT_LT(d, 1e-6) << k;
        const auto f = net->features(x, net->weights());
        EXPECT_LT(max_abs(net->features(torch::rot90(x, k, {2, 3}), net->weights()) - smf::p4_rotate(f, k)), 1e-6);
      } else {
        EXPECT_GT(d, 1e-4) << k;
      }
    }
  }
}

TEST(GroupCnn, BadGroupOrdersKernelsAndInputsAreConfigErrorsNamingTheKey) {
  namespace st = stablelearn::testing;
  sm::GroupCnnOptions o;
  o.rotations = 3;
  st::expect_error<sl::ConfigError>([&] { sm::GroupCnn n(o); }, "model.rotations: must be 1 or 4, got 3");
  o.rotations = 4;
  o.kernel = 4;
  st::expect_error<sl::ConfigError>([&] { sm::GroupCnn n(o); }, "model.kernel");
  o.kernel = 3;
  o.input = {1, 28, 24};
  st::expect_error<sl::ConfigError>([&] { sm::GroupCnn n(o); }, "model.input: rotations = 4 needs square images");
  o.input = {1, 30, 30};
  st::expect_error<sl::ConfigError>([&] { sm::GroupCnn n(o); }, "multiples of 4");
  o.input = {1, 28, 28};
  sm::GroupCnn n(o);
  st::expect_error<sl::ShapeError>([&] { n->forward(torch::zeros({2, 1, 24, 24})); }, "expected images [N, 1, 28, 28]");
  st::expect_error<sl::ShapeError>([&] { smf::p4_group_conv(torch::zeros({1, 2, 3, 5, 5}), torch::zeros({2, 2, 4, 3, 3}), {}); },
                                   "expected f [N, 2, 4, H, W]");
}

TEST(GroupCnn, AP4CnnLearnsToTellSquaresFromBarsInAnyOrientation) {
  // 12×12 images: class 0 a 3×3 square, class 1 a 1×5 bar (horizontal or vertical), random
  // position, plus noise.
  torch::manual_seed(5);
  const std::int64_t n = 256;
  auto x = 0.1 * torch::randn({n, 1, 12, 12});
  auto y = torch::randint(0, 2, {n}, torch::kInt64);
  auto pos = torch::randint(1, 7, {n, 2}, torch::kInt64);
  auto dir = torch::randint(0, 2, {n}, torch::kInt64);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto r = pos[i][0].item<std::int64_t>(), c = pos[i][1].item<std::int64_t>();
    using torch::indexing::Slice;
    if (y[i].item<std::int64_t>() == 0) x.index({i, 0, Slice(r, r + 3), Slice(c, c + 3)}) += 1.0;
    else if (dir[i].item<std::int64_t>() == 0) x.index({i, 0, r, Slice(c, c + 5)}) += 1.0;
    else x.index({i, 0, Slice(r, r + 5), c}) += 1.0;
  }
  sm::GroupCnnOptions o;
  o.channels = {4, 4};
  o.classes = 2;
  o.input = {1, 12, 12};
  sm::GroupCnn net(o);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 150; ++step) {
    const auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  EXPECT_GE(net->forward(x).argmax(1).eq(y).to(torch::kFloat64).mean().item<double>(), 0.95);
}

TEST(MessagePassing, MatchesALoopOverNodesAndEdges) {
  const auto h = torch::randn({5, 3}, torch::kFloat64);
  const auto edges = torch::tensor({0, 1, 2, 3, 4, 4, 1, 1, 2, 3, 4, 0, 0, 2}, torch::kInt64).view({2, 7});
  const auto wm = torch::randn({4, 6}, torch::kFloat64), bm = torch::randn({4}, torch::kFloat64);
  const auto wu = torch::randn({2, 7}, torch::kFloat64), bu = torch::randn({2}, torch::kFloat64);
  const auto out = smf::message_passing(h, edges, wm, bm, wu, bu);
  for (std::int64_t u = 0; u < 5; ++u) {
    auto m = torch::zeros({4}, torch::kFloat64);
    for (std::int64_t e = 0; e < 7; ++e)
      if (edges[1][e].item<std::int64_t>() == u) m = m + (torch::mv(wm, torch::cat({h[u], h[edges[0][e].item<std::int64_t>()]})) + bm).relu();
    EXPECT_LT(max_abs(out[u] - (torch::mv(wu, torch::cat({h[u], m})) + bu)), 1e-12) << u;
  }
}

TEST(MessagePassing, PermutingTheNodesPermutesTheOutputsAndLeavesTheSumPoolUnchanged) {
  sm::MessagePassingOptions o;
  o.in_features = 4;
  o.message_features = 6;
  o.out_features = 3;
  sm::MessagePassing layer(o);
  layer->to(torch::kFloat64);
  const std::int64_t n = 9;
  const auto h = torch::randn({n, 4}, torch::kFloat64);
  const auto edges = torch::randint(0, n, {2, 20}, torch::kInt64);
  const auto perm = torch::randperm(n, torch::kInt64);  // new node i is old node perm[i]
  const auto inv = torch::argsort(perm);                // old node v is new node inv[v]
  const auto edges_new = inv.index({edges});
  torch::NoGradGuard ng;
  const auto out = layer->forward(h, edges);
  const auto out_new = layer->forward(h.index_select(0, perm), edges_new);
  EXPECT_LT(max_abs(out_new - out.index_select(0, perm)), 1e-6);
  const auto one = torch::zeros({n}, torch::kInt64);
  EXPECT_LT(max_abs(smf::graph_sum_pool(out_new, one, 1) - smf::graph_sum_pool(out, one, 1)), 1e-6);
  // Relabelling the features without the edges is not a symmetry.
  EXPECT_GT(max_abs(layer->forward(h.index_select(0, perm), edges) - out.index_select(0, perm)), 1e-3);
  namespace st = stablelearn::testing;
  st::expect_error<sl::DataError>([&] { layer->forward(h, torch::full({2, 1}, n, torch::kInt64)); }, "node ids in [0, 9)");
  st::expect_error<sl::ShapeError>([&] { layer->forward(torch::zeros({3, 5}, torch::kFloat64), edges); }, "expected h [N, 4]");
}

TEST(MessagePassing, ALayerLearnsToCountIncomingEdges) {
  torch::manual_seed(2);
  sm::MessagePassingOptions o;
  o.in_features = 2;
  o.message_features = 4;
  o.out_features = 1;
  sm::MessagePassing layer(o);
  torch::optim::Adam opt(layer->parameters(), torch::optim::AdamOptions(2e-2));
  const std::int64_t n = 30;
  const auto h = torch::ones({n, 2});
  double mse = 0;
  for (int step = 0; step < 400; ++step) {
    const auto edges = torch::randint(0, n, {2, 60}, torch::kInt64);
    const auto deg = torch::zeros({n}).index_add(0, edges[1], torch::ones({60}));
    const auto loss = (layer->forward(h, edges).squeeze(1) - deg).pow(2).mean();
    mse = loss.item<double>();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  EXPECT_LT(mse, 0.01);
}

TEST(GroupCnn, AGroupOrderReadFromTomlThatIsNotOneOrFourNamesTheKey) {
  namespace st = stablelearn::testing;
  auto cfg = sl::Config::from_string("[model]\nrotations = 2\nchannels = [4, 4]\n");
  st::expect_error<sl::ConfigError>([&] { auto s = cfg.section("model"); sl::options::read<sm::GroupCnnOptions>(s); },
                                    "model.rotations: must be 1 or 4, got 2");
  auto ok = sl::Config::from_string("[model]\nrotations = 1\nchannels = [4, 6]\nkernel = 5\n");
  auto s = ok.section("model");
  const auto o = sl::options::read<sm::GroupCnnOptions>(s);
  s.finish();
  EXPECT_EQ(o.rotations, 1);
  EXPECT_EQ(o.channels, (std::vector<std::int64_t>{4, 6}));
  EXPECT_EQ(o.kernel, 5);
}
