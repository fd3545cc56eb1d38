#include "stablelearn/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "report_assets.h"  // generated: kReportTemplate, kChartingLibraryVersion

namespace stablelearn::report {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json read_json_file(const fs::path& path) {
  const auto text = read_file_text(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    SL_THROW(DataError, path.string(), ": not valid JSON (", e.what(), "); is the run still being written?");
  }
}

json read_json_if(const fs::path& path) { return fs::exists(path) ? read_json_file(path) : json(); }

/// Rows of a JSON Lines file; a last row cut by an interruption (not JSON) is dropped, any other bad
/// row is a DataError naming the file and line.
std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  if (!fs::exists(path)) return rows;
  const auto lines = read_lines(path);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(json::parse(lines[i]));
    } catch (const json::exception&) {
      SL_CHECK(i + 1 == lines.size(), DataError, path.string(), ":", i + 1, ": not a JSON row");
    }
  }
  return rows;
}

std::string source_of(const fs::path& file, const ReportOptions& o) {
  std::error_code ec;
  const auto abs = fs::absolute(file, ec);
  if (o.page_dir.empty()) return abs.string();
  const auto rel = fs::relative(abs, fs::absolute(o.page_dir), ec);
  return ec || rel.empty() ? abs.string() : rel.generic_string();
}

double num(const json& v, double fallback = NAN) { return v.is_number() ? v.get<double>() : fallback; }

json rounded(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(std::isfinite(x) ? json(round_sig(x)) : json());
  return a;
}

json series(const std::string& name, std::vector<double> x, std::vector<double> y, const ReportOptions& o) {
  decimate(x, y, o.max_points);
  return {{"name", name}, {"x", rounded(x)}, {"y", rounded(y)}};
}

json lines_chart(const std::string& title, const std::string& xl, const std::string& yl, const fs::path& src,
                 const ReportOptions& o) {
  return {{"type", "lines"}, {"title", title}, {"x_label", xl}, {"y_label", yl}, {"log_y", false},
          {"series", json::array()}, {"marks_x", json::array()}, {"hlines", json::array()}, {"source", source_of(src, o)}};
}

json table(const std::string& title, std::vector<std::string> columns, const fs::path& src, const ReportOptions& o) {
  return {{"type", "table"}, {"title", title}, {"columns", columns}, {"rows", json::array()}, {"source", source_of(src, o)}};
}

json section(const std::string& title, json charts = json::array()) { return {{"title", title}, {"charts", std::move(charts)}}; }

std::string task_label(std::size_t j) { return "task " + std::to_string(j); }

/// Bars of the seconds each task took (a summary.json array).
json timing_bars(const json& seconds, const fs::path& src, const ReportOptions& o) {
  json b = {{"type", "bars"}, {"title", "training time per task"}, {"y_label", "seconds"}, {"categories", json::array()},
            {"series", json::array({{{"name", "seconds"}, {"y", json::array()}}})}, {"source", source_of(src, o)}};
  for (std::size_t j = 0; j < seconds.size(); ++j) {
    b["categories"].push_back(task_label(j));
    b["series"][0]["y"].push_back(round_sig(num(seconds[j], 0)));
  }
  return b;
}

/// A [rows][cols] matrix (rows = after task i, cols = task j) as a heat map; cells above the
/// diagonal are left out when `lower_only`.
json heatmap(const std::string& title, const json& matrix, bool lower_only, const fs::path& src, const ReportOptions& o,
             const std::string& value_label) {
  json cells = json::array(), xl = json::array(), yl = json::array();
  const auto n = matrix.size();
  std::size_t cols = 0;
  for (std::size_t i = 0; i < n; ++i) {
    yl.push_back("after " + task_label(i));
    cols = std::max(cols, matrix[i].size());
    for (std::size_t j = 0; j < matrix[i].size(); ++j)
      if (!(lower_only && j > i) && matrix[i][j].is_number()) cells.push_back({j, i, round_sig(matrix[i][j].get<double>())});
  }
  for (std::size_t j = 0; j < cols; ++j) xl.push_back("on " + task_label(j));
  return {{"type", "heatmap"}, {"title", title}, {"x_label", "evaluated task"}, {"y_label", "after training task"},
          {"x_labels", xl}, {"y_labels", yl}, {"cells", cells}, {"value_label", value_label}, {"source", source_of(src, o)}};
}

/// metrics.jsonl training rows (those with "loss" and "iteration") on one axis across tasks: the
/// x of a row is its iteration plus the iterations of the tasks before it; task starts become marks.
struct Curves {
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> by_key;
  std::vector<double> task_starts;
};
Curves task_curves(const std::vector<json>& all_rows, const std::vector<json>& rows, const std::vector<std::string>& keys,
                   const std::string& event_filter) {
  Curves c;
  std::map<std::int64_t, double> task_end_iter;  // last iteration seen per task (over every row)
  for (const auto& r : all_rows)
    if (r.contains("task") && r.contains("iteration") && r["iteration"].is_number())
      task_end_iter[r["task"].get<std::int64_t>()] = std::max(task_end_iter[r["task"].get<std::int64_t>()], r["iteration"].get<double>());
  std::map<std::int64_t, double> offset;
  double acc = 0;
  for (const auto& [t, last] : task_end_iter) {
    offset[t] = acc;
    c.task_starts.push_back(acc);
    acc += last;
  }
  for (const auto& r : rows) {
    if (!event_filter.empty() && r.value("event", std::string()) != event_filter) continue;
    if (!r.contains("task") || !r.contains("iteration")) continue;
    const double x = offset[r["task"].get<std::int64_t>()] + r["iteration"].get<double>();
    for (const auto& k : keys)
      if (r.contains(k) && r[k].is_number()) {
        c.by_key[k].first.push_back(x);
        c.by_key[k].second.push_back(r[k].get<double>());
      }
  }
  return c;
}

json marks(const std::vector<double>& xs) {
  json a = json::array();
  for (std::size_t i = 1; i < xs.size(); ++i) a.push_back(round_sig(xs[i]));
  return a;
}

std::string fmt_num(double v) { return format_number(v); }

void add_scalars_table(json& chart, const json& obj, const std::string& prefix = "") {
  for (const auto& [k, v] : obj.items()) {
    if (v.is_number() || v.is_boolean() || v.is_string()) chart["rows"].push_back({prefix + k, v.is_number() ? json(fmt_num(v.get<double>())) : v});
    else if (v.is_null()) chart["rows"].push_back({prefix + k, "n/a"});
  }
}

/// An array of objects with numeric fields: a line chart per numeric field against the first of
/// step/iteration/epoch/d (else the index), one series per entry of `runs`.
void add_record_charts(json& charts, const std::string& name, const std::vector<std::pair<std::string, json>>& runs,
                       const fs::path& src, const ReportOptions& o) {
  if (runs.empty() || !runs[0].second.is_array() || runs[0].second.empty() || !runs[0].second[0].is_object()) return;
  const auto& first = runs[0].second[0];
  std::string xkey;
  for (const char* k : {"step", "iteration", "epoch", "d", "k", "task"})
    if (first.contains(k) && first[k].is_number()) { xkey = k; break; }
  int made = 0;
  for (const auto& [k, v] : first.items()) {
    if (k == xkey || !v.is_number() || made >= 6) continue;
    auto c = lines_chart(name + ": " + k, xkey.empty() ? "index" : xkey, k, src, o);
    for (const auto& [label, arr] : runs) {
      std::vector<double> x, y;
      for (std::size_t i = 0; i < arr.size(); ++i)
        if (arr[i].is_object() && arr[i].contains(k) && arr[i][k].is_number()) {
          x.push_back(xkey.empty() ? static_cast<double>(i) : num(arr[i][xkey], static_cast<double>(i)));
          y.push_back(arr[i][k].get<double>());
        }
      if (!y.empty()) c["series"].push_back(series(label, x, y, o));
    }
    if (!c["series"].empty()) {
      charts.push_back(c);
      ++made;
    }
  }
}

double mean_of(const std::vector<double>& v) { return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); }
double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}
std::string mean_pm(const std::vector<double>& v) {
  std::vector<double> f;
  for (double x : v)
    if (std::isfinite(x)) f.push_back(x);
  if (f.empty()) return "n/a";
  return f.size() == 1 ? fmt_num(f[0]) : fmt_num(mean_of(f)) + " ± " + fmt_num(std_of(f));
}

/// Mean ± std over runs of curves given at (possibly different) x: the x present in every run.
json band_series(const std::string& name, const std::vector<std::pair<std::vector<double>, std::vector<double>>>& runs,
                 const ReportOptions& o) {
  std::map<double, std::vector<double>> at;
  for (const auto& [x, y] : runs)
    for (std::size_t i = 0; i < x.size(); ++i) at[x[i]].push_back(y[i]);
  std::vector<double> xs, m, lo, hi;
  for (const auto& [x, ys] : at) {
    if (ys.size() != runs.size()) continue;
    xs.push_back(x);
    const double mu = mean_of(ys), sd = std_of(ys);
    m.push_back(mu);
    lo.push_back(mu - sd);
    hi.push_back(mu + sd);
  }
  // Decimate the three curves with one index set: decimate the mean and keep the matching bounds.
  if (xs.size() > o.max_points) {
    const std::size_t stride = (xs.size() + o.max_points - 1) / o.max_points;
    std::vector<double> a, b, c, d;
    for (std::size_t i = 0; i < xs.size(); i += stride) {
      a.push_back(xs[i]); b.push_back(m[i]); c.push_back(lo[i]); d.push_back(hi[i]);
    }
    xs = a; m = b; lo = c; hi = d;
  }
  json s = {{"name", name + (runs.size() > 1 ? " (mean ± std, n=" + std::to_string(runs.size()) + ")" : "")},
            {"x", rounded(xs)}, {"y", rounded(m)}};
  if (runs.size() > 1) {
    s["lo"] = rounded(lo);
    s["hi"] = rounded(hi);
  }
  return s;
}

