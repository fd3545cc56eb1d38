// Pieces of `cl run` shared by the configuration and run-view code (cl_experiment.cpp) and the
// training engine (cl_run.cpp). Private to sl_experiments.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stablelearn/continual/registry.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/run.h"
#include "stablelearn/data/cl_task_stream.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::experiments::detail {

inline constexpr const char* kCheckpointFormat = "stablelearn-cl-checkpoint";
/// 2: the accuracy matrix moved from checkpoint.json into the npz ("run.accuracy"); 1 is read too.
inline constexpr int kCheckpointVersion = 2;
inline constexpr const char* kSnapshotFormat = "stablelearn-cl-snapshots";
inline constexpr int kSnapshotVersion = 1;

/// The stream of a configuration, tasks computed on demand (Fashion-MNIST, subsampled per task as
/// configured; no label noise).
std::unique_ptr<data::TaskStream> make_task_stream(const ClStreamOptions& o);
/// [stream] label_noise on task t's training labels (t.train_clean_labels keeps the clean ones).
void add_label_noise(data::ClTask& t, const ClStreamOptions& o);
/// Every task of a stream configuration, computed now (with label noise).
std::vector<data::ClTask> build_stream(const ClStreamOptions& o);

/// Strategies that see the network only through Context (logits, network, params) and so work
/// with [backbone] freeze / adapter; the others read the classifier's own layers.
inline bool supports_adapted_network(const std::string& strategy) {
  for (const char* s : {"finetune", "joint", "ewc", "si", "er", "agem", "derpp", "ema"})
    if (strategy == s) return true;
  return false;
}

/// `cl pretrain` (ClExperiment::pretrain): trains p.model on the data p.stream leaves out.
ClPretrainResult pretrain_backbone(const ClConfig& p, const std::filesystem::path& out,
                                   const std::function<void(std::int64_t, std::int64_t, double)>& progress);

/// Trains `p` with a strategy made by `strategy` into the opened run directory `run` (resumed:
/// continue after its checkpoint); see ClExperiment::run. With `group` (a distributed run) every
/// rank trains on its shard of each batch; `run` is null on ranks > 0, which write nothing.
ClResult run_cl(const ClConfig& p, const continual::StrategySpec& strategy, const RunDir* run,
                const std::function<void(const ClProgress&)>& progress, std::int64_t stop_after,
                distributed::ProcessGroup* group = nullptr);

}  // namespace stablelearn::experiments::detail
