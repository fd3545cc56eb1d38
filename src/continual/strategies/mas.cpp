// Memory-aware synapses as a strategy (see strategies.h; the maths lives in regularizers.cpp).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

void MasStrategyOptions::fields(options::Visitor& v) {
  v("lambda", lambda, "penalty strength λ").at_least(0.0);
  v("samples", samples, "training samples of the importance Ω").at_least(1);
}

MasStrategy::MasStrategy(Options o)
    : StrategyWithOptions(std::move(o)), mas_(std::make_unique<MemoryAwareSynapses>(o_.lambda)) {}
MasStrategy::~MasStrategy() = default;
const std::vector<torch::Tensor>& MasStrategy::importance() const { return mas_->importance(); }

torch::Tensor MasStrategy::extra_loss(Context& ctx, const Batch&, const torch::Tensor&) {
  return mas_->penalty(ctx.params);
}

void MasStrategy::after_task(Context& ctx) {
  const auto& t = ctx.current().train;
  const auto dev = ctx.params.front().device();
  const auto n = std::min(o_.samples, t.size());
  mas_->accumulate_importance(ctx.params, n, [&](std::int64_t i) {
    return ctx.model->forward(t.images.narrow(0, i, 1).to(dev));
  });
  mas_->end_task(ctx.params);
}

std::map<std::string, torch::Tensor> MasStrategy::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "mas.omega", mas_->importance());
  put_list(m, "mas.anchor", mas_->anchor());
  return m;
}

void MasStrategy::load_state(const std::map<std::string, torch::Tensor>& m) {
  mas_->set_state(get_list(m, "mas.omega"), get_list(m, "mas.anchor"));
}

}  // namespace stablelearn::continual