std::string config_value(const std::string& toml, const std::string& key) {
  const std::regex re("^" + key + "\\s*=\\s*['\"]?([^'\"\\n]*)['\"]?", std::regex::multiline);
  std::smatch m;
  return std::regex_search(toml, m, re) ? m[1].str() : std::string();
}

/// Group label of a run in a comparison: method (LfD) or strategy (CL), else the folder name
/// without a trailing _s<seed>.
std::string group_label(const fs::path& dir, RunKind kind) {
  const auto summary = read_json_if(dir / "summary.json");
  const auto cfg = fs::exists(dir / "config.toml") ? read_file_text(dir / "config.toml") : std::string();
  if (kind == RunKind::cl && summary.is_object() && summary.contains("strategy")) return summary["strategy"].get<std::string>();
  if (kind == RunKind::lfd && !cfg.empty()) {
    const auto method = config_value(cfg, "method");
    std::string l = method.empty() ? "hnet" : method;
    if (l == "hnet") l = config_value(cfg, "hnet");
    const auto target = config_value(cfg, "target");
    return l + (target.empty() ? "" : " → " + target);
  }
  return std::regex_replace(dir.filename().string(), std::regex("_s[0-9]+$"), "");
}

}  // namespace

std::string format_number(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

const char* run_kind_name(RunKind kind) {
  switch (kind) {
    case RunKind::lfd: return "lfd train";
    case RunKind::cl: return "cl run";
    case RunKind::repro: return "repro";
    case RunKind::diagnose: return "diagnose";
  }
  return "?";
}

const char* charting_library_version() { return kChartingLibraryVersion; }

RunKind detect_run_kind(const fs::path& path) {
  SL_CHECK(fs::exists(path), IoError, path.string(), ": no such file or folder");
  if (fs::is_regular_file(path)) {
    const auto ext = path.extension().string();
    if (ext == ".csv") {
      const auto lines = read_lines(path);
      SL_CHECK(!lines.empty(), DataError, path.string(), ": empty file (expected the CSV a diagnose command writes with --out)");
      if (lines[0] == "eigenvalue,density" || lines[0] == "layer,eigenvalue") return RunKind::diagnose;
      SL_THROW(UsageError, path.string(), ": a CSV file with header '", lines[0],
               "', not one a diagnose command writes (eigenvalue,density from diagnose density --out, layer,eigenvalue from "
               "diagnose spectra --out)");
    }
    if (ext == ".json") {
      const auto j = read_json_file(path);
      SL_CHECK(j.is_object() && (j.contains("operator") || j.contains("problem") || j.contains("layers") || j.contains("eigenvalues")),
               UsageError, path.string(),
               ": a JSON file that is not a diagnose output (expected the object a `stablelearn diagnose ...` command prints, "
               "saved to a file; it has keys such as problem, operator, eigenvalues or layers)");
      return RunKind::diagnose;
    }
    SL_THROW(UsageError, path.string(), ": not a run folder nor a diagnose output (.csv from --out, .json from its printed output)");
  }
  if (fs::exists(path / "results.json") ||
      (fs::exists(path / "summary.json") && read_json_file(path / "summary.json").contains("experiment")))
    return RunKind::repro;
  if (fs::exists(path / "checkpoint.json")) {
    const auto j = read_json_file(path / "checkpoint.json");
    const auto format = j.value("format", std::string());
    if (format == "stablelearn-lfd-checkpoint") return RunKind::lfd;
    if (format == "stablelearn-cl-checkpoint") return RunKind::cl;
    SL_THROW(DataError, (path / "checkpoint.json").string(), ": format '", format,
             "' is not one report reads (stablelearn-lfd-checkpoint, stablelearn-cl-checkpoint)");
  }
  if (fs::exists(path / "config.toml")) {  // a run stopped before its first checkpoint / its results
    const auto cfg = read_file_text(path / "config.toml");
    if (cfg.find("[repro]") != std::string::npos) return RunKind::repro;
    if (cfg.find("[stream]") != std::string::npos) return RunKind::cl;
    if (cfg.find("[data]") != std::string::npos && cfg.find("[train]") != std::string::npos) return RunKind::lfd;
    SL_THROW(UsageError, path.string(), ": its config.toml is not that of an lfd train, cl run or repro run (no [data] + [train], "
             "[stream] or [repro] table), and it holds no checkpoint.json or results.json");
  }
  SL_THROW(UsageError, path.string(),
           ": not a stablelearn run folder (none of checkpoint.json [lfd train, cl run], results.json [repro], "
           "config.toml found); diagnose outputs are the files written with --out");
}

void decimate(std::vector<double>& x, std::vector<double>& y, std::size_t max_points) {
  const std::size_t n = y.size();
  if (max_points < 4 || n <= max_points) return;
  const std::size_t buckets = max_points / 2 - 1;
  std::vector<double> ox{x.front()}, oy{y.front()};
  for (std::size_t b = 0; b < buckets; ++b) {
    const std::size_t a = 1 + b * (n - 2) / buckets, e = 1 + (b + 1) * (n - 2) / buckets;
    if (a >= e) continue;
    std::size_t lo = a, hi = a;
    for (std::size_t i = a; i < e; ++i) {
      if (y[i] < y[lo]) lo = i;
      if (y[i] > y[hi]) hi = i;
    }
    for (std::size_t i : {std::min(lo, hi), std::max(lo, hi)}) {
      ox.push_back(x[i]);
      oy.push_back(y[i]);
      if (lo == hi) break;
    }
  }
  ox.push_back(x.back());
  oy.push_back(y.back());
  x.swap(ox);
  y.swap(oy);
}

double round_sig(double v, int digits) {
  if (v == 0 || !std::isfinite(v)) return v;
  char b[40];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  return std::strtod(b, nullptr);
}

json contour_segments(const std::vector<double>& values, const std::vector<double>& xs, const std::vector<double>& ys,
                      double level) {
  json out = json::array();
  const std::size_t nx = xs.size(), ny = ys.size();
  SL_CHECK(values.size() == nx * ny, ShapeError, "contour_segments: ", values.size(), " values for a ", nx, " x ", ny, " grid");
  auto at = [&](std::size_t ix, std::size_t iy) { return values[iy * nx + ix]; };
  // Where the level crosses the edge between two corners (linear interpolation).
  auto cross = [&](double x0, double y0, double v0, double x1, double y1, double v1) {
    const double t = (level - v0) / (v1 - v0);
    return std::pair<double, double>{x0 + t * (x1 - x0), y0 + t * (y1 - y0)};
  };
  for (std::size_t iy = 0; iy + 1 < ny; ++iy)
    for (std::size_t ix = 0; ix + 1 < nx; ++ix) {
      const double v[4] = {at(ix, iy), at(ix + 1, iy), at(ix + 1, iy + 1), at(ix, iy + 1)};
      const double px[4] = {xs[ix], xs[ix + 1], xs[ix + 1], xs[ix]}, py[4] = {ys[iy], ys[iy], ys[iy + 1], ys[iy + 1]};
      if (!(std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2]) && std::isfinite(v[3]))) continue;
      std::vector<std::pair<double, double>> pts;
      for (int e = 0; e < 4; ++e) {
        const int f = (e + 1) % 4;
        if ((v[e] < level) != (v[f] < level)) pts.push_back(cross(px[e], py[e], v[e], px[f], py[f], v[f]));
      }
      // 2 crossings: one segment; 4 (saddle): pair them in edge order.
      for (std::size_t k = 0; k + 1 < pts.size(); k += 2) {
        for (int q = 0; q < 2; ++q) {
          out.push_back(round_sig(pts[k + q].first));
          out.push_back(round_sig(pts[k + q].second));
        }
        out.push_back(nullptr);
        out.push_back(nullptr);
      }
    }
  return out;
}

