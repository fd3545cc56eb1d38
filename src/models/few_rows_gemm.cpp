// Y += X · M for a few rows of X (see the header). The wide variants hold a block of Y (a group of
// up to G rows × 2 vector registers of columns) in registers while a chunk of M's rows streams
// through it, so each loaded vector of M feeds 2·G multiplies and adds; the plain loop instead
// loads and stores Y for every product, and is bound by those loads and stores rather than by M.
// This file is compiled with -ffp-contract=off (src/models/CMakeLists.txt): every product is
// rounded before it is added, in every variant, so that they all give the same bits.
#include "stablelearn/models/few_rows_gemm.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "stablelearn/core/error.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SL_FEW_ROWS_X86 1
#include <immintrin.h>
#else
#define SL_FEW_ROWS_X86 0
#endif

namespace stablelearn::models::kernels {
namespace {

using i64 = std::int64_t;

// Rows of M per chunk: the chunk (kChunk · cols floats, 128 KB at cols = 1000) stays in L2 while
// every column block and row group passes over it.
constexpr i64 kChunk = 32;

template <typename S>
inline void plain_loop(S* __restrict Y, i64 ldy, const S* __restrict X, i64 ldx, const S* __restrict M, i64 ldm, i64 B,
                       i64 rows, i64 cols) {
  for (i64 r = 0; r < rows; ++r) {
    const S* __restrict m = M + r * ldm;
    for (i64 b = 0; b < B; ++b) {
      const S a = X[b * ldx + r];
      if (a == S(0)) continue;
      S* __restrict y = Y + b * ldy;
      for (i64 j = 0; j < cols; ++j) y[j] += a * m[j];
    }
  }
}

#if SL_FEW_ROWS_X86

/// The rows r of [r0, r1) where some X[b, r], b < G, is nonzero (the others add nothing).
inline int active_rows(const float* X, i64 ldx, int G, i64 r0, i64 r1, std::array<std::int32_t, kChunk>& out) {
  int n = 0;
  for (i64 r = r0; r < r1; ++r) {
    bool any = false;
    for (int b = 0; b < G; ++b) any = any || X[b * ldx + r] != 0.0f;
    if (any) out[static_cast<std::size_t>(n++)] = static_cast<std::int32_t>(r);
  }
  return n;
}

// One block of 32 columns (k0, k1: which of its two halves' lanes exist) of rows [0, G) of Y.
template <int G>
__attribute__((target("avx512f"), always_inline)) inline void run_avx512(float* Y, i64 ldy, const float* X, i64 ldx,
                                                                        const float* M, i64 ldm, const std::int32_t* rs,
                                                                        int nr, i64 j, __mmask16 k0, __mmask16 k1) {
  __m512 lo[G], hi[G];
  for (int b = 0; b < G; ++b) {
    lo[b] = _mm512_maskz_loadu_ps(k0, Y + b * ldy + j);
    hi[b] = _mm512_maskz_loadu_ps(k1, Y + b * ldy + j + 16);
  }
  for (int q = 0; q < nr; ++q) {
    const i64 r = rs[q];
    const float* m = M + r * ldm + j;
    const __m512 m0 = _mm512_maskz_loadu_ps(k0, m), m1 = _mm512_maskz_loadu_ps(k1, m + 16);
    for (int b = 0; b < G; ++b) {
      const __m512 a = _mm512_set1_ps(X[b * ldx + r]);
      lo[b] = _mm512_add_ps(lo[b], _mm512_mul_ps(a, m0));
      hi[b] = _mm512_add_ps(hi[b], _mm512_mul_ps(a, m1));
    }
  }
  for (int b = 0; b < G; ++b) {
    _mm512_mask_storeu_ps(Y + b * ldy + j, k0, lo[b]);
    _mm512_mask_storeu_ps(Y + b * ldy + j + 16, k1, hi[b]);
  }
}

template <int G>
__attribute__((target("avx512f"))) void block_avx512(float* Y, i64 ldy, const float* X, i64 ldx, const float* M, i64 ldm,
                                                     const std::int32_t* rs, int nr, i64 cols) {
  i64 j = 0;
  for (; j + 32 <= cols; j += 32) run_avx512<G>(Y, ldy, X, ldx, M, ldm, rs, nr, j, 0xFFFF, 0xFFFF);
  if (j < cols) {
    const i64 left = cols - j;
    const auto k0 = static_cast<__mmask16>(left >= 16 ? 0xFFFFu : (1u << left) - 1u);
    const auto k1 = static_cast<__mmask16>(left <= 16 ? 0u : (1u << (left - 16)) - 1u);
    run_avx512<G>(Y, ldy, X, ldx, M, ldm, rs, nr, j, k0, k1);
  }
}

template <int G>
__attribute__((target("avx2"))) void block_avx2(float* Y, i64 ldy, const float* X, i64 ldx, const float* M, i64 ldm,
                                                    const std::int32_t* rs, int nr, i64 cols) {
  __m256 lo[G], hi[G];
  i64 j = 0;
  for (; j + 16 <= cols; j += 16) {
    for (int b = 0; b < G; ++b) {
      lo[b] = _mm256_loadu_ps(Y + b * ldy + j);
      hi[b] = _mm256_loadu_ps(Y + b * ldy + j + 8);
    }
    for (int q = 0; q < nr; ++q) {
      const i64 r = rs[q];
      const float* m = M + r * ldm + j;
      const __m256 m0 = _mm256_loadu_ps(m), m1 = _mm256_loadu_ps(m + 8);
      for (int b = 0; b < G; ++b) {
        const __m256 a = _mm256_broadcast_ss(X + b * ldx + r);
        lo[b] = _mm256_add_ps(lo[b], _mm256_mul_ps(a, m0));
        hi[b] = _mm256_add_ps(hi[b], _mm256_mul_ps(a, m1));
      }
    }
    for (int b = 0; b < G; ++b) {
      _mm256_storeu_ps(Y + b * ldy + j, lo[b]);
      _mm256_storeu_ps(Y + b * ldy + j + 8, hi[b]);
    }
  }
  if (j < cols) {  // the last < 16 columns: masked loads and stores, 8 at a time
    for (; j < cols; j += 8) {
      const i64 left = std::min<i64>(8, cols - j);
      alignas(32) std::int32_t bits[8];
      for (int l = 0; l < 8; ++l) bits[l] = l < left ? -1 : 0;
      const __m256i k = _mm256_load_si256(reinterpret_cast<const __m256i*>(bits));
      for (int b = 0; b < G; ++b) lo[b] = _mm256_maskload_ps(Y + b * ldy + j, k);
      for (int q = 0; q < nr; ++q) {
        const i64 r = rs[q];
        const __m256 m0 = _mm256_maskload_ps(M + r * ldm + j, k);
        for (int b = 0; b < G; ++b) lo[b] = _mm256_add_ps(lo[b], _mm256_mul_ps(_mm256_broadcast_ss(X + b * ldx + r), m0));
      }
      for (int b = 0; b < G; ++b) _mm256_maskstore_ps(Y + b * ldy + j, k, lo[b]);
    }
  }
}

using BlockFn = void (*)(float*, i64, const float*, i64, const float*, i64, const std::int32_t*, int, i64);

/// Row groups of at most `max_group` rows, as even as possible (7 rows and 6 → 4 + 3), each over
/// chunks of kChunk rows of M and all columns.
void blocked(float* Y, i64 ldy, const float* X, i64 ldx, const float* M, i64 ldm, i64 B, i64 rows, i64 cols,
             const BlockFn* fns, int max_group) {
  const i64 groups = (B + max_group - 1) / max_group;
  std::array<std::int32_t, kChunk> rs{};
  for (i64 r0 = 0; r0 < rows; r0 += kChunk) {
    const i64 r1 = std::min(rows, r0 + kChunk);
    i64 b0 = 0;
    for (i64 g = 0; g < groups; ++g) {
      const int G = static_cast<int>((B - b0 + (groups - g) - 1) / (groups - g));
      const float* Xg = X + b0 * ldx;
      const int nr = active_rows(Xg, ldx, G, r0, r1, rs);
      if (nr > 0) fns[G - 1](Y + b0 * ldy, ldy, Xg, ldx, M, ldm, rs.data(), nr, cols);
      b0 += G;
    }
  }
}

const BlockFn kAvx512[] = {&block_avx512<1>, &block_avx512<2>, &block_avx512<3>, &block_avx512<4>,
                           &block_avx512<5>, &block_avx512<6>, &block_avx512<7>, &block_avx512<8>};
const BlockFn kAvx2[] = {&block_avx2<1>, &block_avx2<2>, &block_avx2<3>, &block_avx2<4>, &block_avx2<5>, &block_avx2<6>};

#endif  // SL_FEW_ROWS_X86

}  // namespace

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Avx2: return "avx2";
    case GemmIsa::Avx512: return "avx512";
    default: return "portable";
  }
}

