// Trajectory metrics (shared/specs/clfd-snode.md §4); the maths is stated in the header.
//
// DTW and Fréchet share one dynamic-programming skeleton over an (n+1) x (m+1) table G with a
// sentinel row and column: G[0][0] = 0, G[i][0] = G[0][j] = inf, and G[i][j] holds the spec's
// D[i][j] (DTW) or F[i-1][j-1] (Fréchet). Only two rows of m+1 doubles are kept (and the costs
// of the last 4 columns of the 4 rows in flight). Rows are computed in strips of 4 as a skewed wavefront
// (see strip()): row k of the strip runs one column behind row k-1, which turns one long serial
// min-plus (DTW) / min-max (Fréchet) dependency chain into 4 independent ones, and the point
// distances of each column are computed with packed square roots a few steps before they are
// needed, so they overlap the recurrence. Fréchet runs on squared distances (one square root at
// the end). The operations per cell are the spec's, so results equal the full-table recurrence.
// Measured against that naive table in BENCHMARKS.md, "LfD trajectory metrics".
#include "stablelearn/lfd/trajectory_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "stablelearn/core/error.h"

namespace stablelearn::lfd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_view(const TrajectoryView& v, const char* what, const char* fn) {
  SL_CHECK(v.rows > 0, ShapeError, fn, ": ", what, " is empty (0 samples)");
  SL_CHECK(v.cols > 0, ShapeError, fn, ": ", what, " has 0 columns");
  SL_CHECK(v.data != nullptr, ShapeError, fn, ": ", what, " has no data");
}

void check_pair(const TrajectoryView& a, const TrajectoryView& b, const char* fn) {
  check_view(a, "the first trajectory", fn);
  check_view(b, "the second trajectory", fn);
  SL_CHECK(a.cols == b.cols, ShapeError, fn, ": the first trajectory has ", a.cols,
           " columns, the second has ", b.cols);
}

enum class Recurrence { SumMin, MaxMin };

/// One cell: G = c + min(diag, up, left) (DTW) or max(min(diag, up, left), c) (Fréchet).
template <Recurrence R>
inline double cell(double c, double diag, double up, double left) {
  const double best = std::min(std::min(diag, up), left);
  if constexpr (R == Recurrence::SumMin) {
    return c + best;
  } else {
    return std::max(best, c);
  }
}

/// Costs of one column j for the K rows of a strip: out[k] = ||a_{r+k} - b_j||_2, or its square
/// when !Sqrt. Sums run over the columns in order from 0 (dx² + dy² for d = 2) in every path.
template <int K, int D, bool Sqrt>
struct ColumnCosts {
  const double* ar;  // row r of a
  std::int64_t d;
#if defined(__SSE2__)
  static constexpr bool kPacked = D == 2 && K % 2 == 0;
  // x and y of rows (r, r+1), (r+2, r+3), ... GCC does not vectorise std::sqrt while it may
  // set errno, so the packed form is spelt out; _mm_sqrt_pd is correctly rounded like sqrt.
  __m128d ax[K / 2 > 0 ? K / 2 : 1], ay[K / 2 > 0 ? K / 2 : 1];
#else
  static constexpr bool kPacked = false;
#endif

  ColumnCosts(const double* rows, std::int64_t cols) : ar(rows), d(cols) {
#if defined(__SSE2__)
    if constexpr (kPacked) {
      for (int p = 0; p < K / 2; ++p) {
        ax[p] = _mm_set_pd(ar[(2 * p + 1) * 2], ar[2 * p * 2]);
        ay[p] = _mm_set_pd(ar[(2 * p + 1) * 2 + 1], ar[2 * p * 2 + 1]);
      }
    }
#endif
  }

  inline void operator()(const double* bj, double* out) const {
#if defined(__SSE2__)
    if constexpr (kPacked) {
      const __m128d bx = _mm_set1_pd(bj[0]), by = _mm_set1_pd(bj[1]);
      for (int p = 0; p < K / 2; ++p) {
        const __m128d dx = _mm_sub_pd(ax[p], bx), dy = _mm_sub_pd(ay[p], by);
        const __m128d sum = _mm_add_pd(_mm_mul_pd(dx, dx), _mm_mul_pd(dy, dy));
        _mm_storeu_pd(out + 2 * p, Sqrt ? _mm_sqrt_pd(sum) : sum);
      }
      return;
    }
#endif
    const std::int64_t cols = D > 0 ? D : d;
    for (int k = 0; k < K; ++k) {
      const double* ai = ar + k * cols;
      double s = 0;
      for (std::int64_t t = 0; t < cols; ++t) {
        const double diff = ai[t] - bj[t];
        s += diff * diff;
      }
      out[k] = Sqrt ? std::sqrt(s) : s;
    }
  }
};

