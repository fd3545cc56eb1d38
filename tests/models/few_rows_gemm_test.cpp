// models/few_rows_gemm.h: every variant this CPU has, bit for bit, against a scalar loop written
// here (each product rounded to float, then added, in increasing r), over odd shapes, leading
// dimensions larger than the widths, sparse coefficients (ReLU masks, whole zero rows) and every
// row-group size; float32 and float64 against long-double sums; the thread split of the sNODE
// rollout in float32 bit for bit.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stablelearn/core/error.h"
#include "stablelearn/models/few_rows_gemm.h"
#include "stablelearn/models/snode.h"
#include "stablelearn/models/snode_rollout.h"

namespace {

namespace K = stablelearn::models::kernels;
using i64 = std::int64_t;

struct Problem {
  i64 B, rows, cols, ldy, ldx, ldm;
  std::vector<float> Y, X, M;
};

/// Normal values; a share `zeros` of X set to +0 and, every 5th row r, X[:, r] all zero.
Problem make_problem(i64 B, i64 rows, i64 cols, i64 pad, double zeros, std::uint32_t seed) {
  Problem p{B, rows, cols, cols + pad, rows + pad, cols + pad, {}, {}, {}};
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  std::uniform_real_distribution<double> u;
  p.Y.resize(static_cast<std::size_t>(B * p.ldy));
  p.X.resize(static_cast<std::size_t>(B * p.ldx));
  p.M.resize(static_cast<std::size_t>(rows * p.ldm));
  for (auto& y : p.Y) y = n(g);
  for (auto& m : p.M) m = n(g) * 0.1f;
  for (i64 b = 0; b < B; ++b)
    for (i64 r = 0; r < rows; ++r) p.X[b * p.ldx + r] = (r % 5 == 4 || u(g) < zeros) ? 0.0f : n(g);
  return p;
}

/// Y[b, j] = Y[b, j] + fl(X[b, r] · M[r, j]) for r = 0, 1, ... (zero coefficients skipped; the
/// product is stored to a volatile float so that no compiler fuses it with the addition).
std::vector<float> reference(const Problem& p) {
  auto Y = p.Y;
  for (i64 b = 0; b < p.B; ++b)
    for (i64 j = 0; j < p.cols; ++j) {
      float y = Y[b * p.ldy + j];
      for (i64 r = 0; r < p.rows; ++r) {
        const float a = p.X[b * p.ldx + r];
        if (a == 0.0f) continue;
        volatile float prod = a * p.M[r * p.ldm + j];
        y = y + prod;
      }
      Y[b * p.ldy + j] = y;
    }
  return Y;
}

std::vector<K::GemmIsa> variants() {
  std::vector<K::GemmIsa> v;
  for (auto isa : {K::GemmIsa::Portable, K::GemmIsa::Avx2, K::GemmIsa::Avx512})
    if (K::gemm_isa_supported(isa)) v.push_back(isa);
  return v;
}

}  // namespace

TEST(FewRowsGemm, EveryVariantRoundsEachProductThenAddsInRowOrderBitForBit) {
  const auto isas = variants();
  EXPECT_EQ(isas.back(), K::gemm_best_isa());
  std::uint32_t seed = 1;
  // B covers every row-group size of both variants (AVX2 groups ≤ 6, AVX-512 ≤ 8) and a split
  // into several groups; cols every tail length around the 16- and 32-column blocks; rows around
  // the 32-row chunk.
  for (i64 B : {1, 2, 3, 5, 6, 7, 8, 9, 13})
    for (i64 cols : {1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 100})
      for (i64 rows : {1, 31, 33, 70}) {
        const auto p = make_problem(B, rows, cols, /*pad=*/3, /*zeros=*/0.4, seed++);
        const auto want = reference(p);
        for (auto isa : isas) {
          auto Y = p.Y;
          K::few_rows_gemm_acc(Y.data(), p.ldy, p.X.data(), p.ldx, p.M.data(), p.ldm, B, rows, cols, isa);
          ASSERT_EQ(std::memcmp(Y.data(), want.data(), Y.size() * sizeof(float)), 0)
              << K::gemm_isa_name(isa) << " B=" << B << " rows=" << rows << " cols=" << cols;
        }
      }
}

