// Private to sl_rl: the pieces PPO's and GRPO's policies share — the tanh MLP with orthogonal
// initialisation of the common reference implementations, and action sampling by inversion with a
// trainer's own splitmix64 stream (deterministic, independent of the device the probabilities are on).
#pragma once

#include <cstdint>

#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

namespace stablelearn::rl::detail {

/// in → hidden → hidden → out, tanh between, orthogonal weights (gain √2, the output out_gain), zero biases.
torch::nn::Sequential tanh_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, double out_gain);
/// Uniform in [0, 1) with 53 bits from `state` (advanced by one splitmix64 step).
double uniform01(std::uint64_t& state);
/// One action per row of probabilities [n, A], one uniform draw of `state` per row, in row order.
void sample_actions(const torch::Tensor& probs, std::uint64_t& state, std::int32_t* actions);
/// argmax per row of logits [n, A].
void greedy_actions(const torch::Tensor& logits, std::int32_t* actions);

}  // namespace stablelearn::rl::detail
