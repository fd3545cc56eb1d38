// rl/hyperbolic: expmap₀ onto the hyperboloid and the ball against their defining equations and
// the geodesic distance from the origin, both MLR layers against the closed form along a class
// normal (score = ‖z‖·(t − r) on the hyperboloid, 4‖a‖t in the ball with p = 0) and the side of the
// hyperplane, Möbius addition's identities, the MLR gradients against central differences,
// HL-Gauss targets, value and loss gradient (softmax − target), and Hyper++'s feature control
// bounding the tangent norm by ρ_max for any feature scale.
#include "stablelearn/rl/hyperbolic.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace hb = stablelearn::rl::hyperbolic;
namespace sl = stablelearn;

namespace {
torch::Tensor unit(const torch::Tensor& v) { return v / v.norm(); }
}  // namespace

TEST(Hyperbolic, ExpmapZeroLandsOnTheManifoldAtTheTangentsLength) {
  torch::manual_seed(1);
  for (const double c : {0.5, 1.0, 2.0}) {
    auto u = torch::randn({6, 5}, torch::kFloat64) * 2;
    u[0].zero_();
    u[1] *= 1e-9;
    const auto x = hb::hyperboloid_expmap0(u, c);
    // −x₀² + ‖x_{1:}‖² = −1/c up to cancellation: relative to x₀².
    EXPECT_LT(((hb::minkowski_dot(x, x) + 1.0 / c).abs() / x.select(1, 0).pow(2)).max().item<double>(), 1e-14) << c;
    EXPECT_TRUE((x.select(1, 0) > 0).all().item<bool>());
    // d(o, x) = acosh(−c⟨o, x⟩_L)/√c with o = (1/√c, 0): = acosh(√c x₀)/√c = ‖u‖.
    const auto dist = torch::acosh((std::sqrt(c) * x.select(1, 0)).clamp_min(1.0)) / std::sqrt(c);
    EXPECT_LT((dist.slice(0, 2) - u.norm(2, 1).slice(0, 2)).abs().max().item<double>(), 1e-9) << c;
    const auto b = hb::poincare_expmap0(u, c);
    EXPECT_TRUE((c * (b * b).sum(1) < 1).all().item<bool>());
    // d(0, x) = 2 atanh(√c‖x‖)/√c = 2‖u‖ in the ball.
    const auto bd = 2 * torch::atanh(std::sqrt(c) * b.norm(2, 1)) / std::sqrt(c);
    EXPECT_LT((bd.slice(0, 2, 6) - 2 * u.norm(2, 1).slice(0, 2, 6)).abs().max().item<double>(), 1e-8) << c;
  }
}

TEST(Hyperbolic, MlrScoresAlongTheNormalAreSignedDistancesTimesTheNorm) {
  torch::manual_seed(2);
  for (const double c : {0.5, 1.0, 2.0}) {
    const auto z = torch::randn({3, 4}, torch::kFloat64), r = torch::tensor({0.0, 0.3, -0.7}, torch::kFloat64);
    for (std::int64_t j = 0; j < 3; ++j)
      for (const double t : {-1.5, -0.2, 0.4, 2.0}) {
        const auto u = (t * unit(z[j])).unsqueeze(0);
        const auto s = hb::hyperboloid_mlr(hb::hyperboloid_expmap0(u, c), z, r, c);
        EXPECT_NEAR(s[0][j].item<double>(), z[j].norm().item<double>() * (t - r[j].item<double>()), 1e-9) << c << " " << t;
      }
    // Poincaré with p = 0: score = λ₀‖a‖ d(x, H) = 2‖a‖ · 2t.
    const auto a = torch::randn({3, 4}, torch::kFloat64), p = torch::zeros({3, 4}, torch::kFloat64);
    for (std::int64_t k = 0; k < 3; ++k)
      for (const double t : {-1.0, 0.3, 1.2}) {
        const auto u = (t * unit(a[k])).unsqueeze(0);
        const auto s = hb::poincare_mlr(hb::poincare_expmap0(u, c), p, a, c);
        EXPECT_NEAR(s[0][k].item<double>(), 4 * a[k].norm().item<double>() * t, 1e-8) << c << " " << t;
      }
    // The sign is the side of the hyperplane for any point (r = 0: the side of ⟨z, u⟩).
    const auto u = torch::randn({50, 4}, torch::kFloat64);
    const auto s0 = hb::hyperboloid_mlr(hb::hyperboloid_expmap0(u, c), z, torch::zeros({3}, torch::kFloat64), c);
    EXPECT_TRUE(torch::equal(s0.sign(), torch::matmul(u, z.t()).sign()));
  }
}

