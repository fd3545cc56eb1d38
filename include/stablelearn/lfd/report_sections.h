// The learned skills of an `lfd train` run as `stablelearn report` page sections (report/html_report.h):
// per task, the demonstrations, rollouts from their starts and from random starts, the learned vector
// field as streamlines and, for sNODE skills, level sets of the learned Lyapunov function V, on the
// plane of the first two position coordinates; and a table of where the rollouts end.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "stablelearn/report/html_report.h"

namespace stablelearn::lfd {

class LfdRun;

struct SkillViewOptions {
  std::int64_t random_starts = 8;   ///< rollouts from uniform starts in the plotted area
  double horizon_factor = 1.0;      ///< rollout length in multiples of the demonstrations' T
  std::int64_t grid = 40;           ///< V is evaluated on grid x grid points of the plane
  std::int64_t seeds = 10;          ///< streamlines start on seeds x seeds points
  std::int64_t stream_steps = 24;   ///< steps per streamline (each 0.6 of a seed cell)
  std::int64_t levels = 7;          ///< level sets of V (geometric between its 5 % and 90 % quantiles)
  std::size_t max_points = 300;     ///< points per rollout polyline on the page
  std::uint64_t seed = 0;           ///< random starts
  /// Solver steps of all tasks' rollouts together. A sequence whose rollouts on the data grid would
  /// take more (26 LASA tasks: 26 000) is rolled out with the run's own solver at a multiple of the
  /// data step, the smallest that fits (a discrete-map skill stays certified at any step; an Euler
  /// skill follows its field more coarsely), so the page is written within seconds; each chart
  /// names the step. 0: always the data grid.
  std::int64_t rollout_budget = 3000;
};

/// Sections for every completed task of `run` (loaded from `run_dir`). Tasks whose data has fewer than
/// two position coordinates get the rollout table only. The vector field and V of a state of more
/// than two dimensions are drawn on the slice through the goal (the other coordinates at their
/// goal values in model coordinates), and rollouts projected onto the first two coordinates.
/// A start "converges" when its final position is within 2 % of the demonstrations' largest
/// positional extent of the goal (the `lfd stability` default tolerance) after the horizon.
nlohmann::json skill_report_sections(const LfdRun& run, const std::filesystem::path& run_dir,
                                     const report::ReportOptions& report_options, const SkillViewOptions& options = {});

}  // namespace stablelearn::lfd
