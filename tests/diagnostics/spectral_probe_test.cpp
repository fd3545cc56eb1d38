// The malignant-tail diagnostic (diagnostics/spectral_probe.h): a representation with a planted
// spectrum, the probe at full d against a direct ridge fit on the unprojected representation, the
// probe at d = 1 on planted two-class data, truncation inside a network at full d and at d = 1 by
// hand, and bad input.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/spectral_probe.h"
#include "testing.h"

namespace sl = stablelearn;
namespace dg = stablelearn::diagnostics;

namespace {

// n rows whose sample covariance is exactly Q diag(lambda) Qᵀ and whose mean is mu: Z with
// centred orthonormal columns scaled by sqrt(n) (ZᵀZ/n = I, column means 0).
struct Planted {
  torch::Tensor h, q, lambda, mu;
};

Planted planted(std::int64_t n, const std::vector<double>& lambda, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto d = static_cast<std::int64_t>(lambda.size());
  auto r = torch::randn({n, d}, gen, torch::kFloat64);
  r -= r.mean(0);
  auto z = std::get<0>(torch::linalg_qr(r)) * std::sqrt(static_cast<double>(n));  // columns ⟂ 1 (r was centred)
  const auto q = std::get<0>(torch::linalg_qr(torch::randn({d, d}, gen, torch::kFloat64)));
  const auto lam = torch::tensor(lambda, torch::kFloat64);
  const auto mu = torch::randn({d}, gen, torch::kFloat64);
  return {z.mm(torch::diag(lam.sqrt())).mm(q.t()) + mu, q, lam, mu};
}

}  // namespace

TEST(SpectralProbe, RecoversAPlantedSpectrum) {
  const auto p = planted(400, {9.0, 4.0, 1.0, 0.25, 0.01}, 1);
  const auto s = dg::representation_spectrum(p.h);
  EXPECT_LT((s.mean - p.mu).abs().max().item<double>(), 1e-12);
  EXPECT_LT((s.eigenvalues - p.lambda).abs().max().item<double>(), 1e-10);
  for (std::int64_t k = 0; k < 5; ++k)  // each direction is ± the planted one
    EXPECT_NEAR(std::abs(s.directions.select(1, k).dot(p.q.select(1, k)).item<double>()), 1.0, 1e-9) << k;
  // The principal coordinates have covariance diag(lambda_1..d).
  const auto z = dg::principal_coordinates(p.h, s, 3);
  const auto cz = z.t().mm(z) / 400.0;
  EXPECT_LT((cz - torch::diag(p.lambda.slice(0, 0, 3))).abs().max().item<double>(), 1e-9);
}

TEST(SpectralProbe, FullWidthProbeEqualsTheUnprojectedFit) {
  auto gen = at::detail::createCPUGenerator(4);
  const auto h = torch::randn({300, 6}, gen, torch::kFloat64) * torch::tensor({3.0, 2.0, 1.0, 1.0, 0.5, 0.2}, torch::kFloat64) + 1.5;
  const auto y = torch::randint(0, 3, {300}, gen, torch::kInt64);
  const auto s = dg::representation_spectrum(h);
  const double ridge = 0.3;
  const auto probe = dg::fit_spectral_probe(h, y, 3, s, 6, ridge);
  // Independent: ridge on [h, 1] with the intercept unpenalised, solved as one augmented system.
  const auto x = torch::cat({h, torch::ones({300, 1}, torch::kFloat64)}, 1);
  auto pen = torch::eye(7, torch::kFloat64) * ridge;
  pen[6][6] = 0;
  const auto w = torch::linalg_solve(x.t().mm(x) + pen, x.t().mm(torch::one_hot(y, 3).to(torch::kFloat64)));
  const auto direct = x.mm(w);
  EXPECT_LT((probe.scores(h, s) - direct).abs().max().item<double>(), 1e-9);
  EXPECT_TRUE(torch::equal(probe.predict(h, s), direct.argmax(1)));
}

