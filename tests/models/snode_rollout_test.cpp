// The fused Euler rollout of the sNODE (models/snode_rollout.h) against the tensor path it replaces
// (odeint(snode_rhs, Euler) differentiated by autograd, with the analytic ∇V's own second-order
// terms) and against central differences, in float64; float32 against float64.
#include <cmath>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/node_mlp.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/snode_rollout.h"

namespace {

namespace M = stablelearn::models;
namespace F = stablelearn::models::functional;

struct Case {
  M::SNodeOptions o;
  std::int64_t B, T;
};

/// Reference: the tensor path, one Euler step per grid interval.
torch::Tensor reference_rollout(const torch::Tensor& flat, const torch::Tensor& x0, const torch::Tensor& t,
                                const M::SNodeOptions& o, const torch::Tensor& cond) {
  const auto w = M::snode_layout(o).split(flat);
  return M::odeint([&](const torch::Tensor& time, const torch::Tensor& x) { return F::snode_rhs(time, x, w, o, cond); },
                   x0, t, M::OdeintOptions{}.method(M::OdeMethod::Euler));
}

/// Weights drawn so that every branch is exercised: N(0, 0.6²) everywhere, ICNN pre-activations
/// often inside (0, r) with r = 0.3, and s = g − g(0) spread over (0, δ) and beyond.
torch::Tensor random_weights(const M::SNodeOptions& o, std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({M::snode_layout(o).numel()}, torch::kFloat64) * 0.6;
}

struct Inputs {
  torch::Tensor flat, x0, t, cond, wout;
};

Inputs make_inputs(const Case& k, std::uint64_t seed) {
  Inputs in;
  in.flat = random_weights(k.o, seed);
  in.x0 = torch::randn({k.B, k.o.dim()}, torch::kFloat64);
  in.t = torch::linspace(0.1, 0.1 + 0.05 * static_cast<double>(k.T - 1), k.T, torch::kFloat64);
  in.t = in.t + torch::rand({k.T}, torch::kFloat64) * 0.01;  // uneven steps
  in.t = std::get<0>(in.t.sort());
  if (k.o.condition_dim() > 0) in.cond = torch::randn({k.o.condition_dim()}, torch::kFloat64);
  in.wout = torch::randn({k.B, k.T, k.o.dim()}, torch::kFloat64);  // loss = Σ wout ⊙ traj
  return in;
}

std::vector<Case> cases() {
  const auto base = [](std::int64_t d) {
    return M::SNodeOptions(d).hidden(12).fhat_layers(3).icnn_hidden(9).alpha(0.05).eps(1e-2).rehu(0.3).psd_rehu(1.0);
  };
  return {
      {base(2), 5, 7},                                       // LASA-like: clock appended
      {base(3).fhat_layers(1).explicit_time(false), 4, 6},   // autonomous, one hidden layer
      {base(2).condition_dim(3), 3, 5},                      // conditioned f̂ (the baselines)
      {base(2), 2, 1},                                       // a single time point: no step
  };
}

/// Fraction of rollout states where the projection is active (∇Vᵀf̂ + αV > 0); 0 unless the
/// ICNN term of V is also positive (s = g − g(0) > 0) at some active state, so that V's weights
/// matter.
double active_fraction(const Case& k, const Inputs& in, const torch::Tensor& traj) {
  const auto w = M::snode_layout(k.o).split(in.flat);
  int active = 0, total = 0, icnn = 0;
  for (std::int64_t s = 0; s + 1 < k.T; ++s) {
    auto x = traj.select(1, s);
    auto z = k.o.explicit_time() ? F::append_time(x, in.t[s]) : x;
    auto e = F::snode_eval(z, w, k.o, in.cond);
    auto viol = (e.grad_V * e.fhat_aug).sum(1) + k.o.alpha() * e.V;
    active += (viol > 0).sum().item<int>();
    icnn += ((viol > 0) & (e.V - k.o.eps() * (z * z).sum(1) > 1e-12)).sum().item<int>();
    total += static_cast<int>(k.B);
  }
  return total && icnn ? static_cast<double>(active) / total : 0.0;
}

/// Inputs whose rollout visits both sides of the projection (active on 10–90 % of the states), so
/// both branches of the backward are compared: the first of seeds base, base + 1, ... that does.
Inputs mixed_inputs(const Case& k, std::uint64_t base) {
  for (std::uint64_t seed = base; seed < base + 200; ++seed) {
    auto in = make_inputs(k, seed);
    if (k.T < 5) return in;
    const double a = active_fraction(k, in, reference_rollout(in.flat, in.x0, in.t, k.o, in.cond));
    if (a > 0.1 && a < 0.9) return in;
  }
  ADD_FAILURE() << "no seed gives a mixed projection";
  return make_inputs(k, base);
}

TEST(SNodeEulerRollout, ForwardEqualsTheTensorPathInFloat64) {
  for (const auto& k : cases()) {
    const auto in = mixed_inputs(k, 11);
    const auto fused = F::snode_euler_rollout(in.flat, in.x0, in.t, k.o, in.cond);
    const auto ref = reference_rollout(in.flat, in.x0, in.t, k.o, in.cond);
    ASSERT_EQ(fused.sizes(), ref.sizes());
    EXPECT_TRUE(torch::allclose(fused, ref, 1e-12, 1e-12)) << (fused - ref).abs().max();
  }
}

TEST(SNodeEulerRollout, GradientsEqualAutogradThroughTheTensorPath) {
  for (const auto& k : cases()) {
    auto in = mixed_inputs(k, 12);
    auto flat = in.flat.clone().requires_grad_(true), x0 = in.x0.clone().requires_grad_(true);
    std::vector<torch::Tensor> leaves{flat, x0};
    torch::Tensor cond;
    if (in.cond.defined()) {
      cond = in.cond.clone().requires_grad_(true);
      leaves.push_back(cond);
    }
    const auto gf = torch::autograd::grad({(F::snode_euler_rollout(flat, x0, in.t, k.o, cond) * in.wout).sum()}, leaves);
    const auto gr = torch::autograd::grad({(reference_rollout(flat, x0, in.t, k.o, cond) * in.wout).sum()}, leaves,
                                          {}, false, false, /*allow_unused=*/true);
    for (std::size_t i = 0; i < leaves.size(); ++i) {
      const auto ref = gr[i].defined() ? gr[i] : torch::zeros_like(leaves[i]);
      EXPECT_TRUE(torch::allclose(gf[i], ref, 1e-10, 1e-10))
          << "input " << i << " T = " << k.T << ": max |Δ| = " << (gf[i] - ref).abs().max();
    }
    if (k.T > 1) {
      // Every weight of the layout receives gradient except b2 (it cancels in g(z) − g(0)).
      const auto layout = M::snode_layout(k.o);
      const auto parts = layout.split(gf[0]);
      for (std::size_t e = 0; e < layout.size(); ++e) {
        if (layout[e].name == "V.f.bias.2")
          EXPECT_EQ(parts[e].abs().max().item<double>(), 0.0);
        else
          EXPECT_GT(parts[e].abs().max().item<double>(), 0.0) << layout[e].name << " case T = " << k.T << " d = " << k.o.dim();
      }
    }
  }
}

TEST(SNodeEulerRollout, GradientMatchesCentralDifferences) {
  // Independent of autograd: d/dε L(θ + εv, x0 + εu) against ⟨∇θL, v⟩ + ⟨∇x0 L, u⟩.
  for (const auto& k : cases()) {
    if (k.T < 2) continue;
    auto in = mixed_inputs(k, 13);
    auto flat = in.flat.clone().requires_grad_(true), x0 = in.x0.clone().requires_grad_(true);
    const auto g = torch::autograd::grad({(F::snode_euler_rollout(flat, x0, in.t, k.o, in.cond) * in.wout).sum()},
                                         {flat, x0});
    for (int rep = 0; rep < 3; ++rep) {
      const auto v = torch::randn_like(in.flat), u = torch::randn_like(in.x0);
      const double e = 1e-6;
      auto L = [&](double s) {
        return (F::snode_euler_rollout(in.flat + s * v, in.x0 + s * u, in.t, k.o, in.cond) * in.wout).sum().item<double>();
      };
      const double fd = (L(e) - L(-e)) / (2 * e);
      const double an = (g[0] * v).sum().item<double>() + (g[1] * u).sum().item<double>();
      EXPECT_NEAR(an, fd, 1e-6 * std::max(1.0, std::abs(fd))) << "T = " << k.T << " rep " << rep;
    }
  }
}

TEST(SNodeEulerRollout, Float32AgreesWithFloat64) {
  const auto k = cases()[0];
  auto in = make_inputs(k, 14);
  auto f64 = in.flat.clone().requires_grad_(true);
  auto f32 = in.flat.to(torch::kFloat32).requires_grad_(true);
  const auto y64 = F::snode_euler_rollout(f64, in.x0, in.t, k.o);
  const auto y32 = F::snode_euler_rollout(f32, in.x0.to(torch::kFloat32), in.t.to(torch::kFloat32), k.o);
  EXPECT_EQ(y32.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(y32.to(torch::kFloat64), y64, 1e-4, 1e-5)) << (y32.to(torch::kFloat64) - y64).abs().max();
  const auto g64 = torch::autograd::grad({(y64 * in.wout).sum()}, {f64})[0];
  const auto g32 = torch::autograd::grad({(y32 * in.wout.to(torch::kFloat32)).sum()}, {f32})[0];
  const double rel = ((g32.to(torch::kFloat64) - g64).norm() / g64.norm()).item<double>();
  EXPECT_LT(rel, 1e-4);
}

TEST(SNodeEulerRollout, RejectsBadInputsNamingWhatWasExpected) {
  const auto k = cases()[0];
  const auto in = make_inputs(k, 15);
  using stablelearn::ConfigError;
  using stablelearn::DataError;
  using stablelearn::ShapeError;
  EXPECT_THROW(F::snode_euler_rollout(in.flat.narrow(0, 0, 10), in.x0, in.t, k.o), ShapeError);
  EXPECT_THROW(F::snode_euler_rollout(in.flat, in.x0.narrow(1, 0, 1), in.t, k.o), ShapeError);
  EXPECT_THROW(F::snode_euler_rollout(in.flat, in.x0, in.t.flip(0), k.o), DataError);
  EXPECT_THROW(F::snode_euler_rollout(in.flat, in.x0, in.t, k.o, torch::ones({3}, torch::kFloat64)), ShapeError);
  EXPECT_THROW(F::snode_euler_rollout(in.flat, in.x0.to(torch::kFloat32), in.t, k.o), ConfigError);
  auto autograd_mode = k.o;
  autograd_mode.grad_mode(M::LyapunovGradMode::Autograd);
  EXPECT_FALSE(F::snode_euler_rollout_supported(in.flat, in.x0, autograd_mode));
  try {
    F::snode_euler_rollout(in.flat.narrow(0, 0, 10), in.x0, in.t, k.o);
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("snode_layout"), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SNodeEulerRollout, WideLayersSplitOverThreadsGiveTheSameNumbers) {
  // f̂ width 300 and ICNN width 200 with 7 samples: the products are large enough to be split into
  // column blocks over two threads (300 = 9 blocks of 32 + a partial one of 12 columns per thread
  // share). Forward and the state's adjoint use only those products: bit for bit against one
  // thread; the weights' gradients also pass through BLAS (which may round differently with
  // another thread count): close. Both against the tensor path, in float64.
  const auto o = M::SNodeOptions(2).hidden(300).fhat_layers(2).icnn_hidden(200).alpha(0.05).eps(1e-2).rehu(0.3).psd_rehu(1.0);
  const Case k{o, 7, 6};
  auto in = make_inputs(k, 5);
  in.flat = in.flat * 0.1;  // keeps the wide layers' outputs O(1)
  const int before = at::get_num_threads();
  std::vector<torch::Tensor> traj, gflat, gx0;
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    auto flat = in.flat.clone().requires_grad_(true), x0 = in.x0.clone().requires_grad_(true);
    const auto y = F::snode_euler_rollout(flat, x0, in.t, k.o, in.cond);
    const auto g = torch::autograd::grad({(y * in.wout).sum()}, {flat, x0});
    traj.push_back(y.detach());
    gflat.push_back(g[0]);
    gx0.push_back(g[1]);
  }
  at::set_num_threads(before);
  EXPECT_TRUE(torch::equal(traj[0], traj[1]));
  EXPECT_TRUE(torch::equal(gx0[0], gx0[1]));
  EXPECT_TRUE(torch::allclose(gflat[0], gflat[1], 1e-12, 1e-12));
  const auto ref = reference_rollout(in.flat, in.x0, in.t, k.o, in.cond);
  EXPECT_TRUE(torch::allclose(traj[1], ref, 1e-12, 1e-12)) << (traj[1] - ref).abs().max();
  auto flat = in.flat.clone().requires_grad_(true), x0 = in.x0.clone().requires_grad_(true);
  const auto gr = torch::autograd::grad({(reference_rollout(flat, x0, in.t, k.o, in.cond) * in.wout).sum()}, {flat, x0});
  EXPECT_TRUE(torch::allclose(gflat[1], gr[0], 1e-10, 1e-10)) << (gflat[1] - gr[0]).abs().max();
  EXPECT_TRUE(torch::allclose(gx0[1], gr[1], 1e-10, 1e-10)) << (gx0[1] - gr[1]).abs().max();
  // The trajectory moved (a product that skipped its columns would show here too).
  EXPECT_GT((traj[1].select(1, k.T - 1) - traj[1].select(1, 0)).abs().max().item<double>(), 1e-3);
}
