// One-line progress of a task-by-task run on stderr: redrawn in place on a terminal (at most
// 5 times a second), one line per 10 % of each task otherwise (logs, CI).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace stablelearn::cli {

class TaskProgressBar {
 public:
  TaskProgressBar() : tty_(isatty(STDERR_FILENO) != 0) {}
  /// `iteration` of `iterations` within task `task` of `tasks`; `detail` is appended (loss, accuracy).
  void show(std::int64_t task, std::int64_t tasks, std::int64_t iteration, std::int64_t iterations, double elapsed,
            double task_elapsed, const std::string& detail) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = iteration == iterations;
    const std::int64_t decile = iterations > 0 ? iteration * 10 / iterations : 10;
    if (tty_) {
      if (!last && now - shown_ < std::chrono::milliseconds(200)) return;
    } else if (!(last || decile != last_decile_ || task != last_task_)) {
      return;
    }
    shown_ = now;
    last_decile_ = decile;
    last_task_ = task;
    const double eta = iteration > 0 ? task_elapsed / static_cast<double>(iteration) * static_cast<double>(iterations - iteration) : 0;
    const int width = 24;
    const int filled = iterations > 0 ? static_cast<int>(width * iteration / iterations) : width;
    std::fprintf(stderr, "%stask %lld/%lld [%s%s] it %lld/%lld %s %5.0fs ETA %4.0fs%s", tty_ ? "\r" : "",
                 static_cast<long long>(task + 1), static_cast<long long>(tasks), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(iteration),
                 static_cast<long long>(iterations), detail.c_str(), elapsed, eta, tty_ && !last ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point shown_{};
  std::int64_t last_decile_ = -1, last_task_ = -1;
};

}  // namespace stablelearn::cli
