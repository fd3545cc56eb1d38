// Task-conditioned hypernetworks that generate the weights of a target network
// (von Oswald, Henning, Grewe, Sacramento, "Continual learning with hypernetworks", ICLR 2020;
// shared/specs/clfd-snode.md §2.4–2.6). Both produce a flat vector w ∈ R^P ordered as the target's
// WeightLayout; `generate` splits it into the target's tensors (row-major).
//
// HyperNetwork (HN, §2.4): task embedding e_i ∈ R^{te} (one per task, N(0, 1), not in θ),
//     h_0 = e_i,  h_{k+1} = ReLU(W_k h_k + b_k)  (hidden() = 200,200,200),
//     w_j = A_j h_K + c_j  — one linear head per target tensor j, no output activation,
//     θ = [W_0, b_0, …, W_{K−1}, b_{K−1}, A_0, c_0, A_1, c_1, …].
//
// ChunkedHyperNetwork (CHN, §2.5, --chn_type complex): K = ceil(P / C) chunks of C = chunk_dim()
// values; chunk embeddings E ∈ R^{K×ce} (N(0, 1), shared by all tasks and part of θ);
//     input of chunk k = [e_i, E_k] ∈ R^{te+ce} (task embedding first), same ReLU trunk,
//     one head R^{h_K} → R^C,  output [K, C] → flatten row-major (chunk 0 first) → first P values.
//     θ = [E, W_0, b_0, …, W_head, b_head].
//
// Initialisation (both): every (weight, bias) pair U(−1/√fan_in, 1/√fan_in), fan_in = the layer's
// input width (HN trunk te, 200, 200, heads 200; CHN trunk te + ce, 200, 200, head 200).
//
// Parameter counts (§2.6): |θ| + N·te for N tasks, e.g. HN for the LASA 2D sNODE (P = 31,706,
// N = 26): 131,800 + 201·31,706 + 26·256 = 6,511,362.
//
// Magnitude-invariant parametrisation (MIP; Ortiz, Guttag, Dalca, ICLR 2024; shared/specs/
// papers-01-18.md §17), `mip(true)`, off by default (then nothing above changes, bit for bit):
//   * input: every embedding row is rescaled to the constant norm √dim, ê = √te · e/‖e‖ (the CHN's
//     chunk embeddings likewise to √ce), so the trunk never sees the embedding's magnitude — the
//     spec's adaptation of the paper's cos/sin encoding to learned, unbounded task embeddings;
//   * output θ = θ₀ + Δθ(e): θ₀ a learned vector initialised as the reference hyperlight initialises
//     its "independent weights" (every target tensor of ≥ 2 dimensions kaiming-normal, LeakyReLU
//     gain √(2/(1 + 0.01²)), fan_in = numel / shape[0]; 1-D and scalar tensors 0), Δθ = A h_K with
//     the output weights A ~ N(0, 1/fan_out) (fan_out: P for HN's heads together, C for the CHN's
//     head), so Δθ starts small beside θ₀. HN: θ₀ is the heads' biases c_j (hyperlight's form: the
//     last layer's bias); CHN: its head bias is shared by the chunks, so θ₀ is a separate [P]
//     parameter "theta0" (first in θ) and the head bias starts at 0.
// The trunk (ReLU, U(±1/√fan_in)) is the same in both modes.
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

struct HyperNetworkOptions {
  /// `target` = the layout of the generated network (node_mlp_layout, snode_layout, ...).
  explicit HyperNetworkOptions(WeightLayout target) : target_(std::move(target)) {}
  /// Layout of the generated target weights. No default: required.
  TORCH_ARG(WeightLayout, target);
  /// Trunk hidden widths (--hnet_arch). Default {200, 200, 200}. May be empty (heads read e_i).
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{200, 200, 200};
  /// Task embedding width te (--task_emb_dim). Default 256.
  TORCH_ARG(std::int64_t, task_emb_dim) = 256;
  /// Magnitude-invariant parametrisation (file comment). Default false.
  TORCH_ARG(bool, mip) = false;

 public:
  /// ConfigError for an empty target or non-positive widths.
  void validate() const;
};

struct ChunkedHyperNetworkOptions {
  explicit ChunkedHyperNetworkOptions(WeightLayout target) : target_(std::move(target)) {}
  /// Layout of the generated target weights. No default: required.
  TORCH_ARG(WeightLayout, target);
  /// Trunk hidden widths (--hnet_arch). Default {200, 200, 200}.
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{200, 200, 200};
  /// Task embedding width te (--task_emb_dim). Default 256.
  TORCH_ARG(std::int64_t, task_emb_dim) = 256;
  /// Chunk embedding width ce (--chunk_emb_dim). Default 256.
  TORCH_ARG(std::int64_t, chunk_emb_dim) = 256;
  /// Chunk size C (--chunk_dim). Default 8192.
  TORCH_ARG(std::int64_t, chunk_dim) = 8192;
  /// Magnitude-invariant parametrisation (file comment). Default false.
  TORCH_ARG(bool, mip) = false;

