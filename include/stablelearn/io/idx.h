// IDX files (the MNIST / Fashion-MNIST format; http://yann.lecun.com/exdb/mnist/): plain or
// gzip-compressed (.gz, detected by content). Magic = 0x00 0x00 <type> <ndim>, big-endian int32
// dimensions, then the payload in row-major order. Only unsigned-byte payloads (type 0x08) are
// accepted (what MNIST-format data sets use); others are refused with a clear message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// Default location of Fashion-MNIST (Debian package dataset-fashion-mnist).
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Parses an in-memory IDX file (already decompressed); `source` names it in errors.
NdArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& source);
/// Reads an IDX file, decompressing it first when it starts with the gzip magic.
/// Returns uint8 arrays: images [N, rows, cols], labels [N].
NdArray read_idx(const std::filesystem::path& path);

/// Inflates a gzip stream with a bound on the output size (to refuse zip bombs).
std::vector<std::uint8_t> gunzip(const std::uint8_t* data, std::size_t size, const std::string& source,
                                 std::size_t max_output = std::size_t(1) << 31);

/// Writes an uint8 IDX file (gzip-compressed when `gzip`), for tests and tools.
void write_idx(const std::filesystem::path& path, const NdArray& array, bool gzip = false);

}  // namespace stablelearn::io
