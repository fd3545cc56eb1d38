// NODE target network (shared/specs/clfd-snode.md §2.2; Auddy et al., RAS 165:104427, 2023,
// "Continual learning from demonstration of robotic skills", the HN/CHN→NODE model).
//
// A neural ODE ẋ = f_w(x, t) whose right-hand side is a plain MLP
//     z = [x, t] (explicit_time; t = absolute time of the solver stage, appended LAST) or z = x,
//     h_0 = z,  h_{k+1} = ELU_α(W_k h_k + b_k)  (k = 0 .. K−1, K = hidden().size()),
//     f = W_out h_K + b_out ∈ R^d,
// with ELU_α(s) = s for s > 0, α(eˢ − 1) otherwise (α = 1 in every reference command).
// Weight list (order of the generated flat vector): [W_0, b_0, …, W_{K−1}, b_{K−1}, W_out, b_out],
// W ∈ R^{out×in} (PyTorch convention y = x Wᵀ + b).
//
// Three faces (shared/STYLE.md #3): NodeMlpOptions, the functional twin
// functional::node_mlp / node_rhs (the single implementation, used with generated weights) and
// NodeMlpImpl / NodeMlp that owns its weights (initialised U(−1/√fan_in, 1/√fan_in), spec §2.2).
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

struct NodeMlpOptions {
  /// `dim` = state dimension d (2 for LASA 2D, 8/16/32 for high-dimensional LASA, 6 RoboTasks9).
  explicit NodeMlpOptions(std::int64_t dim) : dim_(dim) {}
  /// State dimension d (output width). No default: required.
  TORCH_ARG(std::int64_t, dim);
  /// Hidden layer widths (--tnet_arch). Default {100, 100, 100} (the HN→NODE command; CHN→NODE
  /// uses {1000, 1000, 1000}). May be empty (a single linear map).
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{100, 100, 100};
  /// Append the time t as the last input feature (--explicit_time). Default true (every
  /// experiment of the paper); false gives input x only.
  TORCH_ARG(bool, explicit_time) = true;
  /// ELU α (--tnet_act elu, PyTorch default 1.0).
  TORCH_ARG(double, elu_alpha) = 1.0;
  /// Width c of a conditioning vector (a task embedding) placed FIRST in the input,
  /// z = [cond, x, t] (the FT/REP/SI/MAS baselines, spec §7). Default 0 (none).
  TORCH_ARG(std::int64_t, condition_dim) = 0;

 public:

  /// Input width condition_dim + d + explicit_time.
  std::int64_t input_dim() const { return condition_dim_ + dim_ + (explicit_time_ ? 1 : 0); }
  /// ConfigError for a non-positive dim or hidden width, or a non-positive ELU α.
  void validate() const;
};

/// Weight layout "layer_{k}.weight" [h_k, in_k], "layer_{k}.bias" [h_k], ...,
/// "layer_out.weight" [d, h_K], "layer_out.bias" [d].
WeightLayout node_mlp_layout(const NodeMlpOptions& options);
/// fan_in of every layout entry (the input width of its layer), for initialisation.
std::vector<std::int64_t> node_mlp_fan_in(const NodeMlpOptions& options);

namespace functional {

/// z [B, d] and a time t (0-dim or 1-element tensor) -> [z, t] [B, d + 1] (time last).
torch::Tensor append_time(const torch::Tensor& x, const torch::Tensor& t);

/// The MLP itself: z [B, input_dim] -> [B, d] with weights in node_mlp_layout order.
torch::Tensor node_mlp(const torch::Tensor& z, const std::vector<torch::Tensor>& weights,
                       const NodeMlpOptions& options);

/// ODE right-hand side ẋ = f_w(x, t): x [B, d], t scalar tensor -> [B, d]. With
/// condition_dim c > 0, `cond` ([c] or [B, c]) is placed first: f_w([cond, x, t]).
torch::Tensor node_rhs(const torch::Tensor& t, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& weights, const NodeMlpOptions& options,
                       const torch::Tensor& cond = {});

}  // namespace functional
namespace F = functional;

/// Owned-weight NODE MLP. Parameters are registered under the layout names with '.' -> '_'.
class NodeMlpImpl : public torch::nn::Cloneable<NodeMlpImpl> {
 public:
  explicit NodeMlpImpl(NodeMlpOptions options);
  /// (Re-)creates and initialises the weights: U(−1/√fan_in, 1/√fan_in) for W and b.
  void reset() override;
  /// ẋ = f(x, t): x [B, d], t scalar tensor.
  torch::Tensor forward(const torch::Tensor& t, const torch::Tensor& x);
  /// The weights in layout order (the registered parameters themselves).
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  void pretty_print(std::ostream& stream) const override;

  NodeMlpOptions options;

 private:
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(NodeMlp);

}  // namespace stablelearn::models