 public:
  /// Number of chunks K = ceil(P / C).
  std::int64_t num_chunks() const;
  void validate() const;
};

/// MIP's input encoding of learned embeddings: every row of e ([dim] or [B, dim]) rescaled to norm
/// √dim. A zero row is DataError (it has no direction).
torch::Tensor mip_normalize(const torch::Tensor& e);
/// MIP's encoding of γ ∈ [0, 1]^k ([k] or [B, k]): [cos(πγ/2), sin(πγ/2)] ([2k] or [B, 2k]), norm √k
/// for every γ. DataError for values outside [0, 1] or NaN.
torch::Tensor mip_encode_unit(const torch::Tensor& gamma);
/// MIP's θ₀ for a target layout (the file comment's initialisation; global generator), [P].
torch::Tensor mip_theta0(const WeightLayout& target, const torch::TensorOptions& options);
/// The LeakyReLU (slope 0.01) kaiming gain √(2/(1 + 0.01²)) of mip_theta0.
double mip_theta0_gain();

/// Interface shared by HN and CHN, so trainers and strategies work with either.
class TaskHyperNetwork {
 public:
  virtual ~TaskHyperNetwork() = default;
  /// Appends a new task embedding e ~ N(0, 1) and returns its task id (0-based).
  virtual std::int64_t add_task() = 0;
  virtual std::int64_t num_tasks() const = 0;
  /// The embedding parameter e_i [te] (a leaf that requires grad; give it its own optimiser).
  virtual torch::Tensor task_embedding(std::int64_t task) const = 0;
  /// All task embeddings, in task order.
  virtual std::vector<torch::Tensor> task_embeddings() const = 0;
  /// θ: the regularised hypernetwork parameters in the spec's order (no task embeddings).
  virtual std::vector<torch::Tensor> theta() const = 0;
  /// Flat target weights w [P] for an embedding e [te]; e [B, te] gives [B, P].
  virtual torch::Tensor forward_embedding(const torch::Tensor& embedding) = 0;
  /// Layout of the generated target weights.
  virtual const WeightLayout& target_layout() const = 0;

  /// Flat target weights for task `task`.
  torch::Tensor forward_task(std::int64_t task) { return forward_embedding(task_embedding(task)); }
  /// The target's tensors for task `task`, split in layout order (views of one flat vector).
  std::vector<torch::Tensor> generate(std::int64_t task) {
    return target_layout().split(forward_task(task));
  }
  /// |θ| (scalars).
  std::int64_t theta_numel() const;
  /// |θ| + num_tasks()·te: the "hypernetwork params (incl. all task embs)" of spec §2.6.
  std::int64_t numel_with_embeddings() const;
};

class HyperNetworkImpl : public torch::nn::Cloneable<HyperNetworkImpl>, public TaskHyperNetwork {
 public:
  explicit HyperNetworkImpl(HyperNetworkOptions options);
  /// (Re-)creates θ (U(−1/√fan_in, 1/√fan_in)) and as many task embeddings (N(0, 1)) as there
  /// are now (so clone() reproduces the structure before copying the values).
  void reset() override;
  torch::Tensor forward(std::int64_t task) { return forward_task(task); }
  torch::Tensor forward_embedding(const torch::Tensor& embedding) override;

  std::int64_t add_task() override;
  std::int64_t num_tasks() const override { return static_cast<std::int64_t>(embeddings_.size()); }
  torch::Tensor task_embedding(std::int64_t task) const override;
  std::vector<torch::Tensor> task_embeddings() const override { return embeddings_; }
  std::vector<torch::Tensor> theta() const override;
  const WeightLayout& target_layout() const override { return options.target(); }
  void pretty_print(std::ostream& stream) const override;

  /// The trunk's output h_K [B, h_K] for embeddings e [B, te] (MIP's normalisation first where on),
  /// computed with the trunk weights `w`, `b` given (θ's own, or shifted copies of them; same
  /// shapes as trunk_weights() / trunk_biases()). With no hidden layer h_K is the (normalised) e.
  torch::Tensor trunk_output(const torch::Tensor& e, const std::vector<torch::Tensor>& w,
                             const std::vector<torch::Tensor>& b) const;
  /// The trunk's W_k [h_{k+1}, h_k] and b_k, and the heads' A_j [n_j, h_K] and c_j [n_j] (θ's tensors).
  const std::vector<torch::Tensor>& trunk_weights() const { return trunk_w_; }
  const std::vector<torch::Tensor>& trunk_biases() const { return trunk_b_; }
  const std::vector<torch::Tensor>& head_weights() const { return head_w_; }
  const std::vector<torch::Tensor>& head_biases() const { return head_b_; }

