// A structural check of MAT v5/v7 files (private to sl_io; see mat5_check.cpp for the layout):
// bounds every size a header claims by the bytes that must hold it, so that matio, which
// allocates what the headers claim before it reads, never allocates far beyond the file's
// (decompressed) size. Files that are not v5/v7 (v4, v7.3/HDF5) are left to matio.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace stablelearn::io::detail {

/// DataError naming `file` and what is wrong when the v5 structure of `bytes` is inconsistent.
void check_mat5_structure(const std::string& file, const std::vector<unsigned char>& bytes);
/// check_mat5_structure of the file at `path` (nothing when it cannot be opened: the caller says so).
void check_mat5_file(const std::string& file, const std::filesystem::path& path);

}  // namespace stablelearn::io::detail
