// data/sequences: every generated sequence checked against its task's rule, recomputed here from
// the tokens alone (the answers, the positions of markers and queries, the vocabularies), seeding,
// and bad options naming the key.
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/sequences.h"
#include "testing.h"

namespace sd = stablelearn::data;
namespace sl = stablelearn;
namespace st = stablelearn::testing;

namespace {
std::vector<std::vector<std::int64_t>> rows(const torch::Tensor& t) {
  std::vector<std::vector<std::int64_t>> out;
  auto a = t.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < t.size(0); ++i) {
    out.emplace_back();
    for (std::int64_t j = 0; j < t.size(1); ++j) out.back().push_back(a[i][j]);
  }
  return out;
}
void expect_in_vocab(const sd::SequenceSet& s) {
  EXPECT_GE(s.tokens.min().item<std::int64_t>(), 0);
  EXPECT_LT(s.tokens.max().item<std::int64_t>(), s.vocab);
}
}  // namespace

TEST(Sequences, ModularAdditionAsksForAPlusBModPAtTheEqualsSign) {
  const auto s = sd::modular_addition({13}, 500, 1);
  ASSERT_EQ(s.tokens.sizes(), (std::vector<std::int64_t>{500, 4}));
  EXPECT_EQ(s.vocab, 15);
  expect_in_vocab(s);
  const auto tok = rows(s.tokens), tgt = rows(s.targets);
  std::set<std::int64_t> seen_a;
  for (std::size_t i = 0; i < tok.size(); ++i) {
    EXPECT_LT(tok[i][0], 13);
    EXPECT_EQ(tok[i][1], 13);
    EXPECT_LT(tok[i][2], 13);
    EXPECT_EQ(tok[i][3], 14);
    EXPECT_EQ(tgt[i][3], (tok[i][0] + tok[i][2]) % 13);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(tgt[i][j], sd::kIgnore);
    seen_a.insert(tok[i][0]);
  }
  EXPECT_EQ(seen_a.size(), 13u);  // 500 uniform draws cover all 13 values
  const auto table = sd::modular_addition_table({5});
  ASSERT_EQ(table.size(), 25);
  const auto tt = rows(table.tokens), ty = rows(table.targets);
  for (int a = 0; a < 5; ++a)
    for (int b = 0; b < 5; ++b) {
      EXPECT_EQ(tt[a * 5 + b][0], a);
      EXPECT_EQ(tt[a * 5 + b][2], b);
      EXPECT_EQ(ty[a * 5 + b][3], (a + b) % 5);
    }
}

TEST(Sequences, MarkerSumLabelsTheSumOfTheMarkedValuesModC) {
  sd::MarkerSumOptions o;
  o.length = 12;
  o.modulus = 8;
  o.min_markers = 1;
  o.max_markers = 5;
  const auto s = sd::marker_sum(o, 2000, 4);
  ASSERT_EQ(s.tokens.sizes(), (std::vector<std::int64_t>{2000, 12}));
  EXPECT_EQ(s.vocab, 10);
  expect_in_vocab(s);
  std::map<int, int> count_m;
  const auto tok = rows(s.tokens), tgt = rows(s.targets);
  for (std::size_t i = 0; i < tok.size(); ++i) {
    const auto& t = tok[i];
    EXPECT_EQ(t[11], 9) << "the query token ends every sequence";
    int m = 0;
    std::int64_t sum = 0;
    for (int j = 0; j < 11; ++j)
      if (t[j] == 8) {
        ++m;
        ASSERT_LT(j + 1, 11) << "a marker needs its value before the query";
        ASSERT_LT(t[j + 1], 8) << "a marker is followed by a value, never another marker";
        sum += t[j + 1];
      }
    EXPECT_EQ(tgt[i][11], sum % 8) << i;
    for (int j = 0; j < 11; ++j) EXPECT_EQ(tgt[i][j], sd::kIgnore);
    ASSERT_GE(m, 1);
    ASSERT_LE(m, 5);
    ++count_m[m];
  }
  EXPECT_EQ(count_m.size(), 5u);  // mixed: every m in [1, 5] occurs
  for (const auto& [m, c] : count_m) EXPECT_GT(c, 300) << m;  // ≈ 400 each
}

