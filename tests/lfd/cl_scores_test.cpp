// Continual-learning scores (shared/specs/clfd-snode.md §4.1), checked against hand arithmetic.
#include "stablelearn/lfd/cl_scores.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "testing.h"

namespace stablelearn::lfd {
namespace {

using stablelearn::testing::expect_error;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// N = 3, a replay-style method (stores data):
//   a = [[1.0,  -,    -  ],
//        [0.5,  1.0,  -  ],
//        [0.5,  0.75, 1.0]]         (entries above the diagonal are NaN: they must be ignored)
//   sizes = 100, 200, 400; train_seconds = 10, 10, 20; max_final_size = 800.
// ACC = (1 + 0.5 + 1 + 0.5 + 0.75 + 1) / 6 = 4.75 / 6 = 19/24
// BWT = ((0.5 - 1) + (0.5 - 1) + (0.75 - 1)) / 3 = -1.25 / 3 = -5/12; BWT+ = 0; REM = 7/12
// MS  = min(1, (100/100 + 100/200 + 100/400) / 3) = 1.75 / 3 = 7/12
// TE  = min(1, (10/10 + 10/10 + 10/20) / 3) = 2.5 / 3 = 5/6
// FS  = 1 - 400/800 = 1/2
// SSS = 1 - (3 + 1) / (2 * 3) = 1/3
// In 144ths: ACC 114, REM 84, MS 84, TE 120, FS 72, SSS 48 -> sum 522 -> CL_score = 87/144.
// Deviations from 87: 27, -3, -3, 33, -15, -39; squares 729 + 9 + 9 + 1089 + 225 + 1521 = 3582;
// sample variance = 3582 / 5 / 144^2 -> CL_stability = 1 - sqrt(3582 / 5) / 144.
TEST(ClScores, HandWorkedThreeTasks) {
  ClScoreInputs in;
  in.acc = {{1.0, kNaN, kNaN}, {0.5, 1.0, kNaN}, {0.5, 0.75, 1.0}};
  in.sizes = {100, 200, 400};
  in.train_seconds = {10, 10, 20};
  in.max_final_size = 800;
  in.stores_data = true;
  const ClScores s = compute_cl_scores(in);
  EXPECT_DOUBLE_EQ(s.acc, 19.0 / 24);
  EXPECT_DOUBLE_EQ(s.bwt, -5.0 / 12);
  EXPECT_DOUBLE_EQ(s.bwt_plus, 0.0);
  EXPECT_DOUBLE_EQ(s.rem, 7.0 / 12);
  EXPECT_DOUBLE_EQ(s.ms, 7.0 / 12);
  EXPECT_DOUBLE_EQ(s.te, 5.0 / 6);
  EXPECT_DOUBLE_EQ(s.fs, 0.5);
  EXPECT_DOUBLE_EQ(s.sss, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.cl_score, 87.0 / 144);
  EXPECT_DOUBLE_EQ(s.cl_stability, 1 - std::sqrt(3582.0 / 5) / 144);
}

// N = 2, accuracy on task 0 improves: a = [[0.5, -], [1.0, 0.5]].
// ACC = (0.5 + 1 + 0.5) / 3 = 2/3; BWT = (1 - 0.5) / 1 = 0.5 -> BWT+ = 0.5, REM = 1.
// sizes 10, 10 -> MS = 1; times 4, 2 -> (1 + 2) / 2 = 1.5 -> TE = min(1, 1.5) = 1.
// max_final_size 0 -> FS = 0; not storing data -> SSS = 1.
TEST(ClScores, PositiveTransferAndClamps) {
  ClScoreInputs in;
  in.acc = {{0.5, 0.0}, {1.0, 0.5}};
  in.sizes = {10, 10};
  in.train_seconds = {4, 2};
  const ClScores s = compute_cl_scores(in);
  EXPECT_DOUBLE_EQ(s.acc, 2.0 / 3);
  EXPECT_DOUBLE_EQ(s.bwt, 0.5);
  EXPECT_DOUBLE_EQ(s.bwt_plus, 0.5);
  EXPECT_DOUBLE_EQ(s.rem, 1.0);
  EXPECT_DOUBLE_EQ(s.ms, 1.0);
  EXPECT_DOUBLE_EQ(s.te, 1.0);
  EXPECT_DOUBLE_EQ(s.fs, 0.0);
  EXPECT_DOUBLE_EQ(s.sss, 1.0);
  // mean(2/3, 1, 1, 1, 0, 1) = (2/3 + 4) / 6 = (14/3) / 6 = 7/9.
  EXPECT_DOUBLE_EQ(s.cl_score, 7.0 / 9);
}

// N = 1: a = [[0.8]], no backward transfer (BWT = 0, REM = 1), MS = TE = 1, FS = 0, SSS = 1.
// CL_score = (0.8 + 1 + 1 + 1 + 0 + 1) / 6 = 0.8; deviations 0, .2, .2, .2, -.8, .2;
// squares sum 0.8 -> variance 0.16 -> std 0.4 -> CL_stability 0.6.
TEST(ClScores, SingleTask) {
  ClScoreInputs in;
  in.acc = {{0.8}};
  in.sizes = {5};
  in.train_seconds = {3};
  const ClScores s = compute_cl_scores(in);
  EXPECT_DOUBLE_EQ(s.acc, 0.8);
  EXPECT_EQ(s.bwt, 0.0);
  EXPECT_EQ(s.bwt_plus, 0.0);
  EXPECT_EQ(s.rem, 1.0);
  EXPECT_EQ(s.ms, 1.0);
  EXPECT_EQ(s.te, 1.0);
  EXPECT_EQ(s.fs, 0.0);
  EXPECT_EQ(s.sss, 1.0);
  EXPECT_DOUBLE_EQ(s.cl_score, 0.8);
  EXPECT_NEAR(s.cl_stability, 0.6, 1e-15);
  // A replay method with one task: SSS = 1 - (1 + 1) / 2 = 0.
  in.stores_data = true;
  EXPECT_EQ(compute_cl_scores(in).sss, 0.0);
}

// REP: SSS = 1 - min(1, (N(N+1)/(2N)) / N) = 1 - (N+1)/(2N): N = 4 -> 3/8, N = 10 -> 9/20.
TEST(ClScores, ReplaySampleStorageSize) {
  for (auto [n, expected] : {std::pair<int, double>{4, 3.0 / 8}, {10, 9.0 / 20}}) {
    ClScoreInputs in;
    in.acc.assign(n, std::vector<double>(n, 1.0));
    in.sizes.assign(n, 1.0);
    in.train_seconds.assign(n, 1.0);
    in.stores_data = true;
    EXPECT_DOUBLE_EQ(compute_cl_scores(in).sss, expected) << "N=" << n;
    in.stores_data = false;
    EXPECT_EQ(compute_cl_scores(in).sss, 1.0);
  }
}

TEST(ClScores, ThresholdAccuracy) {
  const std::vector<double> e = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(threshold_accuracy(e, 3), 0.5);           // < 3: 1, 2
  EXPECT_DOUBLE_EQ(threshold_accuracy(e, 3, false), 0.75);   // <= 3: 1, 2, 3
  EXPECT_DOUBLE_EQ(threshold_accuracy(e, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(threshold_accuracy(e, 10), 1.0);
  // A NaN error (a diverged rollout) never counts as accurate.
  EXPECT_DOUBLE_EQ(threshold_accuracy({1, kNaN}, 5), 0.5);
  expect_error<DataError>([] { threshold_accuracy({}, 1); }, "no per-demonstration errors");
  expect_error<DataError>([] { threshold_accuracy({1}, kNaN); }, "threshold is NaN");
}

TEST(ClScores, ValidatesInputs) {
  auto good = [] {
    ClScoreInputs in;
    in.acc = {{1.0, 0.0}, {0.5, 1.0}};
    in.sizes = {1, 2};
    in.train_seconds = {1, 1};
    return in;
  };
  ASSERT_NO_THROW(compute_cl_scores(good()));

  expect_error<ShapeError>([] { compute_cl_scores(ClScoreInputs{}); }, "empty (0 tasks)");
  {
    auto in = good();
    in.acc[1] = {0.5};
    expect_error<ShapeError>([&] { compute_cl_scores(in); },
                             "row 1 has 1 entries, expected 2");
  }
  {
    auto in = good();
    in.sizes = {1, 2, 3};
    expect_error<ShapeError>([&] { compute_cl_scores(in); },
                             "sizes has 3 values, the accuracy matrix has 2 tasks");
  }
  {
    auto in = good();
    in.train_seconds = {1};
    expect_error<ShapeError>([&] { compute_cl_scores(in); },
                             "train_seconds has 1 values, the accuracy matrix has 2 tasks");
  }
  {
    auto in = good();
    in.sizes[1] = 0;
    expect_error<DataError>([&] { compute_cl_scores(in); }, "sizes[1] = 0");
  }
  {
    auto in = good();
    in.train_seconds[0] = -2;
    expect_error<DataError>([&] { compute_cl_scores(in); }, "train_seconds[0] = -2");
  }
  {
    auto in = good();
    in.acc[1][0] = kNaN;
    expect_error<DataError>([&] { compute_cl_scores(in); }, "a[1][0] = nan");
  }
  {
    auto in = good();
    in.acc[0][0] = 1.5;
    expect_error<DataError>([&] { compute_cl_scores(in); }, "a[0][0] = 1.5");
  }
  {
    auto in = good();
    in.max_final_size = 1;  // below this method's own final size 2
    expect_error<DataError>([&] { compute_cl_scores(in); },
                            "smaller than this method's final size 2");
  }
  {
    auto in = good();
    in.max_final_size = -1;
    expect_error<DataError>([&] { compute_cl_scores(in); }, "max_final_size = -1");
  }
}

}  // namespace
}  // namespace stablelearn::lfd
