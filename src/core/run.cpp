#include "stablelearn/core/run.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "stablelearn/core/config.h"
#include "stablelearn/core/env.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"

namespace stablelearn {

using nlohmann::json;
namespace fs = std::filesystem;

std::uint64_t derive_seed(std::int64_t seed, std::int64_t task, std::int64_t purpose) {
  std::uint64_t z = static_cast<std::uint64_t>(seed) * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(task) * 0xBF58476D1CE4E5B9ull +
                    static_cast<std::uint64_t>(purpose) * 0x94D049BB133111EBull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFull;
}

std::vector<std::string> config_differences(const std::string& stored_toml, const std::string& current_toml) {
  const auto a = Config::from_string(stored_toml, "stored config.toml").flat_values();
  const auto b = Config::from_string(current_toml, "current configuration").flat_values();
  std::map<std::string, std::pair<std::string, std::string>> diff;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    if (it == b.end())
      diff[k] = {v, "(absent)"};
    else if (it->second != v)
      diff[k] = {v, it->second};
  }
  for (const auto& [k, v] : b)
    if (!a.count(k)) diff[k] = {"(absent)", v};
  std::vector<std::string> out;
  for (const auto& [k, d] : diff) out.push_back(k + " = " + d.first + " in the run, " + d.second + " now");
  return out;
}

namespace {

bool holds_run(const fs::path& path, const std::string& marker) {
  if (!marker.empty()) return fs::exists(path / marker);
  return fs::is_directory(path) && !fs::is_empty(path);
}

/// The changed-config check of a resumed run (see RunDir::open).
void check_resumed_config(const fs::path& run, const std::string& current, const RunDirOptions& o) {
  const auto path = run / "config.toml";
  SL_CHECK(fs::exists(path), ConfigError, run.string(), ": --resume of a run without config.toml (not a run directory?)");
  const auto stored = read_file_text(path);
  if (stored == current) return;
  std::string compared = stored;
  if (o.reresolve_) {
    try {
      compared = o.reresolve_(stored);
    } catch (const Error& e) {
      SL_THROW(ConfigError, run.string(), ": --resume with a different configuration than the run was started with: ",
               path.string(), " does not resolve with this build (", e.what(), ")");
    }
    if (compared == current) {
      write_file_atomic(path, current);  // the same run, written in this build's resolved form
      return;
    }
  }
  const auto diff = config_differences(compared, current);
  std::string text;
  for (const auto& d : diff) text += (text.empty() ? "" : "; ") + d;
  SL_THROW(ConfigError, run.string(), ": --resume with a different configuration than the run was started with: ",
           text.empty() ? std::string("compare config.toml") : text);
}

/// Drops a torn last metrics.jsonl row: one without its newline (cut by a kill during the append)
/// or, with its newline, one that is not JSON (a row cut and then terminated by an older writer).
void drop_partial_metrics_row(const fs::path& path) {
  if (!fs::exists(path)) return;
  auto text = read_file_text(path);
  if (text.empty()) return;
  bool changed = false;
  if (text.back() != '\n') {
    const auto end = text.find_last_of('\n');
    text = end == std::string::npos ? std::string() : text.substr(0, end + 1);
    changed = true;
  }
  if (!text.empty()) {
    const auto prev = text.find_last_of('\n', text.size() - 2);
    const auto start = prev == std::string::npos ? 0 : prev + 1;
    const auto last = text.substr(start, text.size() - 1 - start);
    if (last.find_first_not_of(" \t\r") != std::string::npos && !json::accept(last)) {
      text.erase(start);
      changed = true;
    }
  }
  if (changed) write_file_atomic(path, text);
}

/// The temporary files of atomic writes that a killed process left behind (NAME.tmpDIGITS, in the
/// run directory and its subfolders): the file they were to replace is still the complete old one.
void remove_unfinished_writes(const fs::path& run) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::recursive_directory_iterator it(run, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const auto name = it->path().filename().string();
    const auto dot = name.rfind(".tmp");
    if (dot == std::string::npos || dot + 4 == name.size()) continue;
    if (name.find_first_not_of("0123456789", dot + 4) == std::string::npos) stale.push_back(it->path());
  }
  for (const auto& f : stale) fs::remove(f, ec);
}

}  // namespace

RunDir RunDir::open(const fs::path& path, const std::string& config_toml, const RunDirOptions& options) {
  std::error_code ec;
  fs::create_directories(path, ec);
  SL_CHECK(!ec, IoError, path.string(), ": cannot create run directory (", ec.message(), ")");
  const bool occupied = holds_run(path, options.marker_);
  if (occupied && options.resume_) {
    check_resumed_config(path, config_toml, options);
    drop_partial_metrics_row(path / "metrics.jsonl");
    remove_unfinished_writes(path);
    return RunDir(path, true);
  }
  SL_CHECK(!occupied, UsageError, path.string(), ": already holds a run (",
           options.marker_.empty() ? std::string("the folder is not empty") : options.marker_,
           "); use --resume to continue it or choose another --out");
  write_file_atomic(path / "config.toml", config_toml);
  fs::remove(path / "metrics.jsonl", ec);
  return RunDir(path, false);
}

void RunDir::write_text(const std::string& name, const std::string& text) const { write_file_atomic(file(name), text); }

void RunDir::write_json(const std::string& name, const json& value) const { write_file_atomic(file(name), value.dump(1) + "\n"); }

void RunDir::append_metrics(const json& row) const {
  const auto path = file("metrics.jsonl");
  const std::string line = row.dump() + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  SL_CHECK(fd >= 0, IoError, path.string(), ": cannot append (", std::strerror(errno), ")");
  const auto written = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  SL_CHECK(written == static_cast<ssize_t>(line.size()), IoError, path.string(), ": append failed (",
           written < 0 ? std::strerror(err) : "short write", ")");
}

std::vector<json> RunDir::read_metrics() const { return read_metrics_file(file("metrics.jsonl")); }

std::vector<json> read_metrics_file(const fs::path& path) {
  std::vector<json> rows;
  if (!fs::exists(path)) return rows;
  const auto text = read_file_text(path);
  std::size_t start = 0, line = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) break;  // a partial last row is not a row
    ++line;
    const auto row = text.substr(start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(json::parse(row));
    } catch (const json::exception& e) {
      SL_THROW(DataError, path.string(), ":", line, ": not a JSON row (", e.what(), ")");
    }
  }
  return rows;
}

std::vector<json> RunDir::keep_metrics(const std::function<bool(const json&)>& keep) const {
  std::vector<json> kept;
  std::string text;
  for (auto& row : read_metrics()) {
    if (!keep(row)) continue;
    text += row.dump() + "\n";
    kept.push_back(std::move(row));
  }
  write_file_atomic(file("metrics.jsonl"), text);
  return kept;
}

void RunDir::write_summary(json summary) const {
  summary["runtime"] = json::parse(runtime_info_json(runtime_info()));
  write_json("summary.json", summary);
}

void RunDir::write_manifest(const CheckpointManifest& manifest, const std::string& name) const {
  write_checkpoint_manifest(file(name), manifest);
}

CheckpointManifest RunDir::read_manifest(const std::string& format, int max_version, const std::string& name) const {
  return read_checkpoint_manifest(file(name), format, max_version);
}

}  // namespace stablelearn
