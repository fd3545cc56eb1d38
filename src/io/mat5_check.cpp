// A structural check of MAT v5 files before matio reads them (io/mat5_check.h).
//
// Layout (MathWorks, "MAT-File Format", v5/v7): a 128-byte header (text, subsystem offset, version
// 0x0100, endian indicator "IM" when written little-endian), then data elements. A data element is
// a tag [type u32][nbytes u32] followed by nbytes of data padded to 8 bytes, or, in the small
// format, one u32 holding (nbytes << 16 | type) followed by at most 4 bytes. miCOMPRESSED (15)
// holds a zlib stream of further elements (not padded); miMATRIX (14) holds an array: flags
// (miUINT32 × 2), dimensions (miINT32 × rank), name (miINT8), then by class: cells (one miMATRIX
// per element), structs (field-name length, names, one miMATRIX per element and field), objects
// (class name, then as structs), numeric and char arrays (real part, imaginary part when complex),
// sparse arrays (ir, jc, real, imaginary).
//
// The check bounds every count by the bytes that must hold it: an element claiming more bytes than
// are left, a cell or struct with more elements than 8-byte tags fit in its data, a numeric array
// whose data element holds fewer bytes than its dimensions need. matio allocates what the
// headers claim before it reads; these bounds keep its allocations within a small multiple of the
// (decompressed) file. Anything the check does not understand is left to matio.
#include "mat5_check.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "stablelearn/core/error.h"

namespace stablelearn::io::detail {

namespace {

constexpr std::uint32_t miINT8 = 1, miINT32 = 5, miUINT32 = 6, miMATRIX = 14, miCOMPRESSED = 15;
constexpr std::uint32_t mxCELL = 1, mxSTRUCT = 2, mxOBJECT = 3, mxCHAR = 4, mxDOUBLE = 6, mxUINT64 = 15;
constexpr int kMaxDepth = 64;
/// Decompressed size of one variable beyond which it is rejected (LASA files are below 1 MB).
constexpr std::size_t kMaxInflated = std::size_t{1} << 30;

/// Bytes per value of a stored data type (0: not a numeric storage type).
std::uint64_t storage_size(std::uint32_t type) {
  switch (type) {
    case 1: case 2: case 16: return 1;              // miINT8, miUINT8, miUTF8
    case 3: case 4: case 17: return 2;              // miINT16, miUINT16, miUTF16
    case 5: case 6: case 7: case 18: return 4;      // miINT32, miUINT32, miSINGLE, miUTF32
    case 9: case 12: case 13: return 8;             // miDOUBLE, miINT64, miUINT64
    default: return 0;
  }
}

class Checker {
 public:
  Checker(const std::string& file, bool swap) : file_(file), swap_(swap) {}

  /// Top-level data elements of [p, end) (the file after its header, or a decompressed variable).
  void elements(const unsigned char* base, std::size_t begin, std::size_t end, int depth, bool top) {
    std::size_t pos = begin;
    while (pos < end) {
      if (end - pos < 8) {
        // A few trailing bytes after the last variable: matio ignores them too.
        if (top) return;
        fail(pos, "a data element tag is cut off");
      }
      const Tag t = tag(base, pos, end);
      if (t.type == miCOMPRESSED) {
        if (depth > 0) fail(pos, "a compressed element inside a compressed element");
        const auto plain = inflate(base + t.data, t.nbytes, pos);
        elements(plain.data(), 0, plain.size(), depth + 1, false);
        pos = t.data + t.nbytes;  // compressed elements are not padded
      } else {
        if (t.type == miMATRIX) matrix(base, t.data, t.data + t.nbytes, depth + 1);
        pos = t.next;
      }
    }
  }

 private:
  struct Tag {
    std::uint32_t type = 0;
    std::uint64_t nbytes = 0;
    std::size_t data = 0, next = 0;  ///< offset of the data; of the next element (padded)
  };

  [[noreturn]] void fail(std::size_t offset, const std::string& what) const {
    SL_THROW(DataError, file_, ": not a valid MAT-file: ", what, " (at byte ", offset,
             " of the file or of its decompressed variable); the file is truncated or corrupt");
  }

  std::uint32_t u32(const unsigned char* p) const {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return swap_ ? __builtin_bswap32(v) : v;
  }

  /// The tag at pos (which must leave at least 8 bytes before end); its data must fit before end.
  Tag tag(const unsigned char* base, std::size_t pos, std::size_t end) const {
    Tag t;
    const std::uint32_t first = u32(base + pos);
    if ((first >> 16) != 0) {  // small data element: 4 bytes of data at most, in the tag's second word
      t.type = first & 0xffff;
      t.nbytes = first >> 16;
      if (t.nbytes > 4) fail(pos, "a small data element claims " + std::to_string(t.nbytes) + " bytes (at most 4)");
      t.data = pos + 4;
      t.next = pos + 8;
      return t;
    }
    t.type = first;
    t.nbytes = u32(base + pos + 4);
    t.data = pos + 8;
    if (t.nbytes > end - t.data)
      fail(pos, "a data element claims " + std::to_string(t.nbytes) + " bytes but " + std::to_string(end - t.data) +
                    " are left");
    const std::uint64_t padded = (t.nbytes + 7) / 8 * 8;
    t.next = static_cast<std::size_t>(std::min<std::uint64_t>(t.data + padded, end));
    return t;
  }