/// Computes the K table rows G[r+1 .. r+K] from the row G[r] (`top`, m+1 values) and writes
/// the last of them to `bottom` (m+1 values). `ar` is row r of a.
template <int K>
constexpr int ring_columns() {  // columns of costs alive at once, rounded up to a power of 2
  int r = 1;
  while (r < K) r *= 2;
  return r;
}

///
/// Row r+1+k (its "chain" k) runs k columns behind chain k-1, so at each step the K chains need
/// only values from the previous step: G[r+k][c] (diag) and G[r+k][c+1] (up) are chain k-1's
/// last two values, G[r+1+k][c] (left) is chain k's own. The K cells of a step are therefore
/// independent and overlap in the pipeline, where a single row is one serial min/add chain.
/// The costs of column s are computed in step s, a few steps before chains 1..K-1 use them,
/// so the square roots also overlap the recurrence. Intermediate rows live in registers only.
template <int K, Recurrence R, int D, bool Sqrt>
inline void strip(const double* top, double* bottom, const double* ar, const double* b,
                  std::int64_t m, std::int64_t d) {
  const ColumnCosts<K, D, Sqrt> costs(ar, d);
  // Column c's costs are written in step c and last read in step c + K - 1: a ring suffices.
  constexpr std::int64_t kRing = ring_columns<K>();
  double cost[kRing * K];
  const std::int64_t cols = D > 0 ? D : d;
  double v[K], w[K];  // chain k: last value G[r+1+k][c], the one before it G[r+1+k][c-1]
  for (int k = 0; k < K; ++k) v[k] = w[k] = kInf;  // G[.][0] sentinel column
  bottom[0] = kInf;
  // Step s: costs of column s, then chain k computes column c = s - k when 0 <= c < m. The k
  // loops have constant trip counts and are unrolled, so v and w stay in registers.
  auto step = [&](std::int64_t s, auto guarded) {
    if (!decltype(guarded)::value || s < m) costs(b + s * cols, cost + (s & (kRing - 1)) * K);
#pragma GCC unroll 16
    for (int k = K - 1; k >= 0; --k) {  // high k first: each reads chain k-1's old values
      const std::int64_t c = s - k;
      if constexpr (decltype(guarded)::value) {
        if (c < 0 || c >= m) continue;
      }
      const double diag = k == 0 ? top[c] : w[k == 0 ? 0 : k - 1];
      const double up = k == 0 ? top[c + 1] : v[k == 0 ? 0 : k - 1];
      const double g = cell<R>(cost[(c & (kRing - 1)) * K + k], diag, up, v[k]);
      w[k] = v[k];
      v[k] = g;
      if (k == K - 1) bottom[c + 1] = g;
    }
  };
  const std::int64_t steps = m + K - 1;
  std::int64_t s = 0;
  // Ramp-up (and everything when m < K): only chains with 0 <= s - k < m run.
  for (; s < std::min<std::int64_t>(K - 1, steps); ++s) step(s, std::true_type{});
  // Steady state: all K chains run.
  for (; s < m; ++s) step(s, std::false_type{});
  // Ramp-down.
  for (; s < steps; ++s) step(s, std::true_type{});
}

/// The shared dynamic programme over strips of kStrip rows; returns G[n][m]. Memory: the two
/// rolling rows (m+1 each).
template <int D, Recurrence R>
double rolling_table(const TrajectoryView& a, const TrajectoryView& b) {
  constexpr int kStrip = 4;
  // Fréchet only compares costs, and sqrt is monotone (and correctly rounded, hence monotone
  // in floating point too), so it runs on squared distances and takes one root at the end:
  // bit-identical to the spec's recurrence on distances.
  constexpr bool kSqrt = R == Recurrence::SumMin;
  const std::int64_t n = a.rows, m = b.rows, d = a.cols;
  // One allocation: previous row and current row (m+1 each).
  std::vector<double> buf(static_cast<std::size_t>(2 * (m + 1)));
  double* prev = buf.data();
  double* cur = prev + (m + 1);
  prev[0] = 0.0;
  std::fill(prev + 1, prev + m + 1, kInf);
  std::int64_t i = 0;
  for (; i + kStrip <= n; i += kStrip) {
    strip<kStrip, R, D, kSqrt>(prev, cur, a.row(i), b.data, m, d);
    std::swap(prev, cur);
  }
  for (; i < n; ++i) {
    strip<1, R, D, kSqrt>(prev, cur, a.row(i), b.data, m, d);
    std::swap(prev, cur);
  }
  return kSqrt ? prev[m] : std::sqrt(prev[m]);
}

template <Recurrence R>
double dispatch(const TrajectoryView& a, const TrajectoryView& b) {
  if (a.cols == 2) return rolling_table<2, R>(a, b);
  return rolling_table<0, R>(a, b);
}

