// Generalisation dynamics (theory/generalization_dynamics.h) against closed forms and independent
// computations:
// * the Marchenko–Pastur law: its mass (min(1, α) continuous + max(0, 1 − α) at zero), its moments
//   E λ = 1, E λ² = 1 + 1/α, E λ³ = 1 + 3/α + 1/α² and, for α > 1, E 1/λ = α/(α − 1) (ratio γ = 1/α:
//   E λ^k = Σ_j N(k, j) γ^{j−1} with the Narayana numbers; E λ⁻¹ = 1/(1 − γ)); a density value by hand;
// * the exact flow against the matrix exponential of the augmented system d/dt [a; 1] = [[−A, g],
//   [0, 0]] [a; 1] (A = ΦᵀΦ/P, g = Φᵀy/P), against explicit Euler with tiny steps, and its limit
//   against the pseudo-inverse;
// * E_g(∞) of sampled data sets against the exact finite-N expectation (Wishart E[W⁻¹] = I/(n − p − 1))
//   and the MP closed forms, the MP curve against simulated E_g(t) at N = 400, the MP integral at
//   large t against the closed-form asymptote, the frozen subspace's offset;
// * the optimal stopping time against a brute-force grid; ReLU features by hand; bad input.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/theory/generalization_dynamics.h"
#include "testing.h"

namespace sl = stablelearn;
namespace th = stablelearn::theory;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

th::TeacherStudentOptions problem(std::int64_t n, double load, double snr, double init_std = 0) {
  th::TeacherStudentOptions o;
  o.inputs = n;
  o.load = load;
  o.teacher_std = 1;
  o.noise_std = std::sqrt(1 / snr);
  o.init_std = init_std;
  return o;
}

struct Stats {
  double mean = 0, se = 0;
};
Stats stats(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()))};
}

}  // namespace

TEST(GeneralizationDynamics, MarchenkoPasturMassAndMomentsMatchClosedForms) {
  for (double a : {0.25, 0.5, 0.9, 1.0, 1.1, 2.0, 4.0}) {
    const double g = 1 / a;
    EXPECT_NEAR(th::mp_integral(a, [](double) { return 1.0; }) + th::mp_zero_mass(a), 1.0, 1e-10) << a;
    EXPECT_NEAR(th::mp_integral(a, [](double) { return 1.0; }), std::min(1.0, a), 1e-10) << a;
    EXPECT_NEAR(th::mp_integral(a, [](double l) { return l; }), 1.0, 1e-10) << a;
    EXPECT_NEAR(th::mp_integral(a, [](double l) { return l * l; }), 1 + g, 1e-10) << a;
    EXPECT_NEAR(th::mp_integral(a, [](double l) { return l * l * l; }), 1 + 3 * g + g * g, 1e-10) << a;
    if (a > 1) {
      EXPECT_NEAR(th::mp_integral(a, [](double l) { return 1 / l; }), a / (a - 1), 1e-8) << a;
    }
  }
  // α = 4: λ± = (1 ± 1/2)² = 0.25, 2.25; ρ(1) = 4 √(1.25 · 0.75) / (2π).
  const auto [lo, hi] = th::mp_support(4.0);
  EXPECT_DOUBLE_EQ(lo, 0.25);
  EXPECT_DOUBLE_EQ(hi, 2.25);
  EXPECT_NEAR(th::mp_density(1.0, 4.0), 4 * std::sqrt(1.25 * 0.75) / (2 * M_PI), 1e-14);
  EXPECT_EQ(th::mp_density(0.2, 4.0), 0.0);
  EXPECT_EQ(th::mp_density(2.3, 4.0), 0.0);
  EXPECT_EQ(th::mp_zero_mass(0.25), 0.75);
  EXPECT_EQ(th::mp_zero_mass(2.0), 0.0);
}

