// Continual-learning scores (shared/specs/clfd-snode.md §4.1); formulas are in the header.
#include "stablelearn/lfd/cl_scores.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn::lfd {

double threshold_accuracy(const std::vector<double>& errors, double tau, bool strict) {
  SL_CHECK(!errors.empty(), DataError, "threshold accuracy: no per-demonstration errors");
  SL_CHECK(!std::isnan(tau), DataError, "threshold accuracy: threshold is NaN");
  // A NaN error (a diverged rollout) is never below the threshold, as with numpy comparisons.
  const auto below = std::count_if(errors.begin(), errors.end(), [&](double e) {
    return strict ? e < tau : e <= tau;
  });
  return static_cast<double>(below) / static_cast<double>(errors.size());
}

namespace {

void check_series(const std::vector<double>& v, std::size_t n, const char* what) {
  SL_CHECK(v.size() == n, ShapeError, "CL scores: ", what, " has ", v.size(),
           " values, the accuracy matrix has ", n, " tasks");
  for (std::size_t i = 0; i < n; ++i) {
    SL_CHECK(std::isfinite(v[i]) && v[i] > 0, DataError, "CL scores: ", what, "[", i, "] = ",
             v[i], " (must be finite and > 0)");
  }
}

}  // namespace

ClScores compute_cl_scores(const ClScoreInputs& in) {
  const std::size_t n = in.acc.size();
  SL_CHECK(n > 0, ShapeError, "CL scores: the accuracy matrix is empty (0 tasks)");
  for (std::size_t i = 0; i < n; ++i) {
    SL_CHECK(in.acc[i].size() == n, ShapeError, "CL scores: accuracy matrix row ", i, " has ",
             in.acc[i].size(), " entries, expected ", n, " (N x N)");
    for (std::size_t j = 0; j <= i; ++j) {
      const double a = in.acc[i][j];
      SL_CHECK(std::isfinite(a) && a >= 0 && a <= 1, DataError, "CL scores: accuracy a[", i,
               "][", j, "] = ", a, " (must lie in [0, 1])");
    }
  }
  check_series(in.sizes, n, "sizes");
  check_series(in.train_seconds, n, "train_seconds");
  const double final_size = in.sizes.back();
  SL_CHECK(std::isfinite(in.max_final_size) && in.max_final_size >= 0, DataError,
           "CL scores: max_final_size = ", in.max_final_size, " (must be finite and >= 0)");
  SL_CHECK(in.max_final_size == 0 || in.max_final_size >= final_size, DataError,
           "CL scores: max_final_size = ", in.max_final_size,
           " is smaller than this method's final size ", final_size,
           " (it is the largest final size over all compared methods)");

  const double N = static_cast<double>(n);
  ClScores s;
  double lower = 0, backward = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j <= i; ++j) {
      lower += in.acc[i][j];
      if (i > j) backward += in.acc[i][j] - in.acc[j][j];
    }
  }
  s.acc = lower / (N * (N + 1) / 2);
  s.bwt = n > 1 ? backward / (N * (N - 1) / 2) : 0.0;
  s.bwt_plus = std::max(s.bwt, 0.0);
  s.rem = 1 - std::abs(std::min(s.bwt, 0.0));
  double size_ratio = 0, time_ratio = 0;
  for (std::size_t i = 0; i < n; ++i) {
    size_ratio += in.sizes[0] / in.sizes[i];
    time_ratio += in.train_seconds[0] / in.train_seconds[i];
  }
  s.ms = std::min(1.0, size_ratio / N);
  s.te = std::min(1.0, time_ratio / N);
  const double max_size = in.max_final_size > 0 ? in.max_final_size : final_size;
  s.fs = 1 - final_size / max_size;
  s.sss = in.stores_data ? 1 - std::min(1.0, (N * (N + 1) / (2 * N)) / N) : 1.0;

  const std::array<double, 6> parts = {s.acc, s.rem, s.ms, s.te, s.fs, s.sss};
  double mean = 0;
  for (double p : parts) mean += p;
  mean /= static_cast<double>(parts.size());
  double ss = 0;
  for (double p : parts) ss += (p - mean) * (p - mean);
  s.cl_score = mean;
  s.cl_stability = 1 - std::sqrt(ss / static_cast<double>(parts.size() - 1));
  return s;
}

}  // namespace stablelearn::lfd
