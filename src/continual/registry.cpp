#include "stablelearn/continual/registry.h"

#include <type_traits>

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace {

template <class S, class = void>
struct HasOptions : std::false_type {};
template <class S>
struct HasOptions<S, std::void_t<typename S::Options>> : std::true_type {};

template <class S>
StrategyInfo entry(std::string name, std::string summary) {
  StrategyInfo info{std::move(name), std::move(summary), {}, {}};
  if constexpr (HasOptions<S>::value) {
    using O = typename S::Options;
    info.parse = [n = info.name](ConfigSection& s) {
      // Read and checked once; every strategy made from the spec gets a copy.
      const auto o = options::checked(options::read<O>(s), "strategy");
      return StrategySpec{n, [o] { return std::make_unique<S>(o); },
                          [n, o](ConfigWriter& w) {
                            w.put("strategy", "name", n);
                            options::write(w, o, "strategy");
                          }};
    };
    info.options = options::describe<O>({}, "strategy");
  } else {
    info.parse = [n = info.name](ConfigSection&) {
      return StrategySpec{n, [] { return std::make_unique<S>(); }, [n](ConfigWriter& w) { w.put("strategy", "name", n); }};
    };
  }
  return info;
}

}  // namespace

const std::vector<StrategyInfo>& strategies() {
  static const std::vector<StrategyInfo> list = {
      entry<FineTuning>("finetune", "fine-tuning, no protection (lower bound)"),
      entry<Joint>("joint", "joint training on all tasks so far (upper bound)"),
      entry<Ewc>("ewc", "elastic weight consolidation, separate or online"),
      entry<SiStrategy>("si", "synaptic intelligence"),
      entry<MasStrategy>("mas", "memory-aware synapses"),
      entry<Lwf>("lwf", "learning without forgetting"),
      entry<ExperienceReplay>("er", "experience replay, reservoir or class-balanced memory"),
      entry<AGem>("agem", "averaged gradient episodic memory"),
      entry<DerPlusPlus>("derpp", "dark experience replay++"),
      entry<Gpm>("gpm", "gradient projection memory on the linear layers"),
      entry<EmaMerge>("ema", "EMA merging with LCIA's automatic balance weight"),
      entry<AdaptiveSvd>("adaptive_svd", "orthogonal subspace fine-tuning: top singular directions of each linear weight frozen"),
      entry<Coso>("coso", "continuous subspace optimisation, Adam in a projected gradient subspace"),
      entry<PackNet>("packnet", "PackNet: iterative pruning, each task's weights kept and frozen (task identity at test)"),
      entry<Hat>("hat", "hard attention to the task: learned per-task gates on the MLP's hidden units (task identity at test)"),
  };
  return list;
}

StrategySpec parse_strategy(ConfigSection& section) {
  const auto name = section.get("name", std::string("finetune"));
  for (const auto& s : strategies())
    if (s.name == name) return s.parse(section);
  std::string names;
  for (const auto& s : strategies()) names += (names.empty() ? "" : ", ") + s.name;
  SL_THROW(ConfigError, "strategy.name: unknown strategy \"", name, "\" (known: ", names, ")");
}

std::unique_ptr<Strategy> make_strategy(ConfigSection& section) { return parse_strategy(section).make(); }

std::unique_ptr<Strategy> make_strategy(const std::string& name) {
  auto cfg = Config::from_string("[strategy]\nname = \"" + name + "\"\n", "make_strategy");
  auto s = cfg.section("strategy");
  return make_strategy(s);
}

}  // namespace stablelearn::continual
