// Trajectory metrics (shared/specs/clfd-snode.md §4). Every expectation is independent of the
// implementation: the spec's printed values, hand-worked tables (in comments), closed forms, a
// brute-force enumeration of all warping paths, and metric properties that hold by definition.
#include "stablelearn/lfd/trajectory_metrics.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/io/npz.h"
#include "testing.h"

namespace stablelearn::lfd {
namespace {

constexpr double kPi = 3.14159265358979323846;

/// A trajectory owning its storage.
struct Traj {
  std::vector<double> v;
  std::int64_t rows = 0, cols = 0;
  Traj(std::vector<double> values, std::int64_t c)
      : v(std::move(values)), rows(static_cast<std::int64_t>(v.size()) / c), cols(c) {}
  TrajectoryView view() const { return {v.data(), rows, cols}; }
};

Traj random_traj(std::mt19937& gen, std::int64_t rows, std::int64_t cols) {
  std::uniform_real_distribution<double> u(-5.0, 5.0);
  std::vector<double> v(static_cast<std::size_t>(rows * cols));
  for (double& x : v) x = u(gen);
  return Traj(v, cols);
}

using stablelearn::testing::expect_error;

double euclid(const TrajectoryView& a, std::int64_t i, const TrajectoryView& b, std::int64_t j) {
  double s = 0;
  for (std::int64_t k = 0; k < a.cols; ++k) {
    const double d = a.row(i)[k] - b.row(j)[k];
    s += d * d;
  }
  return std::sqrt(s);
}

/// Brute force: walks every warping path (steps (1,0), (0,1), (1,1)) from (0,0) to (n-1,m-1)
/// and returns {min over paths of the summed cost, min over paths of the largest cost}, i.e.
/// DTW and the discrete Fréchet distance by their definitions, without dynamic programming.
std::pair<double, double> brute_force(const TrajectoryView& a, const TrajectoryView& b) {
  double best_sum = std::numeric_limits<double>::infinity();
  double best_max = std::numeric_limits<double>::infinity();
  std::function<void(std::int64_t, std::int64_t, double, double)> walk =
      [&](std::int64_t i, std::int64_t j, double sum, double mx) {
        const double c = euclid(a, i, b, j);
        sum += c;
        mx = std::max(mx, c);
        if (i == a.rows - 1 && j == b.rows - 1) {
          best_sum = std::min(best_sum, sum);
          best_max = std::min(best_max, mx);
          return;
        }
        if (i + 1 < a.rows) walk(i + 1, j, sum, mx);
        if (j + 1 < b.rows) walk(i, j + 1, sum, mx);
        if (i + 1 < a.rows && j + 1 < b.rows) walk(i + 1, j + 1, sum, mx);
      };
  walk(0, 0, 0.0, 0.0);
  return {best_sum, best_max};
}

// ----------------------------------------------------------------------------------------------
// Spec toy (§4): A = (0,0),(1,0),(2,0), B = A + (0,1) -> DTW 3, Fréchet 1, swept 2.

TEST(TrajectoryMetrics, SpecToy) {
  const Traj a({0, 0, 1, 0, 2, 0}, 2);
  const Traj b({0, 1, 1, 1, 2, 1}, 2);
  EXPECT_DOUBLE_EQ(dtw_distance(a.view(), b.view()), 3.0);
  EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), 1.0);
  EXPECT_DOUBLE_EQ(swept_area(a.view(), b.view()), 2.0);
}

