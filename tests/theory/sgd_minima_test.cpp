// GD vs SGD minima (theory/sgd_minima.h) against independent values:
// * the diagonal network's Hessian at a point worked out by hand (one sample, d = 2);
// * both models' Hessians against autograd's double backward of the same loss written in the test,
//   and their traces against central differences of the autograd gradient (Σ_k ∂g_k/∂θ_k);
// * the Jacobians against autograd per-sample gradients;
// * GD steps against hand-written steps with autograd gradients; SGD with B = n against GD; one SGD
//   step of batch 1 against the autograd step of one sample;
// * linear stability: started next to an interpolating minimum of the diagonal network with
//   η λ_max < 2 < η tr H, GD returns to it while SGD (B = 1) is driven away (Wu & Su's claim);
// * bad options and shapes.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/theory/sgd_minima.h"
#include "testing.h"

namespace sl = stablelearn;
namespace th = stablelearn::theory;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// The loss written directly, for autograd: theta = (u, v) or (a, vec W).
torch::Tensor diag_loss(const torch::Tensor& theta, const torch::Tensor& x, const torch::Tensor& y) {
  const auto d = x.size(1);
  const auto f = torch::mv(x, theta.narrow(0, 0, d) * theta.narrow(0, d, d));
  return 0.5 * (f - y).square().mean();
}
torch::Tensor relu_loss(const torch::Tensor& theta, const torch::Tensor& x, const torch::Tensor& y, std::int64_t m) {
  const auto d = x.size(1);
  const auto a = theta.narrow(0, 0, m), W = theta.narrow(0, m, m * d).reshape({m, d});
  const auto f = torch::mv(torch::relu(torch::mm(x, W.t())), a);
  return 0.5 * (f - y).square().mean();
}

torch::Tensor autograd_hessian(const std::function<torch::Tensor(const torch::Tensor&)>& loss, const torch::Tensor& at) {
  const auto theta = at.detach().clone().requires_grad_(true);
  const auto g = torch::autograd::grad({loss(theta)}, {theta}, {}, true, true)[0];
  std::vector<torch::Tensor> rows;
  for (std::int64_t k = 0; k < theta.numel(); ++k) rows.push_back(torch::autograd::grad({g[k]}, {theta}, {}, true)[0]);
  return torch::stack(rows);
}

torch::Tensor autograd_gradient(const std::function<torch::Tensor(const torch::Tensor&)>& loss, const torch::Tensor& at) {
  const auto theta = at.detach().clone().requires_grad_(true);
  return torch::autograd::grad({loss(theta)}, {theta})[0];
}

// Σ_k (g_k(θ + h e_k) − g_k(θ − h e_k)) / 2h.
double fd_trace(const std::function<torch::Tensor(const torch::Tensor&)>& loss, const torch::Tensor& at, double h = 1e-5) {
  double t = 0;
  for (std::int64_t k = 0; k < at.numel(); ++k) {
    auto p = at.clone(), q = at.clone();
    p[k] += h;
    q[k] -= h;
    t += (autograd_gradient(loss, p)[k].item<double>() - autograd_gradient(loss, q)[k].item<double>()) / (2 * h);
  }
  return t;
}

torch::Tensor flat(const th::DiagonalNetwork& n) { return torch::cat({n.u, n.v}); }
torch::Tensor flat(const th::TwoLayerRelu& n) { return torch::cat({n.a, n.W.reshape({-1})}); }

}  // namespace

