// Continual-learning strategies and the task-by-task runner (shared/DESIGN.md, continual/).
//
// Hook order for every task t (the contract a Strategy may rely on):
//   before_task(ctx) -> for each minibatch: loss = CE(model(x), y) + penalty(ctx) -> optimiser step
//   -> after_task(ctx) -> evaluation of tasks 0..N-1 (accuracy matrix row t).
// Strategies may read and snapshot the model's parameters; they must not change its structure.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "stablelearn/data/cl_streams.h"

namespace stablelearn::continual {

struct Context {
  torch::nn::Module* model = nullptr;
  std::function<torch::Tensor(const torch::Tensor&)> forward;  ///< logits of a batch
  std::int64_t task = 0;
  const data::ClTask* data = nullptr;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  virtual void before_task(Context&) {}
  /// Extra loss added to the task's cross-entropy (undefined tensor = none).
  virtual torch::Tensor penalty(Context&) { return {}; }
  virtual void after_task(Context&) {}
};

/// Fine-tuning: no protection against forgetting (the lower baseline).
class FineTuning : public Strategy {
 public:
  std::string name() const override { return "finetune"; }
};

/// Elastic weight consolidation (Kirkpatrick et al. 2017, PNAS, eq. 3), separate penalties per past
/// task: L = CE + (λ/2) Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², with F_k the diagonal empirical Fisher
/// (mean over the task's training samples of the squared gradient of the log-likelihood of the
/// true label) at the end of task k and θ*_k the parameters then.
class Ewc : public Strategy {
 public:
  explicit Ewc(double lambda = 100.0, std::int64_t fisher_samples = 1000) : lambda_(lambda), samples_(fisher_samples) {}
  std::string name() const override { return "ewc"; }
  torch::Tensor penalty(Context& ctx) override;
  void after_task(Context& ctx) override;
  const std::vector<std::vector<torch::Tensor>>& fishers() const { return fisher_; }

 private:
  double lambda_;
  std::int64_t samples_;
  std::vector<std::vector<torch::Tensor>> fisher_, anchor_;
};

struct RunOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 64;
  double lr = 0.05;            ///< learning rate
  std::string optimizer = "sgd";  ///< sgd (plain) | adam (fresh Adam state per task, betas 0.9/0.999)
  std::int64_t seed = 0;
};

/// Trains `model` on the tasks in order with `strategy`; returns the accuracy matrix
/// acc[t][j] = test accuracy on task j after training task t (all j, so forward transfer is visible).
std::vector<std::vector<double>> run_stream(torch::nn::Module& model,
                                            const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                            const std::vector<data::ClTask>& tasks, Strategy& strategy,
                                            const RunOptions& options);

/// Accuracy of `forward` on a test set (batched, no grad).
double accuracy(const std::function<torch::Tensor(const torch::Tensor&)>& forward, const data::ImageSet& set);

}  // namespace stablelearn::continual
