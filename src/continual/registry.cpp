#include "stablelearn/continual/registry.h"

#include "stablelearn/continual/strategies.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace stablelearn::continual {

namespace {

template <class S>
std::function<std::unique_ptr<Strategy>(ConfigSection&)> plain() {
  return [](ConfigSection&) { return std::make_unique<S>(); };
}

}  // namespace

const std::vector<StrategyInfo>& strategies() {
  static const std::vector<StrategyInfo> list = {
      {"finetune", "fine-tuning, no protection (lower bound)", plain<FineTuning>()},
      {"joint", "joint training on all tasks so far (upper bound)", plain<Joint>()},
      {"ewc", "elastic weight consolidation, separate or online (lambda, mode, gamma, fisher_samples)",
       [](ConfigSection& s) {
         Ewc::Options o;
         o.lambda = s.get("lambda", o.lambda);
         o.mode = s.get("mode", o.mode);
         o.gamma = s.get("gamma", o.gamma);
         o.fisher_samples = s.get("fisher_samples", o.fisher_samples);
         return std::make_unique<Ewc>(o);
       }},
      {"si", "synaptic intelligence (c, xi)",
       [](ConfigSection& s) {
         SiStrategy::Options o;
         o.c = s.get("c", o.c);
         o.xi = s.get("xi", o.xi);
         return std::make_unique<SiStrategy>(o);
       }},
      {"mas", "memory-aware synapses (lambda, samples)",
       [](ConfigSection& s) {
         MasStrategy::Options o;
         o.lambda = s.get("lambda", o.lambda);
         o.samples = s.get("samples", o.samples);
         return std::make_unique<MasStrategy>(o);
       }},
      {"lwf", "learning without forgetting (alpha, temperature)",
       [](ConfigSection& s) {
         Lwf::Options o;
         o.alpha = s.get("alpha", o.alpha);
         o.temperature = s.get("temperature", o.temperature);
         SL_CHECK(o.alpha >= 0 && o.temperature > 0, ConfigError, "strategy: lwf needs alpha >= 0 and temperature > 0");
         return std::make_unique<Lwf>(o);
       }},
      {"er", "experience replay, reservoir or class-balanced memory (memory, buffer, replay_batch)",
       [](ConfigSection& s) {
         ExperienceReplay::Options o;
         o.memory = s.get("memory", o.memory);
         o.buffer = s.get("buffer", o.buffer);
         o.replay_batch = s.get("replay_batch", o.replay_batch);
         return std::make_unique<ExperienceReplay>(o);
       }},
      {"agem", "averaged gradient episodic memory (memory_per_task, sample_size)",
       [](ConfigSection& s) {
         AGem::Options o;
         o.memory_per_task = s.get("memory_per_task", o.memory_per_task);
         o.sample_size = s.get("sample_size", o.sample_size);
         SL_CHECK(o.memory_per_task >= 1 && o.sample_size >= 1, ConfigError,
                  "strategy: agem needs memory_per_task >= 1 and sample_size >= 1");
         return std::make_unique<AGem>(o);
       }},
      {"derpp", "dark experience replay++ (memory, alpha, beta)",
       [](ConfigSection& s) {
         DerPlusPlus::Options o;
         o.memory = s.get("memory", o.memory);
         o.alpha = s.get("alpha", o.alpha);
         o.beta = s.get("beta", o.beta);
         SL_CHECK(o.memory >= 1 && o.alpha >= 0 && o.beta >= 0, ConfigError,
                  "strategy: derpp needs memory >= 1, alpha >= 0, beta >= 0");
         return std::make_unique<DerPlusPlus>(o);
       }},
      {"gpm", "gradient projection memory on the linear layers (threshold, threshold_step, samples)",
       [](ConfigSection& s) {
         Gpm::Options o;
         o.threshold = s.get("threshold", o.threshold);
         o.threshold_step = s.get("threshold_step", o.threshold_step);
         o.samples = s.get("samples", o.samples);
         SL_CHECK(o.threshold > 0 && o.threshold <= 1 && o.samples >= 1, ConfigError,
                  "strategy: gpm needs 0 < threshold <= 1 and samples >= 1");
         return std::make_unique<Gpm>(o);
       }},
      {"ema", "EMA merging with LCIA's automatic balance weight (fallback)",
       [](ConfigSection& s) {
         EmaMerge::Options o;
         o.fallback = s.get("fallback", o.fallback);
         SL_CHECK(o.fallback > 0 && o.fallback < 1, ConfigError, "strategy.fallback: must be in (0, 1)");
         return std::make_unique<EmaMerge>(o);
       }},
      {"adaptive_svd", "orthogonal subspace fine-tuning: top singular directions of each linear weight frozen (rank_step, max_fraction)",
       [](ConfigSection& s) {
         AdaptiveSvd::Options o;
         o.rank_step = s.get("rank_step", o.rank_step);
         o.max_fraction = s.get("max_fraction", o.max_fraction);
         SL_CHECK(o.rank_step >= 0 && o.max_fraction >= 0 && o.max_fraction <= 1, ConfigError,
                  "strategy: adaptive_svd needs rank_step >= 0 and 0 <= max_fraction <= 1");
         return std::make_unique<AdaptiveSvd>(o);
       }},
      {"coso", "continuous subspace optimisation, Adam in a projected gradient subspace (proj_rank, rank, threshold, update_gap, decay)",
       [](ConfigSection& s) {
         Coso::Options o;
         o.proj_rank = s.get("proj_rank", o.proj_rank);
         o.rank = s.get("rank", o.rank);
         o.threshold = s.get("threshold", o.threshold);
         o.update_gap = s.get("update_gap", o.update_gap);
         o.decay = s.get("decay", o.decay);
         SL_CHECK(o.proj_rank >= 1 && o.rank >= 1 && o.update_gap >= 1 && o.threshold > 0 && o.threshold <= 1 && o.decay > 0,
                  ConfigError, "strategy: coso needs proj_rank, rank, update_gap >= 1, 0 < threshold <= 1, decay > 0");
         return std::make_unique<Coso>(o);
       }},
  };
  return list;
}

std::unique_ptr<Strategy> make_strategy(ConfigSection& section) {
  const auto name = section.get("name", std::string("finetune"));
  for (const auto& s : strategies())
    if (s.name == name) return s.make(section);
  std::string names;
  for (const auto& s : strategies()) names += (names.empty() ? "" : ", ") + s.name;
  SL_THROW(ConfigError, "strategy.name: unknown strategy \"", name, "\" (known: ", names, ")");
}

std::unique_ptr<Strategy> make_strategy(const std::string& name) {
  auto cfg = Config::from_string("[strategy]\nname = \"" + name + "\"\n", "make_strategy");
  auto s = cfg.section("strategy");
  return make_strategy(s);
}

}  // namespace stablelearn::continual
