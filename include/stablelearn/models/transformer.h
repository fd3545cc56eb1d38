// Causal multi-head attention and a small transformer (issue 22 item 1; the model of paper 12,
// shared/specs/papers-01-18.md §12: attention-only and standard pre-LayerNorm blocks, learned
// position embeddings, a linear head).
//
// Multi-head attention of x ∈ R^{B×T×d} with h heads of width d_h = d / h:
//     [Q K V] = x W_inᵀ + b_in            W_in ∈ R^{3d×d}: rows [0, d) W_Q, [d, 2d) W_K, [2d, 3d) W_V
//     A_i = softmax(Q_i K_iᵀ / √d_h + M)   per head i (columns i·d_h .. (i+1)·d_h of Q, K, V)
//     M_ts = −∞ for s > t when causal (position t attends to positions s ≤ t), 0 otherwise
//     y = concat_i(A_i V_i) W_outᵀ + b_out  W_out ∈ R^{d×d} (= W_O)
// the layout of torch::nn::MultiheadAttention's in_proj / out_proj (batch first here).
//
// Blocks (pre-LayerNorm, GPT-2 style):
//     attention-only   x ← x + Attn(LN₁(x))
//     standard         x ← x + Attn(LN₁(x));  x ← x + W₂ GELU(W₁ LN₂(x) + b₁) + b₂
// Transformer: tokens [B, T] (int64 in [0, vocab)) → E_tok[token] + E_pos[t] → blocks → LN_f →
// linear head → logits [B, T, outputs].
//
// Three faces each (shared/STYLE.md #3): Options (fields() declared once: ConfigErrors name the
// key), the functional twin (functional::multihead_attention / transformer_block / transformer,
// the single implementation, taking any weight list of the layout) and a module owning its weights.
// Device-agnostic: every tensor made inside follows the input's device and dtype.
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

struct AttentionOptions {
  std::int64_t d_model = 128;  ///< model width d (paper 12: 128)
  std::int64_t heads = 4;      ///< number of heads h; d_model must be a multiple (paper 12 code: 4)
  bool causal = true;          ///< position t attends only to positions s <= t
  void fields(options::Visitor& v);
  void cross_check() const;
};

struct TransformerBlockOptions {
  AttentionOptions attention;
  std::string kind = "standard";  ///< standard (attention + MLP) | attention (attention only)
  std::int64_t mlp_hidden = 0;    ///< width of the MLP's hidden layer; 0 = 4 d_model
  void fields(options::Visitor& v);
  void cross_check() const;
  std::int64_t hidden() const { return mlp_hidden > 0 ? mlp_hidden : 4 * attention.d_model; }
};

struct TransformerOptions {
  std::int64_t vocab = 16;     ///< token ids in [0, vocab)
  std::int64_t max_len = 32;   ///< longest sequence (rows of the position embedding)
  std::int64_t layers = 2;     ///< number of blocks
  std::int64_t outputs = 0;    ///< logits per position; 0 = vocab (a language model)
  TransformerBlockOptions block;
  void fields(options::Visitor& v);
  void cross_check() const;
  std::int64_t out_features() const { return outputs > 0 ? outputs : vocab; }
};

/// Weight layouts (names relative to the block: "in_proj.weight", ...).
WeightLayout attention_layout(const AttentionOptions& o);
WeightLayout transformer_block_layout(const TransformerBlockOptions& o);
/// "embed.token", "embed.position", "layer_<l>.<block names>", "ln_f.weight", "ln_f.bias",
/// "head.weight", "head.bias".
WeightLayout transformer_layout(const TransformerOptions& o);

namespace functional {
/// Multi-head attention of x [B, T, d] with w = {in_proj.weight, in_proj.bias, out_proj.weight,
/// out_proj.bias} (pointer to the first of 4 consecutive tensors). ShapeError on a wrong x.
torch::Tensor multihead_attention(const torch::Tensor& x, const torch::Tensor* w, const AttentionOptions& o);
/// The attention probabilities [B, h, T, T] of the same computation (for diagnostics).
torch::Tensor attention_probabilities(const torch::Tensor& x, const torch::Tensor* w, const AttentionOptions& o);
/// One block on x [B, T, d]; w points to its transformer_block_layout(o).size() tensors.
torch::Tensor transformer_block(const torch::Tensor& x, const torch::Tensor* w, const TransformerBlockOptions& o);
/// Logits [B, T, outputs] of tokens [B, T] with the weights of transformer_layout(o).
/// ConfigError naming max_len when T > max_len; DataError when a token is outside [0, vocab).
torch::Tensor transformer(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w, const TransformerOptions& o);
}  // namespace functional

class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiheadAttentionImpl(AttentionOptions options);
  torch::Tensor forward(const torch::Tensor& x) const { return functional::multihead_attention(x, weights_.data(), options_); }
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const AttentionOptions& options() const { return options_; }

 private:
  AttentionOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(MultiheadAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(TransformerBlockOptions options);
  torch::Tensor forward(const torch::Tensor& x) const { return functional::transformer_block(x, weights_.data(), options_); }
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const;
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }

 private:
  TransformerBlockOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(TransformerBlock);

/// Token + learned position embeddings, blocks, final LayerNorm, linear head. Initialisation:
/// embeddings N(0, 0.02²), LayerNorm weight 1 and bias 0, every other tensor U(−1/√fan_in, 1/√fan_in).
class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(TransformerOptions options);
  /// Logits [B, T, outputs] of tokens [B, T].
  torch::Tensor forward(const torch::Tensor& tokens) const { return functional::transformer(tokens, weights_, options_); }
  torch::Tensor forward(const torch::Tensor& tokens, const std::vector<torch::Tensor>& weights) const {
    layout_.check(weights, "Transformer::forward");
    return functional::transformer(tokens, weights, options_);
  }
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const TransformerOptions& options() const { return options_; }

 private:
  TransformerOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(Transformer);

}  // namespace stablelearn::models
