// NumPy .npz archives (zip files of .npy members, stored or deflated), through libzip.
// Member names are given without the ".npy" suffix ("pos" for "pos.npy").
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// Reads every member. A corrupt archive, a member that is not valid .npy, or a CRC mismatch
/// gives DataError naming the file and member.
std::map<std::string, NdArray> read_npz(const std::filesystem::path& path);

/// Parses an in-memory .npz (used by the fuzzer and tests); `source` names it in errors.
std::map<std::string, NdArray> parse_npz(const std::uint8_t* data, std::size_t size,
                                         const std::string& source);

/// Reads one member; DataError listing the members present when `name` is missing.
NdArray read_npz_member(const std::filesystem::path& path, const std::string& name);

/// Writes an archive atomically; `compress` = deflate (np.savez_compressed) or store (np.savez).
void write_npz(const std::filesystem::path& path, const std::map<std::string, NdArray>& arrays,
               bool compress = true);

}  // namespace stablelearn::io
