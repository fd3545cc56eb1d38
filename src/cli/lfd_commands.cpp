// stablelearn lfd ...: learning-from-demonstration commands.
#include <cmath>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/progress.h"
#include "stablelearn/io/npy.h"
#include "stablelearn/core/config.h"
#include "stablelearn/lfd/figures.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/distributed/env.h"
#include "stablelearn/distributed/process_group.h"
#include "stablelearn/lfd/trajectory_metrics.h"

#include <chrono>
#include <cstdio>
#include <unistd.h>

namespace stablelearn::cli {
namespace {

/// A trajectory file: [M, T, d] (or [T, d] read as M = 1) float values as doubles.
struct TrajectoryFile {
  std::string path;
  std::vector<double> values;
  std::int64_t demos = 0, rows = 0, cols = 0;
  lfd::TrajectoryBatch batch() const { return {values.data(), demos, rows, cols}; }
};

TrajectoryFile load_trajectories(const std::string& path, const char* role) {
  const io::NdArray a = io::read_npy(path);
  SL_CHECK(a.dtype == io::DType::Float32 || a.dtype == io::DType::Float64, DataError, path, ": ", role,
           " must be a float32 or float64 array, got ", io::dtype_name(a.dtype));
  SL_CHECK(a.ndim() == 2 || a.ndim() == 3, ShapeError, path, ": ", role,
           " must have shape [M, T, d] or [T, d], got ", a.shape_str());
  TrajectoryFile f;
  f.path = path;
  f.demos = a.ndim() == 3 ? a.shape[0] : 1;
  f.rows = a.shape[a.ndim() - 2];
  f.cols = a.shape[a.ndim() - 1];
  SL_CHECK(f.demos > 0 && f.rows > 0 && f.cols > 0, ShapeError, path, ": ", role, " is empty (shape ", a.shape_str(), ")");
  f.values = a.to_double();
  for (std::size_t i = 0; i < f.values.size(); ++i) {
    if (!std::isfinite(f.values[i])) {
      const auto idx = static_cast<std::int64_t>(i);
      SL_THROW(DataError, path, ": ", role, " contains ", std::isnan(f.values[i]) ? "NaN" : "inf", " at [demo ",
               idx / (f.rows * f.cols), ", sample ", (idx / f.cols) % f.rows, ", column ", idx % f.cols, "]");
    }
  }
  return f;
}

std::vector<lfd::TrajectoryMetric> parse_metric_list(const std::string& list) {
  std::vector<lfd::TrajectoryMetric> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto m = lfd::parse_metric(item);
    for (auto seen : out) SL_CHECK(seen != m, UsageError, "--metrics: '", item, "' is listed twice");
    out.push_back(m);
  }
  SL_CHECK(!out.empty(), UsageError, "--metrics: no metric given (known: dtw, frechet, swept, quat)");
  return out;
}

/// Checks that REF and PRED fit together for `metric`; messages name both files.
void check_shapes(lfd::TrajectoryMetric metric, const TrajectoryFile& ref, const TrajectoryFile& pred) {
  SL_CHECK(ref.demos == pred.demos, ShapeError, "REF ", ref.path, " has ", ref.demos, " demonstrations but PRED ", pred.path,
           " has ", pred.demos);
  SL_CHECK(ref.cols == pred.cols, ShapeError, "REF ", ref.path, " has ", ref.cols, " columns but PRED ", pred.path, " has ",
           pred.cols);
  switch (metric) {
    case lfd::TrajectoryMetric::Swept:
      SL_CHECK(ref.cols >= 2, ShapeError, "swept: REF ", ref.path, " has ", ref.cols,
               " column(s); the swept area needs at least 2 (it uses columns 0 and 1)");
      [[fallthrough]];
    case lfd::TrajectoryMetric::Quat:
      SL_CHECK(ref.rows == pred.rows, ShapeError, lfd::metric_name(metric), ": REF ", ref.path, " has ", ref.rows,
               " samples per demonstration but PRED ", pred.path, " has ", pred.rows, " (they must match)");
      if (metric == lfd::TrajectoryMetric::Quat)
        SL_CHECK(ref.cols == 4 || ref.cols == 7, ShapeError, "quat: REF ", ref.path, " has ", ref.cols,
                 " columns; expected 4 (quaternion w,x,y,z) or 7 (position + quaternion in columns 3..6)");
      break;
    default:
      break;
  }
}

lfd::LfdConfig load_lfd_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto cfg = Config::from_file(path);
  for (const auto& o : overrides) cfg.set(o);
  return lfd::LfdConfig::from_config(cfg);
}

