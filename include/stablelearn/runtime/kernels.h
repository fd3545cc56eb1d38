// stablelearn runtime: the matrix kernels of runtime/skill.h, in a portable version and, on x86-64
// with GCC or Clang, AVX2 and AVX-512 versions chosen at run time (issue 17 item 2). Header-only,
// no libtorch, no allocation in a kernel. The user's compiler flags are not ours to choose: the wide
// versions are compiled with function target attributes, so they exist whatever -m flags the
// including TU has, and a Skill picks one when it is loaded (best_isa(), from the CPU's CPUID).
//
// Layout. A wide kernel reads a weight matrix W (out × in, row-major in the skill file) packed once
// at load time into panels of `width` rows (16 for AVX-512, 8 for AVX2): panel p holds
// W[p·width + l, j] at [j·width + l], zero-padded past `out`, 64-byte aligned; the bias is
// zero-padded to whole panels. One panel is one vector register wide, so y[p·width : +width] is a sum
// of vector multiply-adds with no horizontal reduction, and the panel streams contiguously.
//
// Rounding. Every variant adds the same products in the same order as the portable matvec (eight
// partial sums over j ≡ k mod 8, reduced ((0+1)+(2+3))+((4+5)+(6+7)), then the tail j in order,
// then the bias) and rounds each product before adding it (no FMA: see mul_add), so on x86-64 the
// wide variants give the portable variant's bits, as long as the portable code itself is compiled
// without FMA contraction or -ffast-math (the project's flags; no -march). Fused multiply-adds would
// move results by up to 1e-5 relative (f after the projection) and were no faster here (BENCHMARKS.md).
// tests/runtime/dispatch_test.cpp checks every variant this CPU has against the portable one.
//
// STABLELEARN_RUNTIME_PORTABLE_ONLY (define before including) keeps only the portable kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(STABLELEARN_RUNTIME_PORTABLE_ONLY)
#define STABLELEARN_RUNTIME_X86_DISPATCH 1
#include <immintrin.h>
#else
#define STABLELEARN_RUNTIME_X86_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define STABLELEARN_RUNTIME_NOINLINE __attribute__((noinline))
#else
#define STABLELEARN_RUNTIME_NOINLINE
#endif

namespace stablelearn::runtime {

/// Instruction-set variants of the runtime's kernels.
enum class Isa : std::uint32_t {
  Portable = 0,  ///< plain C++ (what the including TU's flags make of it)
  Avx2 = 1,      ///< AVX2, 8 float lanes (x86-64, GCC/Clang)
  Avx512 = 2,    ///< AVX-512F, 16 float lanes (x86-64, GCC/Clang)
};

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    default: return "portable";
  }
}

/// Whether this build has the variant and this CPU (and its OS) can run it.
inline bool isa_supported(Isa isa) {
  if (isa == Isa::Portable) return true;
#if STABLELEARN_RUNTIME_X86_DISPATCH
  __builtin_cpu_init();  // in case this runs before libgcc's constructor (static initialisation)
  if (isa == Isa::Avx2) return __builtin_cpu_supports("avx2");
  if (isa == Isa::Avx512) return __builtin_cpu_supports("avx512f");
#endif
  return false;
}

/// The widest supported variant (asked of the CPU once per process).
inline Isa best_isa() {
  static const Isa best = isa_supported(Isa::Avx512) ? Isa::Avx512 : isa_supported(Isa::Avx2) ? Isa::Avx2 : Isa::Portable;
  return best;
}

/// Panel width (floats per vector register) of a variant; 0 for Portable (no packing).
inline std::size_t isa_width(Isa isa) { return isa == Isa::Avx512 ? 16 : isa == Isa::Avx2 ? 8 : 0; }

