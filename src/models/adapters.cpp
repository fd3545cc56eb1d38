#include "stablelearn/models/adapters.h"

#include <cmath>

#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/pooling.h>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b, const torch::Tensor& A,
                          const torch::Tensor& B, double scale) {
  SL_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == W.size(1) && B.size(0) == W.size(0) && B.size(1) == A.size(0),
           ShapeError, "lora_linear: W ", W.sizes(), ", A ", A.sizes(), ", B ", B.sizes(), " (want A [r, in], B [out, r])");
  return F::linear(x, W, b) + F::linear(F::linear(x, A), B) * scale;
}

torch::Tensor lora_merged_weight(const torch::Tensor& W, const torch::Tensor& A, const torch::Tensor& B, double scale) {
  return W + torch::mm(B, A) * scale;
}

torch::Tensor bottleneck_adapter(const torch::Tensor& h, const torch::Tensor& D, const torch::Tensor& d, const torch::Tensor& U,
                                 const torch::Tensor& u) {
  SL_CHECK(D.dim() == 2 && U.dim() == 2 && D.size(1) == h.size(-1) && U.size(0) == h.size(-1) && U.size(1) == D.size(0),
           ShapeError, "bottleneck_adapter: h ", h.sizes(), ", D ", D.sizes(), ", U ", U.sizes(), " (want D [r, out], U [out, r])");
  return h + F::linear(F::linear(h, D, d).relu(), U, u);
}

void AdapterOptions::fields(options::Visitor& v) {
  v("adapter", kind, "none | lora (y = Wx + b + (alpha/r) B A x on the hidden linear layers) | bottleneck (h + U relu(D h))")
      .one_of({"none", "lora", "bottleneck"});
  v("rank", rank, "LoRA rank r / bottleneck width").at_least(1);
  v("alpha", alpha, "LoRA alpha (scale alpha / rank); 0 = rank (scale 1)").at_least(0.0);
  v("freeze", freeze, "the backbone's weights (all but the output layer) do not train");
  v("train_head", train_head, "the output layer trains");
}

AdaptedClassifier::AdaptedClassifier(ClassifierImpl& base, AdapterOptions options, torch::Generator gen)
    : base_(base), options_(std::move(options)) {
  options::check(options_, "backbone");
  SL_CHECK(!(options_.freeze && options_.kind == "none" && !options_.train_head), ConfigError,
           "backbone: freeze = true, adapter = \"none\" and train_head = false leave nothing to train");
  const auto& w = base_.weights();
  const auto& lin = base_.linear_weight_indices();
  const auto r = options_.rank;
  const auto opts = w.front().options().requires_grad(false);
  auto uniform = [&](std::vector<std::int64_t> shape, std::int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return (torch::rand(shape, gen, opts) * (2 * bound) - bound).set_requires_grad(true);
  };
  auto zeros = [&](std::vector<std::int64_t> shape) { return torch::zeros(shape, opts).set_requires_grad(true); };
  for (std::size_t l = 0; l < lin.size(); ++l) {
    const bool output = l + 1 == lin.size();
    if (output || options_.kind == "none") {
      adapter_of_layer_.push_back(-1);
      continue;
    }
    const auto& name = base_.layout()[lin[l]].name;  // "<layer>.weight"
    const auto layer = name.substr(0, name.size() - 7);
    const auto out = w[lin[l]].size(0), in = w[lin[l]].size(1);
    adapter_of_layer_.push_back(static_cast<std::int64_t>(adapter_w_.size()));
    if (options_.kind == "lora") {
      adapter_layout_.add(layer + ".lora_A", {r, in});
      adapter_layout_.add(layer + ".lora_B", {out, r});
      adapter_w_.push_back(uniform({r, in}, in));
      adapter_w_.push_back(zeros({out, r}));
    } else {
      adapter_layout_.add(layer + ".adapter_down.weight", {r, out});
      adapter_layout_.add(layer + ".adapter_down.bias", {r});
      adapter_layout_.add(layer + ".adapter_up.weight", {out, r});
      adapter_layout_.add(layer + ".adapter_up.bias", {out});
      adapter_w_.push_back(uniform({r, out}, out));
      adapter_w_.push_back(zeros({r}));
      adapter_w_.push_back(zeros({out, r}));
      adapter_w_.push_back(zeros({out}));
    }
  }
  const std::size_t head_w = lin.back();
  for (std::size_t k = 0; k < w.size(); ++k) {
    const bool head = k >= head_w;  // the output layer's weight and bias are the last two entries
    const bool trains = head ? options_.train_head : !options_.freeze;
    const_cast<torch::Tensor&>(w[k]).requires_grad_(trains);
    if (trains) trainable_base_.push_back(k);
  }
}

std::vector<torch::Tensor> AdaptedClassifier::trainable() const {
  auto out = adapter_w_;
  for (auto k : trainable_base_) out.push_back(base_.weights()[k]);
  return out;
}

torch::Tensor AdaptedClassifier::forward_trainable(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  const auto na = adapter_w_.size();
  SL_CHECK(w.size() == na + trainable_base_.size(), ShapeError, "AdaptedClassifier: ", w.size(), " trainable tensors, want ",
           na + trainable_base_.size());
  std::vector<torch::Tensor> base_w = base_.weights();
  for (std::size_t j = 0; j < trainable_base_.size(); ++j) base_w[trainable_base_[j]] = w[na + j];
  return forward(x, base_w, std::vector<torch::Tensor>(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(na)));
}

torch::Tensor AdaptedClassifier::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& w,
                                         const std::vector<torch::Tensor>& a) const {
  base_.layout().check(w, "AdaptedClassifier::forward");
  adapter_layout_.check(a, "AdaptedClassifier::forward (adapters)");
  const auto& o = base_.options();
  SL_CHECK(x.dim() == 4 && x.size(1) == o.input[0] && x.size(2) == o.input[1] && x.size(3) == o.input[2], ShapeError,
           "AdaptedClassifier: expected images [N, ", o.input[0], ", ", o.input[1], ", ", o.input[2], "], got ", x.sizes());
  // The Classifier's forward (models/classifier.cpp) with the adapters at its linear layers.
  torch::Tensor h;
  if (o.kind == "mlp") {
    h = x.flatten(1);
  } else {
    h = F::max_pool2d(F::conv2d(x, w[0], F::Conv2dFuncOptions().bias(w[1]).padding(1)).relu(), F::MaxPool2dFuncOptions(2));
    h = F::max_pool2d(F::conv2d(h, w[2], F::Conv2dFuncOptions().bias(w[3]).padding(1)).relu(), F::MaxPool2dFuncOptions(2));
    h = h.flatten(1);
  }
  const auto& lin = base_.linear_weight_indices();
  const double s = options_.scale();
  for (std::size_t l = 0; l < lin.size(); ++l) {
    const auto k = lin[l];
    const auto j = adapter_of_layer_[l];
    if (j >= 0 && options_.kind == "lora") {
      h = lora_linear(h, w[k], w[k + 1], a[j], a[j + 1], s);
    } else {
      h = F::linear(h, w[k], w[k + 1]);
      if (j >= 0) h = bottleneck_adapter(h, a[j], a[j + 1], a[j + 2], a[j + 3]);
    }
    if (l + 1 < lin.size()) h = h.relu();
  }
  return h;
}

}  // namespace stablelearn::models