TEST(SpectralProbe, SmallDProbeReadsTheLeadingDirection) {
  // Two classes separated along the planted top direction only; the tail carries noise. The d = 1
  // probe classifies them (margin 2 vs noise s.d. 0.3), the tail alone cannot.
  auto gen = at::detail::createCPUGenerator(8);
  const std::int64_t n = 1000;
  const auto y = torch::arange(n, torch::kInt64).remainder(2);
  auto h = torch::randn({n, 8}, gen, torch::kFloat64) * 0.3;
  h.select(1, 0) += (y.to(torch::kFloat64) * 2 - 1) * 2.0;
  const auto s = dg::representation_spectrum(h);
  const auto p1 = dg::fit_spectral_probe(h, y, 2, s, 1);
  EXPECT_GT(dg::probe_accuracy(p1.predict(h, s), y), 0.99);
  EXPECT_NEAR(std::abs(s.directions[0][0].item<double>()), 1.0, 1e-2);
  EXPECT_NEAR(dg::probe_accuracy(torch::tensor({0, 1, 1, 0}, torch::kInt64), torch::tensor({0, 1, 0, 0}, torch::kInt64)), 0.75, 1e-15);
}

TEST(SpectralProbe, TruncationInsideANetwork) {
  torch::manual_seed(3);
  torch::nn::Sequential body(torch::nn::Linear(5, 16), torch::nn::ReLU(), torch::nn::Linear(16, 16), torch::nn::ReLU());
  torch::nn::Linear head(16, 4);
  const auto x = torch::randn({64, 5});
  torch::NoGradGuard ng;
  const auto h = body->forward(x);
  const auto s = dg::representation_spectrum(h);
  const auto full = head->forward(h);
  const auto same = head->forward(dg::truncate_representation(h, s, 16));
  EXPECT_EQ(same.scalar_type(), torch::kFloat32);
  EXPECT_LT((same - full).abs().max().item<double>(), 1e-6);
  // d = 1 by hand: h ↦ μ + ((h − μ)·v) v with v the top direction.
  const auto hd = h.to(torch::kFloat64);
  const auto v = s.directions.select(1, 0);
  const auto mu = hd.mean(0);
  const auto by_hand = mu + ((hd - mu).mv(v)).unsqueeze(1) * v.unsqueeze(0);
  EXPECT_LT((dg::truncate_representation(h, s, 1).to(torch::kFloat64) - by_hand).abs().max().item<double>(), 1e-5);
  // Its covariance has rank 1: the only nonzero eigenvalue is λ_1.
  const auto t = dg::representation_spectrum(by_hand);
  EXPECT_NEAR(t.eigenvalues[0].item<double>(), s.eigenvalues[0].item<double>(), 1e-9 * s.eigenvalues[0].item<double>());
  EXPECT_LT(t.eigenvalues[1].item<double>(), 1e-9 * s.eigenvalues[0].item<double>());
}

TEST(SpectralProbe, BadInputNamesTheProblem) {
  const auto p = planted(50, {2.0, 1.0, 0.5}, 2);
  const auto s = dg::representation_spectrum(p.h);
  const auto y = torch::zeros({50}, torch::kInt64);
  sl::testing::expect_error<sl::ConfigError>([&] { dg::truncate_representation(p.h, s, 4); }, "d = 4: expected 1..3");
  sl::testing::expect_error<sl::ConfigError>([&] { dg::principal_coordinates(p.h, s, 0); }, "d = 0");
  sl::testing::expect_error<sl::ConfigError>([&] { dg::fit_spectral_probe(p.h, y, 2, s, 2, -1); }, "ridge = -1");
  sl::testing::expect_error<sl::ConfigError>([&] { dg::fit_spectral_probe(p.h, y, 1, s, 2); }, "classes = 1");
  sl::testing::expect_error<sl::DataError>([&] { dg::fit_spectral_probe(p.h, y + 5, 3, s, 2); }, "expected 0..2");
  sl::testing::expect_error<sl::ShapeError>([&] { dg::truncate_representation(p.h.slice(1, 0, 2), s, 1); }, "expected [n, 3]");
  sl::testing::expect_error<sl::ShapeError>([&] { dg::representation_spectrum(torch::zeros({1, 3})); }, "n >= 2");
  auto bad = p.h.clone();
  bad[0][0] = std::nan("");
  sl::testing::expect_error<sl::DataError>([&] { dg::representation_spectrum(bad); }, "NaN");
}
