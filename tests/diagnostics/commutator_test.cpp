// SGD commutator defect and its projection, against closed forms (float64).
//
// Reference values. For quadratic batch losses L(θ; X) = ½θᵀH_Xθ − b_Xᵀθ, g_X(θ) = H_Xθ − b_X and
//     θ_AB − θ_BA = (θ₀ − ηg_A − η g_B(θ₀ − ηg_A)) − (θ₀ − ηg_B − η g_A(θ₀ − ηg_B))
//                 = (−ηg_A − ηg_B + η²H_B g_A) − (−ηg_B − ηg_A + η²H_A g_B)
//                 = η²(H_B g_A − H_A g_B)      (g_X = g_X(θ₀); exact for every η).
// With b = 0 and commuting H_A, H_B: H_B H_A θ₀ − H_A H_B θ₀ = 0. By hand, H_A = [[1,0],[0,0]],
// H_B = [[0,1],[1,0]], θ₀ = (1, 2), η = ½: g_A = (1, 0), g_B = (2, 1), δ = ¼((0, 1) − (2, 0)) =
// (−½, ¼), ‖δ‖ = √5/4 = η²‖g_A‖‖g_B‖, so D = 1. For a non-quadratic loss the same expression with
// the batch Hessians is the η² term; the remainder is O(η³).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/commutator.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/toy_problem.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::known_spectrum;
using D::testing::max_abs_diff;
using D::testing::random_orthogonal;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// A quadratic "batch": x = H, y = b; the loss ½θᵀHθ − bᵀθ of the single parameter vector θ.
struct Quadratic {
  torch::Tensor theta;
  D::LossFn loss() const {
    auto t = theta;
    return [t](const D::Batch& b) { return 0.5 * t.dot(b.x.mv(t)) - b.y.dot(t); };
  }
};

torch::Tensor closed_form_delta(const D::Batch& a, const D::Batch& b, const torch::Tensor& theta0, double eta) {
  const auto ga = a.x.mv(theta0) - a.y;
  const auto gb = b.x.mv(theta0) - b.y;
  return eta * eta * (b.x.mv(ga) - a.x.mv(gb));
}

TEST(Commutator, TwoByTwoByHand) {
  Quadratic q{torch::tensor({1.0, 2.0}, f64()).requires_grad_(true)};
  const D::Batch a{torch::tensor({1.0, 0.0, 0.0, 0.0}, f64()).view({2, 2}), torch::zeros({2}, f64())};
  const D::Batch b{torch::tensor({0.0, 1.0, 1.0, 0.0}, f64()).view({2, 2}), torch::zeros({2}, f64())};
  const auto c = D::commutator_defect({q.theta}, q.loss(), a, b, 0.5);
  EXPECT_LT(max_abs_diff(c.delta, torch::tensor({-0.5, 0.25}, f64())), 1e-15);
  EXPECT_NEAR(c.norm, std::sqrt(5.0) / 4.0, 1e-15);
  EXPECT_NEAR(c.grad_a_norm, 1.0, 1e-15);
  EXPECT_NEAR(c.grad_b_norm, std::sqrt(5.0), 1e-15);
  EXPECT_NEAR(c.normalized, 1.0, 1e-14);
  // Swapping the batches flips the sign.
  const auto s = D::commutator_defect({q.theta}, q.loss(), b, a, 0.5);
  EXPECT_LT(max_abs_diff(s.delta, -c.delta), 1e-15);
}

