#include "stablelearn/models/classifier.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/pooling.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

void ClassifierOptions::fields(options::Visitor& v) {
  v("kind", kind, "mlp: fully connected ReLU layers; cnn: two conv blocks and a fully connected layer").one_of({"mlp", "cnn"});
  v("hidden", hidden, "mlp: hidden widths").each_at_least(1);
  v("channels", channels, "cnn: channels of the two conv blocks")
      .expect(channels.size() == 2 && channels[0] >= 1 && channels[1] >= 1, "two positive channel counts");
  v("fc", fc, "cnn: width of the fully connected layer").at_least(1);
}

void ClassifierOptions::cross_check() const {
  SL_CHECK(classes >= 2, ConfigError, "model: classes must be >= 2, got ", classes);
  SL_CHECK(input.size() == 3 && input[0] >= 1 && input[1] >= 1 && input[2] >= 1, ConfigError,
           "model: input must be [C, H, W] with positive extents");
  if (kind == "cnn")
    SL_CHECK(input[1] % 4 == 0 && input[2] % 4 == 0, ConfigError, "model: cnn needs H and W divisible by 4");
}

ClassifierImpl::ClassifierImpl(ClassifierOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  const auto& o = options_;
  std::vector<std::int64_t> fan_in;
  auto linear = [&](const std::string& name, std::int64_t in, std::int64_t out) {
    linear_w_.push_back(layout_.size());
    layout_.add(name + ".weight", {out, in});
    layout_.add(name + ".bias", {out});
    fan_in.push_back(in);
    fan_in.push_back(in);
  };
  if (o.kind == "mlp") {
    std::int64_t in = o.input[0] * o.input[1] * o.input[2];
    for (std::size_t l = 0; l < o.hidden.size(); ++l) {
      linear("layer_" + std::to_string(l), in, o.hidden[l]);
      in = o.hidden[l];
    }
    linear("out", in, o.classes);
  } else {
    const auto c0 = o.input[0], c1 = o.channels[0], c2 = o.channels[1];
    layout_.add("conv_0.weight", {c1, c0, 3, 3});
    layout_.add("conv_0.bias", {c1});
    layout_.add("conv_1.weight", {c2, c1, 3, 3});
    layout_.add("conv_1.bias", {c2});
    for (int k = 0; k < 2; ++k) fan_in.push_back(c0 * 9);
    for (int k = 0; k < 2; ++k) fan_in.push_back(c1 * 9);
    linear("fc", c2 * (o.input[1] / 4) * (o.input[2] / 4), o.fc);
    linear("out", o.fc, o.classes);
  }
  weights_ = register_layout_parameters(*this, layout_, fan_in);
}

torch::Tensor ClassifierImpl::features_cnn(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  auto h = F::conv2d(x, w[0], F::Conv2dFuncOptions().bias(w[1]).padding(1)).relu();
  h = F::max_pool2d(h, F::MaxPool2dFuncOptions(2));
  h = F::conv2d(h, w[2], F::Conv2dFuncOptions().bias(w[3]).padding(1)).relu();
  h = F::max_pool2d(h, F::MaxPool2dFuncOptions(2));
  return h.flatten(1);
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  layout_.check(w, "Classifier::forward");
  const auto& in = options_.input;
  SL_CHECK(x.dim() == 4 && x.size(1) == in[0] && x.size(2) == in[1] && x.size(3) == in[2], ShapeError,
           "Classifier: expected images [N, ", in[0], ", ", in[1], ", ", in[2], "], got ", x.sizes());
  torch::Tensor h = options_.kind == "mlp" ? x.flatten(1) : features_cnn(x, w);
  const std::size_t first = options_.kind == "mlp" ? 0 : 4;
  for (std::size_t k = first; k < w.size(); k += 2) {
    h = F::linear(h, w[k], w[k + 1]);
    if (k + 2 < w.size()) h = h.relu();
  }
  return h;
}

std::vector<torch::Tensor> ClassifierImpl::linear_inputs(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  const auto& w = weights_;
  std::vector<torch::Tensor> out;
  torch::Tensor h = options_.kind == "mlp" ? x.flatten(1) : features_cnn(x, w);
  const std::size_t first = options_.kind == "mlp" ? 0 : 4;
  for (std::size_t k = first; k < w.size(); k += 2) {
    out.push_back(h);
    h = F::linear(h, w[k], w[k + 1]);
    if (k + 2 < w.size()) h = h.relu();
  }
  return out;
}

std::vector<torch::Tensor> ClassifierImpl::hidden_activations(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  layout_.check(w, "Classifier::hidden_activations");
  const auto& in = options_.input;
  SL_CHECK(x.dim() == 4 && x.size(1) == in[0] && x.size(2) == in[1] && x.size(3) == in[2], ShapeError,
           "Classifier: expected images [N, ", in[0], ", ", in[1], ", ", in[2], "], got ", x.sizes());
  std::vector<torch::Tensor> out;
  torch::Tensor h = x.flatten(1);
  std::size_t first = 0;
  if (options_.kind != "mlp") {
    h = F::max_pool2d(F::conv2d(x, w[0], F::Conv2dFuncOptions().bias(w[1]).padding(1)).relu(), F::MaxPool2dFuncOptions(2));
    out.push_back(h.flatten(1));
    h = F::max_pool2d(F::conv2d(h, w[2], F::Conv2dFuncOptions().bias(w[3]).padding(1)).relu(), F::MaxPool2dFuncOptions(2));
    h = h.flatten(1);
    out.push_back(h);
    first = 4;
  }
  for (std::size_t k = first; k + 2 < w.size(); k += 2) {
    h = F::linear(h, w[k], w[k + 1]).relu();
    out.push_back(h);
  }
  return out;
}

std::int64_t ClassifierImpl::hidden_layers() const {
  return options_.kind == "mlp" ? static_cast<std::int64_t>(options_.hidden.size()) : 3;
}

std::vector<std::pair<std::string, std::string>> classifier_kinds() {
  return {{"mlp", "Flatten -> [Linear -> ReLU] x L -> Linear; [model] hidden = [400, 400]"},
          {"cnn", "two 3x3 conv + ReLU + max-pool blocks -> Linear -> ReLU -> Linear; [model] channels = [32, 64], fc = 128"}};
}

}  // namespace stablelearn::models