// One column, n = 4, m = 2: A = [0, 1, 2, 3], B = [0, 3]; c(i,j) = |A_i - B_j|:
//          B0=0  B1=3
//   A0=0     0     3
//   A1=1     1     2
//   A2=2     2     1
//   A3=3     3     0
// DTW (1-based D, D[i][j] = c + min(up, left, diag)):
//   D11 = 0,          D12 = 3 + min(inf, 0, inf) = 3
//   D21 = 1 + 0 = 1,  D22 = 2 + min(3, 1, 0) = 2
//   D31 = 2 + 1 = 3,  D32 = 1 + min(2, 3, 1) = 2
//   D41 = 3 + 3 = 6,  D42 = 0 + min(2, 6, 3) = 2        -> DTW = 2
// Fréchet (0-based F): F00 = 0, F01 = 3, F10 = 1, F11 = max(min(3, 0, 1), 2) = 2,
//   F20 = 2, F21 = max(min(2, 1, 2), 1) = 1, F30 = 3, F31 = max(min(1, 2, 3), 0) = 1 -> 1.
TEST(TrajectoryMetrics, HandWorkedOneColumnDifferentLengths) {
  const Traj a({0, 1, 2, 3}, 1);
  const Traj b({0, 3}, 1);
  EXPECT_DOUBLE_EQ(dtw_distance(a.view(), b.view()), 2.0);
  EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), 1.0);
  EXPECT_DOUBLE_EQ(dtw_distance(b.view(), a.view()), 2.0);
  EXPECT_DOUBLE_EQ(frechet_distance(b.view(), a.view()), 1.0);
}

// Two columns, n = 2, m = 3: A = (0,0),(3,4); B = (0,0),(0,4),(3,4). Costs (3-4-5 triangles):
//   c(A0,B0) = 0, c(A0,B1) = 4, c(A0,B2) = 5, c(A1,B0) = 5, c(A1,B1) = 3, c(A1,B2) = 0.
// DTW: D11 = 0, D12 = 4, D13 = 5 + 4 = 9, D21 = 5 + 0 = 5, D22 = 3 + min(4, 5, 0) = 3,
//      D23 = 0 + min(9, 3, 4) = 3                                    -> DTW = 3.
// Fréchet: F00 = 0, F01 = 4, F02 = 5, F10 = 5, F11 = max(min(4, 0, 5), 3) = 3,
//      F12 = max(min(5, 4, 3), 0) = 3                                -> Fréchet = 3.
TEST(TrajectoryMetrics, HandWorkedTwoColumnsDifferentLengths) {
  const Traj a({0, 0, 3, 4}, 2);
  const Traj b({0, 0, 0, 4, 3, 4}, 2);
  EXPECT_DOUBLE_EQ(dtw_distance(a.view(), b.view()), 3.0);
  EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), 3.0);
  EXPECT_DOUBLE_EQ(dtw_distance(b.view(), a.view()), 3.0);
  EXPECT_DOUBLE_EQ(frechet_distance(b.view(), a.view()), 3.0);
}

// A single sample against a trajectory: the only warping path pairs it with every sample, so
// DTW is the sum and Fréchet the largest of the distances. p = (0,0,0), B = (1,2,2),(0,0,3):
// distances 3 and 3 -> DTW 6, Fréchet 3 (three columns: the general-d code path).
TEST(TrajectoryMetrics, SingleSampleThreeColumns) {
  const Traj p({0, 0, 0}, 3);
  const Traj b({1, 2, 2, 0, 0, 3}, 3);
  EXPECT_DOUBLE_EQ(dtw_distance(p.view(), b.view()), 6.0);
  EXPECT_DOUBLE_EQ(frechet_distance(p.view(), b.view()), 3.0);
  EXPECT_DOUBLE_EQ(dtw_distance(b.view(), p.view()), 6.0);
}

TEST(TrajectoryMetrics, MatchesBruteForceOverAllWarpingPaths) {
  std::mt19937 gen(12345);
  for (std::int64_t d : {1, 2, 3}) {
    for (std::int64_t n = 1; n <= 5; ++n) {
      for (std::int64_t m = 1; m <= 5; ++m) {
        const Traj a = random_traj(gen, n, d);
        const Traj b = random_traj(gen, m, d);
        const auto [sum, mx] = brute_force(a.view(), b.view());
        EXPECT_NEAR(dtw_distance(a.view(), b.view()), sum, 1e-12 * (1 + sum))
            << "d=" << d << " n=" << n << " m=" << m;
        EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), mx)
            << "d=" << d << " n=" << n << " m=" << m;
      }
    }
  }
}