json run_header(const fs::path& path, RunKind kind, const ReportOptions& o) {
  json h = {{"name", fs::absolute(path).lexically_normal().filename().string()}, {"path", fs::absolute(path).lexically_normal().string()},
            {"kind", run_kind_name(kind)}, {"missing", json::array()}, {"files", json::array()}};
  if (h["name"].get<std::string>().empty()) h["name"] = fs::absolute(path).lexically_normal().parent_path().filename().string();
  if (kind == RunKind::diagnose) {
    h["files"].push_back({{"name", path.filename().string()}, {"href", source_of(path, o)}, {"bytes", fs::file_size(path)}});
    if (path.extension() == ".json") {
      const auto j = read_json_file(path);
      if (j.contains("seed")) h["seed"] = j["seed"];
      if (j.contains("run")) h["of_run"] = j["run"];
    }
    return h;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(path)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files)
    h["files"].push_back({{"name", f.filename().string() + (fs::is_directory(f) ? "/" : "")}, {"href", source_of(f, o)},
                          {"bytes", fs::is_regular_file(f) ? fs::file_size(f) : 0}});
  if (fs::exists(path / "config.toml")) h["config"] = read_file_text(path / "config.toml");
  else h["missing"].push_back("config.toml (the resolved configuration)");
  const auto summary = read_json_if(path / "summary.json");
  if (summary.is_object()) {
    if (summary.contains("seed")) h["seed"] = summary["seed"];
    if (summary.contains("runtime")) h["runtime"] = summary["runtime"];
  }
  if (kind == RunKind::lfd || kind == RunKind::cl) {
    const auto ck = read_json_if(path / "checkpoint.json");
    const std::int64_t done = ck.is_object() ? ck.value("completed_tasks", std::int64_t{0}) : 0;
    std::int64_t tasks = summary.is_object() ? summary.value("tasks", std::int64_t{0}) : 0;
    if (tasks == 0 && h.contains("config")) {
      const auto t = config_value(h["config"].get<std::string>(), "tasks");
      if (!t.empty()) tasks = std::atoll(t.c_str());
    }
    h["completed_tasks"] = done;
    h["tasks"] = tasks;
    if (!summary.is_object()) h["missing"].push_back("summary.json (no task has finished: the run was interrupted or is still running)");
    if (done < tasks)
      h["missing"].push_back("tasks " + std::to_string(done) + ".." + std::to_string(tasks - 1) + " of " + std::to_string(tasks) +
                             " (the run stopped after " + std::to_string(done) + " task(s); continue it with --resume)");
  }
  if (kind == RunKind::repro) {
    if (!fs::exists(path / "results.json")) h["missing"].push_back("results.json (the experiment has not finished: no verdict yet)");
    const auto r = read_json_if(path / "results.json");
    if (r.is_object() && r.contains("seed")) h["seed"] = r["seed"];
  }
  if (!h.contains("runtime")) h["missing"].push_back("the runtime block of summary.json (versions, BLAS, threads)");
  return h;
}

json lfd_run_sections(const fs::path& dir, const ReportOptions& o) {
  json sections = json::array();
  const auto summary_path = dir / "summary.json";
  const auto summary = read_json_if(summary_path);
  const auto rows = read_jsonl(dir / "metrics.jsonl");

  if (summary.is_object() && summary.contains("median_errors")) {
    const auto& m = summary["median_errors"];
    const auto n = m.size();
    json errs = section("Errors of every learned task after each training task (median over demonstrations)");
    std::set<std::string> metrics;
    for (const auto& [ti, row] : m.items())
      for (const auto& [ej, cell] : row.items())
        for (const auto& [k, v] : cell.items()) metrics.insert(k);
    const std::map<std::string, std::string> names{{"dtw", "DTW"}, {"frechet", "discrete Fréchet"}, {"swept", "swept area"},
                                                   {"quat", "orientation error (quaternion)"}, {"quat_error", "orientation error (quaternion)"}};
    for (const auto& metric : metrics) {
      json matrix = json::array();
      for (std::size_t i = 0; i < n; ++i) {
        json r = json::array();
        const auto key = "train_task_" + std::to_string(i);
        for (std::size_t j = 0; j < n; ++j) {
          const auto ek = "eval_task_" + std::to_string(j);
          r.push_back(m.contains(key) && m[key].contains(ek) && m[key][ek].contains(metric) ? m[key][ek][metric] : json());
        }
        matrix.push_back(r);
      }
      const auto label = names.count(metric) ? names.at(metric) : metric;
      auto hm = heatmap(label + " after training task i, on task j", matrix, true, summary_path, o, label);
      hm["metric"] = metric;
      errs["charts"].push_back(hm);
    }
    json forget = section("Forgetting: each task's error while later tasks are learned");
    for (const auto& metric : metrics) {
      auto c = lines_chart((names.count(metric) ? names.at(metric) : metric) + " of each task (log scale)", "after training task",
                           "median " + metric, summary_path, o);
      c["log_y"] = true;
      for (std::size_t j = 0; j < n; ++j) {
        std::vector<double> x, y;
        for (std::size_t i = j; i < n; ++i) {
          const auto& cell = m["train_task_" + std::to_string(i)]["eval_task_" + std::to_string(j)];
          if (cell.contains(metric) && cell[metric].is_number() && cell[metric].get<double>() > 0) {
            x.push_back(static_cast<double>(i));
            y.push_back(cell[metric].get<double>());
          }
        }
        if (!y.empty()) c["series"].push_back(series(task_label(j), x, y, o));
      }
      if (!c["series"].empty()) forget["charts"].push_back(c);
    }
    sections.push_back(errs);
    sections.push_back(forget);
  }

  if (summary.is_object()) {
    json scores = section("Continual-learning scores and parameters");
    if (summary.contains("cl_scores")) {
      auto t = table("CL scores (Díaz-Rodríguez et al.; dtw_threshold defines accuracy)", {"score", "value"}, summary_path, o);
      add_scalars_table(t, summary["cl_scores"]);
      scores["charts"].push_back(t);
    }
    auto p = table("Run", {"key", "value"}, summary_path, o);
    add_scalars_table(p, summary);
    if (summary.contains("params")) add_scalars_table(p, summary["params"], "params.");
    scores["charts"].push_back(p);
    if (summary.contains("per_task_train_seconds") && !summary["per_task_train_seconds"].empty())
      scores["charts"].push_back(timing_bars(summary["per_task_train_seconds"], summary_path, o));
    sections.push_back(scores);
  }

  // Training curves from metrics.jsonl (rows with an iteration and a loss; diagnostics rows).
  json train = section("Training curves (all tasks on one axis; task starts marked)");
  {
    std::vector<json> train_rows, diag_rows;
    for (const auto& r : rows) (r.value("event", std::string()) == "diagnostics" ? diag_rows : train_rows).push_back(r);
    const auto c = task_curves(rows, train_rows, {"loss", "reg", "best_loss"}, "");
    auto ch = lines_chart("training loss and output regulariser", "iteration (cumulative over tasks)", "value", dir / "metrics.jsonl", o);
    ch["log_y"] = true;
    for (const auto& [k, xy] : c.by_key) {
      bool positive = std::all_of(xy.second.begin(), xy.second.end(), [](double v) { return v > 0; });
      if (!xy.second.empty() && positive) ch["series"].push_back(series(k, xy.first, xy.second, o));
    }
    ch["marks_x"] = marks(c.task_starts);
    if (!ch["series"].empty()) train["charts"].push_back(ch);
    const auto d = task_curves(rows, diag_rows, {"lambda_max", "trace", "grad_norm"}, "");
    double two_over_lr = NAN;
    for (const auto& r : diag_rows) two_over_lr = num(r.value("two_over_lr", json()), two_over_lr);
    for (const auto& [k, xy] : d.by_key) {
      auto s = lines_chart(k == "lambda_max" ? "sharpness λ_max against 2/η" : k, "iteration (cumulative over tasks)", k,
                           dir / "metrics.jsonl", o);
      s["series"].push_back(series(k, xy.first, xy.second, o));
      s["marks_x"] = marks(d.task_starts);
      if (k == "lambda_max" && std::isfinite(two_over_lr)) s["hlines"].push_back({{"name", "2/η"}, {"y", round_sig(two_over_lr)}});
      train["charts"].push_back(s);
    }
  }
  if (!train["charts"].empty()) sections.push_back(train);
  return sections;
}

