// The discrete-time sNODE map Φ_h (models/snode_discrete.h) on UNTRAINED networks: the decrease
// V(Φ(x)) <= e^{−καh} V(x) holds for any weights (V recomputed independently in float64), Φ is the
// plain Euler step where certified and the hand-computed radial pull elsewhere, the goal rule, and
// gradients through a rollout against central differences.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/snode_discrete.h"
#include "stablelearn/testing/gradcheck.h"

namespace sl = stablelearn;
namespace F = stablelearn::models::functional;
using sl::models::SNodeOptions;

namespace {

struct Net {
  SNodeOptions o;
  std::vector<torch::Tensor> w64;  ///< the weights in float64 (the independent V)
};

/// An untrained autonomous sNODE with the default initialisation times `scale` (a larger scale
/// makes the projected field stiffer, so Euler steps overshoot more often).
Net untrained(std::int64_t d, std::uint64_t seed, double scale, double eps = 1e-3) {
  auto o = SNodeOptions(d).hidden(32).fhat_layers(2).icnn_hidden(16).explicit_time(false).eps(eps);
  torch::manual_seed(seed);
  sl::models::SNode net(o);
  Net n{o, {}};
  for (const auto& t : net->weights()) n.w64.push_back(t.detach().to(torch::kFloat64) * scale);
  return n;
}

std::vector<torch::Tensor> cast(const std::vector<torch::Tensor>& w, torch::Dtype dtype) {
  std::vector<torch::Tensor> out;
  for (const auto& t : w) out.push_back(t.to(dtype));
  return out;
}

/// States far from the goal, near it, and near the crease g(x) = g(0) (the 40 of 4000 random states
/// in a box with the smallest |g(x) − g(0)|, where ∇V switches direction and Euler chatters).
torch::Tensor test_states(const Net& n, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto d = n.o.dim();
  const auto far = torch::randn({40, d}, gen, torch::kFloat64) * 5;
  const auto near = torch::randn({20, d}, gen, torch::kFloat64) * 1e-2;
  const auto box = torch::randn({4000, d}, gen, torch::kFloat64) * 2;
  const auto s = F::snode_icnn(box, n.w64, n.o) - F::snode_icnn(torch::zeros({1, d}, torch::kFloat64), n.w64, n.o);
  const auto idx = std::get<1>(s.abs().topk(40, 0, /*largest=*/false));
  return torch::cat({far, near, box.index_select(0, idx)});
}

}  // namespace

TEST(SNodeDiscrete, DecreasesTheLyapunovFunctionForAnyWeights) {
  // Untrained networks, d = 2 and 8, several seeds and periods, float32 and float64: after one
  // application of Φ_h, V (recomputed in float64 from the float64 weights) has dropped by at least
  // e^{−καh}. float64: exact up to 1e-12 relative (the margin of Φ is 1e-6). float32: Φ decides on
  // float32 V, whose rounding is a few ulps of the ICNN's terms: tolerance 2e-5 (1 + V) — well
  // below the required drop 1 − e^{−καh} ≥ 2.5e-3 at the smallest h.
  const double kappa = 0.5;
  std::int64_t projected = 0, total = 0;
  for (std::int64_t d : {2, 8})
    for (std::uint64_t seed : {1u, 2u, 3u})
      for (double h : {0.01, 0.2, 1.0})
        for (auto dtype : {torch::kFloat64, torch::kFloat32})
          for (bool center : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "d " << d << " seed " << seed << " h " << h << " dtype " << dtype
                                            << " center_fhat " << center);
          auto n = untrained(d, seed, 3.0);
          n.o.center_fhat(center);
          const auto x = test_states(n, seed + 100);
          const auto step = F::snode_discrete_step(x.to(dtype), h, cast(n.w64, dtype), n.o, kappa);
          const auto V0 = F::snode_lyapunov(x.to(dtype).to(torch::kFloat64), n.w64, n.o);
          const auto V1 = F::snode_lyapunov(step.x.to(torch::kFloat64), n.w64, n.o);
          const auto bound = V0 * std::exp(-kappa * n.o.alpha() * h);
          const auto tol = dtype == torch::kFloat64 ? 1e-12 * bound : 2e-5 * (1 + V0);
          const auto excess = (V1 - bound - tol).max().item<double>();
          EXPECT_LE(excess, 0.0) << "worst V(Φ(x)) − bound − tol";
          EXPECT_TRUE(torch::isfinite(step.x).all().item<bool>());
          projected += step.projected.sum().item<std::int64_t>();
          total += x.size(0);
        }
  // Both branches are exercised (with and without center_fhat): some states are Euler-certified,
  // others pulled.
  EXPECT_GT(projected, total / 20);
  EXPECT_LT(projected, total - total / 20);
}

