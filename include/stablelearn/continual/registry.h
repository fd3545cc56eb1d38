// The strategy registry: every strategy by name, with a one-line summary and a factory reading its
// options from the [strategy] table of a run config (unknown keys are errors).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stablelearn/core/options.h"
#include "stablelearn/continual/strategy.h"

namespace stablelearn::continual {

/// A [strategy] table read and checked once: makes fresh strategies with those options and writes
/// the resolved table, with no TOML in between.
struct StrategySpec {
  std::string name;
  std::function<std::unique_ptr<Strategy>()> make;      ///< a new strategy (fresh state)
  std::function<void(ConfigWriter&)> describe;          ///< writes [strategy] name and options
};

struct StrategyInfo {
  std::string name;
  std::string summary;
  std::function<StrategySpec(ConfigSection&)> parse;  ///< reads its keys; caller finish()es
  std::vector<options::FieldDoc> options;  ///< its [strategy] keys besides name (core/options.h)
};

/// Every built-in strategy, in a stable order.
const std::vector<StrategyInfo>& strategies();
/// Reads the [strategy] table (name = "...", default "finetune", and that strategy's keys; the
/// caller finish()es the section for unknown keys); ConfigError listing the names when unknown.
StrategySpec parse_strategy(ConfigSection& section);
/// parse_strategy(section).make().
std::unique_ptr<Strategy> make_strategy(ConfigSection& section);
/// Convenience for tests and code: a strategy with its default options.
std::unique_ptr<Strategy> make_strategy(const std::string& name);

}  // namespace stablelearn::continual
