// Equivariant layers (issue 22 item 6; Bronstein, Bruna, Cohen, Veličković, "Geometric Deep
// Learning", arXiv 2104.13478, shared/specs/papers-19-35.md §20): p4 group convolutions (Cohen &
// Welling's G-CNN for translations and rotations by 90°) with group pooling, a p4 CNN, and a
// message-passing graph layer.
//
// p4. Let R be the rotation of the image plane by 90° (torch::rot90(·, 1, {H, W} dims)) and a p4
// feature map f ∈ R^{C×4×H×W} a function on (rotation r, pixel u). conv2d is a correlation
// (f⋆ψ)(u) = Σ_v f(u + v) ψ(v).
//   lifting    (x ⋆ ψ)[o, r] = Σ_i x_i ⋆ R^r ψ_{o,i}                    x ∈ R^{C×H×W}, ψ ∈ R^{O×C×k×k}
//   group      (f ⋆ ψ)[o, r] = Σ_{i,s} f_{i,s} ⋆ R^r ψ_{o,i,(s−r) mod 4}  ψ ∈ R^{O×C×4×k×k}
// plus one bias per output channel (shared by the 4 rotations). With odd k and zero padding k/2 on
// square inputs both are exactly equivariant:
//   lift(R x)[r] = R lift(x)[r − 1],   gconv(R·f)[r] = R gconv(f)[r − 1]   where (R·f)[s] = R f[s − 1],
// i.e. rotating the input rotates every feature map and shifts the rotation axis cyclically by one.
// Group pooling (max or mean over the 4 rotations) gives rotation-equivariant planar maps; a global
// spatial mean after it is invariant. 2×2 max pooling with stride 2 commutes with R when H and W are
// even, so the p4 CNN below is exactly invariant.
//
// GroupCnn: conv blocks (3×3 by default; lifting then group convs for rotations = 4, plain convs for
// rotations = 1: the same network with the trivial rotation group), ReLU, 2×2 max pool after every
// block but the last, then group max pooling, a global spatial mean and a linear classifier.
//
// Message passing (GDL §5.3): for node features h ∈ R^{N×F} and directed edges v → u (edges [2, E],
// row 0 the sources v, row 1 the targets u),
//   m_u  = Σ_{v→u} ReLU(W_m [h_u, h_v] + b_m)      (sum aggregation, ψ = a ReLU layer)
//   h'_u = W_u [h_u, m_u] + b_u                    (φ = a linear layer)
// Permuting the nodes (and relabelling the edges) permutes the outputs; a sum over the nodes is
// invariant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

namespace functional {
/// Lifting convolution Z² → p4: x [N, C, H, W], weight [O, C, k, k], bias [O] (may be undefined)
/// → [N, O, 4, H, W] (padding k / 2; k odd). ShapeError on mismatched shapes.
torch::Tensor p4_lift_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
/// Group convolution p4 → p4: f [N, C, 4, H, W], weight [O, C, 4, k, k], bias [O] → [N, O, 4, H, W].
torch::Tensor p4_group_conv(const torch::Tensor& f, const torch::Tensor& weight, const torch::Tensor& bias);
/// Pooling over the rotation axis of [N, C, 4, H, W] → [N, C, H, W]; how = "max" or "mean".
torch::Tensor p4_group_pool(const torch::Tensor& f, const std::string& how = "max");
/// 2×2 stride-2 max pooling of each rotation's map: [N, C, 4, H, W] → [N, C, 4, H/2, W/2].
torch::Tensor p4_max_pool2(const torch::Tensor& f);
/// The action of rotation R^k on a p4 feature map: rotate every map by k·90° and shift the
/// rotation axis cyclically by k ((R^k·f)[s] = R^k f[s − k]).
torch::Tensor p4_rotate(const torch::Tensor& f, std::int64_t k);

/// Message-passing layer (see the file comment): h [N, F], edges [2, E] int64 (sources, targets),
/// w_msg [M, 2F], b_msg [M], w_upd [O, F + M], b_upd [O] → [N, O].
torch::Tensor message_passing(const torch::Tensor& h, const torch::Tensor& edges, const torch::Tensor& w_msg,
                              const torch::Tensor& b_msg, const torch::Tensor& w_upd, const torch::Tensor& b_upd);
/// Sum of node features per graph: h [N, F], graph [N] int64 in [0, graphs) → [graphs, F].
torch::Tensor graph_sum_pool(const torch::Tensor& h, const torch::Tensor& graph, std::int64_t graphs);
}  // namespace functional

struct GroupCnnOptions {
  std::int64_t rotations = 4;                    ///< 4: p4 (lifting + group convs); 1: plain CNN
  std::vector<std::int64_t> channels{8, 8, 8};   ///< channels per conv block (per rotation for p4)
  std::int64_t kernel = 3;                       ///< odd kernel size
  std::int64_t classes = 10;
  std::vector<std::int64_t> input{1, 28, 28};    ///< C, H, W
  void fields(options::Visitor& v);
  void cross_check() const;
};

class GroupCnnImpl : public torch::nn::Module {
 public:
  explicit GroupCnnImpl(GroupCnnOptions options);
  /// Logits [N, classes] of images [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& x) const { return forward(x, weights_); }
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  /// The last block's feature maps before group pooling: [N, C, 4, h, w] (p4) or [N, C, h, w].
  torch::Tensor features(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const GroupCnnOptions& options() const { return options_; }

 private:
  GroupCnnOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(GroupCnn);

struct MessagePassingOptions {
  std::int64_t in_features = 8;
  std::int64_t message_features = 16;  ///< M, width of the messages
  std::int64_t out_features = 8;
  void fields(options::Visitor& v);
};

class MessagePassingImpl : public torch::nn::Module {
 public:
  explicit MessagePassingImpl(MessagePassingOptions options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& edges) const { return forward(h, edges, weights_); }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& edges, const std::vector<torch::Tensor>& weights) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }

 private:
  MessagePassingOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(MessagePassing);

}  // namespace stablelearn::models