/// Returns the message fragment for a non-finite value ("NaN", "inf", "-inf").
const char* non_finite_name(double v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "inf" : "-inf";
}

void check_finite(const TrajectoryBatch& batch, const char* what) {
  const std::int64_t total = batch.demos * batch.rows * batch.cols;
  for (std::int64_t k = 0; k < total; ++k) {
    const double v = batch.data[k];
    if (!std::isfinite(v)) {
      const std::int64_t col = k % batch.cols;
      const std::int64_t sample = (k / batch.cols) % batch.rows;
      const std::int64_t demo = k / (batch.cols * batch.rows);
      SL_THROW(DataError, what, " contains ", non_finite_name(v), " at demo ", demo, ", sample ",
               sample, ", column ", col);
    }
  }
}

void check_batch(const TrajectoryBatch& batch, const char* what) {
  SL_CHECK(batch.demos > 0, ShapeError, what, " has no demonstrations");
  SL_CHECK(batch.rows > 0, ShapeError, what, " has empty demonstrations (0 samples)");
  SL_CHECK(batch.cols > 0, ShapeError, what, " has 0 columns");
  SL_CHECK(batch.data != nullptr, ShapeError, what, " has no data");
}

/// A copy of columns [first, first + 4) of a trajectory, as a 4-column view's storage.
std::vector<double> take_columns(const TrajectoryView& v, std::int64_t first) {
  std::vector<double> out(static_cast<std::size_t>(v.rows * 4));
  for (std::int64_t i = 0; i < v.rows; ++i) {
    for (std::int64_t k = 0; k < 4; ++k) out[i * 4 + k] = v.row(i)[first + k];
  }
  return out;
}

}  // namespace

double dtw_distance(TrajectoryView a, TrajectoryView b) {
  check_pair(a, b, "dtw");
  return dispatch<Recurrence::SumMin>(a, b);
}

double frechet_distance(TrajectoryView a, TrajectoryView b) {
  check_pair(a, b, "frechet");
  return dispatch<Recurrence::MaxMin>(a, b);
}

double swept_area(TrajectoryView a, TrajectoryView b) {
  check_pair(a, b, "swept");
  SL_CHECK(a.cols >= 2, ShapeError, "swept: needs at least 2 columns, got ", a.cols);
  SL_CHECK(a.rows == b.rows, ShapeError, "swept: the first trajectory has ", a.rows,
           " samples, the second has ", b.rows, " (the swept area needs equal lengths)");
  double total = 0.0;
  for (std::int64_t k = 0; k + 1 < a.rows; ++k) {
    // Quadrilateral B_k, B_{k+1}, A_{k+1}, A_k; shoelace sum over its closed boundary.
    const double* p[4] = {b.row(k), b.row(k + 1), a.row(k + 1), a.row(k)};
    double s = 0.0;
    for (int v = 0; v < 4; ++v) {
      const double* u = p[v];
      const double* w = p[(v + 1) % 4];
      s += u[0] * w[1] - w[0] * u[1];
    }
    total += std::abs(s) / 2.0;
  }
  return total;
}

double quaternion_error(TrajectoryView q_true, TrajectoryView q_pred) {
  check_pair(q_true, q_pred, "quat");
  SL_CHECK(q_true.cols == 4, ShapeError,
           "quat: quaternions need 4 columns (w, x, y, z), got ", q_true.cols);
  SL_CHECK(q_true.rows == q_pred.rows, ShapeError, "quat: the first trajectory has ",
           q_true.rows, " samples, the second has ", q_pred.rows);
  double sum = 0.0;
  for (std::int64_t i = 0; i < q_true.rows; ++i) {
    const double* q1 = q_true.row(i);
    const double* q2 = q_pred.row(i);
    const double n1 = std::sqrt(q1[0] * q1[0] + q1[1] * q1[1] + q1[2] * q1[2] + q1[3] * q1[3]);
    const double n2 = std::sqrt(q2[0] * q2[0] + q2[1] * q2[1] + q2[2] * q2[2] + q2[3] * q2[3]);
    SL_CHECK(n1 > 0 && std::isfinite(n1), DataError, "quat: the first trajectory has a ",
             "zero or non-finite quaternion at sample ", i);
    SL_CHECK(n2 > 0 && std::isfinite(n2), DataError, "quat: the second trajectory has a ",
             "zero or non-finite quaternion at sample ", i);
    const double a1 = q1[0] / n1, b1 = q1[1] / n1, c1 = q1[2] / n1, d1 = q1[3] / n1;
    // conj(q_pred), normalised.
    const double a2 = q2[0] / n2, b2 = -q2[1] / n2, c2 = -q2[2] / n2, d2 = -q2[3] / n2;
    // Hamilton product p = q1 ⊗ conj(q2).
    const double pw = a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2;
    const double px = a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2;
    const double py = a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2;
    const double pz = a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2;
    const double vec_norm = std::sqrt(px * px + py * py + pz * pz);
    if (vec_norm > 0) {
      // numpy.round(w, 4): scale, round half to even (default rounding mode), unscale.
      double w = std::nearbyint(pw * 1e4) / 1e4;
      w = std::clamp(w, -1.0, 1.0);
      sum += std::acos(w);
    }
  }
  return sum / static_cast<double>(q_true.rows);
}

