// Tests of options declared once (core/options.h): one fields() list yields the reader (values,
// type and rule errors naming the key, unknown keys), the writer (TOML text checked against a
// hand-written document), checks of a struct built in code, and the descriptions of listings.
#include <functional>

#include <gtest/gtest.h>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"
#include "stablelearn/core/options.h"
#include "testing.h"

namespace sl = stablelearn;
namespace opt = stablelearn::options;
using sl::testing::expect_error;

namespace {

enum class Colour { Red, Blue };

struct Sample {
  std::int64_t count = 3;
  double rate = 0.5;
  bool flag = false;
  std::string mode = "fast";
  std::vector<std::int64_t> widths{4, 5};
  std::vector<std::string> names{"a"};
  Colour colour = Colour::Blue;
  void fields(opt::Visitor& v) {
    v("count", count, "how many").at_least(1);
    v("rate", rate, "a rate").above(0.0).at_most(1.0);
    v("flag", flag, "a switch");
    v("mode", mode, "fast | slow").one_of({"fast", "slow"});
    v("widths", widths, "layer widths").each_at_least(1);
    v("names", names, "some names").one_of({"a", "b"});
    v.choice("colour", colour, {{"red", Colour::Red}, {"blue", Colour::Blue}}, "a colour");
  }
  void cross_check() const { SL_CHECK(!(flag && count > 10), ConfigError, "flag needs count <= 10"); }
};

struct TwoTables {
  Sample first;
  std::int64_t extra = 7;
  void fields(opt::Visitor& v) {
    v.section("first", first);
    v.table("second");
    v("extra", extra, "another value").in(0, 9);
  }
};

}  // namespace

