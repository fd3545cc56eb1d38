#include "stablelearn/models/mlp_step.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstring>
#include <limits>

#include "stablelearn/core/error.h"

namespace stablelearn::models {

namespace {
constexpr std::int64_t kMean = at::Reduction::Mean, kIgnoreIndex = -100;  // F::nll_loss's defaults
constexpr std::int64_t kTransposedMaxBatch = 32;  // hidden products into a transposed scratch up to this batch

/// The probes' comparison: equal values and equal bits.
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return at::equal(a, b) && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}
}  // namespace

bool MlpLossGrad::supports(const ClassifierImpl& model) {
  if (model.options().kind != "mlp") return false;
  for (const auto& w : model.weights())
    if (!w.device().is_cpu() || w.scalar_type() != torch::kFloat || !w.is_contiguous()) return false;
  return true;
}

MlpLossGrad::MlpLossGrad(const ClassifierImpl& model) : model_(model) {
  SL_CHECK(supports(model), UsageError, "MlpLossGrad: needs an mlp classifier with float32 CPU weights");
  c10::InferenceMode guard;
  one_ = at::ones({}, at::kFloat);  // autograd's gradient of a scalar loss: ones_like(loss)
}

MlpLossGrad::Buffers& MlpLossGrad::buffers(std::int64_t batch) {
  auto it = buffers_.find(batch);
  if (it != buffers_.end()) return it->second;
  Buffers b;
  const auto& w = model_.weights();
  const auto f = at::TensorOptions().dtype(at::kFloat);
  for (std::size_t k = 0; k < w.size(); k += 2) {
    const auto out = w[k].size(0), in = w[k].size(1);
    b.z.push_back(at::empty({batch, out}, f));
    b.grad_h.push_back(k == 0 ? at::Tensor() : at::empty({batch, in}, f));
    b.bias_sums.push_back(at::empty({1, out}, f));
    b.grads.push_back(at::empty({out, in}, f));
    b.grads.push_back(b.bias_sums.back().view({out}));
  }
  // Accumulating into a buffer by the product (beta = 1) against adding the product's result, bitwise,
  // on random operands of this layer's shapes and batch size.
  auto gen = at::detail::createCPUGenerator(20261206);
  for (std::size_t k = 0; k < w.size(); k += 2) {
    const auto out = w[k].size(0), in = w[k].size(1);
    const auto a = at::randn({out, in}, gen, f), gz = at::randn({batch, out}, gen, f), h = at::randn({batch, in}, gen, f).relu_();
    const auto ref = a.clone().add_(at::mm(gz.t(), h));
    auto acc = a.clone();
    at::addmm_out(acc, acc, gz.t(), h);
    b.accumulate_ok.push_back(same_bits(ref, acc));
  }
  // A hidden layer's product written into a transposed scratch [out, B] (OpenBLAS then packs the
  // weight as its other operand, ≈ 10–20 % faster for a few rows; at batch 128 the strided copy back
  // costs more than it saves) against the plain one, bitwise.
  for (std::size_t k = 0; batch <= kTransposedMaxBatch && k + 2 < w.size(); k += 2) {
    const auto out = w[k].size(0), in = w[k].size(1);
    const auto a = at::randn({out, in}, gen, f), bias = at::randn({out}, gen, f), h = at::randn({batch, in}, gen, f).relu_();
    const auto ref = at::addmm(bias, h, a.t());
    auto zt = at::empty({out, batch}, f).t();
    at::addmm_out(zt, bias, h, a.t());
    const auto alt = zt.contiguous();
    b.zt.push_back(same_bits(ref, alt) ? zt : at::Tensor());
  }
  b.accumulated.assign(w.size(), 0);
  const auto classes = w.back().size(0);
  b.log_probs = at::empty({batch, classes}, f);
  b.grad_logits = at::empty({batch, classes}, f);
  return buffers_.emplace(batch, std::move(b)).first->second;
}