/// The spec's recursions written top-down with memoisation over the full table (a reference
/// for sizes beyond brute force): D(i, j) for DTW, F(i, j) for Fréchet, 0-based samples.
std::pair<double, double> memo_recursion(const TrajectoryView& a, const TrajectoryView& b) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::int64_t n = a.rows, m = b.rows;
  std::vector<double> dm((n + 1) * (m + 1), -1.0), fm(n * m, -1.0);
  std::function<double(std::int64_t, std::int64_t)> D = [&](std::int64_t i, std::int64_t j) {
    if (i == 0 && j == 0) return 0.0;
    if (i == 0 || j == 0) return inf;
    double& slot = dm[i * (m + 1) + j];
    if (slot < 0) {
      slot = euclid(a, i - 1, b, j - 1) + std::min({D(i - 1, j), D(i, j - 1), D(i - 1, j - 1)});
    }
    return slot;
  };
  std::function<double(std::int64_t, std::int64_t)> F = [&](std::int64_t i, std::int64_t j) {
    double& slot = fm[i * m + j];
    if (slot >= 0) return slot;
    const double c = euclid(a, i, b, j);
    if (i == 0 && j == 0) {
      slot = c;
    } else if (i == 0) {
      slot = std::max(F(0, j - 1), c);
    } else if (j == 0) {
      slot = std::max(F(i - 1, 0), c);
    } else {
      slot = std::max(std::min({F(i - 1, j), F(i - 1, j - 1), F(i, j - 1)}), c);
    }
    return slot;
  };
  return {D(n, m), F(n - 1, m - 1)};
}

TEST(TrajectoryMetrics, MatchesSpecRecursionOnLargerSizes) {
  std::mt19937 gen(99);
  for (std::int64_t d : {1, 2, 5}) {
    for (std::int64_t n : {1, 3, 4, 7, 16, 33}) {
      for (std::int64_t m : {1, 2, 3, 4, 5, 8, 31, 40}) {
        const Traj a = random_traj(gen, n, d);
        const Traj b = random_traj(gen, m, d);
        const auto [dtw, fr] = memo_recursion(a.view(), b.view());
        // Same operations per cell: equal up to a few ulps (exactly equal on x86-64).
        EXPECT_DOUBLE_EQ(dtw_distance(a.view(), b.view()), dtw)
            << "d=" << d << " n=" << n << " m=" << m;
        EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), fr)
            << "d=" << d << " n=" << n << " m=" << m;
      }
    }
  }
}

TEST(TrajectoryMetrics, PropertiesOnRandomData) {
  std::mt19937 gen(2024);
  std::uniform_int_distribution<int> len(1, 60);
  for (int trial = 0; trial < 40; ++trial) {
    const std::int64_t d = 1 + trial % 4;
    const Traj a = random_traj(gen, len(gen), d);
    const Traj b = random_traj(gen, len(gen), d);
    const double dab = dtw_distance(a.view(), b.view());
    const double fab = frechet_distance(a.view(), b.view());
    EXPECT_EQ(dtw_distance(a.view(), a.view()), 0.0);
    EXPECT_EQ(frechet_distance(a.view(), a.view()), 0.0);
    // Symmetric: reversing the roles transposes the table.
    EXPECT_NEAR(dtw_distance(b.view(), a.view()), dab, 1e-12 * dab);
    EXPECT_DOUBLE_EQ(frechet_distance(b.view(), a.view()), fab);
    // Every coupling contains both end pairs.
    const double ends = std::max(euclid(a.view(), 0, b.view(), 0),
                                 euclid(a.view(), a.rows - 1, b.view(), b.rows - 1));
    EXPECT_GE(fab, ends);
    // DTW's optimal path sums costs whose largest is >= the best achievable largest.
    EXPECT_LE(fab, dab);
    // A path visits at least max(n, m) cells, each costing at least the smallest distance.
    double cmin = std::numeric_limits<double>::infinity();
    for (std::int64_t i = 0; i < a.rows; ++i) {
      for (std::int64_t j = 0; j < b.rows; ++j) cmin = std::min(cmin, euclid(a.view(), i, b.view(), j));
    }
    EXPECT_GE(dab, static_cast<double>(std::max(a.rows, b.rows)) * cmin * (1 - 1e-12));
  }
}

