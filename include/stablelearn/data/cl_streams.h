// Classification task streams for continual learning (shared/specs/continual-anchors.md §6), on
// Fashion-MNIST from Debian's dataset-fashion-mnist package.
//
// Conventions (documented choices):
//  * Images are 28x28, stored as float32 [N, 1, 28, 28]: pixel / 255, then normalised with the
//    Fashion-MNIST mean 0.2860 and std 0.3530 (Avalanche's SplitFMNIST and Renate use the same).
//  * Split: 5 tasks of 2 classes; the class order is a seeded permutation of 0..9 (seed 0 keeps the
//    natural order 0,1 | 2,3 | ...). Labels stay global (class-incremental); task-incremental heads
//    use ClTask::classes; the domain-incremental variant relabels each task's two classes 0/1 by
//    their position in the pair.
//  * Permuted: task 0 is the unpermuted data set; task t > 0 applies one seeded permutation of the
//    784 pixels (28x28, no padding) to train and test images alike.
//  * Rotated: task t rotates every image by t * rotation_step degrees counter-clockwise about the
//    image centre (bilinear, zeros outside); step 9° (20 tasks) as ContinualEvaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

namespace stablelearn::data {

struct ImageSet {
  torch::Tensor images;  ///< float32 [N, 1, H, W]
  torch::Tensor labels;  ///< int64 [N]
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct ImageDataset {
  ImageSet train, test;
};

inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

/// Loads the four IDX files (plain or .gz) from `dir` (default: the Debian package's folder).
/// DataError naming the file when a file is missing, counts differ, or labels are outside 0..9.
ImageDataset load_fashion_mnist(const std::filesystem::path& dir = "/usr/share/datasets/fashion-mnist",
                                bool normalise = true);

enum class StreamKind { SplitClassIncremental, SplitTaskIncremental, SplitDomainIncremental, Permuted, Rotated };
/// "split-class", "split-task", "split-domain", "permuted", "rotated"; UsageError listing them.
StreamKind parse_stream_kind(const std::string& name);
const char* stream_kind_name(StreamKind kind);

struct StreamOptions {
  StreamKind kind = StreamKind::SplitClassIncremental;
  std::int64_t num_tasks = 5;       ///< split: 5 (fixed by 10 classes / 2); permuted 10; rotated 20
  std::int64_t seed = 0;            ///< class order / permutations
  double rotation_step = 9.0;       ///< degrees between consecutive rotated tasks
};

struct ClTask {
  std::int64_t id = 0;
  ImageSet train, test;
  std::vector<std::int64_t> classes;  ///< global classes present in this task
  /// With label noise ([stream] label_noise): the training labels before corruption (train.labels
  /// are the noisy ones); undefined otherwise.
  torch::Tensor train_clean_labels;
};

std::vector<ClTask> make_stream(const ImageDataset& data, const StreamOptions& options);

/// Applies a pixel permutation perm [H*W] (int64) to images [N, C, H, W].
torch::Tensor permute_pixels(const torch::Tensor& images, const torch::Tensor& perm);
/// Rotates images [N, C, H, W] by `degrees` counter-clockwise about the centre (bilinear, zero fill).
torch::Tensor rotate_images(const torch::Tensor& images, double degrees);

}  // namespace stablelearn::data
