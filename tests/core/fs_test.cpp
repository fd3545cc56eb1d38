#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "testing.h"

namespace sl = stablelearn;

TEST(Fs, AtomicWriteCreatesFoldersAndLeavesNoTemporaryFile) {
  const auto dir = sl::testing::temp_dir("fs");
  const auto path = dir / "a" / "b" / "x.txt";
  sl::write_file_atomic(path, "hello\n");
  EXPECT_EQ(sl::read_file_text(path), "hello\n");
  sl::write_file_atomic(path, "second");  // overwrite
  EXPECT_EQ(sl::read_file_text(path), "second");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  std::filesystem::remove_all(dir);
}

TEST(Fs, ReadLinesStripsWhitespaceAndSkipsEmptyLines) {
  const auto dir = sl::testing::temp_dir("lines");
  sl::write_file_atomic(dir / "seq.txt", "  a.npz\r\n\nb.npz  \n\t\nc.npz");  // no trailing newline
  const auto lines = sl::read_lines(dir / "seq.txt");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "a.npz");
  EXPECT_EQ(lines[1], "b.npz");
  EXPECT_EQ(lines[2], "c.npz");
  std::filesystem::remove_all(dir);
}

TEST(Fs, MissingFileIsAnIoErrorNamingThePath) {
  try {
    sl::read_file_bytes("/nonexistent/dir/file.bin");
    FAIL();
  } catch (const sl::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file.bin"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sl::write_file_atomic("/proc/definitely/not/writable.txt", "x"), sl::IoError);
}
