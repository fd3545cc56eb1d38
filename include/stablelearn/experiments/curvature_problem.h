// The problem every `stablelearn diagnose` curvature command analyses (hessian, trace, density,
// spectra, stability): the built-in toy regression MLP (diagnostics/toy_problem.h), or task J of a
// finished `cl run` — the trained classifier (final, or after task I) with the cross-entropy of the
// task's first training images, in float64.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "stablelearn/diagnostics/curvature.h"

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

}  // namespace stablelearn::experiments
