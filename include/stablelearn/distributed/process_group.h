// A process group of the ranks of one distributed run, on PyTorch's own distributed engine c10d:
// a c10d::TCPStore for the rendezvous (rank 0 serves it at MASTER_ADDR:MASTER_PORT) and a
// c10d::ProcessGroupGloo for the collectives (CPU tensors). The c10d headers stay in the .cpp: this
// header needs only torch/types.h.
//
//   if (auto env = distributed::read_dist_env()) {
//     auto group = distributed::ProcessGroup::connect(*env);
//     ... loss.backward(); group->all_reduce_gradients(params, distributed::Reduce::Mean); opt.step();
//   }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "stablelearn/distributed/env.h"

namespace stablelearn::distributed {

enum class Reduce { Sum, Mean };

/// Default bucket size of the gradient all-reduce (as PyTorch's DistributedDataParallel: 25 MiB).
inline constexpr std::int64_t kDefaultBucketBytes = 25 << 20;

class ProcessGroup {
 public:
  /// Rendezvous with the other ranks of `env` (TCPStore; rank 0 serves it) and builds the Gloo
  /// group, waiting at most env.timeout. Checks that every rank has the same WORLD_SIZE. Errors
  /// (UsageError, naming MASTER_ADDR/MASTER_PORT/WORLD_SIZE and their values): rank 0 cannot serve
  /// the port; another rank cannot reach it in time; ranks missing after the timeout; ranks that
  /// disagree on WORLD_SIZE. Never waits longer than the timeout.
  static std::unique_ptr<ProcessGroup> connect(const DistEnv& env);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  const DistEnv& env() const;

  /// Sums (or averages) `tensors` over the ranks, in place. Tensors are flattened into buckets of
  /// at most `bucket_bytes` (consecutive tensors of one dtype and device; a larger tensor is a
  /// bucket of its own), one all-reduce per bucket. Every rank must pass tensors of the same
  /// shapes, dtypes and order. IoError when a collective fails or times out (a rank died).
  void all_reduce(const std::vector<torch::Tensor>& tensors, Reduce op = Reduce::Sum,
                  std::int64_t bucket_bytes = kDefaultBucketBytes);
  /// all_reduce of the gradients of `params` (a missing gradient counts as zeros and is created).
  void all_reduce_gradients(const std::vector<torch::Tensor>& params, Reduce op = Reduce::Mean,
                            std::int64_t bucket_bytes = kDefaultBucketBytes);
  /// Fails (ConfigError naming `what` and both values) unless every rank passes the same `value`
  /// (e.g. a hash of the resolved configuration); exchanged through the store.
  void check_same(const std::string& what, const std::string& value);
  /// Rank `root`'s `bytes` on every rank (other ranks' arguments are ignored): a broadcast of the
  /// length, then of the bytes. Used to hand rank 0's checkpoint to the other ranks on --resume
  /// (they need not see rank 0's file system). IoError when a rank stopped or none answered in time.
  std::string broadcast(const std::string& bytes, int root = 0);
  /// Waits until every rank reaches it (an all-reduce of one element).
  void barrier();
  /// Number of all-reduce calls so far (tests check the bucketing).
  std::int64_t collectives() const;

 private:
  friend class GradientReducer;
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Gradient sums overlapped with backward, as DistributedDataParallel's reducer does it: the
/// parameters are grouped into buckets of at most `bucket_bytes` in reverse order (the order in
/// which backward produces their gradients), each parameter gets a gradient hook, and a bucket's
/// all-reduce starts (asynchronously, on Gloo's threads) as soon as backward has produced every
/// gradient in it, while backward goes on with the earlier layers. Buckets start strictly in order,
/// so every rank issues the same sequence of collectives even when one has no backward at all.
///
///   GradientReducer r(*group, params);
///   r.prepare();  loss.backward();  r.finish({loss_value});   // params' grads now hold the sums
///
/// The hooks act only between prepare() and finish(): other backward passes (a Fisher, a
/// Hessian-vector product) are untouched. A parameter without a gradient counts as zeros.
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> params, std::int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  /// Arms the hooks for the next backward.
  void prepare();
  /// Starts the buckets backward did not complete (missing gradients as zeros) and, as one last
  /// bucket, the `extra` tensors (loss values; same shapes and dtype on every rank); waits for all;
  /// writes the sums into the parameters' gradients and the extras, in place. IoError when a
  /// collective fails or times out (a rank died).
  void finish(const std::vector<torch::Tensor>& extra = {});
  /// Number of buckets; and of buckets started during backward (before finish) so far.
  std::int64_t buckets() const;
  std::int64_t started_during_backward() const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

/// The contiguous shard [begin, begin + count) of `n` items that `rank` of `world` takes: the
/// first n mod world ranks take one more. The union over ranks is 0..n-1 in order.
struct Shard {
  std::int64_t begin = 0, count = 0;
};
Shard shard(std::int64_t n, int rank, int world);

}  // namespace stablelearn::distributed
