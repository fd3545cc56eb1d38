#include "stablelearn/core/progress.h"

#include <unistd.h>

#include <algorithm>

namespace stablelearn {

ProgressReporter::ProgressReporter(Mode mode, std::FILE* out) : mode_(mode), out_(out) {
  if (mode_ == Mode::Auto) mode_ = out_ != nullptr && isatty(fileno(out_)) != 0 ? Mode::Terminal : Mode::Lines;
  if (out_ == nullptr) mode_ = Mode::Quiet;
}

void ProgressReporter::update(const std::string& label, std::int64_t done, std::int64_t total, const std::string& detail,
                              const std::string& unit) {
  if (mode_ == Mode::Quiet) return;
  const auto now = Clock::now();
  const bool new_stage = label != label_;
  if (new_stage) {
    if (open_line_) std::fputc('\n', out_);
    open_line_ = false;
    label_ = label;
    stage_start_ = now;
    last_decile_ = -1;
  }
  const bool last = done >= total;
  const std::int64_t decile = total > 0 ? std::min<std::int64_t>(done * 10 / total, 10) : 10;
  if (mode_ == Mode::Terminal) {
    if (!new_stage && !last && now - shown_ < std::chrono::milliseconds(200)) return;
  } else if (!(new_stage || last || decile != last_decile_)) {
    return;
  }
  if (last && !new_stage && decile == last_decile_ && !open_line_) return;  // the completed stage is printed once
  shown_ = now;
  last_decile_ = decile;
  const double elapsed = std::chrono::duration<double>(now - stage_start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(std::max<std::int64_t>(total - done, 0)) : 0.0;
  constexpr int width = 24;
  const int filled = total > 0 ? static_cast<int>(width * std::min(done, total) / total) : width;
  const bool terminal = mode_ == Mode::Terminal;
  std::fprintf(out_, "%s%s [%s%s] %s %lld/%lld%s%s %5.0fs %.3g %s/s ETA %4.0fs%s", terminal ? "\r" : "", label.c_str(),
               std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), unit.c_str(),
               static_cast<long long>(done), static_cast<long long>(total), detail.empty() ? "" : " ", detail.c_str(),
               elapsed, rate, unit.c_str(), eta, terminal && !last ? "" : "\n");
  open_line_ = terminal && !last;
  std::fflush(out_);
}

void ProgressReporter::note(const std::string& text) {
  if (mode_ == Mode::Quiet) return;
  if (open_line_) std::fputc('\n', out_);
  open_line_ = false;
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

}  // namespace stablelearn