TEST(GeneralizationDynamics, SampleCovarianceSpectrumHasTheMarchenkoPasturMoments) {
  // N = 400, P = 800: the empirical (1/N) Σ λ^k of one draw is within O(1/N) of the MP moments.
  auto gen = at::detail::createCPUGenerator(3);
  const auto x = torch::randn({800, 400}, gen, kF64);
  const auto ev = torch::linalg_eigvalsh(x.t().mm(x) / 800.0);
  for (int k = 1; k <= 3; ++k) {
    const double emp = ev.pow(k).mean().item<double>();
    const double mp = th::mp_integral(2.0, [k](double l) { return std::pow(l, k); });
    EXPECT_NEAR(emp, mp, 0.03 * mp) << k;
  }
}

TEST(GeneralizationDynamics, FlowMatchesTheAugmentedMatrixExponential) {
  auto gen = at::detail::createCPUGenerator(11);
  for (std::int64_t d : {3, 7}) {  // over- and under-determined (a null space when D = 7 > P = 5)
    const auto phi = torch::randn({5, d}, gen, kF64), y = torch::randn({5}, gen, kF64), a0 = torch::randn({d}, gen, kF64);
    const auto flow = th::least_squares_flow(phi, y, a0);
    const auto a = flow.at({0.0, 0.3, 2.0, 10.0});
    auto m = torch::zeros({d + 1, d + 1}, kF64);
    m.slice(0, 0, d).slice(1, 0, d).copy_(-phi.t().mm(phi) / 5.0);
    m.slice(0, 0, d).select(1, d).copy_(phi.t().mv(y) / 5.0);
    const auto z0 = torch::cat({a0, torch::ones({1}, kF64)});
    const std::vector<double> ts = {0.0, 0.3, 2.0, 10.0};
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const auto ref = torch::linalg_matrix_exp(m * ts[i]).mv(z0).slice(0, 0, d);
      EXPECT_LT((a.select(1, static_cast<std::int64_t>(i)) - ref).abs().max().item<double>(), 1e-10) << d << " t=" << ts[i];
    }
  }
}

TEST(GeneralizationDynamics, FlowMatchesExplicitEulerWithTinySteps) {
  auto gen = at::detail::createCPUGenerator(12);
  const auto phi = torch::randn({6, 4}, gen, kF64), y = torch::randn({6}, gen, kF64), a0 = torch::randn({4}, gen, kF64);
  auto a = a0.clone();
  const double dt = 1e-5;
  for (int k = 0; k < 100000; ++k) a -= dt * phi.t().mv(phi.mv(a) - y) / 6.0;  // t = 1
  const auto exact = th::least_squares_flow(phi, y, a0).at({1.0}).select(1, 0);
  // Euler's global error is O(dt · ‖A‖ · ‖a‖) ≈ 1e-5 here.
  EXPECT_LT((a - exact).abs().max().item<double>(), 1e-4);
}

TEST(GeneralizationDynamics, FlowConvergesToThePseudoInverseSolutionPlusTheFrozenInit) {
  auto gen = at::detail::createCPUGenerator(13);
  const auto phi = torch::randn({4, 9}, gen, kF64), y = torch::randn({4}, gen, kF64), a0 = torch::randn({9}, gen, kF64);
  const auto pinv = torch::linalg_pinv(phi);
  const auto ref = pinv.mv(y) + (torch::eye(9, kF64) - pinv.mm(phi)).mv(a0);
  const auto a = th::least_squares_flow(phi, y, a0).at({std::numeric_limits<double>::infinity()}).select(1, 0);
  EXPECT_LT((a - ref).abs().max().item<double>(), 1e-10);
  // The rates are the nonzero eigenvalues of ΦᵀΦ/P.
  const auto flow = th::least_squares_flow(phi, y, a0);
  const auto ev = torch::linalg_eigvalsh(phi.mm(phi.t()) / 4.0);
  EXPECT_LT((std::get<0>(flow.rates.sort()) - ev).abs().max().item<double>(), 1e-10);
}

