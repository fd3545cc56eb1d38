// SKA: the knowledge entropy and its local update direction against hand values and central finite
// differences of the entropy, layer 1's step as gradient descent on H/N (finite differences in W),
// the whole two-layer rule against a naive scalar implementation written out here, the entropy
// decreasing on a 4-layer network, and the option / batch errors.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/optim/ska.h"
#include "testing.h"

namespace so = stablelearn::optim;
namespace sl = stablelearn;

namespace {
const double kLn2 = std::log(2.0);
torch::Tensor d2(std::vector<double> v, std::int64_t rows, std::int64_t cols) {
  return torch::tensor(v, torch::kFloat64).reshape({rows, cols});
}
double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }
}  // namespace

TEST(Ska, EntropyIsMinusSumOfKnowledgeTimesDecisionShiftInBits) {
  const auto z = d2({1, -2, 0.5, 3}, 2, 2), dd = d2({0.1, 0.2, -0.4, 0.05}, 2, 2);
  // Σ z ΔD = 0.1 − 0.4 − 0.2 + 0.15 = −0.35, so H = 0.35 / ln 2.
  EXPECT_NEAR(so::ska_entropy(z, dd).item<double>(), 0.35 / kLn2, 1e-15);
  EXPECT_THROW(so::ska_entropy(z, d2({1, 2}, 1, 2)), sl::ShapeError);
}

TEST(Ska, UpdateDirectionByHandAtZeroAndAtLn3) {
  // z = 0: D' = 1/4 but z D' = 0, so G = −ΔD / ln 2. z = ln 3: D = 3/4, D' = 3/16.
  const auto z = d2({0, std::log(3.0)}, 1, 2), dd = d2({0.2, -0.1}, 1, 2);
  const auto g = so::ska_entropy_gradient(z, dd);
  EXPECT_NEAR(g[0][0].item<double>(), -0.2 / kLn2, 1e-15);
  EXPECT_NEAR(g[0][1].item<double>(), -(std::log(3.0) * 3.0 / 16.0 - 0.1) / kLn2, 1e-15);
}

TEST(Ska, UpdateDirectionIsTheFiniteDifferenceGradientOfTheEntropyWithPreviousDecisionsFixed) {
  torch::manual_seed(3);
  const auto z = torch::randn({3, 4}, torch::kFloat64) * 2;
  const auto d_prev = torch::rand({3, 4}, torch::kFloat64);
  auto entropy = [&](const torch::Tensor& zz) { return so::ska_entropy(zz, torch::sigmoid(zz) - d_prev).item<double>(); };
  const auto g = so::ska_entropy_gradient(z, torch::sigmoid(z) - d_prev);
  const double h = 1e-6;
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) {
      auto zp = z.clone(), zm = z.clone();
      zp[i][j] += h;
      zm[i][j] -= h;
      EXPECT_NEAR(g[i][j].item<double>(), (entropy(zp) - entropy(zm)) / (2 * h), 1e-8) << i << "," << j;
    }
}

TEST(Ska, FirstLayerStepIsGradientDescentOnTheEntropyOverN) {
  torch::manual_seed(5);
  so::SkaOptions o;
  o.layer_sizes = {3};
  o.lr = 0.5;
  o.init_std = 0.7;
  so::SkaNetwork net(4, o, torch::kFloat64);
  const auto x = torch::rand({5, 4}, torch::kFloat64);
  net.step(x);  // step 0: forward only
  const auto d_prev = net.forward(x)[0];  // the decisions step 1 will record as D_prev
  net.step(x);  // step 1: ΔD = 0, first update
  const auto w = net.weights()[0].clone(), b = net.biases()[0].clone();
  auto entropy = [&](const torch::Tensor& ww, const torch::Tensor& bb) {
    const auto z = torch::addmm(bb, x, ww);
    return so::ska_entropy(z, torch::sigmoid(z) - d_prev).item<double>();
  };
  const auto s = net.step(x);  // step 2: ΔD ≠ 0
  ASSERT_TRUE(s.updated);
  EXPECT_NEAR(s.layers[0].entropy, entropy(w, b), 1e-12);
  EXPECT_LT(s.layers[0].entropy, 0);
  const double h = 1e-6, n = 5;
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) {
      auto wp = w.clone(), wm = w.clone();
      wp[i][j] += h;
      wm[i][j] -= h;
      const double dh = (entropy(wp, b) - entropy(wm, b)) / (2 * h);
      EXPECT_NEAR(net.weights()[0][i][j].item<double>(), w[i][j].item<double>() - o.lr * dh / n, 1e-8) << i << "," << j;
    }
  for (std::int64_t j = 0; j < 3; ++j) {
    auto bp = b.clone(), bm = b.clone();
    bp[j] += h;
    bm[j] -= h;
    const double dh = (entropy(w, bp) - entropy(w, bm)) / (2 * h);
    EXPECT_NEAR(net.biases()[0][j].item<double>(), b[j].item<double>() - o.lr * dh / n, 1e-8) << j;
  }
}