TEST(SgdMinima, DiagonalHessianAtAPointByHand) {
  // d = 2, one sample x = (1, 2), y = 0.5, u = (1, −1), v = (2, 3): f = 2 − 6 = −4, r = −4.5,
  // ∇f = (v⊙x, u⊙x) = (2, 6, 1, −2); H = ∇f∇fᵀ + r [[0, diag x], [diag x, 0]].
  const th::DiagonalNetwork net{torch::tensor({1.0, -1.0}, kF64), torch::tensor({2.0, 3.0}, kF64)};
  const auto x = torch::tensor({{1.0, 2.0}}, kF64), y = torch::tensor({0.5}, kF64);
  const auto expected = torch::tensor({{4.0, 12.0, -2.5, -4.0}, {12.0, 36.0, 6.0, -21.0}, {-2.5, 6.0, 1.0, -2.0}, {-4.0, -21.0, -2.0, 4.0}}, kF64);
  EXPECT_TRUE(torch::allclose(th::loss_hessian(net, x, y), expected, 0, 1e-12)) << th::loss_hessian(net, x, y);
  EXPECT_TRUE(torch::allclose(th::network_outputs(net, x), torch::tensor({-4.0}, kF64)));
  const auto c = th::minimum_curvature(net, x, y);
  EXPECT_NEAR(c.trace, 45.0, 1e-12);  // Σ (u_k² + v_k²) x_k² = 5·1 + 10·4
  EXPECT_NEAR(c.gauss_newton_trace, 45.0, 1e-12);
  EXPECT_NEAR(c.loss, 0.5 * 4.5 * 4.5, 1e-12);
  EXPECT_NEAR(c.lambda_max, torch::linalg_eigvalsh(expected).max().item<double>(), 1e-10);
}

TEST(SgdMinima, DiagonalHessianAndTraceMatchAutogradAndFiniteDifferences) {
  auto gen = at::detail::createCPUGenerator(3);
  const std::int64_t d = 6, n = 5;
  const auto x = torch::randn({n, d}, gen, kF64), y = torch::randn({n}, gen, kF64);
  const th::DiagonalNetwork net{torch::randn({d}, gen, kF64), torch::randn({d}, gen, kF64)};
  auto loss = [&](const torch::Tensor& t) { return diag_loss(t, x, y); };
  const auto h = th::loss_hessian(net, x, y);
  EXPECT_TRUE(torch::allclose(h, autograd_hessian(loss, flat(net)), 1e-10, 1e-10));
  const double fd = fd_trace(loss, flat(net));
  EXPECT_NEAR(th::minimum_curvature(net, x, y).trace, fd, 1e-6 * std::abs(fd));
  // tr H = Σ_k (u_k² + v_k²) m_k
  const double closed = ((net.u.square() + net.v.square()) * x.square().mean(0)).sum().item<double>();
  EXPECT_NEAR(th::minimum_curvature(net, x, y).trace, closed, 1e-10 * closed);
  // Jacobian rows = per-sample autograd gradients of f
  const auto j = th::network_jacobian(net, x);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto g = autograd_gradient([&](const torch::Tensor& t) { return torch::dot(x[i], t.narrow(0, 0, d) * t.narrow(0, d, d)); }, flat(net));
    EXPECT_TRUE(torch::allclose(j[i], g, 1e-12, 1e-12)) << i;
  }
}

TEST(SgdMinima, ReluHessianAndTraceMatchAutogradAndFiniteDifferences) {
  auto gen = at::detail::createCPUGenerator(5);
  const std::int64_t d = 3, m = 4, n = 7;
  const auto x = torch::randn({n, d}, gen, kF64), y = torch::randn({n}, gen, kF64);
  const th::TwoLayerRelu net{torch::randn({m}, gen, kF64), torch::randn({m, d}, gen, kF64)};
  auto loss = [&](const torch::Tensor& t) { return relu_loss(t, x, y, m); };
  const auto h = th::loss_hessian(net, x, y);
  ASSERT_EQ(h.size(0), m + m * d);
  EXPECT_TRUE(torch::allclose(h, autograd_hessian(loss, flat(net)), 1e-10, 1e-10));
  const auto c = th::minimum_curvature(net, x, y);
  const double fd = fd_trace(loss, flat(net), 1e-6);
  EXPECT_NEAR(c.trace, fd, 1e-5 * std::abs(fd));
  EXPECT_NEAR(c.trace, c.gauss_newton_trace, 1e-10 * c.trace);  // the residual part has zero diagonal
  EXPECT_NEAR(c.lambda_max, torch::linalg_eigvalsh(autograd_hessian(loss, flat(net))).max().item<double>(), 1e-9);
  const auto j = th::network_jacobian(net, x);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto g = autograd_gradient(
        [&](const torch::Tensor& t) {
          return torch::dot(t.narrow(0, 0, m), torch::relu(torch::mv(t.narrow(0, m, m * d).reshape({m, d}), x[i])));
        },
        flat(net));
    EXPECT_TRUE(torch::allclose(j[i], g, 1e-12, 1e-12)) << i;
  }
}