double MlpLossGrad::forward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& masked) {
  c10::InferenceMode guard;
  const auto& in = model_.options().input;
  SL_CHECK(x.dim() == 4 && x.size(1) == in[0] && x.size(2) == in[1] && x.size(3) == in[2], ShapeError,
           "MlpLossGrad: expected images [N, ", in[0], ", ", in[1], ", ", in[2], "], got ", x.sizes());
  SL_CHECK(y.dim() == 1 && y.size(0) == x.size(0), ShapeError, "MlpLossGrad: labels ", y.sizes(), " for images ", x.sizes());
  const auto batch = x.size(0);
  cur_ = &buffers(batch);
  auto& b = *cur_;
  const auto& w = model_.weights();
  input_ = x.flatten(1);
  labels_ = y;
  masked_ = masked;
  const std::size_t layers = b.z.size();
  at::Tensor h = input_;
  for (std::size_t l = 0; l < layers; ++l) {
    if (l < b.zt.size() && b.zt[l].defined()) {
      at::addmm_out(b.zt[l], w[2 * l + 1], h, w[2 * l].t());  // at::linear with a bias, transposed
      at::clamp_min_out(b.z[l], b.zt[l], 0);                   // = relu (ATen's relu is clamp_min(x, 0))
    } else {
      at::addmm_out(b.z[l], w[2 * l + 1], h, w[2 * l].t());  // at::linear with a bias
      if (l + 1 < layers) at::relu_(b.z[l]);                  // h_l, kept for threshold_backward
    }
    h = b.z[l];
  }
  if (masked.defined()) h.masked_fill_(masked, -std::numeric_limits<float>::infinity());
  at::_log_softmax_out(b.log_probs, h, 1, false);
  auto [loss, total_weight] = at::nll_loss_forward(b.log_probs, y, {}, kMean, kIgnoreIndex);
  total_weight_ = total_weight;
  return loss.item<double>();
}

const std::vector<torch::Tensor>& MlpLossGrad::gradients() const {
  SL_CHECK(cur_ != nullptr, UsageError, "MlpLossGrad::gradients before forward");
  return cur_->grads;
}

bool MlpLossGrad::accumulated(std::size_t k) const { return cur_ != nullptr && k < cur_->accumulated.size() && cur_->accumulated[k]; }

const std::vector<torch::Tensor>& MlpLossGrad::backward(const std::function<void(std::size_t, std::size_t)>& ready,
                                                        const std::vector<torch::Tensor>& add_into) {
  SL_CHECK(cur_ != nullptr, UsageError, "MlpLossGrad::backward before forward");
  c10::InferenceMode guard;
  auto& b = *cur_;
  const auto& w = model_.weights();
  at::nll_loss_backward_out(b.grad_logits, one_, b.log_probs, labels_, {}, kMean, kIgnoreIndex, total_weight_);
  at::Tensor gz = b.z.back();  // ∂z of the output layer, written over the logits (no longer needed)
  at::_log_softmax_backward_data_out(gz, b.grad_logits, b.log_probs, 1, at::kFloat);
  if (masked_.defined()) gz.masked_fill_(masked_, 0);
  for (std::size_t l = b.z.size(); l-- > 0;) {
    const at::Tensor h = l == 0 ? input_ : b.z[l - 1];
    const auto k = 2 * l;
    b.accumulated[k] = k < add_into.size() && add_into[k].defined() && b.accumulate_ok[l];
    if (b.accumulated[k]) {
      auto& into = const_cast<at::Tensor&>(add_into[k]);
      SL_CHECK(into.sizes() == w[k].sizes() && into.scalar_type() == at::kFloat && into.is_contiguous(), ShapeError,
               "MlpLossGrad::backward: add_into[", k, "] must be a contiguous float32 ", w[k].sizes(), ", got ", into.sizes());
      at::addmm_out(into, into, gz.t(), h);  // into ← fl(into + ∂zᵀ·h): the product's beta = 1
    } else {
      at::mm_out(b.grads[k], gz.t(), h);
    }
    at::sum_out(b.bias_sums[l], gz, {0}, /*keepdim=*/true);
    if (l > 0) {
      at::mm_out(b.grad_h[l], gz, w[2 * l]);  // the last read of W_l
      at::threshold_backward_out(b.grad_h[l], b.grad_h[l], h, 0);
    }
    if (ready) {
      c10::InferenceMode outside(false);  // the caller's tensors (optimiser state) stay normal tensors
      ready(2 * l, 2);
    }
    if (l == 0) break;
    gz = b.grad_h[l];
  }
  return b.grads;
}

}  // namespace stablelearn::models