TEST(GeneralizationDynamics, AsymptoticErrorOfSampledDataMatchesTheExactFiniteSizeExpectation) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double a : {0.5, 2.0}) {
    const auto o = problem(100, a, 2.0);
    auto gen = at::detail::createCPUGenerator(21);
    std::vector<double> eg;
    for (int k = 0; k < 200; ++k) eg.push_back(th::teacher_student_errors(th::sample_teacher_student(o, gen), o, {inf}).test[0]);
    const auto s = stats(eg);
    const double exact = th::finite_size_asymptotic_error(o);
    // Hand values: α = 2: σ² (1 + N/(P − N − 1)) = 0.5 (1 + 100/99); α = 0.5: σ² + (1 − α) σ_w̄² + σ² P/(N − P − 1).
    EXPECT_NEAR(exact, a > 1 ? 0.5 * (1 + 100.0 / 99) : 0.5 + 0.5 + 0.5 * 50 / 49.0, 1e-12);
    EXPECT_NEAR(s.mean, exact, 4 * s.se) << a;
  }
}

TEST(GeneralizationDynamics, ClosedFormAsymptotesMatchALargeNMonteCarloAndTheIntegral) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double a : {0.5, 2.0}) {
    const auto o = problem(400, a, 2.0);
    // The closed forms: 0.5/(α − 1) + 0.5 and (1 − α) + 0.5 α/(1 − α) + 0.5.
    const double closed = a > 1 ? 0.5 + 0.5 / (a - 1) : 0.5 + (1 - a) + 0.5 * a / (1 - a);
    EXPECT_NEAR(th::asymptotic_error(o), closed, 1e-12);
    EXPECT_NEAR(th::mp_generalization_error(o, {1e9})[0], closed, 1e-8) << a;
    auto gen = at::detail::createCPUGenerator(22);
    std::vector<double> eg;
    for (int k = 0; k < 20; ++k) eg.push_back(th::teacher_student_errors(th::sample_teacher_student(o, gen), o, {inf}).test[0]);
    const auto s = stats(eg);
    // Finite-size bias: 400/399 (α = 2), 200/199 (α = 0.5) on the noise term, under 0.3 %.
    EXPECT_NEAR(s.mean, closed, 4 * s.se + 0.005 * closed) << a;
  }
  EXPECT_TRUE(std::isinf(th::asymptotic_error(problem(100, 1.0, 2.0))));
  EXPECT_EQ(th::asymptotic_error(problem(100, 1.0, std::numeric_limits<double>::infinity())), 0.0);  // no noise
}

TEST(GeneralizationDynamics, MarchenkoPasturCurveMatchesSimulatedDynamics) {
  const std::vector<double> ts = {0.0, 0.5, 2.0, 10.0, 50.0};
  for (double a : {0.5, 2.0}) {
    const auto o = problem(400, a, 2.0, 0.5);
    const auto theory = th::mp_generalization_error(o, ts);
    // t = 0: every mode holds σ_w0² + σ_w̄² = 1.25, plus σ² = 0.5.
    EXPECT_NEAR(theory[0], 1.75, 1e-10);
    auto gen = at::detail::createCPUGenerator(23);
    std::vector<std::vector<double>> sims(ts.size());
    for (int k = 0; k < 10; ++k) {
      const auto c = th::teacher_student_errors(th::sample_teacher_student(o, gen), o, ts);
      for (std::size_t i = 0; i < ts.size(); ++i) sims[i].push_back(c.test[i]);
    }
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const auto s = stats(sims[i]);
      EXPECT_NEAR(s.mean, theory[i], 4 * s.se + 0.01 * theory[i]) << a << " t=" << ts[i];
    }
  }
}

