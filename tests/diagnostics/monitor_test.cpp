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

TEST(CurvatureMonitor, ReadingFieldsHoldWhatWasRead) {
  D::MonitorReading r;
  r.lambda_max = 3.5;
  r.lambda_residual = 1e-9;
  r.matvecs = 12;
  const auto f = D::reading_fields(r);
  EXPECT_EQ(f.size(), 3u);
  EXPECT_DOUBLE_EQ(f.at("lambda_max").get<double>(), 3.5);
  EXPECT_DOUBLE_EQ(f.at("lambda_residual").get<double>(), 1e-9);
  EXPECT_EQ(f.at("hvps").get<std::int64_t>(), 12);
  r.trace = 10.0;
  r.trace_se = 0.5;
  const auto g = D::reading_fields(r);
  EXPECT_DOUBLE_EQ(g.at("trace").get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(g.at("trace_se").get<double>(), 0.5);
}

TEST(CurvatureMonitor, SummaryTakesTheLargestFiniteLambdaAndTheLastRow) {
  const std::vector<nlohmann::json> rows = {{{"iteration", 10}, {"lambda_max", 1.5}},
                                            {{"iteration", 20}, {"lambda_max", std::nan("")}},
                                            {{"iteration", 30}, {"lambda_max", 4.25}},
                                            {{"iteration", 40}, {"lambda_max", 2.0}}};
  const auto s = D::monitor_summary(rows, 10, "hessian", 20.0);
  EXPECT_EQ(s.at("every").get<std::int64_t>(), 10);
  EXPECT_EQ(s.at("curvature").get<std::string>(), "hessian");
  EXPECT_EQ(s.at("measurements").get<std::size_t>(), 4u);
  EXPECT_EQ(s.at("last").at("iteration").get<std::int64_t>(), 40);
  EXPECT_DOUBLE_EQ(s.at("two_over_lr").get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(s.at("max_lambda_max").get<double>(), 4.25);
  // Rows without lambda_max (trace only): no max_lambda_max.
  const auto t = D::monitor_summary({{{"iteration", 1}, {"trace", 3.0}}}, 1, "ggn", 2.0);
  EXPECT_FALSE(t.contains("max_lambda_max"));
}

}  // namespace
