// Small filesystem helpers shared by every layer (torch-free).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace stablelearn {

namespace fs = std::filesystem;

/// Reads a whole file as bytes. Throws IoError naming the file when it cannot be read.
std::vector<std::uint8_t> read_file_bytes(const fs::path& path);

/// Reads a whole file as text. Throws IoError naming the file when it cannot be read.
std::string read_file_text(const fs::path& path);

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed over
/// the target, so a reader never sees a half-written file. Creates missing parent folders.
void write_file_atomic(const fs::path& path, std::string_view bytes);

/// Lines of a text file with surrounding whitespace stripped; empty lines are dropped.
std::vector<std::string> read_lines(const fs::path& path);

/// Appends one line (a newline is added) to a text file, e.g. a metrics.jsonl row.
/// Throws IoError naming the file when it cannot be opened.
void append_line(const fs::path& path, std::string_view line);

// Run directories (create, resume, the changed-config check): core/run.h.

}  // namespace stablelearn