/// lfd metrics: trajectory errors between two arrays.
void add_metrics_command(CLI::App* lfd, CommandRegistry& reg) {
  struct MetricsArgs {
    std::string ref, pred, metrics = "dtw,frechet,swept";
  };
  auto args = std::make_shared<MetricsArgs>();
  auto* metrics = lfd->add_subcommand(
      "metrics",
      "Trajectory errors between reference demonstrations and predictions (spec §4): DTW, discrete "
      "Fréchet, swept area (columns 0-1), quaternion error; one JSON object on stdout");
  metrics->add_option("--ref", args->ref, ".npy of shape [M,T,d] or [T,d] (float32/float64): the demonstrations")->required();
  metrics->add_option("--pred", args->pred, ".npy of the same M and d: the predictions (T may differ for dtw/frechet)")->required();
  metrics->add_option("--metrics", args->metrics, "Comma-separated subset of dtw,frechet,swept,quat")->capture_default_str();
  metrics->footer(
      "Output: {\"dtw\": {\"per_demo\": [...], \"mean\": x, \"median\": y}, ...} with full double precision.\n"
      "quat compares columns 3..6 of 7-column arrays (position + w,x,y,z) or all of a 4-column array.\n"
      "Example: stablelearn lfd metrics --ref demos.npy --pred rollout.npy --metrics dtw,frechet");
  reg.add(metrics, [args]() {
    const auto which = parse_metric_list(args->metrics);
    const auto ref = load_trajectories(args->ref, "REF");
    const auto pred = load_trajectories(args->pred, "PRED");
    for (auto m : which) check_shapes(m, ref, pred);
    nlohmann::json out = nlohmann::json::object();
    for (auto m : which) {
      const auto s = lfd::compute_metric(m, ref.batch(), pred.batch());
      out[lfd::metric_name(m)] = {{"per_demo", s.per_demo}, {"mean", s.mean}, {"median", s.median}};
    }
    std::cout << out.dump() << "\n";
    return 0;
  });
}

/// lfd train: a continual-learning run from a configuration.
void add_train_command(CLI::App* lfd, CommandRegistry& reg) {
  struct TrainArgs {
    std::string config, out;
    std::vector<std::string> overrides;
    bool resume = false, dry_run = false, quiet = false;
    std::int64_t stop_after = -1;
  };
  auto targs = std::make_shared<TrainArgs>();
  auto* train = lfd->add_subcommand(
      "train", "Learn the tasks of a sequence one after another with a hypernetwork-generated (stable) neural ODE");
  train->add_option("CONFIG", targs->config, "TOML configuration (see configs/)")->required();
  train->add_option("--out", targs->out, "Run directory to create (or to continue with --resume)");
  train->add_option("--set", targs->overrides, "Override a configuration value: section.key=value (repeatable)");
  train->add_flag("--resume", targs->resume, "Continue a stopped run from its last completed task");
  train->add_option("--stop-after", targs->stop_after, "Stop once this many tasks are complete (continue later with --resume)")
      ->check(CLI::PositiveNumber);
  train->add_flag("--dry-run", targs->dry_run,
                  "Validate the configuration and print it resolved, without training (keys: stablelearn list lfd-config)");
  train->add_flag("--quiet", targs->quiet, "No progress on stderr");
  train->footer(
      "Writes RUN/config.toml (resolved), metrics.jsonl, eval_results.json, summary.json, TensorBoard event files\n"
      "(train/, eval/, time/, diag/ tags) and a checkpoint after every task; `stablelearn report RUN` draws them.\n"
      "Example: stablelearn lfd train configs/demo.toml --out runs/demo --set train.iterations=200");
  reg.add(train, [targs]() {
    if (!targs->dry_run && targs->out.empty()) throw CLI::RequiredError("--out");
    auto cfg = load_lfd_config(targs->config, targs->overrides);
    if (targs->dry_run) {
      std::cout << cfg.to_config().to_string();
      return 0;
    }
    lfd::LfdTrainer trainer(cfg, targs->out);
    // Started by `stablelearn launch` or torchrun (RANK, WORLD_SIZE, ... set): data-parallel.
    std::unique_ptr<distributed::ProcessGroup> group;
    if (const auto env = distributed::read_dist_env()) group = distributed::ProcessGroup::connect(*env);
    const bool lead = !group || group->rank() == 0;
    ProgressReporter bar(targs->quiet || !lead ? ProgressReporter::Mode::Quiet : ProgressReporter::Mode::Auto);
    trainer.run(
        targs->resume,
        [&](const lfd::TrainProgress& p) {
          bar.update(fmt::format("task {}/{}", p.task + 1, p.tasks), p.iteration, p.iterations,
                     fmt::format("loss {:.3e} reg {:.3e}", p.loss, p.reg));
        },
        targs->stop_after, group.get());
    if (!lead) return 0;  // rank 0 writes the figures and reports
    if (cfg.evaluate) lfd::write_run_figures(lfd::LfdRun(targs->out), targs->out, std::filesystem::path(targs->out) / "figures");
    if (!targs->quiet) std::cerr << "run written to " << targs->out << "\n";
    return 0;
  });
}

