// NdArray: a typed, C-ordered n-dimensional array as read from or written to a file. The io
// layer is torch-free (so its readers can be fuzzed and used from small tools); data/ converts
// NdArray to and from torch::Tensor.
//
// Invariant (checked by every reader, and by validate() before every write):
// bytes.size() == numel() * item_size(dtype), elements in C (row-major) order, little-endian,
// bool elements stored as single bytes 0 or 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace stablelearn::io {

enum class DType { Float32, Float64, Int32, Int64, UInt8, Bool };

/// Bytes per element of `t`.
std::size_t item_size(DType t);
/// Lower-case name: "float32", "float64", "int32", "int64", "uint8", "bool".
const char* dtype_name(DType t);
/// NumPy little-endian descr: "<f4", "<f8", "<i4", "<i8", "|u1", "|b1".
const char* numpy_descr(DType t);

struct NdArray {
  DType dtype = DType::Float64;
  std::vector<std::int64_t> shape;   ///< empty for a scalar
  std::vector<std::uint8_t> bytes;   ///< C order, little-endian, numel()*item_size(dtype)

  /// Product of the dimensions (1 for a scalar, 0 when any dimension is 0). ShapeError for a
  /// negative dimension or a product that overflows int64.
  std::int64_t numel() const;
  std::int64_t ndim() const { return static_cast<std::int64_t>(shape.size()); }

  /// Values converted to double (bool -> 0/1). ShapeError when the invariant above is broken.
  std::vector<double> to_double() const;

  /// Makes an array of `dtype` with `shape` from doubles (values cast to the dtype: integer
  /// dtypes truncate toward zero, bool is value != 0). ShapeError when values.size() != numel;
  /// DataError for a NaN or a value outside the range of an integer dtype.
  static NdArray from_double(DType dtype, std::vector<std::int64_t> shape,
                             const std::vector<double>& values);
  /// Shape as "[7, 1000, 2]" ("[]" for a scalar).
  std::string shape_str() const;

  /// Checks the invariant above; ShapeError starting with `what` (a file name or a role such as
  /// "write_npy") when the shape is invalid or the byte count does not match it.
  void validate(const std::string& what) const;
};

/// Reorders the elements of `array`, whose bytes are in Fortran (column-major) order for its
/// shape, into C (row-major) order. Used for NumPy fortran_order files and MATLAB matrices.
void convert_fortran_to_c_order(NdArray& array);

}  // namespace stablelearn::io
