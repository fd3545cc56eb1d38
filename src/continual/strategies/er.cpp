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

ExperienceReplay::ExperienceReplay(Options o) : o_(std::move(o)), mem_(o_.memory, parse_policy(o_.buffer)) {
  SL_CHECK(o_.memory >= 1, ConfigError, "strategy.memory: must be >= 1, got ", o_.memory);
  SL_CHECK(o_.replay_batch >= 0, ConfigError, "strategy.replay_batch: must be >= 0");
}

void ExperienceReplay::describe(ConfigWriter& w) const {
  Strategy::describe(w);
  w.put("strategy", "memory", o_.memory);
  w.put("strategy", "buffer", o_.buffer);
  w.put("strategy", "replay_batch", o_.replay_batch);
}

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
