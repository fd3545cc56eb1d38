// NumPy .npy files (format versions 1.0, 2.0 and 3.0; https://numpy.org/neps/nep-0001-npy-format.html).
//
// Supported dtypes: little-endian float32/float64/int32/int64, uint8 and bool (and big-endian
// variants of the numeric types, byte-swapped on read). C order is read as is; Fortran-order
// arrays are converted to C order. Every header field is validated (magic, version, header length,
// dict syntax, descr, shape) and shape x item size must equal the payload size before a single
// data byte is trusted. Errors are stablelearn::DataError / IoError naming `source`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// Parses an in-memory .npy file; `source` names it in error messages (path or "archive.npz:member").
NdArray parse_npy(const std::uint8_t* data, std::size_t size, const std::string& source);
/// Reads a .npy file.
NdArray read_npy(const std::filesystem::path& path);

/// Serialises to .npy bytes, byte-identical to what NumPy (>= 1.24) writes for the same array:
/// format 1.0 (the header of a supported array always fits its 16-bit length), the header dict
/// padded so the payload starts on a 64-byte boundary. ShapeError for an inconsistent array.
std::vector<std::uint8_t> serialize_npy(const NdArray& array);
/// Writes a .npy file atomically (temporary file, then rename); IoError when that fails.
void write_npy(const std::filesystem::path& path, const NdArray& array);

}  // namespace stablelearn::io
