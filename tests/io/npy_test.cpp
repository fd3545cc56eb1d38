// Tests of NdArray and the .npy reader/writer against hand-assembled bytes, the Python-written
// fixtures in tests/fixtures/io (make_fixtures.py) and the NumPy-written files shipped in data/.
#include "stablelearn/io/npy.h"

#include <cmath>
#include <limits>

#include "io_testing.h"
#include "testing.h"

namespace stablelearn::io {
namespace {

using namespace std::string_literals;
using stablelearn::testing::Bytes;
using stablelearn::testing::expect_error;
using stablelearn::testing::le16;
using stablelearn::testing::le32;
using stablelearn::testing::raw;

/// A .npy file assembled by hand: magic, version major.0, header length (16-bit LE for 1.0,
/// 32-bit otherwise), `dict` padded with spaces and '\n' to a 64-byte boundary, then `payload`.
std::string npy_file(const std::string& dict, const std::string& payload, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  header += std::string((64 - (prefix + header.size() + 1) % 64) % 64, ' ') + "\n";
  return "\x93NUMPY"s + char(major) + '\0' + (major == 1 ? le16(header.size()) : le32(header.size())) + header +
         payload;
}

NdArray parse(const std::string& s, const std::string& source = "hand.npy") {
  return parse_npy(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), source);
}

std::string f8_dict(const std::string& shape) {
  return "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
}

// ---------------------------------------------------------------------------------------------
// NdArray

TEST(NdArray, DtypeTables) {
  EXPECT_EQ(item_size(DType::Float32), 4u);
  EXPECT_EQ(item_size(DType::Float64), 8u);
  EXPECT_EQ(item_size(DType::Int32), 4u);
  EXPECT_EQ(item_size(DType::Int64), 8u);
  EXPECT_EQ(item_size(DType::UInt8), 1u);
  EXPECT_EQ(item_size(DType::Bool), 1u);
  EXPECT_STREQ(dtype_name(DType::Float64), "float64");
  EXPECT_STREQ(dtype_name(DType::Bool), "bool");
  EXPECT_STREQ(numpy_descr(DType::Float32), "<f4");
  EXPECT_STREQ(numpy_descr(DType::Int64), "<i8");
  EXPECT_STREQ(numpy_descr(DType::UInt8), "|u1");
  EXPECT_STREQ(numpy_descr(DType::Bool), "|b1");
}

TEST(NdArray, NumelAndShapeString) {
  NdArray a;
  EXPECT_EQ(a.numel(), 1);  // scalar
  EXPECT_EQ(a.shape_str(), "[]");
  a.shape = {7, 1000, 2};
  EXPECT_EQ(a.numel(), 14000);
  EXPECT_EQ(a.ndim(), 3);
  EXPECT_EQ(a.shape_str(), "[7, 1000, 2]");
  a.shape = {std::int64_t(1) << 62, std::int64_t(1) << 62, 0};
  EXPECT_EQ(a.numel(), 0);  // an empty dimension wins over the overflowing product
  a.shape = {std::int64_t(1) << 62, 4};
  expect_error<ShapeError>([&] { (void)a.numel(); }, {"overflows"});
  a.shape = {3, -1};
  expect_error<ShapeError>([&] { (void)a.numel(); }, {"negative dimension -1"});
}

TEST(NdArray, FromAndToDouble) {
  const NdArray f = NdArray::from_double(DType::Float32, {2}, {1.5, -1e39});
  EXPECT_EQ(f.bytes.size(), 8u);
  const auto fv = f.to_double();
  EXPECT_EQ(fv[0], 1.5);
  EXPECT_TRUE(std::isinf(fv[1]) && fv[1] < 0);
  const NdArray i = NdArray::from_double(DType::Int32, {3}, {-2.7, 0, 2147483647});
  EXPECT_EQ(i.bytes, (Bytes{0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}));
  EXPECT_EQ(NdArray::from_double(DType::Bool, {3}, {0, 2, -0.5}).bytes, (Bytes{0, 1, 1}));
  EXPECT_EQ(NdArray::from_double(DType::UInt8, {2}, {255, 0.9}).to_double(), (std::vector<double>{255, 0}));
  const NdArray l = NdArray::from_double(DType::Int64, {1}, {-9007199254740992.0});
  EXPECT_EQ(l.to_double()[0], -9007199254740992.0);
  expect_error([&] { NdArray::from_double(DType::UInt8, {1}, {256}); }, {"does not fit uint8"});
  expect_error([&] { NdArray::from_double(DType::Int32, {1}, {2147483648.0}); }, {"does not fit int32"});
  expect_error([&] { NdArray::from_double(DType::Int64, {1}, {9223372036854775808.0}); }, {"int64"});
  expect_error([&] { NdArray::from_double(DType::Int64, {1}, {std::nan("")}); }, {"int64"});
  expect_error<ShapeError>([&] { NdArray::from_double(DType::Float64, {2, 2}, {1, 2, 3}); }, {"3 values", "[2, 2]"});
}

TEST(NdArray, ValidateChecksByteCount) {
  NdArray a = NdArray::from_double(DType::Float64, {2, 3}, std::vector<double>(6, 1.0));
  a.validate("x");
  a.bytes.pop_back();
  expect_error<ShapeError>([&] { a.validate("thing.npy"); }, {"thing.npy", "47 bytes", "[2, 3] float64 needs 48"});
  expect_error<ShapeError>([&] { (void)a.to_double(); }, {"47 bytes"});
}

TEST(NdArray, FortranToCOrder) {
  // 2 x 3 matrix [[1,2,3],[4,5,6]] stored column-major: 1 4 2 5 3 6.
  NdArray m = NdArray::from_double(DType::Int32, {2, 3}, {1, 4, 2, 5, 3, 6});
  convert_fortran_to_c_order(m);
  EXPECT_EQ(m.to_double(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // 3-d: Fortran linear index = i + 2 j + 6 k holds value 100 i + 10 j + k.
  std::vector<double> f(2 * 3 * 4);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) f[i + 2 * j + 6 * k] = 100 * i + 10 * j + k;
  NdArray t = NdArray::from_double(DType::Float64, {2, 3, 4}, f);
  convert_fortran_to_c_order(t);
  const auto c = t.to_double();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(c[(i * 3 + j) * 4 + k], 100 * i + 10 * j + k);
}

// ---------------------------------------------------------------------------------------------
// Reading hand-written bytes

TEST(NpyRead, FullyLiteralVersion1File) {
  // Every byte written out: 10-byte prefix, 118-byte header (ends at byte 128), 3 doubles.
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  const std::string file = "\x93NUMPY\x01\x00\x76\x00"s + dict + std::string(128 - 10 - dict.size() - 1, ' ') + "\n" +
                           "\x00\x00\x00\x00\x00\x00\xf0\x3f"s +  // 1.0
                           "\x00\x00\x00\x00\x00\x00\x04\xc0"s +  // -2.5
                           "\x00\x00\x00\x00\x00\x00\x0a\x40"s;   // 3.25
  ASSERT_EQ(file.size(), 128u + 24u);
  const NdArray a = parse(file);
  EXPECT_EQ(a.dtype, DType::Float64);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(a.to_double(), (std::vector<double>{1.0, -2.5, 3.25}));
}

TEST(NpyRead, EveryDtypeLittleEndian) {
  const NdArray f4 = parse(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                                    "\x00\x00\xc0\x3f\x00\x00\x80\xbf"s));  // 1.5, -1
  EXPECT_EQ(f4.dtype, DType::Float32);
  EXPECT_EQ(f4.to_double(), (std::vector<double>{1.5, -1.0}));
  const NdArray i4 = parse(npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                                    "\xff\xff\xff\xff\x00\x01\x00\x00"s));  // -1, 256
  EXPECT_EQ(i4.dtype, DType::Int32);
  EXPECT_EQ(i4.to_double(), (std::vector<double>{-1, 256}));
  const NdArray i8 = parse(npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                                    "\x00\x00\x00\x00\x00\x01\x00\x00"s));  // 2^40
  EXPECT_EQ(i8.dtype, DType::Int64);
  EXPECT_EQ(i8.to_double(), (std::vector<double>{1099511627776.0}));
  const NdArray u1 = parse(npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", "\x00\x7f\xff"s));
  EXPECT_EQ(u1.dtype, DType::UInt8);
  EXPECT_EQ(u1.bytes, (Bytes{0, 127, 255}));
  const NdArray b1 = parse(npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", "\x01\x00\x02"s));
  EXPECT_EQ(b1.dtype, DType::Bool);
  EXPECT_EQ(b1.bytes, (Bytes{1, 0, 1}));  // normalised to 0/1
}

TEST(NpyRead, BigEndianIsByteSwapped) {
  EXPECT_EQ(
      parse(npy_file("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", "\x3f\xf0\x00\x00\x00\x00\x00\x00"s))
          .to_double(),
      (std::vector<double>{1.0}));
  EXPECT_EQ(
      parse(npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "\xc0\x20\x00\x00"s)).to_double(),
      (std::vector<double>{-2.5}));
  EXPECT_EQ(
      parse(npy_file("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", "\x00\x00\x01\x02"s)).to_double(),
      (std::vector<double>{258}));
  const NdArray i8 =
      parse(npy_file("{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", "\xff\xff\xff\xff\xff\xff\xff\xfe"s));
  EXPECT_EQ(i8.to_double(), (std::vector<double>{-2}));
  EXPECT_EQ(i8.bytes, (Bytes{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));  // stored little-endian
}

TEST(NpyRead, FortranOrderConvertedToC) {
  // [[1, 2, 3], [4, 5, 6]] column-major as int32.
  const NdArray a = parse(npy_file("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                                   raw(std::vector<std::int32_t>{1, 4, 2, 5, 3, 6})));
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.to_double(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

TEST(NpyRead, Versions2And3) {
  const NdArray v2 = parse(npy_file(f8_dict("(2,)"), raw(std::vector<double>{1, 2}), 2));
  EXPECT_EQ(v2.to_double(), (std::vector<double>{1, 2}));
  const NdArray v3 = parse(npy_file(f8_dict("(1,)"), raw(std::vector<double>{7}), 3));
  EXPECT_EQ(v3.to_double(), (std::vector<double>{7}));
}

TEST(NpyRead, HeaderDictSyntaxVariants) {
  const std::string one = raw(std::vector<double>{4.0});
  const char* dicts[] = {
      "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",           // NumPy's own form
      "{'shape': (1,), 'descr': '<f8', 'fortran_order': False}",             // keys reordered, no trailing comma
      "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (1,)}",     // double quotes
      "  {  'descr'  :'<f8' ,'fortran_order':False,'shape':( 1 , ) ,  }  ",  // spacing everywhere
      "{'descr': '<f8',\t'fortran_order': False,\n'shape': (1L,), }",        // tab, newline, Python 2 long
  };
  for (const char* d : dicts) {
    SCOPED_TRACE(d);
    const NdArray a = parse(npy_file(d, one));
    EXPECT_EQ(a.shape, (std::vector<std::int64_t>{1}));
    EXPECT_EQ(a.to_double(), (std::vector<double>{4.0}));
  }
}

TEST(NpyRead, ShapesScalarEmptyAndMultiDim) {
  const NdArray s = parse(npy_file(f8_dict("()"), raw(std::vector<double>{2.5})));
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.to_double(), (std::vector<double>{2.5}));
  const NdArray e = parse(npy_file(f8_dict("(0, 3)"), ""));
  EXPECT_EQ(e.shape, (std::vector<std::int64_t>{0, 3}));
  EXPECT_EQ(e.numel(), 0);
  std::vector<double> v(7 * 10 * 2);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5;
  const NdArray m = parse(npy_file(f8_dict("(7, 10, 2)"), raw(v)));
  EXPECT_EQ(m.shape_str(), "[7, 10, 2]");
  EXPECT_EQ(m.to_double(), v);
}

// ---------------------------------------------------------------------------------------------
// Rejections

TEST(NpyReject, BadMagicAndVersion) {
  const std::string good = npy_file(f8_dict("(1,)"), raw(std::vector<double>{1}));
  std::string bad = good;
  bad[1] = 'X';
  expect_error([&] { parse(bad, "m.npy"); }, {"m.npy", "bad magic", "\\x93NUMPY"});
  expect_error([&] { parse("PK\x03\x04 not numpy at all", "zip.npy"); }, {"zip.npy", "bad magic"});
  for (const auto& [major, minor] : {std::pair{4, 0}, std::pair{1, 1}, std::pair{0, 0}}) {
    std::string v = good;
    v[6] = char(major);
    v[7] = char(minor);
    expect_error([&] { parse(v, "v.npy"); },
                 {"v.npy", "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor),
                  "1.0, 2.0, 3.0"});
  }
}

TEST(NpyReject, HeaderLengthBeyondFile) {
  std::string f = npy_file(f8_dict("(1,)"), "");
  f[8] = '\xff';
  f[9] = '\x7f';
  expect_error([&] { parse(f, "len.npy"); }, {"len.npy", "header length 32767", "beyond the end of the file"});
  std::string v2 = npy_file(f8_dict("(1,)"), "", 2);
  v2[11] = '\x80';  // 2 GiB header
  expect_error([&] { parse(v2, "len2.npy"); }, {"len2.npy", "beyond the end of the file"});
}

TEST(NpyReject, MissingUnknownAndDuplicateKeys) {
  const std::string one = raw(std::vector<double>{1});
  expect_error([&] { parse(npy_file("{'descr': '<f8', 'shape': (1,), }", one), "k.npy"); },
               {"k.npy", "lacks key 'fortran_order'"});
  expect_error([&] { parse(npy_file("{'descr': '<f8', 'fortran_order': False}", one), "k.npy"); },
               {"lacks key 'shape'"});
  expect_error([&] { parse(npy_file("{}", one), "k.npy"); }, {"lacks key 'descr'"});
  expect_error(
      [&] { parse(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}", one), "k.npy"); },
      {"unknown key 'extra'"});
  expect_error(
      [&] { parse(npy_file("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}", one), "k.npy"); },
      {"key 'descr' twice"});
}

TEST(NpyReject, UnknownDescr) {
  for (const char* descr : {"<c16", "<f2", "|O", "<U5", "<u4", "|i1", "f8", "|f8", "=f8", "<f8 ", "<b1x"}) {
    SCOPED_TRACE(descr);
    expect_error(
        [&] {
          parse(npy_file(std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (1,), }", "\0"s),
                "d.npy");
        },
        {"d.npy", "unsupported descr '" + std::string(descr) + "'", "'<f8'"});
  }
  expect_error(
      [&] { parse(npy_file("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (1,), }", ""), "s.npy"); },
      {"s.npy", "unsupported descr", "structured"});
}

TEST(NpyReject, BadShapes) {
  expect_error([&] { parse(npy_file(f8_dict("(-1, 2)"), ""), "s.npy"); },
               {"s.npy", "'shape' entry 0 is negative (-1)"});
  expect_error([&] { parse(npy_file(f8_dict("(4611686018427387904, 4611686018427387904)"), ""), "s.npy"); },
               {"s.npy", "too large", "overflows"});
  expect_error([&] { parse(npy_file(f8_dict("(2305843009213693952,)"), ""), "s.npy"); }, {"too large"});  // 2^61 * 8
  // An empty dimension does not excuse the others (NumPy: "array is too big").
  expect_error([&] { parse(npy_file(f8_dict("(0, 4611686018427387904, 4)"), ""), "s.npy"); }, {"too large"});
  expect_error([&] { parse(npy_file(f8_dict("(99999999999999999999,)"), ""), "s.npy"); },
               {"s.npy", "does not fit in int64"});
  expect_error([&] { parse(npy_file(f8_dict("(5)"), ""), "s.npy"); }, {"'shape' is an integer", "tuple"});
  expect_error([&] { parse(npy_file(f8_dict("[5]"), ""), "s.npy"); }, {"'shape' is a list"});
  expect_error([&] { parse(npy_file(f8_dict("(2, 'a')"), ""), "s.npy"); }, {"'shape' entry 1 is a string"});
  expect_error([&] { parse(npy_file("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }", ""), "s.npy"); },
               {"'fortran_order' is an integer", "True or False"});
  std::string dims = "(";
  for (int i = 0; i < 65; ++i) dims += "1,";
  expect_error([&] { parse(npy_file(f8_dict(dims + ")"), raw(std::vector<double>{1})), "s.npy"); },
               {"65 dimensions", "at most 64"});
}

TEST(NpyReject, MalformedDict) {
  const char* bad[] = {
      "'descr': '<f8'",                                                    // no braces
      "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",            // unclosed
      "{'descr: '<f8', 'fortran_order': False, 'shape': (1,)}",            // unbalanced quote
      "{'descr' '<f8', 'fortran_order': False, 'shape': (1,)}",            // missing colon
      "{'descr': '<f8' 'fortran_order': False, 'shape': (1,)}",            // missing comma
      "{'descr': '<f8', 'fortran_order': Nope, 'shape': (1,)}",            // unknown word
      "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} trailing",  // text after dict
      "{'descr': '<f8', 'fortran_order': False, 'shape': (1.5,)}",         // float dimension
      "{'descr': '<f8', 'fortran_order': False, 'shape': (,)}",            // empty element
      "{descr: '<f8'}",                                                    // unquoted key
      "{'descr': '<f8', 'fortran_order': False, 'shape': ((((((((((((((((((1,),),),),),),),),),),),),),),),),),),)}",
  };
  for (const char* d : bad) {
    SCOPED_TRACE(d);
    expect_error([&] { parse(npy_file(d, raw(std::vector<double>{1})), "bad.npy"); },
                 {"bad.npy", "malformed .npy header"});
  }
}

TEST(NpyReject, LyingShapeTruncatedOrExtraPayload) {
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (7, 1000, 2), }";
  expect_error([&] { parse(npy_file(dict, std::string(5000, '\0')), "data/x.npy"); },
               {"data/x.npy: truncated payload: header says shape [7, 1000, 2] float64 = 112000 bytes, file has 5000"});
  expect_error([&] { parse(npy_file(f8_dict("(2,)"), std::string(17, '\0')), "x.npy"); },
               {"x.npy", "1 extra bytes after the payload", "= 16 bytes, file has 17"});
}

TEST(NpyReject, EveryPrefixOfSmallFilesFails) {
  for (const char* name : {"c_f8_2x3.npy", "fortran_be_f4_2x3x2.npy", "v2_i8.npy", "v3_u1.npy", "scalar_b1.npy"}) {
    const Bytes bytes = testing::file_bytes(testing::fixtures() / "io" / name);
    ASSERT_GT(bytes.size(), 100u) << name;
    testing::expect_every_prefix_fails(bytes,
                                       [&](const std::uint8_t* d, std::size_t n) { return parse_npy(d, n, name); });
  }
}

TEST(NpyReject, SingleByteCorruptionsNeverEscapeAsOtherErrors) {
  const Bytes bytes = testing::file_bytes(testing::fixtures() / "io" / "fortran_be_f4_2x3x2.npy");
  for (const std::uint8_t mask : {0x01, 0x20, 0x80, 0xff}) {
    const std::size_t rejected = testing::corrupt_every_byte(
        bytes, mask, [](const std::uint8_t* d, std::size_t n) { return parse_npy(d, n, "c.npy"); });
    EXPECT_GT(rejected, 10u);  // the magic bytes alone give 8 rejections per mask
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures written by Python (tests/fixtures/io/make_fixtures.py) and files written by NumPy

TEST(NpyFixtures, PythonWrittenFiles) {
  const auto dir = testing::fixtures() / "io";
  const NdArray c = read_npy(dir / "c_f8_2x3.npy");
  EXPECT_EQ(c.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(c.to_double(), (std::vector<double>{0.5, -1.25, 2.0, 3.5, -4.0, 1e300}));

  const NdArray f = read_npy(dir / "fortran_be_f4_2x3x2.npy");
  EXPECT_EQ(f.dtype, DType::Float32);
  EXPECT_EQ(f.shape, (std::vector<std::int64_t>{2, 3, 2}));
  const auto fv = f.to_double();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) EXPECT_EQ(fv[(i * 3 + j) * 2 + k], 100 * i + 10 * j + k);

  const NdArray v2 = read_npy(dir / "v2_i8.npy");
  EXPECT_EQ(v2.dtype, DType::Int64);
  std::vector<std::int64_t> i8(4);
  std::memcpy(i8.data(), v2.bytes.data(), 32);
  EXPECT_EQ(i8,
            (std::vector<std::int64_t>{-1, 0, std::int64_t(1) << 40, std::numeric_limits<std::int64_t>::min() + 1}));

  const NdArray v3 = read_npy(dir / "v3_u1.npy");
  EXPECT_EQ(v3.dtype, DType::UInt8);
  EXPECT_EQ(v3.bytes, (Bytes{0, 1, 127, 128, 255}));

  const NdArray b = read_npy(dir / "scalar_b1.npy");
  EXPECT_EQ(b.dtype, DType::Bool);
  EXPECT_TRUE(b.shape.empty());
  EXPECT_EQ(b.bytes, (Bytes{1}));

  EXPECT_EQ(read_npy(dir / "be_i4.npy").to_double(), (std::vector<double>{-2, 65536, 2147483647}));
}

TEST(NpyFixtures, NumpyWrittenRoboTasks) {
  const auto path = testing::project_data() / "robottasks" / "pos_ori" / "openbox.npy";
  const NdArray a = read_npy(path);
  EXPECT_EQ(a.dtype, DType::Float64);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{9, 1000, 7}));
  const auto v = a.to_double();
  // Spec (clfd-snode §1.5): columns px py pz qw qx qy qz with unit quaternions (norm 1 +- 2e-16),
  // and all 9 demonstrations end at exactly the same position.
  for (std::size_t row = 0; row < 9 * 1000; ++row) {
    const double* q = &v[row * 7 + 3];
    ASSERT_NEAR(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3], 1.0, 1e-12) << "row " << row;
  }
  for (int d = 1; d < 9; ++d)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(v[(d * 1000 + 999) * 7 + c], v[999 * 7 + c]) << "demo " << d;
  // The writer reproduces NumPy's bytes exactly (header layout, padding, payload).
  EXPECT_EQ(serialize_npy(a), testing::file_bytes(path));
}

TEST(NpyFixtures, NumpyWrittenHelloWorld) {
  for (const char* letter : {"h", "e", "l", "o", "w", "r", "d"}) {
    const auto path =
        testing::project_data() / "robot_hello_world" / "processed_demos" / (std::string(letter) + ".npy");
    const NdArray a = read_npy(path);
    EXPECT_EQ(a.shape, (std::vector<std::int64_t>{8, 1000, 2})) << letter;
    const auto v = a.to_double();
    // Spec §1.4: values in cm within about 33..46 (x) and -10..9 (y); all demos end at the same
    // point (up to the rounding of the translation that put them there).
    for (std::size_t i = 0; i < v.size(); i += 2) {
      ASSERT_TRUE(v[i] > 30 && v[i] < 50 && v[i + 1] > -12 && v[i + 1] < 11) << letter << " element " << i;
    }
    for (int d = 1; d < 8; ++d) {
      EXPECT_NEAR(v[(d * 1000 + 999) * 2], v[999 * 2], 1e-12) << letter;
      EXPECT_NEAR(v[(d * 1000 + 999) * 2 + 1], v[999 * 2 + 1], 1e-12) << letter;
    }
    EXPECT_EQ(serialize_npy(a), testing::file_bytes(path)) << letter;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(NpyWrite, HeaderLayoutMatchesNumpy) {
  const Bytes b = serialize_npy(NdArray::from_double(DType::Float32, {3}, {1, 2, 3}));
  const std::string s(b.begin(), b.end());
  ASSERT_EQ(s.size() % 64, 12u);  // 64-byte aligned header + 12 payload bytes
  EXPECT_EQ(s.substr(0, 8), "\x93NUMPY\x01\x00"s);
  EXPECT_EQ(std::size_t(std::uint8_t(s[8])) + 256 * std::uint8_t(s[9]), s.size() - 12 - 10);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  EXPECT_EQ(s.substr(10, dict.size()), dict);
  EXPECT_EQ(s.find_first_not_of(' ', 10 + dict.size()), s.size() - 13);  // spaces up to the '\n'

  EXPECT_EQ(s[s.size() - 13], '\n');
  EXPECT_EQ(s.substr(s.size() - 12), "\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40"s);
}

TEST(NpyWrite, RoundTripsEveryDtypeAndShape) {
  const auto dir = testing::temp_dir("npy_roundtrip");
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {0}, {5}, {2, 3}, {0, 4}, {2, 1, 3, 2}};
  int k = 0;
  for (const DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::Bool}) {
    for (const auto& shape : shapes) {
      NdArray probe;
      probe.shape = shape;
      std::vector<double> v(static_cast<std::size_t>(probe.numel()));
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = t == DType::Bool ? double(i % 2) : double(i * 7 % 13) - (t == DType::UInt8 ? 0 : 5);
      const NdArray a = NdArray::from_double(t, shape, v);
      const auto path = dir / ("a" + std::to_string(k++) + ".npy");
      write_npy(path, a);
      const NdArray b = read_npy(path);
      EXPECT_EQ(b.dtype, a.dtype);
      EXPECT_EQ(b.shape, a.shape);
      EXPECT_EQ(b.bytes, a.bytes);
    }
  }
  // Only the .npy files remain: the atomic writer leaves no temporary files behind.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(e.path().extension(), ".npy") << e.path();
    ++files;
  }
  EXPECT_EQ(files, static_cast<std::size_t>(k));
  std::filesystem::remove_all(dir);
}

TEST(NpyWrite, OverwritesAndCreatesFolders) {
  const auto dir = testing::temp_dir("npy_write");
  const auto path = dir / "nested" / "deeper" / "x.npy";
  write_npy(path, NdArray::from_double(DType::Float64, {1}, {1}));
  write_npy(path, NdArray::from_double(DType::Float64, {2}, {3, 4}));
  EXPECT_EQ(read_npy(path).to_double(), (std::vector<double>{3, 4}));
  std::filesystem::remove_all(dir);
}

TEST(NpyWrite, RejectsInconsistentArrayAndUnwritablePath) {
  NdArray bad;
  bad.dtype = DType::Float64;
  bad.shape = {3};
  bad.bytes.resize(16);
  expect_error<ShapeError>([&] { serialize_npy(bad); }, {"16 bytes", "[3] float64 needs 24"});
  const auto dir = testing::temp_dir("npy_bad");
  expect_error<ShapeError>([&] { write_npy(dir / "bad.npy", bad); }, {"bad.npy"});
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.npy"));
  expect_error<IoError>(
      [&] { write_npy("/proc/stablelearn_cannot_write/x.npy", NdArray::from_double(DType::Float64, {1}, {1})); },
      {"/proc/stablelearn_cannot_write"});
  std::filesystem::remove_all(dir);
}

TEST(NpyRead, MissingFileIsIoError) {
  expect_error<IoError>([] { read_npy("/nonexistent/stablelearn/x.npy"); }, {"/nonexistent/stablelearn/x.npy"});
}

}  // namespace
}  // namespace stablelearn::io
