// Koopman representations (models/koopman.h): the ridge operator against its primal form and a
// known linear map, the InfoNCE against a per-element loop, the von Neumann entropy against closed
// forms, the dynamical systems against hand values and closed-form solutions, and a short training
// that predicts better than persistence.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/koopman.h"
#include "testing.h"

namespace sl = stablelearn;
namespace sm = stablelearn::models;

TEST(Koopman, OperatorIsTheMeanRidgeRegressionAndRecoversALinearMap) {
  torch::manual_seed(0);
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const auto z = torch::randn({3, 5, 4}, opt), zn = torch::randn({3, 5, 4}, opt);
  const double r = 0.1;
  // Primal form per window: (ZᵀZ + r I_H)⁻¹ Zᵀ Z', then the mean (push-through identity).
  auto want = torch::zeros({4, 4}, opt);
  for (int b = 0; b < 3; ++b)
    want += torch::linalg_solve(z[b].t().matmul(z[b]) + r * torch::eye(4, opt), z[b].t().matmul(zn[b])) / 3.0;
  EXPECT_TRUE(torch::allclose(sm::koopman_operator(z, zn, r), want, 1e-10, 1e-12));
  // Latents that follow z' = z A exactly (more steps than dimensions): C → A as the ridge → 0.
  const auto a = torch::randn({4, 4}, opt) * 0.5;
  const auto zl = torch::randn({2, 12, 4}, opt);
  EXPECT_TRUE(torch::allclose(sm::koopman_operator(zl, zl.matmul(a), 1e-9), a, 1e-6, 1e-6));
  sl::testing::expect_error<sl::ConfigError>([&] { sm::koopman_operator(z, zn, 0); }, "ridge");
  sl::testing::expect_error<sl::ShapeError>([&] { sm::koopman_operator(z, zn.slice(1, 0, 4), r); }, "[B, T, H]");
}

TEST(Koopman, InfoNceMatchesALoopOverAnchorsPositivesAndCandidates) {
  torch::manual_seed(1);
  const auto z = torch::randn({2, 9, 3}, torch::kFloat64);
  const std::int64_t k = 2;
  const double tau = 0.3;
  double total = 0;
  int anchors = 0;
  for (int b = 0; b < 2; ++b) {
    for (int n = k; n < 9 - k; ++n) {
      auto cosine = [&](int i, int j) {
        const auto u = z[b][i], v = z[b][j];
        return (u.dot(v) / (u.norm() * v.norm())).item<double>() / tau;
      };
      double denom = 0;
      for (int m = 0; m < 9; ++m)
        if (m != n) denom += std::exp(cosine(n, m));
      double l = 0;
      for (int p = n - k; p <= n + k; ++p)
        if (p != n) l -= std::log(std::exp(cosine(n, p)) / denom);
      total += l / (2.0 * k);
      ++anchors;
    }
  }
  EXPECT_NEAR(sm::info_nce_time(z, k, tau).item<double>(), total / anchors, 1e-10);
  sl::testing::expect_error<sl::ConfigError>([&] { sm::info_nce_time(z, 5, tau); }, "longer than 2k");
}

TEST(Koopman, VonNeumannEntropyOfIsotropicAnisotropicAndCollapsedLatents) {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  // ±e_i for i = 1..4: centred, covariance ∝ I: S = log 4.
  const auto iso = torch::cat({torch::eye(4, opt), -torch::eye(4, opt)});
  EXPECT_NEAR(sm::von_neumann_entropy(iso).item<double>(), std::log(4.0), 1e-10);
  // Variances 1 and 3 on two axes: ρ = diag(1/4, 3/4).
  const auto aniso = torch::tensor({{1.0, 0.0}, {-1.0, 0.0}, {0.0, std::sqrt(3.0)}, {0.0, -std::sqrt(3.0)}}, opt);
  EXPECT_NEAR(sm::von_neumann_entropy(aniso).item<double>(), -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), 1e-10);
  // On one line: S = 0 (up to the 1e-12 floor of the zero eigenvalues).
  const auto line = torch::linspace(-1, 1, 7, opt).unsqueeze(1) * torch::tensor({{1.0, 2.0, -1.0}}, opt);
  EXPECT_NEAR(sm::von_neumann_entropy(line).item<double>(), 0.0, 1e-9);
}

