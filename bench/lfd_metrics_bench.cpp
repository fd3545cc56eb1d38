// Trajectory metrics (src/lfd/trajectory_metrics.cpp) on two 1000 x 2 trajectories, the size of
// one LASA demonstration. The contender DTW/Fréchet (two rolling rows, O(m) memory) runs beside
// a naive baseline written here: the spec's full (n+1) x (m+1) table, distances computed inside
// the recurrence. Results and the command line are in BENCHMARKS.md ("LfD trajectory metrics").
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "stablelearn/lfd/trajectory_metrics.h"

namespace {

using stablelearn::lfd::TrajectoryView;

constexpr std::int64_t kRows = 1000;

/// Two smooth, LASA-like 2-D curves (a decaying spiral towards the origin and a perturbed,
/// slightly time-warped copy), deterministic.
struct Pair {
  std::vector<double> a, b;
  Pair(std::int64_t rows, std::int64_t cols) : a(rows * cols), b(rows * cols) {
    std::mt19937 gen(42);
    std::normal_distribution<double> noise(0.0, 0.3);
    for (std::int64_t i = 0; i < rows; ++i) {
      const double s = double(i) / double(rows - 1);
      const double w = s + 0.05 * std::sin(3.0 * s);  // time warp of the copy
      for (std::int64_t k = 0; k < cols; ++k) {
        const double phase = 1.5707963 * double(k);
        a[i * cols + k] = 40.0 * (1 - s) * std::cos(4.0 * s + phase);
        b[i * cols + k] = 40.0 * (1 - w) * std::cos(4.0 * w + phase) + noise(gen);
      }
    }
  }
  TrajectoryView va(std::int64_t rows, std::int64_t cols) const { return {a.data(), rows, cols}; }
  TrajectoryView vb(std::int64_t rows, std::int64_t cols) const { return {b.data(), rows, cols}; }
};

const Pair& data2() {
  static const Pair p(kRows, 2);
  return p;
}

/// Baseline: the spec's recurrence on the full table (O(n·m) memory).
template <bool Dtw>
double naive_full_matrix(const TrajectoryView& a, const TrajectoryView& b) {
  const std::int64_t n = a.rows, m = b.rows, d = a.cols;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> D(n + 1, std::vector<double>(m + 1, inf));
  D[0][0] = 0.0;
  for (std::int64_t i = 1; i <= n; ++i) {
    for (std::int64_t j = 1; j <= m; ++j) {
      double s = 0;
      for (std::int64_t k = 0; k < d; ++k) {
        const double t = a.row(i - 1)[k] - b.row(j - 1)[k];
        s += t * t;
      }
      const double c = std::sqrt(s);
      const double best = std::min({D[i - 1][j], D[i][j - 1], D[i - 1][j - 1]});
      D[i][j] = Dtw ? c + best : std::max(best, c);
    }
  }
  return D[n][m];
}

void check_same(benchmark::State& state, double got, double want) {
  if (std::abs(got - want) > 1e-9 * (1 + std::abs(want))) {
    state.SkipWithError("contender and naive baseline disagree");
  }
}

void BM_DtwRollingRows(benchmark::State& state) {
  const auto& p = data2();
  const auto a = p.va(kRows, 2), b = p.vb(kRows, 2);
  double v = 0;
  for (auto _ : state) {
    v = stablelearn::lfd::dtw_distance(a, b);
    benchmark::DoNotOptimize(v);
  }
  check_same(state, v, naive_full_matrix<true>(a, b));
  state.counters["cells/s"] =
      benchmark::Counter(double(kRows * kRows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DtwNaiveFullMatrix(benchmark::State& state) {
  const auto& p = data2();
  const auto a = p.va(kRows, 2), b = p.vb(kRows, 2);
  for (auto _ : state) benchmark::DoNotOptimize(naive_full_matrix<true>(a, b));
  state.counters["cells/s"] =
      benchmark::Counter(double(kRows * kRows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_FrechetRollingRows(benchmark::State& state) {
  const auto& p = data2();
  const auto a = p.va(kRows, 2), b = p.vb(kRows, 2);
  double v = 0;
  for (auto _ : state) {
    v = stablelearn::lfd::frechet_distance(a, b);
    benchmark::DoNotOptimize(v);
  }
  check_same(state, v, naive_full_matrix<false>(a, b));
  state.counters["cells/s"] =
      benchmark::Counter(double(kRows * kRows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_FrechetNaiveFullMatrix(benchmark::State& state) {
  const auto& p = data2();
  const auto a = p.va(kRows, 2), b = p.vb(kRows, 2);
  for (auto _ : state) benchmark::DoNotOptimize(naive_full_matrix<false>(a, b));
  state.counters["cells/s"] =
      benchmark::Counter(double(kRows * kRows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SweptArea(benchmark::State& state) {
  const auto& p = data2();
  const auto a = p.va(kRows, 2), b = p.vb(kRows, 2);
  for (auto _ : state) benchmark::DoNotOptimize(stablelearn::lfd::swept_area(a, b));
}

/// 1000 x 4 scalar-first quaternions: a slow rotation about a drifting axis and a noisy copy.
struct QuatPair {
  std::vector<double> a, b;
  QuatPair() : a(kRows * 4), b(kRows * 4) {
    std::mt19937 gen(7);
    std::normal_distribution<double> noise(0.0, 0.02);
    for (std::int64_t i = 0; i < kRows; ++i) {
      const double s = double(i) / double(kRows - 1);
      const double half = 1.2 * s;
      const double ax[3] = {std::cos(s), std::sin(s), 0.5};
      const double n = std::sqrt(ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2]);
      a[i * 4] = std::cos(half);
      for (int k = 0; k < 3; ++k) a[i * 4 + 1 + k] = std::sin(half) * ax[k] / n;
      for (int k = 0; k < 4; ++k) b[i * 4 + k] = a[i * 4 + k] + noise(gen);
    }
  }
};

void BM_QuaternionError(benchmark::State& state) {
  static const QuatPair q;
  const TrajectoryView a{q.a.data(), kRows, 4}, b{q.b.data(), kRows, 4};
  for (auto _ : state) benchmark::DoNotOptimize(stablelearn::lfd::quaternion_error(a, b));
}

}  // namespace

BENCHMARK(BM_DtwRollingRows)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DtwNaiveFullMatrix)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FrechetRollingRows)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FrechetNaiveFullMatrix)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SweptArea)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QuaternionError)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
