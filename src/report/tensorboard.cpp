#include "stablelearn/report/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>

#include "stablelearn/core/error.h"

namespace stablelearn::report {

namespace {

const std::array<std::uint32_t, 256>& crc_table() {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void key(std::string& out, int field, int wire) { varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<unsigned>(wire)); }

template <class T>
void fixed(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts (checked at start-up below)
  out.append(b, sizeof(T));
}

void bytes_field(std::string& out, int field, const std::string& s) {
  key(out, field, 2);
  varint(out, s.size());
  out += s;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string event_header(double wall_time, std::int64_t step) {
  std::string e;
  key(e, 1, 1);
  fixed(e, wall_time);
  key(e, 2, 0);
  varint(e, static_cast<std::uint64_t>(step));
  return e;
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t n) {
  const auto& t = crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(const void* data, std::size_t n) {
  const auto c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  const std::uint16_t probe = 1;
  SL_CHECK(*reinterpret_cast<const unsigned char*>(&probe) == 1, InternalError, "TensorBoard writer needs a little-endian host");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SL_CHECK(!ec, IoError, dir.string(), ": cannot create directory (", ec.message(), ")");
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  path_ = dir / ("events.out.tfevents." + std::to_string(static_cast<std::int64_t>(now_seconds())) + "." + host);
  out_.open(path_, std::ios::binary | std::ios::app);
  SL_CHECK(out_.good(), IoError, path_.string(), ": cannot open for writing");
  auto e = event_header(now_seconds(), 0);
  bytes_field(e, 3, "brain.Event:2");
  record(e);
}

void TensorBoardWriter::scalar(const std::string& tag, double value, std::int64_t step) {
  std::string v;
  bytes_field(v, 1, tag);
  key(v, 2, 5);
  fixed(v, static_cast<float>(value));
  std::string summary;
  bytes_field(summary, 1, v);
  auto e = event_header(now_seconds(), step);
  bytes_field(e, 5, summary);
  record(e);
}

void TensorBoardWriter::record(const std::string& data) {
  std::string header;
  fixed(header, static_cast<std::uint64_t>(data.size()));
  const auto len_crc = masked_crc32c(header.data(), header.size());
  fixed(header, len_crc);
  out_.write(header.data(), static_cast<std::streamsize>(header.size()));
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  std::string tail;
  fixed(tail, masked_crc32c(data.data(), data.size()));
  out_.write(tail.data(), static_cast<std::streamsize>(tail.size()));
  SL_CHECK(out_.good(), IoError, path_.string(), ": write failed");
}

void TensorBoardWriter::flush() { out_.flush(); }

}  // namespace stablelearn::report
