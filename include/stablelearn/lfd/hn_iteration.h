// One training iteration of a task-conditioned hypernetwork with the look-ahead output regulariser
// (spec §3.3–3.4), in two implementations with the same mathematics:
//
//  * hn_iteration_autograd: autograd through the whole hypernetwork (HN or CHN). ∇θ of the task
//    loss, Adam's look-ahead Δθ, the regulariser's gradient at θ + Δθ added (hnet_training.h), one
//    Adam step of θ and one of the task embedding.
//
//  * hn_iteration_fused (HN only): the same iteration without ever forming the gradient of HN's
//    heads. The heads A_j [n_j, H] hold nearly all of θ (6.5 M of 6.5 M values for the LASA 2D
//    sNODE), and their gradient has rank 1 + |S| (S = the regularised past tasks):
//        ∂L/∂A = a hᵀ + β Σ_{q∈S} r_q h_qᵀ,
//    a = ∂L/∂w (the task loss's gradient at the generated weights w = A h + c), h the trunk's
//    output for the current task, h_q the shifted trunk's output for past task q, r_q = ∂R/∂w'_q =
//    (2/|S|)(w'_q − target_q), w'_q = (A + ΔA) h_q + c + Δc. So every θ-sized pass of the autograd
//    path — the outer product a hᵀ written out, the look-ahead Δθ written and added to θ, the
//    regulariser's outer products accumulated, the gradient read by Adam — is replaced by two
//    row-blocked passes over (A, m, v): one computes A + ΔA row by row (ΔA from a, h and Adam's
//    state on the fly) and immediately its products with every h_q and its contribution to
//    Σ_r r_q[r] (A + ΔA)_r = ∂R/∂h_q; the other is Adam's step with the rank-(1 + |S|) gradient
//    formed element by element. The trunk, the heads' biases and the embedding take the usual
//    (autograd, dense Adam) path.
//
// The two agree up to float rounding (sums in another order): tested over several iterations with
// and without the regulariser, float64 to 1e-10 and float32 to 2e-4 relative (θ, the embeddings and Adam's state).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "stablelearn/lfd/hnet_training.h"
#include "stablelearn/models/hypernetwork.h"

namespace stablelearn::lfd {

/// What one iteration needs besides the network and its optimisers.
struct HnIteration {
  /// The current task's loss as a function of the generated weights (flat [P]); called once.
  std::function<torch::Tensor(const torch::Tensor& flat)> loss;
  /// Stored outputs of the past tasks (index = task id, each [P]); read for `reg_tasks` only.
  const std::vector<torch::Tensor>* targets = nullptr;
  /// The past tasks regularised this iteration (sample_regularized_tasks); empty: no regulariser.
  std::vector<std::int64_t> reg_tasks;
  /// The regulariser's weight β (no regulariser when <= 0).
  double beta = 0;
};

struct HnIterationResult {
  double loss = 0;  ///< the task loss (before the step)
  double reg = 0;   ///< the regulariser R at θ + Δθ (unscaled; 0 without one)
};

/// The reference iteration: autograd through the hypernetwork. `opt_theta` must hold net.theta()
/// in order, `opt_emb` the task's embedding.
HnIterationResult hn_iteration_autograd(models::TaskHyperNetwork& net, std::int64_t task, Adam& opt_theta,
                                        Adam& opt_emb, const HnIteration& it);

/// The iteration with HN's heads fused (file comment). Same contract as hn_iteration_autograd;
/// `force_scalar` runs the portable kernels even where the AVX2 ones could (for tests).
HnIterationResult hn_iteration_fused(models::HyperNetworkImpl& net, std::int64_t task, Adam& opt_theta,
                                     Adam& opt_emb, const HnIteration& it, bool force_scalar = false);

/// Whether hn_iteration_fused takes HN `net`: its θ on the CPU in float32 or float64, one dtype.
bool hn_fused_applies(const models::HyperNetworkImpl& net);

}  // namespace stablelearn::lfd
