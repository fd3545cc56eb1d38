// NdArray helpers: dtype tables, element conversion and the Fortran -> C reordering shared by
// the .npy and .mat readers.
#include "stablelearn/io/ndarray.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "stablelearn/core/error.h"

// The io layer stores elements little-endian and reads them with memcpy; every platform
// stablelearn targets (Debian amd64/arm64) is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "stablelearn::io assumes a little-endian host");

namespace stablelearn::io {

std::size_t item_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  SL_THROW(InternalError, "item_size: invalid DType ", static_cast<int>(t));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  SL_THROW(InternalError, "dtype_name: invalid DType ", static_cast<int>(t));
}

const char* numpy_descr(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    case DType::Bool: return "|b1";
  }
  SL_THROW(InternalError, "numpy_descr: invalid DType ", static_cast<int>(t));
}

std::int64_t NdArray::numel() const {
  std::int64_t n = 1;
  bool overflow = false;
  for (const std::int64_t d : shape) {
    SL_CHECK(d >= 0, ShapeError, "array of shape ", shape_str(), ": negative dimension ", d);
    if (d == 0) return 0;  // an empty dimension makes the product 0 whatever the others are
    overflow = overflow || __builtin_mul_overflow(n, d, &n);
  }
  SL_CHECK(!overflow, ShapeError, "array of shape ", shape_str(), ": element count overflows int64");
  return n;
}

std::string NdArray::shape_str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void NdArray::validate(const std::string& what) const {
  const std::int64_t n = numel();
  std::uint64_t nbytes = 0;
  SL_CHECK(!__builtin_mul_overflow(static_cast<std::uint64_t>(n), item_size(dtype), &nbytes), ShapeError, what,
           ": shape ", shape_str(), " ", dtype_name(dtype), " needs more bytes than fit in 64 bits");
  SL_CHECK(bytes.size() == nbytes, ShapeError, what, ": array holds ", bytes.size(), " bytes but shape ", shape_str(),
           " ", dtype_name(dtype), " needs ", nbytes);
}

namespace {

template <typename T>
void load_all(const std::vector<std::uint8_t>& bytes, std::vector<double>& out) {
  const std::size_t n = bytes.size() / sizeof(T);
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

template <typename T>
void store_all(const std::vector<double>& values, std::vector<std::uint8_t>& bytes) {
  bytes.resize(values.size() * sizeof(T));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const T v = static_cast<T>(values[i]);
    std::memcpy(bytes.data() + i * sizeof(T), &v, sizeof(T));
  }
}

/// Checks that every value converts to the integer type T without undefined behaviour.
template <typename T>
void check_integer_range(const std::vector<double>& values, DType dtype) {
  // Valid truncated values lie in [lo, hi) with hi = max + 1, a power of two and so exact in
  // double (for int64, double(max) already rounds up to 2^63 and adding 1 keeps it there).
  const double lo = static_cast<double>(std::numeric_limits<T>::min());
  const double hi = static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    SL_CHECK(!std::isnan(v) && std::trunc(v) >= lo && std::trunc(v) < hi, DataError, "NdArray::from_double: value ", v,
             " at index ", i, " does not fit ", dtype_name(dtype));
  }
}

}  // namespace

std::vector<double> NdArray::to_double() const {
  validate("NdArray::to_double");
  std::vector<double> out;
  switch (dtype) {
    case DType::Float32: load_all<float>(bytes, out); break;
    case DType::Float64: load_all<double>(bytes, out); break;
    case DType::Int32: load_all<std::int32_t>(bytes, out); break;
    case DType::Int64: load_all<std::int64_t>(bytes, out); break;
    case DType::UInt8: load_all<std::uint8_t>(bytes, out); break;
    case DType::Bool:
      out.resize(bytes.size());
      for (std::size_t i = 0; i < bytes.size(); ++i) out[i] = bytes[i] != 0 ? 1.0 : 0.0;
      break;
  }
  return out;
}

NdArray NdArray::from_double(DType dtype, std::vector<std::int64_t> shape, const std::vector<double>& values) {
  NdArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  const std::int64_t n = a.numel();
  SL_CHECK(values.size() == static_cast<std::uint64_t>(n), ShapeError, "NdArray::from_double: ", values.size(),
           " values for shape ", a.shape_str(), " (", n, " elements)");
  switch (dtype) {
    case DType::Float32: {
      // Out-of-range finite values become +-inf explicitly (the plain cast would be undefined).
      std::vector<double> clamped(values);
      const double fmax = std::numeric_limits<float>::max();
      for (double& v : clamped) {
        if (v > fmax) v = std::numeric_limits<double>::infinity();
        if (v < -fmax) v = -std::numeric_limits<double>::infinity();
      }
      store_all<float>(clamped, a.bytes);
      break;
    }
    case DType::Float64: store_all<double>(values, a.bytes); break;
    case DType::Int32:
      check_integer_range<std::int32_t>(values, dtype);
      store_all<std::int32_t>(values, a.bytes);
      break;
    case DType::Int64:
      check_integer_range<std::int64_t>(values, dtype);
      store_all<std::int64_t>(values, a.bytes);
      break;
    case DType::UInt8:
      check_integer_range<std::uint8_t>(values, dtype);
      store_all<std::uint8_t>(values, a.bytes);
      break;
    case DType::Bool:
      a.bytes.resize(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) a.bytes[i] = values[i] != 0.0 ? 1 : 0;
      break;
  }
  return a;
}

void convert_fortran_to_c_order(NdArray& array) {
  array.validate("convert_fortran_to_c_order");
  const std::size_t ndim = array.shape.size();
  const std::int64_t n = array.numel();
  if (ndim < 2 || n <= 1) return;  // 0-d and 1-d arrays have the same layout in both orders
  const std::size_t isz = item_size(array.dtype);
  // Fortran strides (in elements): the first index varies fastest.
  std::vector<std::int64_t> fstride(ndim);
  fstride[0] = 1;
  for (std::size_t k = 1; k < ndim; ++k) fstride[k] = fstride[k - 1] * array.shape[k - 1];
  std::vector<std::uint8_t> out(array.bytes.size());
  // Walk the C-order destination with an odometer over the indices, keeping the Fortran source
  // offset up to date incrementally.
  std::vector<std::int64_t> idx(ndim, 0);
  std::int64_t src = 0;
  for (std::int64_t dst = 0; dst < n; ++dst) {
    std::memcpy(out.data() + dst * isz, array.bytes.data() + src * isz, isz);
    for (std::size_t k = ndim; k-- > 0;) {
      if (++idx[k] < array.shape[k]) {
        src += fstride[k];
        break;
      }
      src -= fstride[k] * (array.shape[k] - 1);
      idx[k] = 0;
    }
  }
  array.bytes = std::move(out);
}

}  // namespace stablelearn::io
