// Tests of the TOML configuration layer (core/config.h): typed reads, error messages naming the
// key, and the resolved-config writer round trip.
#include <functional>

#include <gtest/gtest.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

namespace sl = stablelearn;

namespace {
std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const sl::ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}
}  // namespace

TEST(Config, TypedReadsFallBackToDefaultsAndRejectUnreadKeys) {
  const auto cfg = sl::Config::from_string("[train]\nlr = 1\nname = \"x\"\nsizes = [3, 4]\nbogus = 2\n", "t.toml");
  auto s = cfg.section("train");
  EXPECT_DOUBLE_EQ(s.get("lr", 0.5), 1.0);  // an integer is accepted for a double
  EXPECT_EQ(s.get("name", std::string("y")), "x");
  EXPECT_EQ(s.get("sizes", std::vector<std::int64_t>{}), (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(s.get("absent", std::int64_t{7}), 7);
  const auto msg = config_error([&] { s.finish(); });
  EXPECT_NE(msg.find("t.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.bogus"), std::string::npos) << msg;
}

TEST(Config, StringListsReadWriteAndRoundTrip) {
  auto cfg = sl::Config::from_string("[d]\nnames = ['a', \"b \\\"q\\\"\"]\nempty = []\n", "t.toml");
  auto s = cfg.section("d");
  const std::vector<std::string> expected = {"a", "b \"q\""};
  EXPECT_EQ(s.get("names", std::vector<std::string>{}), expected);
  EXPECT_TRUE(s.get("empty", std::vector<std::string>{"x"}).empty());
  EXPECT_EQ(s.get("absent", std::vector<std::string>{"x"}), std::vector<std::string>{"x"});
  s.finish();

  // --set keeps the list type.
  cfg.set("d.names=[\"lambda_max\", \"trace\"]");
  EXPECT_EQ(cfg.section("d").get("names", std::vector<std::string>{}),
            (std::vector<std::string>{"lambda_max", "trace"}));

  // Written by ConfigWriter and parsed back from its text, the list is unchanged.
  sl::ConfigWriter w;
  w.put("d", "names", expected);
  w.put("d", "sizes", std::vector<std::int64_t>{1, 2});
  const auto back = sl::Config::from_string(w.to_string(), "resolved");
  auto b = back.section("d");
  EXPECT_EQ(b.get("names", std::vector<std::string>{}), expected);
  EXPECT_EQ(b.get("sizes", std::vector<std::int64_t>{}), (std::vector<std::int64_t>{1, 2}));
}

TEST(Config, StringListTypeErrorsNameTheKey) {
  const auto cfg = sl::Config::from_string("[d]\nnot_list = \"a\"\nmixed = [\"a\", 2]\n", "t.toml");
  auto s = cfg.section("d");
  auto msg = config_error([&] { (void)s.get("not_list", std::vector<std::string>{}); });
  EXPECT_NE(msg.find("d.not_list"), std::string::npos) << msg;
  EXPECT_NE(msg.find("list of strings"), std::string::npos) << msg;
  msg = config_error([&] { (void)s.get("mixed", std::vector<std::string>{}); });
  EXPECT_NE(msg.find("d.mixed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
}

TEST(Config, FlatValuesNameEveryKeyWithItsTomlText) {
  const auto cfg = sl::Config::from_string("[a]\nx = 1\ns = \"t\"\nl = [1, 2]\n[b.c]\ny = true\n", "t.toml");
  const auto flat = cfg.flat_values();
  ASSERT_EQ(flat.size(), 4u);
  EXPECT_EQ(flat.at("a.x"), "1");
  EXPECT_EQ(flat.at("a.s"), "'t'");  // toml++ writes literal strings where it can
  EXPECT_EQ(flat.at("b.c.y"), "true");
  EXPECT_NE(flat.at("a.l").find('1'), std::string::npos);
}

// Kept from fuzz/fuzz_config.cpp (scripts/fuzz.sh): strings with line breaks, one of them leading,
// must read back as the same values from the text to_string() writes (toml++'s default output
// wrote the leading break inside a multi-line string, where a reader drops it). Compared with the
// values written here by hand, not only with the first parse.
TEST(Config, StringsWithLineBreaksRoundTrip) {
  const auto cfg = stablelearn::Config::from_string("[a]\ns = \"\\n[eval]\\nx = 1\\n\"\nt = 'single'\nu = \"q\\\"uote\"\n");
  const auto again = stablelearn::Config::from_string(cfg.to_string(), "written");
  auto sec = again.section("a");
  EXPECT_EQ(sec.get("s", std::string()), "\n[eval]\nx = 1\n");
  EXPECT_EQ(sec.get("t", std::string()), "single");
  EXPECT_EQ(sec.get("u", std::string()), "q\"uote");
  EXPECT_EQ(again.flat_values(), cfg.flat_values());
  // The fuzzer's input itself.
  const auto fz = stablelearn::Config::from_file(std::filesystem::path(SL_TEST_FIXTURES) / "fuzz" / "config_string_with_leading_newline.toml");
  EXPECT_EQ(stablelearn::Config::from_string(fz.to_string()).flat_values(), fz.flat_values());
}
