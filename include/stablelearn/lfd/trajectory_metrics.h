// Trajectory metrics of continual learning from demonstration (shared/specs/clfd-snode.md §4).
// Torch-free: they work on row-major double arrays so that the CLI, the trainer's evaluation and
// the benchmarks share one implementation.
//
// For a demonstration A (n x d) and a prediction B (m x d), with c(i, j) = ||A_i - B_j||_2 over
// all d columns:
//  * DTW:      D[0][0] = 0, D[i][0] = D[0][j] = inf,
//              D[i][j] = c(i-1, j-1) + min(D[i-1][j], D[i][j-1], D[i-1][j-1]); result D[n][m]
//              (sum of distances along the optimal warping path, no normalisation, no window).
//  * Fréchet:  discrete Fréchet distance, F[0][0] = c(0,0), F[i][0] = max(F[i-1][0], c(i,0)),
//              F[0][j] = max(F[0][j-1], c(0,j)), F[i][j] = max(min(F[i-1][j], F[i-1][j-1],
//              F[i][j-1]), c(i,j)); result F[n-1][m-1].
//  * Swept area: sum_{k=0}^{T-2} |shoelace(B_k, B_{k+1}, A_{k+1}, A_k)| / 2 using only columns 0
//              and 1 (n = m required, d >= 2).
//  * Quaternion error: rows are scalar-first quaternions (4 columns). Per sample, both are
//              normalised, p = q_true ⊗ conj(q_pred), w = round(p_w, 4 decimals),
//              err = arccos(w) if ||p_vec|| > 0 else 0 (half-angle, no sign disambiguation);
//              the value per demonstration is the mean over samples.
// DTW and Fréchet run in O(n·m) time and O(m) memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stablelearn::lfd {

/// A read-only view of one trajectory: `rows` samples of `cols` values, row-major.
struct TrajectoryView {
  const double* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  const double* row(std::int64_t i) const { return data + i * cols; }
};

/// The four metrics of one pair. All throw ShapeError for an empty trajectory (0 samples or 0
/// columns) or differing column counts; swept area and quaternion error also for differing
/// sample counts, swept area for < 2 columns, quaternion error for != 4 columns. Quaternion
/// error throws DataError for a zero or non-finite quaternion (it cannot be normalised). Values
/// are not checked for NaN/inf here (compute_metric does).
double dtw_distance(TrajectoryView a, TrajectoryView b);
double frechet_distance(TrajectoryView a, TrajectoryView b);
double swept_area(TrajectoryView a, TrajectoryView b);
double quaternion_error(TrajectoryView q_true, TrajectoryView q_pred);

/// Per-demonstration values and their mean and median (median of an even count = mean of the
/// two middle values, as numpy.median; NaN if any value is NaN, as numpy.median). summarize()
/// keeps the order of `per_demo` and throws DataError when it is empty.
struct MetricSummary {
  std::vector<double> per_demo;
  double mean = 0;
  double median = 0;
};
MetricSummary summarize(std::vector<double> per_demo);

enum class TrajectoryMetric { Dtw, Frechet, Swept, Quat };
/// "dtw", "frechet", "swept", "quat".
const char* metric_name(TrajectoryMetric m);
/// Parses a name; throws UsageError listing the known names.
TrajectoryMetric parse_metric(const std::string& name);

/// A batch of demonstrations [M, T, d], row-major.
struct TrajectoryBatch {
  const double* data = nullptr;
  std::int64_t demos = 0, rows = 0, cols = 0;
  TrajectoryView demo(std::int64_t m) const { return {data + m * rows * cols, rows, cols}; }
};

/// Computes `metric` for every demonstration pair (ref[m], pred[m]). Checks shapes (M and d
/// equal; T equal for swept and quat; >= 2 columns for swept; 4 or 7 columns for quat, using
/// columns 3..6 of 7-column arrays) and throws ShapeError with a message naming what differs
/// ("dtw: ref has 7 demonstrations, pred has 6"); 0 demonstrations, samples or columns are
/// ShapeErrors too. A NaN or infinite value in either batch is a DataError naming its place
/// ("pred contains NaN at demo 2, sample 17, column 0").
MetricSummary compute_metric(TrajectoryMetric metric, const TrajectoryBatch& ref,
                             const TrajectoryBatch& pred);

}  // namespace stablelearn::lfd
