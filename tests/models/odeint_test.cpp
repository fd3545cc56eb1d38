// ODE solvers (spec §2.1) against closed-form solutions and hand-derived step formulas.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/odeint.h"
#include "stablelearn/testing/gradcheck.h"

namespace {

namespace M = stablelearn::models;
using M::OdeMethod;
using M::OdeintOptions;

torch::Tensor grid(double t0, double t1, int steps) {
  return torch::linspace(t0, t1, steps + 1, torch::kFloat64);
}

M::OdeFunc decay(double a) {
  return [a](const torch::Tensor&, const torch::Tensor& y) { return a * y; };
}

double max_err_decay(OdeMethod m, int steps, double T = 2.0) {
  auto y0 = torch::tensor({{1.0}, {-2.5}}, torch::kFloat64);
  auto t = grid(0, T, steps);
  auto y = M::odeint(decay(-1.0), y0, t, OdeintOptions().method(m));
  auto exact = y0.unsqueeze(1) * torch::exp(-t).reshape({1, -1, 1});
  return (y - exact).abs().max().item<double>();
}

TEST(Odeint, EulerReproducesTheSpecGridSemantics) {
  // y_{k+1} = y_k + (t_{k+1} − t_k) f(t_k, y_k) on a non-uniform grid, output at t_k is y_k.
  auto t = torch::tensor({0.0, 0.5, 1.5, 1.75}, torch::kFloat64);
  std::vector<double> seen;
  M::OdeFunc f = [&](const torch::Tensor& tt, const torch::Tensor& y) {
    EXPECT_EQ(tt.dim(), 0);
    seen.push_back(tt.item<double>());
    return torch::ones_like(y) * tt + 0.5 * y;  // ẏ = t + y/2
  };
  auto y0 = torch::tensor({{2.0, -1.0}}, torch::kFloat64);
  M::OdeintStats stats;
  auto y = M::odeint(f, y0, t, OdeintOptions(), &stats);
  ASSERT_EQ(y.sizes(), torch::IntArrayRef({1, 4, 2}));
  EXPECT_EQ(seen, (std::vector<double>{0.0, 0.5, 1.5}));  // 3 steps, f at t_0 .. t_{T−2}
  EXPECT_EQ(stats.function_evaluations, 3);
  // Hand recursion for the first component: 2 -> 2 + 0.5(0 + 1) = 2.5
  //   -> 2.5 + 1.0(0.5 + 1.25) = 4.25 -> 4.25 + 0.25(1.5 + 2.125) = 5.15625.
  EXPECT_DOUBLE_EQ(y[0][0][0].item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(y[0][1][0].item<double>(), 2.5);
  EXPECT_DOUBLE_EQ(y[0][2][0].item<double>(), 4.25);
  EXPECT_DOUBLE_EQ(y[0][3][0].item<double>(), 5.15625);
  // Second component: -1 -> -1 + 0.5(0 − 0.5) = -1.25 -> -1.25 + (0.5 − 0.625) = -1.375
  //   -> -1.375 + 0.25(1.5 − 0.6875) = -1.171875.
  EXPECT_DOUBLE_EQ(y[0][3][1].item<double>(), -1.171875);
  // A 20-sample window is 19 Euler steps.
  M::odeint(decay(-1.0), y0, grid(0, 1, 19), OdeintOptions(), &stats);
  EXPECT_EQ(stats.function_evaluations, 19);
  // T = 1: only the start.
  auto y1 = M::odeint(decay(-1.0), y0, torch::tensor({3.0}, torch::kFloat64));
  EXPECT_TRUE(torch::equal(y1, y0.unsqueeze(1)));
}

TEST(Odeint, EulerIsFirstOrderAndRk4FourthOrder) {
  // ẏ = −y, y = y0 e^{−t}. Halving h halves the Euler error and divides the RK4 error by 16.
  const double e1 = max_err_decay(OdeMethod::Euler, 40), e2 = max_err_decay(OdeMethod::Euler, 80);
  EXPECT_NEAR(e1 / e2, 2.0, 0.05);
  const double r1 = max_err_decay(OdeMethod::Rk4, 10), r2 = max_err_decay(OdeMethod::Rk4, 20),
               r3 = max_err_decay(OdeMethod::Rk4, 40);
  EXPECT_NEAR(std::log2(r1 / r2), 4.0, 0.15);
  EXPECT_NEAR(std::log2(r2 / r3), 4.0, 0.1);
  EXPECT_LT(r3, 1e-7);
  M::OdeintStats stats;
  M::odeint(decay(-1.0), torch::ones({1, 1}, torch::kFloat64), grid(0, 1, 10),
            OdeintOptions().method(OdeMethod::Rk4), &stats);
  EXPECT_EQ(stats.function_evaluations, 40);
}

TEST(Odeint, Rk4StepMatchesTheThreeEighthsRule) {
  // One step of ẏ = t² y from t = 1 with h = 0.5, evaluated by hand (Kutta's 3/8 rule).
  M::OdeFunc f = [](const torch::Tensor& t, const torch::Tensor& y) { return t * t * y; };
  const double h = 0.5, t0 = 1.0, y0 = 1.0;
  auto fs = [](double t, double y) { return t * t * y; };
  const double k1 = fs(t0, y0);
  const double k2 = fs(t0 + h / 3, y0 + h * k1 / 3);
  const double k3 = fs(t0 + 2 * h / 3, y0 + h * (k2 - k1 / 3));
  const double k4 = fs(t0 + h, y0 + h * (k1 - k2 + k3));
  const double expected = y0 + h * (k1 + 3 * k2 + 3 * k3 + k4) / 8;
  auto y = M::odeint(f, torch::ones({1, 1}, torch::kFloat64), torch::tensor({1.0, 1.5}, torch::kFloat64),
                     OdeintOptions().method(OdeMethod::Rk4));
  EXPECT_NEAR(y[0][1][0].item<double>(), expected, 1e-15);
}

// ẏ = A y with A = [[−0.5, 2], [−2, −0.5]]: y(t) = e^{−t/2} R(2t) y0, R(θ) = [[cos, sin], [−sin, cos]].
torch::Tensor spiral_exact(const torch::Tensor& y0, const torch::Tensor& t) {
  auto c = torch::cos(2 * t), s = torch::sin(2 * t), e = torch::exp(-0.5 * t);
  auto a = y0.select(1, 0).unsqueeze(1), b = y0.select(1, 1).unsqueeze(1);  // [B, 1]
  auto y1 = e * (c * a + s * b);
  auto y2 = e * (-s * a + c * b);
  return torch::stack({y1, y2}, 2);  // [B, T, 2]
}

TEST(Odeint, AllMethodsSolveALinearSystem) {
  auto A = torch::tensor({{-0.5, 2.0}, {-2.0, -0.5}}, torch::kFloat64);
  M::OdeFunc f = [A](const torch::Tensor&, const torch::Tensor& y) { return y.mm(A.t()); };
  auto y0 = torch::tensor({{1.0, 0.0}, {0.3, -2.0}, {-1.5, 0.7}}, torch::kFloat64);
  auto t = grid(0, 3, 300);
  auto exact = spiral_exact(y0, t);
  auto err = [&](OdeMethod m) {
    return (M::odeint(f, y0, t, OdeintOptions().method(m)) - exact).abs().max().item<double>();
  };
  EXPECT_LT(err(OdeMethod::Euler), 0.05);
  EXPECT_GT(err(OdeMethod::Euler), 1e-3);
  EXPECT_LT(err(OdeMethod::Rk4), 1e-8);
  EXPECT_LT(err(OdeMethod::Dopri5), 1e-5);
}

TEST(Odeint, Dopri5MeetsItsToleranceAtArbitraryOutputTimes) {
  auto A = torch::tensor({{-0.5, 2.0}, {-2.0, -0.5}}, torch::kFloat64);
  M::OdeFunc f = [A](const torch::Tensor&, const torch::Tensor& y) { return y.mm(A.t()); };
  auto y0 = torch::tensor({{1.0, 0.0}, {0.3, -2.0}}, torch::kFloat64);
  // Irregular requested times, far apart and close together: the interpolant serves them.
  auto t = torch::tensor({0.0, 0.01, 0.37, 0.38, 1.2, 2.9, 3.0, 5.5}, torch::kFloat64);
  auto exact = spiral_exact(y0, t);
  double prev = 1.0;
  for (double rtol : {1e-4, 1e-6, 1e-8, 1e-10}) {
    M::OdeintStats stats;
    auto y = M::odeint(f, y0, t, OdeintOptions().method(OdeMethod::Dopri5).rtol(rtol).atol(rtol / 10),
                       &stats);
    const double e = (y - exact).abs().max().item<double>();
    // Global error of the order of the tolerance, shrinking with it.
    EXPECT_LT(e, 50 * rtol) << "rtol " << rtol;
    EXPECT_LT(e, prev);
    prev = e;
    // Fewer steps than output intervals at loose tolerance: it steps over requested times.
    if (rtol == 1e-4) {
      EXPECT_LT(stats.accepted_steps, 30) << stats.accepted_steps;
    }
    EXPECT_EQ(stats.function_evaluations, 2 + 6 * (stats.accepted_steps + stats.rejected_steps))
        << "FSAL: 6 new stages per attempt + f(t0) + one for the initial step";
  }
  // The default tolerances are the reference's rtol 1e-6, atol 1e-7.
  OdeintOptions o;
  EXPECT_EQ(o.rtol(), 1e-6);
  EXPECT_EQ(o.atol(), 1e-7);
  EXPECT_EQ(o.method(), OdeMethod::Euler);
}

TEST(Odeint, Dopri5HandlesStiffishDecayAndLimits) {
  auto y0 = torch::ones({1, 1}, torch::kFloat64);
  auto t = torch::tensor({0.0, 1.0}, torch::kFloat64);
  auto y = M::odeint(decay(-20.0), y0, t, OdeintOptions().method(OdeMethod::Dopri5));
  EXPECT_NEAR(y[0][1][0].item<double>(), std::exp(-20.0), 1e-7);
  EXPECT_THROW(M::odeint(decay(-20.0), y0, t, OdeintOptions().method(OdeMethod::Dopri5).max_steps(3)),
               stablelearn::DataError);
}

TEST(Odeint, GradientThroughEulerMatchesTheHandDerivative) {
  // ẏ = a y with N Euler steps of size h: y_N = y0 (1 + a h)^N,
  // ∂y_N/∂a = N h y0 (1 + a h)^{N−1},  ∂y_N/∂y0 = (1 + a h)^N.
  const int N = 19;
  const double h = 0.05, av = -0.7, y0v = 1.3;
  auto a = torch::tensor(av, torch::kFloat64).requires_grad_(true);
  auto y0 = torch::full({1, 1}, y0v, torch::kFloat64).requires_grad_(true);
  M::OdeFunc f = [&a](const torch::Tensor&, const torch::Tensor& y) { return a * y; };
  auto y = M::odeint(f, y0, grid(0, N * h, N));
  auto g = torch::autograd::grad({y[0][N][0]}, {a, y0});
  EXPECT_NEAR(g[0].item<double>(), N * h * y0v * std::pow(1 + av * h, N - 1), 1e-13);
  EXPECT_NEAR(g[1].item<double>(), std::pow(1 + av * h, N), 1e-13);
}

TEST(Odeint, GradcheckThroughEverySolver) {
  for (auto m : {OdeMethod::Euler, OdeMethod::Rk4, OdeMethod::Dopri5}) {
    auto W = (torch::randn({2, 2}, torch::kFloat64) * 0.5).requires_grad_(true);
    auto y0 = torch::randn({2, 2}, torch::kFloat64).requires_grad_(true);
    auto t = torch::tensor({0.1, 0.3, 0.45, 0.9}, torch::kFloat64);
    auto fn = [&](const std::vector<torch::Tensor>& in) {
      const auto& Wm = in[1];
      M::OdeFunc f = [&Wm](const torch::Tensor& tt, const torch::Tensor& y) {
        return torch::tanh(y.mm(Wm.t())) * (1.0 + tt);
      };
      return M::odeint(f, in[0], t, OdeintOptions().method(m).rtol(1e-12).atol(1e-12));
    };
    // dopri5's step choices are discrete functions of the state (and shared by the batch through
    // the RMS error norm): a perturbation may change them, moving the output by O(tol), i.e. the
    // difference quotient by O(tol / eps) = 5e-7 here. atol 1e-5 leaves room for that.
    auto r = stablelearn::testing::gradcheck(fn, {y0, W}, 1e-6, 1e-5, 1e-4);
    EXPECT_TRUE(r.ok) << M::ode_method_name(m) << ": " << r;
  }
}

TEST(Odeint, InputValidation) {
  auto y0 = torch::ones({2, 3}, torch::kFloat64);
  EXPECT_THROW(M::odeint(decay(-1), y0, torch::tensor({0.0, 0.0}, torch::kFloat64)), stablelearn::DataError);
  EXPECT_THROW(M::odeint(decay(-1), y0, torch::tensor({1.0, 0.5}, torch::kFloat64)), stablelearn::DataError);
  EXPECT_THROW(M::odeint(decay(-1), y0, torch::zeros({0}, torch::kFloat64)), stablelearn::ShapeError);
  EXPECT_THROW(M::odeint(decay(-1), y0, torch::zeros({2, 2}, torch::kFloat64)), stablelearn::ShapeError);
  M::OdeFunc bad = [](const torch::Tensor&, const torch::Tensor& y) { return y.sum(1); };
  EXPECT_THROW(M::odeint(bad, y0, torch::tensor({0.0, 1.0}, torch::kFloat64)), stablelearn::ShapeError);
  EXPECT_EQ(M::parse_ode_method("DoPri5"), OdeMethod::Dopri5);
  EXPECT_EQ(M::parse_ode_method("euler"), OdeMethod::Euler);
  EXPECT_THROW(M::parse_ode_method("adams"), stablelearn::ConfigError);
  // Float32 states integrate in float32; t is cast.
  auto y = M::odeint(decay(-1), torch::ones({1, 1}), torch::tensor({0.0, 0.5}, torch::kFloat64));
  EXPECT_EQ(y.scalar_type(), torch::kFloat32);
}

}  // namespace

namespace {

// ẋ = −λx with V = ‖x‖²: ∇Vᵀf = −2λ‖x‖², so α = 2λ exactly.
M::LyapunovFn squared_norm() {
  return [](const torch::Tensor& x) { return x.pow(2).sum(1); };
}

}  // namespace

TEST(CertifiedEuler, EqualsPlainEulerWhereEveryStepIsCertified) {
  // λ = 1, h = 0.1: one Euler step scales V by (1 − h)² = 0.81 <= e^{−κ·2λ·h} = e^{−0.1} ≈ 0.905,
  // so no step is rejected and the result is x0 (0.9)^k.
  const auto y0 = torch::tensor({{1.0, -2.0}, {0.5, 3.0}}, torch::kFloat64);
  const auto t = grid(0, 2, 20);
  M::CertifiedEulerStats st;
  const auto y = M::certified_euler(decay(-1.0), squared_norm(), y0, t, M::CertifiedEulerOptions{}.alpha(2.0), &st);
  ASSERT_EQ(y.sizes(), (std::vector<std::int64_t>{2, 21, 2}));
  for (int k = 0; k <= 20; ++k)
    EXPECT_TRUE(torch::allclose(y.select(1, k), y0 * std::pow(0.9, k), 1e-12, 1e-12)) << k;
  EXPECT_EQ(st.rejections, 0);
  EXPECT_EQ(st.uncertified, 0);
  EXPECT_EQ(st.substeps, 2 * 20);
}

TEST(CertifiedEuler, ConvergesWherePlainEulerDivergesAndKeepsTheDiscreteBound) {
  // λ = 100, h = 0.1: plain Euler multiplies x by 1 − hλ = −9 per step and diverges. The
  // certified solver halves to s = h/8 = 0.0125 (factor (1 − 1.25)² = 0.0625 <= e^{−κ·200·s}
  // = e^{−1.25} ≈ 0.287; s = h/4 gives 2.25, rejected) and must satisfy
  // V(x_k) <= V(x_0) e^{−κα t_k} at every grid time.
  const double lambda = 100, kappa = 0.5, alpha = 2 * lambda;
  const auto y0 = torch::tensor({{1.0, -2.0}, {0.5, 3.0}, {-4.0, 0.25}}, torch::kFloat64);
  const auto t = grid(0, 1, 10);
  const auto plain = M::odeint(decay(-lambda), y0, t);
  EXPECT_GT(plain.select(1, 10).abs().max().item<double>(), 1e8);
  M::CertifiedEulerStats st;
  const auto y = M::certified_euler(decay(-lambda), squared_norm(), y0, t,
                                    M::CertifiedEulerOptions{}.alpha(alpha).kappa(kappa), &st);
  const auto V0 = y0.pow(2).sum(1);
  for (int k = 0; k <= 10; ++k) {
    const double tk = t[k].item<double>();
    const auto Vk = y.select(1, k).pow(2).sum(1);
    EXPECT_TRUE((Vk <= V0 * std::exp(-kappa * alpha * tk) * (1 + 1e-12)).all().item<bool>()) << k;
  }
  EXPECT_GT(st.rejections, 0);
  EXPECT_EQ(st.uncertified, 0);
  EXPECT_LT(y.select(1, 10).abs().max().item<double>(), 1e-20);
}

TEST(CertifiedEuler, SubStepsAreTheLargestCertifiedHalvings) {
  // λ = 100 on one interval h = 0.1: trials 0.1 (factor (1 − 10)² = 81), 0.05 (16) and 0.025
  // (2.25) are rejected, 0.0125 (0.0625 <= e^{−1.25}) accepted; the preferred step then doubles to
  // 0.025 (rejected) and falls back to 0.0125, except for the last sub-step, which is clamped to
  // the remaining 0.0125: 8 accepted and 3 + 6 rejected trials.
  const auto y0 = torch::tensor({{2.0}}, torch::kFloat64);
  M::CertifiedEulerStats st;
  const auto y = M::certified_euler(decay(-100.0), squared_norm(), y0, torch::tensor({0.0, 0.1}, torch::kFloat64),
                                    M::CertifiedEulerOptions{}.alpha(200.0), &st);
  EXPECT_EQ(st.substeps, 8);
  EXPECT_EQ(st.rejections, 9);
  EXPECT_NEAR(y[0][1][0].item<double>(), 2.0 * std::pow(1 - 1.25, 8), 1e-12);
  // A grid step of 0.0125 is certified at once: one step, x = 2 (1 − 1.25).
  const auto y1 = M::certified_euler(decay(-100.0), squared_norm(), y0, torch::tensor({0.0, 0.0125}, torch::kFloat64),
                                     M::CertifiedEulerOptions{}.alpha(200.0));
  EXPECT_NEAR(y1[0][1][0].item<double>(), 2.0 * (1 - 1.25), 1e-12);
}

TEST(CertifiedEuler, CountsUncertifiedStepsAndValidatesItsInput) {
  const auto y0 = torch::tensor({{1.0}}, torch::kFloat64);
  const auto t = grid(0, 0.3, 3);
  M::CertifiedEulerStats st;
  M::certified_euler(decay(-100.0), squared_norm(), y0, t,
                     M::CertifiedEulerOptions{}.alpha(200.0).max_halvings(1).project(false), &st);
  // h = 0.1 ✗, 0.05 ✗ (one halving allowed) -> taken uncertified (factor (1 − 5)² = 16).
  EXPECT_GT(st.uncertified, 0);
  EXPECT_EQ(st.projections, 0);
  EXPECT_THROW(M::certified_euler(decay(-1.0), squared_norm(), y0, t, M::CertifiedEulerOptions{}), stablelearn::ConfigError);
  EXPECT_THROW(M::certified_euler(decay(-1.0), squared_norm(), y0, t, M::CertifiedEulerOptions{}.alpha(1).kappa(1.0)),
               stablelearn::ConfigError);
  EXPECT_THROW(M::certified_euler(decay(-1.0), squared_norm(), torch::ones({3}, torch::kFloat64), t,
                                  M::CertifiedEulerOptions{}.alpha(1)),
               stablelearn::ShapeError);
  EXPECT_THROW(M::certified_euler(decay(-1.0), squared_norm(), y0, torch::tensor({0.0, 0.0}, torch::kFloat64),
                                  M::CertifiedEulerOptions{}.alpha(1)),
               stablelearn::DataError);
}

TEST(CertifiedEuler, AtTheGoalAFieldOfZeroOverZeroPutsTheSampleOnTheGoalNotNaN) {
  // The sNODE's projected field is 0/0 at the goal and NaN within V ≈ 1e-300 of it (‖∇V‖²
  // underflows). Model that: f = −x, but NaN where V = ‖x‖² < 1e-250 or where x₀ > 1.5.
  const M::OdeFunc f = [](const torch::Tensor&, const torch::Tensor& y) {
    const auto v = (y * y).sum(1, true);
    const auto bad = (v < 1e-250) | (y.narrow(1, 0, 1) > 1.5);
    return torch::where(bad, torch::full_like(y, std::nan("")), -y);
  };
  // Rows: tiny (V = 1e-260: NaN field), ordinary (certified Euler), far with a NaN field (V = 4).
  const auto y0 = torch::tensor({{1e-130, 0.0}, {1.0, 0.0}, {2.0, 0.0}}, torch::kFloat64);
  const auto t = grid(0, 0.3, 3);
  M::CertifiedEulerStats st;
  const auto y = M::certified_euler(f, squared_norm(), y0, t, M::CertifiedEulerOptions{}.alpha(1.0), &st);
  // The tiny sample is put exactly on the goal and stays there (V(0) = 0 certifies every step).
  for (std::int64_t k = 1; k < 4; ++k) {
    EXPECT_EQ(y[0][k][0].item<double>(), 0.0) << k;
    EXPECT_EQ(y[0][k][1].item<double>(), 0.0) << k;
  }
  // The ordinary one takes certified Euler steps x -> 0.9 x (h = 0.1: 0.81 ≤ e^{−0.05}).
  EXPECT_NEAR(y[1][3][0].item<double>(), std::pow(0.9, 3), 1e-12);
  // A non-finite field far from the goal is not hidden: that sample becomes NaN and is counted.
  EXPECT_TRUE(std::isnan(y[2][1][0].item<double>()));
  EXPECT_GT(st.uncertified, 0);
}

TEST(CertifiedEuler, ProjectionLandsOnTheCertifiedLevelSetInClosedForm) {
  // λ = 100, h = 0.1, no halvings: the Euler candidate is −9 x0 with V = 81 V(x0) > c =
  // V(x0) e^{−κα h} = V(x0) e^{−10}; the radial projection solves μ² 81 V(x0) = c, μ = e^{−5}/9,
  // so the step lands at −x0 e^{−5} with V exactly c.
  const auto y0 = torch::tensor({{1.0, -2.0}, {0.5, 3.0}}, torch::kFloat64);
  M::CertifiedEulerStats st;
  const auto y = M::certified_euler(decay(-100.0), squared_norm(), y0, torch::tensor({0.0, 0.1}, torch::kFloat64),
                                    M::CertifiedEulerOptions{}.alpha(200.0).max_halvings(0), &st);
  EXPECT_TRUE(torch::allclose(y.select(1, 1), -y0 * std::exp(-5.0), 1e-9, 0)) << y.select(1, 1);
  EXPECT_EQ(st.projections, 2);
  EXPECT_EQ(st.uncertified, 0);
  // The projected point never exceeds the certified level.
  EXPECT_TRUE((y.select(1, 1).pow(2).sum(1) <= y0.pow(2).sum(1) * std::exp(-10.0)).all().item<bool>());
  // A non-finite field is not projected to the goal: it stays non-finite and counts as uncertified.
  const M::OdeFunc nan_field = [](const torch::Tensor&, const torch::Tensor& x) { return x * NAN; };
  M::CertifiedEulerStats st2;
  const auto yn = M::certified_euler(nan_field, squared_norm(), y0, torch::tensor({0.0, 0.1}, torch::kFloat64),
                                     M::CertifiedEulerOptions{}.alpha(200.0).max_halvings(0), &st2);
  EXPECT_TRUE(torch::isnan(yn.select(1, 1)).all().item<bool>());
  EXPECT_EQ(st2.uncertified, 2);
  EXPECT_EQ(st2.projections, 0);
}
