// Early-learning regularisation (ELR; Liu, Niles-Weed, Razavian, Fernandez-Granda, NeurIPS 2020;
// shared/specs/papers-19-35.md §25; docs/robust.md), as in the reference's elr_loss: a per-sample
// temporal ensemble of the model's own predictions is the target the regulariser pulls towards,
// which cancels the cross-entropy's pull towards a wrong label while the model still predicts
// the right class (early learning), so the wrong labels are not memorised.
//
// For a batch with sample indices i:
//   p_i = clamp(softmax(z_i), 1e−4, 1 − 1e−4)
//   t_i ← β t_i + (1 − β) p̄_i / Σ_c p̄_ic          (p̄ = p detached; targets start at 0)
//   L  = CE(z, y) + λ · mean_i log(1 − ⟨t_i, p_i⟩)
// The targets are updated before the loss is formed (as in the reference), and are state of the
// loss object (save them with the model to resume).
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace stablelearn::robust {

struct ElrOptions {
  double beta = 0.7;    ///< temporal-ensemble momentum, in [0, 1)
  double lambda = 3.0;  ///< regulariser weight, >= 0
  /// ConfigError naming `prefix` + key for β outside [0, 1) or λ < 0.
  void validate(const std::string& prefix = "") const;
};

class ElrLoss {
 public:
  /// Targets for `num_samples` samples of `classes` classes (zeros, float32 on `device`).
  ElrLoss(std::int64_t num_samples, std::int64_t classes, ElrOptions options = {}, torch::Device device = torch::kCPU);
  /// The loss of logits [B, C] with labels [B] (int64) of the samples `indices` [B] (int64);
  /// updates those samples' targets first. ShapeError for mismatched shapes or indices out of range.
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& indices);
  /// The regulariser term alone of the last call, λ · mean log(1 − ⟨t, p⟩) (a number, for logs).
  double last_regulariser() const { return last_reg_; }
  const torch::Tensor& targets() const { return targets_; }
  torch::Tensor& targets() { return targets_; }
  const ElrOptions& options() const { return options_; }

 private:
  ElrOptions options_;
  torch::Tensor targets_;
  double last_reg_ = 0;
};

}  // namespace stablelearn::robust
