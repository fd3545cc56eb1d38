// INT-k fake quantisation for low-bit training simulation (seed paper 22's INT4 set-up,
// shared/specs/papers-19-35.md §22; docs/optim.md).
//
// Group-wise asymmetric min-max quantisation, as the reference's utils/fake_quantization.py: the
// tensor is cut into groups of `group_size` consecutive values (numel must be a multiple), and per
// group with q_max = 2^bits − 1
//   s = max(max − min, 1e-5) / q_max,   z = clamp(−round(min / s), 0, q_max),
//   q = clamp(round(x / s) + z, 0, q_max),   x̂ = (q − z) s.
// round is round-half-to-even (torch::round, as the reference). The weights' straight-through
// estimator returns x̂ forward and passes the gradient unchanged; activations are quantised in the
// forward pass and their gradient again in the backward pass (deterministic rounding; the
// reference's optional stochastic rounding is not implemented).
#pragma once

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

namespace stablelearn::optim {

/// x̂ for x (any shape, numel a multiple of group_size; ConfigError otherwise), bits in [2, 16].
torch::Tensor fake_quantize(const torch::Tensor& x, int bits, std::int64_t group_size);

/// Straight-through: exactly x̂ forward, the gradient unchanged backward.
torch::Tensor fake_quantize_ste(const torch::Tensor& x, int bits, std::int64_t group_size);

/// x̂ forward; the incoming gradient quantised the same way (bits, group_size) backward.
torch::Tensor quantize_forward_backward(const torch::Tensor& x, int bits, std::int64_t group_size);

struct QuantLinearOptions {
  QuantLinearOptions(std::int64_t in, std::int64_t out) : in_features_(in), out_features_(out) {}
  TORCH_ARG(std::int64_t, in_features);
  TORCH_ARG(std::int64_t, out_features);
  TORCH_ARG(bool, bias) = true;
  /// 0 = weights in full precision.
  TORCH_ARG(int, weight_bits) = 4;
  TORCH_ARG(std::int64_t, weight_group) = 256;
  /// 0 = activations in full precision.
  TORCH_ARG(int, activation_bits) = 4;
  TORCH_ARG(std::int64_t, activation_group) = 64;
};

/// A linear layer whose weights (STE) and input activations (forward and backward) are fake
/// quantised; the weights themselves stay in full precision (they are what the optimiser updates).
class QuantLinearImpl : public torch::nn::Module {
 public:
  explicit QuantLinearImpl(const QuantLinearOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear linear{nullptr};
  QuantLinearOptions options;
};
TORCH_MODULE(QuantLinear);

}  // namespace stablelearn::optim