namespace detail {

/// std::vector storage aligned to 64 bytes (a cache line; a whole AVX-512 register).
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
using AlignedFloats = std::vector<float, Aligned64<float>>;

/// Appends W (out × in, row-major) and its bias b (nullptr: zeros) to `dst` as panels of `width`
/// rows (see the file comment); returns the offsets of the panels and of the padded bias. Each
/// starts on a multiple of 16 floats (64 bytes from the aligned buffer's start).
struct PanelOffsets {
  std::size_t w = 0, b = 0;
};
inline PanelOffsets pack_panels(const float* W, const float* b, std::size_t out, std::size_t in, std::size_t width,
                                AlignedFloats& dst) {
  auto pad16 = [&] { dst.resize((dst.size() + 15) / 16 * 16, 0.0f); };
  const std::size_t panels = (out + width - 1) / width;
  PanelOffsets o;
  pad16();
  o.w = dst.size();
  dst.resize(o.w + panels * in * width, 0.0f);
  for (std::size_t i = 0; i < out; ++i)
    for (std::size_t j = 0; j < in; ++j) dst[o.w + (i / width) * in * width + j * width + i % width] = W[i * in + j];
  pad16();
  o.b = dst.size();
  dst.resize(o.b + panels * width, 0.0f);
  if (b)
    for (std::size_t i = 0; i < out; ++i) dst[o.b + i] = b[i];
  return o;
}

/// Appends A (rows × cols, row-major) with each row padded to a multiple of 16 floats; returns
/// the offset (the row stride is padded_cols(cols)).
inline std::size_t padded_cols(std::size_t cols) { return (cols + 15) / 16 * 16; }
inline std::size_t pack_rows(const float* A, std::size_t rows, std::size_t cols, AlignedFloats& dst) {
  dst.resize((dst.size() + 15) / 16 * 16, 0.0f);
  const std::size_t off = dst.size(), ld = padded_cols(cols);
  dst.resize(off + rows * ld, 0.0f);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) dst[off + i * ld + j] = A[i * cols + j];
  return off;
}

/// y = W x + b (b may be nullptr), W row-major out × in. Eight independent partial sums: the
/// compiler may then vectorise without reassociating a single floating-point sum (no -ffast-math).
inline void matvec_portable(const float* W, const float* b, const float* x, std::size_t out, std::size_t in, float* y) {
  for (std::size_t i = 0; i < out; ++i) {
    const float* row = W + i * in;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t j = 0;
    for (; j + 8 <= in; j += 8)
      for (std::size_t k = 0; k < 8; ++k) acc[k] += row[j + k] * x[j + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < in; ++j) sum += row[j] * x[j];
    y[i] = sum + (b ? b[i] : 0.0f);
  }
}

/// y = Σ_i s[i] A[i, :] over the rows with s[i] ≠ 0, in order of i (A row-major rows × cols with
/// row stride ld): a transposed matrix-vector product.
inline void rows_combination_portable(const float* A, std::size_t ld, const float* s, std::size_t rows, std::size_t cols,
                                      float* y) {
  for (std::size_t j = 0; j < cols; ++j) y[j] = 0.0f;
  for (std::size_t i = 0; i < rows; ++i) {
    const float si = s[i];
    if (si == 0) continue;
    const float* row = A + i * ld;
    for (std::size_t j = 0; j < cols; ++j) y[j] += row[j] * si;
  }
}

#if STABLELEARN_RUNTIME_X86_DISPATCH

// c + a·b rounded twice (product, then sum), as the portable code: the empty asm hides the product
// from the compiler, which would otherwise fuse the pair into one FMA (g++ contracts by default,
// -ffp-contract=fast, in C++ whatever -std says) and round differently from the portable path.
__attribute__((target("avx512f"), always_inline)) inline __m512 mul_add(__m512 a, __m512 b, __m512 c) {
  __m512 p = _mm512_mul_ps(a, b);
  __asm__("" : "+v"(p));
  return _mm512_add_ps(c, p);
}
__attribute__((target("avx2"), always_inline)) inline __m256 mul_add(__m256 a, __m256 b, __m256 c) {
  __m256 p = _mm256_mul_ps(a, b);
  __asm__("" : "+v"(p));
  return _mm256_add_ps(c, p);
}

// ---- AVX-512F: panels of 16 rows, one zmm register per panel row block.

