#include "stablelearn/data/tensor_convert.h"

#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::data {
namespace {

torch::ScalarType scalar_type(io::DType t) {
  switch (t) {
    case io::DType::Float32: return torch::kFloat32;
    case io::DType::Float64: return torch::kFloat64;
    case io::DType::Int32: return torch::kInt32;
    case io::DType::Int64: return torch::kInt64;
    case io::DType::UInt8: return torch::kUInt8;
    case io::DType::Bool: return torch::kBool;
  }
  SL_THROW(InternalError, "unknown io::DType");
}

io::DType io_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return io::DType::Float32;
    case torch::kFloat64: return io::DType::Float64;
    case torch::kInt32: return io::DType::Int32;
    case torch::kInt64: return io::DType::Int64;
    case torch::kUInt8: return io::DType::UInt8;
    case torch::kBool: return io::DType::Bool;
    default: SL_THROW(DataError, "cannot store a tensor of dtype ", c10::toString(t),
                      " (supported: float32, float64, int32, int64, uint8, bool)");
  }
}

}  // namespace

torch::Tensor to_tensor(const io::NdArray& array) {
  auto t = torch::empty(array.shape, torch::TensorOptions().dtype(scalar_type(array.dtype)));
  SL_CHECK(static_cast<std::size_t>(t.nbytes()) == array.bytes.size(), DataError, "array of shape ", array.shape_str(),
           " has ", array.bytes.size(), " bytes, expected ", t.nbytes());
  if (!array.bytes.empty()) std::memcpy(t.data_ptr(), array.bytes.data(), array.bytes.size());
  return t;
}

io::NdArray to_ndarray(const torch::Tensor& tensor) {
  const auto t = tensor.detach().to(torch::kCPU).contiguous();
  io::NdArray a;
  a.dtype = io_dtype(t.scalar_type());
  a.shape = t.sizes().vec();
  a.bytes.resize(t.nbytes());
  if (!a.bytes.empty()) std::memcpy(a.bytes.data(), t.data_ptr(), a.bytes.size());
  return a;
}

}  // namespace stablelearn::data
