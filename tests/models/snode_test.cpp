// sNODE (spec §2.3): ReHU, the ICNN Lyapunov function, the analytic ∇V, the projection and its
// decrease condition, gradient checks of the training path.
#include <cmath>
#include <functional>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/testing/gradcheck.h"

namespace {

namespace M = stablelearn::models;

/// A U(−b, b) bound as float32 draws can reach it: b rounded to float.
double fbound(double b) { return static_cast<double>(static_cast<float>(b)); }
namespace F = stablelearn::models::functional;
using M::LyapunovGradMode;
using stablelearn::testing::gradcheck;
using stablelearn::testing::gradgradcheck;

torch::Tensor d(std::vector<double> v, std::vector<std::int64_t> shape) {
  return torch::tensor(v, torch::kFloat64).reshape(shape);
}

double rehu_ref(double s, double delta) {
  if (s <= 0) return 0.0;
  if (s < delta) return s * s / (2 * delta);
  return s - delta / 2;
}

// Random float64 weights for a layout: N(0, scale²) (a harsher test than the U(±1/√fan_in) init).
torch::Tensor random_flat(const M::WeightLayout& l, double scale) {
  return torch::randn({l.numel()}, torch::kFloat64) * scale;
}

TEST(ReHU, ValuesAndDerivativesAtHandPickedPoints) {
  const double r = 0.01;
  auto s = d({-1.0, -1e-3, 0.0, 0.002, 0.005, 0.01, 0.02, 1.0}, {8});
  // 0; 0; 0; s²/(2r) = 2e-4; 1.25e-3; r/2 = 5e-3; s − r/2 = 0.015; 0.995.
  auto expected = d({0, 0, 0, 2e-4, 1.25e-3, 5e-3, 0.015, 0.995}, {8});
  EXPECT_TRUE(torch::allclose(F::rehu(s, r), expected, 0, 1e-15)) << F::rehu(s, r);
  auto dexp = d({0, 0, 0, 0.2, 0.5, 1.0, 1.0, 1.0}, {8});
  EXPECT_TRUE(torch::allclose(F::rehu_derivative(s, r), dexp, 0, 1e-15));
  // ReHU_1 (the outer one of MakePSD): 0.5 -> 0.125, 3 -> 2.5.
  EXPECT_DOUBLE_EQ(F::rehu(d({0.5}, {1}), 1.0).item<double>(), 0.125);
  EXPECT_DOUBLE_EQ(F::rehu(d({3.0}, {1}), 1.0).item<double>(), 2.5);
  // Autograd through the reference formula gives the same derivative (away from the kinks)...
  auto x = d({-0.5, 0.003, 0.007, 0.5}, {4}).requires_grad_(true);
  auto g = torch::autograd::grad({F::rehu(x, r).sum()}, {x}, {}, true, true)[0];
  EXPECT_TRUE(torch::allclose(g, d({0, 0.3, 0.7, 1.0}, {4}), 0, 1e-14)) << g;
  // ... and the second derivative 1/r on (0, r), 0 elsewhere.
  auto h = torch::autograd::grad({g.sum()}, {x})[0];
  EXPECT_TRUE(torch::allclose(h, d({0, 100, 100, 0}, {4}), 0, 1e-10)) << h;
  auto h2 = torch::autograd::grad(
      {F::rehu_derivative(x, r).sum()}, {x})[0];
  EXPECT_TRUE(torch::allclose(h2, d({0, 100, 100, 0}, {4}), 0, 1e-10)) << h2;
}

TEST(ReHU, SoftplusLinearRegion) {
  // PyTorch softplus (β = 1, threshold 20): exactly x above 20, ln(1 + eˣ) below.
  auto u = d({-30.0, 0.0, 5.0, 20.5, 25.0}, {5});
  auto sp = torch::softplus(u);
  EXPECT_EQ(sp[3].item<double>(), 20.5);
  EXPECT_EQ(sp[4].item<double>(), 25.0);
  EXPECT_NEAR(sp[1].item<double>(), std::log(2.0), 1e-15);
  EXPECT_NEAR(sp[2].item<double>(), std::log1p(std::exp(5.0)), 1e-14);
  EXPECT_NEAR(sp[0].item<double>(), std::exp(-30.0), 1e-25);
}

TEST(SNodeLayout, SpecOrderNamesAndCounts) {
  auto opt = M::SNodeOptions(2);  // h = hp = 100, L = 3
  auto l = M::snode_layout(opt);
  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected{
      {"fhat.layer_0.weight", {100, 3}}, {"fhat.layer_0.bias", {100}},
      {"fhat.layer_1.weight", {100, 100}}, {"fhat.layer_1.bias", {100}},
      {"fhat.layer_2.weight", {100, 100}}, {"fhat.layer_2.bias", {100}},
      {"fhat.layer_out.weight", {2, 100}}, {"fhat.layer_out.bias", {2}},
      {"V.f.W.0", {100, 3}}, {"V.f.W.1", {100, 3}}, {"V.f.W.2", {1, 3}},
      {"V.f.U.0", {100, 100}}, {"V.f.U.1", {1, 100}},
      {"V.f.bias.0", {100}}, {"V.f.bias.1", {100}}, {"V.f.bias.2", {1}}};
  ASSERT_EQ(l.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(l[i].name, expected[i].first);
    EXPECT_EQ(l[i].shape, expected[i].second) << l[i].name;
  }
  EXPECT_EQ(l.numel(), 31706);  // spec §2.6
  EXPECT_EQ(M::snode_layout(M::SNodeOptions(2).hidden(1000)).numel(), 2018906);
  EXPECT_THROW(M::snode_layout(M::SNodeOptions(2).fhat_layers(0)), stablelearn::ConfigError);
  EXPECT_THROW(M::snode_layout(M::SNodeOptions(2).rehu(0)), stablelearn::ConfigError);
}

// A tiny sNODE (d = 1, n = 2, h = 2, L = 1, hp = 2) computed by hand with scalar arithmetic:
// a piecewise ReHU, softplus = log1p(exp), the /hp and /1 divisions, g(0) subtraction, the
// projection with a finite-difference ∇V of the hand-written V.
TEST(SNode, MatchesAHandComputation) {
  const double r = 0.3, eps = 1e-4, alpha = 0.5;
  auto opt = M::SNodeOptions(1).hidden(2).fhat_layers(1).icnn_hidden(2).rehu(r);
  const double F0[2][2] = {{0.8, -0.3}, {0.4, 0.9}}, Fb0[2] = {0.1, -0.2};
  const double Fo[1][2] = {{1.5, -0.7}}, Fbo[1] = {0.05};
  const double W0[2][2] = {{1.0, 0.5}, {-0.5, 0.25}}, W1[2][2] = {{0.3, -0.4}, {0.2, 0.1}};
  const double W2[2] = {0.7, -0.3}, U0[2][2] = {{0.0, 1.0}, {-1.0, 2.0}}, U1[2] = {0.5, -0.5};
  const double b0[2] = {0.1, -0.2}, b1[2] = {0.05, 0.0}, b2 = 0.4;
  std::vector<torch::Tensor> w{
      d({F0[0][0], F0[0][1], F0[1][0], F0[1][1]}, {2, 2}), d({Fb0[0], Fb0[1]}, {2}),
      d({Fo[0][0], Fo[0][1]}, {1, 2}), d({Fbo[0]}, {1}),
      d({W0[0][0], W0[0][1], W0[1][0], W0[1][1]}, {2, 2}),
      d({W1[0][0], W1[0][1], W1[1][0], W1[1][1]}, {2, 2}), d({W2[0], W2[1]}, {1, 2}),
      d({U0[0][0], U0[0][1], U0[1][0], U0[1][1]}, {2, 2}), d({U1[0], U1[1]}, {1, 2}),
      d({b0[0], b0[1]}, {2}), d({b1[0], b1[1]}, {2}), d({b2}, {1})};
  auto sp = [](double u) { return std::log1p(std::exp(u)); };
  auto g = [&](double z0, double z1) {
    double a1[2], z1v[2], a2[2], z2v[2];
    for (int j = 0; j < 2; ++j) {
      a1[j] = W0[j][0] * z0 + W0[j][1] * z1 + b0[j];
      z1v[j] = rehu_ref(a1[j], r);
    }
    for (int j = 0; j < 2; ++j) {
      a2[j] = W1[j][0] * z0 + W1[j][1] * z1 + b1[j] + (sp(U0[j][0]) * z1v[0] + sp(U0[j][1]) * z1v[1]) / 2.0;
      z2v[j] = rehu_ref(a2[j], r);
    }
    return W2[0] * z0 + W2[1] * z1 + b2 + (sp(U1[0]) * z2v[0] + sp(U1[1]) * z2v[1]) / 1.0;
  };
  auto V = [&](double z0, double z1) {
    return rehu_ref(g(z0, z1) - g(0, 0), 1.0) + eps * (z0 * z0 + z1 * z1);
  };
  auto fhat = [&](double z0, double z1) {
    double h[2];
    for (int j = 0; j < 2; ++j) h[j] = std::max(0.0, F0[j][0] * z0 + F0[j][1] * z1 + Fb0[j]);
    return Fo[0][0] * h[0] + Fo[0][1] * h[1] + Fbo[0];
  };
  // States (x, t) chosen to hit the ReHU_1 regimes (below 0, quadratic, linear).
  const std::vector<std::pair<double, double>> states{{0.3, 0.2}, {1.2, 0.5}, {-2.0, 1.0},
                                                      {2.5, 3.0}, {-0.4, 0.05}, {0.05, 2.0}};
  int quad = 0, lin = 0;
  for (auto [x, t] : states) {
    const double s = g(x, t) - g(0, 0);
    quad += (s > 0 && s < 1);
    lin += (s >= 1);
    const double h = 1e-6;
    const double gv0 = (V(x + h, t) - V(x - h, t)) / (2 * h), gv1 = (V(x, t + h) - V(x, t - h)) / (2 * h);
    const double fa0 = fhat(x, t), fa1 = 1.0;
    const double viol = std::max(0.0, gv0 * fa0 + gv1 * fa1 + alpha * V(x, t));
    const double expect_x = fa0 - gv0 * viol / (gv0 * gv0 + gv1 * gv1);

    auto z = d({x, t}, {1, 2});
    EXPECT_NEAR(F::snode_icnn(z, w, opt).item<double>(), g(x, t), 1e-14);
    EXPECT_NEAR(F::snode_lyapunov(z, w, opt).item<double>(), V(x, t), 1e-14);
    auto e = F::snode_eval(z, w, opt);
    EXPECT_NEAR(e.grad_V[0][0].item<double>(), gv0, 1e-8);
    EXPECT_NEAR(e.grad_V[0][1].item<double>(), gv1, 1e-8);
    EXPECT_NEAR(e.fhat_aug[0][0].item<double>(), fa0, 1e-14);
    EXPECT_EQ(e.fhat_aug[0][1].item<double>(), 1.0);
    auto out = F::snode_rhs(torch::scalar_tensor(t, torch::kFloat64), d({x}, {1, 1}), w, opt);
    EXPECT_NEAR(out.item<double>(), expect_x, 1e-7) << "x = " << x << ", t = " << t;
  }
  EXPECT_GE(quad, 1);
  EXPECT_GE(lin, 1);
}

struct Coverage {
  std::int64_t a_quadratic = 0, a_linear = 0, a_zero = 0, s_quadratic = 0, s_linear = 0, s_zero = 0;
};

// How many ICNN pre-activations / shifted outputs fall in each ReHU regime (so that the
// comparisons below provably exercise the second-order terms).
Coverage coverage(const torch::Tensor& z, const std::vector<torch::Tensor>& w, const M::SNodeOptions& o) {
  const auto L = o.fhat_layers();
  const auto& W0 = w[2 * L + 2];
  const auto& b0 = w[2 * L + 7];
  auto a1 = torch::linear(z, W0, b0);
  auto s = F::snode_icnn(z, w, o) - F::snode_icnn(torch::zeros({1, z.size(1)}, z.options()), w, o);
  Coverage c;
  const double r = o.rehu();
  c.a_quadratic = ((a1 > 0) & (a1 < r)).sum().item<std::int64_t>();
  c.a_linear = (a1 >= r).sum().item<std::int64_t>();
  c.a_zero = (a1 <= 0).sum().item<std::int64_t>();
  c.s_quadratic = ((s > 0) & (s < 1)).sum().item<std::int64_t>();
  c.s_linear = (s >= 1).sum().item<std::int64_t>();
  c.s_zero = (s <= 0).sum().item<std::int64_t>();
  return c;
}

TEST(SNode, AnalyticGradVMatchesFiniteDifferencesAndAutograd) {
  auto opt = M::SNodeOptions(2).hidden(8).fhat_layers(2).icnn_hidden(16);  // spec r, ε, δ
  auto layout = M::snode_layout(opt);
  auto w = layout.split(random_flat(layout, 0.5));
  // Mostly wide states, 30 % very near the origin (where g(z) − g(0) ≤ 0 happens).
  auto z = torch::randn({1000, 3}, torch::kFloat64) * 1.5;
  z.slice(0, 0, 300).mul_(0.002);
  auto cov = coverage(z, w, opt);
  // Every regime is represented (typical counts are several times these minima).
  EXPECT_GE(cov.a_quadratic, 5);
  EXPECT_GE(cov.a_linear, 1000);
  EXPECT_GE(cov.s_quadratic, 5);
  EXPECT_GE(cov.s_linear, 5);
  EXPECT_GE(cov.s_zero, 5);

  auto grad_a = F::snode_lyapunov_grad(z, w, opt, LyapunovGradMode::Analytic);
  auto grad_r = F::snode_lyapunov_grad(z, w, opt, LyapunovGradMode::Autograd);
  EXPECT_TRUE(torch::allclose(grad_a, grad_r, 1e-12, 1e-13)) << (grad_a - grad_r).abs().max();
  {
    // Evaluation code runs under NoGradGuard: the autograd path still works (detached result).
    torch::NoGradGuard no_grad;
    auto grad_ng = F::snode_lyapunov_grad(z, w, opt, LyapunovGradMode::Autograd);
    EXPECT_FALSE(grad_ng.requires_grad());
    EXPECT_TRUE(torch::allclose(grad_ng, grad_a, 1e-12, 1e-13));
  }
  // Central differences of V (C¹ everywhere), per component, all rows at once. V'' jumps by up
  // to ~1/r = 100 at the ReHU kinks, so a difference straddling a kink errs by O(100 h): a small
  // h keeps that below the tolerance (rounding error ~1e-16·|V|/h stays ~1e-8).
  const double h = 1e-7;
  for (int k = 0; k < 3; ++k) {
    auto e = torch::zeros({1, 3}, torch::kFloat64);
    e[0][k] = h;
    auto fd = (F::snode_lyapunov(z + e, w, opt) - F::snode_lyapunov(z - e, w, opt)) / (2 * h);
    auto err = (fd - grad_a.select(1, k)).abs();
    EXPECT_LT(err.max().item<double>(), 1e-6 + 1e-6 * grad_a.abs().max().item<double>())
        << "component " << k;
  }
}

TEST(SNode, AnalyticGradVHasTheReferenceSecondOrderTerms) {
  // d/dweights and d/dz of a random functional of ∇V: first-order autograd through the analytic
  // formula vs double backward through autograd::grad(create_graph = true).
  auto opt = M::SNodeOptions(2).hidden(8).fhat_layers(2).icnn_hidden(16);
  auto layout = M::snode_layout(opt);
  auto flat = random_flat(layout, 0.5).requires_grad_(true);
  auto z = (torch::randn({1000, 3}, torch::kFloat64) * 1.5).requires_grad_(true);
  auto R = torch::randn({1000, 3}, torch::kFloat64);
  auto cov = coverage(z.detach(), layout.split(flat.detach()), opt);
  ASSERT_GE(cov.a_quadratic, 10);
  auto grads = [&](LyapunovGradMode mode) {
    auto gv = F::snode_lyapunov_grad(z, layout.split(flat), opt, mode);
    return torch::autograd::grad({(gv * R).sum()}, {flat, z});
  };
  auto ga = grads(LyapunovGradMode::Analytic);
  auto gr = grads(LyapunovGradMode::Autograd);
  EXPECT_TRUE(torch::allclose(ga[0], gr[0], 1e-10, 1e-10)) << (ga[0] - gr[0]).abs().max();
  EXPECT_TRUE(torch::allclose(ga[1], gr[1], 1e-10, 1e-10)) << (ga[1] - gr[1]).abs().max();
}

TEST(SNode, LyapunovIsZeroAtTheOriginAndNonNegative) {
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto opt = M::SNodeOptions(3).hidden(16).icnn_hidden(32);
    auto layout = M::snode_layout(opt);
    for (int rep = 0; rep < 3; ++rep) {
      auto w = layout.split(random_flat(layout, 1.0).to(dtype));
      auto V0 = F::snode_lyapunov(torch::zeros({1, 4}, dtype), w, opt);
      EXPECT_EQ(V0.item<double>(), 0.0);
      auto V = F::snode_lyapunov(torch::randn({500, 4}, dtype) * 3, w, opt);
      EXPECT_GE(V.min().item<double>(), 0.0);
      EXPECT_GT(V.max().item<double>(), 0.0);
    }
  }
}

