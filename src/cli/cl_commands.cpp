// stablelearn cl run: continual learning on classification streams (experiments/cl_experiment.h).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <memory>

#include "commands.h"
#include "progress.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::cli {

void register_cl_commands(CLI::App& app, CommandRegistry& reg) {
  auto* cl = app.add_subcommand("cl", "Continual learning on classification streams (Fashion-MNIST)");
  cl->require_subcommand(1);

  struct RunArgs {
    std::string config, out;
    std::vector<std::string> overrides;
    bool resume = false;
    std::int64_t stop_after = -1;
  };
  auto args = std::make_shared<RunArgs>();
  auto* run = cl->add_subcommand("run", "Train a strategy on a task stream and evaluate it continually");
  run->add_option("CONFIG", args->config, "TOML file with [stream] [model] [strategy] [train] [eval] [output]")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--out", args->out, "Run directory to create (or to continue with --resume)")->required();
  run->add_option("--set", args->overrides, "Override a configuration value: section.key=value (repeatable)");
  run->add_flag("--resume", args->resume, "Continue a stopped run after its last completed task");
  run->add_option("--stop-after", args->stop_after, "Stop after this many tasks (continue later with --resume)");
  run->footer(
      "Writes RUN/config.toml, metrics.jsonl, accuracy_matrix.csv, summary.json, TensorBoard event files,\n"
      "accuracy_curves.svg and a checkpoint after every task.\n"
      "Example: stablelearn cl run configs/cl/split_fmnist_er.toml --out runs/er --set train.seed=1");
  reg.add(run, [args]() {
    auto cfg = Config::from_file(args->config);
    for (const auto& o : args->overrides) cfg.set(o);
    experiments::ClExperiment e(cfg);
    TaskProgressBar bar;
    double task_start = 0;
    std::int64_t current = -1;
    const auto r = e.run(args->out, args->resume,
                         [&](const experiments::ClProgress& p) {
                           if (p.task != current) {
                             current = p.task;
                             task_start = p.elapsed;
                           }
                           const auto detail = p.mean_seen_accuracy >= 0
                                                   ? fmt::format("loss {:.3f} acc(seen) {:.3f}", p.loss, p.mean_seen_accuracy)
                                                   : fmt::format("loss {:.3f}", p.loss);
                           bar.show(p.task, p.tasks, p.iteration, p.iterations, p.elapsed, p.elapsed - task_start, detail);
                         },
                         args->stop_after);
    const auto summary = nlohmann::json::parse(read_file_text(std::filesystem::path(args->out) / "summary.json"));
    const auto& m = summary.at("metrics");
    std::cout << fmt::format("{} on {} after {}/{} tasks: ACC {:.4f}  BWT {:+.4f}  FWT {:+.4f}  forgetting {:.4f} (just learned) / {:.4f} (best so far)\n",
                             summary.at("strategy").get<std::string>(), summary.at("stream").get<std::string>(),
                             summary.at("completed_tasks").get<int>(), summary.at("tasks").get<int>(), m.at("ACC").get<double>(),
                             m.at("BWT").get<double>(), m.at("FWT").get<double>(), m.at("forgetting_just_learned").get<double>(),
                             m.at("forgetting_max").get<double>());
    if (summary.contains("continual")) {
      const auto& c = summary.at("continual");
      auto f = [](const nlohmann::json& v) { return v.is_null() ? std::string("n/a") : fmt::format("{:.4f}", v.get<double>()); };
      std::cout << fmt::format("continual evaluation every {} it: min-ACC {}  WC-ACC {}  WF10 {:.4f}  LCA10 {}\n",
                               c.at("every").get<int>(), f(c.at("min_acc")), f(c.at("wc_acc")), c.at("wf10").get<double>(),
                               f(c.at("lca")));
    }
    std::cout << "run directory: " << args->out << "\n";
    (void)r;
    return 0;
  });
}

}  // namespace stablelearn::cli