/// y = max(W x + b, 0 if relu) from 16-row panels P and padded bias B (pack_panels).
__attribute__((target("avx512f"), noinline)) inline void matvec_avx512(const float* P, const float* B, const float* x,
                                                             std::size_t out, std::size_t in, float* y, bool relu) {
  const std::size_t in8 = in / 8 * 8;
  for (std::size_t o = 0; o < out; o += 16, P += in * 16) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const float* p = P;
    std::size_t j = 0;
    for (; j < in8; j += 8, p += 128) {
      a0 = mul_add(_mm512_load_ps(p), _mm512_set1_ps(x[j]), a0);
      a1 = mul_add(_mm512_load_ps(p + 16), _mm512_set1_ps(x[j + 1]), a1);
      a2 = mul_add(_mm512_load_ps(p + 32), _mm512_set1_ps(x[j + 2]), a2);
      a3 = mul_add(_mm512_load_ps(p + 48), _mm512_set1_ps(x[j + 3]), a3);
      a4 = mul_add(_mm512_load_ps(p + 64), _mm512_set1_ps(x[j + 4]), a4);
      a5 = mul_add(_mm512_load_ps(p + 80), _mm512_set1_ps(x[j + 5]), a5);
      a6 = mul_add(_mm512_load_ps(p + 96), _mm512_set1_ps(x[j + 6]), a6);
      a7 = mul_add(_mm512_load_ps(p + 112), _mm512_set1_ps(x[j + 7]), a7);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    for (; j < in; ++j, p += 16) s = mul_add(_mm512_load_ps(p), _mm512_set1_ps(x[j]), s);
    s = _mm512_add_ps(s, _mm512_load_ps(B + o));
    // ReLU as std::max(0.0f, s): s where s > 0, else +0 (also for −0 and NaN)
    if (relu) s = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GT_OQ), s);
    if (out - o >= 16)
      _mm512_storeu_ps(y + o, s);
    else
      _mm512_mask_storeu_ps(y + o, static_cast<__mmask16>((1u << (out - o)) - 1), s);
  }
}

template <int NV>
__attribute__((target("avx512f"))) inline void rows_combination_avx512_block(const float* A, std::size_t ld, const float* s,
                                                                             std::size_t rows, std::size_t cols, float* y) {
  __m512 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
  for (std::size_t i = 0; i < rows; ++i) {
    const float si = s[i];
    if (si == 0) continue;
    const __m512 sv = _mm512_set1_ps(si);
    const float* row = A + i * ld;
    for (int v = 0; v < NV; ++v) acc[v] = mul_add(_mm512_load_ps(row + 16 * v), sv, acc[v]);
  }
  for (int v = 0; v < NV; ++v) {
    const std::size_t c = 16 * static_cast<std::size_t>(v);
    if (cols - c >= 16)
      _mm512_storeu_ps(y + c, acc[v]);
    else
      _mm512_mask_storeu_ps(y + c, static_cast<__mmask16>((1u << (cols - c)) - 1), acc[v]);
  }
}

/// rows_combination_portable from rows padded to 16 floats (pack_rows), ≤ 128 columns per pass.
__attribute__((target("avx512f"), noinline)) inline void rows_combination_avx512(const float* A, std::size_t ld, const float* s,
                                                                       std::size_t rows, std::size_t cols, float* y) {
  for (std::size_t c0 = 0; c0 < cols; c0 += 128) {
    const std::size_t n = cols - c0 < 128 ? cols - c0 : 128;
    switch ((n + 15) / 16) {
      case 1: rows_combination_avx512_block<1>(A + c0, ld, s, rows, n, y + c0); break;
      case 2: rows_combination_avx512_block<2>(A + c0, ld, s, rows, n, y + c0); break;
      case 3: rows_combination_avx512_block<3>(A + c0, ld, s, rows, n, y + c0); break;
      case 4: rows_combination_avx512_block<4>(A + c0, ld, s, rows, n, y + c0); break;
      case 5: rows_combination_avx512_block<5>(A + c0, ld, s, rows, n, y + c0); break;
      case 6: rows_combination_avx512_block<6>(A + c0, ld, s, rows, n, y + c0); break;
      case 7: rows_combination_avx512_block<7>(A + c0, ld, s, rows, n, y + c0); break;
      default: rows_combination_avx512_block<8>(A + c0, ld, s, rows, n, y + c0); break;
    }
  }
}

// ---- AVX2: panels of 8 rows, one ymm register per panel row block.

__attribute__((target("avx2"))) inline __m256i avx2_tail_mask(std::size_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
}

