// Private to sl_models: a torch::nn::Sequential MLP in → widths… → out with one activation module
// after every hidden layer (the owned-weight MLPs of koopman.cpp and flow_matching.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

namespace stablelearn::models::detail {

template <class Activation>
torch::nn::Sequential sequential_mlp(std::int64_t in, const std::vector<std::int64_t>& widths, std::int64_t out) {
  torch::nn::Sequential s;
  for (auto w : widths) {
    s->push_back(torch::nn::Linear(in, w));
    s->push_back(Activation());
    in = w;
  }
  s->push_back(torch::nn::Linear(in, out));
  return s;
}

}  // namespace stablelearn::models::detail
