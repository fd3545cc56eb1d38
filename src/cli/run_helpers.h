// Loading a `cl run` for the representation diagnostics (`diagnose cka RUN`, `diagnose shesha
// RUN`); defined in diagnose_run_commands.cpp, private to src/cli/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/experiments/cl_experiment.h"
#include "stablelearn/models/classifier.h"

namespace stablelearn::cli {

/// IoError unless `run` is a directory holding a config.toml.
void check_run_dir(const std::string& run);

/// The hidden layer to analyse: `layer` (UsageError when out of range, or when the model has no
/// hidden layer), or the last hidden layer for layer < 0.
std::int64_t resolve_layer(const models::Classifier& model, std::int64_t layer, const std::string& run);

/// Hidden activations of layer `layer` of `model` under `weights` (cast to float64), without a graph.
torch::Tensor layer_activations(const models::Classifier& model, const std::vector<torch::Tensor>& weights,
                                const torch::Tensor& x, std::int64_t layer);

/// A loaded run (model in float64), the resolved hidden layer and the first n test images of one
/// task (float64) with their labels.
struct RunTaskImages {
  experiments::ClRunView view;
  std::int64_t layer = 0;
  std::int64_t samples = 0;  ///< n = min(requested, the task's test images)
  torch::Tensor x, y;
};

/// Loads RUN and task `task`'s first `samples` test images. UsageError when the task is out of
/// range or not completed (there is no model after it), or for a bad layer; IoError for a missing run.
RunTaskImages load_run_task_images(const std::string& run, std::int64_t task, std::int64_t layer, std::int64_t samples);

}  // namespace stablelearn::cli