TEST(FewRowsGemm, PaddingBeyondTheColumnsIsNotWritten) {
  for (auto isa : variants()) {
    auto p = make_problem(7, 40, 37, /*pad=*/20, 0.3, 99);
    const auto before = p.Y;
    K::few_rows_gemm_acc(p.Y.data(), p.ldy, p.X.data(), p.ldx, p.M.data(), p.ldm, p.B, p.rows, p.cols, isa);
    for (i64 b = 0; b < p.B; ++b)
      for (i64 j = p.cols; j < p.ldy; ++j) EXPECT_EQ(p.Y[b * p.ldy + j], before[b * p.ldy + j]) << K::gemm_isa_name(isa);
  }
}

TEST(FewRowsGemm, Float32AndFloat64AgreeWithExactSums) {
  const auto p = make_problem(7, 150, 45, 2, 0.5, 7);
  auto Y = p.Y;
  K::few_rows_gemm_acc(Y.data(), p.ldy, p.X.data(), p.ldx, p.M.data(), p.ldm, p.B, p.rows, p.cols, K::GemmIsa::Portable);
  std::vector<double> Yd(p.Y.begin(), p.Y.end()), Xd(p.X.begin(), p.X.end()), Md(p.M.begin(), p.M.end());
  auto Yd2 = Yd;
  K::few_rows_gemm_acc(Yd2.data(), p.ldy, Xd.data(), p.ldx, Md.data(), p.ldm, p.B, p.rows, p.cols);
  for (i64 b = 0; b < p.B; ++b)
    for (i64 j = 0; j < p.cols; ++j) {
      long double s = Yd[b * p.ldy + j];
      for (i64 r = 0; r < p.rows; ++r) s += static_cast<long double>(Xd[b * p.ldx + r]) * Md[r * p.ldm + j];
      EXPECT_NEAR(Y[b * p.ldy + j], static_cast<double>(s), 1e-4);
      EXPECT_NEAR(Yd2[b * p.ldy + j], static_cast<double>(s), 1e-12);
    }
}

TEST(FewRowsGemm, EmptyShapesDoNothingAndMissingVariantsAreUsageErrors) {
  std::vector<float> Y{1.0f}, X{2.0f}, M{3.0f};
  K::few_rows_gemm_acc(Y.data(), 1, X.data(), 1, M.data(), 1, 0, 1, 1);
  K::few_rows_gemm_acc(Y.data(), 1, X.data(), 1, M.data(), 1, 1, 0, 1);
  EXPECT_EQ(Y[0], 1.0f);
  for (auto isa : {K::GemmIsa::Avx2, K::GemmIsa::Avx512}) {
    if (!K::gemm_isa_supported(isa)) {
      EXPECT_THROW(K::few_rows_gemm_acc(Y.data(), 1, X.data(), 1, M.data(), 1, 1, 1, 1, isa), stablelearn::UsageError);
    }
  }
  K::few_rows_gemm_acc(Y.data(), 1, X.data(), 1, M.data(), 1, 1, 1, 1, K::GemmIsa::Portable);
  EXPECT_EQ(Y[0], 7.0f);
}

TEST(FewRowsGemm, Float32RolloutSplitOverThreadsGivesTheSameBits) {
  // f̂ width 300, ICNN width 200, 7 samples, float32: the products take the wide variant and are
  // split into 32-column blocks over two threads; forward and the state's adjoint use only them.
  namespace M = stablelearn::models;
  namespace F = stablelearn::models::functional;
  const auto o = M::SNodeOptions(2).hidden(300).fhat_layers(2).icnn_hidden(200).alpha(0.05).eps(1e-2).rehu(0.3).psd_rehu(1.0);
  torch::manual_seed(3);
  const auto flat0 = torch::randn({M::snode_layout(o).numel()}) * 0.06f;
  const auto x00 = torch::randn({7, 2});
  const auto t = torch::linspace(0.0, 0.5, 6, torch::kFloat64);
  const auto wout = torch::randn({7, 6, 2});
  const int before = at::get_num_threads();
  std::vector<torch::Tensor> traj, gx0;
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    auto flat = flat0.clone().requires_grad_(true), x0 = x00.clone().requires_grad_(true);
    const auto y = F::snode_euler_rollout(flat, x0, t, o);
    const auto g = torch::autograd::grad({(y * wout).sum()}, {flat, x0});
    traj.push_back(y.detach());
    gx0.push_back(g[1]);
  }
  at::set_num_threads(before);
  EXPECT_TRUE(torch::equal(traj[0], traj[1]));
  EXPECT_TRUE(torch::equal(gx0[0], gx0[1]));
  EXPECT_GT((traj[1].select(1, 5) - traj[1].select(1, 0)).abs().max().item<double>(), 1e-3);
}
