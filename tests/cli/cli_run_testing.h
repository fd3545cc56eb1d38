// Tiny `cl run` inputs for the CLI suites that analyse a run (test_diagnose_run_cli,
// test_diagnose_shesha_cli, test_diagnose_grokalign_cli): a synthetic Fashion-MNIST-shaped IDX data set in which each class
// lights its own band of rows over uniform noise, so a run trains in well under a second. Needs
// torch (unlike cli_testing.h, which test_cli uses without it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include "cli_testing.h"
#include "stablelearn/data/tensor_convert.h"
#include "stablelearn/io/idx.h"

namespace stablelearn::testing {

/// Synthetic Fashion-MNIST-shaped IDX files PREFIX-images-idx3-ubyte / PREFIX-labels-idx1-ubyte in
/// `dir`: `per_class` images of each class 0..9 (labels cycle 0..9), class c brightening rows
/// 2 + 2c .. 4 + 2c by 150 over uniform noise in [0, 80).
inline void write_tiny_idx(const std::filesystem::path& dir, const std::string& prefix, std::int64_t per_class,
                           std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto n = 10 * per_class;
  auto labels = torch::arange(n, torch::kInt64).remainder(10);
  auto images = torch::randint(0, 80, {n, 28, 28}, gen, torch::kInt64);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto c = labels[i].item<std::int64_t>();
    images[i].slice(0, 2 + 2 * c, 5 + 2 * c).add_(150);
  }
  io::write_idx(dir / (prefix + "-images-idx3-ubyte"), data::to_ndarray(images.to(torch::kUInt8)));
  io::write_idx(dir / (prefix + "-labels-idx1-ubyte"), data::to_ndarray(labels.to(torch::kUInt8)));
}

/// The synthetic data set of a tiny run in DIR/data (40 training and 20 test images per class);
/// returns that folder.
inline std::filesystem::path write_tiny_fmnist(const std::filesystem::path& dir) {
  const auto data = dir / "data";
  std::filesystem::create_directories(data);
  write_tiny_idx(data, "train", 40, 1);
  write_tiny_idx(data, "t10k", 20, 2);
  return data;
}

/// The config of a tiny split-class `cl run` over `data`: 3 tasks of 80 images, MLP 16-8,
/// fine-tuning, 2 epochs of batch 16 (10 iterations per task), no TensorBoard or figures; `output`
/// is appended to its [output] table.
inline std::string tiny_cl_config(const std::filesystem::path& data, int seed, const std::string& output = "") {
  return "[stream]\nkind = \"split-class\"\ntasks = 3\ndata_dir = \"" + data.string() +
         "\"\n[model]\nhidden = [16, 8]\n[strategy]\nname = \"finetune\"\n[train]\nepochs = 2\nbatch_size = 16\n"
         "lr = 0.05\nseed = " + std::to_string(seed) + "\n[output]\ntensorboard = false\nfigures = false\n" + output;
}

/// Writes DIR/NAME.toml (tiny_cl_config(data, seed, output)) and trains it into DIR/NAME by
/// `stablelearn cl run` with the further arguments `extra`; returns the command's result.
inline CliResult make_tiny_cl_run(const std::filesystem::path& dir, const std::filesystem::path& data,
                                  const std::string& name, int seed, const std::string& output = "",
                                  const std::string& extra = "") {
  const auto config = dir / (name + ".toml");
  std::ofstream(config) << tiny_cl_config(data, seed, output);
  return run_cli("cl run " + config.string() + " --out " + (dir / name).string() + (extra.empty() ? "" : " " + extra));
}

}  // namespace stablelearn::testing