/// lfd stability: long rollouts of a learned skill from many starts.
void add_stability_command(CLI::App* lfd, CommandRegistry& reg) {
  struct StabilityArgs {
    std::string run;
    std::int64_t task = 0;
    lfd::StabilityOptions opt;
  };
  auto sargs = std::make_shared<StabilityArgs>();
  auto* stab = lfd->add_subcommand(
      "stability", "Roll a learned skill out from many starts for a long horizon; does it reach its goal? With the same solver, "
      "its accuracy as executed: DTW from the demonstrations' starts, and the share of those steps radially pulled (JSON)");
  stab->add_option("RUN", sargs->run, "Run directory of 'lfd train'")->required();
  stab->add_option("--task", sargs->task, "Task index (0-based) of the skill")->required();
  stab->add_option("--starts", sargs->opt.starts, "Starts: the demonstrations' first states, then random ones in a box 1.5x their extent")
      ->capture_default_str();
  stab->add_option("--horizon-factor", sargs->opt.horizon_factor,
                   "Rollout length in multiples of the demonstration length T; 0 = automatic: for autonomous sNODE skills "
                   "the time after which V <= V(x0) exp(-alpha t) guarantees half the tolerance (at least 2), else 2")
      ->capture_default_str();
  stab->add_option("--tolerance", sargs->opt.tolerance, "Goal distance (raw units) that counts as converged; 0 = 2 % of the demonstrations' extent")
      ->capture_default_str();
  stab->add_option("--seed", sargs->opt.seed, "Seed of the random starts")->capture_default_str();
  stab->add_option("--substeps", sargs->opt.substeps, "Solver steps per data time step (1 = the training grid)")
      ->capture_default_str();
  stab->add_option("--method", sargs->opt.method,
                   "Solver: auto (discrete for skills trained with model.discrete_step, certified for other autonomous "
                   "sNODE skills, else euler), discrete (the discrete-time map: Euler step pulled radially towards the "
                   "goal where V would not drop by exp(-kappa alpha h); autonomous sNODE only), certified (Euler "
                   "sub-steps each checked to decrease V by exp(-kappa alpha s); autonomous sNODE only), euler (as "
                   "trained), rk4, dopri5")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "discrete", "certified", "euler", "rk4", "dopri5"}));
  stab->add_option("--kappa", sargs->opt.kappa,
                   "certified: fraction of the rate alpha each accepted sub-step must achieve; discrete: the same for "
                   "skills trained without model.discrete_step (trained ones use model.discrete_kappa)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 0.999999));
  stab->add_flag("--float64", sargs->opt.float64, "Integrate in float64 (the learned weights cast up) instead of float32");
  stab->footer("Example: stablelearn lfd stability runs/demo --task 0 --starts 100 --horizon-factor 3");
  reg.add(stab, [sargs]() {
    const lfd::LfdRun run(sargs->run);
    const auto r = lfd::check_stability(run, sargs->task, sargs->opt);
    const auto out = lfd::stability_json(run, sargs->task, r, sargs->opt);
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

/// lfd export, lfd figures, lfd info.
void add_export_figures_info_commands(CLI::App* lfd, CommandRegistry& reg) {
  struct ExportArgs {
    std::string run, out;
    std::int64_t task = 0;
  };
  auto eargs = std::make_shared<ExportArgs>();
  auto* exp = lfd->add_subcommand(
      "export", "Write one learned skill to a self-describing file for the libtorch-free runtime (include/stablelearn/runtime/)");
  exp->add_option("RUN", eargs->run, "Run directory of 'lfd train'")->required();
  exp->add_option("--task", eargs->task, "Task index (0-based) of the skill")->required();
  exp->add_option("--out", eargs->out, "Skill file to write (e.g. angle.slskill)")->required();
  exp->footer("Example: stablelearn lfd export runs/demo --task 0 --out angle.slskill   (format: docs/skill-format.md)");
  reg.add(exp, [eargs]() {
    const lfd::LfdRun run(eargs->run);
    const auto s = lfd::export_skill(run, eargs->task, eargs->out);
    nlohmann::json out{{"skill", eargs->out}, {"task", eargs->task}, {"name", s.name}, {"kind", s.snode ? "snode" : "node"},
                       {"dim", s.dim}, {"bytes", std::filesystem::file_size(eargs->out)}};
    std::cout << out.dump(2) << "\n";
    return 0;
  });

  struct FigArgs {
    std::string run, out;
  };
  auto fargs = std::make_shared<FigArgs>();
  auto* figs = lfd->add_subcommand("figures", "SVG figures of a run: demonstrations, rollouts and vector field per task; errors vs task");
  figs->add_option("RUN", fargs->run, "Run directory of 'lfd train'")->required();
  figs->add_option("--out", fargs->out, "Folder for the figures (default: RUN/figures)");
  figs->footer("Example: stablelearn lfd figures runs/demo   (lfd train writes them too)");
  reg.add(figs, [fargs]() {
    const auto out = fargs->out.empty() ? std::filesystem::path(fargs->run) / "figures" : std::filesystem::path(fargs->out);
    for (const auto& p : lfd::write_run_figures(lfd::LfdRun(fargs->run), fargs->run, out)) std::cout << p.string() << "\n";
    return 0;
  });

  struct InfoArgs {
    std::string config;
    std::vector<std::string> overrides;
  };
  auto iargs = std::make_shared<InfoArgs>();
  auto* info = lfd->add_subcommand("info", "Parameter counts of a configuration, without training (JSON)");
  info->add_option("CONFIG", iargs->config, "TOML configuration")->required();
  info->add_option("--set", iargs->overrides, "Override a configuration value: section.key=value (repeatable)");
  info->footer("Example: stablelearn lfd info configs/lasa2d_chn_snode_stochastic.toml");
  reg.add(info, [iargs]() {
    const auto cfg = load_lfd_config(iargs->config, iargs->overrides);
    const auto p = lfd::count_parameters(cfg);
    nlohmann::json out{{"params", {{"target", p.target}, {"hypernetwork", p.hypernetwork}, {"theta", p.theta}}},
                       {"tasks", p.tasks}, {"dataset", cfg.dataset}, {"method", cfg.method}, {"target", cfg.target},
                       {"hnet", cfg.hnet}};
    std::cout << out.dump(2) << "\n";
    return 0;
  });
}

}  // namespace

void register_lfd_commands(CLI::App& app, CommandRegistry& reg) {
  auto* lfd = app.add_subcommand("lfd", "Continual learning from demonstration");
  lfd->require_subcommand(1);
  add_metrics_command(lfd, reg);
  add_train_command(lfd, reg);
  add_stability_command(lfd, reg);
  add_export_figures_info_commands(lfd, reg);
}

}  // namespace stablelearn::cli
