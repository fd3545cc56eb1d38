// The learned skills of an `lfd train` run as `stablelearn report` page sections (report/html_report.h):
// per task, the demonstrations, rollouts from their starts and from random starts, the learned vector
// field as streamlines and, for sNODE skills, level sets of the learned Lyapunov function V, on the
// plane of the first two position coordinates; and a table of where the rollouts end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/report/html_report.h"

namespace at {
class Tensor;
}  // namespace at

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
  /// Stability section: tasks without a saved `lfd stability` output (stability_J.json, ...) are
  /// checked with lfd::check_stability (the command's code) from the demonstrations' starts and this
  /// many random ones, over stability_horizon_factor x T data steps, for as many tasks (evenly
  /// spread) as fit stability_budget solver steps in all (0: none); the rest are named. The default
  /// fits one LASA task (T = 1000): about 1-2 s of CPU (discrete map / certified Euler).
  std::int64_t stability_random_starts = 4;
  double stability_horizon_factor = 1.0;
  std::int64_t stability_budget = 1000;
  /// Threads computing the skill views, one task each at a time (each with the caller's intra-op
  /// thread count); 0 = the machine's cores. The page is the same for any number.
  std::int64_t workers = 0;
};

/// The plane a skill is drawn on: plane coordinates of a raw position p are basisᵀ (p − origin).
struct PlotPlane {
  std::vector<double> origin;  ///< [P] raw units
  std::vector<double> basis;   ///< [P, 2] row-major, orthonormal columns
  double explained = 1;  ///< share of the points' variance in the plane
};
/// 2 coordinates: the identity (origin 0: the data's own axes). More: the top-2 principal
/// directions of `points` [N, P] (eigenvectors of their sample covariance, each column's
/// largest-magnitude entry positive) through `origin` [P], with their share of the total variance.
PlotPlane principal_plane(const at::Tensor& points, const at::Tensor& origin);

/// Sections for every completed task of `run` (loaded from `run_dir`). Tasks whose data has fewer than
/// two position coordinates get the rollout table only. Data of more than two position coordinates
/// is drawn on the demonstrations' principal plane through the goal (principal_plane): demonstrations
/// and rollouts projected onto it, the vector field (its position part projected) and V evaluated at
/// the plane's points embedded in the state space (other state coordinates, e.g. velocities, at 0).
/// A start "converges" when its final position is within 2 % of the demonstrations' largest
/// positional extent of the goal (the `lfd stability` default tolerance) after the horizon.
nlohmann::json skill_report_sections(const LfdRun& run, const std::filesystem::path& run_dir,
                                     const report::ReportOptions& report_options, const SkillViewOptions& options = {});

/// The stability section (report::stability_section) of `run`: saved `lfd stability` outputs where
/// the run folder has them, else lfd::check_stability with the reduced options above. Null JSON when
/// there is no task.
nlohmann::json stability_report_section(const LfdRun& run, const std::filesystem::path& run_dir,
                                        const report::ReportOptions& report_options, const SkillViewOptions& options = {});

}  // namespace stablelearn::lfd
