// Image classifiers for the continual-learning engine, in functional form (shared/DESIGN.md
// "models/"): forward(x) with the owned parameters, forward(x, weights) with any weight list of the
// same layout (LwF's frozen teacher, EMA copies, gradient-subspace strategies).
//
//   mlp   Flatten → [Linear(h) → ReLU] × L → Linear(classes). Default 784-400-400-10, the MLP of the
//         stability-gap papers (ContinualEvaluation, van de Ven et al.).
//   cnn   Conv(1→c1, 3×3, pad 1) → ReLU → MaxPool 2 → Conv(c1→c2, 3×3, pad 1) → ReLU → MaxPool 2 →
//         Flatten → Linear(fc) → ReLU → Linear(classes); default c1 = 32, c2 = 64, fc = 128.
//
// Multi-head (task-incremental) evaluation does not need separate modules: the shared output layer
// holds one head per task as the rows of that task's classes, and the engine masks the logits of
// every other class to −∞ (Mammoth's task-IL protocol), which is exactly a multi-head classifier.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn {
class ConfigSection;
class ConfigWriter;
}  // namespace stablelearn

namespace stablelearn::models {

struct ClassifierOptions {
  std::string kind = "mlp";                    ///< mlp | cnn
  std::vector<std::int64_t> hidden{400, 400};  ///< mlp: hidden widths
  std::vector<std::int64_t> channels{32, 64};  ///< cnn: channels of the two conv blocks
  std::int64_t fc = 128;                       ///< cnn: width of the fully connected layer
  std::int64_t classes = 10;
  std::vector<std::int64_t> input{1, 28, 28};  ///< C, H, W

  /// The keys of [model] (kind, hidden, channels, fc; core/options.h).
  void fields(options::Visitor& v);
  /// The rules that involve the code-set classes and input.
  void cross_check() const;
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(ClassifierOptions options);
  /// Logits [N, classes] of images [N, C, H, W] with the owned parameters.
  torch::Tensor forward(const torch::Tensor& x) { return forward(x, weights_); }
  /// Logits with `weights` in place of the owned parameters (same layout; ShapeError otherwise).
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  /// Input features of every linear layer (flattened), for representation-based strategies (GPM).
  /// Conv layers are skipped. Returns one [N, in_features] tensor per linear layer, in order.
  std::vector<torch::Tensor> linear_inputs(const torch::Tensor& x) const;
  /// Hidden representations of images x with `weights` (same layout), one tensor per hidden layer,
  /// each flattened to [N, features]: mlp, the post-ReLU output of every hidden Linear
  /// (hidden.size() layers); cnn, conv block 1 and conv block 2 after ReLU and max-pool, then the
  /// post-ReLU fc layer (3 layers). The logits are not included. Used by representation
  /// similarity (`stablelearn diagnose cka`).
  std::vector<torch::Tensor> hidden_activations(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  /// Number of hidden layers hidden_activations() returns.
  std::int64_t hidden_layers() const;
  /// Indices into weights() of the linear layers' weight matrices ([out, in]).
  const std::vector<std::size_t>& linear_weight_indices() const { return linear_w_; }
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const ClassifierOptions& options() const { return options_; }

 private:
  torch::Tensor features_cnn(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const;
  ClassifierOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
  std::vector<std::size_t> linear_w_;
};
TORCH_MODULE(Classifier);

/// Names and one-line descriptions of the registered classifier kinds (for `stablelearn list models`).
std::vector<std::pair<std::string, std::string>> classifier_kinds();

}  // namespace stablelearn::models
