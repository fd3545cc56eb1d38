// Unlearning (unlearn/unlearn.h): the projection on hand vectors, the perturbed point and a whole
// StableUN step on quadratics against hand arithmetic, NPO's loss and gradient against the closed
// form and finite differences, the forward/backward passes per step counted by the closures, the
// relearning curve's area, the flatness probe against a dense Hessian, bad options, and each
// method unlearning one class of a small problem while keeping the others.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/unlearn/unlearn.h"
#include "testing.h"

namespace sl = stablelearn;
namespace ul = stablelearn::unlearn;

namespace {

torch::Tensor vec(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }

std::vector<double> flat(const std::vector<torch::Tensor>& ts) {
  std::vector<double> out;
  for (const auto& t : ts) {
    const auto c = t.detach().to(torch::kFloat64).contiguous().reshape({-1});
    for (std::int64_t i = 0; i < c.numel(); ++i) out.push_back(c[i].item<double>());
  }
  return out;
}

}  // namespace

TEST(Unlearn, ProjectionRemovesTheConflictingComponentOnHandVectors) {
  // g_f = (1, 0 | 0), g_r = (−1, 1 | 0): ⟨g_f, g_r⟩ = −1, ‖g_r‖² = 2, so g_f + ½ g_r = (½, ½ | 0).
  const std::vector<torch::Tensor> gf = {vec({1, 0}), vec({0})}, gr = {vec({-1, 1}), vec({0})};
  bool projected = false;
  const auto p = flat(ul::project_conflicting(gf, gr, 0.0, &projected));
  EXPECT_TRUE(projected);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_NEAR(p[0], 0.5, 1e-15);
  EXPECT_NEAR(p[1], 0.5, 1e-15);
  EXPECT_NEAR(p[2], 0.0, 1e-15);
  EXPECT_NEAR(-p[0] + p[1], 0.0, 1e-15);  // on g_r's normal plane
  // Across tensors: g_f = (3 | −4), g_r = (0 | 2): inner −8, ‖g_r‖² = 4 → (3 | −4 + 4) = (3 | 0).
  const auto q = flat(ul::project_conflicting({vec({3}), vec({-4})}, {vec({0}), vec({2})}, 0.0));
  EXPECT_NEAR(q[0], 3.0, 1e-15);
  EXPECT_NEAR(q[1], 0.0, 1e-15);
  // δ enters the denominator: (1, 0) against (−1, 1) with δ = 2 → (1, 0) − (−1/4)(−1, 1) = (¾, ¼).
  const auto d = flat(ul::project_conflicting(gf, gr, 2.0));
  EXPECT_NEAR(d[0], 0.75, 1e-15);
  EXPECT_NEAR(d[1], 0.25, 1e-15);
  // No conflict (inner product 1 ≥ 0): unchanged.
  const auto u = flat(ul::project_conflicting({vec({1, 2})}, {vec({1, 0})}, 0.0, &projected));
  EXPECT_FALSE(projected);
  EXPECT_EQ(u, (std::vector<double>{1, 2}));
}

TEST(Unlearn, PerturbedPointOnAQuadraticIsRhoAlongTheNormalisedGradient) {
  // L(w) = ½ (2 w0² + 8 w1²) at w = (1, 1): g = (2, 8), ‖g‖ = √68; ε = ρ g / √68.
  const double rho = 0.1, n = std::sqrt(68.0);
  const std::vector<torch::Tensor> w = {vec({1, 1})};
  const ul::WeightLoss L = [](const std::vector<torch::Tensor>& v) {
    return 0.5 * (2 * v[0][0] * v[0][0] + 8 * v[0][1] * v[0][1]);
  };
  double value = 0;
  const auto g = ul::gradient_at(L, w, &value);
  EXPECT_NEAR(value, 5.0, 1e-15);
  const auto p = flat(ul::perturbed_point(w, g, rho));
  EXPECT_NEAR(p[0], 1 + rho * 2 / n, 1e-15);
  EXPECT_NEAR(p[1], 1 + rho * 8 / n, 1e-15);
  EXPECT_NEAR(std::hypot(p[0] - 1, p[1] - 1), rho, 1e-15);
  // The forgetting feedback there: A (w + ε).
  const auto gF = flat(ul::gradient_at(L, ul::perturbed_point(w, g, rho)));
  EXPECT_NEAR(gF[0], 2 * (1 + rho * 2 / n), 1e-14);
  EXPECT_NEAR(gF[1], 8 * (1 + rho * 8 / n), 1e-14);
  // A zero gradient leaves the point where it is.
  EXPECT_EQ(flat(ul::perturbed_point(w, {vec({0, 0})}, rho)), (std::vector<double>{1, 1}));
}

