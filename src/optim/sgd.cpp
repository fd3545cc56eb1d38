#include "stablelearn/optim/sgd.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SL_SGD_X86 1
#endif

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

namespace {

// One pass of the update over [0, n). This file is compiled with -ffp-contract=off (CMakeLists.txt),
// so `p + nlr * b` is two roundings and only std::fma / the FMA intrinsic fuse.
template <bool kFma>
void update_portable(float* p, float* b, const float* g, std::int64_t n, float mu, float nlr, bool first) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = b == nullptr ? g[i] : (first ? g[i] : b[i] * mu + g[i]);
    if (b != nullptr) b[i] = v;
    p[i] = kFma ? std::fma(v, nlr, p[i]) : p[i] + nlr * v;
  }
}

// The step of a buffer the caller completed (b = fl(fl(μ·b) + g)): θ ← θ + (−η)·b, then b ← fl(μ·b)
// for the next step's accumulation.
template <bool kFma>
void accumulated_portable(float* p, float* b, std::int64_t n, float mu, float nlr) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = b[i];
    p[i] = kFma ? std::fma(v, nlr, p[i]) : p[i] + nlr * v;
    b[i] = v * mu;
  }
}

#ifdef SL_SGD_X86
// Subnormal operands. On Intel cores a multiply or fused multiply-add that reads a subnormal float
// takes a microcode assist (about 150 cycles each on the machine measured); an addition does not. The
// momentum buffer of a weight that stops receiving gradient (a dead ReLU unit's row) decays as
// μ^t and spends about 150 steps below 2^-126 before it reaches zero: 1 % of the second layer's
// buffer in the classification engine's MLP, which cost about as much as the whole update
// (BENCHMARKS.md). The vector loops below find such lanes with integer compares and compute them
// with the same results and no floating-point operation on a subnormal:
//   fl(v·μ) for subnormal v = ±m·2^-149 and 0 ≤ μ ≤ 1 is ±RNE(m·μ)·2^-149 (m·μ is exact in double;
//   an integer RNE(m·μ) = 2^23 is the bit pattern of 2^-126, the right answer), and
//   fma(v, −η, θ) = θ when |θ| ≥ 2^-90 and η ≤ 4, because |v·η| < 2^-124 < ulp(θ)/2.
// Other cases (θ tiny, η > 4) run the plain FMA, assist and all. Under FTZ or DAZ (MXCSR, e.g.
// at::globalContext().setFlushDenormal) the hardware flushes subnormals instead, with no assists,
// and the loops then run the plain operations, so that they flush as ATen's do.

/// Whether subnormals are computed as IEEE says (no FTZ / DAZ in this thread's MXCSR).
inline bool ieee_subnormals() { return (_mm_getcsr() & 0x8040u) == 0; }

inline bool subnormal(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x7f800000u) == 0 && (u & 0x007fffffu) != 0;
}

__attribute__((target("avx2,fma"))) inline float times_mu(float v, float mu, bool ieee) {
  if (!ieee || !subnormal(v)) return v * mu;
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const double r = std::nearbyint(static_cast<double>(u & 0x007fffffu) * static_cast<double>(mu));  // RNE: the default mode
  u = static_cast<std::uint32_t>(r) | (u & 0x80000000u);
  float out;
  std::memcpy(&out, &u, sizeof out);
  return out;
}

__attribute__((target("avx2,fma"))) inline float step_theta(float v, float nlr, float p, bool ieee) {
  if (ieee && subnormal(v) && nlr >= -4.0f && !(std::fabs(p) < 0x1p-90f)) return p;  // NaN and ±inf θ: unchanged, as the FMA gives
  return __builtin_fmaf(v, nlr, p);
}

/// The lanes of v that are subnormal, as a mask (all bits set).
__attribute__((target("avx2,fma"))) inline __m256 subnormal_lanes(__m256 v) {
  const __m256i u = _mm256_castps_si256(v), zero = _mm256_setzero_si256();
  const __m256i exp_zero = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7f800000)), zero);
  const __m256i man_zero = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)), zero);
  return _mm256_castsi256_ps(_mm256_andnot_si256(man_zero, exp_zero));
}

__attribute__((target("avx2,fma"))) inline bool any_lane(__m256 mask) { return _mm256_testz_ps(mask, mask) == 0; }