TEST(Koopman, DynamicalSystemsMatchHandValuesAndClosedForms) {
  const auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const auto f = sm::lorenz63(torch::tensor({{1.0, 2.0, 3.0}}, opt));
  EXPECT_TRUE(torch::allclose(f, torch::tensor({{10.0, 1.0 * 25 - 2, 2.0 - 8.0}}, opt)));
  const auto g = sm::damped_pendulum(torch::tensor({{0.5, -1.0}}, opt), 0.2, 2.0);
  EXPECT_NEAR(g[0][0].item<double>(), -1.0, 1e-15);
  EXPECT_NEAR(g[0][1].item<double>(), -2.0 * std::sin(0.5) + 0.2, 1e-15);
  // The harmonic oscillator ẍ = −x (the pendulum's linear part): x(t) = cos t, ẋ = −sin t; RK4 with
  // dt = 0.1 over 50 samples is accurate to O(dt⁴).
  const auto harmonic = [](const torch::Tensor& s) { return torch::stack({s.select(-1, 1), -s.select(-1, 0)}, -1); };
  const auto y = sm::simulate(harmonic, torch::tensor({{1.0, 0.0}}, opt), 0.1, 50, 2);
  ASSERT_EQ(y.sizes(), (std::vector<std::int64_t>{1, 51, 2}));
  for (int n = 0; n <= 50; n += 10) {
    EXPECT_NEAR(y[0][n][0].item<double>(), std::cos(0.1 * n), 1e-6) << n;
    EXPECT_NEAR(y[0][n][1].item<double>(), -std::sin(0.1 * n), 1e-6) << n;
  }
}

TEST(Koopman, TrainingPredictsThePendulumBetterThanPersistence) {
  at::set_num_threads(sl::testing::test_threads());
  torch::manual_seed(3);
  const auto x0 = torch::stack({torch::rand({48}, torch::kFloat64) * 4 - 2, torch::rand({48}, torch::kFloat64) * 2 - 1}, 1);
  const auto traj = sm::simulate([](const torch::Tensor& s) { return sm::damped_pendulum(s); }, x0, 0.1, 60).to(torch::kFloat32);
  const auto train = traj.slice(0, 0, 40), test = traj.slice(0, 40, 48);
  sm::KoopmanAutoencoder net(sm::KoopmanOptions().state(2).hidden({32, 32}).latent(8));
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(3e-3));
  const auto o = sm::KoopmanLossOptions().alpha(0.5).beta(0.05).k(2);
  auto gen = at::detail::createCPUGenerator(4);
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    const auto b = torch::randint(0, 40, {16}, gen, torch::kInt64), s = torch::randint(0, 60 - 10, {16}, gen, torch::kInt64);
    std::vector<torch::Tensor> w;
    for (int i = 0; i < 16; ++i) w.push_back(train[b[i].item<std::int64_t>()].slice(0, s[i].item<std::int64_t>(), s[i].item<std::int64_t>() + 11));
    const auto parts = sm::koopman_loss(*net, torch::stack(w), o);
    // The total is the documented combination of its parts.
    EXPECT_NEAR(parts.total.item<double>(),
                (parts.forward + 0.1 * parts.identity + 0.5 * parts.mi - 0.05 * parts.entropy).item<double>(), 1e-4);
    if (step == 0) first = parts.forward.item<double>();
    last = parts.forward.item<double>();
    opt.zero_grad();
    parts.total.backward();
    opt.step();
  }
  EXPECT_LT(last, 0.3 * first) << "the one-step prediction loss falls";
  torch::NoGradGuard ng;
  const auto c = sm::koopman_operator(net->encode(train.slice(1, 0, 60)), net->encode(train.slice(1, 1, 61)), 0.1);
  const auto pred = sm::koopman_rollout(*net, test.select(1, 0), c, 10);
  const double err = (pred.select(1, 10) - test.select(1, 10)).pow(2).mean().sqrt().item<double>();
  const double persistence = (test.select(1, 0) - test.select(1, 10)).pow(2).mean().sqrt().item<double>();
  EXPECT_LT(err, 0.5 * persistence) << "10-step error " << err << " vs persistence " << persistence;
}
