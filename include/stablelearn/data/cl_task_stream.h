// A classification task stream generated on demand (data/cl_streams.h's conventions): a task's
// training and test sets are computed when asked for — the split's class selection, the pixel
// permutation or the rotation applied then — so a stream of hundreds of tasks holds only the base
// data set, each task's classes and (permuted) its 784-entry permutation, not T transformed
// copies. task(t) equals make_stream(data, options)[t] bitwise after the same per-task
// subsampling (`cl run`'s [stream] train_per_task / test_per_task): the permutations are drawn
// in make_stream's order at construction.
//
// Task counts: split streams 1..5 (10 classes, 2 per task; fewer than 5 keeps the first classes of
// the seeded order and leaves the others out, e.g. for pre-training); permuted and rotated any
// count >= 1 (tested to 300).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "stablelearn/data/cl_streams.h"

namespace stablelearn::data {

class TaskStream {
 public:
  /// `train_per_task` / `test_per_task` > 0 keep the first that many samples of each task (split:
  /// of the task's selection; permuted / rotated: of the base set, before the transformation).
  /// ConfigError naming stream.tasks for a count the kind cannot make.
  TaskStream(std::shared_ptr<const ImageDataset> data, StreamOptions options, std::int64_t train_per_task = 0,
             std::int64_t test_per_task = 0);

  std::int64_t size() const { return options_.num_tasks; }
  const StreamOptions& options() const { return options_; }
  /// Global classes of task t (split: its two; permuted / rotated: 0..9).
  const std::vector<std::int64_t>& classes(std::int64_t t) const;
  /// Samples of task t's training / test set (without computing them).
  std::int64_t train_size(std::int64_t t) const;
  std::int64_t test_size(std::int64_t t) const;
  /// Task t's training / test set, computed now.
  ImageSet train(std::int64_t t) const;
  ImageSet test(std::int64_t t) const;
  /// Task t with its id and classes, and its training / test set where asked for.
  ClTask task(std::int64_t t, bool with_train = true, bool with_test = true) const;
  /// Classes of the data set that no task uses (split streams with fewer than 5 tasks).
  std::vector<std::int64_t> unused_classes() const;
  const ImageDataset& data() const { return *data_; }

 private:
  ImageSet make(std::int64_t t, bool train) const;
  std::shared_ptr<const ImageDataset> data_;
  StreamOptions options_;
  std::int64_t train_n_ = 0, test_n_ = 0;
  std::vector<std::vector<std::int64_t>> classes_;
  std::vector<std::int64_t> train_sizes_, test_sizes_;
  std::vector<std::int64_t> order_;  ///< split: the class order
  torch::Tensor perms_;              ///< permuted: [T, H*W] (row 0 the identity)
};

}  // namespace stablelearn::data