TEST(TrajectoryMetrics, RepeatedSamplesCostNothing) {
  // Repeating samples is free for both: B = A with every sample doubled.
  const Traj a({0, 0, 1, 2, 3, 1}, 2);
  const Traj b({0, 0, 0, 0, 1, 2, 1, 2, 3, 1, 3, 1}, 2);
  EXPECT_DOUBLE_EQ(dtw_distance(a.view(), b.view()), 0.0);
  EXPECT_DOUBLE_EQ(frechet_distance(a.view(), b.view()), 0.0);
}

// ----------------------------------------------------------------------------------------------
// Swept area

TEST(SweptArea, UnitSquareTranslation) {
  const Traj a({0, 0, 1, 0}, 2);
  const Traj b({0, 1, 1, 1}, 2);
  EXPECT_DOUBLE_EQ(swept_area(a.view(), b.view()), 1.0);
  EXPECT_DOUBLE_EQ(swept_area(b.view(), a.view()), 1.0);
}

TEST(SweptArea, StraightLineShiftedIsLengthTimesOffset) {
  // A along x from 0 to 10 in 11 samples, B = A + (0, 2.5): a 10 x 2.5 rectangle = 25.
  std::vector<double> av, bv;
  for (int k = 0; k <= 10; ++k) {
    av.insert(av.end(), {double(k), 0.0});
    bv.insert(bv.end(), {double(k), 2.5});
  }
  EXPECT_DOUBLE_EQ(swept_area(Traj(av, 2).view(), Traj(bv, 2).view()), 25.0);
}

TEST(SweptArea, SelfIntersectingQuadGivesNetSignedArea) {
  // A = (0,0),(1,0); B = (0,1),(1,-1). B crosses A at x = 0.5: the two triangles
  // (0,0),(0,1),(0.5,0) and (0.5,0),(1,-1),(1,0) each have area 1/4 with opposite orientation,
  // so the shoelace sum of the quad B0,B1,A1,A0 is 0:
  //   0*(-1) - 1*1 = -1;  1*0 - 1*(-1) = 1;  1*0 - 0*0 = 0;  0*1 - 0*0 = 0   -> 0.
  const Traj a({0, 0, 1, 0}, 2);
  const Traj b({0, 1, 1, -1}, 2);
  EXPECT_DOUBLE_EQ(swept_area(a.view(), b.view()), 0.0);
}

TEST(SweptArea, UsesOnlyFirstTwoColumns) {
  // The third column differs wildly but is ignored: still the unit square.
  const Traj a({0, 0, 100, 1, 0, -7}, 3);
  const Traj b({0, 1, -3, 1, 1, 42}, 3);
  EXPECT_DOUBLE_EQ(swept_area(a.view(), b.view()), 1.0);
}

TEST(SweptArea, PropertiesOnRandomData) {
  std::mt19937 gen(7);
  for (int trial = 0; trial < 20; ++trial) {
    const Traj a = random_traj(gen, 50, 2 + trial % 3);
    const Traj b = random_traj(gen, 50, 2 + trial % 3);
    EXPECT_GE(swept_area(a.view(), b.view()), 0.0);
    EXPECT_EQ(swept_area(a.view(), a.view()), 0.0);
  }
}

TEST(SweptArea, SingleSampleIsZero) {
  const Traj a({1, 2}, 2), b({3, 4}, 2);
  EXPECT_EQ(swept_area(a.view(), b.view()), 0.0);
}

TEST(SweptArea, RejectsBadShapes) {
  const Traj a({0, 0, 1, 0}, 2), b({0, 1, 1, 1, 2, 1}, 2), c({0, 1}, 1);
  expect_error<ShapeError>([&] { swept_area(a.view(), b.view()); }, "2 samples, the second has 3");
  expect_error<ShapeError>([&] { swept_area(c.view(), c.view()); }, "at least 2 columns");
}

// ----------------------------------------------------------------------------------------------
// Quaternion error (scalar first). For p = q ⊗ conj(q ⊗ r), the scalar part is that of conj(r),
// cos(phi/2) for a rotation r by phi, so the error is acos(round4(cos(phi/2))) ~= phi/2; the
// rounding to 4 decimals moves acos by at most 0.5e-4 / sin(phi/2).

