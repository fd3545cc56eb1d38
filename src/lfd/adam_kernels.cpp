#include "adam_kernels.h"

#ifdef SL_ADAM_X86
#include <immintrin.h>

namespace stablelearn::lfd::detail {

bool have_avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

__attribute__((target("avx2,fma"))) void adam_lookahead_avx2(const float* g, const float* m, const float* v,
                                                              float* out, std::int64_t n,
                                                              const LookaheadConsts<float>& c) {
  const __m256 vb1 = _mm256_set1_ps(c.b1), vomb1 = _mm256_set1_ps(c.omb1), vb2 = _mm256_set1_ps(c.b2),
               vomb2 = _mm256_set1_ps(c.omb2), veps = _mm256_set1_ps(c.eps), vscale = _mm256_set1_ps(c.scale);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mm = _mm256_fmadd_ps(_mm256_loadu_ps(m + i), vb1, _mm256_mul_ps(gi, vomb1));
    const __m256 vv = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), vb2, _mm256_mul_ps(_mm256_mul_ps(gi, gi), vomb2));
    const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(vv), veps);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(mm, den), vscale));
  }
  if (i < n) adam_lookahead<float>(g + i, m + i, v + i, out + i, n - i, c);
}

__attribute__((target("avx2,fma"))) void adam_step_avx2(const float* g, float* m, float* v, float* p, std::int64_t n,
                                                         const StepConsts<float>& c) {
  const __m256 vb1 = _mm256_set1_ps(c.b1), vomb1 = _mm256_set1_ps(c.omb1), vb2 = _mm256_set1_ps(c.b2),
               vomb2 = _mm256_set1_ps(c.omb2), vsb2 = _mm256_set1_ps(c.sqrt_bc2), veps = _mm256_set1_ps(c.eps),
               vstep = _mm256_set1_ps(c.step);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mm = _mm256_fmadd_ps(gi, vomb1, _mm256_mul_ps(_mm256_loadu_ps(m + i), vb1));
    const __m256 vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), vb2), _mm256_mul_ps(_mm256_mul_ps(vomb2, gi), gi));
    _mm256_storeu_ps(m + i, mm);
    _mm256_storeu_ps(v + i, vv);
    const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), vsb2), veps);
    _mm256_storeu_ps(p + i, _mm256_add_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(vstep, mm), den)));
  }
  if (i < n) adam_step<float>(g + i, m + i, v + i, p + i, n - i, c);
}

}  // namespace stablelearn::lfd::detail
#endif
