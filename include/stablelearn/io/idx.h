// IDX files (the MNIST / Fashion-MNIST format; http://yann.lecun.com/exdb/mnist/): plain or
// gzip-compressed (.gz, detected by content). Magic = 0x00 0x00 <type> <ndim>, big-endian int32
// dimensions, then the payload in row-major order. Only unsigned-byte payloads (type 0x08) are
// accepted (what MNIST-format data sets use); others are refused with a clear message.
// Errors are DataError naming the file; a file that cannot be read at all is IoError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// Default location of Fashion-MNIST (Debian package dataset-fashion-mnist).
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Default bound on the inflated size of a gzip-compressed IDX file (2 GiB; Fashion-MNIST's
/// largest file inflates to 47 MB).
inline constexpr std::size_t kMaxIdxInflatedBytes = std::size_t(1) << 31;

/// Parses an in-memory IDX file (already decompressed); `source` names it in errors.
/// The dimensions must describe exactly the bytes after the header (no more, no fewer).
NdArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& source);

/// Parses the bytes of an IDX file as stored on disk: inflated first (at most `max_inflated`
/// bytes) when they start with the gzip magic 1f 8b, then parse_idx. What read_idx does after
/// reading the file; the fuzzer calls it on raw input.
NdArray decode_idx(const std::uint8_t* data, std::size_t size, const std::string& source,
                   std::size_t max_inflated = kMaxIdxInflatedBytes);

/// Reads an IDX file, decompressing it first when it starts with the gzip magic.
/// Returns uint8 arrays: images [N, rows, cols], labels [N].
NdArray read_idx(const std::filesystem::path& path);

/// Inflates a gzip stream with a bound on the output size (to refuse zip bombs). Concatenated
/// gzip members are joined (as gunzip does); a truncated stream, a CRC or length mismatch,
/// trailing garbage or output beyond `max_output` bytes is a DataError naming `source`.
std::vector<std::uint8_t> gunzip(const std::uint8_t* data, std::size_t size, const std::string& source,
                                 std::size_t max_output = kMaxIdxInflatedBytes);

/// Compresses `size` bytes into a single gzip member (zlib level 6, no file name, mtime 0).
std::vector<std::uint8_t> gzip_compress(const std::uint8_t* data, std::size_t size);

/// Writes an uint8 IDX file (gzip-compressed when `gzip`), for tests and tools. ShapeError for an
/// array that is not uint8, has no dimension or a dimension of 2^31 or more.
void write_idx(const std::filesystem::path& path, const NdArray& array, bool gzip = false);

}  // namespace stablelearn::io
