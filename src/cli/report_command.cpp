// stablelearn report RUN [RUN ...] [--out FILE.html] [--open]: one self-contained interactive page
// (experiments/run_report.h builds it; report/html_report.h renders it).
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/experiments/run_report.h"

namespace stablelearn::cli {

namespace fs = std::filesystem;

namespace {

/// Where report/web (the page template's folder, with node_modules after scripts/setup.sh) may be:
/// the source tree this binary was built from, then beside the binary (build tree or install).
std::vector<fs::path> web_dirs() {
  std::vector<fs::path> dirs{fs::path(SL_SOURCE_DIR) / "report" / "web"};
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const auto& rel : {"../report/web", "../../report/web", "../share/stablelearn/web"}) dirs.push_back((exe.parent_path() / rel).lexically_normal());
  return dirs;
}

}  // namespace

void register_report_command(CLI::App& app, CommandRegistry& reg) {
  struct Args {
    std::vector<std::string> runs;
    std::string out;
    bool open = false, no_skills = false, skills_in_comparisons = false, exact = false;
    std::size_t max_points = 1500;
    std::int64_t stability_budget = 1000;
    std::int64_t workers = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "report",
      "One self-contained interactive HTML page (charts inlined, no network needed) for a run folder of lfd train, cl run "
      "or repro, or a diagnose output file (--out CSV, or its JSON saved to a file); several runs of one kind give a "
      "side-by-side comparison (grouped by method/strategy, mean ± std over seeds)");
  cmd->add_option("RUN", a->runs, "Run folders (or diagnose output files)")->required();
  cmd->add_option("--out", a->out, "Page to write (default: RUN/report.html for one run folder, else ./report.html)");
  cmd->add_flag("--open", a->open, "Open the page in the desktop's browser (xdg-open) once written");
  cmd->add_flag("--no-skills", a->no_skills, "LfD: leave out the skill views computed from the saved model (rollouts, vector field, V)");
  cmd->add_flag("--skills", a->skills_in_comparisons, "LfD comparisons: add every run's skill views too (off by default: page size)");
  cmd->add_flag("--exact-rollouts", a->exact,
                "LfD: roll every skill out on the data grid even when that takes long (default: a long sequence's rollouts "
                "take a multiple of the data step so that all tasks together need at most 3000 solver steps)");
  cmd->add_option("--stability-budget", a->stability_budget,
                  "LfD: tasks without a saved `lfd stability` output (RUN/stability_J.json) are checked by the report with "
                  "fewer starts (the demonstrations' + 4) over T (the demonstrations' duration), for as many tasks (evenly "
                  "spread) as fit this many solver steps in all (1000: one LASA task, 1-2 s); 0: none, saved outputs only")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--workers", a->workers,
                  "LfD: threads computing the skill views, one task each at a time (0: one per core); the page is the "
                  "same for any number")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-points", a->max_points, "Points per curve on the page (longer curves are decimated; the run's files keep every point)")
      ->check(CLI::Range(100, 1000000));
  cmd->footer(
      "The charting library (Apache ECharts, pinned in report/web/package.json) is installed by scripts/setup.sh\n"
      "(`npm ci` in report/web) and inlined into the page. Runs with one thread unless --threads is given.\nExamples:\n"
      "  stablelearn report runs/demo-regularised --open\n"
      "  stablelearn report runs/split_er_s0 runs/split_er_s1 runs/split_ewc_s0 --out er_vs_ewc.html\n"
      "  stablelearn diagnose density runs/split_ewc --out density.csv && stablelearn report density.csv");
  // The skill views are many small sequential tensor operations that gain nothing from intra-op
  // threads and lose much when OpenMP threads spin on a busy machine (26 LASA tasks: 3 s with one
  // thread, 24 s with two on a loaded 2-core VM): one thread unless --threads was given.
  const CLI::Option* threads = app.get_option_no_throw("--threads");
  reg.add(cmd, [a, threads] {
    if (threads == nullptr || threads->count() == 0) apply_threads(1);
    const auto start = std::chrono::steady_clock::now();
    std::vector<fs::path> runs(a->runs.begin(), a->runs.end());
    fs::path out = a->out;
    if (out.empty()) out = runs.size() == 1 && fs::is_directory(runs[0]) ? runs[0] / "report.html" : fs::path("report.html");
    SL_CHECK(!fs::is_directory(out), UsageError, "--out ", out.string(), " is a folder; give a file name such as report.html");
    experiments::RunReportOptions o;
    o.page.max_points = a->max_points;
    o.page.page_dir = fs::absolute(out).parent_path();
    o.skills = !a->no_skills;
    o.skills_in_comparisons = a->skills_in_comparisons;
    if (a->exact) o.skill.rollout_budget = 0;
    o.skill.stability_budget = a->stability_budget;
    o.skill.workers = a->workers;
    const auto library = report::find_charting_library(web_dirs());  // before the work: fail fast
    const auto page = experiments::build_report_page(runs, o);
    const auto html = report::render_html(page, library);
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
    write_file_atomic(out, html);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "wrote " << out.string() << " (" << (html.size() + 512) / 1024 << " KiB, " << page["runs"].size() << " run(s), "
              << static_cast<int>(secs * 1000) << " ms)\n";
    for (const auto& r : page["runs"])
      for (const auto& m : r["header"]["missing"]) std::cerr << "note: " << r["header"]["name"].get<std::string>() << ": missing " << m.get<std::string>() << "\n";
    if (a->open) {
      const std::string cmdline = "xdg-open '" + fs::absolute(out).string() + "' >/dev/null 2>&1 &";
      if (std::system(cmdline.c_str()) != 0) std::cerr << "could not run xdg-open; open " << fs::absolute(out).string() << " in a browser\n";
    }
    return 0;
  });
}

}  // namespace stablelearn::cli
