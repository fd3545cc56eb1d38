// Random-subspace training: projection shape and norms, d = D reproduces full-space GD, and a
// least-squares problem whose reachable loss in a subspace is known in closed form.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/intrinsic_dimension.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

TEST(IntrinsicDimension, DenseProjectionHasUnitColumns) {
  D::RandomSubspace p(200, 15, 3, f64());
  EXPECT_EQ(p.full_dim(), 200);
  EXPECT_EQ(p.dim(), 15);
  EXPECT_LT(max_abs_diff(p.matrix().norm(2, {0}), torch::ones({15}, f64())), 1e-12);
  D::RandomSubspace q(20, 20, 3, f64(), true);
  EXPECT_LT(max_abs_diff(q.matrix().t().mm(q.matrix()), torch::eye(20, f64())), 1e-12);
  auto v = torch::randn({15}, f64());
  EXPECT_LT(max_abs_diff(p.to_full(v), p.matrix().mv(v)), 1e-14);
  EXPECT_THROW(D::RandomSubspace(5, 6, 0, f64()), stablelearn::ConfigError);
}

TEST(IntrinsicDimension, FullDimensionalOrthonormalSubspaceReproducesFullTraining) {
  auto x = torch::randn({30, 6}, f64());
  auto y = torch::randn({30}, f64());
  auto w = (0.1 * torch::randn({6}, f64())).requires_grad_(true);
  const auto w0 = w.detach().clone();
  D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
  const double lr = 0.05;
  auto r = D::train_in_subspace({w}, loss, {{x, y}},
                                D::SubspaceTrainingOptions().dim(6).steps(25).learning_rate(lr).orthonormal(true));
  // Plain GD in the full space: w ← w − lr Xᵀ(Xw − y)/n.
  auto ref = w0.clone();
  for (int t = 0; t < 25; ++t) ref = ref - lr * x.t().mv(x.mv(ref) - y) / 30.0;
  EXPECT_LT(max_abs_diff(w.detach(), ref), 1e-12);
  ASSERT_EQ(r.losses.size(), 26u);
  EXPECT_NEAR(r.losses.back(), 0.5 * (x.mv(ref) - y).pow(2).mean().item<double>(), 1e-12);
}

TEST(IntrinsicDimension, SubspaceTrainingReachesTheSubspaceOptimum) {
  // Least squares with n = 5 equations in D = 40 unknowns: zero loss is reachable in a random
  // subspace iff d ≥ 5. The best loss inside span(P) comes from lstsq on X P (independent).
  const std::int64_t n = 5, dim = 40;
  auto x = torch::randn({n, dim}, f64());
  auto y = torch::randn({n}, f64());
  for (std::int64_t d : {3, 8}) {
    auto w = torch::zeros({dim}, f64()).requires_grad_(true);
    D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
    auto opts = D::SubspaceTrainingOptions().dim(d).seed(7);
    D::RandomSubspace p(dim, d, 7, f64());
    auto xp = x.mm(p.matrix());
    const double lmax = torch::linalg_eigvalsh(xp.t().mm(xp) / n)[-1].item<double>();
    auto r = D::train_in_subspace({w}, loss, {{x, y}}, opts.steps(3000).learning_rate(1.0 / lmax));
    auto best = std::get<0>(torch::linalg_lstsq(xp, y.unsqueeze(1))).squeeze(1);
    const double best_loss = 0.5 * (xp.mv(best) - y).pow(2).mean().item<double>();
    EXPECT_NEAR(r.losses.back(), best_loss, 1e-6 + 1e-6 * best_loss) << "d = " << d;
    if (d < n) EXPECT_GT(best_loss, 1e-3);
    else EXPECT_LT(r.losses.back(), 1e-6);
    // The parameters end at θ₀ + P θ_d.
    EXPECT_LT(max_abs_diff(w.detach(), p.to_full(r.theta_d)), 1e-12);
  }
}

TEST(IntrinsicDimension, AdamGetsMostOfTheReachableDecrease) {
  auto x = torch::randn({20, 10}, f64());
  auto y = torch::randn({20}, f64());
  auto w = torch::zeros({10}, f64()).requires_grad_(true);
  D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
  auto r = D::train_in_subspace({w}, loss, {{x, y}},
                                D::SubspaceTrainingOptions().dim(4).steps(400).learning_rate(0.02).adam(true));
  auto xp = x.mm(D::RandomSubspace(10, 4, 0, f64()).matrix());
  auto best = std::get<0>(torch::linalg_lstsq(xp, y.unsqueeze(1))).squeeze(1);
  const double best_loss = 0.5 * (xp.mv(best) - y).pow(2).mean().item<double>();
  ASSERT_LT(best_loss, r.losses.front());
  EXPECT_LT(r.losses.back() - best_loss, 0.02 * (r.losses.front() - best_loss));
  EXPECT_GE(r.losses.back(), best_loss - 1e-12);
}

TEST(IntrinsicDimension, SmallestPassingDimension) {
  auto score = [](std::int64_t d) { return d >= 40 ? 0.95 : 0.5; };
  EXPECT_EQ(D::smallest_passing_dimension({100, 10, 40, 20}, score, 0.9), 40);
  EXPECT_EQ(D::smallest_passing_dimension({10, 20}, score, 0.9), -1);
}

}  // namespace
