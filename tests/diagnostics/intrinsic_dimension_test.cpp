// Random-subspace training: projection shape and norms, d = D reproduces full-space GD, and a
// least-squares problem whose reachable loss in a subspace is known in closed form. Sparse and
// Fastfood projections: the Walsh–Hadamard transform against the Sylvester matrix built by
// Kronecker products and the doctest vector of diagnostics-anchors §2.6, adjointness, Fastfood
// against its factors multiplied out as explicit matrices, density and norm statistics.
// DID / SAID fine-tuning around a given θ₀: the gradients w.r.t. θ_d and λ against central
// differences of the loss, θ_d = 0 and d = 0 give θ₀ bit for bit, SAID with λ held at 1 is DID of
// dimension d − m and DID is train_in_subspace, bit for bit; the log-interpolated d90 against hand
// values; bad budgets.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

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

/// Sylvester's Hadamard matrix H_L = H_2 ⊗ … ⊗ H_2 (independent of fast_walsh_hadamard).
torch::Tensor sylvester(std::int64_t n) {
  const auto h2 = torch::tensor({1.0, 1.0, 1.0, -1.0}, f64()).view({2, 2});
  auto h = torch::ones({1, 1}, f64());
  while (h.size(0) < n) h = torch::kron(h2, h);
  return h;
}

using Sizes = std::pair<std::int64_t, std::int64_t>;  // (D, d)

const D::Projection kAll[] = {D::Projection::Dense, D::Projection::Sparse, D::Projection::Fastfood};

TEST(IntrinsicDimension, FastWalshHadamardMatchesTheSylvesterMatrix) {
  // The Wikipedia case quoted by the repository's doctest (diagnostics-anchors §2.6).
  const auto x = torch::tensor({1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0}, f64());
  const auto hx = D::fast_walsh_hadamard(x);
  const auto expected = torch::tensor({4.0, 2.0, 0.0, -2.0, 0.0, 2.0, 0.0, 2.0}, f64());
  EXPECT_EQ(max_abs_diff(hx, expected), 0.0) << hx;
  // The normalised transform is an involution: H H = L I.
  EXPECT_LT(max_abs_diff(D::fast_walsh_hadamard(hx) / 8.0, x), 1e-15);
  for (std::int64_t n : {1, 2, 8, 16, 64}) {
    const auto h = sylvester(n);
    auto v = torch::randn({3, 2, n}, f64());
    EXPECT_LT(max_abs_diff(D::fast_walsh_hadamard(v), v.matmul(h)), 1e-12) << "L = " << n;
    // A non-contiguous input (a transposed view) gives the same rows.
    auto w = torch::randn({n, 5}, f64());
    EXPECT_LT(max_abs_diff(D::fast_walsh_hadamard(w.t()), w.t().mm(h)), 1e-12) << "L = " << n;
  }
  // H_16 is the explicit ±1 matrix; and single precision works too.
  EXPECT_EQ(max_abs_diff(D::fast_walsh_hadamard(torch::eye(16, f64())), sylvester(16)), 0.0);
  EXPECT_LT(max_abs_diff(D::fast_walsh_hadamard(x.to(torch::kFloat32)).to(torch::kFloat64), expected), 1e-6);
  EXPECT_THROW(D::fast_walsh_hadamard(torch::ones({6}, f64())), stablelearn::ShapeError);
  // The input is left alone, and with autograd the gradient of ⟨c, Hx⟩ is Hc (H symmetric).
  const auto x0 = x.clone();
  D::fast_walsh_hadamard(D::fast_walsh_hadamard(x));
  EXPECT_TRUE(x.equal(x0));
  const auto xg = torch::randn({32}, f64()).requires_grad_(true), c = torch::randn({32}, f64());
  const auto hxg = D::fast_walsh_hadamard(xg);
  EXPECT_LT(max_abs_diff(hxg.detach(), sylvester(32).mv(xg.detach())), 1e-12);
  hxg.dot(c).backward();
  EXPECT_LT(max_abs_diff(xg.grad(), sylvester(32).mv(c)), 1e-12);
}

