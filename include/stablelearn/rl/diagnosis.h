// Diagnosing deep RL policies through their non-Lipschitz directions (Korkmaz, "Understanding and
// Diagnosing Deep Reinforcement Learning", ICML 2024; shared/specs/papers-01-18.md §11; docs/rl.md
// "Policy diagnosis"). For a Q-function Q(s, ·) with greedy action a*(s) = argmax_a Q(s, a):
//
//   v(s)        = ∇_s CE(softmax(Q(s, ·)), onehot(a*(s)))  = Σ_a (p_a(s) − 1[a = a*]) ∇_s Q(s, a)
//                 (the softmax cross-entropy approximation of the paper's non-Lipschitz direction;
//                 a* held fixed at s, p = softmax(Q(s, ·)))
//   L(S)        = Σ_{s ∈ S} v(s) v(s)ᵀ = Vᵀ V       (V: the |S| × D matrix of the rows v(s))
//   G_S         = the top eigenvector of L(S), by power iteration with u ← Vᵀ (V u) / ‖·‖, never
//                 forming the D × D matrix
//   Λ(S_Ψ, S)   = G_{S_Ψ}ᵀ L(S) G_{S_Ψ} / λ_max(L(S))  ∈ [0, 1]  (feature correlation quotient:
//                 how much of the baseline states' top non-robust energy the transformed states'
//                 principal direction captures; 1 when the principal directions coincide)
//   FGSM        s ← s + ε · scale ⊙ sign(v(s))  (the fast gradient sign step on the cross-entropy
//                 against the greedy action, Huang et al. 2017; scale per input dimension)
//   oscillation = mean_t |‖v(s_{t+1})‖ − ‖v(s_t)‖| / mean_t ‖v(s_t)‖  along one episode (relative
//                 total variation per step: the temporal instability of the non-robust directions)
//
// The normalisation of Λ is the spec's inferred reading of the paper (only a claims summary could be
// retrieved). Tensors stay on the device they come on; the QFunction must be differentiable.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/rl/env.h"

namespace stablelearn::rl {

/// A differentiable Q-function: observations [n, D] → Q-values [n, A].
using QFunction = std::function<torch::Tensor(const torch::Tensor&)>;

/// v(s) of every row of `states` [n, D] → [n, D] (detached, the dtype of `states`); `normalise`
/// divides every row by its norm (zero rows stay zero). ShapeError unless states is 2-D and Q
/// returns [n, A] with A >= 2.
torch::Tensor non_lipschitz_directions(const QFunction& q, const torch::Tensor& states, bool normalise = false);

struct PowerIterationOptions {
  std::int64_t max_iterations = 1000;
  double tolerance = 1e-10;  ///< stop when 1 − |uᵀ u_prev| falls below it
  std::uint64_t seed = 0;    ///< the start vector's stream
};

struct PrincipalDirection {
  torch::Tensor direction;     ///< unit vector [D] (sign: its largest-magnitude entry is positive)
  double eigenvalue = 0;       ///< λ_max(L) = ‖V u‖²
  std::int64_t iterations = 0;
  bool converged = false;
  double residual = 0;         ///< ‖L u − λ u‖ / λ (0 for L = 0)
};

/// The top eigenvector G_S of L(S) = Σ v vᵀ of the rows of `directions` [n, D], by power
/// iteration on the implicit product L u = Vᵀ (V u). All-zero directions give eigenvalue 0 and the
/// start vector. Computed in double.
PrincipalDirection principal_direction(const torch::Tensor& directions, const PowerIterationOptions& options = {});

/// Λ(S_Ψ, S) = G_{S_Ψ}ᵀ L(S) G_{S_Ψ} / λ_max(L(S)) from the non-Lipschitz directions of the
/// transformed states [n_Ψ, D] and of the baseline states [n, D] (NaN when L(S) = 0).
double feature_correlation_quotient(const torch::Tensor& transformed_directions, const torch::Tensor& base_directions,
                                    const PowerIterationOptions& options = {});

/// FGSM: states + eps · scale ⊙ sign(v(states)) (scale: undefined = 1, or [D] per dimension).
/// ConfigError for eps < 0.
torch::Tensor fgsm(const QFunction& q, const torch::Tensor& states, double eps, const torch::Tensor& scale = {});

/// ‖v(s_t)‖ of every state of an episode [T, D] → [T].
torch::Tensor direction_norms(const QFunction& q, const torch::Tensor& episode_states);

/// mean_t |x_{t+1} − x_t| / mean_t x_t of a series (NaN for fewer than 2 values or a zero mean).
double temporal_oscillation(const std::vector<double>& series);

/// The power spectrum of a 2-D map (e.g. G_S of a pixel policy reshaped to one frame [H, W]):
/// |FFT2(map)|² [H, W], shifted so that the zero frequency sits at (H/2, W/2) (fftshift). Double.
torch::Tensor power_spectrum_2d(const torch::Tensor& map);

/// The spectrum's energy-weighted mean radial frequency Σ P(k) ‖k‖ / Σ P(k), k in cycles per pixel
/// (k_y = (r − H/2)/H, k_x = (c − W/2)/W on the shifted spectrum), the zero frequency excluded
/// (the mean level carries no spatial structure): how spread out a map's spectrum is. NaN for a
/// constant map.
double spectral_spread(const torch::Tensor& map);

/// The observations of `episodes` complete episodes of `policy` in environment `name` (one copy per
/// episode, copy i seeded from (seed, i), as evaluate() does): per episode a [T, obs_dim] float
/// tensor of the states the policy acted on, and its return.
struct Rollouts {
  std::vector<torch::Tensor> states;
  std::vector<double> returns;
};
Rollouts collect_episodes(const std::string& name, const PolicyFn& policy, std::int64_t episodes, std::uint64_t seed);

}  // namespace stablelearn::rl
