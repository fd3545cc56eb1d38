// stablelearn cl run: continual learning on classification streams (experiments/cl_experiment.h).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <iostream>
#include <memory>

#include "commands.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/distributed/env.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::cli {

void register_cl_commands(CLI::App& app, CommandRegistry& reg) {
  auto* cl = app.add_subcommand("cl", "Continual learning on classification streams (Fashion-MNIST)");
  cl->require_subcommand(1);

  struct RunArgs {
    std::string config, out;
    std::vector<std::string> overrides;
    bool resume = false, dry_run = false, quiet = false;
    std::int64_t stop_after = -1;
  };
  auto args = std::make_shared<RunArgs>();
  auto* run = cl->add_subcommand("run", "Train a strategy on a task stream and evaluate it continually");
  run->add_option("CONFIG", args->config, "TOML file with [stream] [model] [strategy] [train] [eval] [output]")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--out", args->out, "Run directory to create (or to continue with --resume)");
  run->add_option("--set", args->overrides, "Override a configuration value: section.key=value (repeatable)");
  run->add_flag("--resume", args->resume, "Continue a stopped run after its last completed task");
  run->add_option("--stop-after", args->stop_after, "Stop after this many tasks (continue later with --resume)")
      ->check(CLI::PositiveNumber);
  run->add_flag("--dry-run", args->dry_run,
                "Validate the configuration and print it resolved, without running (keys: stablelearn list cl-config, list strategies)");
  run->add_flag("--quiet", args->quiet, "No progress on stderr");
  run->footer(
      "Writes RUN/config.toml, metrics.jsonl, accuracy_matrix.csv, summary.json, TensorBoard event files,\n"
      "accuracy_curves.svg and a checkpoint after every task.\n"
      "Data-parallel over N local processes (every strategy but hat): stablelearn launch --nproc N -- cl run ...\n"
      "Example: stablelearn cl run configs/cl/split_fmnist_er.toml --out runs/er --set train.seed=1");
  reg.add(run, [args]() {
    if (!args->dry_run && args->out.empty()) throw CLI::RequiredError("--out");
    auto cfg = Config::from_file(args->config);
    for (const auto& o : args->overrides) cfg.set(o);
    experiments::ClExperiment e(cfg);
    if (args->dry_run) {
      std::cout << e.resolved_config();
      return 0;
    }
    // Started by `stablelearn launch` or torchrun (RANK, WORLD_SIZE, ... set): data-parallel.
    std::unique_ptr<distributed::ProcessGroup> group;
    if (const auto env = distributed::read_dist_env()) group = distributed::ProcessGroup::connect(*env);
    const bool lead = !group || group->rank() == 0;
    ProgressReporter bar(args->quiet || !lead ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
    e.run(args->out, args->resume,
                         [&](const experiments::ClProgress& p) {
                           const auto detail = p.mean_seen_accuracy >= 0
                                                   ? fmt::format("loss {:.3f} acc(seen) {:.3f}", p.loss, p.mean_seen_accuracy)
                                                   : fmt::format("loss {:.3f}", p.loss);
                           bar.update(fmt::format("task {}/{}", p.task + 1, p.tasks), p.iteration, p.iterations, detail);
                         },
                         args->stop_after, group.get());
    if (!lead) return 0;  // rank 0 reports
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
    return 0;
  });

  struct PretrainArgs {
    std::string config, out;
    std::vector<std::string> overrides;
    bool quiet = false;
  };
  auto pargs = std::make_shared<PretrainArgs>();
  auto* pre = cl->add_subcommand("pretrain", "Train the [model] on the data the [stream] leaves out and write a backbone file");
  pre->add_option("CONFIG", pargs->config, "the cl run TOML file ([stream] [model] [pretrain] [backbone])")
      ->required()
      ->check(CLI::ExistingFile);
  pre->add_option("--out", pargs->out, "Backbone file to write (default: backbone.file of CONFIG); a report goes to FILE.json");
  pre->add_option("--set", pargs->overrides, "Override a configuration value: section.key=value (repeatable)");
  pre->add_flag("--quiet", pargs->quiet, "No progress on stderr");
  pre->footer(
      "Pre-training data: split streams with stream.tasks <= 4, the classes no task uses; permuted and\n"
      "rotated streams, the training images after the first stream.train_per_task, untransformed.\n"
      "cl run then starts from the file with [backbone] file = FILE (freeze, adapter = \"lora\" | \"bottleneck\", rank).\n"
      "Example: stablelearn cl pretrain configs/cl_pretrained/split3_fmnist_lora.toml &&\n"
      "         stablelearn cl run configs/cl_pretrained/split3_fmnist_lora.toml --out runs/split3_lora");
  reg.add(pre, [pargs]() {
    auto cfg = Config::from_file(pargs->config);
    for (const auto& o : pargs->overrides) cfg.set(o);
    experiments::ClExperiment e(cfg);
    ProgressReporter bar(pargs->quiet ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
    const auto r = e.pretrain(pargs->out, [&](std::int64_t step, std::int64_t steps, double loss) {
      bar.update("pretrain", step, steps, fmt::format("loss {:.3f}", loss));
    });
    std::cout << fmt::format("pre-trained on {} images: {}\ntrain accuracy {:.4f}", r.train_samples, r.source, r.train_accuracy);
    if (r.test_accuracy >= 0) std::cout << fmt::format("  held-out test accuracy {:.4f} ({} images)", r.test_accuracy, r.test_samples);
    std::cout << fmt::format("  ({:.1f} s)\nbackbone: {}\n", r.seconds, r.file.string());
    return 0;
  });

  struct SummarizeArgs {
    std::vector<std::string> runs;
    std::string format = "markdown";
  };
  auto sargs = std::make_shared<SummarizeArgs>();
  auto* sum = cl->add_subcommand("summarize", "Mean ± std of ACC, BWT, FWT, forgetting, min-ACC and WC-ACC over runs");
  sum->add_option("RUNS", sargs->runs, "Run directories (each with summary.json)")->required();
  sum->add_option("--format", sargs->format, "markdown | csv")->check(CLI::IsMember({"markdown", "csv"}))->capture_default_str();
  sum->footer(
      "Runs are grouped by directory name without a trailing _s<N> or _seed<N> (the seed), so\n"
      "runs/split_er_s0 runs/split_er_s1 runs/split_er_s2 form one row 'split_er'. Std is the sample std (n - 1).\n"
      "Unfinished runs (fewer completed tasks than the stream has) are skipped with a warning.\n"
      "Example: stablelearn cl summarize runs/split_*");
  reg.add(sum, [sargs]() {
    struct Group {
      std::vector<std::vector<double>> cols;
      int n = 0;
    };
    const std::vector<std::string> names{"ACC", "BWT", "FWT", "forgetting_max", "min_acc", "wc_acc", "seconds_per_task"};
    std::map<std::string, Group> groups;
    std::vector<std::string> order;
    const std::regex seed_suffix("_(s|seed)[0-9]+$");
    for (const auto& r : sargs->runs) {
      const auto path = std::filesystem::path(r) / "summary.json";
      SL_CHECK(std::filesystem::exists(path), IoError, path.string(), ": missing (not a finished cl run directory?)");
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_file_text(path));
      } catch (const nlohmann::json::exception& e) {
        SL_THROW(DataError, path.string(), ": not valid JSON (", e.what(), ")");
      }
      if (j.value("completed_tasks", 0) < j.value("tasks", 0)) {
        std::cerr << "stablelearn: skipping " << r << ": unfinished run (" << j.value("completed_tasks", 0) << " of "
                  << j.value("tasks", 0) << " tasks)\n";
        continue;
      }
      auto dir = std::filesystem::path(r).lexically_normal();
      if (dir.filename().empty()) dir = dir.parent_path();
      const auto key = std::regex_replace(dir.filename().string(), seed_suffix, "");
      if (!groups.count(key)) order.push_back(key);
      auto& g = groups[key];
      g.cols.resize(names.size());
      const auto& m = j.at("metrics");
      const auto secs = j.at("train_seconds").get<std::vector<double>>();
      double mean_secs = 0;
      for (double x : secs) mean_secs += x / static_cast<double>(secs.size());
      const auto cont = j.contains("continual") ? j.at("continual") : nlohmann::json::object();
      auto val = [](const nlohmann::json& o, const char* k) {
        return o.contains(k) && o.at(k).is_number() ? o.at(k).get<double>() : std::nan("");
      };
      const std::vector<double> row{val(m, "ACC"), val(m, "BWT"), val(m, "FWT"), val(m, "forgetting_max"),
                                    val(cont, "min_acc"), val(cont, "wc_acc"), mean_secs};
      for (std::size_t c = 0; c < names.size(); ++c) g.cols[c].push_back(row[c]);
      ++g.n;
    }
    auto stat = [](const std::vector<double>& v, bool pct) {
      std::vector<double> x;
      for (double a : v)
        if (!std::isnan(a)) x.push_back(pct ? 100 * a : a);
      if (x.empty()) return std::string("n/a");
      double mean = 0;
      for (double a : x) mean += a / static_cast<double>(x.size());
      double var = 0;
      for (double a : x) var += (a - mean) * (a - mean);
      const double sd = x.size() > 1 ? std::sqrt(var / static_cast<double>(x.size() - 1)) : 0.0;
      return fmt::format("{:.1f} ± {:.1f}", mean, sd);
    };
    const bool md = sargs->format == "markdown";
    if (md) {
      std::cout << "| run | n | ACC % | BWT % | FWT % | forgetting (max) % | min-ACC % | WC-ACC % | s/task |\n";
      std::cout << "|---|---|---|---|---|---|---|---|---|\n";
    } else {
      std::cout << "run,n,ACC,BWT,FWT,forgetting_max,min_acc,wc_acc,seconds_per_task\n";
    }
    for (const auto& k : order) {
      const auto& g = groups[k];
      std::cout << (md ? "| " : "") << k << (md ? " | " : ",") << g.n;
      for (std::size_t c = 0; c < names.size(); ++c) std::cout << (md ? " | " : ",") << stat(g.cols[c], c + 1 < names.size());
      std::cout << (md ? " |\n" : "\n");
    }
    return 0;
  });
}

}  // namespace stablelearn::cli
