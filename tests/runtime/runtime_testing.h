// Helpers shared by the runtime test files.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "stablelearn/models/snode.h"
#include "stablelearn/runtime/skill.h"

namespace stablelearn::testing {

/// The libtorch sNODE of a loaded sNODE skill: its options and the file's float32 weights in
/// layout order.
struct LibtorchSNode {
  models::SNodeOptions options;
  std::vector<torch::Tensor> weights;
};

inline LibtorchSNode libtorch_snode(const runtime::Skill& skill) {
  const auto& h = skill.header();
  auto o = models::SNodeOptions(h.dim)
               .hidden(h.hidden[0])
               .fhat_layers(static_cast<std::int64_t>(h.hidden.size()))
               .icnn_hidden(h.icnn_hidden)
               .alpha(h.alpha)
               .eps(h.eps)
               .rehu(h.rehu)
               .explicit_time(h.explicit_time);
  const auto flat = torch::from_blob(const_cast<float*>(skill.weights().data()),
                                     {static_cast<std::int64_t>(skill.weights().size())}, torch::kFloat32)
                        .clone();
  return {o, models::snode_layout(o).split(flat)};
}

}  // namespace stablelearn::testing
