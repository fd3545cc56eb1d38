#include "stablelearn/data/sequences.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::data {

namespace {

// Uniform integers in [0, n) from a 64-bit Mersenne twister by rejection (the same numbers with
// every standard library, unlike std::uniform_int_distribution).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed) {}
  std::int64_t below(std::int64_t n) {
    const auto un = static_cast<std::uint64_t>(n);
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % un);
    std::uint64_t x;
    do x = g_();
    while (x >= limit);
    return static_cast<std::int64_t>(x % un);
  }
  /// k distinct values of [0, n) in random order (partial Fisher–Yates).
  std::vector<std::int64_t> distinct(std::int64_t n, std::int64_t k) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    for (std::int64_t i = 0; i < k; ++i) std::swap(v[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(i + below(n - i))]);
    v.resize(static_cast<std::size_t>(k));
    return v;
  }

 private:
  std::mt19937_64 g_;
};

SequenceSet make(std::int64_t n, std::int64_t t, std::int64_t vocab) {
  SL_CHECK(n >= 0, ConfigError, "sequences: the number of sequences must be >= 0, got ", n);
  SequenceSet s;
  s.tokens = torch::zeros({n, t}, torch::kInt64);
  s.targets = torch::full({n, t}, kIgnore, torch::kInt64);
  s.vocab = vocab;
  return s;
}

}  // namespace

void ModularAdditionOptions::fields(options::Visitor& v) { v("p", p, "modulus p: a, b in [0, p)").at_least(2); }

SequenceSet modular_addition(const ModularAdditionOptions& o, std::int64_t n, std::uint64_t seed) {
  options::check(o, "data");
  auto s = make(n, 4, o.p + 2);
  Rng rng(seed);
  auto tok = s.tokens.accessor<std::int64_t, 2>();
  auto tgt = s.targets.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto a = rng.below(o.p), b = rng.below(o.p);
    tok[i][0] = a, tok[i][1] = o.p, tok[i][2] = b, tok[i][3] = o.p + 1;
    tgt[i][3] = (a + b) % o.p;
  }
  return s;
}

SequenceSet modular_addition_table(const ModularAdditionOptions& o) {
  options::check(o, "data");
  auto s = make(o.p * o.p, 4, o.p + 2);
  auto tok = s.tokens.accessor<std::int64_t, 2>();
  auto tgt = s.targets.accessor<std::int64_t, 2>();
  for (std::int64_t a = 0; a < o.p; ++a)
    for (std::int64_t b = 0; b < o.p; ++b) {
      const auto i = a * o.p + b;
      tok[i][0] = a, tok[i][1] = o.p, tok[i][2] = b, tok[i][3] = o.p + 1;
      tgt[i][3] = (a + b) % o.p;
    }
  return s;
}

void MarkerSumOptions::fields(options::Visitor& v) {
  v("length", length, "sequence length T, including the final query token").at_least(3);
  v("modulus", modulus, "C: values in [0, C), the label is the marked sum mod C").at_least(2);
  v("min_markers", min_markers, "fewest markers per sequence").at_least(1);
  v("max_markers", max_markers, "most markers per sequence").at_least(1);
}

void MarkerSumOptions::cross_check() const {
  SL_CHECK(max_markers >= min_markers, ConfigError, "data.max_markers: must be >= min_markers = ", min_markers, ", got ",
           max_markers);
  // m markers each followed by its value need 2m of the T − 1 positions before the query.
  SL_CHECK(2 * max_markers <= length - 1, ConfigError, "data.length: ", max_markers,
           " markers, each followed by its value, need length >= ", 2 * max_markers + 1, " (with the query), got ", length);
}