TEST(Unlearn, OneStableUnStepOnQuadraticsMatchesHandArithmetic) {
  // L_f = ½ (2 w0² + 8 w1²), L_r = ½ ‖w − c‖², c = (−3, 6), θ = (1, 1), ρ = 0.1, α = 0.05, η = 0.1,
  // λ_f = 1, λ_r = 0.5, δ = 1e-12 (the feedbacks conflict: ⟨g_F, g_R⟩ ≈ −40). Every quantity below is
  // recomputed with doubles.
  const double rho = 0.1, alpha = 0.05, eta = 0.1, lf = 1.0, lr = 0.5;
  const double c0 = -3, c1 = 6;
  const ul::WeightLoss Lf = [](const std::vector<torch::Tensor>& v) {
    return 0.5 * (2 * v[0][0] * v[0][0] + 8 * v[0][1] * v[0][1]);
  };
  const ul::WeightLoss Lr = [&](const std::vector<torch::Tensor>& v) {
    return 0.5 * ((v[0][0] - c0) * (v[0][0] - c0) + (v[0][1] - c1) * (v[0][1] - c1));
  };
  const double n = std::sqrt(68.0);
  const double e0 = 1 + rho * 2 / n, e1 = 1 + rho * 8 / n;  // θ + ε
  double gF0 = 2 * e0, gF1 = 8 * e1;
  const double a0 = 1 - alpha * gF0, a1 = 1 - alpha * gF1;  // θ'
  const double gR0 = a0 - c0, gR1 = a1 - c1;
  const double in = gF0 * gR0 + gF1 * gR1;
  ASSERT_LT(in, 0) << "the hand example is meant to conflict";
  const double k = in / (gR0 * gR0 + gR1 * gR1 + 1e-12);
  gF0 -= k * gR0;
  gF1 -= k * gR1;
  const double want0 = 1 - eta * (lf * gF0 + lr * gR0), want1 = 1 - eta * (lf * gF1 + lr * gR1);

  std::vector<torch::Tensor> w = {vec({1, 1})};
  ul::UnlearnOptions o;
  o.rho = rho;
  o.alpha = alpha;
  o.lr = eta;
  o.lambda_f = lf;
  o.lambda_r = lr;
  const auto s = ul::stableun_step(w, Lf, Lr, o);
  EXPECT_TRUE(s.projected);
  EXPECT_NEAR(s.inner, in, 1e-12);
  EXPECT_NEAR(s.forget_loss, 5.0, 1e-15);
  EXPECT_NEAR(s.retain_loss, 0.5 * (gR0 * gR0 + gR1 * gR1), 1e-12);
  const auto got = flat(w);
  EXPECT_NEAR(got[0], want0, 1e-12);
  EXPECT_NEAR(got[1], want1, 1e-12);

  // The GD baseline step on the same losses: θ − η (λ_f A θ + λ_r (θ − c)).
  std::vector<torch::Tensor> v = {vec({1, 1})};
  ul::descent_step(v, Lf, Lr, o);
  const auto b = flat(v);
  EXPECT_NEAR(b[0], 1 - eta * (lf * 2 + lr * (1 - c0)), 1e-14);
  EXPECT_NEAR(b[1], 1 - eta * (lf * 8 + lr * (1 - c1)), 1e-14);
}

