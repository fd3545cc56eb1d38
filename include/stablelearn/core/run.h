// One run directory for every experiment (shared/STYLE.md #16): create, resume or refuse, the
// resolved config.toml and the changed-config check, the metrics.jsonl appender, summary.json with
// the runtime block, a versioned checkpoint manifest, and the one seed-derivation rule.
//
//   auto run = RunDir::open("runs/x", resolved_toml, RunDirOptions().resume(flag));
//   if (!run.resumed()) ... start from scratch ...
//   run.append_metrics({{"step", 10}, {"loss", 0.3}});
//   run.write_summary({{"seconds", 12.5}});            // adds "runtime"
//
// Every file is written atomically (a temporary beside it, then rename): a kill -9 at any moment
// leaves the old or the new file, never half of one. metrics.jsonl rows are appended with one
// write(2) of the row and its newline; a row cut by a kill (no newline) is dropped on resume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stablelearn {

/// Seed of one random generator of a run: SplitMix64 (Steele, Lea & Flood 2014; the finaliser of
/// java.util.SplittableRandom) of a linear mix of (seed, task, purpose), masked to 63 bits so it
/// is a valid non-negative int64 too:
///   z = seed·φ + task·0xBF58476D1CE4E5B9 + purpose·0x94D049BB133111EB + 0x632BE59BD9B4E019 (mod 2⁶⁴),
///   z = (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z = (z ⊕ z≫27)·0x94D049BB133111EB; z ⊕ z≫31.
/// `task` is the task (or seed index) the draws belong to and `purpose` names the generator within
/// it (batch order, probes, ...), so a resumed run draws exactly what an uninterrupted one would and
/// two generators never share a stream. (The same function `cl run` has always used.)
std::uint64_t derive_seed(std::int64_t seed, std::int64_t task, std::int64_t purpose);

/// The `purpose` numbers of derive_seed that the runs share (`cl run` and `lfd train`); a run's own
/// generators take numbers not listed here.
namespace seed_purpose {
constexpr std::int64_t init = 0;           ///< a task's new parameters (embedding, head)
constexpr std::int64_t batches = 1;        ///< batch order / training windows
constexpr std::int64_t method = 2;         ///< the strategy's or method's draws (replay, regularised tasks)
constexpr std::int64_t importance = 3;     ///< importance estimates (MAS's samples)
constexpr std::int64_t states = 4;         ///< states drawn for a training penalty (LfD's certificate)
constexpr std::int64_t probe_samples = 11; ///< the [diagnostics] monitor's samples
constexpr std::int64_t lanczos = 12;       ///< its Lanczos start vector
constexpr std::int64_t trace = 13;         ///< its Hutchinson probes
}  // namespace seed_purpose

/// The keys in which two TOML documents differ, as "key = A in the run, B now" (absent keys say
/// "(absent)"), one per differing key of Config::flat_values, in key order.
std::vector<std::string> config_differences(const std::string& stored_toml, const std::string& current_toml);

/// How a run directory is opened.
struct RunDirOptions {
  /// Continue a run already in the folder (--resume) instead of refusing it.
  bool resume_ = false;
  /// The file whose presence means "this folder holds a run" (e.g. "checkpoint.json" for `lfd
  /// train` and `cl run`, which may reuse a folder that holds other files). Empty (the default):
  /// any non-empty folder holds a run, so a fresh run needs a missing or empty folder.
  std::string marker_;
  /// On resume, when the stored config.toml differs from the current text: re-resolves the stored
  /// text with this build's defaults (keys added since the run was made get their defaults). When
  /// that equals the current text the file is rewritten and the run continues. May throw an Error
  /// (reported as a changed configuration). Empty: the texts are compared as they are.
  std::function<std::string(const std::string& stored)> reresolve_;

  RunDirOptions& resume(bool v) { resume_ = v; return *this; }
  RunDirOptions& marker(std::string v) { marker_ = std::move(v); return *this; }
  RunDirOptions& reresolve(std::function<std::string(const std::string&)> f) { reresolve_ = std::move(f); return *this; }
};

