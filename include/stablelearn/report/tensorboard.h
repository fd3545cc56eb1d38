// TensorBoard scalar event files, written without TensorFlow or protobuf (Debian ships neither a
// C++ TensorBoard writer nor a CRC-32C library, so both small pieces are implemented here).
//
// File "events.out.tfevents.<unix seconds>.<host>" = a sequence of TFRecords:
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
// masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 with c = CRC-32C (Castagnoli) of x.
// Each data block is a serialised tensorflow.Event protobuf:
//   Event { double wall_time = 1; int64 step = 2; string file_version = 3 (first record,
//           "brain.Event:2"); Summary summary = 5 }
//   Summary { repeated Value value = 1 }   Value { string tag = 1; float simple_value = 2 }
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace stablelearn::report {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `n` bytes.
std::uint32_t crc32c(const void* data, std::size_t n);
/// TFRecord's masked CRC.
std::uint32_t masked_crc32c(const void* data, std::size_t n);

class TensorBoardWriter {
 public:
  /// Creates `dir` if needed and opens a new event file in it (IoError on failure).
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  /// Appends one scalar (flushed by flush() or the destructor).
  void scalar(const std::string& tag, double value, std::int64_t step);
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  void record(const std::string& data);
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace stablelearn::report
