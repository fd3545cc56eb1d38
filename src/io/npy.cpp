// .npy reader and writer. Layout (NumPy format versions 1.0 / 2.0 / 3.0):
//
//   "\x93NUMPY" major minor | header length (uint16 LE for 1.0, uint32 LE for 2.0/3.0) |
//   header: a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), }
//   padded with spaces and ended by '\n' | payload: numel * item size bytes.
//
// The header dict is parsed by a small recursive-descent parser for the Python literal subset
// NumPy writes (strings, True/False/None, integers, tuples, lists), so key order, spacing,
// quotes and trailing commas do not matter. Nothing of the payload is touched before the header
// has been validated and shape x item size has been checked against the bytes present.
#include "stablelearn/io/npy.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"

namespace stablelearn::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
/// NumPy 2's limit on the number of dimensions (NPY_MAXDIMS).
constexpr std::size_t kMaxDims = 64;
/// Deepest tuple/list nesting accepted in a header (NumPy's own headers nest at most 3 levels).
constexpr int kMaxNesting = 16;
/// NumPy aligns the payload of the files it writes to this many bytes (numpy.lib.format.ARRAY_ALIGN).
constexpr std::size_t kArrayAlign = 64;
/// NumPy pads headers so the first axis can grow in place to this many digits (GROWTH_AXIS_MAX_DIGITS).
constexpr std::size_t kGrowthAxisMaxDigits = 21;

/// `s` with non-printable bytes escaped and cut to `max` characters, for error messages.
std::string printable(std::string_view s, std::size_t max = 160) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

/// A value of the Python literal subset found in .npy headers.
struct PyValue {
  enum class Kind { Str, Bool, None, Int, Tuple, List };
  Kind kind = Kind::None;
  std::string str;             ///< Kind::Str
  bool boolean = false;        ///< Kind::Bool
  std::int64_t integer = 0;    ///< Kind::Int
  std::vector<PyValue> items;  ///< Kind::Tuple, Kind::List
};

const char* kind_name(PyValue::Kind k) {
  switch (k) {
    case PyValue::Kind::Str: return "a string";
    case PyValue::Kind::Bool: return "a bool";
    case PyValue::Kind::None: return "None";
    case PyValue::Kind::Int: return "an integer";
    case PyValue::Kind::Tuple: return "a tuple";
    case PyValue::Kind::List: return "a list";
  }
  return "?";
}

