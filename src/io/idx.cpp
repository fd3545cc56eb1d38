// IDX reader/writer and the bounded gzip inflater it uses (zlib).
#include "stablelearn/io/idx.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <string_view>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"

namespace stablelearn::io {
namespace {

constexpr std::uint8_t kTypeUByte = 0x08;
/// Deflate cannot expand data by more than about 1032:1, so a stream of n bytes inflates to at
/// most this many times n (plus a little); used only to size the first output buffer.
constexpr std::size_t kMaxDeflateRatio = 1032;
/// zlib's counters are 32-bit: feed and drain it in pieces of at most this many bytes.
constexpr std::size_t kZlibChunk = std::size_t(1) << 30;

std::string hex_byte(std::uint8_t b) {
  static const char* hex = "0123456789abcdef";
  return std::string("0x") + hex[b >> 4] + hex[b & 15];
}

/// Name of an IDX element type code, for error messages.
const char* idx_type_name(std::uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
  }
}

bool has_gzip_magic(const std::uint8_t* data, std::size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

struct InflateStream {
  z_stream zs{};
  ~InflateStream() { inflateEnd(&zs); }
};

}  // namespace

std::vector<std::uint8_t> gunzip(const std::uint8_t* data, std::size_t size, const std::string& source,
                                 std::size_t max_output) {
  SL_CHECK(has_gzip_magic(data, size), DataError, source, ": not a gzip stream (expected magic 1f 8b at the start)");
  InflateStream s;
  SL_CHECK(inflateInit2(&s.zs, 16 + MAX_WBITS) == Z_OK, DataError, source, ": cannot initialise zlib");

  // First buffer: the size the (last) member's trailer declares, bounded by what deflate could
  // possibly produce from this input and by max_output (the trailer is not trusted further).
  const std::size_t cap = max_output < std::numeric_limits<std::size_t>::max() ? max_output + 1 : max_output;
  std::size_t initial = std::size_t(1) << 16;
  if (size >= 18) {
    const std::size_t isize = data[size - 4] | (std::size_t(data[size - 3]) << 8) |
                              (std::size_t(data[size - 2]) << 16) | (std::size_t(data[size - 1]) << 24);
    const std::size_t possible = size > std::numeric_limits<std::size_t>::max() / kMaxDeflateRatio
                                     ? std::numeric_limits<std::size_t>::max()
                                     : size * kMaxDeflateRatio;
    initial = std::max(initial, std::min({isize + 1, possible, cap}));
  }
  std::vector<std::uint8_t> out(std::min(initial, cap));
  std::size_t consumed = 0;
  std::size_t produced = 0;
  for (;;) {
    if (produced == out.size()) {
      SL_CHECK(out.size() <= max_output, DataError, source, ": gzip stream inflates to more than ", max_output,
               " bytes (limit), refusing it");
      out.resize(std::min(std::max(out.size() * 2, std::size_t(1) << 16), cap));
    }
    const std::size_t in_avail = std::min(size - consumed, kZlibChunk);
    const std::size_t out_avail = std::min(out.size() - produced, kZlibChunk);
    s.zs.next_in = const_cast<Bytef*>(data + consumed);
    s.zs.avail_in = static_cast<uInt>(in_avail);
    s.zs.next_out = out.data() + produced;
    s.zs.avail_out = static_cast<uInt>(out_avail);
    const int ret = inflate(&s.zs, Z_NO_FLUSH);
    consumed += in_avail - s.zs.avail_in;
    produced += out_avail - s.zs.avail_out;
    SL_CHECK(produced <= max_output, DataError, source, ": gzip stream inflates to more than ", max_output,
             " bytes (limit), refusing it");
    if (ret == Z_STREAM_END) {
      if (consumed == size) break;
      // Another member follows (files made by concatenating .gz files), or garbage.
      SL_CHECK(has_gzip_magic(data + consumed, size - consumed), DataError, source, ": ", size - consumed,
               " bytes of trailing garbage after the gzip stream");
      SL_CHECK(inflateReset(&s.zs) == Z_OK, DataError, source, ": cannot reset zlib");
      continue;
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR) {
      // No progress possible: either the output buffer is full (grown above) or the input ended.
      SL_CHECK(!(consumed == size && produced < out.size()), DataError, source, ": truncated gzip stream (ended after ",
               size, " bytes, ", produced, " inflated, before the end marker)");
      continue;
    }
    SL_THROW(DataError, source,
             ": corrupt gzip data (zlib: ", s.zs.msg != nullptr ? s.zs.msg : "error " + std::to_string(ret), ")");
  }
  out.resize(produced);
  return out;
}

std::vector<std::uint8_t> gzip_compress(const std::uint8_t* data, std::size_t size) {
  z_stream zs{};
  SL_CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK, InternalError,
           "gzip_compress: cannot initialise zlib");
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(std::min(size, kZlibChunk))) + 64);
  std::size_t consumed = 0;
  std::size_t produced = 0;
  int ret = Z_OK;
  while (ret != Z_STREAM_END) {
    if (produced == out.size()) out.resize(out.size() * 2);
    const std::size_t in_avail = std::min(size - consumed, kZlibChunk);
    const std::size_t out_avail = std::min(out.size() - produced, kZlibChunk);
    zs.next_in = const_cast<Bytef*>(data + consumed);
    zs.avail_in = static_cast<uInt>(in_avail);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(out_avail);
    ret = deflate(&zs, consumed + in_avail == size ? Z_FINISH : Z_NO_FLUSH);
    consumed += in_avail - zs.avail_in;
    produced += out_avail - zs.avail_out;
    if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
      deflateEnd(&zs);
      SL_THROW(InternalError, "gzip_compress: zlib error ", ret);
    }
  }
  deflateEnd(&zs);
  out.resize(produced);
  return out;
}

NdArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& source) {
  SL_CHECK(size >= 4, DataError, source, ": truncated IDX header: file has ", size, " bytes, the magic needs 4");
  SL_CHECK(data[0] == 0 && data[1] == 0, DataError, source, ": not an IDX file: bad magic ", hex_byte(data[0]), " ",
           hex_byte(data[1]), " (expected 0x00 0x00 <type> <ndim>)");
  const std::uint8_t type = data[2];
  SL_CHECK(type == kTypeUByte, DataError, source, ": unsupported IDX element type ", hex_byte(type), " (",
           idx_type_name(type), "); only 0x08 (unsigned byte) is supported");
  const std::size_t ndim = data[3];
  SL_CHECK(ndim >= 1, DataError, source, ": IDX header declares 0 dimensions, expected at least 1");
  const std::size_t header = 4 + 4 * ndim;
  SL_CHECK(size >= header, DataError, source, ": truncated IDX header: ", ndim, " dimensions need ", header,
           " bytes, file has ", size);

  // The product of the non-zero dimensions must fit int64 even when another dimension is 0.
  NdArray a;
  a.dtype = DType::UInt8;
  std::uint64_t expected = 1;
  bool overflow = false;
  bool empty = false;
  for (std::size_t k = 0; k < ndim; ++k) {
    const std::uint8_t* p = data + 4 + 4 * k;
    const std::uint32_t d =
        (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
    SL_CHECK(d <= 0x7fffffffu, DataError, source, ": IDX dimension ", k, " is ", d,
             ", beyond the format's signed 32-bit range");
    a.shape.push_back(d);
    if (d == 0) {
      empty = true;
    } else {
      overflow = overflow || __builtin_mul_overflow(expected, std::uint64_t(d), &expected);
    }
  }
  const std::uint64_t present = size - header;
  SL_CHECK(!overflow && expected <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), DataError,
           source, ": IDX dimensions ", a.shape_str(), " are too large (element count overflows)");
  if (empty) expected = 0;
  SL_CHECK(present >= expected, DataError, source, ": truncated IDX payload: header says dimensions ", a.shape_str(),
           " = ", expected, " bytes, file has ", present, " after the ", header, "-byte header");
  SL_CHECK(present == expected, DataError, source, ": ", present - expected,
           " extra bytes after the IDX payload: header says dimensions ", a.shape_str(), " = ", expected,
           " bytes, file has ", present, " after the ", header, "-byte header");
  a.bytes.assign(data + header, data + size);
  return a;
}

NdArray decode_idx(const std::uint8_t* data, std::size_t size, const std::string& source, std::size_t max_inflated) {
  if (!has_gzip_magic(data, size)) return parse_idx(data, size, source);
  const std::vector<std::uint8_t> raw = gunzip(data, size, source, max_inflated);
  return parse_idx(raw.data(), raw.size(), source);
}

NdArray read_idx(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_idx(bytes.data(), bytes.size(), path.string());
}

void write_idx(const std::filesystem::path& path, const NdArray& array, bool gzip) {
  const std::string where = path.string();
  array.validate(where);
  SL_CHECK(array.dtype == DType::UInt8, ShapeError, where, ": IDX files hold uint8 arrays, got ",
           dtype_name(array.dtype));
  SL_CHECK(array.ndim() >= 1 && array.ndim() <= 255, ShapeError, where, ": IDX files hold 1 to 255 dimensions, got ",
           array.ndim());
  std::vector<std::uint8_t> bytes = {0, 0, kTypeUByte, static_cast<std::uint8_t>(array.ndim())};
  for (const std::int64_t d : array.shape) {
    SL_CHECK(d <= 0x7fffffff, ShapeError, where, ": IDX dimension ", d, " does not fit the format's 32-bit field");
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  bytes.insert(bytes.end(), array.bytes.begin(), array.bytes.end());
  if (gzip) bytes = gzip_compress(bytes.data(), bytes.size());
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace stablelearn::io