  std::vector<unsigned char> inflate(const unsigned char* p, std::uint64_t n, std::size_t at) const {
    std::vector<unsigned char> out;
    z_stream z{};
    if (inflateInit(&z) != Z_OK) fail(at, "zlib could not be initialised");
    z.next_in = const_cast<unsigned char*>(p);
    z.avail_in = static_cast<uInt>(n);
    unsigned char buf[1 << 16];
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      z.next_out = buf;
      z.avail_out = sizeof(buf);
      rc = ::inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        inflateEnd(&z);
        fail(at, rc == Z_BUF_ERROR ? "a compressed variable is cut off" : "a compressed variable is not a valid zlib stream");
      }
      out.insert(out.end(), buf, buf + (sizeof(buf) - z.avail_out));
      if (out.size() > kMaxInflated) {
        inflateEnd(&z);
        fail(at, "a compressed variable expands beyond 1 GiB");
      }
    }
    inflateEnd(&z);
    return out;
  }

  /// An miMATRIX's data [begin, end).
  void matrix(const unsigned char* base, std::size_t begin, std::size_t end, int depth) {
    if (depth > kMaxDepth) fail(begin, "arrays nested deeper than " + std::to_string(kMaxDepth) + " levels");
    if (begin == end) return;  // an empty array (e.g. an empty cell)
    std::size_t pos = begin;
    auto next = [&](const char* what) {
      if (end - pos < 8) fail(pos, std::string("an array's ") + what + " is cut off");
      const Tag t = tag(base, pos, end);
      pos = t.next;
      return t;
    };
    const Tag flags = next("flags");
    if (flags.type != miUINT32 || flags.nbytes < 4) fail(flags.data, "an array's flags are not a miUINT32 element");
    const std::uint32_t cls = u32(base + flags.data) & 0xff;
    const bool complex = (u32(base + flags.data) & 0x0800) != 0;
    const Tag dims = next("dimensions");
    if (dims.type != miINT32 || dims.nbytes % 4 != 0) fail(dims.data, "an array's dimensions are not a miINT32 element");
    std::uint64_t count = 1;
    for (std::uint64_t k = 0; k < dims.nbytes / 4; ++k) {
      const auto d = static_cast<std::int32_t>(u32(base + dims.data + 4 * k));
      if (d < 0) fail(dims.data, "an array has a negative dimension (" + std::to_string(d) + ")");
      if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count))
        fail(dims.data, "an array's dimensions overflow 64 bits");
    }
    const Tag name = next("name");
    if (name.type != miINT8) fail(name.data, "an array's name is not a miINT8 element");
    if (cls == mxCELL || cls == mxSTRUCT || cls == mxOBJECT) {
      std::uint64_t fields = 1;
      if (cls == mxOBJECT) next("class name");
      if (cls != mxCELL) {
        const Tag len = next("field-name length");
        const std::uint32_t l = len.nbytes >= 4 ? u32(base + len.data) : 0;
        const Tag names = next("field names");
        fields = l == 0 ? 0 : names.nbytes / l;
      }
      // Every element (cell, or struct element × field) is an miMATRIX of at least an 8-byte tag.
      std::uint64_t elements = 0;
      if (__builtin_mul_overflow(count, fields, &elements) || elements > (end - pos) / 8)
        fail(pos, "an array of " + std::to_string(count) + " element(s) x " + std::to_string(fields) +
                      " field(s) needs at least 8 bytes per element, but " + std::to_string(end - pos) +
                      " bytes are left");
      for (std::uint64_t e = 0; e < elements; ++e) {
        const Tag m = next("cell or field");
        if (m.type != miMATRIX) fail(m.data - 8, "a cell or field is not an array (miMATRIX) element");
        matrix(base, m.data, m.data + m.nbytes, depth + 1);
      }
    } else if (count > 0 && (cls == mxCHAR || (cls >= mxDOUBLE && cls <= mxUINT64))) {
      for (int part = 0; part < (complex ? 2 : 1); ++part) {
        const Tag data = next(part == 0 ? "real part" : "imaginary part");
        const auto size = storage_size(data.type);
        std::uint64_t need = 0;
        if (size == 0) fail(data.data, "an array's data has the unknown type " + std::to_string(data.type));
        if (__builtin_mul_overflow(count, size, &need) || need > data.nbytes)
          fail(data.data, "an array of " + std::to_string(count) + " values needs " + std::to_string(need) +
                              " bytes of data, but its data element holds " + std::to_string(data.nbytes));
      }
    }
    // Sparse arrays (ir, jc, values: matio sizes them from their tags), function handles and opaque
    // objects: bounded by their tags only.
  }

  std::string file_;
  bool swap_;
};

}  // namespace

void check_mat5_structure(const std::string& file, const std::vector<unsigned char>& bytes) {
  if (bytes.size() < 128) return;  // not v5: matio decides
  const unsigned char* h = bytes.data();
  const bool im = h[126] == 'I' && h[127] == 'M', mi = h[126] == 'M' && h[127] == 'I';
  if (!im && !mi) return;
  // Version 0x0100 is v5/v7 (0x0200 is v7.3, an HDF5 file): in the byte order the indicator gives.
  const std::uint16_t version = im ? static_cast<std::uint16_t>(h[124] | h[125] << 8) : static_cast<std::uint16_t>(h[125] | h[124] << 8);
  if (version != 0x0100) return;
  const bool little = [] {
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
  }();
  Checker c(file, im != little);
  c.elements(bytes.data(), 128, bytes.size(), 0, true);
}

void check_mat5_file(const std::string& file, const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;  // the caller reports unreadable files
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_mat5_structure(file, bytes);
}

}  // namespace stablelearn::io::detail