TEST(Hyperbolic, MobiusAdditionIdentitiesAndOffsetHyperplanes) {
  torch::manual_seed(3);
  const double c = 1.3;
  const auto x = hb::poincare_expmap0(torch::randn({5, 3}, torch::kFloat64), c);
  const auto zero = torch::zeros_like(x);
  EXPECT_LT((hb::mobius_add(x, zero, c) - x).abs().max().item<double>(), 1e-14);
  EXPECT_LT((hb::mobius_add(zero, x, c) - x).abs().max().item<double>(), 1e-14);
  EXPECT_LT(hb::mobius_add(-x, x, c).abs().max().item<double>(), 1e-14);
  // A ball point on its own class hyperplane's offset p scores 0.
  const auto a = torch::randn({2, 3}, torch::kFloat64), pt = torch::randn({2, 3}, torch::kFloat64) * 0.5;
  const auto p = hb::poincare_expmap0(pt, c);
  const auto s = hb::poincare_mlr(p, p, a, c);
  EXPECT_NEAR(s[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(s[1][1].item<double>(), 0.0, 1e-12);
}

TEST(Hyperbolic, MlrGradientsMatchCentralDifferences) {
  torch::manual_seed(4);
  const double c = 0.8, h = 1e-6;
  const auto u0 = torch::randn({3, 4}, torch::kFloat64), z = torch::randn({2, 4}, torch::kFloat64),
             r = torch::randn({2}, torch::kFloat64), w = torch::randn({3, 2}, torch::kFloat64);
  const std::vector<std::function<torch::Tensor(const torch::Tensor&)>> fs = {
      [&](const torch::Tensor& u) { return (hb::hyperboloid_mlr(hb::hyperboloid_expmap0(u, c), z, r, c) * w).sum(); },
      [&](const torch::Tensor& u) {
        return (hb::poincare_mlr(hb::poincare_expmap0(u * 0.5, c), hb::poincare_expmap0(z * 0.3, c), z, c) * w).sum();
      }};
  for (const auto& f : fs) {
    const auto u = u0.clone().requires_grad_();
    const auto g = torch::autograd::grad({f(u)}, {u})[0];
    auto fd = torch::zeros_like(u0);
    for (std::int64_t i = 0; i < u0.numel(); ++i) {
      auto up = u0.clone(), dn = u0.clone();
      up.view(-1)[i] += h;
      dn.view(-1)[i] -= h;
      fd.view(-1)[i] = (f(up) - f(dn)).item<double>() / (2 * h);
    }
    EXPECT_LT((g - fd).abs().max().item<double>(), 1e-6);
  }
}

TEST(Hyperbolic, HlGaussTargetsValueAndLossGradient) {
  const double lo = -10, hi = 10;
  const std::int64_t bins = 51;
  const auto y = torch::tensor({-3.3, 0.0, 4.71, 9.0}, torch::kFloat64);
  const auto p = hb::hl_gauss_targets(y, bins, lo, hi);
  EXPECT_LT((p.sum(1) - 1).abs().max().item<double>(), 1e-12);
  const double width = (hi - lo) / bins;
  const auto centres = torch::linspace(lo + width / 2, hi - width / 2, bins, torch::kFloat64);
  // The target distribution's mean is y (σ = 0.75 width, far from the ends) and so is the value of
  // logits log p.
  const auto mean = (p * centres).sum(1);
  EXPECT_LT((mean.slice(0, 0, 3) - y.slice(0, 0, 3)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((hb::hl_gauss_value(p.log(), lo, hi).slice(0, 0, 3) - y.slice(0, 0, 3)).abs().max().item<double>(), 1e-6);
  // d loss / d logits = (softmax − target)/n.
  const auto logits = torch::randn({4, bins}, torch::kFloat64).requires_grad_();
  const auto g = torch::autograd::grad({hb::hl_gauss_loss(logits, y, lo, hi)}, {logits})[0];
  EXPECT_LT((g - (torch::softmax(logits.detach(), 1) - p) / 4).abs().max().item<double>(), 1e-12);
  EXPECT_THROW(hb::hl_gauss_targets(y, 1, lo, hi), sl::ConfigError);
  EXPECT_THROW(hb::hl_gauss_targets(y, bins, 1, 1), sl::ConfigError);
}

TEST(Hyperbolic, FeatureControlBoundsTheTangentNormAtAnyScale) {
  torch::manual_seed(5);
  const double rho_max = std::atanh(0.95);
  for (const std::string kind : {"poincare", "hyperboloid"}) {
    hb::Head head(8, 3, hb::HeadOptions{kind, true, 1.0}, 1 / std::sqrt(8.0));
    hb::Head plain(8, 3, hb::HeadOptions{kind, false, 1.0}, 1 / std::sqrt(8.0));
    for (const double scale : {1e-3, 1.0, 1e3, 1e6}) {
      const auto f = torch::randn({16, 8}) * scale;
      const auto out = head->forward(f);
      EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << kind << " " << scale;
      EXPECT_LE(head->last_tangent().norm(2, 1).max().item<double>(), rho_max + 1e-6) << kind << " " << scale;
      plain->forward(f);
      EXPECT_NEAR(plain->last_tangent().norm(2, 1).max().item<double>(), f.norm(2, 1).max().item<double>(), 1e-3 * scale);
    }
  }
  EXPECT_THROW(hb::Head(4, 2, hb::HeadOptions{"euclidean", true, 1.0}, 0.5), sl::ConfigError);
  EXPECT_THROW(hb::Head(4, 2, hb::HeadOptions{"klein", false, 1.0}, 0.5), sl::ConfigError);
  EXPECT_THROW(hb::Head(4, 2, hb::HeadOptions{"poincare", false, -1.0}, 0.5), sl::ConfigError);
}
