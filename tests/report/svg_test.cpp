#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/report/svg.h"

namespace sl = stablelearn;

TEST(SvgPlot, MapsDataCoordinatesToThePlotArea) {
  // Canvas 640 x 480, margins left 70, right 20, top 40, bottom 50: the plot area spans
  // x 70..620 and y 40..430 (y grows downwards). Data range [0, 10] x [0, 1].
  sl::report::SvgPlot p(640, 480);
  p.set_range(0, 10, 0, 1);
  p.polyline({{0, 0}, {10, 1}, {5, 0.5}}, "#123456");
  const auto s = p.str();
  EXPECT_NE(s.find("points=\"70.00,430.00 620.00,40.00 345.00,235.00 \""), std::string::npos) << s;
  EXPECT_NE(s.find("stroke=\"#123456\""), std::string::npos);
  EXPECT_EQ(s.rfind("</svg>\n"), s.size() - 7);
}

TEST(SvgPlot, LogScaleAndEscapingAndBadRanges) {
  sl::report::SvgPlot p(640, 480);
  p.log_y(true);
  p.set_range(0, 1, 10, 1000);
  p.marker(0, 100, "red");  // log10(100) is halfway between 1 and 3: y = 430 - 0.5 * 390 = 235
  p.title("a < b & c");
  const auto s = p.str();
  EXPECT_NE(s.find("cx=\"70.00\" cy=\"235.00\""), std::string::npos) << s;
  EXPECT_NE(s.find("a &lt; b &amp; c"), std::string::npos);
  EXPECT_THROW(p.set_range(1, 1, 0, 1), sl::DataError);
}