// ∇Vᵀ f + αV ≤ 0 after the projection, in the augmented space (clock component included).
void expect_decrease(const M::SNodeOptions& opt, torch::ScalarType dtype, double weight_scale,
                     double tol) {
  auto layout = M::snode_layout(opt);
  const auto n = opt.input_dim();
  std::int64_t active = 0, inactive = 0;
  for (int rep = 0; rep < 4; ++rep) {
    std::vector<torch::Tensor> w;
    if (weight_scale > 0) {
      w = layout.split(random_flat(layout, weight_scale).to(dtype));
    } else {  // the module's own initialisation (spec U(±1/√fan_in))
      M::SNode net(opt);
      net->to(dtype);
      w = net->weights();
    }
    auto z = torch::randn({400, n}, dtype) * 2.0;
    torch::NoGradGuard no_grad;
    auto e = F::snode_eval(z, w, opt);
    auto lhs = (e.grad_V * e.f).sum(1) + opt.alpha() * e.V;
    auto scale = (e.grad_V.abs() * e.fhat_aug.abs()).sum(1) + opt.alpha() * e.V + 1.0;
    EXPECT_LE((lhs / scale).max().item<double>(), tol);
    auto before = (e.grad_V * e.fhat_aug).sum(1) + opt.alpha() * e.V;
    auto on = before > 0;
    active += on.sum().item<std::int64_t>();
    inactive += (~on).sum().item<std::int64_t>();
    // Where the projection is active the condition holds with equality; elsewhere f = f̂_aug.
    if (on.any().item<bool>()) {
      EXPECT_LE((lhs.index({on}) / scale.index({on})).abs().max().item<double>(), tol);
    }
    if ((~on).any().item<bool>()) {
      EXPECT_TRUE(torch::equal(e.f.index({~on}), e.fhat_aug.index({~on})));
    }
    // Without explicit time there is no clock component.
    EXPECT_EQ(e.f.size(1), n);
  }
  EXPECT_GT(active, 0);
  EXPECT_GT(inactive, 0);
}