TEST(SgdMinima, GdStepsMatchHandWrittenAutogradStepsAndFullBatchSgdIsGd) {
  auto gen = at::detail::createCPUGenerator(7);
  const std::int64_t d = 4, m = 3, n = 6;
  const auto x = torch::randn({n, d}, gen, kF64), y = torch::randn({n}, gen, kF64);
  const double lr = 0.05;
  {
    th::DiagonalNetwork net{torch::randn({d}, gen, kF64), torch::randn({d}, gen, kF64)};
    auto theta = flat(net);
    th::DescentOptions o;
    o.lr = lr;
    o.batch_size = 0;
    o.max_steps = 3;
    o.loss_tol = 0;
    th::DiagonalNetwork sgd{net.u.clone(), net.v.clone()};
    const auto r = th::train_descent(net, x, y, o);
    EXPECT_EQ(r.steps, 3);
    for (int s = 0; s < 3; ++s) theta = theta - lr * autograd_gradient([&](const torch::Tensor& t) { return diag_loss(t, x, y); }, theta);
    EXPECT_TRUE(torch::allclose(flat(net), theta, 1e-12, 1e-12));
    EXPECT_NEAR(r.final_loss, diag_loss(theta, x, y).item<double>(), 1e-12);
    o.batch_size = n;
    th::train_descent(sgd, x, y, o);
    EXPECT_TRUE(torch::allclose(flat(sgd), theta, 1e-12, 1e-12));
  }
  {
    th::TwoLayerRelu net{torch::randn({m}, gen, kF64), torch::randn({m, d}, gen, kF64)};
    auto theta = flat(net);
    th::DescentOptions o;
    o.lr = lr;
    o.batch_size = 0;
    o.max_steps = 3;
    o.loss_tol = 0;
    th::train_descent(net, x, y, o);
    for (int s = 0; s < 3; ++s)
      theta = theta - lr * autograd_gradient([&](const torch::Tensor& t) { return relu_loss(t, x, y, m); }, theta);
    EXPECT_TRUE(torch::allclose(flat(net), theta, 1e-12, 1e-12));
  }
}

TEST(SgdMinima, OneSgdStepOfBatchOneIsTheGradientStepOfOneSample) {
  auto gen = at::detail::createCPUGenerator(9);
  const std::int64_t d = 4, m = 3, n = 6;
  const auto x = torch::randn({n, d}, gen, kF64), y = torch::randn({n}, gen, kF64);
  th::TwoLayerRelu net{torch::randn({m}, gen, kF64), torch::randn({m, d}, gen, kF64)};
  const auto theta = flat(net);
  th::DescentOptions o;
  o.lr = 0.1;
  o.batch_size = 1;
  o.max_steps = 1;
  o.loss_tol = 0;
  th::train_descent(net, x, y, o);
  int matches = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto xi = x.narrow(0, i, 1), yi = y.narrow(0, i, 1);
    const auto step = theta - 0.1 * autograd_gradient([&](const torch::Tensor& t) { return relu_loss(t, xi, yi, m); }, theta);
    if (torch::allclose(flat(net), step, 1e-12, 1e-12)) ++matches;
  }
  EXPECT_GE(matches, 1);
  EXPECT_FALSE(torch::allclose(flat(net), theta));
}