/// Recursive-descent parser for the header dict.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  /// Parses `{key: value, ...}` followed only by whitespace; keys in file order.
  std::vector<std::pair<std::string, PyValue>> parse_dict() {
    std::vector<std::pair<std::string, PyValue>> items;
    skip_ws();
    if (!eat('{')) fail("expected '{' opening the header dict");
    skip_ws();
    if (!eat('}')) {
      for (;;) {
        skip_ws();
        if (at_end() || (peek() != '\'' && peek() != '"')) fail("expected a quoted key");
        std::string key = parse_string();
        skip_ws();
        if (!eat(':')) fail("expected ':' after key '" + printable(key) + "'");
        skip_ws();
        items.emplace_back(std::move(key), parse_value(0));
        skip_ws();
        if (eat('}')) break;
        if (!eat(',')) fail("expected ',' or '}' after a value");
        skip_ws();
        if (eat('}')) break;  // trailing comma, as NumPy writes it
      }
    }
    skip_ws();
    if (!at_end()) fail("unexpected text after the closing '}'");
    return items;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    // Show the header without its padding.
    const std::size_t end = text_.find_last_not_of(" \n");
    SL_THROW(DataError, source_, ": malformed .npy header at character ", pos_, ": ", what, " (header: \"",
             printable(text_.substr(0, end == std::string_view::npos ? 0 : end + 1)), "\")");
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  bool eat(char c) {
    if (at_end() || peek() != c) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }
  static bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }

  std::string parse_string() {
    const char quote = text_[pos_++];
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      char c = text_[pos_++];
      if (c == quote) return out;
      if (c == '\\') {  // keep the escaped character literally (enough for \' and \\)
        if (at_end()) fail("unterminated string");
        c = text_[pos_++];
      }
      out += c;
    }
  }

  std::int64_t parse_int() {
    const bool negative = peek() == '-';
    if (peek() == '-' || peek() == '+') ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail("expected digits after the sign");
    const std::size_t start = pos_;
    std::uint64_t magnitude = 0;
    bool overflow = false;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const auto digit = static_cast<std::uint64_t>(peek() - '0');
      overflow = overflow || magnitude > (std::numeric_limits<std::uint64_t>::max() - digit) / 10;
      if (!overflow) magnitude = magnitude * 10 + digit;
      ++pos_;
    }
    if (overflow || magnitude > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail("integer " + std::string(negative ? "-" : "") + printable(text_.substr(start, pos_ - start)) +
           " does not fit in int64");
    }
    if (!at_end() && (peek() == 'L' || peek() == 'l')) ++pos_;  // Python 2 long suffix (old NumPy)
    if (!at_end() && is_word_char(peek())) fail("unexpected character after an integer");
    const auto value = static_cast<std::int64_t>(magnitude);
    return negative ? -value : value;
  }

  PyValue parse_value(int depth) {
    if (depth > kMaxNesting) fail("tuples/lists nested more than " + std::to_string(kMaxNesting) + " deep");
    if (at_end()) fail("unexpected end of header, expected a value");
    PyValue v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = PyValue::Kind::Str;
      v.str = parse_string();
    } else if (c == '(' || c == '[') {
      const char close = c == '(' ? ')' : ']';
      ++pos_;
      bool comma = false;
      skip_ws();
      while (!eat(close)) {
        v.items.push_back(parse_value(depth + 1));
        skip_ws();
        comma = false;
        if (eat(close)) break;
        if (!eat(',')) fail(std::string("expected ',' or '") + close + "' in a sequence");
        comma = true;
        skip_ws();
      }
      // "(5)" is just 5 in Python; "(5,)" is a 1-tuple.
      if (c == '(' && v.items.size() == 1 && !comma) return std::move(v.items[0]);
      v.kind = c == '(' ? PyValue::Kind::Tuple : PyValue::Kind::List;
    } else if (c == '-' || c == '+' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::Kind::Int;
      v.integer = parse_int();
    } else if (is_word_char(c)) {
      const std::size_t start = pos_;
      while (!at_end() && is_word_char(peek())) ++pos_;
      const std::string_view word = text_.substr(start, pos_ - start);
      if (word == "True" || word == "False") {
        v.kind = PyValue::Kind::Bool;
        v.boolean = word == "True";
      } else if (word == "None") {
        v.kind = PyValue::Kind::None;
      } else {
        pos_ = start;
        fail("unexpected word '" + printable(word) + "'");
      }
    } else {
      fail("unexpected character '" + printable(text_.substr(pos_, 1)) + "'");
    }
    return v;
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

constexpr const char* kSupportedDescrs =
    "'<f4', '<f8', '<i4', '<i8', '|u1', '|b1' or big-endian '>f4', '>f8', '>i4', '>i8'";