TEST(IntrinsicDimension, EveryProjectionHasAnExactAdjoint) {
  // ⟨P x, y⟩ = ⟨x, Pᵀ y⟩, also for D a power of two (L = D), D = 1 and d = D.
  for (auto kind : kAll) {
    for (auto [dim, d] : std::vector<Sizes>{{300, 17}, {64, 64}, {1, 1}, {1000, 3}}) {
      D::RandomSubspace p(dim, d, 11, f64(), kind);
      EXPECT_EQ(p.full_dim(), dim);
      EXPECT_EQ(p.dim(), d);
      EXPECT_EQ(p.kind(), kind);
      for (int trial = 0; trial < 3; ++trial) {
        const auto x = torch::randn({d}, f64()), y = torch::randn({dim}, f64());
        const double lhs = p.to_full(x).dot(y).item<double>(), rhs = x.dot(p.to_subspace(y)).item<double>();
        EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << D::projection_name(kind) << " D = " << dim << " d = " << d;
      }
      // The materialised matrix (columns P e_j) gives both maps.
      const auto m = p.to_dense();
      ASSERT_EQ(m.sizes(), (std::vector<std::int64_t>{dim, d}));
      const auto x = torch::randn({d}, f64()), y = torch::randn({dim}, f64());
      EXPECT_LT(max_abs_diff(p.to_full(x), m.mv(x)), 1e-12);
      EXPECT_LT(max_abs_diff(p.to_subspace(y), m.t().mv(y)), 1e-12);
      // Dense and sparse columns have unit norm exactly.
      if (kind != D::Projection::Fastfood) {
        EXPECT_LT(max_abs_diff(m.norm(2, {0}), torch::ones({d}, f64())), 1e-12);
      }
    }
  }
}

TEST(IntrinsicDimension, SparseProjectionHasDensityOneOverRootDAndUnitColumns) {
  const std::int64_t dim = 10000, d = 200;
  D::RandomSubspace p(dim, d, 5, f64(), D::Projection::Sparse);
  const auto m = p.to_dense();
  // Non-zeros ~ Binomial(D·d, s) with s = 1/√D = 0.01: mean 20000, sd 140.7; allow 5 sd.
  const double s = 0.01, mean = s * dim * d, sd = std::sqrt(dim * d * s * (1 - s));
  const auto nnz = m.ne(0).sum().item<std::int64_t>();
  EXPECT_NEAR(static_cast<double>(nnz), mean, 5 * sd);
  EXPECT_EQ(nnz, p.sparse_values().numel());  // no duplicated position inside a column
  // Per column: nnz_j ~ Binomial(D, s) (mean 100, sd 9.95): the sample sd is near it.
  const auto per_col = m.ne(0).sum(0).to(torch::kFloat64);
  EXPECT_NEAR(per_col.std().item<double>(), std::sqrt(dim * s * (1 - s)), 2.0);
  // Unit columns whose non-zeros are ±1/√nnz_j, with balanced signs (sd of the count 70.7).
  EXPECT_LT(max_abs_diff(m.norm(2, {0}), torch::ones({d}, f64())), 1e-12);
  const auto expected_abs = (1.0 / per_col.sqrt()).unsqueeze(0).expand({dim, d});
  EXPECT_LT(max_abs_diff(m.abs().masked_select(m.ne(0)), expected_abs.masked_select(m.ne(0))), 1e-15);
  EXPECT_NEAR(static_cast<double>(m.gt(0).sum().item<std::int64_t>()), 0.5 * static_cast<double>(nnz),
              5 * 0.5 * std::sqrt(static_cast<double>(nnz)));
  // Rows are spread over all of [0, D): each tenth of the rows holds ~10 % of the non-zeros.
  const auto by_tenth = m.ne(0).sum(1).to(torch::kFloat64).view({10, dim / 10}).sum(1);
  EXPECT_LT((by_tenth - mean / 10).abs().max().item<double>(), 5 * std::sqrt(mean / 10));
  // Tiny D: every column still has a non-zero, so unit norm.
  D::RandomSubspace tiny(4, 4, 1, f64(), D::Projection::Sparse);
  EXPECT_LT(max_abs_diff(tiny.to_dense().norm(2, {0}), torch::ones({4}, f64())), 1e-12);
}

