// Pieces of `cl run` shared by the configuration and run-view code (cl_experiment.cpp) and the
// training engine (cl_run.cpp). Private to sl_experiments.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "stablelearn/continual/registry.h"
#include "stablelearn/core/config.h"
#include "stablelearn/core/run.h"
#include "stablelearn/experiments/cl_experiment.h"

namespace stablelearn::experiments::detail {

inline constexpr const char* kCheckpointFormat = "stablelearn-cl-checkpoint";
inline constexpr int kCheckpointVersion = 1;
inline constexpr const char* kSnapshotFormat = "stablelearn-cl-snapshots";
inline constexpr int kSnapshotVersion = 1;

/// The tasks of a stream configuration (Fashion-MNIST, subsampled per task as configured).
std::vector<data::ClTask> build_stream(const ClStreamOptions& o);

/// Trains `p` with a strategy made by `strategy` into the opened run directory `run` (resumed:
/// continue after its checkpoint); see ClExperiment::run. With `group` (a distributed run) every
/// rank trains on its shard of each batch; `run` is null on ranks > 0, which write nothing.
ClResult run_cl(const ClConfig& p, const continual::StrategySpec& strategy, const RunDir* run,
                const std::function<void(const ClProgress&)>& progress, std::int64_t stop_after,
                distributed::ProcessGroup* group = nullptr);

}  // namespace stablelearn::experiments::detail
