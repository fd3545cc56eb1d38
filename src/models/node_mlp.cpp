#include "stablelearn/models/node_mlp.h"

#include <string>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

void NodeMlpOptions::validate() const {
  SL_CHECK(dim_ > 0, ConfigError, "NodeMlpOptions: dim must be positive, got ", dim_);
  for (auto h : hidden_)
    SL_CHECK(h > 0, ConfigError, "NodeMlpOptions: hidden widths must be positive, got ",
             shape_string(hidden_));
  SL_CHECK(condition_dim_ >= 0, ConfigError, "NodeMlpOptions: condition_dim must be >= 0, got ",
           condition_dim_);
  SL_CHECK(elu_alpha_ > 0, ConfigError, "NodeMlpOptions: elu_alpha must be positive, got ",
           elu_alpha_);
}

WeightLayout node_mlp_layout(const NodeMlpOptions& o) {
  o.validate();
  WeightLayout layout;
  std::int64_t in = o.input_dim();
  for (std::size_t k = 0; k < o.hidden().size(); ++k) {
    const auto h = o.hidden()[k];
    layout.add("layer_" + std::to_string(k) + ".weight", {h, in});
    layout.add("layer_" + std::to_string(k) + ".bias", {h});
    in = h;
  }
  layout.add("layer_out.weight", {o.dim(), in});
  layout.add("layer_out.bias", {o.dim()});
  return layout;
}

std::vector<std::int64_t> node_mlp_fan_in(const NodeMlpOptions& o) {
  std::vector<std::int64_t> fan;
  std::int64_t in = o.input_dim();
  for (auto h : o.hidden()) {
    fan.push_back(in);
    fan.push_back(in);
    in = h;
  }
  fan.push_back(in);
  fan.push_back(in);
  return fan;
}

namespace functional {

torch::Tensor append_time(const torch::Tensor& x, const torch::Tensor& t) {
  SL_CHECK(x.dim() == 2, ShapeError, "append_time: x must be [B, d], got ", shape_string(x.sizes()));
  SL_CHECK(t.numel() == 1, ShapeError, "append_time: t must hold one time, got ",
           shape_string(t.sizes()));
  auto tt = t.reshape({1, 1}).to(x.dtype()).expand({x.size(0), 1});
  return torch::cat({x, tt}, 1);
}

torch::Tensor node_mlp(const torch::Tensor& z, const std::vector<torch::Tensor>& w,
                       const NodeMlpOptions& o) {
  const std::size_t K = o.hidden().size();
  SL_CHECK(w.size() == 2 * K + 2, ShapeError, "node_mlp: expected ", 2 * K + 2,
           " weight tensors, got ", w.size());
  SL_CHECK(z.dim() == 2 && z.size(1) == o.input_dim(), ShapeError, "node_mlp: input must be [B, ",
           o.input_dim(), "], got ", shape_string(z.sizes()));
  // Cheap per-call shape checks (integer comparisons) so that a wrong weight list fails with a
  // ShapeError naming the tensor rather than deep inside libtorch.
  auto check_layer = [&](std::size_t k, std::int64_t in, std::int64_t out) {
    const auto& W = w[2 * k];
    const auto& b = w[2 * k + 1];
    SL_CHECK(W.dim() == 2 && W.size(0) == out && W.size(1) == in && b.dim() == 1 &&
                 b.size(0) == out,
             ShapeError, "node_mlp: layer ", k, " expects weight [", out, ", ", in, "] and bias [",
             out, "], got ", shape_string(W.sizes()), " and ", shape_string(b.sizes()));
  };
  torch::Tensor h = z;
  std::int64_t in = o.input_dim();
  for (std::size_t k = 0; k < K; ++k) {
    check_layer(k, in, o.hidden()[k]);
    h = torch::elu(torch::linear(h, w[2 * k], w[2 * k + 1]), o.elu_alpha());
    in = o.hidden()[k];
  }
  check_layer(K, in, o.dim());
  return torch::linear(h, w[2 * K], w[2 * K + 1]);
}

torch::Tensor node_rhs(const torch::Tensor& t, const torch::Tensor& x,
                       const std::vector<torch::Tensor>& w, const NodeMlpOptions& o,
                       const torch::Tensor& cond) {
  auto z = o.explicit_time() ? append_time(x, t) : x;
  SL_CHECK((o.condition_dim() > 0) == cond.defined(), ShapeError, "node_rhs: condition_dim is ",
           o.condition_dim(), " but a conditioning vector was ", cond.defined() ? "" : "not ", "given");
  if (cond.defined()) {
    SL_CHECK(cond.size(-1) == o.condition_dim(), ShapeError, "node_rhs: cond must have ",
             o.condition_dim(), " columns, got ", shape_string(cond.sizes()));
    z = torch::cat({cond.reshape({-1, o.condition_dim()}).to(z.dtype()).expand({z.size(0), o.condition_dim()}), z}, 1);
  }
  return node_mlp(z, w, o);
}

}  // namespace functional

NodeMlpImpl::NodeMlpImpl(NodeMlpOptions options_) : options(std::move(options_)) { reset(); }

void NodeMlpImpl::reset() {
  layout_ = node_mlp_layout(options);
  weights_ = register_layout_parameters(*this, layout_, node_mlp_fan_in(options));
}

torch::Tensor NodeMlpImpl::forward(const torch::Tensor& t, const torch::Tensor& x) {
  return F::node_rhs(t, x, weights_, options);
}

void NodeMlpImpl::pretty_print(std::ostream& stream) const {
  stream << "stablelearn::models::NodeMlp(dim=" << options.dim()
         << ", hidden=" << shape_string(options.hidden())
         << ", explicit_time=" << options.explicit_time() << ", params=" << layout_.numel() << ")";
}

}  // namespace stablelearn::models
