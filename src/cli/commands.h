// The stablelearn command line: each group registers its sub-commands on the CLI11 app. The
// registrations are the single declaration of every command, its options and its help text.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace stablelearn::cli {

/// Options every command shares, parsed before the sub-command runs.
struct GlobalOptions {
  int threads = 0;  ///< 0 = all cores
};

/// Leaf commands and what they run. main() parses, applies the global options, then runs the
/// action of the leaf command that was given (its return value is the exit status).
class CommandRegistry {
 public:
  void add(CLI::App* command, std::function<int()> action) { commands_.push_back({command, std::move(action)}); }
  /// The action of the parsed leaf command, or nullptr if none was given.
  const std::function<int()>* selected() const {
    for (const auto& c : commands_)
      if (c.app->parsed()) return &c.action;
    return nullptr;
  }

 private:
  struct Entry {
    CLI::App* app;
    std::function<int()> action;
  };
  std::vector<Entry> commands_;
};

void register_data_commands(CLI::App& app, CommandRegistry& reg);
void register_lfd_commands(CLI::App& app, CommandRegistry& reg);
void register_demo_command(CLI::App& app, CommandRegistry& reg);
void register_list_command(CLI::App& app, CommandRegistry& reg);
void register_diagnose_commands(CLI::App& app, CommandRegistry& reg);
void register_cl_commands(CLI::App& app, CommandRegistry& reg);
/// launch_command.cpp: `launch --nproc N -- COMMAND ...` (distributed/launch.h).
void register_launch_command(CLI::App& app, CommandRegistry& reg);
/// repro_commands.cpp: `repro list` and `repro NAME --out RUN ...` (experiments/repro.h).
void register_repro_commands(CLI::App& app, CommandRegistry& reg);
/// report_command.cpp: `report RUN [RUN ...]` (experiments/run_report.h).
void register_report_command(CLI::App& app, CommandRegistry& reg);
/// unlearn_command.cpp: `unlearn --run RUN --out OUT --forget-class C --method M` (unlearn/unlearn.h).
void register_unlearn_command(CLI::App& app, CommandRegistry& reg);
/// rl_commands.cpp: `rl envs` and `rl train CONFIG --out RUN` (rl/).
void register_rl_commands(CLI::App& app, CommandRegistry& reg);
/// More `diagnose` sub-commands (diagnose_extra_commands.cpp: commutator), registered on the
/// `diagnose` group by register_diagnose_commands.
void add_diagnose_extra_commands(CLI::App* diag, CommandRegistry& reg);
/// diagnose_experiment_commands.cpp: edge-of-stability, sgd-minimum, trajectory (toy form) and
/// intrinsic-dim, added to the `diagnose` group `diag` (the experiments are experiments/toy_experiments.h).
void add_diagnose_experiment_commands(CLI::App* diag, CommandRegistry& reg);
/// diagnose_run_commands.cpp: `diagnose cka RUN` (representation drift of a `cl run`), added to
/// the `diagnose` group `diag`.
void register_diagnose_run_commands(CLI::App& diag, CommandRegistry& reg);
/// diagnose_shesha_command.cpp: `diagnose shesha RUN` (Shesha feature-split and weight-noise
/// geometric stability of a `cl run`'s hidden representation), added to the `diagnose` group `diag`.
void register_diagnose_shesha_command(CLI::App& diag, CommandRegistry& reg);
/// diagnose_grokalign_command.cpp: `diagnose grokalign RUN` (GrokAlign centroid alignment, Jacobian
/// PC1 and Jacobian norm of a `cl run` on one task's test images), added to the `diagnose` group
/// `diag` by main() after register_diagnose_commands.
void register_diagnose_grokalign_command(CLI::App& diag, CommandRegistry& reg);
/// diagnose_run_commands.cpp: adds the optional RUN positional and --task to the toy `diagnose
/// trajectory` command and returns its action: trajectory PCA + RELEX of the run's parameter
/// snapshots when RUN is given (`components()` = the --components value), `toy` otherwise.
std::function<int()> with_run_trajectory(CLI::App* trajectory, std::function<std::int64_t()> components,
                                         std::function<int()> toy);

// Shared by several commands (data_commands.cpp).
/// One JSON row per LfD data set found under `root` (name, tasks, demos, samples, dims).
nlohmann::json dataset_summary(const std::filesystem::path& root);
/// Prints dataset_summary() as a table.
void print_dataset_table(const std::filesystem::path& root, const nlohmann::json& sets);

}  // namespace stablelearn::cli
