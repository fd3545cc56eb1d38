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
//
// Weight-noise stability (Shesha's drift protocol, prashantcraju/geometric-stability:
// drift/drift_canary.py): the representation of fixed inputs is a function f(θ) of the weights
// θ = (W_1, …, W_m). For a relative scale α ≥ 0 every tensor with more than one element and a
// non-zero standard deviation gets independent noise, W̃_k = W_k + α·std(W_k)·E_k with E_k ~ N(0, I)
// and std the unbiased (n − 1) standard deviation of W_k's entries (torch's p.std()); one-element
// tensors and constant tensors are left alone, and α = 0 adds nothing. The similarity of one draw
// is ρ = Spearman(RDM(f(θ)), RDM(f(θ̃))) with cosine RDMs (RDM(f(θ)) computed once); a non-finite ρ
// (a constant RDM) counts as 0, as in the paper code; drift = 1 − ρ. Each α is repeated for R
// draws, reported as mean ± standard deviation (n − 1; 0 for R = 1). Noise is drawn on the CPU in
// float64 from one generator seeded once (all scales and draws in order) and then moved to each
// tensor's dtype and device, so a seed gives the same noise on every device. The caller's
// tensors are never written (the noisy weights are new tensors); f runs under NoGradGuard.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

namespace stablelearn::diagnostics {

/// 1-based ranks of a 1-D tensor with ties given their average rank (scipy's rankdata), float64.
torch::Tensor average_ranks(const torch::Tensor& values);
/// Spearman rank correlation of two 1-D tensors of equal length (NaN if either is constant).
double spearman(const torch::Tensor& a, const torch::Tensor& b);
/// The q-th percentile (0 ≤ q ≤ 100) of finite values by linear interpolation between the order
/// statistics (numpy's default `np.percentile`): with the values sorted, v[h] at h = (m − 1)·q/100
/// (m values), interpolating between ⌊h⌋ and ⌈h⌉. NaN when there is no finite value; ConfigError
/// for q outside [0, 100].
double percentile(std::vector<double> values, double q);

/// The percentile bootstrap of Spearman's ρ over pairs (Shesha's aggregate analysis,
/// prashantcraju/geometric-stability:distinction/combined_analysis.py, bootstrap_ci_rho): pairs
/// where either value is not finite are dropped; each of B resamples draws n pair indices uniformly
/// with replacement and computes ρ on them (a resample whose ρ is NaN, e.g. one with a constant
/// side, is skipped); the interval is the (1 − c)/2 and (1 + c)/2 percentiles (percentile() above)
/// of the finite resampled ρ. All indices come from one generator seeded once.
struct BootstrapOptions {
  /// Resamples B, ≥ 1 (Shesha: 10,000)
  TORCH_ARG(std::int64_t, resamples) = 10000;
  /// Confidence level c of the two-sided interval, 0 < c < 1 (Shesha: 0.95)
  TORCH_ARG(double, confidence) = 0.95;
  /// Seed of the resampling generator (Shesha's RNG_SEED: 42)
  TORCH_ARG(std::uint64_t, seed) = 42;
};

struct SpearmanInterval {
  double rho = 0.0;                ///< ρ of all finite pairs (NaN when fewer than 3 or a side is constant)
  double lo = 0.0, hi = 0.0;       ///< the percentile interval (NaN when no resample was finite)
  std::int64_t pairs = 0;          ///< finite pairs used
  std::int64_t finite = 0;         ///< resamples with a finite ρ
  std::vector<double> resampled;   ///< the finite resampled ρ, in draw order
};

/// Spearman ρ of a and b (1-D, same length) with its percentile-bootstrap interval. ShapeError for
/// mismatched or non-1-D inputs; ConfigError for resamples < 1 or a confidence outside (0, 1). With
/// fewer than 3 finite pairs every number is NaN and nothing is resampled.
SpearmanInterval spearman_bootstrap(const torch::Tensor& a, const torch::Tensor& b, const BootstrapOptions& options = {});

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

/// The representation [n, ...] of fixed inputs under the weights `weights` (same layout as the
/// weight list given to weight_noise_stability). It must not modify its argument.
using RepresentationFn = std::function<torch::Tensor(const std::vector<torch::Tensor>& weights)>;

struct WeightNoiseOptions {
  /// Relative noise scales α, each ≥ 0 (Shesha's drift canary sweeps 0, 0.01, …, 0.50)
  TORCH_ARG(std::vector<double>, sigmas) = std::vector<double>{0.01, 0.05, 0.1};
  /// Independent noise draws R per scale, ≥ 1
  TORCH_ARG(std::int64_t, draws) = 10;
  TORCH_ARG(std::uint64_t, seed) = 320;
};

/// One scale of the weight-noise curve.
struct WeightNoisePoint {
  double sigma = 0.0;                 ///< α
  double mean = 0.0;                  ///< mean over the draws of ρ
  double std = 0.0;                   ///< standard deviation (n − 1) of ρ over the draws; 0 for R = 1
  std::vector<double> similarities;   ///< ρ of each draw, in order
};

/// θ̃ = θ + α·std(θ_k)·E_k for each tensor with more than one element and std > 0 (new tensors,
/// same dtype and device; the others are returned as they are). ConfigError if α < 0.
std::vector<torch::Tensor> perturb_weights(const std::vector<torch::Tensor>& weights, double sigma, at::Generator& gen);

/// Shesha weight-noise stability curve of f around `weights`: one point per options.sigmas().
/// ConfigError for an empty weight list, no scales, a negative scale or draws < 1; ShapeError when
/// f(θ) has fewer than 3 samples or a noisy representation's shape differs from the clean one.
std::vector<WeightNoisePoint> weight_noise_stability(const RepresentationFn& f, const std::vector<torch::Tensor>& weights,
                                                     const WeightNoiseOptions& options = {});

}  // namespace stablelearn::diagnostics