TEST(Commutator, QuadraticLossesMatchTheClosedFormAtEveryStep) {
  const std::int64_t d = 7;
  Quadratic q{torch::randn({d}, f64()).requires_grad_(true)};
  const D::Batch a{known_spectrum(torch::linspace(0.5, 3.0, d, f64()), 1), torch::randn({d}, f64())};
  const D::Batch b{known_spectrum(torch::linspace(-1.0, 2.0, d, f64()), 2), torch::randn({d}, f64())};
  const auto theta0 = q.theta.detach().clone();
  for (double eta : {1e-3, 0.1, 0.7}) {
    const auto c = D::commutator_defect({q.theta}, q.loss(), a, b, eta);
    const auto want = closed_form_delta(a, b, theta0, eta);
    EXPECT_LT(max_abs_diff(c.delta, want), 1e-12 * want.norm().item<double>()) << "eta " << eta;
    const double ga = (a.x.mv(theta0) - a.y).norm().item<double>();
    const double gb = (b.x.mv(theta0) - b.y).norm().item<double>();
    EXPECT_NEAR(c.normalized, want.norm().item<double>() / (eta * eta * ga * gb), 1e-10 * c.normalized);
    // θ₀ is restored exactly.
    EXPECT_TRUE(torch::equal(q.theta.detach(), theta0));
  }
}

TEST(Commutator, CommutingHessiansWithoutLinearTermsCommute) {
  const std::int64_t d = 6;
  const auto qm = random_orthogonal(d, 7);
  auto sym = [&](std::vector<double> l) { return qm.mm(torch::diag(torch::tensor(l, f64()))).mm(qm.t()); };
  Quadratic q{torch::randn({d}, f64()).requires_grad_(true)};
  const D::Batch a{sym({3, 1, 0.5, 2, 0.1, 4}), torch::zeros({d}, f64())};
  const D::Batch b{sym({-1, 2, 5, 0.3, 1, 0.2}), torch::zeros({d}, f64())};
  const auto c = D::commutator_defect({q.theta}, q.loss(), a, b, 0.3);
  EXPECT_GT(c.grad_a_norm, 0.1);
  EXPECT_GT(c.grad_b_norm, 0.1);
  EXPECT_LT(c.normalized, 1e-13);
  // A linear term breaks it: δ = η²(H_B(H_Aθ − b_A) − H_A H_B θ) = −η²H_B b_A.
  const D::Batch a2{a.x, torch::randn({d}, f64())};
  const auto c2 = D::commutator_defect({q.theta}, q.loss(), a2, b, 0.3);
  EXPECT_LT(max_abs_diff(c2.delta, -0.09 * b.x.mv(a2.y)), 1e-13);
}

TEST(Commutator, MlpAgreesWithExplicitStepsAndTheSecondOrderTerm) {
  auto p = D::make_toy_problem(D::ToyProblemOptions().hidden(6).samples(40).batch_size(10).seed(3));
  p.train_gd(30, 0.2);
  const auto& a = p.batches[0];
  const auto& b = p.batches[2];
  const auto theta0 = D::flatten_tensors(p.params).clone();
  // Independent path: two explicit SGD orders on a copy of the parameters, θ_AB − θ_BA.
  auto explicit_delta = [&](double eta) {
    auto run = [&](const D::Batch& first, const D::Batch& second) {
      std::vector<torch::Tensor> w;
      for (const auto& t : p.params) w.push_back(t.detach().clone().requires_grad_(true));
      auto f = [&](const D::Batch& bt) {
        return 0.5 * (torch::tanh(bt.x.mm(w[0].t()) + w[1]).mm(w[2].t()) + w[3] - bt.y).pow(2).sum(1).mean();
      };
      for (const auto* bt : {&first, &second}) {
        const auto g = torch::autograd::grad({f(*bt)}, w);
        torch::NoGradGuard ng;
        for (std::size_t i = 0; i < w.size(); ++i) w[i].sub_(g[i], eta);
      }
      return D::flatten_tensors(w);
    };
    return run(a, b) - run(b, a);
  };
  const double eta = 0.05;
  const auto c = D::commutator_defect(p.params, p.loss, a, b, eta);
  const auto want = explicit_delta(eta);
  EXPECT_LT(max_abs_diff(c.delta, want), 1e-9 * want.norm().item<double>());
  EXPECT_TRUE(torch::equal(D::flatten_tensors(p.params), theta0));

  // δ/η² → H_B g_A − H_A g_B, with an O(η) error (Hessian-vector products of each batch).
  const D::HessianOperator ha(p.params, p.loss, {a});
  const D::HessianOperator hb(p.params, p.loss, {b});
  const auto ga = ha.loss_and_gradient().second;
  const auto gb = hb.loss_and_gradient().second;
  const auto second = hb.apply(ga) - ha.apply(gb);
  std::vector<double> err;
  for (double e : {1e-2, 1e-3}) {
    const auto ce = D::commutator_defect(p.params, p.loss, a, b, e);
    err.push_back((ce.delta / (e * e) - second).norm().item<double>() / second.norm().item<double>());
  }
  EXPECT_LT(err[1], 1e-2);
  EXPECT_GT(err[1] / err[0], 0.05);  // first order in η: a tenfold smaller η gives ≈ a tenfold smaller error
  EXPECT_LT(err[1] / err[0], 0.2);
}

