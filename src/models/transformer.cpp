#include "stablelearn/models/transformer.h"

#include <cmath>
#include <limits>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/normalization.h>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

void AttentionOptions::fields(options::Visitor& v) {
  v("d_model", d_model, "model width d (a multiple of heads)").at_least(1);
  v("heads", heads, "attention heads h (d_model / heads per head)").at_least(1);
  v("causal", causal, "position t attends only to positions s <= t");
}

void AttentionOptions::cross_check() const {
  SL_CHECK(d_model % heads == 0, ConfigError, "model.heads: must divide d_model = ", d_model, ", got ", heads);
}

void TransformerBlockOptions::fields(options::Visitor& v) {
  attention.fields(v);
  v("block", kind, "standard: attention + MLP (pre-LayerNorm); attention: attention only").one_of({"standard", "attention"});
  v("mlp_hidden", mlp_hidden, "width of the MLP's hidden layer (standard blocks); 0 = 4 d_model").at_least(0);
}

void TransformerBlockOptions::cross_check() const { attention.cross_check(); }

void TransformerOptions::fields(options::Visitor& v) {
  v("vocab", vocab, "token ids in [0, vocab)").at_least(1);
  v("max_len", max_len, "longest sequence (rows of the learned position embedding)").at_least(1);
  v("layers", layers, "number of transformer blocks").at_least(0);
  v("outputs", outputs, "logits per position; 0 = vocab (a language model)").at_least(0);
  block.fields(v);
}

void TransformerOptions::cross_check() const { block.cross_check(); }

WeightLayout attention_layout(const AttentionOptions& o) {
  const auto d = o.d_model;
  WeightLayout l;
  l.add("in_proj.weight", {3 * d, d});
  l.add("in_proj.bias", {3 * d});
  l.add("out_proj.weight", {d, d});
  l.add("out_proj.bias", {d});
  return l;
}

WeightLayout transformer_block_layout(const TransformerBlockOptions& o) {
  const auto d = o.attention.d_model;
  WeightLayout l;
  l.add("ln_1.weight", {d});
  l.add("ln_1.bias", {d});
  const auto attention = attention_layout(o.attention);
  for (const auto& e : attention.entries()) l.add("attn." + e.name, e.shape);
  if (o.kind == "standard") {
    l.add("ln_2.weight", {d});
    l.add("ln_2.bias", {d});
    l.add("mlp.fc_1.weight", {o.hidden(), d});
    l.add("mlp.fc_1.bias", {o.hidden()});
    l.add("mlp.fc_2.weight", {d, o.hidden()});
    l.add("mlp.fc_2.bias", {d});
  }
  return l;
}

WeightLayout transformer_layout(const TransformerOptions& o) {
  const auto d = o.block.attention.d_model;
  WeightLayout l;
  l.add("embed.token", {o.vocab, d});
  l.add("embed.position", {o.max_len, d});
  const auto block = transformer_block_layout(o.block);
  for (std::int64_t k = 0; k < o.layers; ++k)
    for (const auto& e : block.entries()) l.add("layer_" + std::to_string(k) + "." + e.name, e.shape);
  l.add("ln_f.weight", {d});
  l.add("ln_f.bias", {d});
  l.add("head.weight", {o.out_features(), d});
  l.add("head.bias", {o.out_features()});
  return l;
}