std::vector<double> qmul(const double* a, const double* b) {
  return {a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
          a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
          a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
          a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0]};
}

std::vector<double> axis_angle(double x, double y, double z, double phi) {
  const double n = std::sqrt(x * x + y * y + z * z);
  const double s = std::sin(phi / 2) / n;
  return {std::cos(phi / 2), x * s, y * s, z * s};
}

TEST(QuaternionError, IdenticalIsZero) {
  std::mt19937 gen(3);
  const Traj q = random_traj(gen, 20, 4);
  EXPECT_EQ(quaternion_error(q.view(), q.view()), 0.0);
  // Scaling does not matter: both are normalised first.
  std::vector<double> scaled = q.v;
  for (double& v : scaled) v *= 3.5;
  EXPECT_EQ(quaternion_error(q.view(), Traj(scaled, 4).view()), 0.0);
}

TEST(QuaternionError, RotationByPhiGivesHalfAngle) {
  const auto q = axis_angle(1, 2, -0.5, 0.9);  // an arbitrary orientation
  for (double phi : {0.05, 0.3, 1.0, 2.0, 3.0}) {
    const auto r = axis_angle(-0.3, 0.4, 1.2, phi);
    const auto qr = qmul(q.data(), r.data());
    const double err = quaternion_error(Traj(q, 4).view(), Traj(qr, 4).view());
    EXPECT_NEAR(err, phi / 2, 0.5e-4 / std::sin(phi / 2) + 1e-9) << "phi=" << phi;
  }
}

TEST(QuaternionError, ExactCosineGivesExactAngle) {
  // phi = 2*pi/3 about z: w = cos(pi/3) = 0.5 -> acos(0.5) = pi/3.
  const Traj id({1, 0, 0, 0}, 4);
  const Traj r({0.5, 0, 0, std::sqrt(3.0) / 2}, 4);
  EXPECT_NEAR(quaternion_error(id.view(), r.view()), kPi / 3, 1e-12);
}

TEST(QuaternionError, RoundsHalfToEvenLikeNumpy) {
  // w = 0.00125 (times 1e4 = 12.5 exactly in doubles); numpy.round(w, 4) = 0.0012 (half to even),
  // not 0.0013. x is chosen so that the quaternion already has norm 1 in doubles.
  const double w = 0.00125, x = 0.9999992187496948;
  ASSERT_EQ(std::sqrt(w * w + x * x), 1.0);
  ASSERT_EQ(w * 1e4, 12.5);
  const Traj id({1, 0, 0, 0}, 4);
  EXPECT_DOUBLE_EQ(quaternion_error(id.view(), Traj({w, x, 0, 0}, 4).view()), std::acos(0.0012));
  EXPECT_DOUBLE_EQ(quaternion_error(id.view(), Traj({-w, x, 0, 0}, 4).view()),
                   std::acos(-0.0012));
}

TEST(QuaternionError, NoSignDisambiguation) {
  // q vs -(q ⊗ r): scalar part -cos(phi/2) -> error pi - phi/2 (close to pi, although -q and q
  // are the same rotation).
  const auto q = axis_angle(0.2, -1, 0.7, 1.3);
  const double phi = 0.2;
  const auto r = axis_angle(1, 1, 0, phi);
  auto neg = qmul(q.data(), r.data());
  for (double& v : neg) v = -v;
  EXPECT_NEAR(quaternion_error(Traj(q, 4).view(), Traj(neg, 4).view()), kPi - phi / 2,
              0.5e-4 / std::sin(phi / 2) + 1e-9);
  // q vs exactly -q: p = -(q ⊗ conj q) has w = -1, and a vector part that is zero up to
  // rounding. The spec's rule "err = acos(w) if ||p_vec|| > 0 else 0" then gives pi, or 0
  // where the vector part comes out exactly zero in floating point; nothing in between.
  std::mt19937 gen(11);
  for (int trial = 0; trial < 50; ++trial) {
    const Traj r = random_traj(gen, 1, 4);
    std::vector<double> minus = r.v;
    for (double& v : minus) v = -v;
    const double err = quaternion_error(r.view(), Traj(minus, 4).view());
    EXPECT_TRUE(err == 0.0 || std::abs(err - kPi) < 1e-15) << "err=" << err;
  }
  // The identity against its negation: p = (-1, 0, 0, 0) exactly, so the error is 0.
  EXPECT_EQ(quaternion_error(Traj({1, 0, 0, 0}, 4).view(), Traj({-1, 0, 0, 0}, 4).view()), 0.0);
  // A rotation about x against its negation: p_vec = (0, 0, 0) exactly as well.
  EXPECT_EQ(quaternion_error(Traj({0.6, 0.8, 0, 0}, 4).view(), Traj({-0.6, -0.8, 0, 0}, 4).view()),
            0.0);
}

