// core/task_loop: the order of the hooks, the task range and the divergence error.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/task_loop.h"
#include "testing.h"

namespace sl = stablelearn;

namespace {
/// Records every hook call as text; task i has i + 2 updates; update `bad_step` of task `bad_task`
/// returns NaN.
struct Recorder : sl::TaskLearner {
  std::vector<std::string> calls;
  std::int64_t bad_task = -1, bad_step = -1;
  std::vector<double> seconds;
  std::int64_t begin_task(std::int64_t i) override {
    calls.push_back("begin " + std::to_string(i));
    return i + 2;
  }
  double step(std::int64_t i, std::int64_t s) override {
    calls.push_back("step " + std::to_string(i) + "." + std::to_string(s));
    return i == bad_task && s == bad_step ? std::numeric_limits<double>::quiet_NaN() : 1.0 / static_cast<double>(s + 1);
  }
  void after_step(std::int64_t i, std::int64_t s, double loss) override {
    calls.push_back("after " + std::to_string(i) + "." + std::to_string(s) + " " + std::to_string(loss));
  }
  void end_task(std::int64_t i) override { calls.push_back("end " + std::to_string(i)); }
  void evaluate(std::int64_t i, double s) override {
    calls.push_back("evaluate " + std::to_string(i));
    seconds.push_back(s);
  }
  void checkpoint(std::int64_t i) override { calls.push_back("checkpoint " + std::to_string(i)); }
  void report(std::int64_t i) override { calls.push_back("report " + std::to_string(i)); }
  std::string divergence_hint() const override { return "try less"; }
};
}  // namespace

TEST(TaskLoop, CallsTheHooksInOrderForTheTasksOfTheRange) {
  Recorder r;
  sl::run_task_loop(r, 1, 3);  // tasks 1 and 2 (a resumed run after task 0, stopping before task 3)
  const std::vector<std::string> want = {
      "begin 1", "step 1.0", "after 1.0 1.000000", "step 1.1", "after 1.1 0.500000", "step 1.2", "after 1.2 0.333333",
      "end 1", "evaluate 1", "checkpoint 1", "report 1",
      "begin 2", "step 2.0", "after 2.0 1.000000", "step 2.1", "after 2.1 0.500000", "step 2.2", "after 2.2 0.333333",
      "step 2.3", "after 2.3 0.250000", "end 2", "evaluate 2", "checkpoint 2", "report 2"};
  EXPECT_EQ(r.calls, want);
  ASSERT_EQ(r.seconds.size(), 2u);
  for (double s : r.seconds) EXPECT_GE(s, 0.0);
}

TEST(TaskLoop, AnEmptyRangeCallsNothing) {
  Recorder r;
  sl::run_task_loop(r, 2, 2);
  EXPECT_TRUE(r.calls.empty());
}

TEST(TaskLoop, ANonFiniteLossStopsTheRunBeforeItsBookkeeping) {
  Recorder r;
  r.bad_task = 0;
  r.bad_step = 1;
  sl::testing::expect_error<sl::DataError>([&] { sl::run_task_loop(r, 0, 2); },
                                           "task 0 iteration 1: the training loss is nan (diverged; try less)");
  // The bad update is not followed by after_step, and no task end, checkpoint or report happens.
  const std::vector<std::string> want = {"begin 0", "step 0.0", "after 0.0 1.000000", "step 0.1"};
  EXPECT_EQ(r.calls, want);
}
