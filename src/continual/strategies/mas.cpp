// Memory-aware synapses as a strategy (see strategies.h; the maths lives in regularizers.cpp).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

MasStrategy::MasStrategy(Options o) : o_(o), mas_(std::make_unique<MemoryAwareSynapses>(o.lambda)) {
  SL_CHECK(o_.samples >= 1, ConfigError, "strategy.samples: must be >= 1, got ", o_.samples);
}
MasStrategy::~MasStrategy() = default;
const std::vector<torch::Tensor>& MasStrategy::importance() const { return mas_->importance(); }

void MasStrategy::describe(ConfigWriter& w) const {
  Strategy::describe(w);
  w.put("strategy", "lambda", o_.lambda);
  w.put("strategy", "samples", o_.samples);
}

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
