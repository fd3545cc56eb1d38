// Flow matching (models/flow_matching.h): samplers against closed forms, the loss of a zero network
// by hand, k-means and balanced-cluster pruning on separated blobs, MMD by hand, and a learning test
// on a two-component mixture.
#include <cmath>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/flow_matching.h"
#include "testing.h"

namespace sl = stablelearn;
namespace sm = stablelearn::models;

TEST(FlowMatching, SamplersFollowTheirClosedForms) {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const auto x0 = torch::tensor({{1.0, -2.0}}, opt);
  const sm::VelocityFn decay = [](const torch::Tensor& x, const torch::Tensor&) { return -x; };
  const double h = 0.1;
  EXPECT_TRUE(torch::allclose(sm::sample_ode(decay, x0, 10), x0 * std::pow(1 - h, 10), 1e-14, 0));
  EXPECT_TRUE(torch::allclose(sm::sample_ode(decay, x0, 10, sm::OdeSampler::Heun), x0 * std::pow(1 - h + h * h / 2, 10), 1e-14, 0));
  // The flow-matching optimum for data on one point mu: v*(x, t) = (mu − x)/(1 − t); the last Euler
  // step (t = 1 − h) lands on mu exactly, which checks the time grid t_i = i h.
  const auto mu = torch::tensor({{0.5, 3.0}}, opt);
  const sm::VelocityFn to_mu = [&](const torch::Tensor& x, const torch::Tensor& t) { return (mu - x) / (1 - t); };
  EXPECT_TRUE(torch::allclose(sm::sample_ode(to_mu, x0, 7), mu, 1e-12, 1e-12));
  // Coarse-to-fine with two constant fields: steps starting before t = 0.5 (4 of 8) take a, the rest b.
  const auto a = torch::tensor({{1.0, 0.0}}, opt), b = torch::tensor({{0.0, 1.0}}, opt);
  const auto got = sm::sample_coarse_to_fine([&](const torch::Tensor&, const torch::Tensor&) { return a; },
                                             [&](const torch::Tensor&, const torch::Tensor&) { return b; }, x0, 8, 0.5);
  EXPECT_TRUE(torch::allclose(got, x0 + 0.5 * a + 0.5 * b, 1e-14, 0));
  sl::testing::expect_error<sl::ConfigError>([&] { sm::sample_ode(decay, x0, 0); }, "steps");
}

TEST(FlowMatching, LossOfAZeroNetworkIsTheMeanSquaredDisplacement) {
  torch::manual_seed(0);
  sm::VelocityMlp v(sm::VelocityMlpOptions().dim(3).hidden({8}).time_features(4));
  {
    torch::NoGradGuard g;
    for (auto& p : v->parameters()) p.zero_();  // v ≡ 0 (the last layer's weights and bias are zero)
  }
  const auto x1 = torch::randn({5, 3}), x0 = torch::randn({5, 3}), t = torch::rand({5});
  double want = 0;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) want += std::pow((x1[i][j] - x0[i][j]).item<double>(), 2) / 5;
  EXPECT_NEAR(sm::flow_matching_loss(*v, x1, x0, t).item<double>(), want, 1e-5);
  EXPECT_EQ(v->macs(), (3 + 4) * 8 + 8 * 3);
  sl::testing::expect_error<sl::ConfigError>([] { sm::VelocityMlp(sm::VelocityMlpOptions().time_features(3)); }, "time_features");
  sl::testing::expect_error<sl::ShapeError>([&] { v->forward(torch::randn({2, 4}), torch::rand({2})); }, "VelocityMlp");
}

TEST(FlowMatching, KmeansFindsSeparatedBlobsAndPruningBalancesThem) {
  torch::manual_seed(1);
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const std::vector<std::int64_t> sizes = {50, 30, 5};
  std::vector<torch::Tensor> parts;
  std::vector<std::int64_t> truth;
  for (std::size_t c = 0; c < sizes.size(); ++c) {
    parts.push_back(torch::randn({sizes[c], 2}, opt) * 0.1 + 10.0 * static_cast<double>(c));
    truth.insert(truth.end(), static_cast<std::size_t>(sizes[c]), static_cast<std::int64_t>(c));
  }
  const auto x = torch::cat(parts);
  const auto a = sm::kmeans(x, 3, 7);
  // The same partition as the blobs (labels up to a permutation).
  for (std::size_t i = 0; i < truth.size(); ++i)
    for (std::size_t j = i + 1; j < truth.size(); j += 7)
      EXPECT_EQ(a[static_cast<std::int64_t>(i)].item<std::int64_t>() == a[static_cast<std::int64_t>(j)].item<std::int64_t>(),
                truth[i] == truth[j])
          << i << " " << j;
  const auto keep = sm::balanced_cluster_subset(x, 30, 3, 7);
  ASSERT_EQ(keep.numel(), 30);
  std::vector<std::int64_t> per(3, 0);
  std::set<std::int64_t> seen;
  for (std::int64_t i = 0; i < 30; ++i) {
    const auto r = keep[i].item<std::int64_t>();
    if (i > 0) {
      EXPECT_LT(keep[i - 1].item<std::int64_t>(), r);
    }
    seen.insert(r);
    ++per[static_cast<std::size_t>(truth[static_cast<std::size_t>(r)])];
  }
  EXPECT_EQ(seen.size(), 30u);
  EXPECT_EQ(per[2], 5) << "the small cluster gives all it has";
  EXPECT_LE(std::abs(per[0] - per[1]), 1) << per[0] << " " << per[1];
}

TEST(FlowMatching, MmdOfTinySetsByHand) {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const auto a = torch::tensor({{0.0}, {1.0}}, opt), b = torch::tensor({{0.0}, {2.0}}, opt);
  auto k = [](double d) { return std::exp(-d * d / 2); };
  const double want = k(1) + k(2) - 2 * (k(0) + k(2) + k(1) + k(1)) / 4;
  EXPECT_NEAR(sm::mmd2(a, b, 1.0), want, 1e-12);
}

TEST(FlowMatching, LearnsATwoComponentMixture) {
  at::set_num_threads(sl::testing::test_threads());
  torch::manual_seed(2);
  auto data = [](std::int64_t n) {
    const auto side = torch::randint(0, 2, {n}).to(torch::kFloat32) * 4 - 2;  // ±2
    return torch::stack({side, torch::zeros({n})}, 1) + 0.3 * torch::randn({n, 2});
  };
  sm::VelocityMlp v(sm::VelocityMlpOptions().dim(2).hidden({64, 64}).time_features(8));
  torch::optim::Adam opt(v->parameters(), torch::optim::AdamOptions(3e-3));
  for (int step = 0; step < 600; ++step) {
    const auto x1 = data(256);
    const auto loss = sm::flow_matching_loss(*v, x1, torch::randn_like(x1), torch::rand({256}));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  const auto noise = torch::randn({600, 2});
  const auto s = sm::sample_ode(sm::velocity_fn(*v), noise, 50);
  const double right = s.select(1, 0).gt(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(right, 0.5, 0.15);
  EXPECT_NEAR(s.select(1, 0).abs().mean().item<double>(), 2.0, 0.4);
  const auto held = data(600);
  EXPECT_LT(sm::mmd2(s, held, 1.0), 0.2 * sm::mmd2(noise, held, 1.0));
}