/// A versioned checkpoint manifest (a JSON file such as checkpoint.json): {"format", "version",
/// ...fields}. Readers accept versions 1..max_version and refuse newer ones (shared/STYLE.md #7).
struct CheckpointManifest {
  std::string format;    ///< e.g. "stablelearn-cl-checkpoint"
  int version = 1;       ///< the format version this file was written with
  nlohmann::json fields = nlohmann::json::object();  ///< everything else
};

/// Reads a manifest: IoError when missing, DataError when not JSON, of another format ("PATH: not a
/// stablelearn FORMAT file"), or of a version outside 1..max_version ("PATH: format version N was
/// written by a newer stablelearn; this build reads versions 1..M").
CheckpointManifest read_checkpoint_manifest(const std::filesystem::path& path, const std::string& format, int max_version);
/// Every complete row of a metrics.jsonl file (empty when it does not exist); DataError naming the
/// file and line for a row that is not JSON. RunDir::read_metrics() reads its own.
std::vector<nlohmann::json> read_metrics_file(const std::filesystem::path& path);
/// Writes a manifest atomically (format and version first).
void write_checkpoint_manifest(const std::filesystem::path& path, const CheckpointManifest& manifest);

/// An opened run directory.
class RunDir {
 public:
  /// Opens (creating it if needed) the run directory `path` for the resolved configuration
  /// `config_toml`:
  /// * the folder holds a run (see RunDirOptions::marker) and resume: the stored config.toml must
  ///   equal `config_toml` (after RunDirOptions::reresolve), else ConfigError naming every
  ///   differing key; a torn last metrics.jsonl row (no newline, or not JSON) is dropped; resumed() is true;
  /// * the folder holds a run and no resume: UsageError ("use --resume to continue it or choose
  ///   another --out");
  /// * otherwise (also resume of an empty folder): config.toml is written, a stale metrics.jsonl
  ///   is removed, resumed() is false.
  /// IoError when the folder cannot be created.
  static RunDir open(const std::filesystem::path& path, const std::string& config_toml, const RunDirOptions& options = {});

  const std::filesystem::path& path() const { return path_; }
  /// path()/name.
  std::filesystem::path file(const std::string& name) const { return path_ / name; }
  /// Whether an existing run is being continued.
  bool resumed() const { return resumed_; }

  /// Writes path()/name atomically.
  void write_text(const std::string& name, const std::string& text) const;
  /// Writes path()/name atomically as indented JSON.
  void write_json(const std::string& name, const nlohmann::json& value) const;

  /// Appends one row to metrics.jsonl (one write of the row and its newline).
  void append_metrics(const nlohmann::json& row) const;
  /// Every complete row of metrics.jsonl (empty when there is none). DataError naming the file and
  /// line for a row that is not JSON.
  std::vector<nlohmann::json> read_metrics() const;
  /// Keeps the metrics.jsonl rows for which `keep` is true (rewritten atomically), e.g. the rows of
  /// the tasks a resumed run has completed; returns the rows kept.
  std::vector<nlohmann::json> keep_metrics(const std::function<bool(const nlohmann::json&)>& keep) const;

  /// Writes summary.json: `summary` plus "runtime" (versions, threads, BLAS: core/env.h).
  void write_summary(nlohmann::json summary) const;

  /// Writes / reads the checkpoint manifest path()/name (see read_checkpoint_manifest).
  void write_manifest(const CheckpointManifest& manifest, const std::string& name = "checkpoint.json") const;
  CheckpointManifest read_manifest(const std::string& format, int max_version, const std::string& name = "checkpoint.json") const;

 private:
  RunDir(std::filesystem::path path, bool resumed) : path_(std::move(path)), resumed_(resumed) {}
  std::filesystem::path path_;
  bool resumed_ = false;
};

}  // namespace stablelearn