TEST(SNode, ProjectionSatisfiesTheDecreaseCondition) {
  auto spec = M::SNodeOptions(2).hidden(32).icnn_hidden(32);
  expect_decrease(spec, torch::kFloat64, 1.0, 1e-12);
  expect_decrease(spec, torch::kFloat64, 0.0, 1e-12);
  expect_decrease(spec, torch::kFloat32, 1.0, 1e-5);
  expect_decrease(M::SNodeOptions(4).hidden(16).icnn_hidden(16).explicit_time(false),
                  torch::kFloat64, 1.0, 1e-12);
  expect_decrease(M::SNodeOptions(2).hidden(16).icnn_hidden(16).alpha(3.0), torch::kFloat64, 0.7, 1e-12);
}

TEST(SNode, RhsKeepsTheFirstDComponents) {
  auto opt = M::SNodeOptions(3).hidden(8).icnn_hidden(8);
  auto layout = M::snode_layout(opt);
  auto w = layout.split(random_flat(layout, 0.7));
  auto x = torch::randn({5, 3}, torch::kFloat64);
  auto t = torch::scalar_tensor(0.75, torch::kFloat64);
  auto z = torch::cat({x, torch::full({5, 1}, 0.75, torch::kFloat64)}, 1);
  auto f = F::snode_field(z, w, opt);
  EXPECT_TRUE(torch::equal(F::snode_rhs(t, x, w, opt), f.narrow(1, 0, 3)));
  EXPECT_THROW(F::snode_rhs(t, torch::zeros({5, 4}, torch::kFloat64), w, opt), stablelearn::ShapeError);
  auto bad = w;
  bad[3] = torch::zeros({7}, torch::kFloat64);
  EXPECT_THROW(F::snode_rhs(t, x, bad, opt), stablelearn::ShapeError);
}