TEST(QuaternionError, MeanOverSamples) {
  // Sample 0 identical (0), sample 1 rotated by 2*pi/3 about x (pi/3): mean pi/6.
  const Traj a({1, 0, 0, 0, 1, 0, 0, 0}, 4);
  const Traj b({1, 0, 0, 0, 0.5, std::sqrt(3.0) / 2, 0, 0}, 4);
  EXPECT_NEAR(quaternion_error(a.view(), b.view()), kPi / 6, 1e-12);
}

TEST(QuaternionError, RejectsBadInput) {
  const Traj q3({1, 0, 0}, 3), q4({1, 0, 0, 0}, 4), q4x2({1, 0, 0, 0, 1, 0, 0, 0}, 4),
      zero({0, 0, 0, 0}, 4);
  expect_error<ShapeError>([&] { quaternion_error(q3.view(), q3.view()); }, "4 columns");
  expect_error<ShapeError>([&] { quaternion_error(q4.view(), q4x2.view()); },
                           "1 samples, the second has 2");
  expect_error<DataError>([&] { quaternion_error(q4.view(), zero.view()); },
                          "zero or non-finite quaternion at sample 0");
}

// ----------------------------------------------------------------------------------------------
// Summaries, names, batches

TEST(Summarize, MeanAndNumpyMedian) {
  auto odd = summarize({5, 1, 3});
  EXPECT_DOUBLE_EQ(odd.mean, 3.0);
  EXPECT_DOUBLE_EQ(odd.median, 3.0);
  EXPECT_EQ(odd.per_demo, (std::vector<double>{5, 1, 3}));  // order kept
  auto even = summarize({10, 1, 4, 2});
  EXPECT_DOUBLE_EQ(even.mean, 17.0 / 4);
  EXPECT_DOUBLE_EQ(even.median, 3.0);  // (2 + 4) / 2
  auto one = summarize({7.5});
  EXPECT_DOUBLE_EQ(one.median, 7.5);
  EXPECT_TRUE(std::isnan(summarize({1, std::nan(""), 2}).median));
  expect_error<DataError>([] { summarize({}); }, "no per-demonstration values");
}

TEST(MetricNames, RoundTripAndUnknown) {
  for (auto m : {TrajectoryMetric::Dtw, TrajectoryMetric::Frechet, TrajectoryMetric::Swept,
                 TrajectoryMetric::Quat}) {
    EXPECT_EQ(parse_metric(metric_name(m)), m);
  }
  EXPECT_STREQ(metric_name(TrajectoryMetric::Frechet), "frechet");
  expect_error<UsageError>([] { parse_metric("mse"); }, "dtw, frechet, swept, quat");
}