json cl_run_sections(const fs::path& dir, const ReportOptions& o) {
  json sections = json::array();
  const auto summary_path = dir / "summary.json";
  const auto summary = read_json_if(summary_path);
  const auto ck = read_json_if(dir / "checkpoint.json");
  const auto mpath = dir / "metrics.jsonl";
  const auto rows = read_jsonl(mpath);

  json acc = section("Accuracy matrix and continual-learning metrics");
  if (summary.is_object() && summary.contains("accuracy_matrix"))
    acc["charts"].push_back(heatmap("accuracy after training task i, on task j", summary["accuracy_matrix"], false, summary_path, o, "accuracy"));
  else if (ck.is_object() && ck.contains("accuracy"))
    acc["charts"].push_back(heatmap("accuracy after training task i, on task j", ck["accuracy"], false, dir / "checkpoint.json", o, "accuracy"));
  if (summary.is_object()) {
    auto t = table("ACC / BWT / FWT / forgetting (end of each task) and continual evaluation", {"metric", "value"}, summary_path, o);
    if (summary.contains("metrics")) add_scalars_table(t, summary["metrics"]);
    if (summary.contains("continual")) add_scalars_table(t, summary["continual"], "continual.");
    for (const char* k : {"strategy", "stream", "model", "params", "tasks", "iterations"})
      if (summary.contains(k)) t["rows"].push_back({k, summary[k].is_number() ? json(fmt_num(summary[k].get<double>())) : summary[k]});
    acc["charts"].push_back(t);
  }
  if (!acc["charts"].empty()) sections.push_back(acc);

  // Continual evaluation: the accuracy of every seen task at each evaluation, min-ACC and WC-ACC.
  json ce = section("Continual evaluation (task boundaries marked): the stability gap");
  std::vector<double> ends{0.0};
  for (const auto& r : rows)
    if (r.value("event", std::string()) == "task_end") ends.push_back(num(r["iteration"], 0));
  {
    auto c = lines_chart("accuracy of each task at every evaluation", "iteration", "accuracy", mpath, o);
    std::map<std::size_t, std::pair<std::vector<double>, std::vector<double>>> per_task;
    std::vector<double> x_min, y_min, x_wc, y_wc;
    for (const auto& r : rows) {
      if (r.value("event", std::string()) != "track") continue;
      const double it = num(r["iteration"], 0);
      for (std::size_t j = 0; r.contains("acc") && j < r["acc"].size(); ++j) {
        per_task[j].first.push_back(it);
        per_task[j].second.push_back(num(r["acc"][j]));
      }
      if (r.contains("min_acc") && r["min_acc"].is_number()) { x_min.push_back(it); y_min.push_back(r["min_acc"].get<double>()); }
      if (r.contains("wc_acc") && r["wc_acc"].is_number()) { x_wc.push_back(it); y_wc.push_back(r["wc_acc"].get<double>()); }
    }
    for (auto& [j, xy] : per_task) c["series"].push_back(series(task_label(j), xy.first, xy.second, o));
    if (!y_min.empty()) c["series"].push_back(series("min-ACC", x_min, y_min, o));
    if (!y_wc.empty()) c["series"].push_back(series("WC-ACC", x_wc, y_wc, o));
    c["marks_x"] = marks(ends);
    if (!c["series"].empty()) ce["charts"].push_back(c);
  }
  {
    auto c = lines_chart("training loss (log scale)", "iteration", "loss", mpath, o);
    c["log_y"] = true;
    std::vector<double> x, y;
    for (const auto& r : rows)
      if (r.value("event", std::string()) == "train" && r.contains("loss") && r["loss"].is_number()) {
        x.push_back(num(r["iteration"], 0));
        y.push_back(r["loss"].get<double>());
      }
    c["marks_x"] = marks(ends);
    c["log_y"] = !y.empty() && *std::min_element(y.begin(), y.end()) > 0;
    if (!y.empty()) {
      c["series"].push_back(series("loss", x, y, o));
      ce["charts"].push_back(c);
    }
  }
  {
    auto c = lines_chart("sharpness λ_max against 2/η", "iteration", "λ_max", mpath, o);
    std::vector<double> x, y;
    double two_over_lr = NAN;
    for (const auto& r : rows)
      if (r.value("event", std::string()) == "diagnostics" && r.contains("lambda_max") && r["lambda_max"].is_number()) {
        x.push_back(num(r["iteration"], 0));
        y.push_back(r["lambda_max"].get<double>());
        two_over_lr = num(r.value("two_over_lr", json()), two_over_lr);
      }
    c["marks_x"] = marks(ends);
    if (std::isfinite(two_over_lr)) c["hlines"].push_back({{"name", "2/η"}, {"y", round_sig(two_over_lr)}});
    if (!y.empty()) {
      c["series"].push_back(series("λ_max", x, y, o));
      ce["charts"].push_back(c);
    }
  }
  if (!ce["charts"].empty()) sections.push_back(ce);

  if (summary.is_object() && summary.contains("train_seconds") && !summary["train_seconds"].empty())
    sections.push_back(section("Timing", json::array({timing_bars(summary["train_seconds"], summary_path, o)})));
  return sections;
}

json repro_run_sections(const fs::path& dir, const ReportOptions& o) {
  json sections = json::array();
  const auto rpath = dir / "results.json";
  const auto r = read_json_if(rpath);
  if (r.is_object()) {
    json claim = section("The paper's claim and our verdict");
    std::string text = r.value("paper", std::string()) + "\n\nClaim: " + r.value("claim", std::string());
    claim["charts"].push_back({{"type", "text"}, {"title", r.value("experiment", std::string("experiment"))}, {"text", text},
                               {"verdict", r.value("verdict", std::string())}, {"source", source_of(rpath, o)}});
    auto checks = table("checks (fixed before the numbers were seen)", {"check", "value", "", "threshold", "pass"}, rpath, o);
    for (const auto& c : r.value("checks", json::array()))
      checks["rows"].push_back({c.value("name", ""), fmt_num(num(c.value("value", json()))), c.value("comparison", ""),
                                fmt_num(num(c.value("threshold", json()))), c.value("pass", false) ? "yes" : "NO"});
    claim["charts"].push_back(checks);
    auto metrics = table("metrics", {"metric", "value"}, rpath, o);
    if (r.contains("metrics")) add_scalars_table(metrics, r["metrics"]);
    if (r.contains("setup")) add_scalars_table(metrics, r["setup"], "setup.");
    claim["charts"].push_back(metrics);
    sections.push_back(claim);
  }
  // Per-seed records in metrics.jsonl: every array of records becomes curves, one series per seed.
  const auto mpath = dir / "metrics.jsonl";
  const auto rows = read_jsonl(mpath);
  std::map<std::string, std::vector<std::pair<std::string, json>>> arrays;
  for (const auto& row : rows) {
    if (!row.contains("result") || !row["result"].is_object()) continue;
    const auto label = "seed " + (row.contains("seed") ? row["seed"].dump() : std::string("?"));
    for (const auto& [k, v] : row["result"].items())
      if (v.is_array() && !v.empty() && v[0].is_object()) arrays[k].push_back({label, v});
  }
  json curves = section("The experiment's curves (per seed)");
  for (const auto& [name, runs] : arrays) add_record_charts(curves["charts"], name, runs, mpath, o);
  // The stability threshold where the experiment states it (setup.two_over_lr).
  const double two_over_lr = r.is_object() ? num(r.value("setup", json::object()).value("two_over_lr", json())) : NAN;
  for (auto& c : curves["charts"]) {
    const auto title = c["title"].get<std::string>();
    if (std::isfinite(two_over_lr) && title.size() >= 10 && title.compare(title.size() - 10, 10, "lambda_max") == 0)
      c["hlines"].push_back({{"name", "2/η"}, {"y", round_sig(two_over_lr)}});
  }
  if (!curves["charts"].empty()) sections.push_back(curves);
  json figs = section("Figures the experiment wrote");
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".svg")
      figs["charts"].push_back({{"type", "svg"}, {"title", e.path().filename().string()}, {"svg", read_file_text(e.path())},
                                {"source", source_of(e.path(), o)}});
  if (!figs["charts"].empty()) sections.push_back(figs);
  return sections;
}

namespace {

/// Eigenvalues per layer of a `diagnose spectra --out` CSV (layer,eigenvalue).
std::map<std::string, std::vector<double>> read_esd_csv(const fs::path& file) {
  const auto lines = read_lines(file);
  SL_CHECK(!lines.empty() && lines[0] == "layer,eigenvalue", DataError, file.string(),
           ": expected the CSV of `diagnose spectra --out` (header layer,eigenvalue)");
  std::map<std::string, std::vector<double>> by_layer;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto comma = lines[i].rfind(',');
    SL_CHECK(comma != std::string::npos, DataError, file.string(), ":", i + 1, ": expected two comma-separated columns");
    const auto b = lines[i].substr(comma + 1);
    char* end = nullptr;
    const double v = std::strtod(b.c_str(), &end);
    SL_CHECK(end != b.c_str(), DataError, file.string(), ":", i + 1, ": '", b, "' is not a number");
    by_layer[lines[i].substr(0, comma)].push_back(v);
  }
  return by_layer;
}

json esd_fit_charts(const std::map<std::string, std::vector<double>>& esd, const json& layers, const fs::path& csv,
                    const fs::path& fits, const ReportOptions& o) {
  json charts = json::array();
  std::map<std::string, json> fit_of;
  if (layers.is_array())
    for (const auto& l : layers)
      if (l.is_object() && l.contains("name")) fit_of[l["name"].get<std::string>()] = l;
  for (const auto& [layer, ev] : esd) {
    std::vector<double> v;
    for (double x : ev)
      if (std::isfinite(x) && x > 0) v.push_back(x);
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    const auto n = static_cast<double>(ev.size());
    // Empirical CCDF P(X >= x) at each eigenvalue (ties: the first of equal values gets the count).
    std::vector<double> x, y;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i > 0 && v[i] == v[i - 1]) continue;
      x.push_back(v[i]);
      y.push_back(static_cast<double>(v.size() - i) / n);
    }
    auto c = lines_chart(layer + ": ESD tail (complementary CDF, log-log)", "eigenvalue of WᵀW/N", "P(λ ≥ x)", csv, o);
    c["log_x"] = true;
    c["log_y"] = true;
    auto emp = series("eigenvalues (empirical)", x, y, o);
    emp["style"] = "points";
    emp["size"] = 4;
    c["series"].push_back(emp);
    const auto it = fit_of.find(layer);
    if (it != fit_of.end() && it->second.contains("alpha") && it->second["alpha"].is_number() && it->second.contains("xmin")) {
      const double alpha = it->second["alpha"].get<double>(), xmin = num(it->second["xmin"]);
      const double tail = num(it->second.value("tail_size", json()), NAN);
      // Power law p(x) ∝ x^{−α} above x_min: P(λ ≥ x) = (tail / n) (x / x_min)^{1−α}.
      std::vector<double> fx, fy;
      const double hi = v.back();
      const int k = 40;
      for (int i = 0; i <= k && xmin > 0 && hi > xmin && std::isfinite(tail); ++i) {
        const double xx = xmin * std::pow(hi / xmin, static_cast<double>(i) / k);
        fx.push_back(xx);
        fy.push_back(tail / n * std::pow(xx / xmin, 1.0 - alpha));
      }
      if (!fy.empty()) {
        auto f = series("power-law fit α = " + fmt_num(alpha) + " ± " + fmt_num(num(it->second.value("alpha_sigma", json()))) +
                            " above x_min (KS " + fmt_num(num(it->second.value("ks_distance", json()))) + ")",
                        fx, fy, o);
        f["style"] = "dashed";
        c["series"].push_back(f);
        c["vlines"] = json::array({{{"name", "x_min"}, {"x", round_sig(xmin)}}});
        c["fit"] = {{"alpha", alpha}, {"xmin", xmin}, {"tail_size", tail}, {"n", n}};
      }
      c["source"] = source_of(csv, o) + " (eigenvalues), " + source_of(fits, o) + " (fit)";
    } else if (it != fit_of.end()) {
      c["title"] = c["title"].get<std::string>() + "; no power-law fit: " + it->second.value("alpha_note", std::string("alpha is null"));
    }
    c["layer"] = layer;
    charts.push_back(c);
  }
  return charts;
}