TEST(IntrinsicDimension, FastfoodEqualsItsFactorsMultipliedOut) {
  // V = H G Π H B with explicit matrices (Sylvester H, (Πx)_i = x_{π(i)}), sliced to D × d and
  // divided by √(L ΣG²) √(D/L); compared with the FWHT-based maps.
  for (auto [dim, d] : std::vector<Sizes>{{100, 20}, {128, 7}, {33, 33}}) {
    D::RandomSubspace p(dim, d, 9, f64(), D::Projection::Fastfood);
    const auto l = p.fastfood_length();
    ASSERT_EQ(l, dim <= 32 ? 32 : (dim <= 64 ? 64 : 128));
    const auto b = p.fastfood_signs(), g = p.fastfood_gaussian(), pi = p.fastfood_permutation();
    EXPECT_TRUE(b.abs().eq(1).all().item<bool>());
    EXPECT_TRUE(std::get<0>(pi.sort()).equal(torch::arange(l, torch::kInt64)));
    const auto h = sylvester(l);
    const auto pm = torch::eye(l, f64()).index_select(0, pi);
    const auto v = h.mm(torch::diag(g)).mm(pm).mm(h).mm(torch::diag(b));
    const double divisor = std::sqrt(l * g.pow(2).sum().item<double>()) * std::sqrt(static_cast<double>(dim) / l);
    EXPECT_NEAR(p.fastfood_divisor(), divisor, 1e-12 * divisor);
    const auto expected = v.slice(0, 0, dim).slice(1, 0, d) / divisor;
    // Every column of V has norm √(L ΣG²) over all L rows.
    EXPECT_LT(max_abs_diff(v.norm(2, {0}), torch::full({l}, divisor / std::sqrt(static_cast<double>(dim) / l), f64())),
              1e-9 * divisor);
    const auto theta = torch::randn({d}, f64()), y = torch::randn({dim}, f64());
    EXPECT_LT(max_abs_diff(p.to_full(theta), expected.mv(theta)), 1e-12) << "D = " << dim;
    EXPECT_LT(max_abs_diff(p.to_subspace(y), expected.t().mv(y)), 1e-12) << "D = " << dim;
    EXPECT_LT(max_abs_diff(p.to_dense(), expected), 1e-12);
  }
}

TEST(IntrinsicDimension, FastfoodColumnsHaveUnitNormInExpectationAndAreNearlyOrthogonal) {
  // D = 3000 in L = 4096: the squared norm of a column over the first D rows is D/L of its full
  // norm in expectation, and the divisor puts that back to 1. Per column the squared norm is about
  // a χ²_D/D (sd √(2/D) ≈ 0.026); its mean over 200 columns and 3 seeds has sd ≈ 0.0015 for a
  // fixed G (G is shared by the columns of one projection, which adds a little).
  const std::int64_t dim = 3000, d = 200;
  std::vector<double> means;
  for (std::uint64_t seed : {1, 2, 3}) {
    D::RandomSubspace p(dim, d, seed, f64(), D::Projection::Fastfood);
    const auto m = p.to_dense();
    const auto sq = m.pow(2).sum(0);
    means.push_back(sq.mean().item<double>());
    EXPECT_NEAR(means.back(), 1.0, 0.02) << "seed " << seed;
    EXPECT_LT((sq - 1).abs().max().item<double>(), 0.25) << "seed " << seed;
    // Off-diagonal cosines are O(1/√D) ≈ 0.018.
    const auto n = m / m.norm(2, {0}, true);
    const auto cos = n.t().mm(n) - torch::eye(d, f64());
    EXPECT_LT(cos.abs().max().item<double>(), 0.15) << "seed " << seed;
  }
  EXPECT_NEAR((means[0] + means[1] + means[2]) / 3, 1.0, 0.01);
}

TEST(IntrinsicDimension, SameSeedGivesTheSameProjection) {
  for (auto kind : kAll) {
    const auto a = D::RandomSubspace(500, 12, 42, f64(), kind).to_dense();
    const auto b = D::RandomSubspace(500, 12, 42, f64(), kind).to_dense();
    const auto c = D::RandomSubspace(500, 12, 43, f64(), kind).to_dense();
    EXPECT_TRUE(a.equal(b)) << D::projection_name(kind);
    EXPECT_FALSE(a.equal(c)) << D::projection_name(kind);
    // libtorch's mt19937 keeps only the low 32 bits of a seed (documented in the header).
    EXPECT_TRUE(a.equal(D::RandomSubspace(500, 12, 42 + (std::uint64_t{1} << 32), f64(), kind).to_dense()));
  }
  // Single precision is the float64 draw rounded.
  const auto a32 = D::RandomSubspace(500, 12, 42, torch::kFloat32, D::Projection::Fastfood).to_dense();
  EXPECT_LT(max_abs_diff(a32.to(torch::kFloat64), D::RandomSubspace(500, 12, 42, f64(), D::Projection::Fastfood).to_dense()), 1e-5);
}