// gradcheck of ẋ w.r.t. the state and every weight, for both ∇V modes.
TEST(SNode, GradcheckOfTheOutputWrtWeightsAndInputs) {
  for (double r : {0.01, 0.5}) {
    for (auto mode : {LyapunovGradMode::Analytic, LyapunovGradMode::Autograd}) {
      auto opt = M::SNodeOptions(2).hidden(4).fhat_layers(2).icnn_hidden(3).rehu(r).grad_mode(mode);
      auto layout = M::snode_layout(opt);
      auto flat = random_flat(layout, 0.8).requires_grad_(true);
      auto x = (torch::randn({4, 2}, torch::kFloat64) * 1.5).requires_grad_(true);
      auto fn = [&](const std::vector<torch::Tensor>& in) {
        return F::snode_rhs(torch::scalar_tensor(0.3, torch::kFloat64), in[0], layout.split(in[1]), opt);
      };
      auto res = gradcheck(fn, {x, flat});
      EXPECT_TRUE(res.ok) << "r = " << r << ", mode " << static_cast<int>(mode) << ": " << res;
    }
  }
}

// Double backward: of V (what the reference's create_graph path differentiates) and of the whole
// analytic right-hand side (what Hessian-vector products of the training loss need).
TEST(SNode, GradgradcheckOfTheDoubleBackwardPath) {
  auto opt = M::SNodeOptions(2).hidden(4).fhat_layers(2).icnn_hidden(3).rehu(0.5);
  auto layout = M::snode_layout(opt);
  auto flat = random_flat(layout, 0.8).requires_grad_(true);
  auto z = (torch::randn({4, 3}, torch::kFloat64) * 1.5).requires_grad_(true);
  auto V = [&](const std::vector<torch::Tensor>& in) {
    return F::snode_lyapunov(in[0], layout.split(in[1]), opt);
  };
  auto rv = gradgradcheck(V, {z, flat});
  EXPECT_TRUE(rv.ok) << rv;
  auto x = (torch::randn({3, 2}, torch::kFloat64) * 1.5).requires_grad_(true);
  auto rhs = [&](const std::vector<torch::Tensor>& in) {
    return F::snode_rhs(torch::scalar_tensor(0.3, torch::kFloat64), in[0], layout.split(in[1]), opt);
  };
  auto rr = gradgradcheck(rhs, {x, flat});
  EXPECT_TRUE(rr.ok) << rr;
}