TEST(Commutator, ProjectionSplitsDelta) {
  const std::int64_t d = 20, k = 4;
  const auto basis = random_orthogonal(d, 11).narrow(1, 0, k).contiguous();
  const auto perp = random_orthogonal(d, 11).narrow(1, k, 1).squeeze(1);
  // Inside the span: ρ = 1.
  const auto in = basis.mv(torch::tensor({1.0, -2.0, 0.5, 3.0}, f64()));
  auto p = D::projected_commutator(in, basis);
  EXPECT_NEAR(p.rho, 1.0, 1e-12);
  EXPECT_NEAR(p.energy_fraction, 1.0, 1e-12);
  EXPECT_LT(p.residual_norm, 1e-12);
  // Orthogonal: ρ = 0.
  p = D::projected_commutator(perp, basis);
  EXPECT_LT(p.rho, 1e-12);
  EXPECT_NEAR(p.residual_norm, 1.0, 1e-12);
  // 3 units inside, 4 outside: ρ = 3/5, ρ² = 9/25.
  const auto mixed = 3.0 * basis.select(1, 2) + 4.0 * perp;
  p = D::projected_commutator(mixed, basis);
  EXPECT_NEAR(p.norm, 5.0, 1e-12);
  EXPECT_NEAR(p.rho, 0.6, 1e-12);
  EXPECT_NEAR(p.energy_fraction, 0.36, 1e-12);
  EXPECT_NEAR(p.in_span_norm, 3.0, 1e-12);
  EXPECT_NEAR(p.residual_norm, 4.0, 1e-12);
  EXPECT_LT(max_abs_diff(p.in_span + p.residual, mixed), 1e-13);
  EXPECT_LT(max_abs_diff(p.residual, 4.0 * perp), 1e-12);
  // Zero δ: everything zero.
  p = D::projected_commutator(torch::zeros({d}, f64()), basis);
  EXPECT_EQ(p.rho, 0.0);
  // A non-orthonormal basis and mismatched shapes are refused.
  stablelearn::testing::expect_error<stablelearn::DataError>([&] { D::projected_commutator(mixed, 2.0 * basis); },
                                                             "not orthonormal");
  stablelearn::testing::expect_error<stablelearn::ShapeError>(
      [&] { D::projected_commutator(torch::zeros({d + 1}, f64()), basis); }, "basis must be");
}

TEST(Commutator, OrthonormalBasisSpansTheVectors) {
  const auto v = torch::randn({3, 15}, f64());
  const auto q = D::orthonormal_basis(v);
  ASSERT_EQ(q.sizes(), (std::vector<std::int64_t>{15, 3}));
  EXPECT_LT(max_abs_diff(q.t().mm(q), torch::eye(3, f64())), 1e-13);
  EXPECT_LT((v.t() - q.mm(q.t().mm(v.t()))).abs().max().item<double>(), 1e-12);
  // Every row of v projects onto itself: ρ = 1.
  EXPECT_NEAR(D::projected_commutator(v[1], q).rho, 1.0, 1e-12);
  const auto dep = torch::stack({v[0], v[1], v[0] - 2.0 * v[1]});
  stablelearn::testing::expect_error<stablelearn::DataError>([&] { D::orthonormal_basis(dep); }, "linearly dependent");
  stablelearn::testing::expect_error<stablelearn::ShapeError>([&] { D::orthonormal_basis(torch::randn({5, 4}, f64())); },
                                                              "cannot be independent");
}