TEST(IntrinsicDimension, ProjectionNamesOptionsAndMisuse) {
  EXPECT_EQ(D::SubspaceTrainingOptions().projection(), D::Projection::Dense);
  for (auto kind : kAll) EXPECT_EQ(D::parse_projection(D::projection_name(kind)), kind);
  try {
    D::parse_projection("gaussian");
    ADD_FAILURE() << "no error";
  } catch (const stablelearn::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dense, sparse, fastfood"), std::string::npos) << e.what();
  }
  EXPECT_THROW(D::RandomSubspace(10, 3, 0, f64(), D::Projection::Sparse, true), stablelearn::ConfigError);
  EXPECT_THROW(D::RandomSubspace(10, 11, 0, f64(), D::Projection::Fastfood), stablelearn::ConfigError);
  EXPECT_THROW(D::RandomSubspace(10, 3, 0, f64(), D::Projection::Fastfood).matrix(), stablelearn::ConfigError);
  EXPECT_THROW(D::RandomSubspace(10, 3, 0, f64(), D::Projection::Sparse).to_full(torch::ones({4}, f64())),
               stablelearn::ShapeError);
}

TEST(IntrinsicDimension, SparseAndFastfoodSubspaceTrainingReachesTheSubspaceOptimum) {
  // As the dense test: least squares with 5 equations in 40 unknowns; the best loss inside span(P)
  // is lstsq on X P, with P materialised column by column.
  // Own generator: the data do not depend on which tests ran before.
  const std::int64_t n = 5, dim = 40;
  auto gen = at::detail::createCPUGenerator(2018);
  auto x = torch::randn({n, dim}, gen, f64());
  auto y = torch::randn({n}, gen, f64());
  for (auto kind : {D::Projection::Sparse, D::Projection::Fastfood}) {
    for (std::int64_t d : {3, 8}) {
      auto w = torch::zeros({dim}, f64()).requires_grad_(true);
      D::LossFn loss = [w](const D::Batch& b) { return 0.5 * (b.x.mv(w) - b.y).pow(2).mean(); };
      D::RandomSubspace p(dim, d, 7, f64(), kind);
      auto xp = x.mm(p.to_dense());
      const double lmax = torch::linalg_eigvalsh(xp.t().mm(xp) / n)[-1].item<double>();
      auto r = D::train_in_subspace({w}, loss, {{x, y}},
                                    D::SubspaceTrainingOptions().dim(d).seed(7).projection(kind).steps(3000).learning_rate(1.0 / lmax));
      auto best = std::get<0>(torch::linalg_lstsq(xp, y.unsqueeze(1))).squeeze(1);
      const double best_loss = 0.5 * (xp.mv(best) - y).pow(2).mean().item<double>();
      const auto what = std::string(D::projection_name(kind)) + " d = " + std::to_string(d);
      EXPECT_LT(r.losses.back(), r.losses.front() - 1e-3) << what;
      EXPECT_NEAR(r.losses.back(), best_loss, 1e-6 + 1e-6 * best_loss) << what;
      if (d < n) EXPECT_GT(best_loss, 1e-3) << what;
      else EXPECT_LT(r.losses.back(), 1e-6) << what;
      EXPECT_LT(max_abs_diff(w.detach(), p.to_full(r.theta_d)), 1e-12) << what;
    }
  }
}

TEST(IntrinsicDimension, SmallestPassingDimension) {
  auto score = [](std::int64_t d) { return d >= 40 ? 0.95 : 0.5; };
  EXPECT_EQ(D::smallest_passing_dimension({100, 10, 40, 20}, score, 0.9), 40);
  EXPECT_EQ(D::smallest_passing_dimension({10, 20}, score, 0.9), -1);
}

