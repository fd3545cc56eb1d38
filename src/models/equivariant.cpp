#include "stablelearn/models/equivariant.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/functional/pooling.h>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace F = torch::nn::functional;

namespace functional {

namespace {
void check_kernel(const torch::Tensor& w, std::int64_t dims, const char* who) {
  SL_CHECK(w.dim() == dims && w.size(-1) == w.size(-2) && w.size(-1) % 2 == 1, ShapeError, who,
           ": expected a weight with ", dims, " dimensions and a square odd kernel, got ", w.sizes());
}
torch::Tensor conv_same(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto o = F::Conv2dFuncOptions().padding(w.size(-1) / 2);
  if (b.defined()) o = o.bias(b);
  return F::conv2d(x, w, o);
}
}  // namespace

torch::Tensor p4_lift_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  check_kernel(weight, 4, "p4_lift_conv");
  SL_CHECK(x.dim() == 4 && x.size(1) == weight.size(1), ShapeError, "p4_lift_conv: expected x [N, ", weight.size(1),
           ", H, W], got ", x.sizes());
  SL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), ShapeError,
           "p4_lift_conv: expected bias [", weight.size(0), "]");
  const auto o = weight.size(0), k = weight.size(-1);
  std::vector<torch::Tensor> rotated;
  for (std::int64_t r = 0; r < 4; ++r) rotated.push_back(torch::rot90(weight, r, {2, 3}));
  const auto w = torch::stack(rotated, 1).reshape({o * 4, weight.size(1), k, k});  // rows (o, r)
  const auto b = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
  const auto y = conv_same(x, w, b);
  return y.view({x.size(0), o, 4, y.size(2), y.size(3)});
}

torch::Tensor p4_group_conv(const torch::Tensor& f, const torch::Tensor& weight, const torch::Tensor& bias) {
  check_kernel(weight, 5, "p4_group_conv");
  SL_CHECK(weight.size(2) == 4, ShapeError, "p4_group_conv: the weight's rotation axis must have 4 entries, got ", weight.sizes());
  SL_CHECK(f.dim() == 5 && f.size(1) == weight.size(1) && f.size(2) == 4, ShapeError, "p4_group_conv: expected f [N, ",
           weight.size(1), ", 4, H, W], got ", f.sizes());
  SL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), ShapeError,
           "p4_group_conv: expected bias [", weight.size(0), "]");
  const auto o = weight.size(0), c = weight.size(1), k = weight.size(-1);
  std::vector<torch::Tensor> rotated;
  // W_r[o, i, s] = R^r ψ[o, i, (s − r) mod 4]: roll(ψ, r, 2)[s] = ψ[s − r].
  for (std::int64_t r = 0; r < 4; ++r) rotated.push_back(torch::rot90(torch::roll(weight, {r}, {2}), r, {3, 4}));
  const auto w = torch::stack(rotated, 1).reshape({o * 4, c * 4, k, k});
  const auto b = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
  const auto y = conv_same(f.reshape({f.size(0), c * 4, f.size(3), f.size(4)}), w, b);
  return y.view({f.size(0), o, 4, y.size(2), y.size(3)});
}

torch::Tensor p4_group_pool(const torch::Tensor& f, const std::string& how) {
  SL_CHECK(f.dim() == 5 && f.size(2) == 4, ShapeError, "p4_group_pool: expected f [N, C, 4, H, W], got ", f.sizes());
  SL_CHECK(how == "max" || how == "mean", ConfigError, "p4_group_pool: how must be \"max\" or \"mean\", got \"", how, "\"");
  return how == "max" ? std::get<0>(f.max(2)) : f.mean(2);
}

torch::Tensor p4_max_pool2(const torch::Tensor& f) {
  SL_CHECK(f.dim() == 5 && f.size(2) == 4, ShapeError, "p4_max_pool2: expected f [N, C, 4, H, W], got ", f.sizes());
  const auto y = F::max_pool2d(f.reshape({f.size(0), f.size(1) * 4, f.size(3), f.size(4)}), F::MaxPool2dFuncOptions(2));
  return y.view({f.size(0), f.size(1), 4, y.size(2), y.size(3)});
}

