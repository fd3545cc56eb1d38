// Parameter-efficient adapters on the linear layers of a Classifier (models/classifier.h), in
// functional form: the backbone's weights (the Classifier's layout) and the adapter tensors are
// separate lists, so a frozen pre-trained backbone and trainable adapters can be combined, merged
// or swapped (mixtures of adapters, adapter reuse) without touching the model.
//
//   LoRA (Hu et al., ICLR 2022)           y = W x + b + (α/r) · B A x
//        A [r, in] ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)), B [out, r] = 0, W, b frozen;
//        at initialisation y = W x + b exactly. The merged weight W + (α/r) B A gives the same y.
//   bottleneck (Houlsby et al., ICML 2019) h ↦ h + U σ(D h + d) + u, σ = ReLU, applied to the output
//        h = W x + b of the linear layer (before the layer's own ReLU); D [r, out] ~ U(−1/√out,
//        1/√out), d = 0, U [out, r] = 0, u = 0, so the adapter starts as the identity.
//
// Adapters sit on every linear layer but the output layer ("out"): mlp, layer_0 .. layer_{L−1};
// cnn, fc. The output layer is the classification head; it trains or not (AdapterOptions::
// train_head), the backbone's other weights train unless frozen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

/// y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ: x [N, in], W [out, in], b [out] (may be undefined),
/// A [r, in], B [out, r]. scale = α / r.
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b, const torch::Tensor& A,
                          const torch::Tensor& B, double scale);
/// The merged weight W + scale · B A of a LoRA layer (same output as lora_linear with bias b).
torch::Tensor lora_merged_weight(const torch::Tensor& W, const torch::Tensor& A, const torch::Tensor& B, double scale);
/// h + (ReLU(h Dᵀ + d)) Uᵀ + u: h [N, out], D [r, out], d [r], U [out, r], u [out].
torch::Tensor bottleneck_adapter(const torch::Tensor& h, const torch::Tensor& D, const torch::Tensor& d, const torch::Tensor& U,
                                 const torch::Tensor& u);

struct AdapterOptions {
  std::string kind = "none";  ///< none | lora | bottleneck
  std::int64_t rank = 4;      ///< r: LoRA rank / bottleneck width
  double alpha = 0;           ///< LoRA α (scale α/r); 0 = r (scale 1)
  bool freeze = true;         ///< the backbone's weights (all but the output layer) do not train
  bool train_head = true;     ///< the output layer trains
  void fields(options::Visitor& v);
  double scale() const { return (alpha > 0 ? alpha : static_cast<double>(rank)) / static_cast<double>(rank); }
};

/// A Classifier with adapters. The base model keeps its weights (a frozen base has
/// requires_grad = false on them); the adapter tensors are owned here. The trainable parameters
/// (trainable()) are, in order: the adapter tensors, then the base weights that train (the
/// output layer's with train_head, all of them when not frozen).
class AdaptedClassifier {
 public:
  /// `base` must outlive this object. Adapter tensors are drawn from `gen` (dtype and device of
  /// the base's weights). ConfigError when nothing would train (frozen, no adapter, no head).
  AdaptedClassifier(ClassifierImpl& base, AdapterOptions options, torch::Generator gen);

  /// Logits with base weights `base_w` (the base's layout) and adapter tensors `adapter_w`
  /// (adapter_layout()).
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& base_w,
                        const std::vector<torch::Tensor>& adapter_w) const;
  /// Logits with the trainable parameters `w` (the layout of trainable()); the other base weights
  /// are the base model's.
  torch::Tensor forward_trainable(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const;
  torch::Tensor forward(const torch::Tensor& x) const { return forward(x, base_.weights(), adapter_w_); }

  std::vector<torch::Tensor> trainable() const;
  /// Indices into the base's weights() of the base tensors in trainable() (after the adapters).
  const std::vector<std::size_t>& trainable_base() const { return trainable_base_; }
  const WeightLayout& adapter_layout() const { return adapter_layout_; }
  const std::vector<torch::Tensor>& adapter_weights() const { return adapter_w_; }
  /// Index into adapter_weights() of the first adapter tensor of each linear layer of the base
  /// (linear_weight_indices() order), or -1 for a layer without adapter.
  const std::vector<std::int64_t>& adapter_of_layer() const { return adapter_of_layer_; }
  const AdapterOptions& options() const { return options_; }
  ClassifierImpl& base() const { return base_; }

 private:
  ClassifierImpl& base_;
  AdapterOptions options_;
  WeightLayout adapter_layout_;
  std::vector<torch::Tensor> adapter_w_;
  std::vector<std::int64_t> adapter_of_layer_;
  std::vector<std::size_t> trainable_base_;
};

}  // namespace stablelearn::models