// Bisection against the linear scan for every position of a monotone crossing on grids of 1 to 17
// points (including none passing), with the evaluation count ⌈log₂(n + 1)⌉ as its bound; a
// non-monotone predicate still gives a crossing; unsorted input with duplicates.
TEST(IntrinsicDimension, BisectionFindsTheSmallestPassingDimension) {
  for (std::size_t n = 1; n <= 17; ++n) {
    std::vector<std::int64_t> dims;
    for (std::size_t i = 0; i < n; ++i) dims.push_back(16 + 10 * static_cast<std::int64_t>(i));
    const auto bound = static_cast<std::size_t>(std::ceil(std::log2(static_cast<double>(n) + 1.0)));
    for (std::size_t c = 0; c <= n; ++c) {  // dims[c] is the first passing d (c = n: none)
      const std::int64_t cut = c < n ? dims[c] : 1 << 30;
      std::vector<std::int64_t> seen;
      auto passes = [&](std::int64_t d) {
        seen.push_back(d);
        return d >= cut;
      };
      const auto r = D::bisect_passing_dimension(dims, passes);
      const auto linear = D::smallest_passing_dimension(dims, [&](std::int64_t d) { return d >= cut ? 1.0 : 0.0; }, 0.5);
      EXPECT_EQ(r.dim, linear) << "n = " << n << ", c = " << c;
      EXPECT_EQ(r.dim, c < n ? dims[c] : -1);
      EXPECT_LE(r.probes.size(), bound) << "n = " << n << ", c = " << c;
      ASSERT_EQ(r.probes.size(), seen.size());
      for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(r.probes[i].first, seen[i]);
        EXPECT_EQ(r.probes[i].second, seen[i] >= cut);
      }
      std::sort(seen.begin(), seen.end());
      EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end()) << "a d evaluated twice";
    }
  }
  // Non-monotone: passing at 20 and from 50 on, the bisection (40 fails, 60 and 50 pass) returns the
  // crossing at 50 — it passed and its predecessor 40 failed — not the smallest passing d, 20.
  const std::vector<std::int64_t> grid{10, 20, 30, 40, 50, 60, 70};
  std::map<std::int64_t, bool> result;
  auto bumpy = [&](std::int64_t d) { return result[d] = (d == 20 || d >= 50); };
  const auto r = D::bisect_passing_dimension(grid, bumpy);
  EXPECT_EQ(r.dim, 50);
  EXPECT_TRUE(result.at(50));
  EXPECT_FALSE(result.at(40));
  // Passing only at 20: −1, and the largest d was evaluated and failed.
  result.clear();
  auto lone = [&](std::int64_t d) { return result[d] = d == 20; };
  EXPECT_EQ(D::bisect_passing_dimension(grid, lone).dim, -1);
  ASSERT_TRUE(result.count(70));
  EXPECT_FALSE(result.at(70));
  // Unsorted with duplicates: sorted and made unique first (3 distinct values → at most 2 probes).
  const auto u = D::bisect_passing_dimension({40, 10, 40, 20, 10}, [](std::int64_t d) { return d >= 20; });
  EXPECT_EQ(u.dim, 20);
  EXPECT_LE(u.probes.size(), 2u);
  EXPECT_THROW(D::bisect_passing_dimension({}, [](std::int64_t) { return true; }), stablelearn::ConfigError);
}

// ---- DID / SAID ---------------------------------------------------------------------------------

/// A small tanh network 3-6-3 in float64 with cross-entropy on 20 points: four tensors (m = 4),
/// D = 18 + 6 + 18 + 3 = 45. Own generator, so the problem does not depend on test order.
struct TinyNet {
  std::vector<torch::Tensor> params;
  torch::Tensor x, y;
  D::LossFn loss;
  explicit TinyNet(std::uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed);
    params = {torch::randn({6, 3}, gen, f64()), torch::randn({6}, gen, f64()) * 0.3, torch::randn({3, 6}, gen, f64()) * 0.5,
              torch::randn({3}, gen, f64()) * 0.3};
    for (auto& p : params) p.requires_grad_(true);
    x = torch::randn({20, 3}, gen, f64());
    y = torch::randint(0, 3, {20}, gen, torch::TensorOptions().dtype(torch::kInt64));
    const auto w = params;
    loss = [w](const D::Batch& b) {
      const auto h = torch::tanh(b.x.mm(w[0].t()) + w[1]);
      return -torch::log_softmax(h.mm(w[2].t()) + w[3], 1).gather(1, b.y.unsqueeze(1)).mean();
    };
  }
  std::vector<D::Batch> batches() const { return {{x.slice(0, 0, 13), y.slice(0, 0, 13)}, {x.slice(0, 13), y.slice(0, 13)}}; }
  std::vector<torch::Tensor> snapshot() const {
    std::vector<torch::Tensor> out;
    for (const auto& p : params) out.push_back(p.detach().clone());
    return out;
  }
};

