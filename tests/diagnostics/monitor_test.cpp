// The curvature monitor of training runs (diagnostics/monitor.h) against a matrix of known spectrum:
// λ_max exact when Lanczos runs the full dimension, the trace within a few standard errors of the
// exact one, the product count, and the readings left out when not asked for.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "diagnostics_testing.h"
#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/diagnostics/monitor.h"

namespace {

namespace D = stablelearn::diagnostics;

TEST(CurvatureMonitor, ReadsTheKnownTopEigenvalueAndTrace) {
  // Eigenvalues 7, 3, 1, 0.5, 0.25, -2 in a random basis: λ_max = 7, trace = 9.75.
  const auto eig = torch::tensor({7.0, 3.0, 1.0, 0.5, 0.25, -2.0}, torch::kFloat64);
  const D::DenseOperator op(D::testing::known_spectrum(eig, 3));
  D::MonitorOptions o;
  o.lanczos_steps = 20;  // more than the dimension: capped at 6
  o.trace_probes = 400;
  o.lanczos_seed = 1;
  o.trace_seed = 2;
  const auto r = D::read_curvature(op, o);
  ASSERT_TRUE(r.lambda_max && r.lambda_residual && r.trace && r.trace_se);
  EXPECT_NEAR(*r.lambda_max, 7.0, 1e-9);
  EXPECT_LT(*r.lambda_residual, 1e-8);
  EXPECT_GT(*r.trace_se, 0.0);
  EXPECT_LT(std::abs(*r.trace - 9.75), 4 * *r.trace_se) << *r.trace << " ± " << *r.trace_se;
  EXPECT_EQ(r.matvecs, 6 + 400);
}

TEST(CurvatureMonitor, LeavesOutWhatIsNotAskedFor) {
  const auto eig = torch::tensor({2.0, 1.0, 0.5}, torch::kFloat64);
  const D::DenseOperator op(D::testing::known_spectrum(eig, 4));
  D::MonitorOptions o;
  o.lambda_max = false;
  o.trace_probes = 0;
  const auto none = D::read_curvature(op, o);
  EXPECT_FALSE(none.lambda_max || none.lambda_residual || none.trace || none.trace_se);
  EXPECT_EQ(none.matvecs, 0);
  o.lambda_max = true;
  const auto top = D::read_curvature(op, o);
  ASSERT_TRUE(top.lambda_max);
  EXPECT_NEAR(*top.lambda_max, 2.0, 1e-9);
  EXPECT_FALSE(top.trace);
}

}  // namespace
