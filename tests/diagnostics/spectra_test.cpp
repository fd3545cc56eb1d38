// Weight spectra: ESD vs eigvalsh and Marchenko–Pastur edges, power-law recovery on synthetic
// Pareto samples, principal angles with known rotations, Weyl/Mirsky/Wedin bounds.
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/spectra.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// n samples with density ∝ x^{−α} on [xmin, ∞) by inversion: x = xmin · U^{−1/(α−1)}.
torch::Tensor pareto(std::int64_t n, double alpha, double xmin, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto u = torch::rand({n}, gen, f64()).clamp_min(1e-300);
  return xmin * u.pow(-1.0 / (alpha - 1.0));
}

TEST(Spectra, EsdIsTheEigenvaluesOfWtWOverN) {
  auto tall = torch::randn({30, 10}, f64());
  EXPECT_LT(D::testing::max_abs_diff(D::weight_esd(tall), torch::linalg_eigvalsh(tall.t().mm(tall)) / 30.0), 1e-12);
  auto wide = torch::randn({10, 30}, f64());  // oriented so that N = 30 ≥ M = 10
  EXPECT_LT(D::testing::max_abs_diff(D::weight_esd(wide), torch::linalg_eigvalsh(wide.mm(wide.t())) / 30.0), 1e-12);
  EXPECT_LT(D::testing::max_abs_diff(D::weight_esd(wide, false), torch::linalg_eigvalsh(wide.mm(wide.t()))), 1e-10);
  // A conv kernel [out, in, kh, kw] is read as [out, in·kh·kw].
  EXPECT_EQ(D::weight_esd(torch::randn({4, 3, 3, 3}, f64())).size(0), 4);
}

TEST(Spectra, GaussianMatrixEsdFillsTheMarchenkoPasturBulk) {
  // W ∈ R^{800×200}, i.i.d. N(0,1), Q = 4: the eigenvalues of WᵀW/N lie in
  // [(1 − 1/√Q)², (1 + 1/√Q)²] = [0.25, 2.25] up to O(N^{−2/3}) edge fluctuations.
  auto esd = D::weight_esd(torch::randn({800, 200}, f64()));
  EXPECT_NEAR(esd[-1].item<double>(), 2.25, 0.2);
  EXPECT_NEAR(esd[0].item<double>(), 0.25, 0.1);
  EXPECT_NEAR(esd.mean().item<double>(), 1.0, 0.03);  // E tr(WᵀW)/(N M) = 1
}

TEST(Spectra, PowerLawFitRecoversTheParetoExponent) {
  for (double alpha : {2.5, 4.0}) {
    auto x = pareto(3000, alpha, 1.0, 31);
    auto fit = D::fit_power_law(x);
    EXPECT_NEAR(fit.alpha, alpha, std::max(0.15, 4.0 * fit.sigma)) << "alpha " << alpha;
    EXPECT_NEAR(fit.sigma, (fit.alpha - 1.0) / std::sqrt(static_cast<double>(fit.tail_size)), 1e-12);
    EXPECT_LT(fit.ks_distance, 0.05);
    EXPECT_EQ(fit.num_samples, 3000);
    EXPECT_GE(fit.xmin, 1.0);
  }
}

TEST(Spectra, PowerLawFitFindsWhereTheTailStarts) {
  // A uniform body on [0.05, 1) below a Pareto tail (α = 3) starting at 1.
  auto gen = at::detail::createCPUGenerator(32);
  auto body = 0.05 + 0.95 * torch::rand({2000}, gen, f64());
  auto x = torch::cat({body, pareto(2000, 3.0, 1.0, 33), torch::zeros({5}, f64())});  // zeros are dropped
  auto fit = D::fit_power_law(x);
  EXPECT_EQ(fit.num_samples, 4000);
  EXPECT_GT(fit.xmin, 0.9);
  EXPECT_LT(fit.xmin, 1.6);
  EXPECT_NEAR(fit.alpha, 3.0, 0.25);
}

