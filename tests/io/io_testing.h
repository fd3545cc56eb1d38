// Helpers shared by the io test files: byte buffers, error expectations, corruption sweeps.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <string>
#include <vector>

#include "stablelearn/core/error.h"

namespace stablelearn::testing {

using Bytes = std::vector<std::uint8_t>;

inline Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

inline Bytes file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void put_file(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// Little-endian encodings of a value (built byte by byte, independent of the code under test).
inline std::string le16(std::uint64_t v) { return {char(v & 0xff), char((v >> 8) & 0xff)}; }
inline std::string le32(std::uint64_t v) { return le16(v & 0xffff) + le16(v >> 16); }
inline std::string be32(std::uint64_t v) {
  return {char((v >> 24) & 0xff), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}
template <typename T>
std::string raw(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

/// Runs `f` and expects an exception of type E (a stablelearn::Error) whose message contains
/// every string of `parts`. With SL_TEST_PRINT_ERRORS=1 in the environment the messages are
/// printed, to review their wording.
template <typename E = DataError, typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    if (const char* p = std::getenv("SL_TEST_PRINT_ERRORS"); p != nullptr && *p == '1')
      std::cout << "  [" << e.kind() << "] " << msg << "\n";
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

/// Calls parse(data, size) on every proper prefix of `bytes`; each must throw stablelearn::Error
/// (anything else, or success, is a failure). Returns the number of prefixes checked.
template <typename Parse>
std::size_t expect_every_prefix_fails(const Bytes& bytes, Parse&& parse) {
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      parse(prefix.data(), prefix.size());
      ADD_FAILURE() << "prefix of " << n << " of " << bytes.size() << " bytes was accepted";
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "prefix of " << n << " bytes: non-stablelearn exception: " << e.what();
    }
  }
  return bytes.size();
}

/// Flips each byte of `bytes` in turn (xor `mask`) and calls parse on the result: it must either
/// succeed or throw stablelearn::Error. Returns how many corruptions were rejected.
template <typename Parse>
std::size_t corrupt_every_byte(const Bytes& bytes, std::uint8_t mask, Parse&& parse) {
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    Bytes b = bytes;
    b[i] ^= mask;
    try {
      parse(b.data(), b.size());
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i << " flipped: non-stablelearn exception: " << e.what();
    }
  }
  return rejected;
}

}  // namespace stablelearn::testing