TEST(SNode, ModuleFaceInitialisesPerFanInAndClones) {
  auto opt = M::SNodeOptions(2).hidden(64).icnn_hidden(50);
  M::SNode net(opt);
  const auto& l = net->layout();
  EXPECT_EQ(l, M::snode_layout(opt));
  EXPECT_EQ(net->parameters().size(), l.size());
  EXPECT_TRUE(net->named_parameters().contains("V_f_U_0"));
  // Bounds: f̂ layers 1/√(input width); W_i, bias_i: 1/√n (n = 3); U_0, U_1: 1/√hp.
  auto bound = [&](const std::string& name) {
    return net->weights()[l.index_of(name)].abs().max().item<double>();
  };
  EXPECT_LE(bound("fhat.layer_0.weight"), fbound(1 / std::sqrt(3.0)));
  EXPECT_LE(bound("fhat.layer_1.weight"), fbound(1 / std::sqrt(64.0)));
  EXPECT_GT(bound("fhat.layer_1.weight"), 0.95 / std::sqrt(64.0));
  EXPECT_LE(bound("fhat.layer_out.bias"), fbound(1 / std::sqrt(64.0)));
  EXPECT_LE(bound("V.f.U.0"), fbound(1 / std::sqrt(50.0)));
  EXPECT_GT(bound("V.f.U.0"), 0.95 / std::sqrt(50.0));
  EXPECT_LE(bound("V.f.bias.1"), fbound(1 / std::sqrt(3.0)));
  EXPECT_GT(bound("V.f.bias.1"), 0.5 / std::sqrt(3.0));
  auto copy = std::dynamic_pointer_cast<M::SNodeImpl>(net->clone());
  ASSERT_TRUE(copy);
  auto x = torch::randn({6, 2});
  auto t = torch::scalar_tensor(1.5);
  EXPECT_TRUE(torch::equal(copy->forward(t, x), net->forward(t, x)));
  // Training through the module: gradients reach every weight.
  auto loss = net->forward(t, x).pow(2).sum();
  loss.backward();
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.grad().defined());
}

}  // namespace

