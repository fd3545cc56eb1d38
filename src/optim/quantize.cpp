// INT-k fake quantisation (include/stablelearn/optim/quantize.h).
#include "stablelearn/optim/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

namespace {

void check(const torch::Tensor& x, int bits, std::int64_t group_size, const char* who) {
  SL_CHECK(bits >= 2 && bits <= 16, ConfigError, who, ": bits ", bits, " (want 2 to 16)");
  SL_CHECK(group_size >= 1, ConfigError, who, ": group size ", group_size, " (want >= 1)");
  SL_CHECK(x.numel() % group_size == 0, ConfigError, who, ": ", x.numel(), " values are not a multiple of the group size ",
           group_size);
}

/// x̂ forward, the gradient unchanged backward (exactly x̂: not x̂ + x − x, which rounds).
struct StraightThrough : public torch::autograd::Function<StraightThrough> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x, int64_t bits, int64_t group) {
    return fake_quantize(x, static_cast<int>(bits), group);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list grad) {
    return {grad[0], torch::Tensor(), torch::Tensor()};
  }
};

struct QuantizeBoth : public torch::autograd::Function<QuantizeBoth> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t bits, int64_t group) {
    ctx->saved_data["bits"] = bits;
    ctx->saved_data["group"] = group;
    return fake_quantize(x, static_cast<int>(bits), group);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto bits = static_cast<int>(ctx->saved_data["bits"].toInt());
    const auto group = ctx->saved_data["group"].toInt();
    return {fake_quantize(grad[0], bits, group), torch::Tensor(), torch::Tensor()};
  }
};

/// Round half to even as std::nearbyint in the default rounding mode, without its library call:
/// for |v| < 2^(digits−2) adding and subtracting 1.5·2^(digits−1) rounds v to an integer in the FPU's
/// own mode (round to nearest even), exactly; larger |v| are integers already or go to nearbyint.
template <typename T>
inline T round_even(T v) {
  constexpr T big = static_cast<T>(1.5) * static_cast<T>(std::int64_t{1} << (std::numeric_limits<T>::digits - 1));
  constexpr T limit = static_cast<T>(std::int64_t{1} << (std::numeric_limits<T>::digits - 2));
  if (std::abs(v) < limit) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    const T t = v + big;  // evaluated in T (SSE): rounded to an integer here
#else
    volatile T t = v + big;  // force the rounding to T where sums may be kept wider (x87)
#endif
    return t - big;
  }
  return std::nearbyint(v);
}

/// The tensor formula of the header, group by group in one loop, in the tensor's own dtype and with
/// the same operations (so the same bits: round half to even, the scalars cast to T first).
///
/// Speed: the min/max scan keeps four independent pairs of accumulators (max and min are exact, so
/// the order does not change the result), and where every |x/s| of the group is below round_even's
/// limit (checked once per group from max(|hi|, |lo|) / s, which bounds them: division rounds
/// monotonically) the quantisation loop has no branch, so the compiler vectorises it; the rounding
/// (v + big) − big is round_even's own, exact in T.
template <typename T>
void fake_quantize_groups(const T* x, T* out, std::int64_t n, std::int64_t group, T q_max) {
  const T floor = static_cast<T>(1e-5);
  constexpr T big = static_cast<T>(1.5) * static_cast<T>(std::int64_t{1} << (std::numeric_limits<T>::digits - 1));
  constexpr T limit = static_cast<T>(std::int64_t{1} << (std::numeric_limits<T>::digits - 2));
  for (std::int64_t g0 = 0; g0 < n; g0 += group) {
    const T* xs = x + g0;
    T hi[4] = {xs[0], xs[0], xs[0], xs[0]}, lo[4] = {xs[0], xs[0], xs[0], xs[0]};
    bool nan = false;
    std::int64_t i = 0;
    for (; i + 4 <= group; i += 4) {
      for (int k = 0; k < 4; ++k) {
        const T v = xs[i + k];
        hi[k] = std::max(hi[k], v);
        lo[k] = std::min(lo[k], v);
        nan |= (v != v);
      }
    }
    for (; i < group; ++i) {
      hi[0] = std::max(hi[0], xs[i]);
      lo[0] = std::min(lo[0], xs[i]);
      nan |= (xs[i] != xs[i]);
    }
    T* os = out + g0;
    if (nan) {  // as torch's max/min: a NaN makes the whole group NaN
      std::fill(os, os + group, std::numeric_limits<T>::quiet_NaN());
      continue;
    }
    const T h = std::max(std::max(hi[0], hi[1]), std::max(hi[2], hi[3]));
    const T l = std::min(std::min(lo[0], lo[1]), std::min(lo[2], lo[3]));
    const T s = std::max(h - l, floor) / q_max;
    const T z = std::min(std::max(-round_even(l / s), T(0)), q_max);
    if (std::max(std::abs(h), std::abs(l)) / s < limit) {
      for (std::int64_t j = 0; j < group; ++j) {
        const T v = xs[j] / s;
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
        const T r = (v + big) - big;
#else
        const T r = round_even(v);
#endif
        const T q = std::min(std::max(r + z, T(0)), q_max);
        os[j] = (q - z) * s;
      }
    } else {
      for (std::int64_t j = 0; j < group; ++j) {
        const T q = std::min(std::max(round_even(xs[j] / s) + z, T(0)), q_max);
        os[j] = (q - z) * s;
      }
    }
  }
}

}  // namespace