__attribute__((target("avx2"), noinline)) inline void matvec_avx2(const float* P, const float* B, const float* x,
                                                            std::size_t out, std::size_t in, float* y, bool relu) {
  const std::size_t in8 = in / 8 * 8;
  for (std::size_t o = 0; o < out; o += 8, P += in * 8) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const float* p = P;
    std::size_t j = 0;
    for (; j < in8; j += 8, p += 64) {
      a0 = mul_add(_mm256_load_ps(p), _mm256_broadcast_ss(x + j), a0);
      a1 = mul_add(_mm256_load_ps(p + 8), _mm256_broadcast_ss(x + j + 1), a1);
      a2 = mul_add(_mm256_load_ps(p + 16), _mm256_broadcast_ss(x + j + 2), a2);
      a3 = mul_add(_mm256_load_ps(p + 24), _mm256_broadcast_ss(x + j + 3), a3);
      a4 = mul_add(_mm256_load_ps(p + 32), _mm256_broadcast_ss(x + j + 4), a4);
      a5 = mul_add(_mm256_load_ps(p + 40), _mm256_broadcast_ss(x + j + 5), a5);
      a6 = mul_add(_mm256_load_ps(p + 48), _mm256_broadcast_ss(x + j + 6), a6);
      a7 = mul_add(_mm256_load_ps(p + 56), _mm256_broadcast_ss(x + j + 7), a7);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    for (; j < in; ++j, p += 8) s = mul_add(_mm256_load_ps(p), _mm256_broadcast_ss(x + j), s);
    s = _mm256_add_ps(s, _mm256_load_ps(B + o));
    if (relu) s = _mm256_and_ps(_mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_GT_OQ), s);  // as std::max(0.0f, s)
    if (out - o >= 8)
      _mm256_storeu_ps(y + o, s);
    else
      _mm256_maskstore_ps(y + o, avx2_tail_mask(out - o), s);
  }
}

template <int NV>
__attribute__((target("avx2"))) inline void rows_combination_avx2_block(const float* A, std::size_t ld, const float* s,
                                                                            std::size_t rows, std::size_t cols, float* y) {
  __m256 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_setzero_ps();
  for (std::size_t i = 0; i < rows; ++i) {
    const float si = s[i];
    if (si == 0) continue;
    const __m256 sv = _mm256_set1_ps(si);
    const float* row = A + i * ld;
    for (int v = 0; v < NV; ++v) acc[v] = mul_add(_mm256_load_ps(row + 8 * v), sv, acc[v]);
  }
  for (int v = 0; v < NV; ++v) {
    const std::size_t c = 8 * static_cast<std::size_t>(v);
    if (cols - c >= 8)
      _mm256_storeu_ps(y + c, acc[v]);
    else
      _mm256_maskstore_ps(y + c, avx2_tail_mask(cols - c), acc[v]);
  }
}

/// rows_combination_portable from rows padded to 16 floats (pack_rows), ≤ 96 columns per pass
/// (12 of the 16 ymm registers).
__attribute__((target("avx2"), noinline)) inline void rows_combination_avx2(const float* A, std::size_t ld, const float* s,
                                                                      std::size_t rows, std::size_t cols, float* y) {
  for (std::size_t c0 = 0; c0 < cols; c0 += 96) {
    const std::size_t n = cols - c0 < 96 ? cols - c0 : 96;
    switch ((n + 7) / 8) {
      case 1: rows_combination_avx2_block<1>(A + c0, ld, s, rows, n, y + c0); break;
      case 2: rows_combination_avx2_block<2>(A + c0, ld, s, rows, n, y + c0); break;
      case 3: rows_combination_avx2_block<3>(A + c0, ld, s, rows, n, y + c0); break;
      case 4: rows_combination_avx2_block<4>(A + c0, ld, s, rows, n, y + c0); break;
      case 5: rows_combination_avx2_block<5>(A + c0, ld, s, rows, n, y + c0); break;
      case 6: rows_combination_avx2_block<6>(A + c0, ld, s, rows, n, y + c0); break;
      case 7: rows_combination_avx2_block<7>(A + c0, ld, s, rows, n, y + c0); break;
      case 8: rows_combination_avx2_block<8>(A + c0, ld, s, rows, n, y + c0); break;
      case 9: rows_combination_avx2_block<9>(A + c0, ld, s, rows, n, y + c0); break;
      case 10: rows_combination_avx2_block<10>(A + c0, ld, s, rows, n, y + c0); break;
      case 11: rows_combination_avx2_block<11>(A + c0, ld, s, rows, n, y + c0); break;
      default: rows_combination_avx2_block<12>(A + c0, ld, s, rows, n, y + c0); break;
    }
  }
}

#endif  // STABLELEARN_RUNTIME_X86_DISPATCH

}  // namespace detail
}  // namespace stablelearn::runtime
