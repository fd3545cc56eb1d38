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

struct StrategyInfo {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<Strategy>(ConfigSection&)> make;  ///< reads its keys; caller finish()es
  std::vector<options::FieldDoc> options;  ///< its [strategy] keys besides name (core/options.h)
};

/// Every built-in strategy, in a stable order.
const std::vector<StrategyInfo>& strategies();
/// Builds the strategy named by [strategy] name = "..."; UsageError listing the names when unknown.
std::unique_ptr<Strategy> make_strategy(ConfigSection& section);
/// Convenience for tests and code: a strategy with its default options.
std::unique_ptr<Strategy> make_strategy(const std::string& name);

}  // namespace stablelearn::continual
