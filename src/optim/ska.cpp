// Structured Knowledge Accumulation (include/stablelearn/optim/ska.h; docs/optim.md).
#include "stablelearn/optim/ska.h"

#include <cmath>
#include <utility>

#include <torch/torch.h>

#include "stablelearn/core/error.h"

namespace stablelearn::optim {

namespace {
const double kInvLn2 = 1.0 / std::log(2.0);
}  // namespace

void SkaOptions::validate() const {
  SL_CHECK(std::isfinite(lr) && lr > 0, ConfigError, "ska.lr: ", lr, " (want a finite number > 0)");
  SL_CHECK(std::isfinite(init_std) && init_std > 0, ConfigError, "ska.init_std: ", init_std, " (want a finite number > 0)");
  SL_CHECK(!layer_sizes.empty(), ConfigError, "ska.layer_sizes: empty (want at least one layer width)");
  for (std::size_t l = 0; l < layer_sizes.size(); ++l)
    SL_CHECK(layer_sizes[l] > 0, ConfigError, "ska.layer_sizes[", l, "]: ", layer_sizes[l], " (want > 0)");
}

torch::Tensor ska_entropy(const torch::Tensor& z, const torch::Tensor& delta_d) {
  SL_CHECK(z.sizes() == delta_d.sizes(), ShapeError, "ska_entropy: z ", z.sizes(), " and delta_d ", delta_d.sizes(),
           " (want equal shapes)");
  return (z * delta_d).sum() * (-kInvLn2);
}

torch::Tensor ska_entropy_gradient(const torch::Tensor& z, const torch::Tensor& delta_d) {
  SL_CHECK(z.sizes() == delta_d.sizes(), ShapeError, "ska_entropy_gradient: z ", z.sizes(), " and delta_d ",
           delta_d.sizes(), " (want equal shapes)");
  const auto d = torch::sigmoid(z);
  return (z * d * (1 - d) + delta_d) * (-kInvLn2);
}

SkaNetwork::SkaNetwork(std::int64_t input_size, SkaOptions options, const torch::TensorOptions& tensor_options)
    : input_size_(input_size), options_(std::move(options)) {
  SL_CHECK(input_size > 0, ConfigError, "ska: input_size ", input_size, " (want > 0)");
  options_.validate();
  std::int64_t prev = input_size;
  for (const auto n : options_.layer_sizes) {
    w_.push_back(torch::randn({prev, n}, tensor_options) * options_.init_std);
    b_.push_back(torch::zeros({n}, tensor_options));
    prev = n;
  }
}

void SkaNetwork::check_batch(const torch::Tensor& x) const {
  SL_CHECK(x.dim() == 2 && x.size(1) == input_size_ && x.size(0) > 0, ShapeError, "ska: batch of shape ", x.sizes(),
           " (want N x ", input_size_, ", N > 0)");
  SL_CHECK(torch::isfinite(x).all().item<bool>(), DataError, "ska: the batch has non-finite values");
}

std::vector<torch::Tensor> SkaNetwork::forward(const torch::Tensor& x) const {
  check_batch(x);
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  auto h = x.to(w_.front().options());
  for (std::size_t l = 0; l < w_.size(); ++l) {
    h = torch::sigmoid(torch::addmm(b_[l], h, w_[l]));
    out.push_back(h);
  }
  return out;
}

void SkaNetwork::reset() {
  z_prev_.clear();
  d_prev_.clear();
  index_ = 0;
}

SkaStep SkaNetwork::step(const torch::Tensor& x_in) {
  check_batch(x_in);
  torch::NoGradGuard ng;
  const auto x = x_in.to(w_.front().options());
  const auto layers = w_.size();
  std::vector<torch::Tensor> z(layers), d(layers);
  auto h = x;
  for (std::size_t l = 0; l < layers; ++l) {
    z[l] = torch::addmm(b_[l], h, w_[l]);
    d[l] = torch::sigmoid(z[l]);
    h = d[l];
  }
  SkaStep out;
  out.index = index_++;
  if (!d_prev_.empty()) {
    out.updated = true;
    const double lr = options_.lr;
    const auto n = static_cast<double>(x.size(0));
    for (std::size_t l = 0; l < layers; ++l) {
      const auto delta_d = d[l] - d_prev_[l];
      const auto delta_z = z[l] - z_prev_[l];
      const auto d_prime = d[l] * (1 - d[l]);
      SkaLayerStats s;
      s.entropy = ska_entropy(z[l], delta_d).item<double>();
      const double zn = z[l].norm().item<double>(), dn = delta_d.norm().item<double>();
      s.cosine = zn > 0 && dn > 0 ? (z[l] * delta_d).sum().item<double>() / (zn * dn) : 0.0;
      s.tensor_net = (delta_z * (d[l] - z[l] * d_prime * kInvLn2)).sum().item<double>();
      s.knowledge_flow = delta_z.norm().item<double>() / lr;
      s.z_norm = zn;
      out.layers.push_back(s);
      // The local update (no gradient flows between layers).
      const auto g = (z[l] * d_prime + delta_d) * (-kInvLn2);
      const auto& x_prev = l == 0 ? x : d_prev_[l - 1];
      w_[l].sub_(torch::mm(x_prev.t(), g), lr / n);
      b_[l].sub_(g.mean(0), lr);
    }
  }
  d_prev_ = std::move(d);
  z_prev_ = std::move(z);
  return out;
}

std::vector<SkaStep> SkaNetwork::train(const torch::Tensor& x, std::int64_t steps) {
  SL_CHECK(steps >= 1, ConfigError, "ska.steps: ", steps, " (want >= 1)");
  reset();
  std::vector<SkaStep> out;
  out.reserve(static_cast<std::size_t>(steps));
  for (std::int64_t k = 0; k < steps; ++k) out.push_back(step(x));
  return out;
}

}  // namespace stablelearn::optim
