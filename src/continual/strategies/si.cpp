// Synaptic intelligence as a strategy (see strategies.h; the maths lives in regularizers.cpp).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"

namespace stablelearn::continual {

void SiStrategyOptions::fields(options::Visitor& v) {
  v("c", c, "penalty strength c").at_least(0.0);
  v("xi", xi, "damping ξ of Ω").above(0.0);
}

SiStrategy::SiStrategy(Options o)
    : StrategyWithOptions(std::move(o)), si_(std::make_unique<SynapticIntelligence>(o_.c, o_.xi)) {}
SiStrategy::~SiStrategy() = default;
const std::vector<torch::Tensor>& SiStrategy::importance() const { return si_->importance(); }

void SiStrategy::before_task(Context& ctx) { si_->begin_task(ctx.params); }

torch::Tensor SiStrategy::extra_loss(Context& ctx, const Batch&, const torch::Tensor&) {
  auto p = si_->penalty(ctx.params);
  penalised_ = p.defined();
  return p;
}

void SiStrategy::after_backward(Context& ctx) {
  // The path integral uses the gradient of the task loss alone: total gradient minus the
  // penalty's analytic gradient 2c Ω (θ − θ*).
  task_grad_.clear();
  for (std::size_t i = 0; i < ctx.params.size(); ++i) {
    auto g = ctx.params[i].grad().defined() ? ctx.params[i].grad().detach().clone() : torch::zeros_like(ctx.params[i]);
    if (penalised_) g -= 2.0 * o_.c * si_->importance()[i] * (ctx.params[i].detach() - si_->anchor()[i]);
    task_grad_.push_back(g);
  }
}

void SiStrategy::after_step(Context& ctx, const Batch&) { si_->after_step(ctx.params, task_grad_); }

void SiStrategy::after_task(Context& ctx) { si_->end_task(ctx.params); }

std::map<std::string, torch::Tensor> SiStrategy::state() const {
  std::map<std::string, torch::Tensor> m;
  put_list(m, "si.omega", si_->importance());
  put_list(m, "si.anchor", si_->anchor());
  return m;
}

void SiStrategy::load_state(const std::map<std::string, torch::Tensor>& m) {
  si_->set_state(get_list(m, "si.omega"), get_list(m, "si.anchor"));
}

}  // namespace stablelearn::continual