TEST(Sequences, EveryMqarQueryIsAnsweredByTheValuePairedWithItsKeyEarlier) {
  sd::MqarOptions o;
  o.pairs = 6;
  o.queries = 4;
  o.keys = 10;
  o.values = 20;
  const auto s = sd::mqar(o, 300, 9);
  ASSERT_EQ(s.tokens.sizes(), (std::vector<std::int64_t>{300, 16}));
  EXPECT_EQ(s.vocab, 30);
  expect_in_vocab(s);
  const auto tok = rows(s.tokens), tgt = rows(s.targets);
  for (std::size_t i = 0; i < tok.size(); ++i) {
    std::map<std::int64_t, std::int64_t> value_of;
    for (int j = 0; j < 6; ++j) {
      EXPECT_LT(tok[i][2 * j], 10) << "keys are tokens [0, keys)";
      EXPECT_GE(tok[i][2 * j + 1], 10) << "values are tokens [keys, keys + values)";
      EXPECT_TRUE(value_of.emplace(tok[i][2 * j], tok[i][2 * j + 1]).second) << "keys are distinct";
      EXPECT_EQ(tgt[i][2 * j], sd::kIgnore);
      EXPECT_EQ(tgt[i][2 * j + 1], sd::kIgnore);
    }
    std::set<std::int64_t> asked;
    for (int q = 12; q < 16; ++q) {
      ASSERT_TRUE(value_of.count(tok[i][q])) << "a query is a key of the sequence";
      EXPECT_EQ(tgt[i][q], value_of[tok[i][q]]);
      asked.insert(tok[i][q]);
    }
    EXPECT_EQ(asked.size(), 4u) << "queries are distinct keys";
  }
}

TEST(Sequences, CopyingAsksForTheFirstHalfAfterTheSeparator) {
  const auto s = sd::copying({5, 7}, 100, 2);
  ASSERT_EQ(s.tokens.sizes(), (std::vector<std::int64_t>{100, 10}));
  EXPECT_EQ(s.vocab, 8);
  expect_in_vocab(s);
  const auto tok = rows(s.tokens), tgt = rows(s.targets);
  for (std::size_t i = 0; i < tok.size(); ++i) {
    EXPECT_EQ(tok[i][5], 7);
    for (int j = 0; j < 5; ++j) {
      EXPECT_LT(tok[i][j], 7);
      EXPECT_EQ(tgt[i][j], sd::kIgnore);
      EXPECT_EQ(tgt[i][5 + j], tok[i][j]) << "the answer at separator + j is the j-th token";
      if (j > 0) {
        EXPECT_EQ(tok[i][5 + j], tok[i][j - 1]) << "teacher forcing: the previous answer is the input";
      }
    }
  }
}

TEST(Sequences, TheSameSeedGivesTheSameSequencesAndAnotherSeedOthers) {
  sd::MqarOptions o;
  EXPECT_TRUE(torch::equal(sd::mqar(o, 50, 3).tokens, sd::mqar(o, 50, 3).tokens));
  EXPECT_FALSE(torch::equal(sd::mqar(o, 50, 3).tokens, sd::mqar(o, 50, 4).tokens));
  sd::MarkerSumOptions m;
  EXPECT_TRUE(torch::equal(sd::marker_sum(m, 50, 3).tokens, sd::marker_sum(m, 50, 3).tokens));
  EXPECT_FALSE(torch::equal(sd::copying({}, 50, 3).tokens, sd::copying({}, 50, 5).tokens));
}

TEST(Sequences, OptionsThatMakeNoValidSequenceAreConfigErrorsNamingTheKey) {
  st::expect_error<sl::ConfigError>([] { sd::modular_addition({1}, 10, 0); }, "data.p: must be >= 2, got 1");
  sd::MarkerSumOptions m;
  m.length = 8;
  m.max_markers = 4;
  st::expect_error<sl::ConfigError>([&] { sd::marker_sum(m, 10, 0); }, "data.length: 4 markers");
  m.length = 16;
  m.min_markers = 5;
  st::expect_error<sl::ConfigError>([&] { sd::marker_sum(m, 10, 0); }, "data.max_markers");
  sd::MqarOptions q;
  q.pairs = 4;
  q.queries = 5;
  st::expect_error<sl::ConfigError>([&] { sd::mqar(q, 10, 0); }, "data.queries: must be <= pairs = 4");
  q.queries = 2;
  q.keys = 3;
  st::expect_error<sl::ConfigError>([&] { sd::mqar(q, 10, 0); }, "data.pairs");
  st::expect_error<sl::ConfigError>([] { sd::copying({0, 4}, 10, 0); }, "data.length");
  st::expect_error<sl::ConfigError>([] { sd::copying({3, 4}, -1, 0); }, "number of sequences");
}
