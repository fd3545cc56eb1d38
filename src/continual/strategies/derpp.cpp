// DER++: dark experience replay with labels (see strategies.h).
#include <torch/nn/functional/loss.h>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"

namespace stablelearn::continual {

void DerPlusPlusOptions::fields(options::Visitor& v) {
  v("memory", memory, "reservoir memory size").at_least(1);
  v("alpha", alpha, "weight α of the logit-matching (MSE) term").at_least(0.0);
  v("beta", beta, "weight β of the replayed cross-entropy").at_least(0.0);
}

torch::Tensor DerPlusPlus::extra_loss(Context& ctx, const Batch& b, const torch::Tensor& logits) {
  // The batch's logits are stored with its samples after the step (Mammoth stores the outputs of
  // the forward pass that produced the loss).
  // (A data-parallel rank with an empty shard has no logits; it stores ctx.batch_logits instead.)
  if (logits.defined()) last_logits_ = logits.detach().narrow(0, 0, b.size());
  if (mem_.size() == 0) return {};
  const auto n = ctx.batch_size;
  const auto s1 = mem_.sample(n, ctx.gen);
  const auto z1 = ctx.logits(s1.x, s1.task);
  // Masked (−∞) logits of task-IL heads are excluded from the logit-matching term.
  const auto finite = torch::isfinite(z1) & torch::isfinite(s1.logits);
  const auto diff = torch::where(finite, z1 - s1.logits, torch::zeros_like(z1));
  const auto mse = diff.pow(2).sum() / finite.sum().clamp_min(1);
  const auto s2 = mem_.sample(n, ctx.gen);
  const auto ce = cross_entropy(ctx.logits(s2.x, s2.task), s2.y);
  return mse * o_.alpha + ce * o_.beta;
}

void DerPlusPlus::after_step(Context& ctx, const Batch& b) {
  mem_.add_reservoir(b.x, b.y, b.task, ctx.batch_logits.defined() ? ctx.batch_logits.narrow(0, 0, b.size()) : last_logits_, ctx.gen);
}

std::map<std::string, torch::Tensor> DerPlusPlus::state() const {
  std::map<std::string, torch::Tensor> m;
  mem_.save(m, "derpp.memory");
  return m;
}

void DerPlusPlus::load_state(const std::map<std::string, torch::Tensor>& m) { mem_.load(m, "derpp.memory"); }

}  // namespace stablelearn::continual