TEST(Spectra, PrincipalAnglesOfKnownRotations) {
  // Bases in R^8 rotated by known angles, then expressed in a random orthonormal frame.
  auto q = D::testing::random_orthogonal(8, 34);
  const double a = 0.3, b = 0.7;
  auto e = [&](int i) { return q.select(1, i); };
  auto u = torch::stack({e(0), e(1)}, 1);
  auto v = torch::stack({std::cos(a) * e(0) + std::sin(a) * e(2), std::cos(b) * e(1) + std::sin(b) * e(3)}, 1);
  auto ang = D::subspace_angles(u, v);
  EXPECT_NEAR(ang[0].item<double>(), a, 1e-10);
  EXPECT_NEAR(ang[1].item<double>(), b, 1e-10);
  // Rotating the top left singular vector of W towards the third: left angles {0, a}, right {0, 0}.
  auto ql = D::testing::random_orthogonal(6, 35), qr = D::testing::random_orthogonal(5, 36);
  auto s = torch::diag(torch::tensor({5.0, 3.0, 1.0, 0.5, 0.2}, f64()));
  auto w0 = ql.narrow(1, 0, 5).mm(s).mm(qr.t());
  auto rot = torch::eye(6, f64());
  rot[0][0] = std::cos(a);
  rot[0][2] = -std::sin(a);
  rot[2][0] = std::sin(a);
  rot[2][2] = std::cos(a);
  auto w1 = ql.mm(rot).mm(ql.t()).mm(w0);
  auto pa = D::principal_angles(w0, w1, 2);
  EXPECT_NEAR(pa.left[0].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(pa.left[1].item<double>(), a, 1e-10);
  EXPECT_LT(pa.right.abs().max().item<double>(), 1e-6);
  EXPECT_NEAR(D::spectral_drift(w0, w1), 0.0, 1e-12);  // same singular values
}

// Top-k drift by hand: σ(diag(3, 2, 1)) = (3, 2, 1), σ(diag(3.3, 2, 5)) = (5, 3.3, 2) (sorted):
// full ‖(2, 1.3, 1)‖/‖(3, 2, 1)‖, top-1 2/3, top-2 ‖(2, 1.3)‖/‖(3, 2)‖.
TEST(Spectra, TopKSpectralDriftByHand) {
  const auto w0 = torch::diag(torch::tensor({3.0, 2.0, 1.0}, torch::kFloat64));
  const auto w1 = torch::diag(torch::tensor({3.3, 2.0, 5.0}, torch::kFloat64));
  EXPECT_NEAR(D::spectral_drift(w0, w1), std::sqrt(4 + 1.69 + 1) / std::sqrt(14.0), 1e-12);
  EXPECT_NEAR(D::spectral_drift(w0, w1, 3), std::sqrt(4 + 1.69 + 1) / std::sqrt(14.0), 1e-12);
  EXPECT_NEAR(D::spectral_drift(w0, w1, 1), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(D::spectral_drift(w0, w1, 2), std::sqrt(4 + 1.69) / std::sqrt(13.0), 1e-12);
  stablelearn::testing::expect_error<stablelearn::ConfigError>([&] { D::spectral_drift(w0, w1, 4); }, "k = 4");
}

TEST(Spectra, PerturbationBoundsHold) {
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    auto gen = at::detail::createCPUGenerator(40 + seed);
    auto w0 = torch::randn({20, 12}, gen, f64());
    auto dw = 0.05 * torch::randn({20, 12}, gen, f64());
    auto w1 = w0 + dw;
    auto s0 = torch::linalg_svdvals(w0), s1 = torch::linalg_svdvals(w1);
    const double dw2 = torch::linalg_matrix_norm(dw, 2).item<double>(), dwf = dw.norm().item<double>();
    // Weyl: |σ_i(W₁) − σ_i(W₀)| ≤ ‖ΔW‖₂;  Mirsky: NSS · ‖σ(W₀)‖ ≤ ‖ΔW‖_F.
    EXPECT_LE((s1 - s0).abs().max().item<double>(), dw2 + 1e-12);
    EXPECT_LE(D::spectral_drift(w0, w1) * s0.norm().item<double>(), dwf + 1e-12);
    // Wedin: max sin θ ≤ √2 ‖ΔW‖₂ / δ, δ = σ_k(W₁) − σ_{k+1}(W₀) > 0.
    const std::int64_t k = 3;
    const double delta = s1[k - 1].item<double>() - s0[k].item<double>();
    ASSERT_GT(delta, 0.0);
    auto pa = D::principal_angles(w0, w1, k);
    const double worst = std::max(pa.left.max().item<double>(), pa.right.max().item<double>());
    EXPECT_LE(std::sin(worst), std::sqrt(2.0) * dw2 / delta);
  }
}

TEST(Spectra, StableRank) {
  EXPECT_NEAR(D::stable_rank(torch::diag(torch::tensor({3.0, 1.0, 1.0}, f64()))), 11.0 / 9.0, 1e-12);
  EXPECT_NEAR(D::stable_rank(torch::eye(7, f64())), 7.0, 1e-12);
}

TEST(Spectra, RejectsBadInput) {
  using stablelearn::testing::expect_error;
  expect_error<stablelearn::ShapeError>([] { D::weight_esd(torch::ones({5}, f64())); }, "at least 2 dimensions");
  expect_error<stablelearn::DataError>([] { D::fit_power_law(torch::ones({5}, f64())); }, "need at least 10");
  expect_error<stablelearn::DataError>([] { D::fit_power_law(torch::ones({50}, f64())); }, "non-degenerate");
  auto nan = torch::ones({50}, f64());
  nan[3] = NAN;
  expect_error<stablelearn::DataError>([&] { D::fit_power_law(nan); }, "NaN");
  expect_error<stablelearn::ConfigError>([] { D::principal_angles(torch::eye(3, f64()), torch::eye(3, f64()), 4); }, "k = 4");
}

}  // namespace