bool bitwise_equal(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ca = a.detach().contiguous(), cb = b.detach().contiguous();
  return ca.sizes() == cb.sizes() && ca.scalar_type() == cb.scalar_type() &&
         std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<std::size_t>(ca.numel()) * ca.element_size()) == 0;
}

TEST(SubspaceFinetune, GradientsMatchCentralDifferences) {
  // L(θ_d, λ) through θ = θ₀ + λ̃ ⊙ Pθ_d: the analytic Pᵀ(λ̃ ⊙ g) and ⟨g_i, (Pθ_d)_i⟩ against
  // (L(+h) − L(−h)) / 2h, h = 1e-6, in float64, at random θ_d and λ ≠ 1.
  for (auto kind : kAll) {
    for (bool said : {false, true}) {
      TinyNet net(11);
      const auto options = D::SubspaceFinetuneOptions().dim(said ? 9 : 5).structure_aware(said).projection(kind).seed(5);
      const D::SubspaceFinetuneObjective obj(net.params, net.loss, net.batches(), options);
      ASSERT_EQ(obj.full_dim(), 45);
      ASSERT_EQ(obj.subspace_dim(), 5);
      ASSERT_EQ(obj.scale_count(), said ? 4 : 0);
      auto gen = at::detail::createCPUGenerator(3);
      const auto theta_d = 0.7 * torch::randn({5}, gen, f64());
      const auto scales = said ? 0.5 + torch::rand({4}, gen, f64()) : torch::Tensor();
      const auto v = obj.evaluate(theta_d, scales);
      const double h = 1e-6;
      const auto what = std::string(D::projection_name(kind)) + (said ? " SAID" : " DID");
      for (std::int64_t j = 0; j < 5; ++j) {
        auto e = torch::zeros({5}, f64());
        e[j] = h;
        const double fd = (obj.evaluate(theta_d + e, scales).loss - obj.evaluate(theta_d - e, scales).loss) / (2 * h);
        EXPECT_NEAR(v.grad_theta_d[j].item<double>(), fd, 1e-8) << what << " θ_d[" << j << "]";
      }
      ASSERT_EQ(v.grad_scales.numel(), said ? 4 : 0);
      for (std::int64_t i = 0; i < obj.scale_count(); ++i) {
        auto e = torch::zeros({4}, f64());
        e[i] = h;
        const double fd = (obj.evaluate(theta_d, scales + e).loss - obj.evaluate(theta_d, scales - e).loss) / (2 * h);
        EXPECT_NEAR(v.grad_scales[i].item<double>(), fd, 1e-8) << what << " λ[" << i << "]";
        EXPECT_GT(std::abs(fd), 1e-6) << what << ": a scale with no effect makes the test empty";
      }
      // The parameters are left at θ(θ_d, λ), computed here independently per tensor.
      obj.write(theta_d, scales);
      const auto offset = obj.projection().to_dense().mv(theta_d);
      std::int64_t at = 0;
      for (std::size_t i = 0; i < net.params.size(); ++i) {
        const auto n = net.params[i].numel();
        const double lam = said ? scales[static_cast<std::int64_t>(i)].item<double>() : 1.0;
        const auto expect = obj.theta0().slice(0, at, at + n) + lam * offset.slice(0, at, at + n);
        EXPECT_LT(max_abs_diff(net.params[i].detach().reshape({-1}), expect), 1e-12) << what << " tensor " << i;
        at += n;
      }
    }
  }
}