// The reference algorithm written out with scalars for a 3 → 2 → 2 network: layer 2 updates with
// the previous step's layer-1 decisions as its input.
TEST(Ska, TwoLayerRunMatchesANaiveScalarImplementation) {
  torch::manual_seed(11);
  so::SkaOptions o;
  o.layer_sizes = {2, 2};
  o.lr = 0.3;
  o.init_std = 0.8;
  so::SkaNetwork net(3, o, torch::kFloat64);
  const auto xt = torch::rand({4, 3}, torch::kFloat64);
  using Mat = std::vector<std::vector<double>>;
  auto to_mat = [](const torch::Tensor& t) {
    Mat m(static_cast<std::size_t>(t.size(0)), std::vector<double>(static_cast<std::size_t>(t.size(1))));
    for (std::size_t i = 0; i < m.size(); ++i)
      for (std::size_t j = 0; j < m[i].size(); ++j) m[i][j] = t[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(j)].item<double>();
    return m;
  };
  const Mat x = to_mat(xt);
  std::vector<Mat> w = {to_mat(net.weights()[0]), to_mat(net.weights()[1])};
  std::vector<std::vector<double>> b = {{0, 0}, {0, 0}};
  std::vector<Mat> zp, dp;  // previous step
  std::vector<double> entropies;
  const int steps = 5;
  for (int k = 0; k < steps; ++k) {
    std::vector<Mat> z(2, Mat(4, std::vector<double>(2))), dd(2, Mat(4, std::vector<double>(2)));
    for (int l = 0; l < 2; ++l)
      for (int n = 0; n < 4; ++n)
        for (int j = 0; j < 2; ++j) {
          double s = b[l][j];
          const auto& in = l == 0 ? x[n] : dd[0][n];
          for (std::size_t i = 0; i < in.size(); ++i) s += in[i] * w[l][i][j];
          z[l][n][j] = s;
          dd[l][n][j] = sigmoid(s);
        }
    if (k > 0)
      for (int l = 0; l < 2; ++l) {
        Mat g(4, std::vector<double>(2));
        double h = 0;
        for (int n = 0; n < 4; ++n)
          for (int j = 0; j < 2; ++j) {
            const double delta = dd[l][n][j] - dp[l][n][j];
            h += z[l][n][j] * delta;
            g[n][j] = -(z[l][n][j] * dd[l][n][j] * (1 - dd[l][n][j]) + delta) / kLn2;
          }
        entropies.push_back(-h / kLn2);
        for (std::size_t i = 0; i < w[l].size(); ++i)
          for (int j = 0; j < 2; ++j) {
            double s = 0;
            for (int n = 0; n < 4; ++n) s += (l == 0 ? x[n][i] : dp[0][n][i]) * g[n][j];
            w[l][i][j] -= o.lr * s / 4;
          }
        for (int j = 0; j < 2; ++j) {
          double s = 0;
          for (int n = 0; n < 4; ++n) s += g[n][j];
          b[l][j] -= o.lr * s / 4;
        }
      }
    zp = z;
    dp = dd;
  }
  const auto run = net.train(xt, steps);
  ASSERT_EQ(run.size(), static_cast<std::size_t>(steps));
  EXPECT_FALSE(run[0].updated);
  std::size_t e = 0;
  for (int k = 1; k < steps; ++k)
    for (int l = 0; l < 2; ++l) EXPECT_NEAR(run[static_cast<std::size_t>(k)].layers[static_cast<std::size_t>(l)].entropy, entropies[e++], 1e-12);
  for (int l = 0; l < 2; ++l) {
    const auto& wt = net.weights()[static_cast<std::size_t>(l)];
    for (std::int64_t i = 0; i < wt.size(0); ++i)
      for (std::int64_t j = 0; j < 2; ++j)
        EXPECT_NEAR(wt[i][j].item<double>(), w[static_cast<std::size_t>(l)][static_cast<std::size_t>(i)][static_cast<std::size_t>(j)], 1e-13);
    for (std::int64_t j = 0; j < 2; ++j)
      EXPECT_NEAR(net.biases()[static_cast<std::size_t>(l)][j].item<double>(), b[static_cast<std::size_t>(l)][static_cast<std::size_t>(j)], 1e-13);
  }
}

