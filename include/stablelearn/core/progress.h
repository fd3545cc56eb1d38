// The one progress reporter of every run (shared/STYLE.md #16): a bar with rate and ETA redrawn in
// place on a terminal (at most 5 times a second), one plain line per 10 % of each stage when the
// stream is not a terminal (logs, CI), nothing when quiet. Torch-free.
//
//   ProgressReporter bar;                                  // stderr, terminal or lines
//   bar.update("task 1/5", iteration, iterations, "loss 0.31");
//
// A stage is identified by its label: a new label restarts the stage clock (rate and ETA are per
// stage) and always prints.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace stablelearn {

class ProgressReporter {
 public:
  enum class Mode {
    Auto,      ///< Terminal when the stream is a terminal, Lines otherwise
    Terminal,  ///< one line redrawn with '\r', a newline when a stage completes
    Lines,     ///< a line when a stage starts, at every further 10 % and when it completes
    Quiet,     ///< nothing
  };
  explicit ProgressReporter(Mode mode = Mode::Auto, std::FILE* out = stderr);

  /// `done` of `total` units (`unit`, e.g. "it", "step") of the stage `label`; `detail` (loss,
  /// accuracy) is printed after the counts. The line reads
  ///   LABEL [#####...] UNIT DONE/TOTAL DETAIL  ELAPSEDs RATE UNIT/s ETA ETAs
  /// with ELAPSED, RATE and ETA measured over the stage.
  void update(const std::string& label, std::int64_t done, std::int64_t total, const std::string& detail = {},
              const std::string& unit = "it");
  /// A line of text between updates (not in Quiet mode).
  void note(const std::string& text);
  /// The mode in effect (Auto resolved).
  Mode mode() const { return mode_; }

 private:
  using Clock = std::chrono::steady_clock;
  Mode mode_;
  std::FILE* out_;
  std::string label_;
  bool open_line_ = false;  ///< a terminal line without its newline
  Clock::time_point stage_start_{}, shown_{};
  std::int64_t last_decile_ = -1;
};

}  // namespace stablelearn