TEST(SubspaceFinetune, ZeroOffsetGivesThetaZeroBitForBit) {
  for (auto kind : kAll) {
    for (bool said : {false, true}) {
      TinyNet net(12);
      const auto theta0 = net.snapshot();
      const auto options = D::SubspaceFinetuneOptions().dim(said ? 10 : 6).structure_aware(said).projection(kind).seed(1);
      const D::SubspaceFinetuneObjective obj(net.params, net.loss, net.batches(), options);
      const auto flat0 = torch::cat({theta0[0].reshape(-1), theta0[1].reshape(-1), theta0[2].reshape(-1), theta0[3].reshape(-1)});
      EXPECT_TRUE(bitwise_equal(obj.parameters_at(obj.initial_theta_d(), obj.initial_scales()), flat0));
      // λ arbitrary: still θ₀ at θ_d = 0.
      if (said) {
        EXPECT_TRUE(bitwise_equal(obj.parameters_at(obj.initial_theta_d(), torch::full({4}, -3.7, f64())), flat0));
      }
      // No steps: the parameters are written back to θ₀ exactly.
      D::finetune_in_subspace(net.params, net.loss, net.batches(), D::SubspaceFinetuneOptions(options).steps(0));
      for (std::size_t i = 0; i < theta0.size(); ++i) EXPECT_TRUE(bitwise_equal(net.params[i], theta0[i])) << i;
    }
  }
  // d = 0 (DID): nothing is trained, every step sees θ₀ and the loss does not move.
  TinyNet net(13);
  const auto theta0 = net.snapshot();
  const auto r = D::finetune_in_subspace(net.params, net.loss, net.batches(), D::SubspaceFinetuneOptions().dim(0).steps(4));
  EXPECT_EQ(r.theta_d.numel(), 0);
  ASSERT_EQ(r.losses.size(), 5u);
  for (double l : r.losses) EXPECT_EQ(l, r.losses[0]);
  for (std::size_t i = 0; i < theta0.size(); ++i) EXPECT_TRUE(bitwise_equal(net.params[i], theta0[i])) << i;
}

TEST(SubspaceFinetune, SaidWithScalesHeldAtOneIsDidBitForBit) {
  for (auto kind : kAll) {
    for (bool adam : {true, false}) {
      TinyNet a(14), b(14);
      const auto base = D::SubspaceFinetuneOptions().projection(kind).seed(9).steps(15).adam(adam).learning_rate(0.05);
      const auto did = D::finetune_in_subspace(a.params, a.loss, a.batches(), D::SubspaceFinetuneOptions(base).dim(7));
      const auto said = D::finetune_in_subspace(b.params, b.loss, b.batches(),
                                                D::SubspaceFinetuneOptions(base).dim(7 + 4).structure_aware(true).learn_scales(false));
      const auto what = std::string(D::projection_name(kind)) + (adam ? " Adam" : " GD");
      EXPECT_EQ(did.losses, said.losses) << what;
      EXPECT_LT(did.losses.back(), did.losses.front()) << what;
      EXPECT_TRUE(bitwise_equal(did.theta_d, said.theta_d)) << what;
      EXPECT_TRUE(bitwise_equal(said.scales, torch::ones({4}, f64()))) << what;
      for (std::size_t i = 0; i < a.params.size(); ++i) EXPECT_TRUE(bitwise_equal(a.params[i], b.params[i])) << what << " " << i;
    }
  }
}

TEST(SubspaceFinetune, DidIsTrainInSubspaceAndSaidLearnsItsScales) {
  for (auto kind : kAll) {
    TinyNet a(15), b(15), c(15);
    const auto what = std::string(D::projection_name(kind));
    const auto did = D::finetune_in_subspace(a.params, a.loss, a.batches(),
                                             D::SubspaceFinetuneOptions().dim(6).projection(kind).seed(4).steps(20).learning_rate(0.03));
    const auto ref = D::train_in_subspace(b.params, b.loss, b.batches(),
                                          D::SubspaceTrainingOptions().dim(6).projection(kind).seed(4).steps(20).learning_rate(0.03).adam(true));
    EXPECT_EQ(did.losses, ref.losses) << what;
    EXPECT_TRUE(bitwise_equal(did.theta_d, ref.theta_d)) << what;
    for (std::size_t i = 0; i < a.params.size(); ++i) EXPECT_TRUE(bitwise_equal(a.params[i], b.params[i])) << what << " " << i;
    // SAID moves λ away from 1 and lowers the loss; the parameters end at θ(θ_d, λ).
    const auto theta0 = c.snapshot();
    const auto said = D::finetune_in_subspace(c.params, c.loss, c.batches(),
                                              D::SubspaceFinetuneOptions().dim(10).structure_aware(true).projection(kind).seed(4).steps(20).learning_rate(0.03));
    EXPECT_LT(said.losses.back(), said.losses.front()) << what;
    EXPECT_GT((said.scales - 1).abs().max().item<double>(), 1e-3) << what;
    const auto offset = D::RandomSubspace(45, 6, 4, f64(), kind).to_full(said.theta_d);
    std::int64_t at = 0;
    for (std::size_t i = 0; i < c.params.size(); ++i) {
      const auto n = c.params[i].numel();
      const auto expect = theta0[i].reshape(-1) + said.scales[static_cast<std::int64_t>(i)] * offset.slice(0, at, at + n);
      EXPECT_LT(max_abs_diff(c.params[i].detach().reshape(-1), expect), 1e-12) << what << " " << i;
      at += n;
    }
  }
}