namespace {

TEST(SNodeConditioned, EmbeddingFeedsFhatOnlyAndTheGuaranteeHoldsForEveryEmbedding) {
  // condition_dim c: f̂ sees [cond, z] (layer_0 is [h, c + n]); V, ∇V and the projection stay in
  // z-space, so V does not depend on cond and ∇Vᵀf ≤ −αV holds for every cond (spec §8.2 fixed).
  const std::int64_t c = 5;
  auto opt = M::SNodeOptions(2).hidden(16).icnn_hidden(16).explicit_time(false).condition_dim(c);
  auto plain = M::SNodeOptions(2).hidden(16).icnn_hidden(16).explicit_time(false);
  const auto layout = M::snode_layout(opt);
  EXPECT_EQ(layout[0].shape, (std::vector<std::int64_t>{16, c + 2}));
  EXPECT_EQ(layout.numel(), M::snode_layout(plain).numel() + 16 * c);
  EXPECT_EQ(M::snode_fan_in(opt)[0], c + 2);
  auto w = layout.split(random_flat(layout, 0.8));
  const auto z = torch::randn({64, 2}, torch::kFloat64) * 2;
  const auto e1 = torch::randn({c}, torch::kFloat64), e2 = torch::randn({c}, torch::kFloat64);
  const auto a = F::snode_eval(z, w, opt, e1), b = F::snode_eval(z, w, opt, e2);
  EXPECT_TRUE(torch::equal(a.V, b.V));
  EXPECT_TRUE(torch::equal(a.grad_V, b.grad_V));
  EXPECT_FALSE(torch::allclose(a.fhat_aug, b.fhat_aug));
  for (const auto* e : {&a, &b}) {
    const auto lhs = (e->grad_V * e->f).sum(1) + opt.alpha() * e->V;
    EXPECT_LE(lhs.max().item<double>(), 1e-12);
  }
  // f̂([cond, z]) equals the plain MLP on the concatenated input.
  const auto zc = torch::cat({e1.unsqueeze(0).expand({64, c}), z}, 1);
  torch::Tensor h = zc;
  for (int k = 0; k < 3; ++k) h = torch::relu(torch::linear(h, w[2 * k], w[2 * k + 1]));
  EXPECT_TRUE(torch::allclose(a.fhat_aug, torch::linear(h, w[6], w[7]), 1e-12, 1e-12));
  // The output is the state part of the projected field (d = n here: no clock).
  EXPECT_TRUE(torch::equal(F::snode_rhs(torch::scalar_tensor(0.0, torch::kFloat64), z, w, opt, e1), a.f));
  EXPECT_THROW(F::snode_eval(z, w, opt), stablelearn::ShapeError);        // cond required
  EXPECT_THROW(F::snode_eval(z, w, plain, e1), stablelearn::ShapeError);  // cond not expected
}

}  // namespace