TEST(SgdMinima, NearAMinimumWithSmallSharpnessButLargeTraceGdStaysAndSgdLeaves) {
  // An interpolating minimum of the diagonal network: β* = u ⊙ v with u = v = 1 on all d = 40
  // coordinates, n = 10 samples, y = Xβ*. There H = (1/n) JᵀJ with J_i = (x_i, x_i): tr H = 2 Σ_k m_k ≈ 2d
  // while λ_max = λ_max((2/n) XXᵀ) ≈ 2 (√d + √n)² / n, a fraction of it. η = 1.5 / λ_max gives
  // η λ_max / 2 = 0.75 (GD stable) and η tr H / 2 > 1.5 (SGD unstable; asserted).
  auto gen = at::detail::createCPUGenerator(11);
  const std::int64_t d = 40, n = 10;
  const auto x = torch::randn({n, d}, gen, kF64);
  const th::DiagonalNetwork star{torch::ones({d}, kF64), torch::ones({d}, kF64)};
  const auto y = th::network_outputs(star, x);
  const auto c = th::minimum_curvature(star, x, y);
  ASSERT_LT(c.loss, 1e-28);
  const double lr = 1.5 / c.lambda_max;
  ASSERT_GT(lr * c.trace / 2, 1.5);
  const auto noise = 1e-3 * torch::randn({2 * d}, gen, kF64);
  auto start = [&] { return th::DiagonalNetwork{star.u + noise.narrow(0, 0, d), star.v + noise.narrow(0, d, d)}; };
  th::DescentOptions o;
  o.lr = lr;
  o.max_steps = 2000;
  o.loss_tol = 0;
  o.eval_every = 100;
  auto gd = start();
  o.batch_size = 0;
  const auto rg = th::train_descent(gd, x, y, o);
  EXPECT_LT(rg.final_loss, rg.initial_loss * 1e-6);
  EXPECT_LT((flat(gd) - flat(star)).norm().item<double>(), 1e-2);
  auto sgd = start();
  o.batch_size = 1;
  o.max_steps = 200;
  o.eval_every = 1;
  o.divergence = 1e3;
  const auto rs = th::train_descent(sgd, x, y, o);
  EXPECT_GT((flat(sgd) - flat(star)).norm().item<double>(), 0.1) << rs.final_loss;
}

TEST(SgdMinima, BadOptionsAndShapesAreRejected) {
  const th::DiagonalNetwork net0{torch::ones({3}, kF64), torch::zeros({3}, kF64)};
  const auto x = torch::ones({4, 3}, kF64), y = torch::ones({4}, kF64);
  auto train = [&](th::DescentOptions o) {
    th::DiagonalNetwork net{net0.u.clone(), net0.v.clone()};
    th::train_descent(net, x, y, o);
  };
  th::DescentOptions o;
  o.lr = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { train(o); }, "lr");
  o = {};
  o.batch_size = 5;
  sl::testing::expect_error<sl::ConfigError>([&] { train(o); }, "batch_size");
  o = {};
  o.max_steps = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { train(o); }, "max_steps");
  o = {};
  o.loss_tol = -1;
  sl::testing::expect_error<sl::ConfigError>([&] { train(o); }, "loss_tol");
  sl::testing::expect_error<sl::ShapeError>([&] { th::network_outputs(net0, torch::ones({4, 2}, kF64)); }, "inputs");
  sl::testing::expect_error<sl::ShapeError>([&] { th::loss_hessian(net0, x, torch::ones({3}, kF64)); }, "targets");
  sl::testing::expect_error<sl::ShapeError>([&] { th::network_outputs(th::TwoLayerRelu{torch::ones({2}, kF64), torch::ones({3, 3}, kF64)}, x); },
                                            "a must be");
}
