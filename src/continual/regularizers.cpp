#include "stablelearn/continual/regularizers.h"

#include <torch/autograd.h>

#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace {
std::vector<torch::Tensor> detached_copies(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}
}  // namespace

void QuadraticAnchorPenalty::check_params(const std::vector<torch::Tensor>& params, const char* who) const {
  SL_CHECK(!params.empty(), UsageError, who, ": empty parameter list");
  const auto& ref = !omega_.empty() ? omega_ : anchor_;
  if (ref.empty()) return;
  SL_CHECK(params.size() == ref.size(), ShapeError, who, ": ", params.size(), " parameter tensors, the regulariser holds ",
           ref.size());
  for (std::size_t k = 0; k < params.size(); ++k)
    SL_CHECK(params[k].sizes() == ref[k].sizes(), ShapeError, who, ": parameter ", k, " has shape ",
             params[k].sizes(), ", expected ", ref[k].sizes());
}

void QuadraticAnchorPenalty::ensure_importance(const std::vector<torch::Tensor>& params) {
  if (!omega_.empty()) return;
  for (const auto& p : params) omega_.push_back(torch::zeros_like(p.detach()));
}

void QuadraticAnchorPenalty::set_anchor(const std::vector<torch::Tensor>& params) { anchor_ = detached_copies(params); }

void QuadraticAnchorPenalty::set_state(std::vector<torch::Tensor> importance, std::vector<torch::Tensor> anchor) {
  SL_CHECK(importance.size() == anchor.size(), ShapeError, "regulariser state: ", importance.size(),
           " importance tensors but ", anchor.size(), " anchors");
  omega_ = std::move(importance);
  anchor_ = std::move(anchor);
}

torch::Tensor QuadraticAnchorPenalty::penalty(const std::vector<torch::Tensor>& params) const {
  if (anchor_.empty()) return {};
  check_params(params, "penalty");
  torch::Tensor total;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const auto term = (omega_[k] * (params[k] - anchor_[k]).pow(2)).sum();
    total = total.defined() ? total + term : term;
  }
  return total * strength_;
}

SynapticIntelligence::SynapticIntelligence(double c, double xi) : QuadraticAnchorPenalty(c), xi_(xi) {
  SL_CHECK(c >= 0, ConfigError, "synaptic intelligence: c must be >= 0, got ", c);
  SL_CHECK(xi > 0, ConfigError, "synaptic intelligence: xi must be > 0, got ", xi);
}

void SynapticIntelligence::begin_task(const std::vector<torch::Tensor>& params) {
  check_params(params, "SynapticIntelligence::begin_task");
  small_omega_.clear();
  for (const auto& p : params) small_omega_.push_back(torch::zeros_like(p.detach()));
  previous_ = detached_copies(params);
  task_start_ = detached_copies(params);
}

void SynapticIntelligence::after_step(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads) {
  SL_CHECK(!previous_.empty(), UsageError, "SynapticIntelligence::after_step before begin_task");
  SL_CHECK(params.size() == previous_.size() && grads.size() == previous_.size(), ShapeError,
           "SynapticIntelligence::after_step: ", params.size(), " parameters and ", grads.size(),
           " gradients, expected ", previous_.size());
  torch::NoGradGuard no_grad;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const auto p = params[k].detach();
    if (grads[k].defined()) small_omega_[k].sub_(grads[k].detach() * (p - previous_[k]));
    previous_[k].copy_(p);
  }
}

void SynapticIntelligence::end_task(const std::vector<torch::Tensor>& params) {
  SL_CHECK(!task_start_.empty(), UsageError, "SynapticIntelligence::end_task before begin_task");
  check_params(params, "SynapticIntelligence::end_task");
  ensure_importance(params);
  torch::NoGradGuard no_grad;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const auto delta = params[k].detach() - task_start_[k];
    omega_[k].add_(small_omega_[k] / (delta * delta + xi_));
  }
  set_anchor(params);
}

MemoryAwareSynapses::MemoryAwareSynapses(double lambda) : QuadraticAnchorPenalty(lambda) {
  SL_CHECK(lambda >= 0, ConfigError, "memory aware synapses: lambda must be >= 0, got ", lambda);
}

void MemoryAwareSynapses::accumulate_importance(const std::vector<torch::Tensor>& params, std::int64_t samples,
                                                const std::function<torch::Tensor(std::int64_t)>& output) {
  SL_CHECK(samples >= 1, UsageError, "MemoryAwareSynapses::accumulate_importance: samples must be >= 1, got ", samples);
  check_params(params, "MemoryAwareSynapses::accumulate_importance");
  for (const auto& p : params)
    SL_CHECK(p.requires_grad(), UsageError, "MemoryAwareSynapses::accumulate_importance: parameters must require grad");
  std::vector<torch::Tensor> sum;
  for (const auto& p : params) sum.push_back(torch::zeros_like(p.detach()));
  torch::AutoGradMode enable(true);
  for (std::int64_t n = 0; n < samples; ++n) {
    const auto out = output(n);
    const auto sq = out.pow(2).sum();
    const auto g = torch::autograd::grad({sq}, params, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                         /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t k = 0; k < params.size(); ++k)
      if (g[k].defined()) sum[k].add_(g[k].detach().abs());
  }
  ensure_importance(params);
  torch::NoGradGuard no_grad;
  for (std::size_t k = 0; k < params.size(); ++k) omega_[k].add_(sum[k] / static_cast<double>(samples));
}

void MemoryAwareSynapses::end_task(const std::vector<torch::Tensor>& params) {
  check_params(params, "MemoryAwareSynapses::end_task");
  ensure_importance(params);
  set_anchor(params);
}

}  // namespace stablelearn::continual