torch::Tensor p4_rotate(const torch::Tensor& f, std::int64_t k) {
  SL_CHECK(f.dim() == 5 && f.size(2) == 4, ShapeError, "p4_rotate: expected f [N, C, 4, H, W], got ", f.sizes());
  return torch::roll(torch::rot90(f, k, {3, 4}), {k}, {2});
}

torch::Tensor message_passing(const torch::Tensor& h, const torch::Tensor& edges, const torch::Tensor& w_msg,
                              const torch::Tensor& b_msg, const torch::Tensor& w_upd, const torch::Tensor& b_upd) {
  SL_CHECK(h.dim() == 2, ShapeError, "message_passing: expected node features [N, F], got ", h.sizes());
  const auto n = h.size(0), f = h.size(1), m = w_msg.size(0);
  SL_CHECK(w_msg.dim() == 2 && w_msg.size(1) == 2 * f && b_msg.sizes() == torch::IntArrayRef{m}, ShapeError,
           "message_passing: expected w_msg [M, ", 2 * f, "] and b_msg [M], got ", w_msg.sizes(), " and ", b_msg.sizes());
  SL_CHECK(w_upd.dim() == 2 && w_upd.size(1) == f + m && b_upd.dim() == 1 && b_upd.size(0) == w_upd.size(0), ShapeError,
           "message_passing: expected w_upd [O, ", f + m, "] and b_upd [O], got ", w_upd.sizes(), " and ", b_upd.sizes());
  SL_CHECK(edges.dim() == 2 && edges.size(0) == 2 && edges.scalar_type() == torch::kInt64, ShapeError,
           "message_passing: expected int64 edges [2, E], got ", edges.sizes(), " ", edges.scalar_type());
  if (edges.numel() > 0) {
    const auto lo = edges.min().item<std::int64_t>(), hi = edges.max().item<std::int64_t>();
    SL_CHECK(lo >= 0 && hi < n, DataError, "message_passing: edge endpoints must be node ids in [0, ", n, "), got [", lo, ", ",
             hi, "]");
  }
  const auto src = edges[0], dst = edges[1];
  const auto msg = F::linear(torch::cat({h.index_select(0, dst), h.index_select(0, src)}, 1), w_msg, b_msg).relu();
  const auto agg = torch::zeros({n, m}, msg.options()).index_add(0, dst, msg);
  return F::linear(torch::cat({h, agg}, 1), w_upd, b_upd);
}

torch::Tensor graph_sum_pool(const torch::Tensor& h, const torch::Tensor& graph, std::int64_t graphs) {
  SL_CHECK(h.dim() == 2 && graph.dim() == 1 && graph.size(0) == h.size(0) && graph.scalar_type() == torch::kInt64, ShapeError,
           "graph_sum_pool: expected h [N, F] and int64 graph ids [N], got ", h.sizes(), " and ", graph.sizes());
  if (graph.numel() > 0)
    SL_CHECK(graph.min().item<std::int64_t>() >= 0 && graph.max().item<std::int64_t>() < graphs, DataError,
             "graph_sum_pool: graph ids must be in [0, ", graphs, ")");
  return torch::zeros({graphs, h.size(1)}, h.options()).index_add(0, graph, h);
}

}  // namespace functional

void GroupCnnOptions::fields(options::Visitor& v) {
  v("rotations", rotations, "order of the rotation group: 4 = p4 (rotations by 90 degrees), 1 = plain CNN")
      .expect(rotations == 1 || rotations == 4, "1 or 4");
  v("channels", channels, "channels of each conv block (per rotation for p4)")
      .expect(!channels.empty(), "at least one block")
      .each_at_least(1);
  v("kernel", kernel, "odd kernel size of every conv").expect(kernel >= 1 && kernel % 2 == 1, "an odd number >= 1");
}

void GroupCnnOptions::cross_check() const {
  SL_CHECK(classes >= 2, ConfigError, "model.classes: must be >= 2, got ", classes);
  SL_CHECK(input.size() == 3 && input[0] >= 1 && input[1] >= 1 && input[2] >= 1, ConfigError,
           "model.input: must be [C, H, W] with positive extents");
  if (rotations == 4)
    SL_CHECK(input[1] == input[2], ConfigError, "model.input: rotations = 4 needs square images (H = W), got ", input[1], "x",
             input[2]);
  const std::int64_t scale = std::int64_t{1} << (channels.size() - 1);
  SL_CHECK(input[1] % scale == 0 && input[2] % scale == 0, ConfigError, "model.input: ", channels.size(),
           " blocks halve H and W ", channels.size() - 1, " times, so H and W must be multiples of ", scale, ", got ", input[1],
           "x", input[2]);
}

