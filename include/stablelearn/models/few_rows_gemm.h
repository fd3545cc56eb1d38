// Y += X · M for a few rows of X: the matrix product of the fused sNODE rollout (models/
// snode_rollout.h), where X holds the B ≈ 7 demonstrations of one Euler step and M an h × h weight
// matrix (h = 1000 in the paper's sizes, 4 MB in float32). M is read once per step for all B rows,
// so the product streams M; how fast depends on how many multiply-adds each loaded value of M
// feeds before it is dropped.
//
// Variants, chosen at run time from the CPU (x86-64, GCC or Clang; the user's -m flags do not
// matter, the wide variants carry function target attributes):
//  - Avx512 (AVX-512F): up to 8 rows of Y × 32 columns held in 16 registers while a chunk of 32
//    rows of M streams through them; masked loads and stores for the last < 32 columns.
//  - Avx2 (AVX2): up to 6 rows × 16 columns in 12 registers, the same scheme.
//  - Portable: the plain loop (r outer, then b, then the columns).
//
// Rounding: the same bits from every variant, on every CPU. Each adds the products for Y[b, j] in
// increasing r, one at a time, each product rounded to float before it is added (no fused
// multiply-add: the file is compiled with -ffp-contract=off). That is what the rollout's previous
// loop computed on the machines this project measures on (its AVX2 + FMA clone was chosen only on
// CPUs that identify as Haswell), so its numbers are unchanged. tests/models/few_rows_gemm_test.cpp
// checks every variant against `y = y + fl(X[b, r] · M[r, j])` bit for bit. A coefficient
// X[b, r] = 0 contributes nothing: the portable loop skips it, a wide variant skips row r when all
// coefficients of its row group are zero and otherwise adds fl(0 · m) = ±0 — the same value for
// finite M, except that y = −0 becomes +0 (and a NaN or ±inf in M turns y into NaN where the
// skipping loop would not have read it).
#pragma once

#include <cstdint>

namespace stablelearn::models::kernels {

/// The variants; `few_rows_gemm_acc` takes the widest one the CPU has unless told otherwise.
enum class GemmIsa : std::uint32_t { Portable = 0, Avx2 = 1, Avx512 = 2 };

/// "portable", "avx2" or "avx512".
const char* gemm_isa_name(GemmIsa isa);
/// Whether this build has the variant and this CPU can run it.
bool gemm_isa_supported(GemmIsa isa);
/// The widest supported variant (asked of the CPU once per process).
GemmIsa gemm_best_isa();

/// Y[b, 0:cols] += Σ_{r < rows} X[b, r] · M[r, 0:cols] for b < B; row-major with leading
/// dimensions ldy, ldx, ldm (≥ cols, rows, cols). Single-threaded; the caller splits columns over
/// threads (every column's result is independent of the split). `isa` must be supported.
void few_rows_gemm_acc(float* Y, std::int64_t ldy, const float* X, std::int64_t ldx, const float* M, std::int64_t ldm,
                       std::int64_t B, std::int64_t rows, std::int64_t cols, GemmIsa isa = gemm_best_isa());
/// Float64: the plain loop.
void few_rows_gemm_acc(double* Y, std::int64_t ldy, const double* X, std::int64_t ldx, const double* M, std::int64_t ldm,
                       std::int64_t B, std::int64_t rows, std::int64_t cols);

}  // namespace stablelearn::models::kernels
