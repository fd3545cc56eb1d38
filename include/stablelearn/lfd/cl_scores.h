// Continual-learning scores of continual learning from demonstration
// (shared/specs/clfd-snode.md §4.1, after Díaz-Rodríguez et al. 2018 "Don't forget, there is more
// than forgetting"). Input: a lower-triangular accuracy matrix a[i][j] (after training task i,
// accuracy on task j <= i), model sizes and per-task training times.
#pragma once

#include <cstdint>
#include <vector>

namespace stablelearn::lfd {

/// a[i][j] for j <= i (entries above the diagonal are ignored).
using AccuracyMatrix = std::vector<std::vector<double>>;

/// Threshold accuracy of one (train task i, eval task j) cell: the fraction of per-demonstration
/// errors below `tau` (`strict` = `<` as plots.py; false = `<=` as cl_metrics.py). A NaN error
/// (a diverged rollout) never counts as below. DataError when `errors` is empty or tau is NaN.
double threshold_accuracy(const std::vector<double>& errors, double tau, bool strict = true);

struct ClScoreInputs {
  AccuracyMatrix acc;                 ///< N x N, lower triangle used
  std::vector<double> sizes;          ///< parameters stored after each task (N values)
  std::vector<double> train_seconds;  ///< training wall time of each task (N values)
  /// Largest final size over all compared methods (for FS); 0 = use this method's own final size
  /// (FS = 0).
  double max_final_size = 0;
  bool stores_data = false;  ///< replay-style methods (SSS = 1 - (N+1)/(2N)); else SSS = 1
};

struct ClScores {
  double acc = 0, bwt = 0, bwt_plus = 0, rem = 0, ms = 0, te = 0, fs = 0, sss = 0;
  double cl_score = 0, cl_stability = 0;
};

/// ACC = sum_{j<=i} a[i][j] / (N(N+1)/2); BWT = sum_{i>j} (a[i][j] - a[j][j]) / (N(N-1)/2)
/// (0 when N = 1); BWT+ = max(BWT, 0); REM = 1 - |min(BWT, 0)|;
/// MS = min(1, (1/N) sum_i size_0/size_i); TE = min(1, (1/N) sum_i time_0/time_i);
/// FS = 1 - size_final / max_final_size; SSS = 1 - min(1, (N(N+1)/(2N))/N) if stores_data else 1;
/// CL_score = mean(ACC, REM, MS, TE, FS, SSS); CL_stability = 1 - sample std (ddof 1) of the same.
/// Throws ShapeError when N = 0, a row of `acc` does not have N entries, or sizes/train_seconds
/// do not have N values; DataError when a lower-triangle accuracy is not in [0, 1] (NaN
/// included), a size or time is not finite and > 0, or max_final_size is negative, non-finite
/// or (when > 0) smaller than this method's final size.
ClScores compute_cl_scores(const ClScoreInputs& in);

}  // namespace stablelearn::lfd
