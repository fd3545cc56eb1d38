// Synthetic sequence tasks (issue 22 item 1), seeded: the same options and seed give the same
// tensors. Every generator returns token ids [N, T] (int64) and next-token style targets [N, T]
// (int64), kIgnore where no prediction is asked — the convention of
// torch::nn::functional::cross_entropy's default ignore_index, so
//   cross_entropy(logits.view({-1, V}), targets.view({-1}))
// trains exactly the positions that carry an answer. The target at position t is what the model
// must output after reading tokens 0..t (a causal model sees no later token).
//
//   modular addition   [a, +, b, =]                      target (a + b) mod p at "=" (position 3)
//   marker sum         paper 12 (shared/specs/papers-01-18.md §12, code skydancerosel/bubble-modadd):
//                      length − 1 tokens, each a value in [0, C) except m markers (token C) at
//                      positions no two of which are adjacent, each followed by a value; the last
//                      token is a query (C + 1) whose target is the sum of the m marked values mod C.
//                      Every unmarked position holds a value drawn uniformly (a distractor), so only
//                      the position after a marker distinguishes a counted value. m is uniform in
//                      [min_markers, max_markers] per sequence (the paper's "mixed" training).
//   MQAR               multi-query associative recall (Arora et al., Zoology): `pairs` key–value
//                      pairs k_1 v_1 … k_n v_n (distinct keys from [0, keys), values from
//                      [keys, keys + values)), then `queries` of those keys (distinct, in random
//                      order); the target at each query is the value paired with it earlier.
//   copying            x_1 … x_L (uniform in [0, vocab)), a separator (token vocab), x_1 … x_{L−1};
//                      the target at the separator is x_1 and at position L + i is x_{i+1}.
// Errors: options that make no valid sequence (p < 2, markers that do not fit the length, more
// queries than pairs, more pairs than keys) are ConfigErrors naming the key.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "stablelearn/core/options.h"

namespace stablelearn::data {

inline constexpr std::int64_t kIgnore = -100;

struct SequenceSet {
  torch::Tensor tokens;   ///< int64 [N, T]
  torch::Tensor targets;  ///< int64 [N, T], kIgnore where no answer is asked
  std::int64_t vocab = 0; ///< token ids lie in [0, vocab)
  std::int64_t size() const { return tokens.defined() ? tokens.size(0) : 0; }
};

struct ModularAdditionOptions {
  std::int64_t p = 97;  ///< modulus; a, b in [0, p); tokens p ("+") and p + 1 ("=")
  void fields(options::Visitor& v);
};
/// n random pairs (a, b), uniform with replacement.
SequenceSet modular_addition(const ModularAdditionOptions& o, std::int64_t n, std::uint64_t seed);
/// All p² pairs, a-major (row a·p + b), for train/test splits of the full table.
SequenceSet modular_addition_table(const ModularAdditionOptions& o);

struct MarkerSumOptions {
  std::int64_t length = 16;      ///< T, including the final query token
  std::int64_t modulus = 8;      ///< C: values in [0, C), marker C, query C + 1
  std::int64_t min_markers = 1;  ///< m per sequence is uniform in [min_markers, max_markers]
  std::int64_t max_markers = 4;
  void fields(options::Visitor& v);
  void cross_check() const;
};
SequenceSet marker_sum(const MarkerSumOptions& o, std::int64_t n, std::uint64_t seed);

struct MqarOptions {
  std::int64_t pairs = 8;     ///< key–value pairs per sequence
  std::int64_t queries = 8;   ///< queried keys per sequence (<= pairs)
  std::int64_t keys = 64;     ///< key vocabulary [0, keys)
  std::int64_t values = 64;   ///< value vocabulary [keys, keys + values)
  void fields(options::Visitor& v);
  void cross_check() const;
  std::int64_t length() const { return 2 * pairs + queries; }
};
SequenceSet mqar(const MqarOptions& o, std::int64_t n, std::uint64_t seed);

struct CopyingOptions {
  std::int64_t length = 8;  ///< L tokens to copy; sequences have 2L tokens
  std::int64_t vocab = 8;   ///< copied tokens in [0, vocab); separator = vocab
  void fields(options::Visitor& v);
};
SequenceSet copying(const CopyingOptions& o, std::int64_t n, std::uint64_t seed);

}  // namespace stablelearn::data