/// The lanes where |θ| < 2^-90 (or θ is NaN-free tiny, zero or subnormal), as a mask, by integer compare.
__attribute__((target("avx2,fma"))) inline __m256 tiny_lanes(__m256 theta) {
  const __m256i mag = _mm256_and_si256(_mm256_castps_si256(theta), _mm256_set1_epi32(0x7fffffff));
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(0x12800000), mag));  // 0x12800000 = 2^-90
}

/// fl(v·μ) for subnormal lanes v and 0 ≤ μ ≤ 1 (other lanes: meaningless): ±RNE(m·μ) as the bit
/// pattern, m·μ computed exactly in double.
__attribute__((target("avx2,fma"))) inline __m256 subnormal_times(__m256 v, float mu) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i m = _mm256_and_si256(u, _mm256_set1_epi32(0x007fffff));
  const __m256d dmu = _mm256_set1_pd(static_cast<double>(mu));
  const __m256d lo = _mm256_round_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(m)), dmu),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256d hi = _mm256_round_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(m, 1)), dmu),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i r = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm256_cvtpd_epi32(lo)), _mm256_cvtpd_epi32(hi), 1);
  return _mm256_castsi256_ps(_mm256_or_si256(r, _mm256_and_si256(u, _mm256_set1_epi32(static_cast<int>(0x80000000u)))));
}

/// One element of update_fma_avx2 (the tail, and vectors with a subnormal lane).
__attribute__((target("avx2,fma"))) inline void update_one(float* p, float* b, const float* g, std::int64_t i, float mu, float nlr,
                                                            bool first, bool ieee) {
  const float v = b == nullptr || first ? g[i] : times_mu(b[i], mu, ieee) + g[i];
  if (b != nullptr) b[i] = v;
  p[i] = step_theta(v, nlr, p[i], ieee);
}

/// One element of accumulated_fma_avx2 (the tail, and vectors that need the plain FMA).
__attribute__((target("avx2,fma"))) inline void accumulated_one(float* p, float* b, std::int64_t i, float mu, float nlr, bool ieee) {
  const float v = b[i];
  p[i] = step_theta(v, nlr, p[i], ieee);
  b[i] = times_mu(v, mu, ieee);
}

__attribute__((target("avx2,fma"))) void update_fma_avx2(float* p, float* b, const float* g, std::int64_t n, float mu,
                                                          float nlr, bool first) {
  const __m256 vmu = _mm256_set1_ps(mu), vlr = _mm256_set1_ps(nlr);
  const bool reads_b = b != nullptr && !first, ieee = ieee_subnormals();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(g + i);
    if (reads_b) {
      const __m256 old = _mm256_loadu_ps(b + i);
      if (ieee && any_lane(subnormal_lanes(old))) {
        for (std::int64_t j = i; j < i + 8; ++j) update_one(p, b, g, j, mu, nlr, first, ieee);
        continue;
      }
      v = _mm256_add_ps(_mm256_mul_ps(old, vmu), v);
    }
    if (ieee && any_lane(subnormal_lanes(v))) {  // nothing stored yet: redo the vector element by element
      for (std::int64_t j = i; j < i + 8; ++j) update_one(p, b, g, j, mu, nlr, first, ieee);
      continue;
    }
    if (b != nullptr) _mm256_storeu_ps(b + i, v);
    _mm256_storeu_ps(p + i, _mm256_fmadd_ps(v, vlr, _mm256_loadu_ps(p + i)));
  }
  for (; i < n; ++i) update_one(p, b, g, i, mu, nlr, first, ieee);
}

__attribute__((target("avx2,fma"))) void accumulated_fma_avx2(float* p, float* b, std::int64_t n, float mu, float nlr) {
  const __m256 vmu = _mm256_set1_ps(mu), vlr = _mm256_set1_ps(nlr);
  const bool ieee = ieee_subnormals();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(b + i);
    const __m256 sub = ieee ? subnormal_lanes(v) : _mm256_setzero_ps();
    if (any_lane(sub)) {
      const __m256 pv = _mm256_loadu_ps(p + i);
      if (nlr < -4.0f || any_lane(_mm256_and_ps(sub, tiny_lanes(pv)))) {  // the plain FMA is needed: element by element
        for (std::int64_t j = i; j < i + 8; ++j) accumulated_one(p, b, j, mu, nlr, ieee);
        continue;
      }
      // The subnormal lanes as zero for the floating-point operations (θ + (−η)·0 = θ, which is
      // fma(v, −η, θ) for these θ), their buffer values by integer rounding.
      const __m256 safe = _mm256_andnot_ps(sub, v);
      _mm256_storeu_ps(p + i, _mm256_fmadd_ps(safe, vlr, pv));
      _mm256_storeu_ps(b + i, _mm256_blendv_ps(_mm256_mul_ps(safe, vmu), subnormal_times(v, mu), sub));
      continue;
    }
    _mm256_storeu_ps(p + i, _mm256_fmadd_ps(v, vlr, _mm256_loadu_ps(p + i)));
    _mm256_storeu_ps(b + i, _mm256_mul_ps(v, vmu));
  }
  for (; i < n; ++i) accumulated_one(p, b, i, mu, nlr, ieee);
}

