#include "stablelearn/data/cl_task_stream.h"

#include <algorithm>

#include "stablelearn/core/error.h"

namespace stablelearn::data {

namespace {

bool is_split(StreamKind k) {
  return k == StreamKind::SplitClassIncremental || k == StreamKind::SplitTaskIncremental || k == StreamKind::SplitDomainIncremental;
}

ImageSet first(const ImageSet& s, std::int64_t n) {
  if (n <= 0 || n >= s.size()) return s;
  return {s.images.narrow(0, 0, n), s.labels.narrow(0, 0, n)};
}

}  // namespace

TaskStream::TaskStream(std::shared_ptr<const ImageDataset> data, StreamOptions o, std::int64_t train_per_task,
                       std::int64_t test_per_task)
    : data_(std::move(data)), options_(o), train_n_(train_per_task), test_n_(test_per_task) {
  SL_CHECK(data_ && data_->train.size() > 0, DataError, "TaskStream: empty data set");
  const auto T = o.num_tasks;
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed));
  if (is_split(o.kind)) {
    SL_CHECK(T >= 1 && T <= 5, ConfigError, "stream.tasks: a split Fashion-MNIST stream has 1..5 tasks (10 classes, 2 per task), got ",
             T, " (permuted and rotated streams make any number of tasks)");
    const auto order = o.seed == 0 ? torch::arange(10, torch::kInt64) : torch::randperm(10, gen, torch::kInt64);
    order_.assign(order.data_ptr<std::int64_t>(), order.data_ptr<std::int64_t>() + 10);
    const auto train_counts = torch::bincount(data_->train.labels, {}, 10), test_counts = torch::bincount(data_->test.labels, {}, 10);
    for (std::int64_t t = 0; t < T; ++t) {
      classes_.push_back({order_[2 * t], order_[2 * t + 1]});
      auto count = [&](const torch::Tensor& c, std::int64_t n) {
        const auto m = c[order_[2 * t]].item<std::int64_t>() + c[order_[2 * t + 1]].item<std::int64_t>();
        return n > 0 ? std::min(n, m) : m;
      };
      train_sizes_.push_back(count(train_counts, train_n_));
      test_sizes_.push_back(count(test_counts, test_n_));
    }
    return;
  }
  SL_CHECK(T >= 1, ConfigError, "stream.tasks: must be >= 1, got ", T);
  const auto tr = first(data_->train, train_n_).size(), te = first(data_->test, test_n_).size();
  for (std::int64_t t = 0; t < T; ++t) {
    classes_.push_back({0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    train_sizes_.push_back(tr);
    test_sizes_.push_back(te);
  }
  if (o.kind == StreamKind::Permuted) {
    // make_stream's draws, in its order: one generator, task t > 0 takes the next permutation.
    const auto HW = data_->train.images.size(2) * data_->train.images.size(3);
    perms_ = torch::empty({T, HW}, torch::kInt64);
    for (std::int64_t t = 0; t < T; ++t)
      perms_[t].copy_(t == 0 ? torch::arange(HW, torch::kInt64) : torch::randperm(HW, gen, torch::kInt64));
  }
}

const std::vector<std::int64_t>& TaskStream::classes(std::int64_t t) const {
  SL_CHECK(t >= 0 && t < size(), UsageError, "task ", t, ": the stream has ", size(), " tasks");
  return classes_[static_cast<std::size_t>(t)];
}

std::int64_t TaskStream::train_size(std::int64_t t) const {
  classes(t);
  return train_sizes_[static_cast<std::size_t>(t)];
}

std::int64_t TaskStream::test_size(std::int64_t t) const {
  classes(t);
  return test_sizes_[static_cast<std::size_t>(t)];
}

ImageSet TaskStream::make(std::int64_t t, bool train) const {
  const auto& c = classes(t);
  const auto& part = train ? data_->train : data_->test;
  const auto n = train ? train_n_ : test_n_;
  switch (options_.kind) {
    case StreamKind::SplitClassIncremental:
    case StreamKind::SplitTaskIncremental:
    case StreamKind::SplitDomainIncremental: {
      const auto idx = ((part.labels == c[0]) | (part.labels == c[1])).nonzero().squeeze(1);
      ImageSet s{part.images.index_select(0, idx), part.labels.index_select(0, idx)};
      if (options_.kind == StreamKind::SplitDomainIncremental) s.labels = (s.labels == c[1]).to(torch::kInt64);
      return first(s, n);
    }
    case StreamKind::Permuted: {
      const auto base = first(part, n);
      return {permute_pixels(base.images, perms_[t]), base.labels};
    }
    case StreamKind::Rotated: {
      const auto base = first(part, n);
      if (t == 0) return base;
      return {rotate_images(base.images, options_.rotation_step * static_cast<double>(t)), base.labels};
    }
  }
  return {};
}

ImageSet TaskStream::train(std::int64_t t) const { return make(t, true); }
ImageSet TaskStream::test(std::int64_t t) const { return make(t, false); }

ClTask TaskStream::task(std::int64_t t, bool with_train, bool with_test) const {
  ClTask k;
  k.id = t;
  k.classes = classes(t);
  if (with_train) k.train = train(t);
  if (with_test) k.test = test(t);
  return k;
}

std::vector<std::int64_t> TaskStream::unused_classes() const {
  if (!is_split(options_.kind)) return {};
  return std::vector<std::int64_t>(order_.begin() + 2 * size(), order_.end());
}

}  // namespace stablelearn::data
