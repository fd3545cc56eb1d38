// core/progress: the plain-line form (not a terminal) and quiet mode.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stablelearn/core/progress.h"

namespace sl = stablelearn;

namespace {
/// Everything written to a FILE* by `fn`, split into lines.
template <typename Fn>
std::vector<std::string> captured_lines(sl::ProgressReporter::Mode mode, Fn fn) {
  std::FILE* f = std::tmpfile();
  {
    sl::ProgressReporter p(mode, f);
    fn(p);
  }
  std::rewind(f);
  std::vector<std::string> lines;
  std::string cur;
  for (int c; (c = std::fgetc(f)) != EOF;) {
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(c);
    }
  }
  EXPECT_TRUE(cur.empty()) << "unterminated line: " << cur;
  std::fclose(f);
  return lines;
}
}  // namespace

TEST(ProgressReporter, AFileIsNotATerminalSoAutoWritesPlainLines) {
  std::FILE* f = std::tmpfile();
  EXPECT_EQ(sl::ProgressReporter(sl::ProgressReporter::Mode::Auto, f).mode(), sl::ProgressReporter::Mode::Lines);
  std::fclose(f);
}

TEST(ProgressReporter, PlainLinesAtEveryTenPercentOfEachStage) {
  const auto lines = captured_lines(sl::ProgressReporter::Mode::Lines, [](sl::ProgressReporter& p) {
    for (int i = 1; i <= 100; ++i) p.update("task 1/2", i, 100, "loss 0.5");
    p.note("between tasks");
    for (int i = 0; i <= 7; ++i) p.update("task 2/2", i, 7);
  });
  // Stage 1: iterations 1 (start), 10, 20, ..., 100 = 11 lines; the note; stage 2: 0, 1..7 each a
  // new decile (7 steps of 1/7 cross a tenth every time) = 8 lines.
  ASSERT_EQ(lines.size(), 11u + 1u + 8u);
  EXPECT_EQ(lines[0].rfind("task 1/2 [", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("] it 1/100 loss 0.5 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[5].find("it 50/100"), std::string::npos) << lines[5];
  EXPECT_NE(lines[5].find("[############............]"), std::string::npos) << lines[5];  // 12 of 24
  EXPECT_NE(lines[10].find("[########################] it 100/100"), std::string::npos) << lines[10];
  for (const auto& l : lines)
    if (l != "between tasks") {
      EXPECT_NE(l.find(" it/s ETA "), std::string::npos) << l;
      EXPECT_EQ(l.find('\r'), std::string::npos) << l;
    }
  EXPECT_EQ(lines[11], "between tasks");
  EXPECT_NE(lines[12].find("task 2/2 [........................] it 0/7"), std::string::npos) << lines[12];
  EXPECT_NE(lines.back().find("it 7/7"), std::string::npos) << lines.back();
}

TEST(ProgressReporter, QuietWritesNothing) {
  const auto lines = captured_lines(sl::ProgressReporter::Mode::Quiet, [](sl::ProgressReporter& p) {
    for (int i = 1; i <= 10; ++i) p.update("seed 1/1", i, 10);
    p.note("text");
  });
  EXPECT_TRUE(lines.empty());
}

TEST(ProgressReporter, TerminalRedrawsOneLineAndEndsItWhenTheStageCompletes) {
  std::FILE* f = std::tmpfile();
  {
    sl::ProgressReporter p(sl::ProgressReporter::Mode::Terminal, f);
    for (int i = 0; i <= 1000; ++i) p.update("run", i, 1000);
  }
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text += static_cast<char>(c);
  std::fclose(f);
  EXPECT_EQ(text.front(), '\r');
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);  // one line, redrawn in place
  EXPECT_NE(text.find("it 1000/1000"), std::string::npos);
}