TEST(SNodeDiscrete, IsTheEulerStepWhereCertifiedAndTheRadialPullElsewhere) {
  const double kappa = 0.5, h = 0.3;
  for (std::int64_t d : {2, 8}) {
    const auto n = untrained(d, 11, 3.0);
    const auto x = test_states(n, 12);
    const auto step = F::snode_discrete_step(x, h, n.w64, n.o, kappa);
    // Hand computation from the public pieces: f from the sNODE right-hand side, V, c, λ.
    const auto f = F::snode_rhs(torch::zeros({}, torch::kFloat64), x, n.w64, n.o);
    const auto y = x + h * f;
    const auto c = F::snode_lyapunov(x, n.w64, n.o) * std::exp(-kappa * n.o.alpha() * h);
    const auto Vy = F::snode_lyapunov(y, n.w64, n.o);
    std::int64_t pulled = 0, euler = 0;
    for (std::int64_t b = 0; b < x.size(0); ++b) {
      const double vy = Vy[b].item<double>(), cb = c[b].item<double>();
      ASSERT_EQ(step.projected[b].item<bool>(), vy > cb) << b;
      if (vy <= cb) {
        ++euler;
        EXPECT_TRUE(torch::equal(step.x[b], y[b])) << "row " << b << ": not exactly the Euler step";
      } else {
        ++pulled;
        const double lambda = cb / vy * (1 - 1e-6);
        for (std::int64_t i = 0; i < d; ++i)
          EXPECT_NEAR(step.x[b][i].item<double>(), lambda * y[b][i].item<double>(), 1e-13 * (1 + std::abs(y[b][i].item<double>())));
      }
    }
    EXPECT_GT(pulled, 0) << d;
    EXPECT_GT(euler, 0) << d;
  }
}

TEST(SNodeDiscrete, PutsTheGoalOnTheGoalWithoutNaNGradients) {
  const auto n = untrained(2, 5, 3.0);
  // Row 0 is the goal itself (V = 0, field 0/0), row 1 a regular state.
  auto x = torch::tensor({{0.0, 0.0}, {1.0, -2.0}}, torch::kFloat64).requires_grad_(true);
  auto w = n.w64;
  for (auto& t : w) t = t.clone().requires_grad_(true);
  const auto step = F::snode_discrete_step(x, 0.1, w, n.o);
  EXPECT_TRUE(step.goal[0].item<bool>());
  EXPECT_FALSE(step.goal[1].item<bool>());
  EXPECT_TRUE(torch::equal(step.x[0], torch::zeros({2}, torch::kFloat64)));
  EXPECT_FALSE(torch::equal(step.x[1], x[1].detach()));
  const auto grads = torch::autograd::grad({step.x.pow(2).sum()}, {x, w[0], w.back()});
  for (const auto& g : grads) EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
  // A hair away from the goal (‖∇V‖² ≈ 1e-340 underflows to 0, the field is 0/0) the state is put
  // on the goal too.
  const auto tiny = F::snode_discrete_step(torch::tensor({{1e-170, 0.0}}, torch::kFloat64), 0.1, n.w64, n.o);
  EXPECT_TRUE(tiny.goal[0].item<bool>());
  EXPECT_TRUE(torch::equal(tiny.x, torch::zeros({1, 2}, torch::kFloat64)));
}

