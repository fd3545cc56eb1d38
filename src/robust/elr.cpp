#include "stablelearn/robust/elr.h"

#include <cmath>

#include <torch/nn/functional/loss.h>

#include "stablelearn/core/error.h"

namespace stablelearn::robust {

void ElrOptions::validate(const std::string& prefix) const {
  SL_CHECK(std::isfinite(beta) && beta >= 0 && beta < 1, ConfigError, prefix, "beta = ", beta, ": expected a momentum in [0, 1)");
  SL_CHECK(std::isfinite(lambda) && lambda >= 0, ConfigError, prefix, "lambda = ", lambda, ": expected a weight >= 0");
}

ElrLoss::ElrLoss(std::int64_t num_samples, std::int64_t classes, ElrOptions options, torch::Device device)
    : options_(options) {
  options_.validate();
  SL_CHECK(num_samples > 0 && classes >= 2, UsageError, "ELR: ", num_samples, " samples of ", classes,
           " classes (need at least 1 sample and 2 classes)");
  targets_ = torch::zeros({num_samples, classes}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

torch::Tensor ElrLoss::operator()(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& indices) {
  SL_CHECK(logits.dim() == 2 && logits.size(1) == targets_.size(1), ShapeError, "ELR: logits ", logits.sizes(),
           ", expected [B, ", targets_.size(1), "]");
  SL_CHECK(labels.dim() == 1 && indices.dim() == 1 && labels.size(0) == logits.size(0) && indices.size(0) == logits.size(0),
           ShapeError, "ELR: ", logits.size(0), " logits, ", labels.size(0), " labels, ", indices.size(0), " indices");
  if (indices.numel() > 0)
    SL_CHECK(indices.min().item<std::int64_t>() >= 0 && indices.max().item<std::int64_t>() < targets_.size(0), ShapeError,
             "ELR: sample indices must be in 0..", targets_.size(0) - 1);
  const auto p = torch::softmax(logits, 1).clamp(1e-4, 1 - 1e-4);
  {
    torch::NoGradGuard no_grad;
    const auto pd = p.detach();
    const auto t = targets_.index_select(0, indices).mul_(options_.beta).add_(pd / pd.sum(1, true), 1 - options_.beta);
    targets_.index_copy_(0, indices, t.to(targets_.dtype()));
  }
  const auto t = targets_.index_select(0, indices).to(p.dtype());
  const auto reg = options_.lambda * torch::log(1 - (t * p).sum(1)).mean();
  last_reg_ = reg.item<double>();
  return torch::nn::functional::cross_entropy(logits, labels) + reg;
}

}  // namespace stablelearn::robust