/// The validated content of a header.
struct Header {
  DType dtype = DType::Float64;
  bool big_endian = false;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

/// Maps a descr string to a dtype and byte order; false when unsupported.
bool parse_descr(const std::string& descr, DType& dtype, bool& big_endian) {
  if (descr.size() != 3) return false;
  const char order = descr[0];
  const std::string code = descr.substr(1);
  static const std::pair<const char*, DType> kCodes[] = {{"f4", DType::Float32}, {"f8", DType::Float64},
                                                         {"i4", DType::Int32},   {"i8", DType::Int64},
                                                         {"u1", DType::UInt8},   {"b1", DType::Bool}};
  for (const auto& [name, t] : kCodes) {
    if (code != name) continue;
    if (item_size(t) == 1) {
      // Byte order is meaningless for one-byte items; NumPy writes '|'.
      if (order != '|' && order != '<' && order != '>' && order != '=') return false;
      dtype = t;
      big_endian = false;
      return true;
    }
    if (order != '<' && order != '>') return false;
    dtype = t;
    big_endian = order == '>';
    return true;
  }
  return false;
}

Header validate_header(const std::vector<std::pair<std::string, PyValue>>& items, const std::string& source) {
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape = nullptr;
  for (const auto& [key, value] : items) {
    const PyValue** slot = key == "descr"           ? &descr
                           : key == "fortran_order" ? &fortran
                           : key == "shape"         ? &shape
                                                    : nullptr;
    SL_CHECK(slot != nullptr, DataError, source, ": .npy header has unknown key '", printable(key),
             "' (expected exactly 'descr', 'fortran_order', 'shape')");
    SL_CHECK(*slot == nullptr, DataError, source, ": .npy header has key '", key, "' twice");
    *slot = &value;
  }
  for (const auto& [name, slot] :
       {std::pair<const char*, const PyValue*>{"descr", descr}, {"fortran_order", fortran}, {"shape", shape}}) {
    SL_CHECK(slot != nullptr, DataError, source, ": .npy header lacks key '", name,
             "' (expected exactly 'descr', 'fortran_order', 'shape')");
  }

  Header h;
  SL_CHECK(descr->kind == PyValue::Kind::Str, DataError, source, ": unsupported descr: ", kind_name(descr->kind),
           " (structured dtypes are not supported; expected one of ", kSupportedDescrs, ")");
  SL_CHECK(parse_descr(descr->str, h.dtype, h.big_endian), DataError, source, ": unsupported descr '",
           printable(descr->str), "' (expected one of ", kSupportedDescrs, ")");

  SL_CHECK(fortran->kind == PyValue::Kind::Bool, DataError, source, ": 'fortran_order' is ", kind_name(fortran->kind),
           ", expected True or False");
  h.fortran_order = fortran->boolean;

  SL_CHECK(shape->kind == PyValue::Kind::Tuple, DataError, source, ": 'shape' is ", kind_name(shape->kind),
           ", expected a tuple of non-negative integers such as (7, 1000, 2)");
  SL_CHECK(shape->items.size() <= kMaxDims, DataError, source, ": 'shape' has ", shape->items.size(),
           " dimensions, at most ", kMaxDims, " are supported");
  for (std::size_t i = 0; i < shape->items.size(); ++i) {
    const PyValue& d = shape->items[i];
    SL_CHECK(d.kind == PyValue::Kind::Int, DataError, source, ": 'shape' entry ", i, " is ", kind_name(d.kind),
             ", expected a non-negative integer");
    SL_CHECK(d.integer >= 0, DataError, source, ": 'shape' entry ", i, " is negative (", d.integer, ")");
    h.shape.push_back(d.integer);
  }
  return h;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  NdArray a;
  a.shape = shape;
  return a.shape_str();
}

/// Byte count of `shape` x `dtype`, or false when it is too large: the product of the non-zero
/// dimensions times the item size must fit int64 even when another dimension is 0 (NumPy itself
/// refuses such shapes as "array is too big").
bool payload_bytes(const std::vector<std::int64_t>& shape, DType dtype, std::uint64_t& out) {
  std::uint64_t n = item_size(dtype);
  bool empty = false;
  for (const std::int64_t d : shape) {
    if (d == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return false;
  }
  if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  out = empty ? 0 : n;
  return true;
}

void byteswap_items(std::vector<std::uint8_t>& bytes, std::size_t isz) {
  for (std::size_t i = 0; i + isz <= bytes.size(); i += isz) std::reverse(bytes.begin() + i, bytes.begin() + i + isz);
}

}  // namespace

NdArray parse_npy(const std::uint8_t* data, std::size_t size, const std::string& source) {
  if (size < kMagicLen || std::memcmp(data, kMagic, kMagicLen) != 0) {
    const std::string_view got(reinterpret_cast<const char*>(data), std::min(size, kMagicLen));
    SL_THROW(DataError, source, ": not a .npy file: bad magic \"", printable(got),
             "\" (expected \"\\x93NUMPY\" at the start of the file)");
  }
  SL_CHECK(size >= kMagicLen + 2, DataError, source, ": truncated .npy header: file has ", size,
           " bytes, the magic and version need 8");
  const int major = data[6];
  const int minor = data[7];
  SL_CHECK((major == 1 || major == 2 || major == 3) && minor == 0, DataError, source,
           ": unsupported .npy format version ", major, ".", minor, " (supported: 1.0, 2.0, 3.0)");
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = kMagicLen + 2 + len_bytes;
  SL_CHECK(size >= prefix, DataError, source, ": truncated .npy header: file has ", size, " bytes, format ", major,
           ".0 needs ", prefix, " before the header dict");
  std::uint64_t header_len = data[8] | (std::uint64_t(data[9]) << 8);
  if (len_bytes == 4) header_len |= (std::uint64_t(data[10]) << 16) | (std::uint64_t(data[11]) << 24);
  SL_CHECK(header_len <= size - prefix, DataError, source, ": .npy header length ", header_len,
           " goes beyond the end of the file (header would end at byte ", prefix + header_len, ", file has ", size,
           ")");
  // 1.0/2.0 headers are latin-1, 3.0 headers UTF-8; the keys and values we accept are ASCII in both.
  const std::string_view text(reinterpret_cast<const char*>(data + prefix), header_len);
  const Header h = validate_header(HeaderParser(text, source).parse_dict(), source);

  const std::size_t data_start = prefix + header_len;
  const std::uint64_t present = size - data_start;
  std::uint64_t expected = 0;
  SL_CHECK(payload_bytes(h.shape, h.dtype, expected), DataError, source, ": shape ", shape_string(h.shape), " ",
           dtype_name(h.dtype), " is too large (its byte count overflows int64)");
  SL_CHECK(present >= expected, DataError, source, ": truncated payload: header says shape ", shape_string(h.shape),
           " ", dtype_name(h.dtype), " = ", expected, " bytes, file has ", present, " after the ", data_start,
           "-byte header");
  SL_CHECK(present == expected, DataError, source, ": ", present - expected,
           " extra bytes after the payload: header says shape ", shape_string(h.shape), " ", dtype_name(h.dtype), " = ",
           expected, " bytes, file has ", present, " after the ", data_start, "-byte header");

  NdArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.bytes.assign(data + data_start, data + size);
  if (h.big_endian) byteswap_items(a.bytes, item_size(a.dtype));
  if (a.dtype == DType::Bool) {
    for (auto& b : a.bytes) b = b != 0 ? 1 : 0;
  }
  if (h.fortran_order) convert_fortran_to_c_order(a);
  return a;
}

NdArray read_npy(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_npy(bytes.data(), bytes.size(), path.string());
}

std::vector<std::uint8_t> serialize_npy(const NdArray& array) {
  array.validate("serialize_npy");
  // The dict exactly as NumPy >= 1.24 writes it: sorted keys, repr() values, trailing ", ",
  // spare spaces so the first axis can grow in place, then padding to a 64-byte boundary.
  std::string shape = "(";
  for (std::size_t i = 0; i < array.shape.size(); ++i) {
    if (i > 0) shape += ", ";
    shape += std::to_string(array.shape[i]);
  }
  shape += array.shape.size() == 1 ? ",)" : ")";
  std::string header =
      std::string("{'descr': '") + numpy_descr(array.dtype) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  if (!array.shape.empty()) header.append(kGrowthAxisMaxDigits - std::to_string(array.shape[0]).size(), ' ');
  // Version 1.0 stores the header length in 16 bits: at most kMaxDims dimensions of at most 19
  // digits keep every header we write far below that.
  const std::size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;
  header.append(kArrayAlign - unpadded % kArrayAlign, ' ');
  header += '\n';
  const std::size_t header_len = header.size();
  if (header_len > 0xffff) SL_THROW(InternalError, "serialize_npy: header of ", header_len, " bytes");

  // magic | version 1.0 | header length (uint16 LE) | header | payload
  std::vector<std::uint8_t> out(kMagicLen + 4 + header_len + array.bytes.size());
  std::memcpy(out.data(), kMagic, kMagicLen);
  out[kMagicLen] = 1;
  out[kMagicLen + 1] = 0;
  out[kMagicLen + 2] = static_cast<std::uint8_t>(header_len & 0xff);
  out[kMagicLen + 3] = static_cast<std::uint8_t>(header_len >> 8);
  std::memcpy(out.data() + kMagicLen + 4, header.data(), header_len);
  if (!array.bytes.empty())
    std::memcpy(out.data() + kMagicLen + 4 + header_len, array.bytes.data(), array.bytes.size());
  return out;
}

void write_npy(const std::filesystem::path& path, const NdArray& array) {
  array.validate(path.string());
  const std::vector<std::uint8_t> bytes = serialize_npy(array);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace stablelearn::io