TEST(Options, ReadsDeclaredFieldsKeepsDefaultsAndResolvesChoices) {
  const auto cfg = sl::Config::from_string(
      "[s]\ncount = 8\nrate = 1\nmode = \"slow\"\nwidths = [2]\nnames = [\"b\", \"a\"]\ncolour = \"red\"\n", "t.toml");
  auto s = cfg.section("s");
  const auto o = opt::read<Sample>(s);
  s.finish();
  EXPECT_EQ(o.count, 8);
  EXPECT_DOUBLE_EQ(o.rate, 1.0);  // an integer read as a number
  EXPECT_FALSE(o.flag);           // absent: the default
  EXPECT_EQ(o.mode, "slow");
  EXPECT_EQ(o.widths, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(o.names, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(o.colour, Colour::Red);
}

TEST(Options, BrokenRulesWrongTypesAndUnknownKeysNameTheKey) {
  const std::vector<std::tuple<std::string, std::string, std::string>> bad = {
      {"count = 0", "s.count", ">= 1"},
      {"rate = 0", "s.rate", "> 0.0"},
      {"rate = 1.5", "s.rate", "<= 1.0"},
      {"rate = nan", "s.rate", "finite"},
      {"rate = inf", "s.rate", "finite"},
      {"rate = \"x\"", "s.rate", "number"},
      {"mode = \"medium\"", "s.mode", "\"fast\", \"slow\""},
      {"widths = [3, 0]", "s.widths", "each >= 1"},
      {"names = [\"c\"]", "s.names", "\"a\", \"b\""},
      {"colour = \"green\"", "s.colour", "\"red\", \"blue\""},
      {"flag = true\ncount = 11", "flag needs count", ""},
  };
  for (const auto& [line, key, rule] : bad) {
    const auto read = [&line = line] {
      const auto cfg = sl::Config::from_string("[s]\n" + line + "\n", "bad.toml");
      auto s = cfg.section("s");
      opt::read<Sample>(s);
    };
    expect_error<sl::ConfigError>(read, key);
    expect_error<sl::ConfigError>(read, rule);
    if (key != "flag needs count") expect_error<sl::ConfigError>(read, "bad.toml: " + key);
  }
  // Unknown keys are left to finish(), which names them and lists the declared ones.
  const auto cfg = sl::Config::from_string("[s]\ncuont = 2\n", "typo.toml");
  auto s = cfg.section("s");
  opt::read<Sample>(s);
  expect_error<sl::ConfigError>([&] { s.finish(); }, "s.cuont");
  expect_error<sl::ConfigError>([&] { s.finish(); }, "count, flag");
}

TEST(Options, WritesTheHandWrittenDocumentAndReadsItBack) {
  Sample o;
  o.count = 2;
  o.rate = 0.25;
  o.colour = Colour::Red;
  sl::ConfigWriter w;
  opt::write(w, o, "s");
  const auto expected = sl::Config::from_string(
      "[s]\ncount = 2\nrate = 0.25\nflag = false\nmode = \"fast\"\nwidths = [4, 5]\nnames = [\"a\"]\ncolour = \"red\"\n", "x");
  const auto written = w.config();
  EXPECT_EQ(written.flat_values(), expected.flat_values());
  auto s = written.section("s");
  const auto back = opt::read<Sample>(s);
  EXPECT_EQ(back.count, 2);
  EXPECT_DOUBLE_EQ(back.rate, 0.25);
  EXPECT_EQ(back.colour, Colour::Red);
}

TEST(Options, MultiTableReadsFinishEveryTableAndRejectUnknownTables) {
  const auto cfg = sl::Config::from_string("[first]\ncount = 5\n[second]\nextra = 2\n", "m.toml");
  TwoTables t;
  opt::read(cfg, t);
  EXPECT_EQ(t.first.count, 5);
  EXPECT_EQ(t.extra, 2);
  expect_error<sl::ConfigError>(
      [] {
        TwoTables x;
        opt::read(sl::Config::from_string("[second]\nextra = 2\nother = 1\n", "m.toml"), x);
      },
      "second.other");
  expect_error<sl::ConfigError>(
      [] {
        TwoTables x;
        opt::read(sl::Config::from_string("[third]\nz = 1\n", "m.toml"), x);
      },
      "third");
  // A table the caller reads itself is allowed.
  TwoTables x;
  EXPECT_NO_THROW(opt::read(sl::Config::from_string("[third]\nz = 1\n", "m.toml"), x, {"third"}));
  expect_error<sl::ConfigError>(
      [] {
        TwoTables y;
        opt::read(sl::Config::from_string("[second]\nextra = 10\n", "m.toml"), y);
      },
      "m.toml: second.extra: must be in [0, 9], got 10");
}

TEST(Options, ChecksStructsBuiltInCode) {
  Sample o;
  EXPECT_NO_THROW(opt::check(o, "s"));
  o.rate = -1;
  expect_error<sl::ConfigError>([&] { opt::check(o, "s"); }, "s.rate: must be > 0.0, got -1.0");
}

TEST(Options, DescribesKeysTypesDefaultsDocsAndRules) {
  const auto docs = opt::describe<TwoTables>();
  ASSERT_EQ(docs.size(), 8u);
  EXPECT_EQ(docs[0].table, "first");
  EXPECT_EQ(docs[0].key, "count");
  EXPECT_EQ(docs[0].type, "integer");
  EXPECT_EQ(docs[0].default_value, "3");
  EXPECT_EQ(docs[0].doc, "how many");
  EXPECT_EQ(docs[0].rules, (std::vector<std::string>{">= 1"}));
  EXPECT_EQ(docs[1].type, "number");
  EXPECT_EQ(docs[1].rules, (std::vector<std::string>{"> 0.0", "<= 1.0"}));
  EXPECT_EQ(docs[4].default_value, "[4, 5]");
  EXPECT_EQ(docs[6].key, "colour");
  EXPECT_EQ(docs[6].default_value, "\"blue\"");
  EXPECT_EQ(docs[7].table, "second");
  EXPECT_EQ(docs[7].rules, (std::vector<std::string>{"in [0, 9]"}));
  const auto text = opt::format_fields(docs);
  EXPECT_NE(text.find("[first]"), std::string::npos) << text;
  EXPECT_NE(text.find("[second]"), std::string::npos) << text;
  EXPECT_NE(text.find("extra = 7"), std::string::npos) << text;
}
