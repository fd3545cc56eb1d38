#include <gtest/gtest.h>

#include "stablelearn/core/error.h"

namespace sl = stablelearn;

TEST(Error, CheckThrowsTheNamedKindWithTheStreamedMessage) {
  try {
    const int n = 3;
    SL_CHECK(n == 4, DataError, "file.npy", ": expected 4 rows, got ", n);
    FAIL() << "SL_CHECK did not throw";
  } catch (const sl::DataError& e) {
    EXPECT_STREQ(e.what(), "file.npy: expected 4 rows, got 3");
    EXPECT_STREQ(e.kind(), "data error");
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(Error, CheckDoesNotEvaluateTheMessageWhenTheConditionHolds) {
  int evaluated = 0;
  auto side_effect = [&] { return ++evaluated; };
  SL_CHECK(true, DataError, "never ", side_effect());
  EXPECT_EQ(evaluated, 0);
}

TEST(Error, ExitCodesSeparateBadInputFromInternalFailures) {
  EXPECT_EQ(sl::IoError("x").exit_code(), 2);
  EXPECT_EQ(sl::ShapeError("x").exit_code(), 2);
  EXPECT_EQ(sl::ConfigError("x").exit_code(), 2);
  EXPECT_EQ(sl::UsageError("x").exit_code(), 2);
  EXPECT_EQ(sl::InternalError("x").exit_code(), 1);
  // Every kind is caught as the one base class.
  EXPECT_THROW(SL_THROW(ShapeError, "a"), sl::Error);
}

TEST(Error, DoublesAreStreamedWithRoundTripPrecision) {
  try {
    SL_THROW(DataError, 0.1);
  } catch (const sl::Error& e) {
    EXPECT_EQ(std::stod(e.what()), 0.1);
  }
}
