// Representational dissimilarity matrices (RDMs) and geometric stability (Shesha; Raju, arXiv
// 2601.09173, code prashantcraju/shesha:shesha/core.py; docs/diagnostics.md).
//
// A representation X ∈ R^{n×F} (rows = samples, flattened) has the condensed cosine RDM
// r = (1 − cos(x_i, x_j))_{i<j} of length n(n−1)/2 in scipy's pdist order; a zero row has
// distance 1 to everything (the library maps NaN distances to 1). RDM similarity of two
// representations of the same samples is the Spearman correlation of their RDMs (ranks with
// average ties, then Pearson); drift = 1 − similarity. Unlike CKA it is not tied to a kernel, but
// cosine RDMs are invariant to rotations and to positive scaling of the feature space.
//
// Feature-split stability (Shesha's main metric): subsample at most max_samples rows without
// replacement, then for each of `splits` random feature permutations take A = the first ⌊F/2⌋
// features and B = the next ⌊F/2⌋ and correlate (Spearman) the cosine RDMs of X[:, A] and X[:, B];
// splits whose RDM is constant (std < 1e-12) are skipped; the result is the mean. NaN when F < 4
// or n < 4 (or every split was skipped). All splits come from one seeded generator (the
// library's convention, not the paper script's seed + i).
#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::diagnostics {

/// 1-based ranks of a 1-D tensor with ties given their average rank (scipy's rankdata), float64.
torch::Tensor average_ranks(const torch::Tensor& values);
/// Spearman rank correlation of two 1-D tensors of equal length (NaN if either is constant).
double spearman(const torch::Tensor& a, const torch::Tensor& b);
/// Condensed cosine RDM of X [n, ...] (flattened per row), float64, length n(n−1)/2.
torch::Tensor cosine_rdm(const torch::Tensor& x);
/// Spearman correlation of the cosine RDMs of two representations of the same n ≥ 3 samples.
double rdm_similarity(const torch::Tensor& x, const torch::Tensor& y);

struct FeatureSplitOptions {
  /// Random feature splits (Shesha: 30)
  TORCH_ARG(std::int64_t, splits) = 30;
  /// Rows kept at most, drawn without replacement (Shesha: 1600)
  TORCH_ARG(std::int64_t, max_samples) = 1600;
  TORCH_ARG(std::uint64_t, seed) = 320;
};

/// Shesha feature-split stability of X [n, F].
double feature_split_stability(const torch::Tensor& x, const FeatureSplitOptions& options = {});

}  // namespace stablelearn::diagnostics