TEST(SubspaceFinetune, BadBudgetsAndShapesAreClearErrors) {
  TinyNet net(16);
  auto expect_config = [&](const D::SubspaceFinetuneOptions& o, const std::string& words) {
    try {
      D::finetune_in_subspace(net.params, net.loss, net.batches(), o);
      ADD_FAILURE() << "no error for " << words;
    } catch (const stablelearn::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_config(D::SubspaceFinetuneOptions().dim(-1), "non-negative");
  expect_config(D::SubspaceFinetuneOptions().dim(46), "d ≤ D = 45");
  expect_config(D::SubspaceFinetuneOptions().dim(4).structure_aware(true), "m = 4");
  expect_config(D::SubspaceFinetuneOptions().dim(50).structure_aware(true), "m = 4");
  expect_config(D::SubspaceFinetuneOptions().steps(-2), "steps");
  expect_config(D::SubspaceFinetuneOptions().learning_rate(0), "learning_rate");
  expect_config(D::SubspaceFinetuneOptions().learning_rate(std::nan("")), "learning_rate");
  EXPECT_NO_THROW(D::finetune_in_subspace(net.params, net.loss, net.batches(), D::SubspaceFinetuneOptions().dim(45).steps(1)));
  EXPECT_NO_THROW(D::finetune_in_subspace(net.params, net.loss, net.batches(),
                                          D::SubspaceFinetuneOptions().dim(49).structure_aware(true).steps(1)));
  const D::SubspaceFinetuneObjective obj(net.params, net.loss, net.batches(), D::SubspaceFinetuneOptions().dim(8).structure_aware(true));
  EXPECT_THROW(obj.parameters_at(torch::zeros({5}, f64()), torch::ones({4}, f64())), stablelearn::ShapeError);
  EXPECT_THROW(obj.parameters_at(torch::zeros({4}, f64()), torch::ones({3}, f64())), stablelearn::ShapeError);
  EXPECT_THROW(obj.parameters_at(torch::zeros({4}, f64()), torch::Tensor()), stablelearn::ShapeError);
  const D::SubspaceFinetuneObjective none(net.params, net.loss, net.batches(), D::SubspaceFinetuneOptions().dim(0));
  EXPECT_THROW(none.projection(), stablelearn::ConfigError);
}

TEST(SubspaceFinetune, InterpolatedCrossing) {
  // Between d = 20 (0.7) and 40 (0.9), 0.8 is halfway: log d90 = (log 20 + log 40) / 2, d90 = 20√2.
  EXPECT_NEAR(D::interpolated_crossing({10, 20, 40, 80}, {0.5, 0.7, 0.9, 0.95}, 0.8), 20 * std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(D::interpolated_crossing({10, 20, 40}, {0.5, 0.6, 0.9}, 0.9), 40, 1e-9);
  EXPECT_EQ(D::interpolated_crossing({10, 20}, {0.95, 0.99}, 0.9), 10);
  EXPECT_TRUE(std::isnan(D::interpolated_crossing({10, 20}, {0.5, 0.6}, 0.9)));
  EXPECT_NEAR(D::interpolated_crossing({10, 20}, {std::nan(""), 0.95}, 0.9), 20, 1e-9);
  EXPECT_THROW(D::interpolated_crossing({10, 20}, {0.5}, 0.9), stablelearn::ConfigError);
  EXPECT_THROW(D::interpolated_crossing({20, 10}, {0.5, 0.6}, 0.9), stablelearn::ConfigError);
  EXPECT_THROW(D::interpolated_crossing({0, 10}, {0.5, 0.6}, 0.9), stablelearn::ConfigError);
}

}  // namespace