/// The ESD CSV a `diagnose spectra --out F` JSON output names ("written": F as given on the command
/// line): F itself, F beside the JSON file, F's name beside the JSON file.
fs::path find_written_csv(const fs::path& json_file, const std::string& written) {
  const fs::path w(written);
  for (const auto& c : {w, json_file.parent_path() / w, json_file.parent_path() / w.filename()})
    if (fs::is_regular_file(c)) return c;
  return {};
}

/// Scree plot of a trajectory PCA output: the explained-variance ratio of each component, their
/// cumulative sum, 90 % and r₉₀ marked.
json trajectory_charts(const json& j, const fs::path& file, const ReportOptions& o) {
  json charts = json::array();
  const auto& r = j["explained_variance_ratio"];
  std::vector<double> k, ratio, cum;
  double acc = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    k.push_back(static_cast<double>(i + 1));
    ratio.push_back(num(r[i]));
    acc += num(r[i], 0);
    cum.push_back(acc);
  }
  auto c = lines_chart("trajectory PCA: explained variance per principal component (scree) and cumulative", "component", "share of the variance",
                       file, o);
  c["series"].push_back(series("explained variance ratio", k, ratio, o));
  c["series"].push_back(series("cumulative", k, cum, o));
  c["hlines"].push_back({{"name", "90 %"}, {"y", 0.9}});
  if (j.contains("rank_90") && j["rank_90"].is_number() && j["rank_90"].get<double>() <= static_cast<double>(k.size()))
    c["vlines"].push_back({{"name", "r₉₀"}, {"x", j["rank_90"]}});
  c["pca"] = {{"rank_90", j.value("rank_90", json())}, {"effective_rank", j.value("effective_rank", json())}};
  charts.push_back(c);
  if (j.contains("alignment_to_final") && j["alignment_to_final"].is_array() && j["alignment_to_final"].size() >= 2) {
    const auto& a = j["alignment_to_final"];
    const bool iters = j.contains("iterations") && j["iterations"].is_array() && j["iterations"].size() == a.size();
    std::vector<double> x, y;
    for (std::size_t i = 0; i < a.size(); ++i) {
      x.push_back(iters ? num(j["iterations"][i]) : static_cast<double>(i));
      y.push_back(num(a[i]));
    }
    auto al = lines_chart("alignment of each snapshot's displacement with the final one (cosine)", iters ? "iteration" : "snapshot",
                          "cosine to the final displacement", file, o);
    al["series"].push_back(series("alignment to final", x, y, o));
    charts.push_back(al);
  }
  // The snapshots' path on PC1/PC2 (diagnose trajectory RUN writes "pc_path"), start and end marked.
  if (j.contains("pc_path") && j["pc_path"].is_object()) {
    const auto& p1 = j["pc_path"]["pc1"];
    const auto& p2 = j["pc_path"]["pc2"];
    if (p1.is_array() && p2.is_array() && p1.size() == p2.size() && p1.size() >= 2) {
      json xy = json::array();
      const std::size_t n = p1.size(), cap = std::max<std::size_t>(o.max_points, 2), stride = (n + cap - 1) / cap;
      for (std::size_t i = 0; i < n; i += stride) {
        xy.push_back(round_sig(num(p1[i])));
        xy.push_back(round_sig(num(p2[i])));
      }
      if ((n - 1) % stride != 0) {
        xy.push_back(round_sig(num(p1[n - 1])));
        xy.push_back(round_sig(num(p2[n - 1])));
      }
      const auto& r = j["explained_variance_ratio"];
      auto pct = [&](std::size_t i) {
        return i < r.size() && r[i].is_number() ? " (" + format_number(100.0 * r[i].get<double>()) + " %)" : std::string();
      };
      json layers = json::array();
      layers.push_back({{"name", "weight trajectory"}, {"kind", "rollout"}, {"xy", xy}});
      layers.push_back({{"name", "first snapshot"}, {"kind", "points"}, {"xy", {round_sig(num(p1[0])), round_sig(num(p2[0]))}},
                        {"color", "#2ca02c"}, {"size", 9}});
      layers.push_back({{"name", "last snapshot"}, {"kind", "points"},
                        {"xy", {round_sig(num(p1[n - 1])), round_sig(num(p2[n - 1]))}}, {"color", "#d62728"}, {"size", 9}});
      charts.push_back({{"type", "plane"},
                        {"title", "weight trajectory on its top two principal directions (" + std::to_string(n) + " snapshots)"},
                        {"x_label", "PC1" + pct(0)}, {"y_label", "PC2" + pct(1)}, {"layers", layers}, {"source", source_of(file, o)}});
    }
  }
  if (j.contains("per_task") && j["per_task"].is_array() && !j["per_task"].empty()) {
    json b = {{"type", "bars"}, {"title", "trajectory PCA per task: r₉₀ and effective rank"}, {"x_label", "task"},
              {"categories", json::array()}, {"series", json::array({{{"name", "r₉₀"}, {"y", json::array()}},
                                                                       {{"name", "effective rank"}, {"y", json::array()}}})},
              {"source", source_of(file, o)}};
    for (const auto& t : j["per_task"]) {
      b["categories"].push_back(std::to_string(t.value("task", 0)));
      b["series"][0]["y"].push_back(t.value("rank_90", json()));
      b["series"][1]["y"].push_back(t.contains("effective_rank") ? json(round_sig(num(t["effective_rank"]))) : json());
    }
    charts.push_back(b);
  }
  return charts;
}

/// The sweep of an intrinsic-dimension output: test (± std over projection seeds) and train accuracy
/// against the subspace dimension d (log axis), the two thresholds and the two d_int90 marked.
json intrinsic_dim_chart(const json& j, const fs::path& file, const ReportOptions& o) {
  auto c = lines_chart("intrinsic-dimension sweep: accuracy after training in a random d-dimensional subspace", "subspace dimension d",
                       "accuracy", file, o);
  c["log_x"] = true;
  std::vector<double> d, test, lo, hi, train;
  bool band = false;
  for (const auto& r : j["subspaces"]) {
    d.push_back(num(r["d"]));
    test.push_back(num(r.value("test_accuracy", json())));
    train.push_back(num(r.value("train_accuracy", json())));
    const double sd = num(r.value("test_accuracy_std", json()), NAN);
    band = band || std::isfinite(sd);
    lo.push_back(test.back() - (std::isfinite(sd) ? sd : 0));
    hi.push_back(test.back() + (std::isfinite(sd) ? sd : 0));
  }
  auto ts = series("test accuracy" + std::string(band ? " (± std over projections)" : ""), d, test, o);
  if (band) {
    ts["lo"] = rounded(lo);
    ts["hi"] = rounded(hi);
  }
  c["series"].push_back(ts);
  c["series"].push_back(series("train accuracy", d, train, o));
  if (j.contains("absolute_threshold") && j["absolute_threshold"].is_number())
    c["hlines"].push_back({{"name", "absolute threshold"}, {"y", round_sig(num(j["absolute_threshold"]))}});
  if (j.contains("relative_threshold") && j["relative_threshold"].is_number())
    c["hlines"].push_back({{"name", "relative threshold"}, {"y", round_sig(num(j["relative_threshold"]))}});
  if (j.contains("full_test_accuracy") && j["full_test_accuracy"].is_number())
    c["hlines"].push_back({{"name", "full model (test)"}, {"y", round_sig(num(j["full_test_accuracy"]))}});
  for (const char* k : {"d_int90_absolute", "d_int90_relative"})
    if (j.contains(k) && j[k].is_number()) c["vlines"].push_back({{"name", k}, {"x", j[k]}});
  return c;
}

}  // namespace

