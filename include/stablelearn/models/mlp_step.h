// MlpLossGrad: the mean cross-entropy of an mlp Classifier (models/classifier.h) and its gradients
// with respect to the weights, computed without autograd in buffers made once per batch size — a
// workspace (shared/STYLE.md #4) for the training engine's plain SGD steps (experiments/cl_run).
//
// It runs the ATen kernels that autograd runs for
//   loss = nll_loss(log_softmax(masked(Classifier::forward(x)), 1), y)     (continual::cross_entropy)
//   loss.backward()
// in the same order on the same operands, so the loss and every gradient have the same bits as
// autograd's (tests/models/mlp_step_test.cpp checks this bitwise):
//   forward   z_l = addmm(b_l, h_{l−1}, W_lᵀ)  (at::linear),  h_l = relu(z_l),
//             logits masked to −∞ where `masked` (task-incremental heads), log_softmax, nll_loss (mean)
//   backward  nll_loss_backward, _log_softmax_backward_data, masked_fill(masked, 0),
//             ∂W_l = (∂z_lᵀ · h_{l−1})  (mm_mat2_backward of a column-major W_lᵀ),
//             ∂b_l = sum_to(∂z_l, [out]) = ∂z_l.sum(0, keepdim).view(out),
//             ∂h_{l−1} = ∂z_l · W_l  (mm_mat1_backward), ∂z_{l−1} = threshold_backward(∂h_{l−1}, h_{l−1}, 0)
// A hidden layer's product is written into a transposed scratch ([out, B] storage) and copied back
// by the ReLU (clamp_min, which is what ATen's relu runs): OpenBLAS then packs the weight as its other
// operand, which is faster for a few rows; a probe per layer and batch size keeps it only where it
// gives the plain product's bits.
// What it saves: building and walking the graph, the per-op autograd bookkeeping, the allocation of
// every activation and gradient per step, and (backward's add_into) storing the weight gradients at
// all: the products add them into the optimiser's momentum buffers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include <torch/types.h>

#include "stablelearn/models/classifier.h"

namespace stablelearn::models {

class MlpLossGrad {
 public:
  /// A workspace for `model` (which must outlive it; supports(model) must hold).
  explicit MlpLossGrad(const ClassifierImpl& model);
  /// Whether `model` can be run so: kind mlp, float32 weights on the CPU.
  static bool supports(const ClassifierImpl& model);

  /// The loss of images x [B, C, H, W] (float32, CPU) with labels y [B] (int64). With `masked`
  /// defined ([B, classes] bool), the logits where it is true are −∞ (Context::logits' task masks;
  /// the true class must not be masked). Keeps the activations backward() needs.
  double forward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& masked = {});
  /// Gradients of the last forward()'s loss for model.weights(), in layout order. The tensors
  /// belong to the workspace and are overwritten by the next backward() at the same batch size.
  /// `ready(first, count)`, where given, is called as soon as weights [first, first + count) (one
  /// layer's W and b, the output layer first) have their final gradients and backward() will not
  /// read them again: the caller may update them in place then, while the gradients are still in
  /// cache (the result is the same as updating after backward()).
  ///
  /// `add_into[k]`, where defined for a weight matrix k ([out, in], float32, contiguous), receives
  /// ∂W_k added to it by the matrix product itself (beta = 1: a ← fl(a + ∂W_k), never storing
  /// ∂W_k) instead of gradients()[k] — optim::SgdMomentum::scaled_buffer's momentum accumulation.
  /// It is done only where this gives the bits of ATen's a.add_(∂W_k) — checked once per layer and
  /// batch size on this machine with the thread count of that moment (OpenBLAS blocks the sum over a
  /// batch larger than its K block, 256 here, and then rounds differently); accumulated(k) says
  /// which way the last backward() went.
  const std::vector<torch::Tensor>& backward(const std::function<void(std::size_t first, std::size_t count)>& ready = {},
                                             const std::vector<torch::Tensor>& add_into = {});
  /// Whether the last backward() added ∂W_k into add_into[k] (else it is in gradients()[k]).
  bool accumulated(std::size_t k) const;
  /// The gradients backward() writes (valid during and after a backward(); see there).
  const std::vector<torch::Tensor>& gradients() const;

 private:
  struct Buffers {
    std::vector<torch::Tensor> z;   // z_l, relu'd in place for hidden layers (= h_l)
    std::vector<torch::Tensor> zt;  // hidden layer l: a transposed scratch for its product, where that rounds as z_l
    std::vector<torch::Tensor> grad_h;  // ∂h_{l−1} [B, in_l], then ∂z_{l−1} in place (l ≥ 1)
    torch::Tensor log_probs, grad_logits;
    std::vector<torch::Tensor> grads, bias_sums;  // bias_sums[l]: ∂b_l as [1, out] (sum, keepdim)
    std::vector<char> accumulate_ok;  // per layer: addmm into a buffer gives the bits of add_(mm)
    std::vector<char> accumulated;    // per weight: the last backward() added ∂W into add_into
  };
  Buffers& buffers(std::int64_t batch);

  const ClassifierImpl& model_;
  std::map<std::int64_t, Buffers> buffers_;
  Buffers* cur_ = nullptr;
  torch::Tensor input_, labels_, masked_, total_weight_, one_;
};

}  // namespace stablelearn::models