TEST(SNodeDiscrete, QuadraticCollapseNearTheGoalKeepsGradientsFinite) {
  // Near the goal the pull contracts quadratically (‖Φ(x)‖ ~ ‖x‖²/‖y‖); on this untrained
  // demo-size net in float32 the third start falls below 1e-11 within 8 steps, where the
  // projection's backward overflowed into NaN before the ‖∇V‖² floor of the goal rule existed. The
  // rule puts such states on the goal, and the gradient of a loss over 40 steps stays finite.
  torch::manual_seed(2);
  const auto o = SNodeOptions(2).hidden(100).fhat_layers(3).icnn_hidden(50).eps(1e-3).explicit_time(false);
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->weights()) w.push_back(t.detach().clone().requires_grad_(true));
  const auto x0 = torch::tensor({{1e-2f, -2e-2f}, {3e-3f, 1e-3f}, {-1e-4f, 2e-4f}});
  F::SNodeDiscreteStats st;
  const auto traj = F::snode_discrete_rollout(x0, torch::arange(41, torch::kFloat64) * 0.0024, w, o, 0.5, {}, &st);
  EXPECT_GT(st.goal, 0) << "the start should reach the goal floor";
  EXPECT_TRUE(torch::isfinite(traj).all().item<bool>());
  const auto grads = torch::autograd::grad({traj.pow(2).sum()}, w);
  for (std::size_t k = 0; k < grads.size(); ++k) EXPECT_TRUE(torch::isfinite(grads[k]).all().item<bool>()) << k;
  EXPECT_EQ(F::discrete_goal_grad_norm2(torch::kFloat32), std::pow(static_cast<double>(std::numeric_limits<float>::min()), 0.4));
  EXPECT_NEAR(F::discrete_goal_grad_norm2(torch::kFloat64), 8.688e-124, 1e-127);
}

TEST(SNodeDiscrete, RolloutGradientMatchesCentralDifferences) {
  // A small untrained net, float64, 6 steps from 3 starts with both branches taken along the way:
  // the gradient of a loss through the whole rollout w.r.t. x0 and several weight tensors.
  auto o = SNodeOptions(2).hidden(8).fhat_layers(2).icnn_hidden(6).explicit_time(false).eps(1e-2);
  torch::manual_seed(21);
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->weights()) w.push_back(t.detach().to(torch::kFloat64) * 2.5);
  const auto t = torch::tensor({0.0, 0.25, 0.5, 0.8, 1.1, 1.5, 1.9}, torch::kFloat64);
  const auto x0 = torch::tensor({{1.5, -0.7}, {-2.0, 1.2}, {0.4, 2.5}}, torch::kFloat64);
  F::SNodeDiscreteStats stats;
  F::snode_discrete_rollout(x0, t, w, o, 0.5, {}, &stats);
  ASSERT_GT(stats.projected, 0) << "the check must go through the radial pull";
  ASSERT_LT(stats.projected, stats.steps) << "and through plain Euler steps";
  EXPECT_EQ(stats.steps, 3 * 6);
  // Checked: x0, f̂'s first and output layers, the ICNN's W0, U0 and bias 2.
  const std::vector<std::size_t> idx{0, 4, 6, 9, 13};
  std::vector<torch::Tensor> inputs{x0.clone().requires_grad_(true)};
  for (auto k : idx) inputs.push_back(w[k].clone().requires_grad_(true));
  const auto fn = [&](const std::vector<torch::Tensor>& in) {
    auto ww = w;
    for (std::size_t j = 0; j < idx.size(); ++j) ww[idx[j]] = in[j + 1];
    const auto traj = F::snode_discrete_rollout(in[0], t, ww, o, 0.5);
    return (traj * traj).sum(2).reshape({-1});  // ‖x_k‖² per start and step
  };
  const auto r = sl::testing::gradcheck(fn, inputs, 1e-6, 1e-6, 1e-4);
  EXPECT_TRUE(r.ok) << r;
}

