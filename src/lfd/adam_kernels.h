// Adam's element formulas as one-pass kernels over raw arrays (internal to sl_lfd): the look-ahead
// Δ of Adam::lookahead and the step of Adam::step (hnet_training.h), with the rounding of
// libtorch's vectorised tensor chain. Adam itself runs them over whole float32 tensors
// (hnet_training.cpp); the fused heads of hn_iteration.cpp run them row by row on gradients they
// form in a row-sized buffer.
//
// Rounding: libtorch computes add(self, other, alpha) as fma(other, alpha, self) (vectorised
// kernels and scalar tails alike), addcmul's vectorised body without a fused multiply-add and its
// scalar tail with one; every other step (×, /, √, +) is one IEEE operation:
//   look-ahead: m' = fma(m, β1, g·(1−β1)),  v' = fma(v, β2, (g·g)·(1−β2)),  Δ = (m'/(√v' + eps))·scale
//   step:       m ← fma(g, 1−β1, m·β1),  v ← v·β2 + ((1−β2)·g)·g,  p ← p + (step·m)/(√v/√bc2 + eps)
#pragma once

#include <cmath>
#include <cstdint>

namespace stablelearn::lfd::detail {

template <typename T>
struct LookaheadConsts {
  T b1, omb1, b2, omb2, eps, scale;
};
template <typename T>
struct StepConsts {
  T b1, omb1, b2, omb2, sqrt_bc2, eps, step;
};

/// out[i] = Δ(g[i]; m[i], v[i]) for i < n, portable (any floating type).
template <typename T>
void adam_lookahead(const T* g, const T* m, const T* v, T* out, std::int64_t n, const LookaheadConsts<T>& c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T gg = gi * gi;
    const T mm = std::fma(m[i], c.b1, gi * c.omb1);
    const T vv = std::fma(v[i], c.b2, gg * c.omb2);
    const T den = std::sqrt(vv) + c.eps;
    const T q = mm / den;
    out[i] = q * c.scale;
  }
}

/// One Adam step of (m, v, p) with gradient g for i < n, portable. The scalar form of the step: as
/// libtorch's scalar tail of addcmul, v's update is one fma.
template <typename T>
void adam_step(const T* g, T* m, T* v, T* p, std::int64_t n, const StepConsts<T>& c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mb = m[i] * c.b1;
    const T mm = std::fma(gi, c.omb1, mb);
    const T vv = std::fma(c.omb2 * gi, gi, v[i] * c.b2);
    m[i] = mm;
    v[i] = vv;
    const T den = std::sqrt(vv) / c.sqrt_bc2 + c.eps;
    const T num = c.step * mm;
    p[i] = p[i] + num / den;
  }
}

#if defined(__x86_64__) || defined(__i386__)
#define SL_ADAM_X86 1
/// The CPU has AVX2 and FMA (the float32 kernels below may run).
bool have_avx2_fma();
/// The float32 kernels with AVX2 + FMA, 8 lanes; the tails by the portable kernels. Call only where
/// have_avx2_fma().
void adam_lookahead_avx2(const float* g, const float* m, const float* v, float* out, std::int64_t n,
                         const LookaheadConsts<float>& c);
void adam_step_avx2(const float* g, float* m, float* v, float* p, std::int64_t n, const StepConsts<float>& c);
#endif

}  // namespace stablelearn::lfd::detail
