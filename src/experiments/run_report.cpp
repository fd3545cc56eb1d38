#include "stablelearn/experiments/run_report.h"

#include <chrono>
#include <ctime>

#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/lfd/trainer.h"

namespace stablelearn::experiments {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return b;
}

}  // namespace

json build_report_page(const std::vector<fs::path>& runs, const RunReportOptions& options) {
  SL_CHECK(!runs.empty(), UsageError, "report: give at least one run folder (or diagnose output file)");
  std::vector<report::RunKind> kinds;
  for (const auto& r : runs) kinds.push_back(report::detect_run_kind(r));
  for (std::size_t i = 1; i < runs.size(); ++i)
    if (kinds[i] != kinds[0]) {
      std::string list;
      for (std::size_t k = 0; k < runs.size(); ++k) list += "\n  " + runs[k].string() + ": " + report::run_kind_name(kinds[k]);
      SL_THROW(UsageError, "report: runs of different kinds cannot be compared on one page:", list,
               "\nmake one report per kind");
    }
  const auto kind = kinds[0];
  const bool comparison = runs.size() > 1 && (kind == report::RunKind::lfd || kind == report::RunKind::cl);
  json page = {{"stablelearn", version()}, {"generated", utc_now()},
               {"charting_library", std::string("Apache ECharts ") + report::charting_library_version()},
               {"kind", report::run_kind_name(kind)}, {"comparison", comparison}, {"runs", json::array()},
               {"comparison_sections", json::array()}};
  std::string title = options.title;
  if (title.empty())
    title = runs.size() == 1 ? std::string("stablelearn report: ") + report::run_kind_name(kind) + " " +
                                   fs::absolute(runs[0]).lexically_normal().filename().string()
                             : "stablelearn report: " + std::to_string(runs.size()) + " " + report::run_kind_name(kind) + " runs";
  page["title"] = title;
  if (comparison) page["comparison_sections"] = report::comparison_sections(runs, kind, options.page);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    json entry = {{"header", report::run_header(r, kind, options.page)}, {"sections", json::array()}};
    auto& sections = entry["sections"];
    switch (kind) {
      case report::RunKind::lfd: {
        const bool want_skills = options.skills && (runs.size() == 1 || options.skills_in_comparisons);
        const auto done = entry["header"].value("completed_tasks", std::int64_t{0});
        if (want_skills && done > 0) {
          try {
            const lfd::LfdRun run(r);
            auto s = lfd::skill_report_sections(run, r, options.page, options.skill);
            for (auto& x : s) sections.push_back(std::move(x));
            auto st = lfd::stability_report_section(run, r, options.page, options.skill);
            if (!st.is_null()) sections.push_back(std::move(st));
          } catch (const Error& e) {
            entry["header"]["missing"].push_back(std::string("skill views (rollouts, vector field, V): the saved model could not be "
                                                             "loaded: ") + e.what());
          }
        } else if (want_skills) {
          entry["header"]["missing"].push_back("skill views: no task has been learned yet (no checkpoint)");
        }
        for (auto& x : report::lfd_run_sections(r, options.page)) sections.push_back(std::move(x));
        break;
      }
      case report::RunKind::cl: sections = report::cl_run_sections(r, options.page); break;
      case report::RunKind::repro: sections = report::repro_run_sections(r, options.page); break;
      case report::RunKind::diagnose: sections = report::diagnose_sections(r, options.page); break;
    }
    page["runs"].push_back(std::move(entry));
  }
  return page;
}

}  // namespace stablelearn::experiments