TEST(Commutator, RandomSubspaceCapturesKOverD) {
  // ρ² of a fixed vector in a uniformly random k-subspace of R^D is Beta(k/2, (D − k)/2): mean k/D,
  // variance 2k(D − k)/(D²(D + 2)).
  const std::int64_t dim = 200, k = 10, trials = 400;
  const auto delta = torch::randn({dim}, f64());
  const auto r = D::random_subspace_baseline(delta, k, trials, 5);
  EXPECT_EQ(r.trials, trials);
  EXPECT_DOUBLE_EQ(r.expected_energy_fraction, 0.05);
  EXPECT_DOUBLE_EQ(r.expected_rho, std::sqrt(0.05));
  const double sd = std::sqrt(2.0 * k * (dim - k) / (double(dim) * dim * (dim + 2)));
  EXPECT_NEAR(r.mean_energy_fraction, 0.05, 4.0 * sd / std::sqrt(double(trials)));
  // E ρ ≤ √(E ρ²) (Jensen), and close to it.
  EXPECT_LT(r.mean_rho, std::sqrt(r.mean_energy_fraction));
  EXPECT_GT(r.mean_rho, 0.9 * std::sqrt(0.05));
  // Deterministic under the seed; k = D captures everything.
  EXPECT_DOUBLE_EQ(D::random_subspace_baseline(delta, k, trials, 5).mean_rho, r.mean_rho);
  EXPECT_NEAR(D::random_subspace_baseline(delta, dim, 2, 1).mean_energy_fraction, 1.0, 1e-12);
  stablelearn::testing::expect_error<stablelearn::ConfigError>([&] { D::random_subspace_baseline(delta, dim + 1); },
                                                               "must be in");
  stablelearn::testing::expect_error<stablelearn::DataError>(
      [&] { D::random_subspace_baseline(torch::zeros({dim}, f64()), 3); }, "zero");
}

