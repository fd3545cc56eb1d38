// Continual-learning metrics, torch-free (shared/specs/continual-anchors.md §3).
//
// Accuracy matrix R[t][j]: accuracy on the test set of task j after training task t (every j,
// including tasks not trained yet, so forward transfer is measurable). T tasks, final row T−1.
//  * ACC = (1/T) Σ_j R[T−1][j]                         (unweighted mean over tasks: GEM, Mammoth)
//  * ACC_pooled = Σ_j n_j R[T−1][j] / Σ_j n_j          (Avalanche's Top1_Acc_Stream; needs sizes)
//  * BWT = 1/(T−1) Σ_{i<T−1} (R[T−1][i] − R[i][i])     (GEM; = −Avalanche's StreamForgetting)
//  * FWT = 1/(T−1) Σ_{i≥1} (R[i−1][i] − b_i)           (GEM; b = accuracies at initialisation)
//  * forgetting, "just learned" convention (Avalanche):
//      F_jl = 1/(T−1) Σ_{i<T−1} (R[i][i] − R[T−1][i])
//  * forgetting, "best so far" convention (Chaudhry et al. 2018, FACIL, Renate; Mammoth takes the
//    max over all rows, which differs only by flooring each term at 0):
//      F_max = 1/(T−1) Σ_{i<T−1} (max_{t<T−1} R[t][i] − R[T−1][i])
//  * plasticity = (1/T) Σ_j R[j][j]                   (accuracy on each task just after learning it)
// With one task, BWT, FWT and both forgettings are 0 (nothing to average) and reported as such.
// Only R[t][j] with t ≥ j enter (and R[j−1][j] for FWT), so R may also be lower-triangular — row t
// holding tasks 0..t, the experiments that evaluate seen tasks only — when there is no `init`.
//
// Continual evaluation (De Lange, van de Ven & Tuytelaars, "Continual evaluation for lifelong
// learning: identifying the stability gap", ICLR 2023; ContinualEvaluation's definitions): at
// tracking steps s the accuracies A_i(s) of the seen tasks i ≤ k(s) are recorded (k(s) = task being
// trained, on fixed per-task evaluation subsets).
//  * min_i(s) = min { A_i(s') : s' ≤ s, i < k(s') }        (after task i was learned)
//  * min-ACC = mean of min_i over the tasks that have one
//  * WC-ACC = (1/K) A_k(s) + (1 − 1/K) min-ACC, K = k(s) + 1 seen tasks (A_0 when K = 1)
//  * WF_w: per task, the largest drop A_i(a) − A_i(b), a < b within the last w tracked values,
//    running max over time floored at 0; WF_w = mean over all seen tasks (current included)
//  * LCA_β: per task, mean of its first β tracked accuracies while it is being trained; mean over
//    tasks that have β values.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

namespace stablelearn::continual {

struct MatrixMetrics {
  double acc = 0, acc_pooled = 0, bwt = 0, fwt = 0, forgetting_just_learned = 0, forgetting_max = 0, plasticity = 0;
  bool has_pooled = false, has_fwt = false;
};

/// Metrics of the first `trained` rows of R (trained = 0: all rows). `init` = accuracies at
/// initialisation (empty: no FWT), `sizes` = test-set sizes (empty: no pooled ACC). R is square
/// (rows of equal length) or, without `init`, lower-triangular (row t of length t + 1). ShapeError on
/// any other shape or mismatched lengths.
MatrixMetrics matrix_metrics(const std::vector<std::vector<double>>& R, const std::vector<double>& init = {},
                             const std::vector<double>& sizes = {}, std::size_t trained = 0);

class ContinualTracker {
 public:
  explicit ContinualTracker(std::int64_t num_tasks, std::int64_t lca_beta = 10, std::vector<std::int64_t> windows = {10, 100});
  /// Records one tracking step: `current` = task being trained, acc[i] for i <= current.
  void record(std::int64_t current, const std::vector<double>& acc);

  double min_acc() const;          ///< NaN before any task has a minimum
  double wc_acc() const;           ///< NaN before the first record
  double windowed_forgetting(std::size_t window_index) const;  ///< mean over seen tasks
  double lca() const;              ///< NaN until a task has β values
  double task_min(std::int64_t i) const { return min_[static_cast<std::size_t>(i)]; }
  const std::vector<std::int64_t>& windows() const { return windows_; }
  std::int64_t steps() const { return steps_; }

 private:
  std::int64_t tasks_, beta_, current_ = -1, steps_ = 0;
  std::vector<std::int64_t> windows_;
  std::vector<double> min_, last_;
  std::vector<std::vector<std::deque<double>>> hist_;   ///< [window][task] last w values
  std::vector<std::vector<double>> wf_;                 ///< [window][task] running max drop
  std::vector<std::vector<double>> lca_vals_;           ///< [task] first β values while trained
};

}  // namespace stablelearn::continual