TEST(Unlearn, AStableUnStepCostsThreeForwardBackwardPassesAndABaselineStepTwo) {
  // Counted by the closures themselves: every loss evaluation is one forward, every gradient one backward.
  int forget_calls = 0, retain_calls = 0;
  const ul::WeightLoss Lf = [&](const std::vector<torch::Tensor>& v) {
    ++forget_calls;
    return (v[0] * v[0]).sum();
  };
  const ul::WeightLoss Lr = [&](const std::vector<torch::Tensor>& v) {
    ++retain_calls;
    return ((v[0] - 1) * (v[0] - 1)).sum();
  };
  std::vector<torch::Tensor> w = {vec({0.5, -0.25, 2})};
  ul::UnlearnOptions o;
  const auto s = ul::stableun_step(w, Lf, Lr, o);
  EXPECT_EQ(forget_calls, 2);  // at θ and at θ + ε
  EXPECT_EQ(retain_calls, 1);  // at θ'
  EXPECT_LE(forget_calls + retain_calls, 4) << "the paper's budget: at most 4 forward/backward passes per step";
  EXPECT_EQ(s.passes, forget_calls + retain_calls);
  forget_calls = retain_calls = 0;
  const auto d = ul::descent_step(w, Lf, Lr, o);
  EXPECT_EQ(forget_calls + retain_calls, 2);
  EXPECT_EQ(d.passes, 2);
}

TEST(Unlearn, NpoLossAndGradientMatchTheClosedFormAndFiniteDifferences) {
  const double beta = 0.7;
  auto logits = torch::tensor({1.0, -0.5, 2.0, 0.3, 0.3, -1.2, -2.0, 0.5, 0.1}, torch::kFloat64).reshape({3, 3});
  const auto y = torch::tensor({2, 0, 1}, torch::kInt64);
  // Hand log-likelihoods of the labels and a reference.
  std::vector<double> l(3);
  for (int i = 0; i < 3; ++i) {
    double s = 0;
    for (int c = 0; c < 3; ++c) s += std::exp(logits[i][c].item<double>());
    l[static_cast<std::size_t>(i)] = logits[i][y[i].item<std::int64_t>()].item<double>() - std::log(s);
  }
  const std::vector<double> ref = {l[0] + 0.4, l[1] - 1.0, l[2]};
  double want = 0;
  for (int i = 0; i < 3; ++i) {
    const double u = -beta * (l[static_cast<std::size_t>(i)] - ref[static_cast<std::size_t>(i)]);
    want += -(2 / beta) * std::log(1 / (1 + std::exp(-u)));
  }
  want /= 3;
  const auto r = vec(ref);
  EXPECT_NEAR(ul::npo_loss(logits, y, r, beta).item<double>(), want, 1e-12);
  // At the reference the loss is (2/β) log 2 and the gradient is GA's.
  const auto at_ref = vec(l);
  EXPECT_NEAR(ul::npo_loss(logits, y, at_ref, beta).item<double>(), 2 / beta * std::log(2.0), 1e-12);
  auto z = logits.clone().requires_grad_(true);
  const auto g_npo = torch::autograd::grad({ul::npo_loss(z, y, at_ref, beta)}, {z})[0];
  const auto g_ga = torch::autograd::grad({ul::ga_loss(z, y)}, {z})[0];
  EXPECT_LT((g_npo - g_ga).abs().max().item<double>(), 1e-14);
  // Elsewhere: autograd against central differences in every logit.
  const auto g = torch::autograd::grad({ul::npo_loss(z, y, r, beta)}, {z})[0];
  const double h = 1e-6;
  for (int i = 0; i < 3; ++i)
    for (int c = 0; c < 3; ++c) {
      auto p = logits.clone(), m = logits.clone();
      p[i][c] += h;
      m[i][c] -= h;
      const double fd = (ul::npo_loss(p, y, r, beta).item<double>() - ul::npo_loss(m, y, r, beta).item<double>()) / (2 * h);
      EXPECT_NEAR(g[i][c].item<double>(), fd, 1e-8) << i << "," << c;
      // Closed form: (2/N) σ(β (ℓ_i − ℓ_ref,i)) (1[c = y_i] − p_ic).
      const double li = l[static_cast<std::size_t>(i)];
      const double sig = 1 / (1 + std::exp(-beta * (li - ref[static_cast<std::size_t>(i)])));
      double s = 0;
      for (int k = 0; k < 3; ++k) s += std::exp(logits[i][k].item<double>());
      const double pc = std::exp(logits[i][c].item<double>()) / s;
      EXPECT_NEAR(g[i][c].item<double>(), (2.0 / 3) * sig * ((c == y[i].item<std::int64_t>() ? 1 : 0) - pc), 1e-12);
    }
  // GA's loss: the mean log-likelihood.
  EXPECT_NEAR(ul::ga_loss(logits, y).item<double>(), (l[0] + l[1] + l[2]) / 3, 1e-12);
}