bool gemm_isa_supported(GemmIsa isa) {
  if (isa == GemmIsa::Portable) return true;
#if SL_FEW_ROWS_X86
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  if (isa == GemmIsa::Avx2) return avx2;
  if (isa == GemmIsa::Avx512) return avx512;
#endif
  return false;
}

GemmIsa gemm_best_isa() {
  static const GemmIsa best = gemm_isa_supported(GemmIsa::Avx512) ? GemmIsa::Avx512
                              : gemm_isa_supported(GemmIsa::Avx2) ? GemmIsa::Avx2
                                                                  : GemmIsa::Portable;
  return best;
}

void few_rows_gemm_acc(float* Y, std::int64_t ldy, const float* X, std::int64_t ldx, const float* M, std::int64_t ldm,
                       std::int64_t B, std::int64_t rows, std::int64_t cols, GemmIsa isa) {
  if (B <= 0 || rows <= 0 || cols <= 0) return;
  switch (isa) {
#if SL_FEW_ROWS_X86
    case GemmIsa::Avx512:
      SL_CHECK(gemm_isa_supported(isa), UsageError, "few_rows_gemm_acc: this CPU has no AVX-512F");
      blocked(Y, ldy, X, ldx, M, ldm, B, rows, cols, kAvx512, 8);
      return;
    case GemmIsa::Avx2:
      SL_CHECK(gemm_isa_supported(isa), UsageError, "few_rows_gemm_acc: this CPU has no AVX2");
      blocked(Y, ldy, X, ldx, M, ldm, B, rows, cols, kAvx2, 6);
      return;
#endif
    case GemmIsa::Portable:
      plain_loop(Y, ldy, X, ldx, M, ldm, B, rows, cols);
      return;
    default:
      SL_THROW(UsageError, "few_rows_gemm_acc: the variant '", gemm_isa_name(isa), "' is not in this build");
  }
}

void few_rows_gemm_acc(double* Y, std::int64_t ldy, const double* X, std::int64_t ldx, const double* M, std::int64_t ldm,
                       std::int64_t B, std::int64_t rows, std::int64_t cols) {
  if (B <= 0 || rows <= 0 || cols <= 0) return;
  plain_loop(Y, ldy, X, ldx, M, ldm, B, rows, cols);
}

}  // namespace stablelearn::models::kernels
