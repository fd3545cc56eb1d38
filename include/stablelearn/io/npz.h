// NumPy .npz archives (zip files of .npy members, stored or deflated), through libzip.
// Member names are given without the ".npy" suffix ("pos" for "pos.npy").
//
// Reading checks, per member: the name ends in ".npy", the declared uncompressed size is at most
// kMaxNpzMemberBytes, the data inflates to exactly the declared size, its CRC-32 matches, and the
// bytes are a valid .npy file (see npy.h). Errors are DataError naming "archive" or
// "archive:member"; a file that cannot be read at all is IoError.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// Largest uncompressed member accepted (1 GiB; the largest shipped member is 1.8 MB). Bounds the
/// memory a corrupt or malicious archive can make a reader allocate.
inline constexpr std::uint64_t kMaxNpzMemberBytes = std::uint64_t(1) << 30;

/// Reads every member. A corrupt archive, a member that is not valid .npy, or a CRC mismatch
/// gives DataError naming the file and member.
std::map<std::string, NdArray> read_npz(const std::filesystem::path& path);

/// Parses an in-memory .npz (used by the fuzzer and tests); `source` names it in errors.
std::map<std::string, NdArray> parse_npz(const std::uint8_t* data, std::size_t size,
                                         const std::string& source);

/// Reads one member; DataError listing the members present when `name` is missing.
NdArray read_npz_member(const std::filesystem::path& path, const std::string& name);

/// Serialises arrays to the bytes of an .npz archive, members "<name>.npy" in name order with a
/// fixed 1980-01-01 timestamp (as NumPy writes them), so equal input gives equal bytes.
/// `compress` = deflate (np.savez_compressed) or store (np.savez). An empty map gives the
/// 22-byte empty zip archive. ShapeError for an inconsistent array, DataError for an empty name.
std::vector<std::uint8_t> serialize_npz(const std::map<std::string, NdArray>& arrays, bool compress = true);

/// Writes an archive atomically (serialize_npz, then a temporary file renamed over `path`);
/// `compress` = deflate (np.savez_compressed) or store (np.savez).
void write_npz(const std::filesystem::path& path, const std::map<std::string, NdArray>& arrays,
               bool compress = true);

}  // namespace stablelearn::io
