// A small recurrent language model around the fading-memory layers of models/gka.h (issue 22 item 3:
// the multi-query associative recall experiment of paper 19, shared/specs/papers-19-35.md §19 (ii)),
// with GKA, gated linear attention or the gated delta rule as its token mixer (`mixer`).
//
//     tokens [B, T] → E_tok[token] → `layers` blocks → LayerNorm → linear head → logits [B, T, vocab]
//     block (pre-LayerNorm; the transformer's standard block with the mixer in attention's place):
//         c = SiLU(conv_k(LN₁(x)))            conv_k: causal depthwise convolution, kernel k = `conv`
//         x ← x + Mixer(c)                     (k = 0: c = LN₁(x), no convolution)
//         x ← x + W₂ GELU(W₁ LN₂(x) + b₁) + b₂
// No position embedding: the recurrence and the short convolution know the order. The short
// convolution stands in for gka.py's per-projection convolutions on q, k and v (one convolution
// before all three here, alike for every mixer): it lets a layer combine a token with the ones just
// before it, which associative recall needs (a key and the value after it).
//
// Three faces as in models/transformer.h: Options (ConfigErrors name the key), the functional twin
// (functional::recurrent_lm, the single implementation, any weight list of the layout) and a module.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/models/gka.h"
#include "stablelearn/models/weight_layout.h"

namespace stablelearn::models {

struct RecurrentLmOptions {
  std::int64_t vocab = 128;      ///< token ids in [0, vocab)
  std::int64_t layers = 2;       ///< number of blocks
  std::int64_t conv = 4;         ///< kernel of the causal short convolution; 0 = none
  std::int64_t mlp_hidden = 0;   ///< width of the MLP's hidden layer; 0 = 4 d_model
  GkaOptions mixer;              ///< d_model, heads, the mixer and its solver
  void fields(options::Visitor& v);
  void cross_check() const;
  std::int64_t hidden() const { return mlp_hidden > 0 ? mlp_hidden : 4 * mixer.d_model; }
};

/// "embed.token", per layer "layer_<l>." + {"ln_1.weight", "ln_1.bias", "conv.weight" [d, 1, k],
/// "conv.bias", "mixer.<gka_layout names>", "ln_2.weight", "ln_2.bias", "mlp.fc_1.weight",
/// "mlp.fc_1.bias", "mlp.fc_2.weight", "mlp.fc_2.bias"}, "ln_f.weight", "ln_f.bias", "head.weight",
/// "head.bias".
WeightLayout recurrent_lm_layout(const RecurrentLmOptions& o);

namespace functional {
/// The causal depthwise convolution y_t = b + Σ_{j<k} w[:, 0, j] ⊙ x_{t−k+1+j} (zeros before the
/// start) of x [B, T, d] with w [d, 1, k] and b [d].
torch::Tensor causal_depthwise_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b);
/// Logits [B, T, vocab] of tokens [B, T] with the weights of recurrent_lm_layout(o). DataError when a
/// token is outside [0, vocab), ShapeError on a wrong weight list or tokens that are not [B, T].
torch::Tensor recurrent_lm(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w, const RecurrentLmOptions& o);
}  // namespace functional

/// Initialisation: the embedding N(0, 0.02²), LayerNorms 1 and 0, the mixers as models::Gka
/// (A_log 0, dt_bias −4), every other tensor U(−1/√fan_in, 1/√fan_in).
class RecurrentLmImpl : public torch::nn::Module {
 public:
  explicit RecurrentLmImpl(RecurrentLmOptions options);
  torch::Tensor forward(const torch::Tensor& tokens) const { return functional::recurrent_lm(tokens, weights_, options_); }
  const std::vector<torch::Tensor>& weights() const { return weights_; }
  const WeightLayout& layout() const { return layout_; }
  const RecurrentLmOptions& options() const { return options_; }

 private:
  RecurrentLmOptions options_;
  WeightLayout layout_;
  std::vector<torch::Tensor> weights_;
};
TORCH_MODULE(RecurrentLm);

}  // namespace stablelearn::models