namespace {

// A two-layer network in functional form: relu(x W1ᵀ + b1) W2ᵀ + b2.
torch::Tensor mlp(const torch::Tensor& x, const std::vector<torch::Tensor>& w) {
  return torch::relu(x.matmul(w[0].t()) + w[1]).matmul(w[2].t()) + w[3];
}

// Three overlapping Gaussian blobs in the plane (s.d. 0.8), n per class.
std::pair<torch::Tensor, torch::Tensor> blobs(std::int64_t n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto centres = torch::tensor({2.0, 0.0, -1.0, 1.7, -1.0, -1.7}, torch::kFloat32).reshape({3, 2});
  std::vector<torch::Tensor> xs, ys;
  for (std::int64_t c = 0; c < 3; ++c) {
    xs.push_back(centres[c] + 0.8 * torch::randn({n, 2}, gen, torch::kFloat32));
    ys.push_back(torch::full({n}, c, torch::kInt64));
  }
  return {torch::cat(xs), torch::cat(ys)};
}

std::vector<torch::Tensor> trained_mlp() {
  torch::manual_seed(3);
  std::vector<torch::Tensor> w = {0.5 * torch::randn({32, 2}), torch::zeros({32}), 0.3 * torch::randn({3, 32}), torch::zeros({3})};
  for (auto& t : w) t.requires_grad_(true);
  const auto [x, y] = blobs(200, 1);
  torch::optim::Adam opt(w, torch::optim::AdamOptions(0.01));
  for (int s = 0; s < 100; ++s) {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(mlp(x, w), y).backward();
    opt.step();
  }
  for (auto& t : w) t = t.detach();
  return w;
}

}  // namespace

