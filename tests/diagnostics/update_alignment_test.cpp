// Update alignment with the principal subspaces of a weight, on constructed W = U S Vᵀ and updates
// placed in or out of the top-k subspaces (closed forms), and the random baselines k²/(mn), k/m,
// k/n by Monte Carlo.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/core/error.h"
#include "stablelearn/diagnostics/update_alignment.h"
#include "testing.h"

namespace {

namespace D = stablelearn::diagnostics;
using D::testing::random_orthogonal;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// W = U diag(6, 5, 4, 3, 2, 1) Vᵀ, 8 × 6, with the bases kept for building updates.
struct Constructed {
  std::int64_t m = 8, n = 6, k = 2;
  torch::Tensor u = random_orthogonal(8, 31);  // all 8 columns: U_k and its complement
  torch::Tensor v = random_orthogonal(6, 32);
  torch::Tensor w = u.narrow(1, 0, 6).mm(torch::diag(torch::tensor({6.0, 5.0, 4.0, 3.0, 2.0, 1.0}, f64()))).mm(v.t());
  torch::Tensor uk() const { return u.narrow(1, 0, k); }
  torch::Tensor uperp() const { return u.narrow(1, k, m - k); }
  torch::Tensor vk() const { return v.narrow(1, 0, k); }
  torch::Tensor vperp() const { return v.narrow(1, k, n - k); }
  /// L A Rᵀ with a random A, scaled to unit Frobenius norm.
  static torch::Tensor block(const torch::Tensor& l, const torch::Tensor& r) {
    auto d = l.mm(torch::randn({l.size(1), r.size(1)}, f64())).mm(r.t());
    return d / d.norm();
  }
};

TEST(UpdateAlignment, UpdatesInsideAndOutsideTheSubspaces) {
  const Constructed c;
  auto check = [&](const torch::Tensor& delta, double two, double left, double right, const char* what) {
    const auto r = D::update_alignment(c.w, c.w + delta, c.k);
    EXPECT_NEAR(r.two_sided, two, 1e-12) << what;
    EXPECT_NEAR(r.left, left, 1e-12) << what;
    EXPECT_NEAR(r.right, right, 1e-12) << what;
    EXPECT_NEAR(r.update_norm, delta.norm().item<double>(), 1e-12) << what;
  };
  check(Constructed::block(c.uk(), c.vk()), 1, 1, 1, "U_k A V_kᵀ");
  check(Constructed::block(c.uperp(), c.vperp()), 0, 0, 0, "U_⊥ A V_⊥ᵀ");
  check(Constructed::block(c.uk(), c.vperp()), 0, 1, 0, "U_k A V_⊥ᵀ");
  check(Constructed::block(c.uperp(), c.vk()), 0, 0, 1, "U_⊥ A V_kᵀ");
  // Mixtures: the four blocks are Frobenius-orthogonal, so energies add. 0.6 inside both,
  // 0.8 in U_k ⊗ V_⊥: two-sided 0.36, left 1, right 0.36.
  check(0.6 * Constructed::block(c.uk(), c.vk()) + 0.8 * Constructed::block(c.uk(), c.vperp()), 0.36, 1.0, 0.36, "mix 1");
  // 1 inside both, 2 in U_⊥ ⊗ V_⊥: 1/5 everywhere.
  check(Constructed::block(c.uk(), c.vk()) + 2.0 * Constructed::block(c.uperp(), c.vperp()), 0.2, 0.2, 0.2, "mix 2");
  // A rank-one update along the top singular pair (the SFT-like case) and along the last one.
  check(c.u.select(1, 0).outer(c.v.select(1, 0)), 1, 1, 1, "u1 v1ᵀ");
  check(c.u.select(1, 5).outer(c.v.select(1, 5)), 0, 0, 0, "u6 v6ᵀ");
}

TEST(UpdateAlignment, BaselinesAndRandomUpdates) {
  const Constructed c;
  const auto r0 = D::update_alignment_of_delta(c.w, torch::randn({8, 6}, f64()), c.k);
  EXPECT_EQ(r0.k, 2);
  EXPECT_EQ(r0.rows, 8);
  EXPECT_EQ(r0.cols, 6);
  EXPECT_DOUBLE_EQ(r0.two_sided_baseline, 4.0 / 48.0);
  EXPECT_DOUBLE_EQ(r0.left_baseline, 2.0 / 8.0);
  EXPECT_DOUBLE_EQ(r0.right_baseline, 2.0 / 6.0);
  // vec ΔW uniformly oriented: the fractions are Beta(r/2, (mn − r)/2) with r = k², km, kn, mean r/(mn).
  const int trials = 2000;
  double two = 0, left = 0, right = 0;
  for (int t = 0; t < trials; ++t) {
    const auto r = D::update_alignment_of_delta(c.w, torch::randn({8, 6}, f64()), c.k);
    two += r.two_sided / trials;
    left += r.left / trials;
    right += r.right / trials;
  }
  auto tol = [&](double rank) {
    const double mn = 48.0, mean = rank / mn;
    const double var = 2.0 * mean * (1.0 - mean) / (mn + 2.0);  // Beta(a, b) variance with a + b = mn/2
    return 4.0 * std::sqrt(var / trials);
  };
  EXPECT_NEAR(two, r0.two_sided_baseline, tol(4.0));
  EXPECT_NEAR(left, r0.left_baseline, tol(16.0));
  EXPECT_NEAR(right, r0.right_baseline, tol(12.0));
}

TEST(UpdateAlignment, ShapesAndErrors) {
  const Constructed c;
  const auto delta = Constructed::block(c.uk(), c.vk());
  // The before/after form equals the delta form; a 3-D tensor is read as [shape[0], −1].
  const auto a = D::update_alignment(c.w, c.w + delta, 2);
  const auto b = D::update_alignment_of_delta(c.w, delta, 2);
  EXPECT_DOUBLE_EQ(a.two_sided, b.two_sided);
  const auto r3 = D::update_alignment_of_delta(c.w.view({8, 2, 3}), delta.view({8, 2, 3}), 2);
  EXPECT_NEAR(r3.two_sided, 1.0, 1e-12);
  // k = n = 6: V_k spans all of R^n, so the right fraction is 1; U_k spans only 6 of 8 dimensions.
  const auto full = D::update_alignment_of_delta(c.w, torch::randn({8, 6}, f64()), 6);
  EXPECT_NEAR(full.right, 1.0, 1e-12);
  EXPECT_LT(full.left, 1.0);
  // float32 inputs are computed in float64.
  EXPECT_NEAR(D::update_alignment(c.w.to(torch::kFloat32), (c.w + delta).to(torch::kFloat32), 2).two_sided, 1.0, 1e-5);
  using stablelearn::testing::expect_error;
  expect_error<stablelearn::ConfigError>([&] { D::update_alignment_of_delta(c.w, delta, 7); }, "must be in");
  expect_error<stablelearn::ConfigError>([&] { D::update_alignment_of_delta(c.w, delta, 0); }, "must be in");
  expect_error<stablelearn::DataError>([&] { D::update_alignment(c.w, c.w, 2); }, "zero");
  expect_error<stablelearn::ShapeError>([&] { D::update_alignment(c.w, c.w.t(), 2); }, "differ in shape");
  expect_error<stablelearn::ShapeError>([&] { D::update_alignment_of_delta(torch::ones({4}, f64()), torch::ones({4}, f64()), 1); },
                                        "at least 2 dimensions");
}

// W = diag(3, 1): the rank-1 reconstruction is [[3, 0], [0, 0]]; α = 1/4 keeps one entry, (0, 0).
// An update largest at (1, 1) overlaps 0, one largest at (0, 0) overlaps 1. With α = 1/2 (two
// entries; the principal mask takes (0, 0) and one tie) an update largest at (0, 0) and (1, 1) has at
// least 1/2.
TEST(UpdateAlignment, PrincipalMaskOverlapByHand) {
  const auto w = torch::tensor({3.0, 0.0, 0.0, 1.0}, f64()).view({2, 2});
  EXPECT_DOUBLE_EQ(D::principal_mask_overlap(w, torch::tensor({0.1, 0.0, 0.0, 0.5}, f64()).view({2, 2}), 1, 0.25), 0.0);
  EXPECT_DOUBLE_EQ(D::principal_mask_overlap(w, torch::tensor({0.9, 0.0, 0.2, 0.5}, f64()).view({2, 2}), 1, 0.25), 1.0);
  EXPECT_GE(D::principal_mask_overlap(w, torch::tensor({0.9, 0.0, 0.1, 0.5}, f64()).view({2, 2}), 1, 0.5), 0.5);
  // k = 2 reconstructs W itself: its largest entries (0, 0), (1, 1) against an update's (0, 1), (1, 0).
  EXPECT_DOUBLE_EQ(D::principal_mask_overlap(w, torch::tensor({0.0, 1.0, 2.0, 0.0}, f64()).view({2, 2}), 2, 0.5), 0.0);
  using stablelearn::testing::expect_error;
  expect_error<stablelearn::ConfigError>([&] { D::principal_mask_overlap(w, w, 1, 0.0); }, "alpha");
  expect_error<stablelearn::ConfigError>([&] { D::principal_mask_overlap(w, w, 3, 0.5); }, "k = 3");
}

// Updates with i.i.d. Gaussian entries: the expected overlap is α (Monte Carlo; the count of a
// random n-subset of mn entries inside a fixed n-subset is hypergeometric, sd ≤ √(n α (1 − α)) / n).
TEST(UpdateAlignment, PrincipalMaskOverlapOfRandomUpdatesIsAlpha) {
  const Constructed c;
  torch::manual_seed(5);
  const double alpha = 0.25;
  const int trials = 400;
  double mean = 0;
  for (int t = 0; t < trials; ++t) mean += D::principal_mask_overlap(c.w, torch::randn({8, 6}, f64()), c.k, alpha) / trials;
  const double n = 12, sd = std::sqrt(n * alpha * (1 - alpha)) / n;
  EXPECT_NEAR(mean, alpha, 4 * sd / std::sqrt(double(trials)));
}

// bf16 keeps 8 significant bits: near 1 its spacing is 2⁻⁷, so 1 + 2⁻¹⁰ rounds back to 1 (unchanged)
// while 1 + 2⁻⁶ is representable (changed).
TEST(UpdateAlignment, Bf16UnchangedShareByHand) {
  const auto w0 = torch::tensor({1.0f, 1.0f, 1.0f, -2.0f});
  const auto w1 = torch::tensor({1.0f + std::ldexp(1.0f, -10), 1.0f + std::ldexp(1.0f, -6), 1.0f, -2.5f});
  EXPECT_DOUBLE_EQ(D::bf16_unchanged_share(w0, w1), 0.5);
  stablelearn::testing::expect_error<stablelearn::ShapeError>([&] { D::bf16_unchanged_share(w0, w1.narrow(0, 0, 2)); },
                                                              "differ in shape");
}

}  // namespace