bool cpu_has_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#else
bool cpu_has_fma() { return false; }
#endif

void fused_update(bool fma, float* p, float* b, const float* g, std::int64_t n, float mu, float nlr, bool first) {
  // ATen's grain size for elementwise kernels: the same split into threads (not that it matters
  // for the result: every element is computed on its own).
  at::parallel_for(0, n, 32768, [&](std::int64_t lo, std::int64_t hi) {
    float* bb = b == nullptr ? nullptr : b + lo;
#ifdef SL_SGD_X86
    if (fma && cpu_has_fma()) return update_fma_avx2(p + lo, bb, g + lo, hi - lo, mu, nlr, first);
#endif
    if (fma)
      update_portable<true>(p + lo, bb, g + lo, hi - lo, mu, nlr, first);
    else
      update_portable<false>(p + lo, bb, g + lo, hi - lo, mu, nlr, first);
  });
}

void fused_accumulated(bool fma, float* p, float* b, std::int64_t n, float mu, float nlr) {
  at::parallel_for(0, n, 32768, [&](std::int64_t lo, std::int64_t hi) {
#ifdef SL_SGD_X86
    if (fma && cpu_has_fma()) return accumulated_fma_avx2(p + lo, b + lo, hi - lo, mu, nlr);
#endif
    if (fma)
      accumulated_portable<true>(p + lo, b + lo, hi - lo, mu, nlr);
    else
      accumulated_portable<false>(p + lo, b + lo, hi - lo, mu, nlr);
  });
}

/// torch::optim::SGD's arithmetic (momentum, no dampening / Nesterov / weight decay), with ATen.
void aten_update(const torch::Tensor& param, torch::Tensor& buf, const torch::Tensor& g, double lr, double momentum) {
  torch::NoGradGuard no_grad;
  auto d_p = g;
  if (momentum != 0) {
    if (!buf.defined())
      buf = torch::clone(g).detach();
    else
      buf.mul_(momentum).add_(g, 1.0);
    d_p = buf;
  }
  param.add_(d_p, -1 * lr);
}

bool fusable(const torch::Tensor& p, const torch::Tensor& g) {
  return p.device().is_cpu() && p.scalar_type() == torch::kFloat && g.scalar_type() == torch::kFloat && p.is_contiguous() &&
         g.is_contiguous() && p.sizes() == g.sizes() && !p.is_complex();
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * sizeof(float)) == 0;
}

}  // namespace

SgdMomentum::SgdMomentum(std::vector<torch::Tensor> params, double lr, double momentum)
    : params_(std::move(params)), buffers_(params_.size()), scaled_(params_.size(), 0), lr_(lr), momentum_(momentum) {
  SL_CHECK(lr > 0 && std::isfinite(lr), ConfigError, "SGD: lr must be positive and finite, got ", lr);
  SL_CHECK(momentum >= 0 && momentum < 1, ConfigError, "SGD: momentum must be in [0, 1), got ", momentum);
  // The probe: two steps (first and later) of ATen's ops against each fused variant, bitwise, on
  // values where rounding θ + (−η)·b once or twice differs often (|η·b| ≈ |θ|), with more elements
  // than ATen's grain size so that a second thread takes part where there is one.
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(12345);
  const std::int64_t n = 2 * 32768 + 37;
  const auto theta = torch::rand({n}, gen).sub_(0.5);
  const auto g1 = torch::rand({n}, gen).sub_(0.5).div_(lr), g2 = torch::rand({n}, gen).sub_(0.5).div_(lr);
  auto ref_p = theta.clone();
  torch::Tensor ref_b;
  aten_update(ref_p, ref_b, g1, lr, momentum);
  const auto ref_p1 = ref_p.clone();
  aten_update(ref_p, ref_b, g2, lr, momentum);
  for (const bool fma : {true, false}) {
    auto p = theta.clone(), b = torch::empty_like(theta);
    float* bp = momentum != 0 ? b.data_ptr<float>() : nullptr;
    const auto mu = static_cast<float>(momentum), nlr = static_cast<float>(-1 * lr);
    fused_update(fma, p.data_ptr<float>(), bp, g1.data_ptr<float>(), n, mu, nlr, true);
    if (!same_bits(p, ref_p1)) continue;
    fused_update(fma, p.data_ptr<float>(), bp, g2.data_ptr<float>(), n, mu, nlr, false);
    if (!same_bits(p, ref_p) || (momentum != 0 && !same_bits(b, ref_b))) continue;
    kernel_ = fma ? Kernel::FusedFma : Kernel::Fused;
    break;
  }
}