TEST(SNodeDiscrete, RolloutCountsAndRejectsClockInputsAndBadKappa) {
  const auto n = untrained(2, 4, 3.0);
  const auto t = torch::linspace(0, 2, 11, torch::kFloat64);
  const auto x0 = torch::randn({5, 2}, torch::kFloat64) * 3;
  F::SNodeDiscreteStats st;
  const auto traj = F::snode_discrete_rollout(x0, t, n.w64, n.o, 0.5, {}, &st);
  ASSERT_EQ(traj.sizes(), (std::vector<std::int64_t>{5, 11, 2}));
  EXPECT_TRUE(torch::equal(traj.select(1, 0), x0));
  EXPECT_EQ(st.steps, 50);
  // Each step is Φ with its own h.
  const auto again = F::snode_discrete_step(traj.select(1, 3), 0.2, n.w64, n.o, 0.5).x;
  EXPECT_TRUE(torch::allclose(again, traj.select(1, 4), 1e-14, 1e-14));
  // V decreases along the whole rollout at the certified rate.
  const auto V = F::snode_lyapunov(traj.reshape({-1, 2}), n.w64, n.o).reshape({5, 11});
  EXPECT_LE((V.select(1, 10) - V.select(1, 0) * std::exp(-0.25 * 2.0) * (1 + 1e-12)).max().item<double>(), 0.0);
  auto clock = n.o;
  clock.explicit_time(true);
  EXPECT_THROW(F::snode_discrete_step(x0, 0.1, n.w64, clock), sl::ConfigError);
  EXPECT_THROW(F::snode_discrete_step(x0, 0.1, n.w64, n.o, 0.0), sl::ConfigError);
  EXPECT_THROW(F::snode_discrete_step(x0, 0.1, n.w64, n.o, 1.5), sl::ConfigError);
  EXPECT_THROW(F::snode_discrete_rollout(x0, torch::tensor({0.0, 0.5, 0.5}, torch::kFloat64), n.w64, n.o), sl::DataError);
}

namespace {

/// f̂ computed by hand from the weight list (ReLU layers, linear output), independent of snode.cpp.
torch::Tensor mlp_by_hand(const torch::Tensor& in, const std::vector<torch::Tensor>& w, std::int64_t L) {
  auto h = in;
  for (std::int64_t k = 0; k < L; ++k) h = (h.mm(w[2 * k].t()) + w[2 * k + 1]).clamp_min(0);
  return h.mm(w[2 * L].t()) + w[2 * L + 1];
}

}  // namespace

TEST(SNodeDiscrete, CenteredFhatIsTheMlpMinusItsValueAtTheGoal) {
  // center_fhat: f̂_c(z) = f̂(z) − f̂(0) (with a conditioning vector per row: f̂([c_b, z_b]) −
  // f̂([c_b, 0])), against the MLP evaluated by hand; f̂_c(0) = 0; the weight layout is unchanged.
  for (std::int64_t d : {2, 8}) {
    auto n = untrained(d, 31, 1.0);
    auto oc = n.o;
    oc.center_fhat(true);
    EXPECT_EQ(sl::models::snode_layout(oc).numel(), sl::models::snode_layout(n.o).numel());
    const auto x = torch::randn({16, d}, torch::kFloat64);
    const auto L = n.o.fhat_layers();
    const auto expect = mlp_by_hand(x, n.w64, L) - mlp_by_hand(torch::zeros({1, d}, torch::kFloat64), n.w64, L);
    EXPECT_TRUE(torch::allclose(F::snode_fhat(x, n.w64, oc), expect, 1e-12, 1e-12)) << d;
    EXPECT_TRUE(torch::allclose(F::snode_fhat(x, n.w64, n.o), mlp_by_hand(x, n.w64, L), 1e-12, 1e-12)) << d;
    EXPECT_LE(F::snode_fhat(torch::zeros({3, d}, torch::kFloat64), n.w64, oc).abs().max().item<double>(), 0.0);
    // The projected field at the goal's neighbourhood is small with the centred f̂ only.
    const auto e = F::snode_eval(torch::full({1, d}, 1e-7, torch::kFloat64), n.w64, oc);
    EXPECT_LT(e.f.norm().item<double>(), 1e-5);
  }
  // A conditioning vector (the FT/REP/SI/MAS baselines' task embedding), one per row and shared.
  auto o = SNodeOptions(2).hidden(8).fhat_layers(2).icnn_hidden(4).explicit_time(false).condition_dim(3);
  torch::manual_seed(32);
  sl::models::SNode net(o);
  std::vector<torch::Tensor> w;
  for (const auto& t : net->weights()) w.push_back(t.detach().to(torch::kFloat64));
  auto oc = o;
  oc.center_fhat(true);
  const auto x = torch::randn({5, 2}, torch::kFloat64);
  const auto cond = torch::randn({5, 3}, torch::kFloat64);
  const auto expect = mlp_by_hand(torch::cat({cond, x}, 1), w, 2) -
                      mlp_by_hand(torch::cat({cond, torch::zeros({5, 2}, torch::kFloat64)}, 1), w, 2);
  EXPECT_TRUE(torch::allclose(F::snode_fhat(x, w, oc, cond), expect, 1e-12, 1e-12));
  const auto c1 = cond[0];
  const auto expect1 = mlp_by_hand(torch::cat({c1.expand({5, 3}), x}, 1), w, 2) -
                       mlp_by_hand(torch::cat({c1.unsqueeze(0), torch::zeros({1, 2}, torch::kFloat64)}, 1), w, 2);
  EXPECT_TRUE(torch::allclose(F::snode_fhat(x, w, oc, c1), expect1, 1e-12, 1e-12));
}

