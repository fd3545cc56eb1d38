// stablelearn demo: what the project can do today, in well under a minute. Until the trainer lands
// it shows the runtime, every shipped LfD data set, and the trajectory metrics between the
// demonstrations of each task (how far apart the human demonstrations already are: the scale a
// learned skill's errors should be read against).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>
#include <torch/types.h>

#include "commands.h"
#include "stablelearn/continual/registry.h"
#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/models/classifier.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/error.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/options.h"
#include "stablelearn/lfd/skill_export.h"
#include "stablelearn/lfd/trainer.h"
#include "stablelearn/lfd/trajectory_metrics.h"
#include "stablelearn/runtime/skill.h"

namespace stablelearn::cli {
namespace {

/// Metrics of demonstration 0 against every other demonstration of a task.
struct DemoSpread {
  lfd::MetricSummary dtw, frechet, swept, quat;
  bool has_quat = false;
};

DemoSpread demo_spread(const data::LfdTask& task, const data::LfdDatasetSpec& spec) {
  const torch::Tensor pos = task.pos.contiguous();
  const auto M = pos.size(0), T = pos.size(1), D = pos.size(2);
  // Positions only (RoboTasks9: first 3 columns), as the evaluation does.
  const torch::Tensor p = pos.narrow(2, 0, spec.position_dim).contiguous();
  const double* base = p.data_ptr<double>();
  const auto P = spec.position_dim;
  std::vector<double> dtw, fr, sw, qe;
  const lfd::TrajectoryView ref{base, T, P};
  for (std::int64_t m = 1; m < M; ++m) {
    const lfd::TrajectoryView other{base + m * T * P, T, P};
    dtw.push_back(lfd::dtw_distance(ref, other));
    fr.push_back(lfd::frechet_distance(ref, other));
    sw.push_back(lfd::swept_area(ref, other));
  }
  DemoSpread s;
  s.dtw = lfd::summarize(dtw);
  s.frechet = lfd::summarize(fr);
  s.swept = lfd::summarize(sw);
  if (spec.has_orientation) {
    const torch::Tensor q = pos.narrow(2, 3, 4).contiguous();
    const double* qb = q.data_ptr<double>();
    const lfd::TrajectoryView qref{qb, T, 4};
    for (std::int64_t m = 1; m < M; ++m) qe.push_back(lfd::quaternion_error(qref, {qb + m * T * 4, T, 4}));
    s.quat = lfd::summarize(qe);
    s.has_quat = true;
  }
  (void)D;
  return s;
}

/// Part 2 of the demo: continual learning with and without the output regulariser.
void run_training_demo(const std::string& config_path, const fs::path& data_root, const fs::path& out,
                       std::int64_t stability_starts) {
  auto cfg = lfd::LfdConfig::from_config(Config::from_file(config_path));
  if (cfg.root.empty()) cfg.root = data_root.string();
  std::cout << fmt::format("\n== 2. Continual learning of {} LASA skills ({} {} -> {}, {} iterations per task) ==\n", cfg.tasks,
                           cfg.num_regs == 1 ? "stochastic," : "full,", cfg.hnet == "chn" ? "CHN" : "HN", cfg.target,
                           cfg.iterations);
  std::cout << "config: " << config_path << "; runs under " << out.string() << "/\n";
  struct Variant {
    const char* label;
    const char* dir;
    double beta;
  };
  std::vector<std::vector<std::vector<lfd::EvalCell>>> results;
  std::vector<double> seconds;
  for (const auto& v : {Variant{"hypernetwork + output regulariser", "demo-regularised", cfg.beta},
                        Variant{"fine-tuning (beta = 0)", "demo-finetune", 0.0}}) {
    auto c = cfg;
    c.beta = v.beta;
    const auto dir = out / v.dir;
    std::error_code ec;
    fs::remove_all(dir, ec);
    lfd::LfdTrainer trainer(c, dir);
    std::cout << "training: " << v.label << "\n" << std::flush;
    const auto t0 = std::chrono::steady_clock::now();
    trainer.run(false, [](const lfd::TrainProgress& p) {
      if (p.iteration == p.iterations)
        std::cerr << fmt::format("  task {}/{} done: last window loss {:.2e}, {:.1f} s\n", p.task + 1, p.tasks, p.loss, p.elapsed);
    });
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    results.push_back(trainer.evaluations());
  }
  std::cout << "\nMedian DTW error of task 0 (the first skill) after learning each task (raw LASA units):\n";
  std::cout << fmt::format("  {:<16} {:>22} {:>22}\n", "after task", "with regulariser", "fine-tuning");
  for (std::size_t i = 0; i < results[0].size(); ++i)
    std::cout << fmt::format("  {:<16} {:>22.1f} {:>22.1f}\n", i, results[0][i][0].dtw.median, results[1][i][0].dtw.median);
  std::cout << "Median DTW of every task after the last one (what is remembered):\n";
  std::cout << fmt::format("  {:<16} {:>22} {:>22}\n", "task", "with regulariser", "fine-tuning");
  for (std::size_t j = 0; j < results[0].back().size(); ++j)
    std::cout << fmt::format("  {:<16} {:>22.1f} {:>22.1f}\n", j, results[0].back()[j].dtw.median, results[1].back()[j].dtw.median);

  std::cout << "\n== 3. Stability of the learned skills (regularised run) ==\n";
  const lfd::LfdRun run(out / "demo-regularised");
  lfd::StabilityOptions so;
  so.starts = stability_starts;  // the demonstration starts, then random ones in the 1.5x box
  std::int64_t converged_skills = 0;
  double task0_tolerance = 0;  // the goal tolerance of the check (raw units), for the control loop below
  for (std::int64_t j = 0; j < run.completed_tasks(); ++j) {
    const auto r = lfd::check_stability(run, j, so);
    if (j == 0) task0_tolerance = r.tolerance;
    const auto converged = static_cast<std::int64_t>(std::llround(r.converged_fraction * static_cast<double>(r.starts)));
    converged_skills += converged == r.starts ? 1 : 0;
    std::cout << fmt::format("  task {} ({}): {}/{} starts within {:.2f} of the goal after {:.1f} s ({}); median final "
                             "distance {:.2g}; from the demonstrations' starts there in {} (the demonstrations take "
                             "{:.1f} s)",
                             j, run.task_name(j), converged, r.starts, r.tolerance, r.horizon_seconds, r.method,
                             r.median_final_distance,
                             r.demo_arrival_median >= 0 ? fmt::format("{:.1f} s", r.demo_arrival_median) : "(not within the horizon)",
                             r.demo_duration_seconds);
    if (r.method == "discrete" || r.method == "certified")
      std::cout << fmt::format("; radially pulled: {:.2f} % of {} steps ({:.2f} % of the {} on the way, outside the certified ball)",
                               100 * r.projected_fraction, r.substeps, 100 * r.projected_fraction_outside_ball,
                               r.outside_ball_substeps);
    std::cout << "\n";
  }
  std::cout << fmt::format("  {} of {} skills converge from every start{}\n", converged_skills, run.completed_tasks(),
                           !run.config().discrete_step ? ""
                           : run.config().trains_through_map()
                               ? " (executed as trained: the discrete-time map at the data's period, docs/lfd.md §7)"
                               : " (executed as the discrete-time map at the data's period; trained with its Euler steps, "
                                 "docs/lfd.md §7.3)");

  std::cout << "\n== 4. A skill in a control loop (libtorch-free runtime) ==\n";
  const auto skill_path = out / "demo-regularised" / "task0.slskill";
  lfd::export_skill(run, 0, skill_path);
  const auto skill = runtime::Skill::load(skill_path.string());
  runtime::Workspace ws(skill);
  const auto d = run.task(0);
  std::vector<double> x = {d.raw[0][0][0].item<double>(), d.raw[0][0][1].item<double>()}, v(2);
  const auto& hd = skill.header();
  const auto raw_goal = [&hd](std::size_t i) { return hd.mean[i] + hd.std[i] * hd.goal[i]; };  // x_model = 0
  // Run the control loop until the skill is within the stability check's tolerance of the goal,
  // at most 20000 periods.
  const double tolerance = task0_tolerance;
  const auto distance = [&] { return std::hypot(x[0] - raw_goal(0), x[1] - raw_goal(1)); };
  const int max_steps = 20000;
  int steps = 0, pulled = 0;
  const bool discrete = skill.header().discrete_step;
  const auto c0 = std::chrono::steady_clock::now();
  for (; steps < max_steps && distance() > tolerance; ++steps) {
    if (discrete)
      pulled += skill.step_discrete(x.data(), ws) ? 1 : 0;
    else
      skill.step_euler(x.data(), skill.header().t0 + steps * skill.header().dt, skill.header().dt, ws);
  }
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count() /
                    std::max(steps, 1);
  std::cout << fmt::format("  exported {} ({} bytes); from demonstration 0's start, {} {} steps of {:.4f} s ({:.1f} s of "
                           "control time): {:.2f} us per step{};\n  final position ({:.2f}, {:.2f}), goal ({:.2f}, {:.2f}): "
                           "{}\n",
                           skill_path.string(), fs::file_size(skill_path), steps, discrete ? "discrete-map" : "Euler",
                           skill.header().dt, steps * skill.header().dt, us,
                           discrete ? fmt::format(", {} radially pulled", pulled) : std::string(), x[0], x[1],
                           raw_goal(0), raw_goal(1),
                           distance() <= tolerance ? fmt::format("within {:.2f} of the goal", tolerance)
                                                   : fmt::format("still {:.2f} from the goal (tolerance {:.2f})", distance(), tolerance));
}

}  // namespace

void register_demo_command(CLI::App& app, CommandRegistry& reg) {
  struct DemoArgs {
    std::string root, config, out = "runs";
    bool details = false, no_train = false;
    std::int64_t starts = 50;
  };
  auto a = std::make_shared<DemoArgs>();
  a->config = (fs::path(SL_SOURCE_DIR) / "configs/demo_stable.toml").string();
  auto* demo = app.add_subcommand(
      "demo",
      "The main demo: runtime, the shipped LfD data sets and the spread of their demonstrations, then continual "
      "learning of 4 LASA skills with CHN->sNODE (output regulariser) against fine-tuning, trained with Euler steps and "
      "executed as the discrete-time map that converges from every state (configs/demo_stable.toml), their stability "
      "from --starts starts, and one exported skill run by the libtorch-free runtime");
  demo->add_option("--data-root", a->root, "Data root (default: $STABLELEARN_DATA or the project's data/ folder)");
  demo->add_option("--config", a->config, "Training configuration of the continual-learning part")->capture_default_str();
  demo->add_option("--out", a->out, "Folder for the demo's runs (demo-regularised/, demo-finetune/ are replaced)")
      ->capture_default_str();
  demo->add_option("--starts", a->starts, "Starts per skill in the stability check (demonstration starts first, then random "
                                          "ones in the 1.5x box)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
  demo->add_flag("--details", a->details, "Print the demonstration spread of every task, not only per data set");
  demo->add_flag("--no-train", a->no_train, "Skip the training part (data and metrics only, a few seconds)");
  demo->footer("Example: stablelearn demo --threads 2   (about a minute on 2 cores: two 4-task trainings, then 200 stability rollouts)");
  reg.add(demo, [a]() {
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path data_root = a->root.empty() ? data::default_data_root() : fs::path(a->root);
    SL_CHECK(fs::is_directory(data_root), IoError, data_root.string(),
             ": data root not found (pass --data-root or set STABLELEARN_DATA)");
    std::cout << "== stablelearn demo ==\n" << runtime_info_text(runtime_info()) << "\n";
    const auto sets = dataset_summary(data_root);
    SL_CHECK(!sets.empty(), DataError, data_root.string(), ": no LfD data sets found (expected LASA/, robot_hello_world/, robottasks/)");
    print_dataset_table(data_root, sets);

    std::cout << "\n== 1. How far apart are the human demonstrations? ==\nDemonstration 0 vs the others of each task, "
                 "raw units (DTW = summed distance along the best alignment,\nFrechet = leash length, swept = area between "
                 "the curves in the first two coordinates; quat = mean half-angle, rad)\n";
    std::cout << fmt::format("  {:<12} {:>6} {:>12} {:>14} {:>12}\n", "data set", "tasks", "DTW median", "Frechet median",
                             "swept median");
    for (const auto& s : sets) {
      const auto& spec = data::lfd_dataset_spec(s["name"].get<std::string>());
      data::LfdDataset ds(spec.kind, data_root);
      std::vector<double> dtw, fr, sw;
      for (std::int64_t i = 0; i < ds.num_tasks(); ++i) {
        const auto task = ds.task(i);
        const auto d = demo_spread(task, spec);
        dtw.insert(dtw.end(), d.dtw.per_demo.begin(), d.dtw.per_demo.end());
        fr.insert(fr.end(), d.frechet.per_demo.begin(), d.frechet.per_demo.end());
        sw.insert(sw.end(), d.swept.per_demo.begin(), d.swept.per_demo.end());
        if (a->details)
          std::cout << fmt::format("    {:<22} {:>12.2f} {:>14.4f} {:>12.2f}{}\n", task.name, d.dtw.median, d.frechet.median,
                                   d.swept.median, d.has_quat ? fmt::format("  quat {:.4f}", d.quat.median) : "");
      }
      std::cout << fmt::format("  {:<12} {:>6} {:>12.2f} {:>14.4f} {:>12.2f}\n", spec.name, ds.num_tasks(),
                               lfd::summarize(dtw).median, lfd::summarize(fr).median, lfd::summarize(sw).median);
    }
    if (!a->no_train) run_training_demo(a->config, data_root, fs::path(a->out), a->starts);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("\ndemo finished in {:.1f} s\n", secs);
    return 0;
  });
}

void register_list_command(CLI::App& app, CommandRegistry& reg) {
  auto what = std::make_shared<std::string>();
  auto* list = app.add_subcommand(
      "list", "List what exists: datasets, metrics, strategies (with their keys), streams, models, and every key of the "
              "lfd train and cl run configurations with its default, meaning and rules");
  list->add_option("WHAT", *what, "datasets | metrics | strategies | streams | models | lfd-config | cl-config")
      ->required()
      ->check(CLI::IsMember({"datasets", "metrics", "strategies", "streams", "models", "lfd-config", "cl-config"}));
  list->footer("Example: stablelearn list strategies\n         stablelearn list lfd-config");
  reg.add(list, [what]() {
    if (*what == "datasets") {
      for (const auto& s : data::lfd_dataset_specs())
        std::cout << fmt::format("{:<12} dim {:>2}  state {:>2}  sequence {}\n", s.name, s.dim, s.state_dim, s.default_sequence);
    } else if (*what == "metrics") {
      for (auto m : {lfd::TrajectoryMetric::Dtw, lfd::TrajectoryMetric::Frechet, lfd::TrajectoryMetric::Swept,
                     lfd::TrajectoryMetric::Quat})
        std::cout << lfd::metric_name(m) << "\n";
    } else if (*what == "strategies") {
      for (const auto& s : continual::strategies()) {
        std::cout << fmt::format("{:<12} {}\n", s.name, s.summary);
        std::cout << options::format_fields(s.options, false, "    ");
      }
    } else if (*what == "streams") {
      for (const auto& [name, text] : experiments::stream_kinds()) std::cout << fmt::format("{:<13} {}\n", name, text);
    } else if (*what == "lfd-config") {
      std::cout << "# lfd train CONFIG.toml: every key, its default, meaning and rules\n"
                << options::format_fields(options::describe<lfd::LfdConfig>(), true, "");
    } else if (*what == "cl-config") {
      std::cout << "# cl run CONFIG.toml: every key but [strategy] (stablelearn list strategies)\n"
                << options::format_fields(options::describe<experiments::ClConfig>(), true, "");
    } else {
      for (const auto& [name, text] : models::classifier_kinds()) std::cout << fmt::format("{:<6} {}\n", name, text);
    }
    return 0;
  });
}

}  // namespace stablelearn::cli
