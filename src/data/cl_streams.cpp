#include "stablelearn/data/cl_streams.h"

#include <cmath>

#include <torch/nn/functional/vision.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/idx.h"

namespace stablelearn::data {
namespace {

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    if (std::filesystem::exists(dir / name)) return dir / name;
  }
  SL_THROW(IoError, (dir / (stem + ".gz")).string(), ": Fashion-MNIST file not found (install Debian's dataset-fashion-mnist "
           "or pass the folder that holds the IDX files)");
}

ImageSet load_pair(const std::filesystem::path& dir, const std::string& prefix, bool normalise) {
  const auto img_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const auto lbl_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  const auto img = io::read_idx(img_path);
  const auto lbl = io::read_idx(lbl_path);
  SL_CHECK(img.ndim() == 3, DataError, img_path.string(), ": expected images [N, rows, cols], got ", img.shape_str());
  SL_CHECK(lbl.ndim() == 1 && lbl.shape[0] == img.shape[0], DataError, lbl_path.string(), ": ", lbl.shape_str(),
           " labels for ", img.shape[0], " images in ", img_path.string());
  ImageSet s;
  s.images = to_tensor(img).to(torch::kFloat32).div_(255.0).unsqueeze(1);
  if (normalise) s.images.sub_(kFashionMnistMean).div_(kFashionMnistStd);
  s.labels = to_tensor(lbl).to(torch::kInt64);
  SL_CHECK(s.labels.max().item<std::int64_t>() <= 9, DataError, lbl_path.string(), ": labels outside 0..9");
  return s;
}

ImageSet select(const ImageSet& s, const torch::Tensor& mask) {
  const auto idx = mask.nonzero().squeeze(1);
  return {s.images.index_select(0, idx), s.labels.index_select(0, idx)};
}

}  // namespace

ImageDataset load_fashion_mnist(const std::filesystem::path& dir, bool normalise) {
  return {load_pair(dir, "train", normalise), load_pair(dir, "t10k", normalise)};
}

StreamKind parse_stream_kind(const std::string& name) {
  for (auto k : {StreamKind::SplitClassIncremental, StreamKind::SplitTaskIncremental, StreamKind::SplitDomainIncremental,
                 StreamKind::Permuted, StreamKind::Rotated})
    if (name == stream_kind_name(k)) return k;
  SL_THROW(UsageError, "unknown stream '", name, "' (known: split-class, split-task, split-domain, permuted, rotated)");
}

const char* stream_kind_name(StreamKind k) {
  switch (k) {
    case StreamKind::SplitClassIncremental: return "split-class";
    case StreamKind::SplitTaskIncremental: return "split-task";
    case StreamKind::SplitDomainIncremental: return "split-domain";
    case StreamKind::Permuted: return "permuted";
    case StreamKind::Rotated: return "rotated";
  }
  return "?";
}

torch::Tensor permute_pixels(const torch::Tensor& images, const torch::Tensor& perm) {
  const auto N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  SL_CHECK(perm.numel() == H * W, ShapeError, "permute_pixels: permutation of ", perm.numel(), " entries for ", H, "x", W, " images");
  return images.reshape({N, C, H * W}).index_select(2, perm).reshape({N, C, H, W});
}

torch::Tensor rotate_images(const torch::Tensor& images, double degrees) {
  namespace F = torch::nn::functional;
  const double a = degrees * M_PI / 180.0;
  // affine_grid maps output coordinates (x right, y down, in [-1, 1]) to input coordinates. A
  // counter-clockwise rotation of the picture samples the input at the output point rotated
  // clockwise on screen; with y pointing down that is [[cos, -sin], [sin, cos]].
  const auto theta = torch::tensor({{std::cos(a), -std::sin(a), 0.0}, {std::sin(a), std::cos(a), 0.0}}, images.options())
                         .unsqueeze(0)
                         .expand({images.size(0), 2, 3});
  const auto grid = F::affine_grid(theta, images.sizes(), /*align_corners=*/false);
  return F::grid_sample(images, grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
}

std::vector<ClTask> make_stream(const ImageDataset& data, const StreamOptions& o) {
  std::vector<ClTask> tasks;
  auto gen = at::detail::createCPUGenerator(static_cast<std::uint64_t>(o.seed));
  switch (o.kind) {
    case StreamKind::SplitClassIncremental:
    case StreamKind::SplitTaskIncremental:
    case StreamKind::SplitDomainIncremental: {
      SL_CHECK(o.num_tasks == 5, ConfigError, "split Fashion-MNIST has 5 tasks of 2 classes, got num_tasks = ", o.num_tasks);
      const auto order = o.seed == 0 ? torch::arange(10, torch::kInt64) : torch::randperm(10, gen, torch::kInt64);
      for (std::int64_t t = 0; t < 5; ++t) {
        ClTask task;
        task.id = t;
        task.classes = {order[2 * t].item<std::int64_t>(), order[2 * t + 1].item<std::int64_t>()};
        for (const auto* part : {&data.train, &data.test}) {
          auto s = select(*part, (part->labels == task.classes[0]) | (part->labels == task.classes[1]));
          if (o.kind == StreamKind::SplitDomainIncremental) s.labels = (s.labels == task.classes[1]).to(torch::kInt64);
          (part == &data.train ? task.train : task.test) = s;
        }
        tasks.push_back(task);
      }
      break;
    }
    case StreamKind::Permuted: {
      SL_CHECK(o.num_tasks >= 1, ConfigError, "num_tasks must be >= 1, got ", o.num_tasks);
      const auto HW = data.train.images.size(2) * data.train.images.size(3);
      for (std::int64_t t = 0; t < o.num_tasks; ++t) {
        ClTask task;
        task.id = t;
        task.classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        const auto perm = t == 0 ? torch::arange(HW, torch::kInt64) : torch::randperm(HW, gen, torch::kInt64);
        task.train = {permute_pixels(data.train.images, perm), data.train.labels};
        task.test = {permute_pixels(data.test.images, perm), data.test.labels};
        tasks.push_back(task);
      }
      break;
    }
    case StreamKind::Rotated: {
      SL_CHECK(o.num_tasks >= 1, ConfigError, "num_tasks must be >= 1, got ", o.num_tasks);
      for (std::int64_t t = 0; t < o.num_tasks; ++t) {
        ClTask task;
        task.id = t;
        task.classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        const double deg = o.rotation_step * static_cast<double>(t);
        task.train = {t == 0 ? data.train.images : rotate_images(data.train.images, deg), data.train.labels};
        task.test = {t == 0 ? data.test.images : rotate_images(data.test.images, deg), data.test.labels};
        tasks.push_back(task);
      }
      break;
    }
  }
  return tasks;
}

}  // namespace stablelearn::data