MetricSummary summarize(std::vector<double> per_demo) {
  SL_CHECK(!per_demo.empty(), DataError, "summarize: no per-demonstration values");
  MetricSummary s;
  const double n = static_cast<double>(per_demo.size());
  s.mean = std::accumulate(per_demo.begin(), per_demo.end(), 0.0) / n;
  const bool has_nan =
      std::any_of(per_demo.begin(), per_demo.end(), [](double v) { return std::isnan(v); });
  if (has_nan) {
    s.median = std::numeric_limits<double>::quiet_NaN();  // as numpy.median
  } else {
    std::vector<double> v = per_demo;
    const std::size_t half = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + half, v.end());
    const double upper = v[half];
    if (v.size() % 2 == 1) {
      s.median = upper;
    } else {
      const double lower = *std::max_element(v.begin(), v.begin() + half);
      s.median = (lower + upper) / 2.0;
    }
  }
  s.per_demo = std::move(per_demo);
  return s;
}

const char* metric_name(TrajectoryMetric m) {
  switch (m) {
    case TrajectoryMetric::Dtw: return "dtw";
    case TrajectoryMetric::Frechet: return "frechet";
    case TrajectoryMetric::Swept: return "swept";
    case TrajectoryMetric::Quat: return "quat";
  }
  SL_THROW(InternalError, "metric_name: unknown metric ", static_cast<int>(m));
}

TrajectoryMetric parse_metric(const std::string& name) {
  for (auto m : {TrajectoryMetric::Dtw, TrajectoryMetric::Frechet, TrajectoryMetric::Swept,
                 TrajectoryMetric::Quat}) {
    if (name == metric_name(m)) return m;
  }
  SL_THROW(UsageError, "unknown metric '", name, "' (known: dtw, frechet, swept, quat)");
}

MetricSummary compute_metric(TrajectoryMetric metric, const TrajectoryBatch& ref,
                             const TrajectoryBatch& pred) {
  const char* name = metric_name(metric);
  check_batch(ref, "ref");
  check_batch(pred, "pred");
  SL_CHECK(ref.demos == pred.demos, ShapeError, name, ": ref has ", ref.demos,
           " demonstrations, pred has ", pred.demos);
  SL_CHECK(ref.cols == pred.cols, ShapeError, name, ": ref has ", ref.cols,
           " columns, pred has ", pred.cols);
  const bool same_length = metric == TrajectoryMetric::Swept || metric == TrajectoryMetric::Quat;
  SL_CHECK(!same_length || ref.rows == pred.rows, ShapeError, name, ": ref has ", ref.rows,
           " samples per demonstration, pred has ", pred.rows, " (", name,
           " needs equal lengths)");
  SL_CHECK(metric != TrajectoryMetric::Swept || ref.cols >= 2, ShapeError,
           "swept: needs at least 2 columns, ref and pred have ", ref.cols);
  SL_CHECK(metric != TrajectoryMetric::Quat || ref.cols == 4 || ref.cols == 7, ShapeError,
           "quat: needs 4 columns (w, x, y, z) or 7 (position + w, x, y, z), ref and pred have ",
           ref.cols);
  check_finite(ref, "ref");
  check_finite(pred, "pred");

  std::vector<double> values(static_cast<std::size_t>(ref.demos));
  for (std::int64_t k = 0; k < ref.demos; ++k) {
    const TrajectoryView a = ref.demo(k), b = pred.demo(k);
    switch (metric) {
      case TrajectoryMetric::Dtw: values[k] = dtw_distance(a, b); break;
      case TrajectoryMetric::Frechet: values[k] = frechet_distance(a, b); break;
      case TrajectoryMetric::Swept: values[k] = swept_area(a, b); break;
      case TrajectoryMetric::Quat:
        try {
          if (a.cols == 4) {
            values[k] = quaternion_error(a, b);
          } else {
            const std::vector<double> qa = take_columns(a, 3), qb = take_columns(b, 3);
            values[k] = quaternion_error({qa.data(), a.rows, 4}, {qb.data(), b.rows, 4});
          }
        } catch (const DataError& e) {  // name the demonstration (ref = first, pred = second)
          SL_THROW(DataError, e.what(), " of demo ", k, " (first = ref, second = pred)");
        }
        break;
    }
  }
  return summarize(std::move(values));
}

}  // namespace stablelearn::lfd