TEST(Commutator, QuantileIsNumpysLinearInterpolation) {
  // numpy.percentile([1, 2, 3, 4], 90) = 3.7; median([3, 1, 2]) = 2; median([4, 1, 3, 2]) = 2.5.
  EXPECT_DOUBLE_EQ(D::quantile({1, 2, 3, 4}, 0.9), 3.7);
  EXPECT_DOUBLE_EQ(D::quantile({3, 1, 2}, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(D::quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(D::quantile({7}, 0.9), 7.0);
  EXPECT_DOUBLE_EQ(D::quantile({5, 1, 9}, 1.0), 9.0);
  stablelearn::testing::expect_error<stablelearn::ConfigError>([] { D::quantile({}, 0.5); }, "no values");
}

TEST(Commutator, StatisticsOverPairsOfQuadraticBatches) {
  const std::int64_t d = 8, k = 3;
  Quadratic q{torch::randn({d}, f64()).requires_grad_(true)};
  std::vector<D::Batch> batches;
  for (int i = 0; i < 5; ++i)
    batches.push_back({known_spectrum(torch::rand({d}, f64()) * 3.0, 20 + i), torch::randn({d}, f64())});
  const auto theta0 = q.theta.detach().clone();
  const auto basis = random_orthogonal(d, 3).narrow(1, 0, k).contiguous();
  const double eta = 1e-2;
  const auto s = D::commutator_statistics({q.theta}, q.loss(), batches,
                                          D::CommutatorOptions().learning_rate(eta).pairs(9).random_bases(5).seed(4), basis);
  ASSERT_EQ(s.pairs.size(), 9u);
  ASSERT_EQ(s.rho.size(), 9u);
  std::vector<double> want_d, want_e;
  for (std::size_t i = 0; i < s.pairs.size(); ++i) {
    const auto [ia, ib] = s.pairs[i];
    EXPECT_NE(ia, ib);
    const auto& a = batches[static_cast<std::size_t>(ia)];
    const auto& b = batches[static_cast<std::size_t>(ib)];
    const auto delta = closed_form_delta(a, b, theta0, eta);
    const double dn = delta.norm().item<double>();
    want_d.push_back(dn / (eta * eta * (a.x.mv(theta0) - a.y).norm().item<double>() *
                           (b.x.mv(theta0) - b.y).norm().item<double>()));
    want_e.push_back(basis.t().mv(delta).pow(2).sum().item<double>() / (dn * dn));
    EXPECT_NEAR(s.normalized[i], want_d.back(), 1e-9 * want_d.back());
    EXPECT_NEAR(s.energy_fraction[i], want_e.back(), 1e-9);
    EXPECT_NEAR(s.rho[i] * s.rho[i], s.energy_fraction[i], 1e-12);
  }
  EXPECT_NEAR(s.median, D::quantile(want_d, 0.5), 1e-9 * s.median);
  EXPECT_NEAR(s.p90, D::quantile(want_d, 0.9), 1e-9 * s.p90);
  EXPECT_LE(s.median, s.p90);
  EXPECT_NEAR(s.median_energy_fraction, D::quantile(want_e, 0.5), 1e-9);
  EXPECT_EQ(s.basis_dim, k);
  EXPECT_DOUBLE_EQ(s.expected_random_energy_fraction, 3.0 / 8.0);
  EXPECT_TRUE(torch::equal(q.theta.detach(), theta0));
  // Deterministic under the seed.
  const auto s2 = D::commutator_statistics({q.theta}, q.loss(), batches,
                                           D::CommutatorOptions().learning_rate(eta).pairs(9).random_bases(5).seed(4), basis);
  EXPECT_EQ(s2.pairs, s.pairs);
  EXPECT_DOUBLE_EQ(s2.median_random_rho, s.median_random_rho);
  // Without a basis: no projection.
  const auto s3 = D::commutator_statistics({q.theta}, q.loss(), batches, D::CommutatorOptions().learning_rate(eta).seed(4));
  EXPECT_TRUE(s3.rho.empty());
  EXPECT_TRUE(std::isnan(s3.median_rho));
  EXPECT_DOUBLE_EQ(s3.median, D::quantile(s3.normalized, 0.5));
  stablelearn::testing::expect_error<stablelearn::ConfigError>(
      [&] { D::commutator_statistics({q.theta}, q.loss(), {batches[0]}); }, "two batches");
}

TEST(Commutator, RejectsBadArguments) {
  Quadratic q{torch::randn({3}, f64())};  // no requires_grad
  const D::Batch a{torch::eye(3, f64()), torch::zeros({3}, f64())};
  stablelearn::testing::expect_error<stablelearn::ConfigError>(
      [&] { D::commutator_defect({q.theta}, q.loss(), a, a, 0.1); }, "does not require grad");
  q.theta.requires_grad_(true);
  stablelearn::testing::expect_error<stablelearn::ConfigError>([&] { D::commutator_defect({q.theta}, q.loss(), a, a, 0.0); },
                                                               "learning rate");
  // The same batch twice commutes; zero gradients give NaN D.
  EXPECT_LT(D::commutator_defect({q.theta}, q.loss(), a, a, 0.1).norm, 1e-15);
  Quadratic z{torch::zeros({3}, f64()).requires_grad_(true)};
  EXPECT_TRUE(std::isnan(D::commutator_defect({z.theta}, z.loss(), a, a, 0.1).normalized));
}

}  // namespace