torch::Tensor fake_quantize(const torch::Tensor& x, int bits, std::int64_t group_size) {
  check(x, bits, group_size, "fake_quantize");
  torch::NoGradGuard no_grad;
  if (x.device().is_cpu() && x.is_contiguous() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64)) {
    auto out = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fake_quantize", [&] {
      fake_quantize_groups(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), x.numel(), group_size,
                           static_cast<scalar_t>((std::int64_t{1} << bits) - 1));
    });
    return out;
  }
  const double q_max = static_cast<double>((std::int64_t{1} << bits) - 1);
  const auto g = x.reshape({-1, group_size});
  const auto hi = std::get<0>(g.max(1, /*keepdim=*/true));
  const auto lo = std::get<0>(g.min(1, /*keepdim=*/true));
  const auto s = (hi - lo).clamp_min(1e-5) / q_max;
  const auto z = (-torch::round(lo / s)).clamp_(0, q_max);
  const auto q = torch::clamp(torch::round(g / s) + z, 0, q_max);
  return ((q - z) * s).reshape(x.sizes());
}

torch::Tensor fake_quantize_ste(const torch::Tensor& x, int bits, std::int64_t group_size) {
  check(x, bits, group_size, "fake_quantize_ste");
  return StraightThrough::apply(x, static_cast<int64_t>(bits), group_size);
}

torch::Tensor quantize_forward_backward(const torch::Tensor& x, int bits, std::int64_t group_size) {
  check(x, bits, group_size, "quantize_forward_backward");
  return QuantizeBoth::apply(x, static_cast<int64_t>(bits), group_size);
}

QuantLinearImpl::QuantLinearImpl(const QuantLinearOptions& o) : options(o) {
  SL_CHECK(o.weight_bits() == 0 || (o.weight_bits() >= 2 && o.weight_bits() <= 16), ConfigError, "QuantLinear: weight_bits ",
           o.weight_bits(), " (want 0 = off, or 2 to 16)");
  SL_CHECK(o.activation_bits() == 0 || (o.activation_bits() >= 2 && o.activation_bits() <= 16), ConfigError,
           "QuantLinear: activation_bits ", o.activation_bits(), " (want 0 = off, or 2 to 16)");
  SL_CHECK(o.weight_bits() == 0 || (o.in_features() * o.out_features()) % o.weight_group() == 0, ConfigError, "QuantLinear: ",
           o.out_features(), "x", o.in_features(), " weights are not a multiple of weight_group ", o.weight_group());
  linear = register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(o.in_features(), o.out_features()).bias(o.bias())));
}

torch::Tensor QuantLinearImpl::forward(const torch::Tensor& x) {
  const auto w = options.weight_bits() > 0 ? fake_quantize_ste(linear->weight, options.weight_bits(), options.weight_group())
                                           : linear->weight;
  const auto in = options.activation_bits() > 0 ? quantize_forward_backward(x, options.activation_bits(), options.activation_group()) : x;
  return torch::nn::functional::linear(in, w, options.bias() ? linear->bias : torch::Tensor());
}

}  // namespace stablelearn::optim