TEST(Unlearn, EachMethodForgetsOneClassAndKeepsTheOthersOnBlobs) {
  const auto w0 = trained_mlp();
  const auto [xt, yt] = blobs(300, 2);  // held-out
  const auto ft = yt.eq(0), rt = yt.ne(0);
  const auto xf_t = xt.index({ft}), yf_t = yt.index({ft}), xr_t = xt.index({rt}), yr_t = yt.index({rt});
  const double forget0 = ul::accuracy(mlp, w0, xf_t, yf_t), retain0 = ul::accuracy(mlp, w0, xr_t, yr_t);
  ASSERT_GT(forget0, 0.9);
  ASSERT_GT(retain0, 0.9);
  const auto [x, y] = blobs(200, 1);
  ul::UnlearnData d{x.index({y.eq(0)}), y.index({y.eq(0)}), x.index({y.ne(0)}), y.index({y.ne(0)})};
  // GA's ascent runs away once the class is forgotten (here its retain accuracy falls to ≈ 0.85
  // within 40 more steps, then the loss overflows), so every method stops at the first check (every
  // 5 steps) at which the forget training samples are all forgotten.
  for (const char* method : {"ga", "npo", "stableun"}) {
    auto w = w0;
    for (auto& t : w) t = t.clone();
    ul::UnlearnOptions o;
    o.method = method;
    o.steps = 200;
    o.stop_forget_acc = 0;
    o.check_every = 5;
    o.batch = 64;
    o.lr = 0.05;
    o.beta = 0.5;
    o.rho = 0.05;
    o.seed = 4;
    const auto trace = ul::unlearn(w, mlp, d, o);
    EXPECT_TRUE(trace.stopped_early) << method;
    EXPECT_EQ(trace.steps % 5, 0) << method;
    EXPECT_EQ(ul::accuracy(mlp, w, d.x_forget, d.y_forget), 0.0) << method;
    EXPECT_EQ(trace.forget_loss.size(), static_cast<std::size_t>(trace.steps));
    EXPECT_EQ(trace.passes, std::string(method) == "stableun" ? 3 * trace.steps : 2 * trace.steps);
    const double forget = ul::accuracy(mlp, w, xf_t, yf_t), retain = ul::accuracy(mlp, w, xr_t, yr_t);
    EXPECT_LE(forget, 1.0 / 3) << method << ": the forget class is not forgotten";
    EXPECT_GE(retain, retain0 - 0.05) << method << ": the other classes were not kept";
  }
}

TEST(Unlearn, ARunawayAscentStopsWithTheLastFiniteWeights) {
  // GA at lr 5 on the blobs overflows within a few steps; unlearn() then returns the weights at the
  // start of the last step with finite losses, whose forget loss is the trace's last entry.
  const auto w0 = trained_mlp();
  const auto [x, y] = blobs(200, 1);
  ul::UnlearnData d{x.index({y.eq(0)}), y.index({y.eq(0)}), x.index({y.ne(0)}), y.index({y.ne(0)})};
  auto w = w0;
  for (auto& t : w) t = t.clone();
  ul::UnlearnOptions o;
  o.method = "ga";
  o.steps = 500;
  o.lr = 5;
  o.batch = 64;
  const auto trace = ul::unlearn(w, mlp, d, o);
  ASSERT_TRUE(trace.diverged);
  EXPECT_LT(trace.steps, 500);
  EXPECT_EQ(trace.forget_loss.size(), static_cast<std::size_t>(trace.steps));
  for (const auto& t : w) EXPECT_TRUE(torch::isfinite(t).all().item<bool>());
  // Replaying the same batches for `steps` steps from w0 gives the same weights.
  auto v = w0;
  for (auto& t : v) t = t.clone();
  o.steps = trace.steps;
  const auto again = ul::unlearn(v, mlp, d, o);
  EXPECT_FALSE(again.diverged);
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(torch::equal(w[i], v[i])) << i;
}

TEST(Unlearn, TheRelearningCurveStartsAtTheAccuracyAndItsAreaIsTheTrapezoidRule) {
  const auto w0 = trained_mlp();
  const auto [x, y] = blobs(100, 5);
  // Attack the trained model with class-0 labels for every image of class 1: accuracy of "class 1
  // is called 0" rises from ≈ 0.
  const auto x1 = x.index({y.eq(1)});
  const auto lab0 = torch::zeros({x1.size(0)}, torch::kInt64);
  ul::RelearnOptions o;
  o.steps = 30;
  o.lr = 0.02;
  const auto c = ul::relearn_attack(w0, mlp, x1.slice(0, 0, 20), lab0.slice(0, 0, 20), x1, lab0, o);
  ASSERT_EQ(c.accuracy.size(), 31u);
  EXPECT_NEAR(c.accuracy[0], ul::accuracy(mlp, w0, x1, lab0), 1e-15);
  double area = 0;
  for (std::size_t i = 0; i < 30; ++i) area += (c.accuracy[i] + c.accuracy[i + 1]) / 2;
  EXPECT_NEAR(c.auc, area / 30, 1e-12);
  EXPECT_GT(c.accuracy.back(), c.accuracy[0] + 0.3) << "the attack learns";
  std::int64_t first = -1;
  for (std::size_t i = 0; i < c.accuracy.size() && first < 0; ++i)
    if (c.accuracy[i] >= 0.5) first = static_cast<std::int64_t>(i);
  EXPECT_EQ(c.steps_to_half, first);
}

