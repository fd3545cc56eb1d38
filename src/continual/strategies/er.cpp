// Experience replay with a reservoir or class-balanced memory (see strategies.h).
#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace {
Memory::Policy parse_policy(const std::string& s) {
  if (s == "reservoir") return Memory::Policy::Reservoir;
  if (s == "class_balanced") return Memory::Policy::ClassBalanced;
  SL_THROW(ConfigError, "strategy.buffer: expected reservoir or class_balanced, got \"", s, "\"");
}
}  // namespace

void ExperienceReplayOptions::fields(options::Visitor& v) {
  v("memory", memory, "samples kept in the memory").at_least(1);
  v("buffer", buffer, "reservoir: updated every step; class_balanced: equal share per class, updated at task ends")
      .one_of({"reservoir", "class_balanced"});
  v("replay_batch", replay_batch, "memory samples joined to each batch (0 = the training batch size)").at_least(0);
}

ExperienceReplay::ExperienceReplay(Options o)
    : StrategyWithOptions(std::move(o)), mem_(o_.memory, parse_policy(o_.buffer)) {}

Batch ExperienceReplay::adapt_batch(Context& ctx, Batch b) {
  if (mem_.size() == 0) return b;
  const auto n = o_.replay_batch > 0 ? o_.replay_batch : b.size();
  const auto s = mem_.sample(n, ctx.gen);
  return {torch::cat({b.x, s.x}), torch::cat({b.y, s.y}), torch::cat({b.task, s.task})};
}

void ExperienceReplay::after_step(Context& ctx, const Batch& b) {
  if (mem_.policy() == Memory::Policy::Reservoir) mem_.add_reservoir(b.x, b.y, b.task, {}, ctx.gen);
}

void ExperienceReplay::after_task(Context& ctx) {
  if (mem_.policy() != Memory::Policy::ClassBalanced) return;
  const auto& t = ctx.current().train;
  const auto dev = ctx.params.front().device();
  mem_.add_class_balanced(t.images.to(dev), t.labels.to(dev), torch::full({t.size()}, ctx.task, torch::kInt64).to(dev),
                          ctx.gen);
}

std::map<std::string, torch::Tensor> ExperienceReplay::state() const {
  std::map<std::string, torch::Tensor> m;
  mem_.save(m, "er.memory");
  return m;
}

void ExperienceReplay::load_state(const std::map<std::string, torch::Tensor>& m) { mem_.load(m, "er.memory"); }

}  // namespace stablelearn::continual