TEST(GeneralizationDynamics, FrozenSubspaceKeepsTheInitialWeightsVariance) {
  // α = 0.5: E_g(∞; σ_w0) − E_g(∞; 0) = ‖(I − Π)w0‖²/N − 2 w0·(I − Π)w̄/N, expectation (1 − α)σ_w0² =
  // (N − P)/N σ_w0² exactly at finite N; the same holds for the MP closed form and integral.
  const double inf = std::numeric_limits<double>::infinity();
  const auto o = problem(200, 0.5, 2.0, 2.0);
  auto o0 = o;
  o0.init_std = 0;
  EXPECT_NEAR(th::asymptotic_error(o) - th::asymptotic_error(o0), 0.5 * 4, 1e-12);
  EXPECT_NEAR(th::mp_generalization_error(o, {1e9})[0] - th::mp_generalization_error(o0, {1e9})[0], 2.0, 1e-8);
  auto gen = at::detail::createCPUGenerator(24);
  std::vector<double> diff;
  for (int k = 0; k < 40; ++k) {
    const auto d = th::sample_teacher_student(o, gen);
    diff.push_back(th::teacher_student_errors(d, o, {inf}).test[0] -
                   th::teacher_student_errors(d, o, {inf}, torch::zeros({200}, kF64)).test[0]);
  }
  const auto s = stats(diff);
  EXPECT_NEAR(s.mean, 2.0, 4 * s.se);
  // At α = 2 nothing is frozen: the limit does not depend on the initialisation.
  const auto o2 = problem(100, 2.0, 2.0, 2.0);
  const auto d2 = th::sample_teacher_student(o2, gen);
  EXPECT_NEAR(th::teacher_student_errors(d2, o2, {inf}).test[0],
              th::teacher_student_errors(d2, o2, {inf}, torch::zeros({100}, kF64)).test[0], 1e-9);
}

TEST(GeneralizationDynamics, OptimalStoppingTimeIsTheMinimumOfTheCurve) {
  for (double snr : {0.5, 10.0}) {
    const auto o = problem(200, 2.0, snr);
    const double t = th::mp_optimal_stopping_time(o, 1e-3, 1e5);
    // Brute force: 4000 log-spaced times over the same range.
    std::vector<double> grid;
    for (int i = 0; i < 4000; ++i) grid.push_back(std::pow(10.0, -3 + 8.0 * i / 3999));
    const auto e = th::mp_generalization_error(o, grid);
    const auto best = std::min_element(e.begin(), e.end()) - e.begin();
    EXPECT_NEAR(std::log(t), std::log(grid[static_cast<std::size_t>(best)]), 0.01) << snr;
    EXPECT_LE(th::mp_generalization_error(o, {t})[0], e[static_cast<std::size_t>(best)] + 1e-12);
  }
}

TEST(GeneralizationDynamics, ReluFeaturesByHandAndRandomFeaturesInterpolateBeyondTheThreshold) {
  // x = (1, −2), F = [[1, 1], [2, 0.5]]: Fx/√2 = (−1, 1)/√2 → ReLU → (0, 1/√2), /√H = /√2 → (0, 0.5).
  const auto phi = th::relu_features(torch::tensor({{1.0, -2.0}}, kF64), torch::tensor({{1.0, 1.0}, {2.0, 0.5}}, kF64));
  EXPECT_NEAR(phi[0][0].item<double>(), 0.0, 1e-15);
  EXPECT_NEAR(phi[0][1].item<double>(), 0.5, 1e-15);
  const double inf = std::numeric_limits<double>::infinity();
  const auto o = problem(20, 2.0, 4.0);  // P = 40
  auto gen = at::detail::createCPUGenerator(31);
  const auto d = th::sample_teacher_student(o, gen);
  const auto wide = th::random_features_errors(d, o, 80, {0.0, inf}, 500, gen);
  EXPECT_LT(wide.train[1], 1e-18);  // H > P: the limit interpolates
  // t = 0 (a = 0): the training error is the mean of y².
  EXPECT_NEAR(wide.train[0], d.targets.pow(2).mean().item<double>(), 1e-12);
  auto g1 = at::detail::createCPUGenerator(32), g2 = at::detail::createCPUGenerator(32);
  const auto narrow = th::random_features_errors(d, o, 10, {inf}, 500, g1);
  // H < P: the least-squares residual of the same features (pinv), recomputed here.
  const auto f = torch::randn({10, 20}, g2, kF64);
  const auto p = th::relu_features(d.inputs, f);
  const auto r = d.targets - p.mm(torch::linalg_pinv(p)).mv(d.targets);
  EXPECT_NEAR(narrow.train[0], r.pow(2).mean().item<double>(), 1e-10);
}

