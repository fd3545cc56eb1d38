// Causal minimax invariance transfer (seed paper 33: Liu, Zheng, Sun, Fang, Wang, "Which
// Invariance Should We Transfer? A Causal Minimax Learning Approach", ICML 2023;
// shared/specs/papers-19-35.md §33; docs/theory.md), in a linear-Gaussian world where every
// quantity has a closed form.
//
// The model. A linear structural equation model over nodes 0..n−1 (one of them the target Y):
//   X_j = Σ_i w_ji X_i + σ_j ε_j,  ε_j ~ N(0, 1) independent, the graph of w acyclic.
// Some nodes are *mutable*: their mechanism changes with the environment. As in the paper's
// simulation, an environment scales each mutable node's mechanism: X_m = t_m · Σ_i w_mi X_i + σ_m ε_m
// (the paper uses one shared t = α_e = e − 10.5 for environment e = 1..20). The target's mechanism
// is stable. An intervention family is a box of scales t_m ∈ [lo_m, hi_m].
//
// The predictors. For a feature subset S' the predictor is the least-squares regression of Y on
// X_{S'} fitted on the pooled training environments. Its risk in an environment with scales t is
//   R(β; t) = Σ_YY(t) − 2 βᵀ Σ_{S'Y}(t) + βᵀ Σ_{S'S'}(t) β,  Σ(t) = (I − W(t))⁻¹ D (I − W(t))⁻ᵀ.
// Each node is affine in each single t_m (the others fixed), so the residual is, and R is convex
// in each t_m separately: its maximum over the box is attained at a vertex. worst_case_risk is
// therefore exact (2^|M| evaluations).
//
// The search. (1) The stable set: each node's mechanism (its regression on its parents in the
// given DAG) is tested for equality across the training environments (a Chow F-test); nodes
// that fail are mutable, the other features are the stable set S. (2) Every subset S' ⊆ S
// (exhaustive: 2^|S| subsets, |S| ≤ 20; the paper's polynomial equivalence-class search, its
// Alg. 2, is not implemented) gets its estimated worst-case risk under the SEM fitted to the
// training data, and an invariance flag (its risk is the same at every vertex of the box and its
// centre). (3) The minimax subset is the argmin of the worst-case risk.
//
// Why not the paper's do-predictor E[Y | X_{S'}, do(X_M)] with X_M as an input: in a linear SEM its
// residual is uncorrelated with, hence (Gaussian) independent of, every intervened X_M, so its risk
// is the same under every intervention and the whole stable set is always optimal — the paper's
// phenomenon (a proper subset beats the whole stable set) needs the nonlinear mechanisms of its
// simulation. With linear mechanisms the same question is asked of regressions on X_{S'} alone,
// where conditioning on a descendant of a mutable node (a collider path E → M ← Y) makes a
// subset non-invariant and a proper subset of S minimax-optimal. docs/theory.md says this too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::theory {

/// A linear-Gaussian SEM. weights[j][i] is the coefficient of node i in node j's equation.
struct LinearSem {
  std::vector<std::string> names;
  std::int64_t target = 0;                   ///< the node Y
  std::vector<std::vector<double>> weights;  ///< n × n, acyclic
  std::vector<double> noise_std;             ///< σ_j > 0
  std::vector<bool> mutable_node;            ///< mechanism scaled by the environment

  std::int64_t size() const { return static_cast<std::int64_t>(names.size()); }
  /// ConfigError naming the field: sizes, non-finite or non-positive values, a cycle, a target out
  /// of range or mutable, a mutable node without parents (a scale then changes nothing).
  void validate() const;
  std::vector<std::int64_t> parents(std::int64_t j) const;
  std::vector<std::int64_t> topological_order() const;
  std::vector<std::int64_t> mutable_nodes() const;  ///< in index order
  /// Every node but the target that is not mutable, in index order.
  std::vector<std::int64_t> stable_features() const;
  /// Every node but the target, in index order.
  std::vector<std::int64_t> features() const;
};

/// Scales per mutable node (in mutable_nodes() order) for an environment or a box corner.
using Scales = std::vector<double>;

/// The covariance of all nodes when the mutable mechanisms are scaled by `scales` ([n, n] float64).
torch::Tensor sem_covariance(const LinearSem& sem, const Scales& scales);