TEST(Unlearn, FlatnessProbeIsTheLargestHessianEigenvalueOfTheForgetCrossEntropy) {
  // Softmax regression (3 features, 3 classes, 12 weights) in float64: the dense Hessian by double
  // backward, its extreme eigenvalue by eigvalsh.
  torch::manual_seed(8);
  const auto x = torch::randn({40, 3}, torch::kFloat64);
  const auto y = torch::randint(3, {40}, torch::kInt64);
  const std::vector<torch::Tensor> w = {torch::randn({3, 3}, torch::kFloat64), torch::randn({3}, torch::kFloat64)};
  const ul::LogitsFn f = [](const torch::Tensor& in, const std::vector<torch::Tensor>& v) { return in.matmul(v[0].t()) + v[1]; };
  auto flatw = torch::cat({w[0].reshape({-1}), w[1]}).requires_grad_(true);
  auto loss = torch::nn::functional::cross_entropy(f(x, {flatw.slice(0, 0, 9).reshape({3, 3}), flatw.slice(0, 9, 12)}), y);
  const auto g = torch::autograd::grad({loss}, {flatw}, {}, true, true)[0];
  auto H = torch::zeros({12, 12}, torch::kFloat64);
  for (int i = 0; i < 12; ++i) H[i] = torch::autograd::grad({g[i]}, {flatw}, {}, true)[0];
  const auto ev = torch::linalg_eigvalsh(H, "L");
  const double want = std::max(std::abs(ev.min().item<double>()), std::abs(ev.max().item<double>()));
  EXPECT_NEAR(std::abs(ul::forget_sharpness(w, f, x, y, 12)), want, 1e-8 * want);
}

TEST(Unlearn, BadOptionsAndDataAreErrorsNamingTheKey) {
  ul::UnlearnOptions o;
  o.method = "sam";
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate("unlearn."); }, "unlearn.method = 'sam'");
  o = {};
  o.rho = -1;
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(); }, "rho = -1");
  o = {};
  o.beta = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(); }, "beta = 0");
  o = {};
  o.check_every = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(); }, "check_every = 0");
  o = {};
  o.stop_forget_acc = 2;
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(); }, "stop_forget_acc = 2");
  o = {};
  o.forget_loss = "kl";
  sl::testing::expect_error<sl::ConfigError>([&] { o.validate(); }, "forget_loss = 'kl'");
  ul::RelearnOptions r;
  r.steps = 0;
  sl::testing::expect_error<sl::ConfigError>([&] { r.validate("relearn."); }, "relearn.steps = 0");
  std::vector<torch::Tensor> w = {torch::zeros({3, 2}), torch::zeros({3})};
  const ul::LogitsFn f = [](const torch::Tensor& in, const std::vector<torch::Tensor>& v) { return in.matmul(v[0].t()) + v[1]; };
  ul::UnlearnData d{torch::zeros({4, 2}), torch::zeros({3}, torch::kInt64), torch::zeros({4, 2}), torch::zeros({4}, torch::kInt64)};
  sl::testing::expect_error<sl::ShapeError>([&] { ul::unlearn(w, f, d, {}); }, "4 forget inputs and labels");
  d.x_forget = torch::zeros({0, 2});
  sl::testing::expect_error<sl::ShapeError>([&] { ul::unlearn(w, f, d, {}); }, "must both hold samples");
}
