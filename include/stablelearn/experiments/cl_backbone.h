// Backbone files: a Classifier's weights saved by `stablelearn cl pretrain` and loaded by `cl run`
// ([backbone] file) or any other component that starts from a pre-trained model (adapters,
// mixtures of adapters, subspace methods on a frozen backbone).
//
// Format: an npz with one float32 array per entry of the Classifier's WeightLayout, named as the
// layout names it ("layer_0.weight", "conv_1.bias", "out.weight", ...), C order, plus
// "__classes__" (int64 [K], the classes the backbone was trained on; informative).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "stablelearn/models/classifier.h"

namespace stablelearn::experiments {

void save_backbone(const std::filesystem::path& file, const models::ClassifierImpl& model,
                   const std::vector<std::int64_t>& classes = {});
/// Copies the file's arrays into the model's weights. DataError naming the file and the tensor
/// when an array is missing, has another shape than the model's (both shapes in the message,
/// with a hint at [model]), or the file holds arrays the model does not have; IoError when the
/// file is missing or unreadable.
void load_backbone(const std::filesystem::path& file, models::ClassifierImpl& model);

}  // namespace stablelearn::experiments