TEST(GeneralizationDynamics, BadInputIsAConfigErrorNamingTheKey) {
  using sl::ConfigError;
  auto gen = at::detail::createCPUGenerator(1);
  sl::testing::expect_error<ConfigError>([] { th::mp_support(0.0); }, "load");
  sl::testing::expect_error<ConfigError>([] { th::mp_integral(-1.0, [](double) { return 1.0; }); }, "load");
  sl::testing::expect_error<ConfigError>([] { th::asymptotic_error(problem(100, -0.5, 2.0)); }, "load");
  sl::testing::expect_error<ConfigError>([] { th::asymptotic_error(problem(100, 0.001, 2.0)); }, "load");  // P rounds to 0
  auto neg = problem(100, 2.0, 2.0);
  neg.noise_std = -0.1;
  sl::testing::expect_error<ConfigError>([&] { th::mp_generalization_error(neg, {1.0}); }, "noise_std");
  auto negw = problem(100, 2.0, 2.0);
  negw.init_std = -1;
  sl::testing::expect_error<ConfigError>([&] { th::sample_teacher_student(negw, gen); }, "init_std");
  sl::testing::expect_error<ConfigError>([] { th::mp_generalization_error(problem(10, 2.0, 2.0), {-1.0}); }, "times");
  const auto o = problem(10, 2.0, 2.0);
  const auto d = th::sample_teacher_student(o, gen);
  sl::testing::expect_error<ConfigError>([&] { th::random_features_errors(d, o, 0, {1.0}, 10, gen); }, "width");
  sl::testing::expect_error<sl::ShapeError>(
      [] { th::least_squares_flow(torch::zeros({3, 2}, kF64), torch::zeros({4}, kF64), torch::zeros({2}, kF64)); }, "[P, D]");
}

TEST(GeneralizationDynamics, OptionsReadFromTomlRoundTripAndRejectUnknownOrBadKeys) {
  auto cfg = sl::Config::from_string("[teacher]\ninputs = 50\nload = 0.5\nnoise_std = 0.25\n");
  auto s = cfg.section("teacher");
  const auto o = sl::options::read<th::TeacherStudentOptions>(s);
  s.finish();
  EXPECT_EQ(o.inputs, 50);
  EXPECT_EQ(o.load, 0.5);
  EXPECT_EQ(o.noise_std, 0.25);
  EXPECT_EQ(o.teacher_std, 1.0);  // the default
  EXPECT_EQ(o.samples(), 25);
  sl::ConfigWriter w;
  sl::options::write(w, o, "teacher");
  auto back_cfg = w.config();
  auto back_s = back_cfg.section("teacher");
  const auto back = sl::options::read<th::TeacherStudentOptions>(back_s);
  back_s.finish();
  EXPECT_EQ(back.inputs, 50);
  EXPECT_EQ(back.load, 0.5);
  EXPECT_EQ(back.noise_std, 0.25);
  auto bad = sl::Config::from_string("[teacher]\nload = 0.0\n");
  sl::testing::expect_error<sl::ConfigError>([&] { auto b = bad.section("teacher"); sl::options::read<th::TeacherStudentOptions>(b); },
                                             "teacher.load");
  auto neg = sl::Config::from_string("[teacher]\nnoise_std = -1.0\n");
  sl::testing::expect_error<sl::ConfigError>([&] { auto b = neg.section("teacher"); sl::options::read<th::TeacherStudentOptions>(b); },
                                             "teacher.noise_std");
  auto unknown = sl::Config::from_string("[teacher]\nalpha = 2.0\n");
  sl::testing::expect_error<sl::ConfigError>([&] {
    auto u = unknown.section("teacher");
    sl::options::read<th::TeacherStudentOptions>(u);
    u.finish();
  }, "alpha");
}