TEST(ComputeMetric, SpecToyOverTwoDemos) {
  // Demo 0 = the spec toy (DTW 3); demo 1: identical trajectories (DTW 0).
  const std::vector<double> ref = {0, 0, 1, 0, 2, 0, /**/ 5, 5, 6, 6, 7, 7};
  const std::vector<double> pred = {0, 1, 1, 1, 2, 1, /**/ 5, 5, 6, 6, 7, 7};
  const TrajectoryBatch r{ref.data(), 2, 3, 2}, p{pred.data(), 2, 3, 2};
  const auto dtw = compute_metric(TrajectoryMetric::Dtw, r, p);
  EXPECT_EQ(dtw.per_demo, (std::vector<double>{3, 0}));
  EXPECT_DOUBLE_EQ(dtw.mean, 1.5);
  EXPECT_DOUBLE_EQ(dtw.median, 1.5);
  const auto fr = compute_metric(TrajectoryMetric::Frechet, r, p);
  EXPECT_EQ(fr.per_demo, (std::vector<double>{1, 0}));
  const auto sw = compute_metric(TrajectoryMetric::Swept, r, p);
  EXPECT_EQ(sw.per_demo, (std::vector<double>{2, 0}));
}

TEST(ComputeMetric, DtwAcceptsDifferentLengths) {
  // The hand-worked 4-vs-2 one-column case above: DTW 2, Fréchet 1.
  const std::vector<double> ref = {0, 1, 2, 3}, pred = {0, 3};
  const TrajectoryBatch r{ref.data(), 1, 4, 1}, p{pred.data(), 1, 2, 1};
  EXPECT_DOUBLE_EQ(compute_metric(TrajectoryMetric::Dtw, r, p).mean, 2.0);
  EXPECT_DOUBLE_EQ(compute_metric(TrajectoryMetric::Frechet, r, p).mean, 1.0);
  expect_error<ShapeError>([&] { compute_metric(TrajectoryMetric::Swept, r, p); },
                           "ref has 4 samples per demonstration, pred has 2");
}

TEST(ComputeMetric, QuaternionFromSevenColumnsUsesColumns3To6) {
  // Positions (columns 0..2) differ; orientations: sample 0 identical, sample 1 rotated by
  // 2*pi/3 about y -> per demo pi/6.
  const double s = std::sqrt(3.0) / 2;
  const std::vector<double> ref = {0, 0, 0, 1, 0, 0, 0, /**/ 1, 1, 1, 1, 0, 0, 0};
  const std::vector<double> pred = {9, 9, 9, 1, 0, 0, 0, /**/ -4, 2, 8, 0.5, 0, s, 0};
  const TrajectoryBatch r{ref.data(), 1, 2, 7}, p{pred.data(), 1, 2, 7};
  EXPECT_NEAR(compute_metric(TrajectoryMetric::Quat, r, p).median, kPi / 6, 1e-12);
}

TEST(ComputeMetric, ShapeErrorsNameWhatDiffers) {
  const std::vector<double> seven(7 * 3 * 2, 1.0), six(6 * 3 * 2, 1.0), three_cols(7 * 3 * 3, 1.0),
      longer(7 * 4 * 2, 1.0), five_cols(7 * 3 * 5, 1.0);
  const TrajectoryBatch r{seven.data(), 7, 3, 2};
  expect_error<ShapeError>(
      [&] { compute_metric(TrajectoryMetric::Dtw, r, {six.data(), 6, 3, 2}); },
      "ref has 7 demonstrations, pred has 6");
  expect_error<ShapeError>(
      [&] { compute_metric(TrajectoryMetric::Frechet, r, {three_cols.data(), 7, 3, 3}); },
      "ref has 2 columns, pred has 3");
  expect_error<ShapeError>(
      [&] { compute_metric(TrajectoryMetric::Quat, r, {longer.data(), 7, 4, 2}); },
      "ref has 3 samples per demonstration, pred has 4");
  expect_error<ShapeError>(
      [&] {
        compute_metric(TrajectoryMetric::Quat, {five_cols.data(), 7, 3, 5},
                       {five_cols.data(), 7, 3, 5});
      },
      "4 columns (w, x, y, z) or 7");
  const std::vector<double> one_col(7 * 3, 1.0);
  expect_error<ShapeError>(
      [&] {
        compute_metric(TrajectoryMetric::Swept, {one_col.data(), 7, 3, 1},
                       {one_col.data(), 7, 3, 1});
      },
      "at least 2 columns");
}

