// Label noise as a data component (seed paper 25, ELR, and 24, the malignant tail;
// shared/specs/papers-19-35.md §24–25; docs/robust.md): corrupt the labels of any classification
// set at a given rate, seeded, keeping the clean labels so a run can report how many corrupted
// samples it fits (memorisation).
//
//   symmetric:  exactly round(rate · n) samples, drawn uniformly without replacement, each get a
//               label drawn uniformly from the C − 1 classes other than its own;
//   asymmetric: exactly round(rate · n) samples, drawn the same way, get the label of their class's
//               pair: `pairs` maps class c to pairs[c] (default: c → (c + 1) mod C); classes mapped
//               to themselves are never corrupted (their share of the draw is skipped, so the
//               corrupted count is then below round(rate · n)).
// The draw depends only on (labels, options): same seed, same corruption.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::robust {

struct LabelNoiseOptions {
  std::string kind = "none";  ///< none | symmetric | asymmetric
  double rate = 0;            ///< fraction of samples corrupted, in [0, 1)
  std::uint64_t seed = 0;
  std::vector<std::int64_t> pairs;  ///< asymmetric: class c → pairs[c] (empty: c → (c + 1) mod C)
  /// ConfigError naming `prefix` + the key (e.g. "stream.label_noise_rate") for a kind that is
  /// not one of the three, a rate outside [0, 1), or pairs that are not C classes.
  void validate(std::int64_t classes, const std::string& prefix = "") const;
};

struct NoisyLabels {
  torch::Tensor labels;     ///< [n] int64, the labels to train on
  torch::Tensor clean;      ///< [n] int64, the original labels
  torch::Tensor corrupted;  ///< [n] bool, labels != clean
  std::int64_t count() const { return corrupted.sum().item<std::int64_t>(); }
};

/// Corrupts `labels` ([n] int64 in 0..classes−1; DataError otherwise) as `options` says.
NoisyLabels corrupt_labels(const torch::Tensor& labels, std::int64_t classes, const LabelNoiseOptions& options);

/// Memorisation of a model's predictions on a noisy training set: the share of the corrupted
/// samples predicted as their (wrong) training label, and the share predicted as their clean label.
struct Memorisation {
  double memorised = 0, corrected = 0;
  std::int64_t corrupted = 0;
};
Memorisation memorisation(const torch::Tensor& predictions, const NoisyLabels& noisy);

}  // namespace stablelearn::robust
