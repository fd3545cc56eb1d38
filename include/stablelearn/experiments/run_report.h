// `stablelearn report RUN [RUN ...]`: one self-contained HTML page for run directories of any kind
// (lfd train, cl run, repro, diagnose --out files), or a comparison of several runs of one kind.
// Torch-free readers and the page renderer live in report/html_report.h; this file adds the views
// that need a loaded model (LfD skills: lfd/report_sections.h) and checks what was given.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stablelearn/lfd/report_sections.h"
#include "stablelearn/report/html_report.h"

namespace stablelearn::experiments {

struct RunReportOptions {
  report::ReportOptions page;      ///< decimation; page_dir for relative links
  /// Skill views of LfD runs (rollouts, vector field, V): computed from the saved model. On by
  /// default for a single run; comparisons show them only with this set to true explicitly.
  bool skills = true;
  bool skills_in_comparisons = false;
  lfd::SkillViewOptions skill;
  std::string title;               ///< page title (default: from the runs)
};

/// The page model of `runs` (see report/html_report.h). UsageError when `runs` is empty or mixes
/// kinds (naming each path's kind); IoError / UsageError / DataError from the readers for paths that
/// are not runs or hold broken files. A run stopped early gives a page that lists what is missing.
nlohmann::json build_report_page(const std::vector<std::filesystem::path>& runs, const RunReportOptions& options);

}  // namespace stablelearn::experiments