SequenceSet marker_sum(const MarkerSumOptions& o, std::int64_t n, std::uint64_t seed) {
  options::check(o, "data");
  const auto t = o.length, c = o.modulus;
  auto s = make(n, t, c + 2);
  Rng rng(seed);
  auto tok = s.tokens.accessor<std::int64_t, 2>();
  auto tgt = s.targets.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto m = o.min_markers + rng.below(o.max_markers - o.min_markers + 1);
    for (std::int64_t j = 0; j < t - 1; ++j) tok[i][j] = rng.below(c);
    // m marker positions in [0, T − 2) with gaps >= 2: choose m of the T − 1 − m "slots" (stars and
    // bars): sorted picks q_1 < … < q_m of [0, T − 1 − m) give positions q_j + j (j = 0-based).
    auto picks = rng.distinct(t - 1 - m, m);
    std::sort(picks.begin(), picks.end());
    std::int64_t sum = 0;
    for (std::int64_t j = 0; j < m; ++j) {
      const auto pos = picks[static_cast<std::size_t>(j)] + j;
      tok[i][pos] = c;
      sum += tok[i][pos + 1];  // a value, never a marker: the next marker is at least 2 further on
    }
    tok[i][t - 1] = c + 1;
    tgt[i][t - 1] = sum % c;
  }
  return s;
}

void MqarOptions::fields(options::Visitor& v) {
  v("pairs", pairs, "key-value pairs per sequence").at_least(1);
  v("queries", queries, "queried keys per sequence (<= pairs)").at_least(1);
  v("keys", keys, "key vocabulary size (keys are tokens [0, keys))").at_least(1);
  v("values", values, "value vocabulary size (values are tokens [keys, keys + values))").at_least(1);
}

void MqarOptions::cross_check() const {
  SL_CHECK(pairs <= keys, ConfigError, "data.pairs: ", pairs, " distinct keys do not fit a key vocabulary of keys = ", keys);
  SL_CHECK(queries <= pairs, ConfigError, "data.queries: must be <= pairs = ", pairs, " (each queried key is a distinct key "
           "of the sequence), got ", queries);
}

SequenceSet mqar(const MqarOptions& o, std::int64_t n, std::uint64_t seed) {
  options::check(o, "data");
  auto s = make(n, o.length(), o.keys + o.values);
  Rng rng(seed);
  auto tok = s.tokens.accessor<std::int64_t, 2>();
  auto tgt = s.targets.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < n; ++i) {
    const auto keys = rng.distinct(o.keys, o.pairs);
    std::vector<std::int64_t> vals(static_cast<std::size_t>(o.pairs));
    for (std::int64_t j = 0; j < o.pairs; ++j) {
      vals[static_cast<std::size_t>(j)] = o.keys + rng.below(o.values);
      tok[i][2 * j] = keys[static_cast<std::size_t>(j)];
      tok[i][2 * j + 1] = vals[static_cast<std::size_t>(j)];
    }
    const auto asked = rng.distinct(o.pairs, o.queries);
    for (std::int64_t q = 0; q < o.queries; ++q) {
      const auto j = static_cast<std::size_t>(asked[static_cast<std::size_t>(q)]);
      tok[i][2 * o.pairs + q] = keys[j];
      tgt[i][2 * o.pairs + q] = vals[j];
    }
  }
  return s;
}

void CopyingOptions::fields(options::Visitor& v) {
  v("length", length, "L tokens to copy (sequences have 2L tokens)").at_least(1);
  v("vocab", vocab, "copied tokens lie in [0, vocab); the separator is token vocab").at_least(1);
}

SequenceSet copying(const CopyingOptions& o, std::int64_t n, std::uint64_t seed) {
  options::check(o, "data");
  const auto l = o.length;
  auto s = make(n, 2 * l, o.vocab + 1);
  Rng rng(seed);
  auto tok = s.tokens.accessor<std::int64_t, 2>();
  auto tgt = s.targets.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < l; ++j) tok[i][j] = rng.below(o.vocab);
    tok[i][l] = o.vocab;
    for (std::int64_t j = 1; j < l; ++j) tok[i][l + j] = tok[i][j - 1];
    for (std::int64_t j = 0; j < l; ++j) tgt[i][l + j] = tok[i][j];
  }
  return s;
}

}  // namespace stablelearn::data
