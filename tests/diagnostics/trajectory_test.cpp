// Trajectory PCA on synthetic trajectories of known rank, against torch::linalg_svdvals.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/trajectory.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::max_abs_diff;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// θ_t = θ₀ + Σ_{j<r} c_j(t) u_j with orthonormal u_j ∈ R^D and distinct coefficient curves.
torch::Tensor low_rank_trajectory(std::int64_t t_count, std::int64_t dim, std::int64_t rank, torch::Tensor* basis = nullptr) {
  auto u = D::testing::random_orthogonal(dim, 50).narrow(1, 0, rank);  // [D, r]
  auto t = torch::linspace(0.0, 1.0, t_count, f64());
  std::vector<torch::Tensor> coeffs;
  for (std::int64_t j = 0; j < rank; ++j) coeffs.push_back((j + 1.0) * torch::sin((j + 1.0) * 2.5 * t) + t.pow(j + 1));
  auto c = torch::stack(coeffs, 1);  // [T, r]
  if (basis != nullptr) *basis = u;
  return torch::randn({dim}, f64()) + c.mm(u.t());
}

TEST(Trajectory, PcaOfARankThreeTrajectory) {
  torch::Tensor u;
  auto m = low_rank_trajectory(25, 200, 3, &u);
  auto pca = D::trajectory_pca(m);
  ASSERT_EQ(pca.explained_variance.size(0), 3);
  // Explained variance = squared singular values of the centred matrix / (T − 1).
  auto c = m - m.mean(0);
  auto sv = torch::linalg_svdvals(c);
  EXPECT_LT(max_abs_diff(pca.explained_variance, sv.narrow(0, 0, 3).pow(2) / 24.0), 1e-10 * sv[0].item<double>());
  EXPECT_NEAR(pca.explained_variance_ratio.sum().item<double>(), 1.0, 1e-12);
  EXPECT_LE(pca.rank_at_threshold, 3);
  // Components: orthonormal, inside span(u); projections reconstruct the centred trajectory.
  EXPECT_LT(max_abs_diff(pca.components.mm(pca.components.t()), torch::eye(3, f64())), 1e-10);
  auto outside = pca.components.t() - u.mm(u.t().mm(pca.components.t()));
  EXPECT_LT(outside.abs().max().item<double>(), 1e-10);
  EXPECT_LT(max_abs_diff(pca.projections.mm(pca.components), c), 1e-10);
  EXPECT_LT(max_abs_diff(pca.mean, m.mean(0)), 1e-14);
  // Effective rank: exp of the entropy of the normalised singular values.
  auto p = sv.narrow(0, 0, 3) / sv.narrow(0, 0, 3).sum();
  EXPECT_NEAR(pca.effective_rank, std::exp(-(p * p.log()).sum().item<double>()), 1e-10);
  EXPECT_GT(pca.effective_rank, 1.0);
  EXPECT_LT(pca.effective_rank, 3.0);
  // Keeping two components.
  auto two = D::trajectory_pca(m, D::TrajectoryPcaOptions().components(2));
  EXPECT_EQ(two.components.size(0), 2);
  EXPECT_EQ(two.projections.size(1), 2);
  EXPECT_EQ(two.explained_variance.size(0), 3);
}

TEST(Trajectory, ASmallNoiseFloorDoesNotChangeR90) {
  auto m = low_rank_trajectory(30, 300, 2) + 1e-3 * torch::randn({30, 300}, f64());
  auto pca = D::trajectory_pca(m);
  EXPECT_EQ(pca.explained_variance.size(0), 29);  // centred rank T − 1
  EXPECT_EQ(pca.rank_at_threshold, 2);
  EXPECT_GT(pca.explained_variance_ratio.narrow(0, 0, 2).sum().item<double>(), 0.99);
  EXPECT_EQ(D::trajectory_pca(m, D::TrajectoryPcaOptions().variance_threshold(1.0)).rank_at_threshold, 29);
}

TEST(Trajectory, StraightLineHasRankOneAndFullAlignment) {
  auto dir = torch::randn({50}, f64());
  auto t = torch::arange(10, f64()).pow(2);  // uneven steps along one direction
  auto m = torch::randn({50}, f64()) + t.unsqueeze(1) * dir;
  auto pca = D::trajectory_pca(m);
  EXPECT_EQ(pca.explained_variance.size(0), 1);
  EXPECT_EQ(pca.rank_at_threshold, 1);
  EXPECT_NEAR(pca.effective_rank, 1.0, 1e-12);
  auto align = D::alignment_to_final(m);
  EXPECT_EQ(align[0].item<double>(), 0.0);
  EXPECT_LT(max_abs_diff(align.narrow(0, 1, 9), torch::ones({9}, f64())), 1e-12);
}

TEST(Trajectory, ListOfCheckpointsEqualsTheMatrixForm) {
  auto m = low_rank_trajectory(8, 24, 2);
  std::vector<torch::Tensor> list;
  for (std::int64_t i = 0; i < 8; ++i) list.push_back(m[i].reshape({4, 6}));  // shapes do not matter
  auto a = D::trajectory_pca(m), b = D::trajectory_pca(list);
  EXPECT_LT(max_abs_diff(a.explained_variance, b.explained_variance), 1e-12);
  EXPECT_LT(max_abs_diff(a.components, b.components), 1e-12);
}

TEST(Trajectory, RejectsBadInput) {
  using stablelearn::testing::expect_error;
  expect_error<stablelearn::ShapeError>([] { D::trajectory_pca(torch::randn({1, 5}, f64())); }, "T ≥ 2");
  expect_error<stablelearn::DataError>([] { D::trajectory_pca(torch::ones({4, 5}, f64())); }, "constant");
  expect_error<stablelearn::ConfigError>(
      [] { D::trajectory_pca(torch::randn({4, 5}, f64()), D::TrajectoryPcaOptions().variance_threshold(0)); }, "threshold");
  expect_error<stablelearn::ShapeError>([] { D::trajectory_pca(std::vector<torch::Tensor>{torch::zeros({3}), torch::zeros({4})}); },
                                        "checkpoint 1");
}

}  // namespace