TEST(SNodeDiscrete, CenteredFieldIsLinearlyBoundedAndItsEulerStepDoesNotOvershootTheGoal) {
  // docs/lfd.md §7: with f̂(0) = 0, ‖f(x)‖ ≤ 2‖f̂(x)‖ + α‖x‖ for every x (convexity: ‖∇V‖ ≥ V/‖x‖),
  // so near the goal f = O(‖x‖) and V(x + h f(x)) / V(x) has a finite limit along every ray as
  // x → 0 (V and the step are homogeneous to leading order): the Euler step is certified or not
  // by direction, not by distance. Without it f → f̂(0)'s projection ≠ 0, and every state much
  // closer to the goal than h‖f̂(0)‖ overshoots: V(y)/V(x) ~ 1/‖x‖².
  const double h = 0.01, kappa = 0.5;
  for (std::uint64_t seed : {41u, 42u, 43u}) {
    auto n = untrained(2, seed, 1.0);
    auto oc = n.o;
    oc.center_fhat(true);
    auto gen = at::detail::createCPUGenerator(seed);
    auto u = torch::randn({200, 2}, gen, torch::kFloat64);
    u = u / u.norm(2, 1, true);
    // The bound, at scales from far away to the goal's neighbourhood.
    for (double s : {3.0, 1e-2, 1e-5}) {
      const auto x = u * s;
      const auto e = F::snode_eval(x, n.w64, oc);
      const auto bound = 2 * e.fhat_aug.norm(2, 1) + oc.alpha() * x.norm(2, 1);
      EXPECT_LE((e.f.norm(2, 1) - bound * (1 + 1e-9)).max().item<double>(), 0.0) << s;
    }
    const auto ratio = [&](const SNodeOptions& o, double s) {
      const auto x = u * s;
      const auto y = x + h * F::snode_field(x, n.w64, o);
      return F::snode_lyapunov(y, n.w64, o) / F::snode_lyapunov(x, n.w64, o);
    };
    // Centred: the ratio converges along each ray (1e-4 → 1e-6: equal to 1e-3 relative), and the
    // certified directions are the same at both distances.
    const auto rc4 = ratio(oc, 1e-4), rc6 = ratio(oc, 1e-6);
    EXPECT_TRUE(torch::allclose(rc4, rc6, 1e-3, 0)) << (rc4 - rc6).abs().max().item<double>();
    const double c = std::exp(-kappa * oc.alpha() * h);
    EXPECT_TRUE(torch::equal(rc4 > c, rc6 > c));
    // Plain f̂: the ratio grows like 1/‖x‖² (×1e4 from 1e-4 to 1e-6 along most rays) and every
    // step that close to the goal is pulled.
    const auto rp4 = ratio(n.o, 1e-4), rp6 = ratio(n.o, 1e-6);
    EXPECT_GT((rp6 / rp4).median().item<double>(), 5e3);
    EXPECT_GE((rp6 > c).to(torch::kFloat64).mean().item<double>(), 0.95);
  }
}

