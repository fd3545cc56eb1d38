// `stablelearn repro`: a registry of reproductions (shared/DESIGN.md experiments/repro; STYLE #19).
// Each entry is one paper's small-scale experiment in one file under src/experiments/repro/: the
// paper, its claim in one sentence, its options (declared once, with the default and the --quick
// value), a per-seed experiment and the claim stated as checks — comparisons between methods or
// against a closed form, fixed from the paper before looking at our numbers.
//
// run_repro() drives every entry the same way through core/run: RUN/config.toml (the resolved
// options), one metrics.jsonl row per finished seed (so --resume skips the seeds already done),
// RUN/results.json = {"experiment", "paper", "claim", "setup", "metrics", "checks", "verdict"},
// RUN/summary.json (seed, seconds, runtime block) and the entry's figures.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/core/progress.h"
#include "stablelearn/core/run.h"

namespace stablelearn::experiments {

/// One option of an entry: its name (the key of --set and of [options] in config.toml), meaning,
/// default and the smaller value of --quick. Values are numbers (integers where `integer`).
struct ReproOption {
  std::string name;
  std::string doc;
  double value = 0;        ///< default
  double quick = 0;        ///< with --quick
  bool integer = false;
};

/// One check of a claim: value (comparison) threshold → pass.
struct ReproCheck {
  std::string name;        ///< what is compared, in words
  double value = 0;
  std::string comparison;  ///< "<=", ">=", "<" or ">"
  double threshold = 0;
  bool pass = false;       ///< value comparison threshold (false when value is NaN)
};
/// A check with pass computed from the comparison.
ReproCheck make_check(std::string name, double value, const std::string& comparison, double threshold);

/// What an entry's code sees.
struct ReproContext {
  const RunDir* run = nullptr;          ///< the run directory (figures go there)
  bool quick = false;
  std::int64_t seeds = 1;               ///< seeds to run (seed, seed + 1, ...)
  std::uint64_t seed = 0;               ///< the first seed
  std::map<std::string, double> options;  ///< resolved options (defaults, --quick, --set)
  ProgressReporter* progress = nullptr;   ///< never null while an entry runs

  double option(const std::string& name) const;          ///< InternalError for an undeclared name
  std::int64_t int_option(const std::string& name) const;
};

/// The summary of an entry's seeds.
struct ReproOutcome {
  nlohmann::json setup = nlohmann::json::object();    ///< problem, sizes, rates (words and numbers)
  nlohmann::json metrics = nlohmann::json::object();  ///< name → value or [per-seed values]
  std::vector<ReproCheck> checks;
};

/// A registered reproduction.
struct ReproEntry {
  std::string name;   ///< `stablelearn repro NAME`
  std::string paper;  ///< title, authors, venue
  std::string claim;  ///< the paper's claim in one sentence
  std::vector<ReproOption> options;
  /// One seed's experiment (seed index k of ctx.seeds, seed ctx.seed + k): a JSON object kept as
  /// that seed's metrics.jsonl row. It may write figures into ctx.run (e.g. for k = 0).
  std::function<nlohmann::json(const ReproContext& ctx, std::int64_t k)> run_seed;
  /// The metrics and checks of all seeds' rows (in seed order).
  std::function<ReproOutcome(const ReproContext& ctx, const std::vector<nlohmann::json>& rows)> summarise;
};

/// Every entry, in listing order (filled by register_builtin_repros on first use).
const std::vector<ReproEntry>& repro_entries();
/// The entry `name`; UsageError listing the known names otherwise.
const ReproEntry& find_repro(const std::string& name);

/// How `stablelearn repro NAME` was called.
struct ReproRequest {
  std::string name;
  std::filesystem::path out;
  bool quick = false;
  std::int64_t seeds = 1;
  std::uint64_t seed = 0;
  std::vector<std::string> overrides;  ///< "key=value" (or "options.key=value")
  bool resume = false;
};

/// The resolved config.toml of a request: [repro] experiment, quick, seeds, seed and [options].
/// ConfigError naming an unknown --set key and listing the valid ones; UsageError for seeds < 1.
std::string resolve_repro_config(const ReproRequest& request);

/// Runs a request (see the file comment) and returns results.json's content. Exit status is the
/// caller's business: the verdict is a result, not an error.
nlohmann::json run_repro(const ReproRequest& request, ProgressReporter& progress);

/// The one-screen summary of a results.json: claim, checks table, verdict.
std::string repro_summary_text(const nlohmann::json& results);

}  // namespace stablelearn::experiments