const char* SgdMomentum::kernel() const {
  switch (kernel_) {
    case Kernel::FusedFma: return "fused-fma";
    case Kernel::Fused: return "fused";
    default: return "aten";
  }
}

void SgdMomentum::update(std::size_t i, const torch::Tensor& g) {
  const auto& p = params_[i];
  auto& buf = buffers_[i];
  if (kernel_ == Kernel::Aten || !fusable(p, g) || (buf.defined() && !buf.is_contiguous())) {
    if (scaled_[i]) {  // the buffer holds fl(μ·b) already
      torch::NoGradGuard no_grad;
      buf.add_(g, 1.0);
      p.add_(buf, -1 * lr_);
      scaled_[i] = 0;
      return;
    }
    aten_update(p, buf, g, lr_, momentum_);
    return;
  }
  const bool first = !buf.defined();
  if (momentum_ != 0 && first) buf = torch::empty_like(p, torch::MemoryFormat::Contiguous);
  // A buffer already scaled to fl(μ·b) (scaled_buffer) is added to as it is: μ = 1 in the kernel.
  const float mu = scaled_[i] ? 1.0f : static_cast<float>(momentum_);
  fused_update(kernel_ == Kernel::FusedFma, p.data_ptr<float>(), momentum_ != 0 ? buf.data_ptr<float>() : nullptr,
               g.data_ptr<float>(), p.numel(), mu, static_cast<float>(-1 * lr_), first);
  scaled_[i] = 0;
  // The parameter changed in place: what ATen's add_ does to its version counter.
  p.unsafeGetTensorImpl()->bump_version();
}

torch::Tensor SgdMomentum::scaled_buffer(std::size_t i) {
  SL_CHECK(i < params_.size(), InternalError, "SgdMomentum::scaled_buffer: parameter ", i, " of ", params_.size());
  auto& buf = buffers_[i];
  if (kernel_ == Kernel::Aten || momentum_ == 0 || !buf.defined() || !fusable(params_[i], buf)) return {};
  if (!scaled_[i]) {
    torch::NoGradGuard no_grad;
    buf.mul_(momentum_);  // fl(μ·b), as torch's SGD (then the product adds g)
    scaled_[i] = 1;
  }
  return buf;
}

void SgdMomentum::step_accumulated(std::size_t i) {
  SL_CHECK(i < params_.size() && scaled_[i], InternalError, "SgdMomentum::step_accumulated: parameter ", i,
           " has no scaled buffer (scaled_buffer first)");
  const auto& p = params_[i];
  fused_accumulated(kernel_ == Kernel::FusedFma, p.data_ptr<float>(), buffers_[i].data_ptr<float>(), p.numel(),
                    static_cast<float>(momentum_), static_cast<float>(-1 * lr_));
  p.unsafeGetTensorImpl()->bump_version();
}

void SgdMomentum::step() {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (params_[i].grad().defined()) update(i, params_[i].grad());
}

void SgdMomentum::step(const std::vector<torch::Tensor>& grads) {
  SL_CHECK(grads.size() == params_.size(), InternalError, "SgdMomentum::step: ", grads.size(), " gradients for ",
           params_.size(), " parameters");
  for (std::size_t i = 0; i < params_.size(); ++i) step(i, grads[i]);
}

void SgdMomentum::step(std::size_t i, const torch::Tensor& grad) {
  SL_CHECK(i < params_.size(), InternalError, "SgdMomentum::step: parameter ", i, " of ", params_.size());
  if (!grad.defined()) return;
  SL_CHECK(grad.sizes() == params_[i].sizes(), ShapeError, "SgdMomentum::step: gradient ", i, " has shape ", grad.sizes(),
           ", parameter ", params_[i].sizes());
  update(i, grad);
}

}  // namespace stablelearn::optim