TEST(SNodeDiscrete, StatesOnTheGoalStayThereInEveryBatchLayout) {
  // x = 0 is a goal row by the state itself: V(0) computed in a batch is 0 only up to the rounding
  // of g(x) − g(0) when the two rows go through different matrix-product kernels, and a trained
  // centred-f̂ skill in float32 once turned such a row into NaN when a second goal row sent it
  // through the re-evaluation. Batches of 1..70 rows, the zero rows at every position, float32,
  // plain and centred f̂: the zero rows are flagged, stay exactly 0, and nothing is non-finite.
  auto n = untrained(2, 51, 1.0);
  for (bool center : {false, true}) {
    n.o.center_fhat(center);
    const auto w = cast(n.w64, torch::kFloat32);
    for (std::int64_t B : {1, 2, 7, 33, 70}) {
      auto x = torch::randn({B, 2}) * 0.5;
      for (std::int64_t b = 0; b < B; b += 3) x[b].zero_();
      const auto step = F::snode_discrete_step(x, 0.01, w, n.o, 0.5);
      EXPECT_TRUE(torch::isfinite(step.x).all().item<bool>()) << B << " " << center;
      for (std::int64_t b = 0; b < B; b += 3) {
        EXPECT_TRUE(step.goal[b].item<bool>()) << b;
        EXPECT_TRUE(torch::equal(step.x[b], torch::zeros({2}))) << b;
      }
      F::SNodeDiscreteStats st;
      const auto traj = F::snode_discrete_rollout(x, torch::arange(50, torch::kFloat64) * 0.01, w, n.o, 0.5, {}, &st);
      EXPECT_EQ(st.nonfinite, 0) << B << " " << center;
      EXPECT_TRUE(torch::isfinite(traj).all().item<bool>());
    }
  }
}

TEST(SNodeDiscrete, CertificateViolationIsZeroExactlyWhereTheMapTakesTheEulerStep) {
  // The penalty of train.cert_weight against Φ's own decision (snode_discrete_step's `projected`):
  // per state it is 0 where Φ takes the Euler step and equals log(V(y)/(e^{−καh}V(x))) (> 0) where
  // Φ pulls, with V(y) recomputed here from the Euler step in float64; the batch value is the mean.
  const double kappa = 0.5, h = 0.2;
  for (std::uint64_t seed : {1u, 2u}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    const auto n = untrained(2, seed, 3.0);
    const auto x = test_states(n, seed + 200);
    const auto step = F::snode_discrete_step(x, h, n.w64, n.o, kappa);
    const auto vx = F::snode_lyapunov(x, n.w64, n.o);
    const auto y = x + h * F::snode_rhs(torch::zeros({}, torch::kFloat64), x, n.w64, n.o);
    const auto vy = F::snode_lyapunov(y, n.w64, n.o);
    const double c = std::exp(-kappa * n.o.alpha() * h);
    double sum = 0;
    std::int64_t counted = 0, pulled = 0;
    for (std::int64_t i = 0; i < x.size(0); ++i) {
      const double v = F::snode_certificate_violation(x.narrow(0, i, 1), h, n.w64, n.o, kappa).item<double>();
      if (vx[i].item<double>() <= 1e-8) {
        EXPECT_EQ(v, 0.0);
        continue;
      }
      if (step.goal[i].item<bool>()) continue;  // the goal rule, not a certificate decision
      ++counted;
      sum += v;
      if (step.projected[i].item<bool>()) {
        ++pulled;
        const double want = std::log(vy[i].item<double>() + 1e-12) - std::log(c * vx[i].item<double>() + 1e-12);
        EXPECT_GT(v, 0.0) << "state " << i;
        EXPECT_NEAR(v, want, 1e-9 * (1 + std::abs(want))) << "state " << i;
      } else {
        EXPECT_LE(v, 1e-9) << "state " << i;
      }
    }
    EXPECT_GT(pulled, 0);                // the test states include pulled ones ...
    EXPECT_LT(pulled, counted);          // ... and certified ones
    EXPECT_NEAR(F::snode_certificate_violation(x, h, n.w64, n.o, kappa).item<double>(), sum / counted, 1e-9);
  }
}

