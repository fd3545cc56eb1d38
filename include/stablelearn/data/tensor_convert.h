// Conversions between io::NdArray (files) and torch::Tensor (models).
#pragma once

#include <torch/types.h>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::data {

/// Copies an NdArray into a new CPU tensor of the matching dtype (bool -> kBool).
torch::Tensor to_tensor(const io::NdArray& array);
/// Copies a tensor (any device, made contiguous) into an NdArray. Supported dtypes: float32,
/// float64, int32, int64, uint8, bool; others throw DataError.
io::NdArray to_ndarray(const torch::Tensor& tensor);

}  // namespace stablelearn::data
