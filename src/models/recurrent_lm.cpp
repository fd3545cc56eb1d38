#include "stablelearn/models/recurrent_lm.h"

#include <cmath>

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/embedding.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/padding.h>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

void RecurrentLmOptions::fields(options::Visitor& v) {
  v("vocab", vocab, "token ids in [0, vocab)").at_least(1);
  v("layers", layers, "number of blocks").at_least(1);
  v("conv", conv, "kernel of the causal short convolution before the mixer; 0 = none").at_least(0);
  v("mlp_hidden", mlp_hidden, "width of the MLP's hidden layer; 0 = 4 d_model").at_least(0);
  mixer.fields(v);
}

void RecurrentLmOptions::cross_check() const { mixer.cross_check(); }

WeightLayout recurrent_lm_layout(const RecurrentLmOptions& o) {
  const auto d = o.mixer.d_model;
  WeightLayout l;
  l.add("embed.token", {o.vocab, d});
  const auto mixer = gka_layout(o.mixer);
  for (std::int64_t k = 0; k < o.layers; ++k) {
    const auto pre = "layer_" + std::to_string(k) + ".";
    l.add(pre + "ln_1.weight", {d});
    l.add(pre + "ln_1.bias", {d});
    if (o.conv > 0) {
      l.add(pre + "conv.weight", {d, 1, o.conv});
      l.add(pre + "conv.bias", {d});
    }
    for (const auto& e : mixer.entries()) l.add(pre + "mixer." + e.name, e.shape);
    l.add(pre + "ln_2.weight", {d});
    l.add(pre + "ln_2.bias", {d});
    l.add(pre + "mlp.fc_1.weight", {o.hidden(), d});
    l.add(pre + "mlp.fc_1.bias", {o.hidden()});
    l.add(pre + "mlp.fc_2.weight", {d, o.hidden()});
    l.add(pre + "mlp.fc_2.bias", {d});
  }
  l.add("ln_f.weight", {d});
  l.add("ln_f.bias", {d});
  l.add("head.weight", {o.vocab, d});
  l.add("head.bias", {o.vocab});
  return l;
}

namespace functional {

torch::Tensor causal_depthwise_conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  SL_CHECK(x.dim() == 3 && w.dim() == 3 && w.size(0) == x.size(2) && w.size(1) == 1 && b.dim() == 1 && b.size(0) == x.size(2),
           ShapeError, "causal_depthwise_conv: expected x [B, T, d], w [d, 1, k], b [d], got ", x.sizes(), ", ", w.sizes(), ", ",
           b.sizes());
  const auto k = w.size(2);
  const auto padded = F::pad(x.transpose(1, 2), F::PadFuncOptions({k - 1, 0}));
  const std::int64_t one = 1, zero = 0;
  return torch::conv1d(padded, w, b, torch::IntArrayRef(one), torch::IntArrayRef(zero), torch::IntArrayRef(one), x.size(2))
      .transpose(1, 2);
}

torch::Tensor recurrent_lm(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w, const RecurrentLmOptions& o) {
  const auto layout = recurrent_lm_layout(o);
  layout.check(w, "functional::recurrent_lm");
  SL_CHECK(tokens.dim() == 2, ShapeError, "functional::recurrent_lm: expected tokens [B, T], got ", tokens.sizes());
  if (tokens.numel() > 0) {
    const auto lo = tokens.min().item<std::int64_t>(), hi = tokens.max().item<std::int64_t>();
    SL_CHECK(lo >= 0 && hi < o.vocab, DataError, "functional::recurrent_lm: tokens must lie in [0, vocab = ", o.vocab, "), got [",
             lo, ", ", hi, "]");
  }
  const auto d = o.mixer.d_model;
  const auto mixer_size = static_cast<std::size_t>(gka_layout(o.mixer).size());
  auto x = F::embedding(tokens, w[0]);
  std::size_t i = 1;
  for (std::int64_t k = 0; k < o.layers; ++k) {
    auto c = torch::layer_norm(x, {d}, w[i], w[i + 1]);
    i += 2;
    if (o.conv > 0) {
      c = torch::silu(causal_depthwise_conv(c, w[i], w[i + 1]));
      i += 2;
    }
    x = x + functional::gka(c, w.data() + i, o.mixer);
    i += mixer_size;
    const auto z = torch::layer_norm(x, {d}, w[i], w[i + 1]);
    x = x + F::linear(torch::gelu(F::linear(z, w[i + 2], w[i + 3])), w[i + 4], w[i + 5]);
    i += 6;
  }
  x = torch::layer_norm(x, {d}, w[i], w[i + 1]);
  return F::linear(x, w[i + 2], w[i + 3]);
}

}  // namespace functional

RecurrentLmImpl::RecurrentLmImpl(RecurrentLmOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  layout_ = recurrent_lm_layout(options_);
  std::vector<std::int64_t> fan_in;
  for (const auto& e : layout_.entries()) fan_in.push_back(e.shape.size() >= 2 ? e.shape.back() : e.shape[0]);
  // Biases: the fan-in of the weight before them (the mixer's: d, as models::Gka).
  for (std::size_t i = 1; i < layout_.size(); ++i)
    if (layout_[i].shape.size() == 1 && layout_[i - 1].shape.size() >= 2) fan_in[i] = layout_[i - 1].shape.back();
  weights_ = register_layout_parameters(*this, layout_, fan_in);
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < layout_.size(); ++i) {
    const auto& name = layout_[i].name;
    const auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    if (name == "embed.token") weights_[i].normal_(0.0, 0.02);
    else if (name.find("ln_") != std::string::npos && ends(".weight")) weights_[i].fill_(1.0);
    else if (name.find("ln_") != std::string::npos && ends(".bias")) weights_[i].zero_();
    else if (ends("mixer.gate.dt_bias")) weights_[i].fill_(-4.0);
    else if (ends("mixer.gate.A_log")) weights_[i].zero_();
  }
}

}  // namespace stablelearn::models
