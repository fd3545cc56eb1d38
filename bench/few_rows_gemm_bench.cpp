// models/few_rows_gemm.h (the sNODE rollout's product, issue 17 item 1): Y [7, n] += X [7, k] · M
// [k, n] with half of X zero (ReLU masks), per variant, against the loop the rollout ran before
// (r outer, then b, then the columns; built with an AVX2 + FMA clone), at the paper's width
// (k = n = 1000, M = 4 MB) and the demo's (200). Single-threaded: the rollout splits columns over
// threads itself.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "stablelearn/models/few_rows_gemm.h"

namespace K = stablelearn::models::kernels;
using i64 = std::int64_t;

namespace {

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("arch=haswell", "default")))
#endif
void previous_loop(float* __restrict Y, i64 ldy, const float* __restrict X, i64 ldx, const float* __restrict M, i64 ldm,
                   i64 B, i64 rows, i64 cols) {
  for (i64 r = 0; r < rows; ++r) {
    const float* __restrict m = M + r * ldm;
    for (i64 b = 0; b < B; ++b) {
      const float a = X[b * ldx + r];
      if (a == 0.0f) continue;
      float* __restrict y = Y + b * ldy;
      for (i64 j = 0; j < cols; ++j) y[j] += a * m[j];
    }
  }
}

struct Data {
  std::vector<float> Y, X, M;
  explicit Data(i64 h) : Y(7 * h), X(7 * h), M(h * h) {
    std::mt19937 g(0);
    std::normal_distribution<float> n;
    for (auto& v : Y) v = n(g);
    for (auto& v : M) v = n(g) * 0.03f;
    for (auto& v : X) v = std::max(0.0f, n(g));
  }
};

void BM_PreviousLoop(benchmark::State& s) {
  const i64 h = s.range(0);
  Data d(h);
  for (auto _ : s) {
    previous_loop(d.Y.data(), h, d.X.data(), h, d.M.data(), h, 7, h, h);
    benchmark::ClobberMemory();
  }
  s.SetBytesProcessed(s.iterations() * h * h * 4);
}

void BM_FewRowsGemm(benchmark::State& s) {
  const i64 h = s.range(0);
  const auto isa = static_cast<K::GemmIsa>(s.range(1));
  if (!K::gemm_isa_supported(isa)) {
    s.SkipWithError("this CPU lacks the variant");
    return;
  }
  s.SetLabel(K::gemm_isa_name(isa));
  Data d(h);
  for (auto _ : s) {
    K::few_rows_gemm_acc(d.Y.data(), h, d.X.data(), h, d.M.data(), h, 7, h, h, isa);
    benchmark::ClobberMemory();
  }
  s.SetBytesProcessed(s.iterations() * h * h * 4);
}

}  // namespace

BENCHMARK(BM_PreviousLoop)->Arg(200)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FewRowsGemm)->ArgsProduct({{200, 1000}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