TEST(ComputeMetric, RejectsEmpty) {
  const std::vector<double> v(14, 1.0);
  const TrajectoryBatch ok{v.data(), 7, 1, 2};
  expect_error<ShapeError>([&] { compute_metric(TrajectoryMetric::Dtw, {v.data(), 0, 1, 2}, ok); },
                           "ref has no demonstrations");
  expect_error<ShapeError>([&] { compute_metric(TrajectoryMetric::Dtw, ok, {v.data(), 7, 0, 2}); },
                           "pred has empty demonstrations");
  expect_error<ShapeError>([&] { compute_metric(TrajectoryMetric::Dtw, ok, {v.data(), 7, 2, 0}); },
                           "pred has 0 columns");
  expect_error<ShapeError>([&] { dtw_distance({v.data(), 0, 2}, {v.data(), 3, 2}); }, "empty");
  expect_error<ShapeError>([&] { frechet_distance({v.data(), 3, 2}, {v.data(), 0, 2}); },
                           "empty");
  expect_error<ShapeError>([&] { dtw_distance({v.data(), 3, 2}, {v.data(), 2, 3}); },
                           "the first trajectory has 2 columns, the second has 3");
}

TEST(ComputeMetric, RejectsNonFiniteValues) {
  // 4 demos x 20 samples x 2 columns.
  std::vector<double> ref(4 * 20 * 2, 0.5), pred(4 * 20 * 2, 0.25);
  pred[(2 * 20 + 17) * 2 + 0] = std::nan("");
  const TrajectoryBatch r{ref.data(), 4, 20, 2}, p{pred.data(), 4, 20, 2};
  expect_error<DataError>([&] { compute_metric(TrajectoryMetric::Dtw, r, p); },
                          "pred contains NaN at demo 2, sample 17, column 0");
  pred[(2 * 20 + 17) * 2 + 0] = 0.25;
  ref[(3 * 20 + 0) * 2 + 1] = -std::numeric_limits<double>::infinity();
  expect_error<DataError>([&] { compute_metric(TrajectoryMetric::Swept, r, p); },
                          "ref contains -inf at demo 3, sample 0, column 1");
  ref[(3 * 20 + 0) * 2 + 1] = std::numeric_limits<double>::infinity();
  expect_error<DataError>([&] { compute_metric(TrajectoryMetric::Frechet, r, p); },
                          "ref contains inf at demo 3, sample 0, column 1");
}

TEST(ComputeMetric, ZeroQuaternionNamesDemo) {
  std::vector<double> ref(2 * 3 * 4, 0.5), pred(2 * 3 * 4, 0.5);
  std::fill_n(pred.begin() + (1 * 3 + 2) * 4, 4, 0.0);
  expect_error<DataError>(
      [&] {
        compute_metric(TrajectoryMetric::Quat, {ref.data(), 2, 3, 4}, {pred.data(), 2, 3, 4});
      },
      "second trajectory has a zero or non-finite quaternion at sample 2 of demo 1");
}

// ----------------------------------------------------------------------------------------------
// Spec §4: LASA Angle raw demo 0 vs demo 1 -> DTW 2006.1348, Fréchet 3.096283, swept 183.5507.

TEST(TrajectoryMetrics, LasaAngleDemo0VsDemo1MatchesSpec) {
  const auto pos = io::read_npz_member(
      stablelearn::testing::project_data() / "LASA/lasa_numpy/task_x0_y0.npz", "pos");
  ASSERT_EQ(pos.shape, (std::vector<std::int64_t>{7, 1000, 2}));
  ASSERT_EQ(pos.dtype, io::DType::Float64);
  const std::vector<double> v = pos.to_double();
  const TrajectoryBatch all{v.data(), 7, 1000, 2};
  const TrajectoryView d0 = all.demo(0), d1 = all.demo(1);
  // Tolerance: half a unit in the last printed digit.
  EXPECT_NEAR(dtw_distance(d0, d1), 2006.1348, 0.5e-4);
  EXPECT_NEAR(frechet_distance(d0, d1), 3.096283, 0.5e-6);
  EXPECT_NEAR(swept_area(d0, d1), 183.5507, 0.5e-4);
}

}  // namespace
}  // namespace stablelearn::lfd
