#include <cmath>

#include <gtest/gtest.h>

#include "stablelearn/continual/metrics.h"
#include "stablelearn/core/error.h"
#include "testing.h"

using namespace stablelearn::continual;

TEST(MatrixMetrics, HandComputedThreeTaskMatrix) {
  // R[t][j]; init b = (0.1, 0.2, 0.3); test sizes (100, 200, 100).
  const std::vector<std::vector<double>> R{{0.9, 0.3, 0.2}, {0.7, 0.8, 0.4}, {0.6, 0.5, 0.9}};
  const auto m = matrix_metrics(R, {0.1, 0.2, 0.3}, {100, 200, 100});
  EXPECT_NEAR(m.acc, (0.6 + 0.5 + 0.9) / 3, 1e-12);
  EXPECT_NEAR(m.acc_pooled, (60 + 100 + 90) / 400.0, 1e-12);
  // BWT = ((0.6 − 0.9) + (0.5 − 0.8)) / 2 = −0.3.
  EXPECT_NEAR(m.bwt, -0.3, 1e-12);
  EXPECT_NEAR(m.forgetting_just_learned, 0.3, 1e-12);
  // FWT = ((R[0][1] − b1) + (R[1][2] − b2)) / 2 = ((0.3 − 0.2) + (0.4 − 0.3)) / 2 = 0.1.
  EXPECT_NEAR(m.fwt, 0.1, 1e-12);
  EXPECT_TRUE(m.has_fwt);
}

TEST(MatrixMetrics, BestSoFarForgettingDiffersFromJustLearned) {
  // Task 0 improves after task 1 (0.5 → 0.8) and ends at 0.6: just-learned forgetting of task 0 is
  // 0.5 − 0.6 = −0.1, best-so-far is 0.8 − 0.6 = 0.2. Task 1: 0.9 → 0.7, both 0.2.
  const std::vector<std::vector<double>> R{{0.5, 0.0, 0.0}, {0.8, 0.9, 0.0}, {0.6, 0.7, 0.9}};
  const auto m = matrix_metrics(R);
  EXPECT_NEAR(m.forgetting_just_learned, (-0.1 + 0.2) / 2, 1e-12);
  EXPECT_NEAR(m.forgetting_max, (0.2 + 0.2) / 2, 1e-12);
  EXPECT_FALSE(m.has_fwt);
}

TEST(MatrixMetrics, PartialRunUsesTrainedRowsOnly) {
  const std::vector<std::vector<double>> R{{0.9, 0.1, 0.1}, {0.7, 0.8, 0.1}};
  const auto m = matrix_metrics(R, {}, {}, 2);
  EXPECT_NEAR(m.acc, 0.75, 1e-12);
  EXPECT_NEAR(m.bwt, -0.2, 1e-12);
}

TEST(MatrixMetrics, PlasticityAndALowerTriangularMatrix) {
  // Plasticity = mean of the diagonal = (0.5 + 0.9 + 0.9) / 3. The lower triangle of the same matrix
  // (seen tasks only) gives every metric that needs no init: ACC (0.6 + 0.7 + 0.9) / 3, BWT
  // ((0.6 − 0.5) + (0.7 − 0.9)) / 2 = −0.05, best-so-far forgetting ((0.8 − 0.6) + (0.9 − 0.7)) / 2.
  const std::vector<std::vector<double>> R{{0.5, 0.0, 0.0}, {0.8, 0.9, 0.0}, {0.6, 0.7, 0.9}};
  const std::vector<std::vector<double>> L{{0.5}, {0.8, 0.9}, {0.6, 0.7, 0.9}};
  for (const auto& m : {matrix_metrics(R), matrix_metrics(L)}) {
    EXPECT_NEAR(m.plasticity, (0.5 + 0.9 + 0.9) / 3, 1e-12);
    EXPECT_NEAR(m.acc, (0.6 + 0.7 + 0.9) / 3, 1e-12);
    EXPECT_NEAR(m.bwt, -0.05, 1e-12);
    EXPECT_NEAR(m.forgetting_max, 0.2, 1e-12);
  }
  EXPECT_NEAR(matrix_metrics(L, {}, {}, 2).plasticity, (0.5 + 0.9) / 2, 1e-12);
  // A lower-triangular matrix has no R[j − 1][j]: with init it is an error.
  stablelearn::testing::expect_error<stablelearn::ShapeError>([&] { matrix_metrics(L, {0.1, 0.1, 0.1}); }, "ragged");
}

TEST(MatrixMetrics, RejectsRaggedAndMismatchedInput) {
  stablelearn::testing::expect_error<stablelearn::ShapeError>([] { matrix_metrics({{0.1, 0.2}, {0.3}}); }, "ragged");
  stablelearn::testing::expect_error<stablelearn::ShapeError>([] { matrix_metrics({{0.1, 0.2}}, {0.1}); }, "init");
}

TEST(ContinualTracker, MinAccWcAccWindowedForgettingAndLcaByHand) {
  ContinualTracker tr(2, /*lca_beta=*/2, {2, 3});
  tr.record(0, {0.2});
  tr.record(0, {0.8});
  EXPECT_TRUE(std::isnan(tr.min_acc()));   // no task finished yet
  EXPECT_NEAR(tr.wc_acc(), 0.8, 1e-12);    // one seen task: WC-ACC = its accuracy
  EXPECT_NEAR(tr.lca(), 0.5, 1e-12);       // (0.2 + 0.8) / 2
  tr.record(1, {0.4, 0.1});                // the stability gap: task 0 drops to 0.4
  tr.record(1, {0.7, 0.6});
  EXPECT_NEAR(tr.task_min(0), 0.4, 1e-12);
  EXPECT_NEAR(tr.min_acc(), 0.4, 1e-12);
  // WC-ACC = A_1/2 + (1 − 1/2)·min-ACC = 0.3 + 0.2.
  EXPECT_NEAR(tr.wc_acc(), 0.5, 1e-12);
  // Window 2 over task 0's values (0.2, 0.8, 0.4, 0.7): drops 0.8→0.4 = 0.4; task 1: none.
  EXPECT_NEAR(tr.windowed_forgetting(0), (0.4 + 0.0) / 2, 1e-12);
  EXPECT_NEAR(tr.windowed_forgetting(1), (0.4 + 0.0) / 2, 1e-12);
  EXPECT_NEAR(tr.lca(), (0.5 + 0.35) / 2, 1e-12);
}