/// `n` samples ([n, nodes] float64) of the SEM with the mutable mechanisms scaled by `scales`.
torch::Tensor sem_sample(const LinearSem& sem, const Scales& scales, std::int64_t n, at::Generator& gen);

/// β = Σ_FF⁻¹ Σ_FY from a (population or sample) second-moment matrix `m` ([nodes, nodes]).
/// Empty features give an empty β. DataError when Σ_FF is singular.
torch::Tensor regression_coefficients(const torch::Tensor& m, std::int64_t target, const std::vector<std::int64_t>& features);

/// E[(Y − βᵀ X_F)²] under covariance `cov`.
double linear_risk(const torch::Tensor& cov, std::int64_t target, const std::vector<std::int64_t>& features,
                   const torch::Tensor& beta);

/// A box of scales: lo[m] ≤ t_m ≤ hi[m] per mutable node.
struct ShiftBox {
  Scales lo, hi;
};

struct WorstCase {
  double risk = 0;      ///< the maximum over the box (at a vertex)
  Scales at;            ///< the maximising vertex
  bool invariant = false;  ///< the risk is equal (relative 1e-9) at every vertex and the centre
};

/// The worst-case risk of β on `features` over the box (exact, see the file comment). ConfigError
/// when the box does not match the SEM's mutable nodes or lo > hi.
WorstCase worst_case_risk(const LinearSem& sem, const ShiftBox& box, const std::vector<std::int64_t>& features,
                          const torch::Tensor& beta);

/// The training data of one environment: samples × nodes, float64.
using EnvironmentData = torch::Tensor;

/// P(F ≤ f) for the F distribution with (d1, d2) degrees of freedom (regularised incomplete beta).
double f_cdf(double f, double d1, double d2);

/// The Chow test of one node's mechanism: equal regression coefficients (on `parents`, no
/// intercept) in every environment. statistic ~ F(k(K−1), N−kK) under equality.
struct MechanismTest {
  double statistic = 0, p_value = 1;
  std::int64_t df1 = 0, df2 = 0;
};
/// ConfigError for fewer than 2 environments (key "environments"); DataError for too few samples.
/// A node without parents has nothing to scale: statistic 0, p-value 1.
MechanismTest test_mechanism(const std::vector<EnvironmentData>& envs, std::int64_t node, const std::vector<std::int64_t>& parents);

/// The mutable nodes found from the training environments: each node but the target whose
/// mechanism test has p < level / (nodes − 1) (Bonferroni). `structure` supplies the DAG (its
/// weights' zero pattern) and the target; its mutable flags are not read.
std::vector<bool> detect_mutable(const std::vector<EnvironmentData>& envs, const LinearSem& structure, double level = 0.01);

/// The SEM fitted to the training environments on `structure`'s DAG with the given mutable flags:
/// stable nodes by pooled least squares on their parents; a mutable node's per-environment
/// coefficient vectors c_e are factored as c_e = t_e · w (w the unit top right singular vector of
/// the stacked c_e, t_e = c_e · w), its noise from the mean per-environment residual variance.
/// `box` receives [min_e t_e, max_e t_e] per mutable node: the shifts seen in training.
LinearSem fit_sem(const std::vector<EnvironmentData>& envs, const LinearSem& structure, const std::vector<bool>& mutable_flags,
                  ShiftBox& box);

/// The pooled second-moment matrix (1/N) Σ x xᵀ of the environments (they have mean zero).
torch::Tensor pooled_moment(const std::vector<EnvironmentData>& envs);

/// One candidate subset.
struct SubsetRisk {
  std::vector<std::int64_t> features;
  torch::Tensor beta;
  WorstCase worst;
};

struct MinimaxResult {
  std::vector<SubsetRisk> subsets;  ///< every subset of the candidates, by bitmask order (∅ first)
  std::size_t best = 0;             ///< the minimax subset (lowest worst-case risk; first on ties)
  std::size_t best_invariant = 0;   ///< the lowest worst-case risk among the invariant subsets
};

/// Exhaustive minimax search over the subsets of `candidates` (at most 20; ConfigError naming
/// "candidates" otherwise): β from the second-moment matrix `moment`, worst-case risk from `sem`
/// over `box`.
MinimaxResult minimax_subsets(const LinearSem& sem, const ShiftBox& box, const torch::Tensor& moment,
                              const std::vector<std::int64_t>& candidates);

}  // namespace stablelearn::theory
