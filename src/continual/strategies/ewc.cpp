// Elastic weight consolidation, separate and online (see strategies.h).
#include <torch/autograd.h>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void EwcOptions::fields(options::Visitor& v) {
  v("lambda", lambda, "penalty weight λ").at_least(0.0);
  v("mode", mode, "separate: one penalty per past task; online: decayed sum of the Fishers (Progress & Compress)")
      .one_of({"separate", "online"});
  v("gamma", gamma, "online mode: decay γ of the accumulated Fisher").in(0.0, 1.0);
  v("fisher_samples", fisher_samples, "training samples of the diagonal empirical Fisher").at_least(1);
}

Ewc::Ewc(Options o) : StrategyWithOptions(std::move(o)) {}

torch::Tensor Ewc::extra_loss(Context& ctx, const Batch&, const torch::Tensor&) {
  if (fisher_.empty()) return {};
  const auto& params = ctx.params;
  torch::Tensor total = torch::zeros({}, params.front().options());
  for (std::size_t k = 0; k < fisher_.size(); ++k)
    for (std::size_t i = 0; i < params.size(); ++i)
      total = total + (fisher_[k][i] * (params[i] - anchor_[k][i]).pow(2)).sum();
  return total * (o_.lambda / 2);
}

void Ewc::after_task(Context& ctx) {
  const auto& params = ctx.params;
  std::vector<torch::Tensor> fisher;
  for (const auto& p : params) fisher.push_back(torch::zeros_like(p));
  const auto& train = ctx.current().train;
  const auto n = std::min<std::int64_t>(o_.fisher_samples, train.size());
  const auto tid = torch::full({1}, ctx.task, torch::kInt64).to(params.front().device());
  // Per-sample gradients of log p(y_true | x): the empirical Fisher (squared per-sample gradients).
  for (std::int64_t s = 0; s < n; ++s) {
    const auto x = train.images.narrow(0, s, 1).to(params.front().device());
    const auto y = train.labels.narrow(0, s, 1).to(params.front().device());
    const auto logp = torch::log_softmax(ctx.logits(x, tid), 1).gather(1, y.unsqueeze(1)).sum();
    const auto grads = torch::autograd::grad({logp}, params);
    for (std::size_t i = 0; i < params.size(); ++i) fisher[i] += grads[i].detach().pow(2);
  }
  for (auto& f : fisher) f /= static_cast<double>(n);
  auto anchor = snapshot(params);
  if (o_.mode == "online" && !fisher_.empty()) {
    for (std::size_t i = 0; i < fisher.size(); ++i) fisher_[0][i] = fisher_[0][i] * o_.gamma + fisher[i];
    anchor_[0] = std::move(anchor);
  } else {
    fisher_.push_back(std::move(fisher));
    anchor_.push_back(std::move(anchor));
  }
}

std::map<std::string, torch::Tensor> Ewc::state() const {
  std::map<std::string, torch::Tensor> m;
  m["ewc.k"] = torch::tensor({static_cast<std::int64_t>(fisher_.size())}, torch::kInt64);
  for (std::size_t k = 0; k < fisher_.size(); ++k) {
    put_list(m, "ewc.fisher" + std::to_string(k), fisher_[k]);
    put_list(m, "ewc.anchor" + std::to_string(k), anchor_[k]);
  }
  return m;
}

void Ewc::load_state(const std::map<std::string, torch::Tensor>& m) {
  fisher_.clear();
  anchor_.clear();
  const auto it = m.find("ewc.k");
  if (it == m.end()) return;
  for (std::int64_t k = 0; k < it->second.item<std::int64_t>(); ++k) {
    fisher_.push_back(get_list(m, "ewc.fisher" + std::to_string(k)));
    anchor_.push_back(get_list(m, "ewc.anchor" + std::to_string(k)));
  }
}

}  // namespace stablelearn::continual