GroupCnnImpl::GroupCnnImpl(GroupCnnOptions options) : options_(std::move(options)) {
  options::check(options_, "model");
  const auto& o = options_;
  const auto k = o.kernel;
  std::vector<std::int64_t> fan_in;
  std::int64_t in = o.input[0];
  for (std::size_t l = 0; l < o.channels.size(); ++l) {
    const auto c = o.channels[l];
    const auto name = "conv_" + std::to_string(l);
    if (o.rotations == 4 && l > 0) {
      layout_.add(name + ".weight", {c, in, 4, k, k});
      fan_in.insert(fan_in.end(), 2, in * 4 * k * k);
    } else {
      layout_.add(name + ".weight", {c, in, k, k});
      fan_in.insert(fan_in.end(), 2, in * k * k);
    }
    layout_.add(name + ".bias", {c});
    in = c;
  }
  layout_.add("out.weight", {o.classes, in});
  layout_.add("out.bias", {o.classes});
  fan_in.insert(fan_in.end(), 2, in);
  weights_ = register_layout_parameters(*this, layout_, fan_in);
}

torch::Tensor GroupCnnImpl::features(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  layout_.check(w, "GroupCnn::forward");
  const auto& in = options_.input;
  SL_CHECK(x.dim() == 4 && x.size(1) == in[0] && x.size(2) == in[1] && x.size(3) == in[2], ShapeError,
           "GroupCnn: expected images [N, ", in[0], ", ", in[1], ", ", in[2], "], got ", x.sizes());
  const auto blocks = options_.channels.size();
  torch::Tensor h = x;
  for (std::size_t l = 0; l < blocks; ++l) {
    const auto& wl = w[2 * l];
    const auto& bl = w[2 * l + 1];
    if (options_.rotations == 4) {
      h = (l == 0 ? functional::p4_lift_conv(h, wl, bl) : functional::p4_group_conv(h, wl, bl)).relu();
      if (l + 1 < blocks) h = functional::p4_max_pool2(h);
    } else {
      h = F::conv2d(h, wl, F::Conv2dFuncOptions().bias(bl).padding(options_.kernel / 2)).relu();
      if (l + 1 < blocks) h = F::max_pool2d(h, F::MaxPool2dFuncOptions(2));
    }
  }
  return h;
}

torch::Tensor GroupCnnImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& w) const {
  auto h = features(x, w);
  if (options_.rotations == 4) h = functional::p4_group_pool(h, "max");
  h = h.mean({2, 3});
  const auto n = w.size();
  return F::linear(h, w[n - 2], w[n - 1]);
}

void MessagePassingOptions::fields(options::Visitor& v) {
  v("in_features", in_features, "node feature width F").at_least(1);
  v("message_features", message_features, "message width M").at_least(1);
  v("out_features", out_features, "output feature width").at_least(1);
}

MessagePassingImpl::MessagePassingImpl(MessagePassingOptions options) : options_(options) {
  options::check(options_, "model");
  const auto f = options_.in_features, m = options_.message_features, o = options_.out_features;
  layout_.add("message.weight", {m, 2 * f});
  layout_.add("message.bias", {m});
  layout_.add("update.weight", {o, f + m});
  layout_.add("update.bias", {o});
  weights_ = register_layout_parameters(*this, layout_, {2 * f, 2 * f, f + m, f + m});
}

torch::Tensor MessagePassingImpl::forward(const torch::Tensor& h, const torch::Tensor& edges,
                                          const std::vector<torch::Tensor>& w) const {
  layout_.check(w, "MessagePassing::forward");
  SL_CHECK(h.dim() == 2 && h.size(1) == options_.in_features, ShapeError, "MessagePassing: expected h [N, ",
           options_.in_features, "], got ", h.sizes());
  return functional::message_passing(h, edges, w[0], w[1], w[2], w[3]);
}

}  // namespace stablelearn::models