TEST(Ska, EntropyDecreasesInEveryLayerAndDecisionsSharpen) {
  torch::manual_seed(0);
  so::SkaOptions o;
  o.layer_sizes = {32, 16, 8, 4};
  o.lr = 0.01;
  so::SkaNetwork net(64, o);
  const auto x = torch::rand({200, 64});  // [0, 1] inputs, as the paper's raw pixels
  const auto before = net.forward(x);
  const auto run = net.train(x, 100);
  const auto after = net.forward(x);
  for (std::size_t l = 0; l < 4; ++l) {
    double cumulative = 0;
    EXPECT_EQ(run[1].layers[l].entropy, 0) << "step 1 sees no decision shift";
    for (std::size_t k = 2; k < run.size(); ++k) {
      EXPECT_LT(run[k].layers[l].entropy, 0) << "layer " << l << " step " << k;
      cumulative += run[k].layers[l].entropy;
    }
    EXPECT_LT(cumulative, 0) << l;
    // Decisions move away from the undecided 1/2.
    EXPECT_GT((after[l] - 0.5).abs().mean().item<double>(), 2 * (before[l] - 0.5).abs().mean().item<double>()) << l;
  }
}

TEST(Ska, FollowsTheTensorOptionsDtype) {
  so::SkaNetwork net(5, {}, torch::kFloat64);
  for (const auto& w : net.weights()) EXPECT_EQ(w.scalar_type(), torch::kFloat64);
  EXPECT_EQ(net.forward(torch::rand({2, 5})).back().scalar_type(), torch::kFloat64);
  EXPECT_EQ(net.weights()[0].size(0), 5);
  EXPECT_EQ(net.weights()[3].size(1), 10);
}

TEST(Ska, BadOptionsAndBatchesNameTheKey) {
  so::SkaOptions o;
  o.lr = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(4, o); }, "ska.lr");
  o.lr = std::nan("");
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(4, o); }, "ska.lr");
  o = {};
  o.init_std = -1;
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(4, o); }, "ska.init_std");
  o = {};
  o.layer_sizes = {8, 0};
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(4, o); }, "ska.layer_sizes[1]");
  o.layer_sizes = {};
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(4, o); }, "ska.layer_sizes");
  sl::testing::expect_error<sl::ConfigError>([&] { so::SkaNetwork(0, {}); }, "input_size");
  so::SkaNetwork net(4, {});
  sl::testing::expect_error<sl::ShapeError>([&] { net.step(torch::rand({3, 5})); }, "want N x 4");
  auto bad = torch::rand({3, 4});
  bad[1][2] = std::nan("");
  sl::testing::expect_error<sl::DataError>([&] { net.step(bad); }, "non-finite");
  sl::testing::expect_error<sl::ConfigError>([&] { net.train(torch::rand({3, 4}), 0); }, "ska.steps");
}