  HyperNetworkOptions options;

 private:
  std::vector<torch::Tensor> trunk_w_, trunk_b_, head_w_, head_b_, embeddings_;
};
TORCH_MODULE(HyperNetwork);

class ChunkedHyperNetworkImpl : public torch::nn::Cloneable<ChunkedHyperNetworkImpl>,
                                public TaskHyperNetwork {
 public:
  explicit ChunkedHyperNetworkImpl(ChunkedHyperNetworkOptions options);
  void reset() override;
  torch::Tensor forward(std::int64_t task) { return forward_task(task); }
  torch::Tensor forward_embedding(const torch::Tensor& embedding) override;
  /// The raw head output [K, C] (or [B, K, C]) before flattening and truncation to P.
  torch::Tensor forward_chunks(const torch::Tensor& embedding);

  std::int64_t add_task() override;
  std::int64_t num_tasks() const override { return static_cast<std::int64_t>(embeddings_.size()); }
  torch::Tensor task_embedding(std::int64_t task) const override;
  std::vector<torch::Tensor> task_embeddings() const override { return embeddings_; }
  std::vector<torch::Tensor> theta() const override;
  const WeightLayout& target_layout() const override { return options.target(); }
  /// Chunk embeddings E [K, ce].
  const torch::Tensor& chunk_embeddings() const { return chunk_emb_; }
  /// The single head's weight [C, h_K] and bias [C].
  const torch::Tensor& head_weight() const { return head_w_; }
  const torch::Tensor& head_bias() const { return head_b_; }
  /// MIP's θ₀ [P] (undefined without mip).
  const torch::Tensor& theta0() const { return theta0_; }
  void pretty_print(std::ostream& stream) const override;

  ChunkedHyperNetworkOptions options;

 private:
  torch::Tensor chunk_emb_, head_w_, head_b_, theta0_;
  std::vector<torch::Tensor> trunk_w_, trunk_b_, embeddings_;
};
TORCH_MODULE(ChunkedHyperNetwork);

// ---- γ-conditioned hypernetwork (the MIP paper's hyperparameter-conditioned setting) ----------------

struct ConditionedHyperNetworkOptions {
  ConditionedHyperNetworkOptions(WeightLayout target, std::int64_t input_dim)
      : target_(std::move(target)), input_dim_(input_dim) {}
  /// Layout of the generated primary network. Required.
  TORCH_ARG(WeightLayout, target);
  /// k, the number of conditioning inputs γ ∈ [0, 1]^k.
  TORCH_ARG(std::int64_t, input_dim);
  /// ReLU trunk widths. Default {64, 128} (the spec's experiment).
  TORCH_ARG(std::vector<std::int64_t>, hidden) = std::vector<std::int64_t>{64, 128};
  /// MIP: input [cos(πγ/2), sin(πγ/2)] and output θ₀ + Δθ (file comment). Default false: raw γ in,
  /// θ = W h_K + b out, every layer U(±1/√fan_in).
  TORCH_ARG(bool, mip) = false;

 public:
  void validate() const;
};

/// h: γ ↦ θ, one output layer over the trunk. forward(γ [k]) → [P]; γ [B, k] → [B, P].
class ConditionedHyperNetworkImpl : public torch::nn::Cloneable<ConditionedHyperNetworkImpl> {
 public:
  explicit ConditionedHyperNetworkImpl(ConditionedHyperNetworkOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& gamma);
  /// The trunk's input: γ itself, or its MIP encoding.
  torch::Tensor encode(const torch::Tensor& gamma) const;
  /// The output layer's weight [P, h_K] and bias [P] (θ₀ with mip).
  const torch::Tensor& out_weight() const { return out_w_; }
  const torch::Tensor& out_bias() const { return out_b_; }
  /// The trunk's last hidden activation h_K for γ.
  torch::Tensor features(const torch::Tensor& gamma) const;

  ConditionedHyperNetworkOptions options;

 private:
  std::vector<torch::Tensor> trunk_w_, trunk_b_;
  torch::Tensor out_w_, out_b_;
};
TORCH_MODULE(ConditionedHyperNetwork);

}  // namespace stablelearn::models
