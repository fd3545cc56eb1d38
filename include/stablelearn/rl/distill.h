// Policy distillation (Rusu, Colmenarejo, Gulcehre, Desjardins, Kirkpatrick, Pascanu, Mnih,
// Kavukcuoglu & Hadsell, "Policy Distillation", ICLR 2016): a student Q-network learns a teacher's
// Q-function by supervised learning on (input, teacher Q-values) pairs instead of by temporal
// differences. Here it carries a DDQN trained on CartPole's 4-D state over to the pixel observations
// of CartPolePixels-v1 (the pixel half of Korkmaz 2024's diagnosis, docs/repro.md
// "drl-diagnosis-pixels"). The three losses of the paper, student Q-values q_S and teacher Q-values
// q_T [B, A]:
//
//   "mse"  mean_{b,a} (q_S − q_T)²                                  (regression on the Q-values)
//   "nll"  mean_b −log softmax(q_S)_{a*},  a* = argmax_a q_T          (the teacher's greedy action)
//   "kl"   mean_b Σ_a p_a (log p_a − log softmax(q_S)_a),  p = softmax(q_T / τ)   (sharpened teacher)
//
// With adv_eps > 0 every minibatch's inputs are first FGSM-perturbed against the student's own greedy
// action, x_adv = x + adv_eps · sign v(x) (rl/diagnosis.h; a uniform radius in input units, e.g.
// pixel intensity), and the loss is (1 − adv_weight) L(x) + adv_weight L(x_adv) against the clean
// inputs' teacher values (adv_weight 1: the loss at x_adv only, as DdqnOptions::adv_eps does; 0.5:
// Goodfellow, Shlens & Szegedy 2015's FGSM adversarial training objective).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/core/options.h"
#include "stablelearn/rl/dqn.h"

namespace stablelearn::rl {

/// The distillation loss `kind` ("mse", "nll", "kl"; ConfigError otherwise) of student Q-values
/// [B, A] against teacher Q-values [B, A] (no gradient flows into the teacher). temperature > 0 is
/// τ of "kl" (ignored by the others). ShapeError for mismatched or non-2-D shapes.
torch::Tensor distillation_loss(const torch::Tensor& student_q, const torch::Tensor& teacher_q, const std::string& kind,
                                double temperature = 0.01);

struct DistillOptions {
  std::string loss = "mse";       ///< "mse", "nll" or "kl"
  double temperature = 0.01;      ///< τ of the "kl" loss
  std::int64_t epochs = 5;        ///< passes over the data
  std::int64_t batch_size = 64;
  double lr = 1e-3;               ///< Adam learning rate
  double max_grad_norm = 10.0;    ///< global gradient-norm clip (0 = none)
  double adv_eps = 0.0;           ///< FGSM radius on the inputs, input units (0 = clean training)
  double adv_weight = 1.0;        ///< with adv_eps > 0: (1 − w) L(x) + w L(x_adv) (1 = at x_adv only)
  std::int64_t seed = 0;          ///< the minibatch shuffle's stream

  void fields(options::Visitor& v);
};

struct DistillStats {
  std::vector<double> epoch_loss;  ///< mean minibatch loss per epoch (at the perturbed inputs with adv_eps > 0)
  double agreement = 0;            ///< fraction of inputs where argmax q_S = argmax q_T after training (clean)
};

/// Trains `student` (its parameters, by Adam) on inputs [N, D] and the teacher's Q-values [N, A]
/// (same device), options.epochs passes in minibatches of a fresh random permutation per epoch.
/// adv_scale (undefined = 1, or [D]) scales the FGSM step per input dimension, as rl::fgsm's scale
/// (e.g. 1/σ for inputs standardised by σ, so the step is adv_eps in the raw units).
/// ConfigError naming the option for invalid options; ShapeError for mismatched shapes.
DistillStats distill(DuelingQNet& student, const torch::Tensor& inputs, const torch::Tensor& teacher_q,
                     const DistillOptions& options, const torch::Tensor& adv_scale = {});

}  // namespace stablelearn::rl