TEST(SNodeDiscrete, MinimisingTheCertificateViolationLowersThePulledShare) {
  // A few Adam steps on the weights of an untrained net, on the penalty of fixed states, lower the
  // penalty and the share of those states Φ pulls (the purpose of train.cert_weight).
  const double kappa = 0.5, h = 0.2;
  auto n = untrained(2, 4, 3.0);
  const auto x = test_states(n, 300);
  std::vector<torch::Tensor> w;
  for (const auto& t : n.w64) w.push_back(t.clone().requires_grad_(true));
  const auto pulled_share = [&] {
    torch::NoGradGuard no_grad;
    return F::snode_discrete_step(x, h, w, n.o, kappa).projected.to(torch::kFloat64).mean().item<double>();
  };
  const double p0 = pulled_share();
  const double v0 = F::snode_certificate_violation(x, h, w, n.o, kappa).item<double>();
  torch::optim::Adam opt(w, torch::optim::AdamOptions(1e-2));
  for (int it = 0; it < 100; ++it) {
    opt.zero_grad();
    F::snode_certificate_violation(x, h, w, n.o, kappa).backward();
    opt.step();
  }
  const double v1 = F::snode_certificate_violation(x, h, w, n.o, kappa).item<double>();
  const double p1 = pulled_share();
  EXPECT_GT(p0, 0.05);
  EXPECT_LT(v1, 0.5 * v0) << v0 << " -> " << v1;
  EXPECT_LT(p1, 0.5 * p0) << p0 << " -> " << p1;
}

TEST(SNodeDiscrete, RolloutCountsStepsAndPullsOutsideABall) {
  // The counts behind `lfd stability`'s projected_fraction_outside_ball: step by step with
  // snode_discrete_step, V(x) recomputed with snode_lyapunov, counted here by hand.
  const double kappa = 0.5, h = 0.2;
  const auto n = untrained(2, 5, 3.0);
  const auto x0 = test_states(n, 400);
  const auto t = torch::arange(15, torch::kFloat64) * h;
  const double ball = F::snode_lyapunov(x0, n.w64, n.o).median().item<double>();
  F::SNodeDiscreteStats st;
  st.ball = ball;
  F::snode_discrete_rollout(x0, t, n.w64, n.o, kappa, {}, &st);
  std::int64_t steps = 0, pulled = 0, outside = 0, pulled_outside = 0;
  auto x = x0;
  for (int k = 0; k < 14; ++k) {
    // The period of step k as the rollout forms it from the grid (t[k+1] − t[k] in double is h only
    // up to rounding, and a step at the threshold decides differently with another h).
    const double hk = t[k + 1].item<double>() - t[k].item<double>();
    const auto v = F::snode_lyapunov(x, n.w64, n.o);
    const auto s = F::snode_discrete_step(x, hk, n.w64, n.o, kappa);
    for (std::int64_t i = 0; i < x.size(0); ++i) {
      const bool out = v[i].item<double>() > ball, p = s.projected[i].item<bool>();
      ++steps;
      pulled += p;
      outside += out;
      pulled_outside += p && out;
    }
    x = s.x;
  }
  EXPECT_EQ(st.steps, steps);
  EXPECT_EQ(st.projected, pulled);
  EXPECT_EQ(st.steps_outside, outside);
  EXPECT_EQ(st.projected_outside, pulled_outside);
  EXPECT_GT(outside, 0);
  EXPECT_LT(outside, steps);
  EXPECT_GT(pulled_outside, 0);
  // Off by default: nothing counted outside.
  F::SNodeDiscreteStats off;
  F::snode_discrete_rollout(x0, t, n.w64, n.o, kappa, {}, &off);
  EXPECT_EQ(off.steps_outside, 0);
  EXPECT_EQ(off.projected_outside, 0);
}