namespace functional {

namespace {

void check_input(const torch::Tensor& x, const AttentionOptions& o, const char* who) {
  SL_CHECK(x.dim() == 3 && x.size(2) == o.d_model, ShapeError, who, ": expected x [B, T, d_model = ", o.d_model, "], got ",
           x.sizes());
}

// Scores Q Kᵀ / √d_h (+ the causal mask) [B·h, T, T] and V [B·h, T, d_h]. One copy puts Q, K, V
// head-major ([3, B, h, T, d_h], contiguous), so the products are plain bmm calls without further
// copies; unbind's backward stacks the three gradients in one tensor; the additive mask is added in
// place (its backward is the identity).
std::pair<torch::Tensor, torch::Tensor> scores_and_values(const torch::Tensor& x, const torch::Tensor* w, const AttentionOptions& o) {
  const auto b = x.size(0), t = x.size(1), h = o.heads, dh = o.d_model / o.heads;
  const auto qkv = F::linear(x, w[0], w[1]).view({b, t, 3, h, dh}).permute({2, 0, 3, 1, 4}).contiguous().view({3, b * h, t, dh}).unbind(0);
  auto s = torch::bmm(qkv[0] * (1.0 / std::sqrt(static_cast<double>(dh))), qkv[1].transpose(1, 2));
  if (o.causal) s.add_(torch::full({t, t}, -std::numeric_limits<double>::infinity(), x.options()).triu(1));
  return {s, qkv[2]};
}

}  // namespace

torch::Tensor attention_probabilities(const torch::Tensor& x, const torch::Tensor* w, const AttentionOptions& o) {
  check_input(x, o, "attention_probabilities");
  return torch::softmax(scores_and_values(x, w, o).first, -1).view({x.size(0), o.heads, x.size(1), x.size(1)});
}

torch::Tensor multihead_attention(const torch::Tensor& x, const torch::Tensor* w, const AttentionOptions& o) {
  check_input(x, o, "multihead_attention");
  const auto b = x.size(0), t = x.size(1);
  const auto [s, v] = scores_and_values(x, w, o);
  const auto y = torch::bmm(torch::softmax(s, -1), v).view({b, o.heads, t, o.d_model / o.heads});
  return F::linear(y.transpose(1, 2).reshape({b, t, o.d_model}), w[2], w[3]);
}

torch::Tensor transformer_block(const torch::Tensor& x, const torch::Tensor* w, const TransformerBlockOptions& o) {
  check_input(x, o.attention, "transformer_block");
  const std::vector<std::int64_t> d{o.attention.d_model};
  auto h = x + multihead_attention(torch::layer_norm(x, d, w[0], w[1]), w + 2, o.attention);
  if (o.kind == "standard") {
    const auto z = torch::layer_norm(h, d, w[6], w[7]);
    h = h + F::linear(torch::gelu(F::linear(z, w[8], w[9])), w[10], w[11]);
  }
  return h;
}

torch::Tensor transformer(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w, const TransformerOptions& o) {
  SL_CHECK(tokens.dim() == 2 && tokens.scalar_type() == torch::kInt64, ShapeError,
           "transformer: expected int64 tokens [B, T], got ", tokens.sizes(), " ", tokens.scalar_type());
  const auto t = tokens.size(1);
  SL_CHECK(t <= o.max_len, ConfigError, "model.max_len: sequences of length ", t, " do not fit max_len = ", o.max_len);
  SL_CHECK(t >= 1, ShapeError, "transformer: empty sequences");
  if (tokens.numel() > 0) {
    const auto lo = tokens.min().item<std::int64_t>(), hi = tokens.max().item<std::int64_t>();
    SL_CHECK(lo >= 0 && hi < o.vocab, DataError, "transformer: token ids must be in [0, vocab = ", o.vocab, "), got [", lo,
             ", ", hi, "] (model.vocab)");
  }
  const std::size_t per_block = transformer_block_layout(o.block).size();
  const std::size_t expected = 4 + per_block * static_cast<std::size_t>(o.layers) + 2;
  SL_CHECK(w.size() == expected, ShapeError, "transformer: expected ", expected, " weight tensors, got ", w.size());
  auto h = w[0].index_select(0, tokens.reshape({-1})).view({tokens.size(0), t, -1}) + w[1].slice(0, 0, t);
  for (std::int64_t k = 0; k < o.layers; ++k) h = transformer_block(h, w.data() + 2 + per_block * static_cast<std::size_t>(k), o.block);
  const auto n = 2 + per_block * static_cast<std::size_t>(o.layers);
  h = torch::layer_norm(h, {o.block.attention.d_model}, w[n], w[n + 1]);
  return F::linear(h, w[n + 2], w[n + 3]);
}

}  // namespace functional

namespace {

// Registers the layout; LayerNorm weights start at 1, biases at 0, embeddings at N(0, 0.02²),
// everything else U(−1/√fan_in, 1/√fan_in) with fan_in the last extent.
std::vector<torch::Tensor> init_weights(torch::nn::Module& m, const WeightLayout& layout) {
  std::vector<std::int64_t> fan_in;
  for (const auto& e : layout.entries()) fan_in.push_back(e.shape.size() == 2 ? e.shape[1] : e.shape[0]);
  // Biases of linear maps: the fan-in of their weight (the entry before).
  for (std::size_t i = 1; i < layout.size(); ++i)
    if (layout[i].shape.size() == 1 && layout[i - 1].shape.size() == 2) fan_in[i] = layout[i - 1].shape[1];
  auto w = register_layout_parameters(m, layout, fan_in);
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    const auto& name = layout[i].name;
    const auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    if (name.rfind("embed.", 0) == 0) w[i].normal_(0.0, 0.02);
    else if (name.find("ln_") != std::string::npos && ends(".weight")) w[i].fill_(1.0);
    else if (name.find("ln_") != std::string::npos && ends(".bias")) w[i].zero_();
  }
  return w;
}

}  // namespace

MultiheadAttentionImpl::MultiheadAttentionImpl(AttentionOptions options) : options_(options) {
  options::check(options_, "model");
  layout_ = attention_layout(options_);
  weights_ = init_weights(*this, layout_);
}

torch::Tensor MultiheadAttentionImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const {
  layout_.check(weights, "MultiheadAttention::forward");
  return functional::multihead_attention(x, weights.data(), options_);
}

TransformerBlockImpl::TransformerBlockImpl(TransformerBlockOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  layout_ = transformer_block_layout(options_);
  weights_ = init_weights(*this, layout_);
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights) const {
  layout_.check(weights, "TransformerBlock::forward");
  return functional::transformer_block(x, weights.data(), options_);
}

TransformerImpl::TransformerImpl(TransformerOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  layout_ = transformer_layout(options_);
  weights_ = init_weights(*this, layout_);
}

}  // namespace stablelearn::models
