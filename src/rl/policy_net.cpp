#include "policy_net.h"

#include <algorithm>
#include <cmath>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include "stablelearn/rl/env.h"

namespace stablelearn::rl::detail {

namespace {
torch::nn::Linear ortho_linear(std::int64_t in, std::int64_t out, double gain) {
  torch::nn::Linear l(in, out);
  torch::NoGradGuard g;
  torch::nn::init::orthogonal_(l->weight, gain);
  l->bias.zero_();
  return l;
}
}  // namespace

double uniform01(std::uint64_t& state) {
  SplitMix64 r{state};
  const auto v = r.next();
  state = r.state;
  return static_cast<double>(v >> 11) * 0x1.0p-53;
}

torch::nn::Sequential tanh_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, double out_gain) {
  const double g = std::sqrt(2.0);
  return torch::nn::Sequential(ortho_linear(in, hidden, g), torch::nn::Tanh(), ortho_linear(hidden, hidden, g),
                               torch::nn::Tanh(), ortho_linear(hidden, out, out_gain));
}

void sample_actions(const torch::Tensor& probs, std::uint64_t& state, std::int32_t* actions) {
  const auto p = probs.to(torch::kCPU, torch::kDouble).contiguous();
  const double* pp = p.data_ptr<double>();
  const auto n = p.size(0), A = p.size(1);
  for (std::int64_t i = 0; i < n; ++i) {
    const double u = uniform01(state);
    double c = 0;
    std::int64_t a = A - 1;
    for (std::int64_t k = 0; k < A; ++k) {
      c += pp[i * A + k];
      if (u < c) {
        a = k;
        break;
      }
    }
    actions[i] = static_cast<std::int32_t>(a);
  }
}

void greedy_actions(const torch::Tensor& logits, std::int32_t* actions) {
  const auto a = logits.argmax(1).to(torch::kCPU, torch::kInt).contiguous();
  std::copy(a.data_ptr<std::int32_t>(), a.data_ptr<std::int32_t>() + a.numel(), actions);
}

}  // namespace stablelearn::rl::detail
