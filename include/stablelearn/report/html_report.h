// `stablelearn report`: one self-contained interactive HTML page per run directory, or a side-by-side
// comparison of several runs (torch-free part).
//
// A page is built in two steps:
//  1. readers turn a run's files into a *page model*: JSON sections, each a list of charts in a small
//     vocabulary the page template draws with the charting library (ECharts, inlined):
//       {"type": "lines", "title", "x_label", "y_label", "log_y", "log_x" (optional), "series": [{"name",
//        "x", "y", "lo", "hi" (optional band), "style" (optional: "dashed", or "points" for a
//        scatter)}], "marks_x": [task boundaries], "hlines": [{"name", "y"}], "vlines": [{"name", "x"}]}
//       {"type": "heatmap", "title", "x_label", "y_label", "x_labels", "y_labels", "cells": [[x, y, v]]}
//       {"type": "plane", "title", "x_label", "y_label", "layers": [{"name", "kind", "xy": [x0, y0, x1,
//        y1, ..., null, null, ...]}]}   (polylines separated by null pairs)
//       {"type": "bars", "title", "x_label", "y_label", "y_max" (optional), "categories", "series": [{"name", "y", "err"}]}
//       {"type": "table", "title", "columns", "rows"}     {"type": "text", "title", "text"}
//       {"type": "svg", "title", "svg"}                   (a static figure the run wrote)
//     Every chart names the run file its data came from ("source", relative to the page); "wide": true
//     gives a chart the page's full width.
//  2. render_html inlines the page template (report/web/template.html, compiled in), the charting
//     library's minified script (located at report time in report/web/node_modules, installed by
//     scripts/setup.sh with `npm ci`) and the page model into one file.
//
// Long curves are decimated for the page (min/max per bucket, so spikes stay visible); the run's
// files keep every point.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stablelearn::report {

/// What a path given to `report` holds.
enum class RunKind { lfd, cl, repro, diagnose };
const char* run_kind_name(RunKind kind);

/// The kind of `path`: a folder with checkpoint.json of format stablelearn-lfd-checkpoint /
/// stablelearn-cl-checkpoint (or, before the first checkpoint, config.toml with [data]+[train] /
/// [stream]), a folder with results.json (repro), or a file written by a `diagnose` command (CSV
/// with --out, or its JSON output saved to a file). IoError for a missing path; UsageError naming
/// what was looked for when the path is none of these.
RunKind detect_run_kind(const std::filesystem::path& path);

/// How pages are built.
struct ReportOptions {
  std::size_t max_points = 1500;  ///< per curve on the page (decimated beyond; files keep all)
  std::filesystem::path page_dir; ///< folder of the output page: sources are linked relative to it
};

/// Min/max decimation of the curve (x[i], y[i]) to at most about `max_points` points: the first and
/// last point are kept, and each of max_points/2 buckets contributes its minimum and maximum (in x
/// order). Curves that already fit are returned unchanged.
void decimate(std::vector<double>& x, std::vector<double>& y, std::size_t max_points);

/// Four significant digits ("%.4g"), for tables.
std::string format_number(double v);

/// Rounds to `digits` significant digits (page size: the JSON writer prints the shortest form).
double round_sig(double v, int digits = 5);

/// Marching squares on a row-major grid values[iy * nx + ix] at points (xs[ix], ys[iy]): the level
/// set {v = level} as polyline segments in the "plane" layer format (x0, y0, x1, y1, null, null, ...).
nlohmann::json contour_segments(const std::vector<double>& values, const std::vector<double>& xs,
                                const std::vector<double>& ys, double level);

/// The header every page shows for a run: name, path, kind, seed, resolved config text, runtime
/// (versions, BLAS, threads), the files present, and "missing" (what an interrupted run lacks).
nlohmann::json run_header(const std::filesystem::path& path, RunKind kind, const ReportOptions& options);

/// Page model sections of one run (torch-free readers; the LfD views of the learned skill — rollouts,
/// vector field, Lyapunov level sets — are added by lfd::skill_report_sections).
nlohmann::json lfd_run_sections(const std::filesystem::path& dir, const ReportOptions& options);
nlohmann::json cl_run_sections(const std::filesystem::path& dir, const ReportOptions& options);
nlohmann::json repro_run_sections(const std::filesystem::path& dir, const ReportOptions& options);
nlohmann::json diagnose_sections(const std::filesystem::path& file, const ReportOptions& options);

/// The full stability check of an LfD skill (`stablelearn lfd stability RUN --task J`, whose JSON
/// output `report` reads or computes) for the page.
struct StabilityResult {
  std::int64_t task = 0;
  nlohmann::json report;  ///< the object `lfd stability` prints (lfd::stability_json)
  std::string source;     ///< the saved file (relative to the page), or how the report computed it
};

/// Saved `lfd stability` outputs of `task` in an LfD run folder, in this order where present:
/// stability_J.json (scripts/lasa26_discrete.sh), stability_taskJ.json and stability_euler_taskJ.json
/// (scripts/lfd_short_results.sh).
std::vector<std::filesystem::path> saved_stability_files(const std::filesystem::path& dir, std::int64_t task);

/// Shares of radially pulled (projected) solver steps in an `lfd stability` report (NaN where the
/// method has none): over all steps of the long rollouts (discrete: projected_steps / steps_applied;
/// certified: projected_substeps / substeps), over the steps outside the certified ball, i.e. on the
/// way to the goal (discrete only), and over the rollouts from the demonstrations' starts as executed.
struct StabilityShares {
  double all = NAN, on_the_way = NAN, from_demo_starts = NAN;
};
StabilityShares stability_shares(const nlohmann::json& stability_report);

/// The page section of per-task stability results: a table (converged k/N from final_distances and
/// the tolerance, median/max final distance, the pulled shares, accuracy as executed, arrival time,
/// orientation error), converged fraction per task, every start's final distance in tolerances, and
/// the pulled shares per task (discrete / certified). `note` (if not empty) says where the numbers
/// come from.
nlohmann::json stability_section(const std::vector<StabilityResult>& results, const std::string& note,
                                 const ReportOptions& options);

/// Comparison sections of several runs of one kind (lfd or cl), grouped by method/strategy with
/// mean ± std over the runs of a group (seeds).
nlohmann::json comparison_sections(const std::vector<std::filesystem::path>& runs, RunKind kind,
                                   const ReportOptions& options);

/// The charting library's minified script: $STABLELEARN_WEB_DIR/node_modules/echarts/dist/
/// echarts.min.js if set, else the first of `web_dirs` (report/web folders) that has it. IoError
/// naming every place looked in and telling to run scripts/setup.sh when none has.
std::filesystem::path find_charting_library(const std::vector<std::filesystem::path>& web_dirs);

/// The complete page: template + library + page model (JSON, made safe to sit in a <script>).
std::string render_html(const nlohmann::json& page, const std::filesystem::path& library_js);

/// The pinned charting library version (from report/web/package.json, compiled in).
const char* charting_library_version();

}  // namespace stablelearn::report
