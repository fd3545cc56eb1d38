#include "stablelearn/core/fs.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "stablelearn/core/error.h"

namespace stablelearn {

std::vector<std::uint8_t> read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  SL_CHECK(in.good(), IoError, path.string(), ": cannot open for reading (", std::strerror(errno), ")");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SL_CHECK(!in.bad(), IoError, path.string(), ": read failed");
  return bytes;
}

std::string read_file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  SL_CHECK(in.good(), IoError, path.string(), ": cannot open for reading (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

/// Fault injection for the kill-anywhere tests (tests/cli/kill_resume_test.cpp): with
/// STABLELEARN_KILL_AT_WRITE=N in the environment, the N-th atomic write of this process kills the
/// process with SIGKILL after half of the temporary file is written, as a crash in the middle of a
/// checkpoint write would. Unset (always, outside those tests): one getenv per process.
bool killed_at_this_write() {
  static const long target = [] {
    const char* v = std::getenv("STABLELEARN_KILL_AT_WRITE");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  static std::atomic<long> writes{0};
  return target > 0 && ++writes == target;
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    SL_CHECK(!ec, IoError, path.parent_path().string(), ": cannot create folder (", ec.message(), ")");
  }
  std::random_device rd;
  fs::path tmp = path;
  tmp += ".tmp" + std::to_string(rd());
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    SL_CHECK(f != nullptr, IoError, tmp.string(), ": cannot open for writing (", std::strerror(errno), ")");
    if (killed_at_this_write()) {
      std::fwrite(bytes.data(), 1, bytes.size() / 2, f);
      std::fflush(f);
      std::raise(SIGKILL);
    }
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) {
      std::remove(tmp.c_str());
      SL_THROW(IoError, path.string(), ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    SL_THROW(IoError, path.string(), ": cannot move temporary file into place (", ec.message(), ")");
  }
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::istringstream in(read_file_text(path));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto b = line.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r\n");
    out.push_back(line.substr(b, e - b + 1));
  }
  return out;
}

void append_line(const fs::path& path, std::string_view line) {
  std::ofstream out(path, std::ios::app);
  SL_CHECK(out.good(), IoError, path.string(), ": cannot append");
  out << line << "\n";
}

}  // namespace stablelearn
