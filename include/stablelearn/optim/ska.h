// Structured Knowledge Accumulation (seed paper 9, shared/specs/papers-01-18.md §9; docs/optim.md):
// forward-only, label-free, layer-local learning that decreases the knowledge entropy. No loss, no
// backpropagation across layers: every layer updates from its own knowledge and decisions.
//
// Network: sigmoid layers z^l = x^(l−1) W^l + b^l ("knowledge"), D^l = σ(z^l) ("decision
// probabilities"), x^l = D^l, x^0 the input (N × n0). W^l ~ N(0, init_std²), b^l = 0.
// A run of K steps on one batch (the reference `quantiota/Arxiv` 2504.03214 script):
//   step 0:      forward pass; D_prev ← D, Z_prev ← Z.
//   step k ≥ 1:  forward pass with the current weights; per layer ΔD = D − D_prev,
//                entropy  H^l = −(1/ln 2) Σ z^l ⊙ ΔD^l            (sum over batch and units),
//                G^l = −(1/ln 2)(z^l ⊙ D^l(1 − D^l) + ΔD^l)     (= ∂H^l/∂z^l with D_prev fixed),
//                W^l ← W^l − η (x_prevᵀ G^l)/N,  b^l ← b^l − η mean_batch(G^l),
//                x_prev = the input for layer 1 and D^(l−1) of the previous step otherwise;
//                then D_prev ← D, Z_prev ← Z.
// So K steps make K − 1 updates, and step 1 (ΔD = 0, H = 0) updates from z ⊙ D(1 − D) alone. The
// update of layer 1 is exactly gradient descent on H^1/N in (W, b); the deeper layers use the
// previous step's input, as the reference does. Diagnostics per layer and step k ≥ 1: the alignment
// cos θ = ⟨z, ΔD⟩/(‖z‖‖ΔD‖), the Tensor Net Σ ΔZ ⊙ (D − (1/ln 2) z ⊙ D(1 − D)) and the knowledge
// flow ‖Z − Z_prev‖_F/η.
//
// The dynamics depend on η and the step count only through t = η·(updates made), up to O(η): the
// repro `ska` checks this collapse. Device and dtype follow the TensorOptions given.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace stablelearn::optim {

struct SkaOptions {
  /// Widths of the sigmoid layers after the input (the paper: 256, 128, 64, 10).
  std::vector<std::int64_t> layer_sizes{256, 128, 64, 10};
  /// Learning rate η (> 0).
  double lr = 0.01;
  /// Standard deviation of the initial weights (> 0).
  double init_std = 0.01;
  /// ConfigError naming the key ("ska.lr", "ska.init_std", "ska.layer_sizes") otherwise.
  void validate() const;
};

/// Knowledge entropy of a layer: −(1/ln 2) Σ z ⊙ ΔD (a 0-dim tensor). ShapeError when the shapes differ.
torch::Tensor ska_entropy(const torch::Tensor& z, const torch::Tensor& delta_d);
/// The local update direction G = −(1/ln 2)(z ⊙ D(1 − D) + ΔD), D = σ(z): the gradient of
/// ska_entropy(z, σ(z) − D_prev) in z with D_prev fixed.
torch::Tensor ska_entropy_gradient(const torch::Tensor& z, const torch::Tensor& delta_d);

/// One layer's diagnostics at a step k ≥ 1.
struct SkaLayerStats {
  double entropy = 0;         ///< H^l of this step
  double cosine = 0;          ///< cos θ between z and ΔD (0 when either is zero)
  double tensor_net = 0;      ///< Σ ΔZ ⊙ (D − (1/ln 2) z ⊙ D(1 − D))
  double knowledge_flow = 0;  ///< ‖Z − Z_prev‖_F / η
  double z_norm = 0;          ///< ‖Z‖_F
};

/// What one step did: its index in the run, and for k ≥ 1 (updated) one SkaLayerStats per layer.
struct SkaStep {
  std::int64_t index = 0;
  bool updated = false;
  std::vector<SkaLayerStats> layers;
};

/// The network and its SKA state (previous step's Z and D).
class SkaNetwork {
 public:
  /// input_size > 0; weights drawn from torch's default generator for tensor_options' device.
  SkaNetwork(std::int64_t input_size, SkaOptions options, const torch::TensorOptions& tensor_options = torch::kFloat32);

  /// Decision probabilities D^l of every layer for x (N × input_size); changes nothing.
  std::vector<torch::Tensor> forward(const torch::Tensor& x) const;
  /// One step of the run on the batch x (see the file comment). The batch must be the same at every
  /// step of a run; call reset() before a run on another batch. ShapeError / DataError on a batch of
  /// the wrong shape or with non-finite values.
  SkaStep step(const torch::Tensor& x);
  /// reset(), then `steps` steps on x; the steps' diagnostics.
  std::vector<SkaStep> train(const torch::Tensor& x, std::int64_t steps);
  /// Forget the previous step (the next step is a step 0).
  void reset();

  const SkaOptions& options() const { return options_; }
  std::int64_t input_size() const { return input_size_; }
  const std::vector<torch::Tensor>& weights() const { return w_; }  ///< W^l, (in × out)
  const std::vector<torch::Tensor>& biases() const { return b_; }
  std::vector<torch::Tensor>& weights() { return w_; }
  std::vector<torch::Tensor>& biases() { return b_; }

 private:
  void check_batch(const torch::Tensor& x) const;

  std::int64_t input_size_;
  SkaOptions options_;
  std::vector<torch::Tensor> w_, b_;
  std::vector<torch::Tensor> z_prev_, d_prev_;  // empty before step 0
  std::int64_t index_ = 0;
};

}  // namespace stablelearn::optim
