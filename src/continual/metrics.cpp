#include "stablelearn/continual/metrics.h"

#include <algorithm>
#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::continual {

MatrixMetrics matrix_metrics(const std::vector<std::vector<double>>& R, const std::vector<double>& init,
                             const std::vector<double>& sizes, std::size_t trained) {
  SL_CHECK(!R.empty(), ShapeError, "matrix_metrics: empty accuracy matrix");
  bool lower = init.empty() && R.size() >= 2;  // row t holds tasks 0..t
  for (std::size_t t = 0; t < R.size(); ++t) lower = lower && R[t].size() == t + 1;
  const auto cols = lower ? R.size() : R.front().size();
  if (!lower)
    for (const auto& row : R) SL_CHECK(row.size() == cols, ShapeError, "matrix_metrics: ragged accuracy matrix");
  const std::size_t T = trained == 0 ? R.size() : trained;
  SL_CHECK(T <= R.size() && T <= cols, ShapeError, "matrix_metrics: ", T, " trained tasks but R is ", R.size(), "x", cols);
  SL_CHECK(init.empty() || init.size() == cols, ShapeError, "matrix_metrics: init has ", init.size(), " entries, expected ", cols);
  SL_CHECK(sizes.empty() || sizes.size() == cols, ShapeError, "matrix_metrics: sizes has ", sizes.size(), " entries, expected ", cols);
  MatrixMetrics m;
  const auto& last = R[T - 1];
  // ACC over the tasks trained so far (all T columns once the stream is done).
  double s = 0;
  double diag = 0;
  for (std::size_t j = 0; j < T; ++j) {
    s += last[j];
    diag += R[j][j];
  }
  m.acc = s / static_cast<double>(T);
  m.plasticity = diag / static_cast<double>(T);
  if (!sizes.empty()) {
    double num = 0, den = 0;
    for (std::size_t j = 0; j < T; ++j) {
      num += sizes[j] * last[j];
      den += sizes[j];
    }
    m.acc_pooled = den > 0 ? num / den : 0;
    m.has_pooled = true;
  }
  if (T >= 2) {
    double bwt = 0, fmax = 0;
    for (std::size_t i = 0; i + 1 < T; ++i) {
      bwt += last[i] - R[i][i];
      double best = R[i][i];
      for (std::size_t t = i; t + 1 < T; ++t) best = std::max(best, R[t][i]);
      fmax += best - last[i];
    }
    m.bwt = bwt / static_cast<double>(T - 1);
    m.forgetting_just_learned = -m.bwt;
    m.forgetting_max = fmax / static_cast<double>(T - 1);
    if (!init.empty()) {
      double fwt = 0;
      for (std::size_t i = 1; i < T; ++i) fwt += R[i - 1][i] - init[i];
      m.fwt = fwt / static_cast<double>(T - 1);
      m.has_fwt = true;
    }
  }
  return m;
}

ContinualTracker::ContinualTracker(std::int64_t num_tasks, std::int64_t lca_beta, std::vector<std::int64_t> windows)
    : tasks_(num_tasks), beta_(lca_beta), windows_(std::move(windows)) {
  SL_CHECK(num_tasks >= 1 && lca_beta >= 1, ConfigError, "ContinualTracker: tasks and lca_beta must be >= 1");
  for (auto w : windows_) SL_CHECK(w >= 2, ConfigError, "ContinualTracker: windows must be >= 2, got ", w);
  const auto n = static_cast<std::size_t>(num_tasks);
  min_.assign(n, std::numeric_limits<double>::quiet_NaN());
  last_.assign(n, std::numeric_limits<double>::quiet_NaN());
  hist_.assign(windows_.size(), std::vector<std::deque<double>>(n));
  wf_.assign(windows_.size(), std::vector<double>(n, 0.0));
  lca_vals_.assign(n, {});
}

void ContinualTracker::record(std::int64_t current, const std::vector<double>& acc) {
  SL_CHECK(current >= 0 && current < tasks_, ShapeError, "ContinualTracker: task ", current, " outside 0..", tasks_ - 1);
  SL_CHECK(static_cast<std::int64_t>(acc.size()) >= current + 1, ShapeError, "ContinualTracker: ", acc.size(),
           " accuracies for ", current + 1, " seen tasks");
  current_ = current;
  ++steps_;
  for (std::int64_t i = 0; i <= current; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const double a = acc[k];
    last_[k] = a;
    if (i < current) min_[k] = std::isnan(min_[k]) ? a : std::min(min_[k], a);
    if (i == current && static_cast<std::int64_t>(lca_vals_[k].size()) < beta_) lca_vals_[k].push_back(a);
    for (std::size_t w = 0; w < windows_.size(); ++w) {
      auto& h = hist_[w][k];
      h.push_back(a);
      if (static_cast<std::int64_t>(h.size()) > windows_[w]) h.pop_front();
      // Largest drop A(a) − A(b), a < b, within the window: running max of earlier values.
      double best_prev = -std::numeric_limits<double>::infinity(), drop = 0;
      for (double v : h) {
        if (best_prev > -std::numeric_limits<double>::infinity()) drop = std::max(drop, best_prev - v);
        best_prev = std::max(best_prev, v);
      }
      wf_[w][k] = std::max(wf_[w][k], drop);
    }
  }
}

double ContinualTracker::min_acc() const {
  double s = 0;
  int n = 0;
  for (double m : min_)
    if (!std::isnan(m)) {
      s += m;
      ++n;
    }
  return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

double ContinualTracker::wc_acc() const {
  if (current_ < 0) return std::numeric_limits<double>::quiet_NaN();
  const double K = static_cast<double>(current_ + 1);
  const double a = last_[static_cast<std::size_t>(current_)];
  if (current_ == 0) return a;
  return a / K + (1.0 - 1.0 / K) * min_acc();
}

double ContinualTracker::windowed_forgetting(std::size_t w) const {
  SL_CHECK(w < windows_.size(), UsageError, "windowed_forgetting: no window ", w);
  if (current_ < 0) return 0;
  double s = 0;
  for (std::int64_t i = 0; i <= current_; ++i) s += wf_[w][static_cast<std::size_t>(i)];
  return s / static_cast<double>(current_ + 1);
}

double ContinualTracker::lca() const {
  double s = 0;
  int n = 0;
  for (const auto& v : lca_vals_)
    if (static_cast<std::int64_t>(v.size()) == beta_) {
      double m = 0;
      for (double a : v) m += a;
      s += m / static_cast<double>(beta_);
      ++n;
    }
  return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace stablelearn::continual