json diagnose_sections(const fs::path& file, const ReportOptions& o) {
  json sections = json::array();
  if (file.extension() == ".csv") {
    const auto lines = read_lines(file);
    SL_CHECK(!lines.empty(), DataError, file.string(), ": empty file");
    std::map<std::string, std::vector<double>> by_layer;
    std::vector<double> x, y;
    for (std::size_t i = 1; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      const auto comma = lines[i].find(',');
      SL_CHECK(comma != std::string::npos, DataError, file.string(), ":", i + 1, ": expected two comma-separated columns");
      const auto a = lines[i].substr(0, comma), b = lines[i].substr(comma + 1);
      char* end = nullptr;
      const double vb = std::strtod(b.c_str(), &end);
      SL_CHECK(end != b.c_str(), DataError, file.string(), ":", i + 1, ": '", b, "' is not a number");
      if (lines[0] == "eigenvalue,density") {
        x.push_back(std::strtod(a.c_str(), nullptr));
        y.push_back(vb);
      } else {
        by_layer[a].push_back(vb);
      }
    }
    if (lines[0] == "eigenvalue,density") {
      auto c = lines_chart("spectral density (stochastic Lanczos quadrature)", "eigenvalue", "density", file, o);
      SL_CHECK(!y.empty(), DataError, file.string(), ": no rows under the header");
      c["series"].push_back(series("density", x, y, o));
      sections.push_back(section("Spectral density", json::array({c})));
    } else {
      SL_CHECK(!by_layer.empty(), DataError, file.string(), ": no rows under the header");
      auto c = lines_chart("empirical spectral density of each layer (histogram of log10 eigenvalues)", "log10 eigenvalue", "count", file, o);
      auto t = table("per-layer eigenvalues", {"layer", "count", "min", "max"}, file, o);
      for (auto& [layer, ev] : by_layer) {
        std::vector<double> lv;
        for (double v : ev)
          if (v > 0) lv.push_back(std::log10(v));
        t["rows"].push_back({layer, ev.size(), fmt_num(*std::min_element(ev.begin(), ev.end())), fmt_num(*std::max_element(ev.begin(), ev.end()))});
        if (lv.empty()) continue;
        const double lo = *std::min_element(lv.begin(), lv.end()), hi = *std::max_element(lv.begin(), lv.end());
        const int bins = 24;
        std::vector<double> bx(bins), by(bins, 0.0);
        const double w = std::max(1e-9, (hi - lo) / bins);
        for (int b = 0; b < bins; ++b) bx[static_cast<std::size_t>(b)] = lo + (b + 0.5) * w;
        for (double v : lv) by[static_cast<std::size_t>(std::min(bins - 1, static_cast<int>((v - lo) / w)))] += 1;
        c["series"].push_back(series(layer, bx, by, o));
      }
      json charts = json::array({c, t});
      // The fit is in the command's JSON output; `report esd.csv` reads it from esd.json beside it.
      const auto fits = fs::path(file).replace_extension(".json");
      const auto fj = fs::is_regular_file(fits) ? read_json_file(fits) : json();
      if (fj.is_object() && fj.contains("layers")) {
        for (auto& x : esd_fit_charts(by_layer, fj["layers"], file, fits, o)) charts.push_back(std::move(x));
      } else {
        charts.push_back({{"type", "text"}, {"title", "power-law fits"},
                          {"text", "The power-law fit (alpha, x_min) is in the JSON that `diagnose spectra` prints; save it as " +
                                       fits.filename().string() + " beside " + file.filename().string() +
                                       " (or give that JSON to `report`) to see the fits drawn over each layer's ESD."}});
        for (auto& x : esd_fit_charts(by_layer, json(), file, file, o)) charts.push_back(std::move(x));
      }
      sections.push_back(section("Weight spectra", charts));
    }
    return sections;
  }
  const auto j = read_json_file(file);
  json main = section("Diagnostic: " + j.value("problem", std::string("")) + " " + j.value("operator", std::string("")));
  auto t = table("values", {"key", "value"}, file, o);
  add_scalars_table(t, j);
  main["charts"].push_back(t);
  std::set<std::string> drawn;  // keys with a dedicated view below
  if (j.contains("layers") && j["layers"].is_array() && j.contains("written") && j["written"].is_string()) {
    const auto csv = find_written_csv(file, j["written"].get<std::string>());
    if (!csv.empty()) {
      for (auto& x : esd_fit_charts(read_esd_csv(csv), j["layers"], csv, file, o)) main["charts"].push_back(std::move(x));
      drawn.insert("layers_charts");  // the table stays; per-layer numbers against the layer index say nothing more
    } else {
      main["charts"].push_back({{"type", "text"}, {"title", "ESD power-law fits"},
                                {"text", "The eigenvalues were written to " + j["written"].get<std::string>() +
                                             ", which is not there (nor beside this file): the fits are listed in the table only."}});
    }
  } else if (j.contains("layers") && j["layers"].is_array() && !j["layers"].empty() && j["layers"][0].is_object() &&
             j["layers"][0].contains("alpha")) {
    main["charts"].push_back({{"type", "text"}, {"title", "ESD power-law fits"},
                              {"text", "Run `diagnose spectra ... --out esd.csv` to have the eigenvalues drawn with their fits."}});
  }
  if (j.contains("explained_variance_ratio") && j["explained_variance_ratio"].is_array() && !j["explained_variance_ratio"].empty()) {
    for (auto& x : trajectory_charts(j, file, o)) main["charts"].push_back(std::move(x));
    drawn.insert({"explained_variance_ratio", "alignment_to_final", "iterations", "per_task_charts", "pc_path"});
  }
  if (j.contains("subspaces") && j["subspaces"].is_array() && !j["subspaces"].empty() && j["subspaces"][0].is_object() &&
      j["subspaces"][0].contains("d")) {
    main["charts"].push_back(intrinsic_dim_chart(j, file, o));
    drawn.insert("subspaces_charts");
  }
  for (const auto& [k, v] : j.items()) {
    if (!v.is_array() || v.empty() || drawn.count(k)) continue;
    if (v[0].is_number() && v.size() >= 2) {
      std::vector<double> x, y;
      for (std::size_t i = 0; i < v.size(); ++i) {
        x.push_back(static_cast<double>(i));
        y.push_back(num(v[i]));
      }
      auto c = lines_chart(k, "index", k, file, o);
      c["series"].push_back(series(k, x, y, o));
      if (k == "eigenvalues" && j.contains("learning_rate") && num(j["learning_rate"]) > 0)
        c["hlines"].push_back({{"name", "2/η"}, {"y", round_sig(2.0 / num(j["learning_rate"]))}});
      main["charts"].push_back(c);
    } else if (v[0].is_object()) {
      std::vector<std::string> cols;
      for (const auto& [ck, cv] : v[0].items())
        if (cv.is_number() || cv.is_string()) cols.push_back(ck);
      auto tt = table(k, cols, file, o);
      for (const auto& e : v) {
        json row = json::array();
        for (const auto& ck : cols) row.push_back(e.contains(ck) && e[ck].is_number() ? json(fmt_num(e[ck].get<double>())) : e.value(ck, json("")));
        tt["rows"].push_back(row);
      }
      main["charts"].push_back(tt);
      if (!drawn.count(k + "_charts")) add_record_charts(main["charts"], k, {{file.stem().string(), v}}, file, o);
    }
  }
  sections.push_back(main);
  return sections;
}

namespace {
/// Share of an `lfd stability` output's starts whose final distance is within its tolerance
/// (the output's converged_fraction when it lists no distances; NaN when it has neither).
double converged_fraction(const json& r) {
  const double tol = r.contains("tolerance") ? num(r["tolerance"]) : NAN;
  std::int64_t ok = 0, n = 0;
  if (r.contains("final_distances") && r["final_distances"].is_array())
    for (const auto& d : r["final_distances"]) {
      ++n;
      const double v = num(d);
      if (std::isfinite(v) && v <= tol) ++ok;
    }
  if (n > 0) return static_cast<double>(ok) / static_cast<double>(n);
  return r.contains("converged_fraction") ? num(r["converged_fraction"]) : NAN;
}
}  // namespace

