// stablelearn demo: what the project can do today, in well under a minute. Until the trainer lands
// it shows the runtime, every shipped LfD data set, and the trajectory metrics between the
// demonstrations of each task (how far apart the human demonstrations already are: the scale a
// learned skill's errors should be read against).
#include <algorithm>
#include <chrono>
#include <iostream>

#include <fmt/format.h>
#include <torch/types.h>

#include "commands.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/error.h"
#include "stablelearn/data/lfd_datasets.h"
#include "stablelearn/lfd/trajectory_metrics.h"

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

}  // namespace

void register_demo_command(CLI::App& app, CommandRegistry& reg) {
  auto root = std::make_shared<std::string>();
  auto* demo = app.add_subcommand(
      "demo", "The main demo: runtime, the shipped LfD data sets, and the trajectory metrics between their demonstrations");
  demo->add_option("--data-root", *root, "Data root (default: $STABLELEARN_DATA or the project's data/ folder)");
  demo->footer("Example: stablelearn demo --threads 2");
  reg.add(demo, [root]() {
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path data_root = root->empty() ? data::default_data_root() : fs::path(*root);
    SL_CHECK(fs::is_directory(data_root), IoError, data_root.string(),
             ": data root not found (pass --data-root or set STABLELEARN_DATA)");
    std::cout << "== stablelearn demo ==\n" << runtime_info_text(runtime_info()) << "\n";
    const auto sets = dataset_summary(data_root);
    SL_CHECK(!sets.empty(), DataError, data_root.string(), ": no LfD data sets found (expected LASA/, robot_hello_world/, robottasks/)");
    print_dataset_table(data_root, sets);

    std::cout << "\nHow far apart are the human demonstrations? Demonstration 0 vs the others of each task\n"
                 "(raw units; DTW = summed distance along the best alignment, Fréchet = leash length,\n"
                 "swept = area between the curves in the first two coordinates; quat = mean half-angle, rad)\n";
    for (const auto& s : sets) {
      const auto& spec = data::lfd_dataset_spec(s["name"].get<std::string>());
      data::LfdDataset ds(spec.kind, data_root);
      std::cout << fmt::format("\n{} ({} tasks)\n  {:<24} {:>12} {:>12} {:>12} {:>12}{}\n", spec.name, ds.num_tasks(), "task",
                               "DTW mean", "DTW median", "Frechet mean", "swept mean", spec.has_orientation ? "    quat med" : "");
      std::vector<double> all_dtw;
      for (std::int64_t i = 0; i < ds.num_tasks(); ++i) {
        const auto task = ds.task(i);
        const auto d = demo_spread(task, spec);
        all_dtw.insert(all_dtw.end(), d.dtw.per_demo.begin(), d.dtw.per_demo.end());
        std::cout << fmt::format("  {:<24} {:>12.2f} {:>12.2f} {:>12.4f} {:>12.2f}{}\n", task.name, d.dtw.mean, d.dtw.median,
                                 d.frechet.mean, d.swept.mean, d.has_quat ? fmt::format(" {:>12.4f}", d.quat.median) : "");
      }
      std::cout << fmt::format("  {:<24} {:>12} {:>12.2f}\n", "all tasks (median DTW)", "", lfd::summarize(all_dtw).median);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("\ndemo finished in {:.1f} s\n", secs);
    return 0;
  });
}

void register_list_command(CLI::App& app, CommandRegistry& reg) {
  auto what = std::make_shared<std::string>();
  auto* list = app.add_subcommand("list", "List what exists: datasets, metrics");
  list->add_option("WHAT", *what, "datasets | metrics")->required()->check(CLI::IsMember({"datasets", "metrics"}));
  list->footer("Example: stablelearn list datasets");
  reg.add(list, [what]() {
    if (*what == "datasets") {
      for (const auto& s : data::lfd_dataset_specs())
        std::cout << fmt::format("{:<12} dim {:>2}  state {:>2}  sequence {}\n", s.name, s.dim, s.state_dim, s.default_sequence);
    } else {
      for (auto m : {lfd::TrajectoryMetric::Dtw, lfd::TrajectoryMetric::Frechet, lfd::TrajectoryMetric::Swept,
                     lfd::TrajectoryMetric::Quat})
        std::cout << lfd::metric_name(m) << "\n";
    }
    return 0;
  });
}

}  // namespace stablelearn::cli
