// The problem every `stablelearn diagnose` curvature command analyses (hessian, trace, density,
// spectra, stability): the built-in toy regression MLP (diagnostics/toy_problem.h), or task J of a
// finished `cl run` — the trained classifier (final, or after task I) with the cross-entropy of the
// task's first training images, in float64 (or float32 with dtype).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"
#include "stablelearn/experiments/toy_experiments.h"

namespace stablelearn::experiments {

/// 0 for samples / batch_size / learning_rate means "the problem's default" (toy: 128 / 32 / 0.2;
/// RUN: 1000 / the run's train.batch_size / train.lr).
struct CurvatureProblemOptions {
  std::string run;          ///< `cl run` directory; empty = the toy problem
  std::int64_t task = 0;    ///< RUN: the task whose training images define the loss
  std::int64_t after = -1;  ///< RUN: the checkpoint after this task; −1 = the run's final weights
  std::int64_t inputs = 2, hidden = 16;  ///< toy: input dimension, hidden width
  std::int64_t samples = 0, batch_size = 0;
  std::int64_t train_steps = 200;  ///< toy: full-batch GD steps before the diagnostic
  double learning_rate = 0.0;
  std::uint64_t seed = 0;
  /// The dtype of the weights, data and products: float64 (exact to ~1e-12; the tests' closed forms)
  /// or float32 (about twice as fast on CPU; a run's weights are float32 anyway).
  torch::Dtype dtype = torch::kFloat64;
};

/// The model, data and loss a curvature command works on.
struct CurvatureProblem {
  std::vector<torch::Tensor> params;
  std::vector<diagnostics::Batch> batches;
  diagnostics::LossFn loss;
  diagnostics::OutputFn model;
  diagnostics::OutputLoss output_loss = diagnostics::OutputLoss::MeanSquaredError;
  std::vector<std::pair<std::string, torch::Tensor>> linear_weights;  ///< for spectra
  std::vector<std::size_t> linear_indices;                             ///< their places in params
  /// RUN only: the weights after task i (checkpoint_task<i>.npz); empty for the toy problem
  std::function<std::vector<torch::Tensor>(std::int64_t)> task_weights;
  std::int64_t samples = 0, batch_size = 0;
  double learning_rate = 0.0;
  nlohmann::json info;
  std::shared_ptr<void> owner;  ///< keeps the toy problem / the loaded run alive

  /// hessian | ggn | fisher (empirical Fisher).
  std::unique_ptr<diagnostics::CurvatureOperator> make_operator(const std::string& op) const;
};

/// The toy problem (options.run empty) or task `task` of the run; UsageError / IoError / DataError
/// naming the option or file.
CurvatureProblem make_curvature_problem(const CurvatureProblemOptions& options);

/// Task J of a `cl run` as a training problem from scratch (`diagnose intrinsic-dim RUN`): the run's
/// model architecture ([model] of its config.toml) freshly initialised exactly as `cl run` does
/// (seed_everything(seed), then Classifier(options); with the run's [train] seed this is the run's
/// own θ₀), the first `samples` training and `test_samples` test images of task J of the run's
/// stream (rebuilt from its config, so the same tasks), float32, cross-entropy. Task-incremental
/// runs (split-task, one masked head per task): the logits are restricted to task J's classes and
/// the labels re-indexed into them, which gives the same cross-entropy and argmax as the run's
/// masked logits (ClRunView::logits, −∞ outside the task's classes).
struct RunTaskProblem {
  FmnistProblem problem;
  std::uint64_t seed = 0;
  nlohmann::json info;
};

RunTaskProblem make_run_task_problem(const std::string& run, std::int64_t task, std::int64_t samples, std::int64_t test_samples,
                                     std::optional<std::uint64_t> seed);

}  // namespace stablelearn::experiments