json comparison_sections(const std::vector<fs::path>& runs, RunKind kind, const ReportOptions& o) {
  json sections = json::array();
  std::map<std::string, std::vector<fs::path>> groups;
  // Unfinished runs are left out of the statistics (as `cl summarize` does) and named.
  std::vector<std::string> left_out;
  for (const auto& r : runs) {
    const auto s = read_json_if(r / "summary.json");
    const bool finished = s.is_object() && s.value("completed_tasks", std::int64_t{-1}) == s.value("tasks", std::int64_t{-2});
    if (finished) groups[group_label(r, kind)].push_back(r);
    else left_out.push_back(r.filename().string());
  }
  std::size_t used = 0;
  for (const auto& [label, dirs] : groups) used += dirs.size();
  json overview = section("Comparison of " + std::to_string(used) + " finished runs in " + std::to_string(groups.size()) +
                          " group(s) (mean ± sample std over the runs of a group)");
  if (!left_out.empty()) {
    std::string names;
    for (const auto& n : left_out) names += (names.empty() ? "" : ", ") + n;
    sections.push_back(section("Left out of the comparison",
                               json::array({{{"type", "text"}, {"title", "unfinished runs (no summary.json, or fewer tasks completed than configured)"},
                                             {"text", names + ": shown below with what they hold, not in the statistics."}}})));
  }
  if (kind == RunKind::cl) {
    auto t = table("end-of-sequence metrics", {"group", "runs", "ACC", "BWT", "FWT", "forgetting (max)", "min-ACC", "WC-ACC"},
                   runs.front() / "summary.json", o);
    t["source"] = "summary.json of each run";
    json bars = {{"type", "bars"}, {"title", "ACC / BWT / FWT per group (mean ± std)"}, {"categories", json::array()},
                 {"series", json::array()}, {"source", "summary.json of each run"}};
    std::vector<std::string> keys{"ACC", "BWT", "FWT"};
    for (const auto& k : keys) bars["series"].push_back({{"name", k}, {"y", json::array()}, {"err", json::array()}});
    auto curves = lines_chart("mean accuracy over seen tasks at every evaluation", "iteration", "accuracy", "metrics.jsonl", o);
    curves["source"] = "metrics.jsonl of each run";
    auto loss = lines_chart("training loss (log scale)", "iteration", "loss", "metrics.jsonl", o);
    loss["source"] = "metrics.jsonl of each run";
    loss["log_y"] = true;
    for (const auto& [label, dirs] : groups) {
      std::map<std::string, std::vector<double>> vals;
      std::vector<std::pair<std::vector<double>, std::vector<double>>> mean_acc, losses;
      for (const auto& d : dirs) {
        const auto s = read_json_if(d / "summary.json");
        if (s.is_object()) {
          for (const auto& k : {"ACC", "BWT", "FWT", "forgetting_max"})
            vals[k].push_back(num(s.value("metrics", json::object()).value(k, json())));
          vals["min_acc"].push_back(num(s.value("continual", json::object()).value("min_acc", json())));
          vals["wc_acc"].push_back(num(s.value("continual", json::object()).value("wc_acc", json())));
        }
        std::vector<double> x, y, lx, ly;
        for (const auto& r : read_jsonl(d / "metrics.jsonl")) {
          const auto ev = r.value("event", std::string());
          if (ev == "track" && r.contains("acc") && !r["acc"].empty()) {
            double sacc = 0;
            for (const auto& a : r["acc"]) sacc += num(a, 0);
            x.push_back(num(r["iteration"], 0));
            y.push_back(sacc / static_cast<double>(r["acc"].size()));
          } else if (ev == "train" && r.contains("loss")) {
            lx.push_back(num(r["iteration"], 0));
            ly.push_back(num(r["loss"]));
          }
        }
        if (!y.empty()) mean_acc.push_back({x, y});
        if (!ly.empty()) losses.push_back({lx, ly});
      }
      t["rows"].push_back({label, dirs.size(), mean_pm(vals["ACC"]), mean_pm(vals["BWT"]), mean_pm(vals["FWT"]),
                           mean_pm(vals["forgetting_max"]), mean_pm(vals["min_acc"]), mean_pm(vals["wc_acc"])});
      bars["categories"].push_back(label);
      for (std::size_t k = 0; k < keys.size(); ++k) {
        bars["series"][k]["y"].push_back(round_sig(mean_of(vals[keys[k]])));
        bars["series"][k]["err"].push_back(round_sig(std_of(vals[keys[k]])));
      }
      if (!mean_acc.empty()) curves["series"].push_back(band_series(label, mean_acc, o));
      if (!losses.empty()) loss["series"].push_back(band_series(label, losses, o));
    }
    overview["charts"] = json::array({t, bars});
    // Task boundaries of the first run (runs of one stream and schedule share them).
    std::vector<double> ends{0.0};
    for (const auto& r : read_jsonl(runs.front() / "metrics.jsonl"))
      if (r.value("event", std::string()) == "task_end") ends.push_back(num(r["iteration"], 0));
    curves["marks_x"] = marks(ends);
    loss["marks_x"] = marks(ends);
    if (!curves["series"].empty()) overview["charts"].push_back(curves);
    if (!loss["series"].empty()) overview["charts"].push_back(loss);
    json mats = section("Accuracy matrices side by side");
    for (const auto& r : runs) {
      const auto s = read_json_if(r / "summary.json");
      if (s.is_object() && s.contains("accuracy_matrix"))
        mats["charts"].push_back(heatmap(r.filename().string() + ": accuracy after task i on task j", s["accuracy_matrix"], false,
                                         r / "summary.json", o, "accuracy"));
    }
    sections.push_back(overview);
    if (!mats["charts"].empty()) sections.push_back(mats);
    return sections;
  }
  // LfD
  auto t = table("CL scores and errors", {"group", "runs", "final mean DTW", "CL_score", "CL_stability", "REM", "MS", "TE"},
                 "summary.json", o);
  t["source"] = "summary.json of each run";
  auto final_err = lines_chart("median DTW of each task after the last task (log)", "task", "median DTW", "summary.json", o);
  final_err["log_y"] = true;
  final_err["source"] = "summary.json of each run";
  auto avg_err = lines_chart("mean over learned tasks of the median DTW, after each training task (log)", "after training task",
                             "mean median DTW", "summary.json", o);
  avg_err["log_y"] = true;
  avg_err["source"] = "summary.json of each run";
  auto secs = lines_chart("training time per task", "task", "seconds", "summary.json", o);
  secs["source"] = "summary.json of each run";
  // Stability from the runs' saved `lfd stability` outputs (a comparison page computes none: that
  // is the single-run page's work): converged fraction per task, mean ± std over a group's runs.
  auto conv = lines_chart("converged fraction per task (saved `lfd stability` outputs; final distance within the tolerance)",
                          "task", "converged fraction", "stability_J.json", o);
  conv["source"] = "stability_J.json / stability_taskJ.json / stability_euler_taskJ.json of each run";
  t["columns"].push_back("converged (mean over tasks with a saved check)");
  std::size_t runs_with_stability = 0;
  for (const auto& [label, dirs] : groups) {
    std::map<std::string, std::vector<double>> vals;
    std::vector<std::pair<std::vector<double>, std::vector<double>>> fe, ae, ts, cf;
    for (const auto& d : dirs) {
      const auto s = read_json_if(d / "summary.json");
      if (!s.is_object() || !s.contains("median_errors")) continue;
      {
        std::vector<double> cx, cy;
        for (std::int64_t j = 0; j < s.value("completed_tasks", std::int64_t{0}); ++j) {
          const auto files = saved_stability_files(d, j);
          if (files.empty()) continue;
          const auto r = read_json_if(files.front());
          const double f = r.is_object() ? converged_fraction(r) : NAN;
          if (!std::isfinite(f)) continue;
          cx.push_back(static_cast<double>(j));
          cy.push_back(f);
        }
        if (!cy.empty()) {
          ++runs_with_stability;
          cf.push_back({cx, cy});
          vals["converged"].push_back(mean_of(cy));
        }
      }
      const auto& m = s["median_errors"];
      const auto n = m.size();
      std::vector<double> fx, fy, ax, ay, tx, ty;
      for (std::size_t i = 0; i < n; ++i) {
        double sum = 0;
        std::size_t cnt = 0;
        for (std::size_t j = 0; j <= i; ++j) {
          const double v = num(m["train_task_" + std::to_string(i)].value("eval_task_" + std::to_string(j), json::object()).value("dtw", json()));
          if (std::isfinite(v)) { sum += v; ++cnt; }
          if (i + 1 == n && std::isfinite(v)) { fx.push_back(static_cast<double>(j)); fy.push_back(v); }
        }
        if (cnt) { ax.push_back(static_cast<double>(i)); ay.push_back(sum / static_cast<double>(cnt)); }
      }
      for (std::size_t j = 0; s.contains("per_task_train_seconds") && j < s["per_task_train_seconds"].size(); ++j) {
        tx.push_back(static_cast<double>(j));
        ty.push_back(num(s["per_task_train_seconds"][j]));
      }
      fe.push_back({fx, fy});
      ae.push_back({ax, ay});
      ts.push_back({tx, ty});
      vals["final"].push_back(ay.empty() ? NAN : ay.back());
      for (const auto& k : {"CL_score", "CL_stability", "REM", "MS", "TE"}) vals[k].push_back(num(s.value("cl_scores", json::object()).value(k, json())));
    }
    t["rows"].push_back({label, dirs.size(), mean_pm(vals["final"]), mean_pm(vals["CL_score"]), mean_pm(vals["CL_stability"]),
                         mean_pm(vals["REM"]), mean_pm(vals["MS"]), mean_pm(vals["TE"]), mean_pm(vals["converged"])});
    if (!fe.empty()) {
      final_err["series"].push_back(band_series(label, fe, o));
      avg_err["series"].push_back(band_series(label, ae, o));
      secs["series"].push_back(band_series(label, ts, o));
    }
    if (!cf.empty()) conv["series"].push_back(band_series(label, cf, o));
  }
  overview["charts"] = json::array({t});
  for (auto* c : {&final_err, &avg_err, &secs, &conv})
    if (!(*c)["series"].empty()) overview["charts"].push_back(*c);
  if (runs_with_stability == 0)
    overview["charts"].push_back({{"type", "text"}, {"title", "stability"},
                                  {"text", "No run of this comparison holds a saved stability check. Save one per task with "
                                           "`stablelearn lfd stability RUN --task J > RUN/stability_J.json` (the comparison "
                                           "page reads saved checks; a single run's page also computes them within "
                                           "--stability-budget)."}});
  sections.push_back(overview);
  return sections;
}

fs::path find_charting_library(const std::vector<fs::path>& web_dirs) {
  const fs::path rel = fs::path("node_modules") / "echarts" / "dist" / "echarts.min.js";
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("STABLELEARN_WEB_DIR"); env != nullptr && *env != '\0') tried.push_back(fs::path(env) / rel);
  for (const auto& d : web_dirs) tried.push_back(d / rel);
  std::string list;
  for (const auto& p : tried) {
    if (fs::is_regular_file(p)) return p;
    list += "\n  " + p.string();
  }
  SL_THROW(IoError, "the charting library (ECharts ", kChartingLibraryVersion, ") is not installed; looked for:", list,
           "\nRun scripts/setup.sh (it runs `npm ci` in report/web), or set STABLELEARN_WEB_DIR to a folder holding "
           "node_modules/echarts");
}

