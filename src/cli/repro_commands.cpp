// stablelearn repro list | repro NAME --out RUN ...: the registry of reproductions
// (experiments/repro.h; docs/repro.md). Parses, calls run_repro, prints the one-screen summary.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/experiments/repro.h"

namespace stablelearn::cli {

void register_repro_commands(CLI::App& app, CommandRegistry& reg) {
  struct Args {
    std::string name, out;
    bool quick = false, resume = false, quiet = false;
    std::int64_t seeds = 1;
    std::uint64_t seed = 0;
    std::vector<std::string> overrides;
  };
  auto a = std::make_shared<Args>();
  auto* repro = app.add_subcommand(
      "repro", "Reproduce a paper's small-scale experiment: its claim as checks, results.json + figures in a run directory");
  repro->require_subcommand(0, 1);
  auto* list = repro->add_subcommand("list", "List the reproductions: name, paper and claim");
  reg.add(list, [] {
    for (const auto& e : experiments::repro_entries()) {
      std::cout << fmt::format("{:<18} {}\n{:<18} claim: {}\n", e.name, e.paper, "", e.claim);
      std::string opts;
      for (const auto& o : e.options) opts += (opts.empty() ? "" : ", ") + o.name;
      std::cout << fmt::format("{:<18} --set: {}\n\n", "", opts);
    }
    return 0;
  });
  repro->add_option("NAME", a->name, "The reproduction (see `stablelearn repro list`)");
  repro->add_option("--out", a->out, "Run directory RUN (created; must be empty unless --resume)");
  repro->add_flag("--quick", a->quick, "The small version (under a minute on 2 cores; may say \"not reproduced\" when too small)");
  repro->add_option("--seeds", a->seeds, "Seeds to run (seed, seed + 1, ...); checks take the median over seeds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  repro->add_option("--seed", a->seed, "The first seed")->capture_default_str();
  repro->add_option("--set", a->overrides, "Override an option, KEY=VALUE (repeatable; `repro list` names the keys)");
  repro->add_flag("--resume", a->resume, "Continue RUN: seeds already in RUN/metrics.jsonl are not run again");
  repro->add_flag("--quiet", a->quiet, "No progress on stderr");
  repro->footer(
      "Writes RUN/config.toml (resolved options), metrics.jsonl (one row per seed), results.json (experiment, paper,\n"
      "claim, setup, metrics, checks, verdict), summary.json (seed, seconds, runtime) and figures (*.svg), and prints\n"
      "the checks and the verdict. Exit status 0 whatever the verdict; 2 for bad input.\n"
      "Examples:\n  stablelearn repro list\n  stablelearn repro edge-of-stability --out runs/eos --quick\n"
      "  stablelearn repro sgd-minimum --out runs/sgd --seeds 3 --set lr=0.02");
  reg.add(repro, [a] {
    SL_CHECK(!a->name.empty(), UsageError, "give a reproduction NAME (see `stablelearn repro list`)");
    experiments::find_repro(a->name);  // unknown names first, before --out
    SL_CHECK(!a->out.empty(), UsageError, "--out RUN is required");
    experiments::ReproRequest r;
    r.name = a->name;
    r.out = a->out;
    r.quick = a->quick;
    r.seeds = a->seeds;
    r.seed = a->seed;
    r.overrides = a->overrides;
    r.resume = a->resume;
    ProgressReporter progress(a->quiet ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
    const auto results = experiments::run_repro(r, progress);
    std::cout << experiments::repro_summary_text(results) << "results: " << (std::filesystem::path(a->out) / "results.json").string()
              << "\n";
    return 0;
  });
}

}  // namespace stablelearn::cli
