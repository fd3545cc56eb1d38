// Rehearsal memories shared by the replay strategies (ER, A-GEM, DER++).
//
//  * Reservoir (Vitter's algorithm R, as Mammoth's utils/buffer.py): the n-th sample seen is stored
//    while the memory is not full; afterwards it replaces a uniformly drawn slot with probability
//    capacity / n. Every sample of the stream ends in memory with the same probability.
//  * Class-balanced (Avalanche's ClassBalancedBuffer): at the end of each task the capacity is split
//    evenly over the classes seen so far; each class keeps a random subset of its samples of that
//    size (earlier classes shrink, new classes fill their share from the task's data).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/types.h>

namespace stablelearn::continual {

class Memory {
 public:
  enum class Policy { Reservoir, ClassBalanced };
  Memory(std::int64_t capacity, Policy policy) : capacity_(capacity), policy_(policy) {}

  /// Reservoir update with one batch (x [B,...], y [B], task [B], optional logits [B, K]).
  void add_reservoir(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& task,
                     const torch::Tensor& logits, torch::Generator& gen);
  /// Class-balanced update with a whole task's data.
  void add_class_balanced(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& task,
                          torch::Generator& gen);

  /// `n` stored samples drawn without replacement (all of them when n >= size()).
  struct Sample {
    torch::Tensor x, y, task, logits;
  };
  Sample sample(std::int64_t n, torch::Generator& gen) const;

  std::int64_t size() const { return valid_; }
  std::int64_t capacity() const { return capacity_; }
  std::int64_t seen() const { return seen_; }
  Policy policy() const { return policy_; }
  /// Labels of the stored samples.
  torch::Tensor labels() const { return valid_ ? y_.narrow(0, 0, valid_) : torch::Tensor(); }

  void save(std::map<std::string, torch::Tensor>& m, const std::string& prefix) const;
  void load(const std::map<std::string, torch::Tensor>& m, const std::string& prefix);

 private:
  std::int64_t capacity_;
  Policy policy_;
  std::int64_t seen_ = 0;
  std::int64_t valid_ = 0;  ///< stored samples (the first valid_ rows)
  torch::Tensor x_, y_, task_, logits_;
};

}  // namespace stablelearn::continual