std::string render_html(const json& page, const fs::path& library_js) {
  std::string tpl = kReportTemplate;
  // JSON inside <script>: "</" would end the element; U+2028/9 are fine in JSON and modern JS.
  std::string data = page.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string safe;
  safe.reserve(data.size() + 64);
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '<' && i + 1 < data.size() && (data[i + 1] == '/' || data[i + 1] == '!')) safe += "\\u003c";
    else safe += data[i];
  }
  std::string lib = read_file_text(library_js);
  // The library's text must not close the script element either.
  for (std::size_t p = 0; (p = lib.find("</script", p)) != std::string::npos; p += 9) lib.replace(p, 2, "<\\/");
  const std::string lib_mark = "/*%SL_CHARTING_LIBRARY%*/", data_mark = "\"%SL_PAGE_DATA%\"", title_mark = "%SL_TITLE%";
  auto replace_once = [&](const std::string& mark, const std::string& with) {
    const auto p = tpl.find(mark);
    SL_CHECK(p != std::string::npos, InternalError, "report template lacks ", mark);
    tpl.replace(p, mark.size(), with);
  };
  std::string title = page.value("title", std::string("stablelearn report"));
  std::string esc;
  for (char c : title) esc += c == '<' ? std::string("&lt;") : c == '&' ? std::string("&amp;") : std::string(1, c);
  replace_once(title_mark, esc);
  replace_once(data_mark, safe);
  replace_once(lib_mark, lib);
  return tpl;
}

}  // namespace stablelearn::report

namespace stablelearn::report {

namespace {

/// A count or fraction key of an `lfd stability` report, NaN when absent.
double key_or_nan(const json& r, const char* key) { return r.contains(key) ? num(r[key]) : NAN; }

std::string percent(double v) { return std::isfinite(v) ? fmt_num(100.0 * v) + " %" : std::string("n/a"); }
std::string number_or_na(double v) { return std::isfinite(v) ? fmt_num(v) : std::string("n/a"); }

}  // namespace

std::vector<fs::path> saved_stability_files(const fs::path& dir, std::int64_t task) {
  std::vector<fs::path> found;
  for (const auto& name : {"stability_" + std::to_string(task) + ".json", "stability_task" + std::to_string(task) + ".json",
                           "stability_euler_task" + std::to_string(task) + ".json"})
    if (fs::is_regular_file(dir / name)) found.push_back(dir / name);
  return found;
}

StabilityShares stability_shares(const json& r) {
  StabilityShares s;
  const auto method = r.value("method", std::string());
  if (method == "discrete") {
    const double applied = key_or_nan(r, "steps_applied"), pulled = key_or_nan(r, "projected_steps");
    s.all = applied > 0 ? pulled / applied : key_or_nan(r, "projected_fraction");
    const double outside = key_or_nan(r, "steps_outside_ball"), pulled_out = key_or_nan(r, "projected_steps_outside_ball");
    s.on_the_way = outside > 0 ? pulled_out / outside : (outside == 0 ? 0.0 : key_or_nan(r, "projected_fraction_outside_ball"));
  } else if (method == "certified") {
    const double sub = key_or_nan(r, "substeps"), pulled = key_or_nan(r, "projected_substeps");
    s.all = sub > 0 ? pulled / sub : NAN;
  }
  if (method == "discrete" || method == "certified") {
    const double demo = key_or_nan(r, "demo_steps"), pulled = key_or_nan(r, "demo_projected_steps");
    s.from_demo_starts = demo > 0 ? pulled / demo : key_or_nan(r, "demo_projected_fraction");
  }
  return s;
}

json stability_section(const std::vector<StabilityResult>& results, const std::string& note, const ReportOptions& o) {
  json sec = section("Stability of the learned skills (`stablelearn lfd stability`: long rollouts from the demonstrations' starts "
                     "and random starts in a box 1.5x their extent)");
  if (!note.empty()) sec["charts"].push_back({{"type", "text"}, {"title", "where these numbers come from"}, {"text", note}});
  std::string sources;
  for (const auto& r : results)
    if (sources.find(r.source) == std::string::npos) sources += (sources.empty() ? "" : ", ") + r.source;
  if (results.size() > 3) sources = "the sources named per task in the table";
  auto t = table("converged fraction, final distances and projected (pulled) steps per task",
                 {"task", "name", "from", "method", "starts", "horizon (s)", "tolerance", "converged", "median final distance",
                  "max final distance", "pulled: all steps", "pulled: on the way (outside the certified ball)",
                  "pulled: from the demonstrations' starts", "DTW from the demonstrations' starts (median)",
                  "arrival (median, demonstrations' starts) / demonstration duration (s)", "orientation error (median)"},
                 fs::path(), o);
  t["source"] = sources;
  t["wide"] = true;  // 16 columns: the whole width of the page
  json conv = {{"type", "bars"}, {"title", "converged fraction per task (final distance within the tolerance)"}, {"x_label", "task"},
               {"y_label", "converged %"}, {"y_max", 100}, {"categories", json::array()}, {"series", json::array()}, {"source", sources}};
  json pulled = {{"type", "bars"}, {"title", "share of the solver steps radially pulled (projected) by the certificate"},
                 {"x_label", "task"}, {"y_label", "% of steps"}, {"categories", json::array()}, {"series", json::array()},
                 {"source", sources}};
  auto dist = lines_chart("final distance to the goal per start, in tolerances (1 = the tolerance)", "task", "final distance / tolerance",
                          fs::path(), o);
  dist["source"] = sources;
  std::map<std::string, json> conv_by_method;  // one bar series per method (saved Euler next to certified)
  json p_all = json::array(), p_way = json::array(), p_demo = json::array();
  bool any_pulled = false;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> dist_by_method;
  std::vector<std::string> categories;
  for (const auto& res : results) {
    const auto label = std::to_string(res.task);
    if (std::find(categories.begin(), categories.end(), label) == categories.end()) categories.push_back(label);
  }
  for (const auto& res : results) {
    const auto& r = res.report;
    const auto method = r.value("method", std::string("?"));
    const double tol = key_or_nan(r, "tolerance");
    std::int64_t ok = 0, n = 0;
    if (r.contains("final_distances"))
      for (const auto& d : r["final_distances"]) {
        ++n;
        const double v = num(d);
        if (std::isfinite(v) && v <= tol) ++ok;
        if (std::isfinite(v) && tol > 0) {
          dist_by_method[method].first.push_back(static_cast<double>(res.task));
          dist_by_method[method].second.push_back(v / tol);
        }
      }
    const double frac = n > 0 ? static_cast<double>(ok) / static_cast<double>(n) : key_or_nan(r, "converged_fraction");
    const auto sh = stability_shares(r);
    const double arrival = key_or_nan(r, "demo_arrival_median_seconds"), duration = key_or_nan(r, "demo_duration_seconds");
    t["rows"].push_back({res.task, r.value("task_name", std::string()), res.source, method, r.value("starts", n),
                         number_or_na(key_or_nan(r, "horizon_seconds")), fmt_num(tol),
                         std::to_string(ok) + "/" + std::to_string(n) + " (" + percent(frac) + ")",
                         number_or_na(key_or_nan(r, "median_final_distance")), number_or_na(key_or_nan(r, "max_final_distance")),
                         percent(sh.all), percent(sh.on_the_way), percent(sh.from_demo_starts),
                         number_or_na(key_or_nan(r, "demo_dtw_median")),
                         std::isfinite(arrival) ? (arrival < 0 ? std::string("never") : fmt_num(arrival)) + " / " + number_or_na(duration) : "n/a",
                         number_or_na(key_or_nan(r, "demo_quat_median"))});
    auto& cs = conv_by_method[method];
    if (cs.is_null()) cs = {{"name", method}, {"y", json(std::vector<json>(categories.size()))}};
    const auto at = static_cast<std::size_t>(std::find(categories.begin(), categories.end(), std::to_string(res.task)) - categories.begin());
    cs["y"][at] = round_sig(100.0 * frac);
    if (method == "discrete" || method == "certified") {
      any_pulled = true;
      while (p_all.size() < categories.size()) { p_all.push_back(nullptr); p_way.push_back(nullptr); p_demo.push_back(nullptr); }
      p_all[at] = std::isfinite(sh.all) ? json(round_sig(100.0 * sh.all)) : json();
      p_way[at] = std::isfinite(sh.on_the_way) ? json(round_sig(100.0 * sh.on_the_way)) : json();
      p_demo[at] = std::isfinite(sh.from_demo_starts) ? json(round_sig(100.0 * sh.from_demo_starts)) : json();
    }
  }
  for (const auto& c : categories) {
    conv["categories"].push_back(c);
    pulled["categories"].push_back(c);
  }
  for (auto& [m, s] : conv_by_method) conv["series"].push_back(s);
  for (auto& [m, xy] : dist_by_method) {
    json s = {{"name", m}, {"x", rounded(xy.first)}, {"y", rounded(xy.second)}, {"style", "points"}, {"size", 5}};
    dist["series"].push_back(s);
  }
  dist["hlines"].push_back({{"name", "tolerance"}, {"y", 1}});
  sec["charts"].push_back(t);
  sec["charts"].push_back(conv);
  if (!dist["series"].empty()) sec["charts"].push_back(dist);
  if (any_pulled) {
    while (p_all.size() < categories.size()) { p_all.push_back(nullptr); p_way.push_back(nullptr); p_demo.push_back(nullptr); }
    pulled["series"] = json::array({{{"name", "all steps"}, {"y", p_all}},
                                    {{"name", "on the way (outside the certified ball)"}, {"y", p_way}},
                                    {{"name", "from the demonstrations' starts (as executed)"}, {"y", p_demo}}});
    sec["charts"].push_back(pulled);
  }
  return sec;
}

}  // namespace stablelearn::report
