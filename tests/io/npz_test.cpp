// Tests of the .npz reader/writer: zip archives assembled byte by byte in the test (zlib only for
// crc32 and raw deflate), Python-written fixtures, the NumPy-written LASA archives (deflated
// lasa_numpy, stored lasa_numpy_32D) checked against facts from shared/specs/clfd-snode.md, and
// corrupt/truncated archives.
#include "stablelearn/io/npz.h"

#include <zlib.h>

#include <cmath>
#include <fstream>

#include "io_testing.h"
#include "stablelearn/io/npy.h"
#include "testing.h"

namespace stablelearn::io {
namespace {

using namespace std::string_literals;
using stablelearn::testing::Bytes;
using stablelearn::testing::expect_error;
using stablelearn::testing::le16;
using stablelearn::testing::le32;

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

std::uint32_t crc_of(const std::string& s) {
  return static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

/// Raw deflate (no zlib/gzip wrapper), as zip method 8 stores it.
std::string raw_deflate(const std::string& s) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, s.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  zs.avail_in = static_cast<uInt>(s.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// One member of a hand-made zip; crc and size default to the true values of `data`.
struct HandMember {
  std::string name;
  std::string data;  ///< uncompressed content
  bool deflate = false;
  std::int64_t crc = -1;
  std::int64_t size = -1;
};

/// A zip archive assembled byte by byte: local headers + data, central directory, end record
/// (PKWARE APPNOTE 4.3; no zip64, timestamps 1980-01-01 00:00).
std::string make_zip(const std::vector<HandMember>& members) {
  std::string local, central;
  for (const auto& m : members) {
    const std::string body = m.deflate ? raw_deflate(m.data) : m.data;
    const std::uint32_t crc = m.crc >= 0 ? std::uint32_t(m.crc) : crc_of(m.data);
    const std::uint32_t size = m.size >= 0 ? std::uint32_t(m.size) : std::uint32_t(m.data.size());
    const std::string common = le16(20) + le16(0) + le16(m.deflate ? 8 : 0) + le16(0) + le16(0x21) + le32(crc) +
                               le32(body.size()) + le32(size) + le16(m.name.size()) + le16(0);
    const std::size_t offset = local.size();
    local += "PK\x03\x04"s + common + m.name + body;
    central += "PK\x01\x02"s + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + m.name;
  }
  return local + central + "PK\x05\x06"s + le16(0) + le16(0) + le16(members.size()) + le16(members.size()) +
         le32(central.size()) + le32(local.size()) + le16(0);
}

std::map<std::string, NdArray> parse(const std::string& s, const std::string& source = "hand.npz") {
  return parse_npz(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), source);
}

std::string fixture(const char* name) { return as_string(testing::file_bytes(testing::fixtures() / "io" / name)); }

// ---------------------------------------------------------------------------------------------
// Hand-made archives

TEST(NpzRead, HandMadeStoredAndDeflatedArchives) {
  const std::string npy = fixture("c_f8_2x3.npy");
  for (const bool deflate : {false, true}) {
    SCOPED_TRACE(deflate);
    const auto m = parse(make_zip({{"x.npy", npy, deflate}, {"dir/y.npy", fixture("be_i4.npy"), deflate}}));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.at("x").shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(m.at("x").to_double(), (std::vector<double>{0.5, -1.25, 2.0, 3.5, -4.0, 1e300}));
    EXPECT_EQ(m.at("dir/y").to_double(), (std::vector<double>{-2, 65536, 2147483647}));
  }
}

TEST(NpzRead, EmptyArchiveHasNoMembers) {
  const std::string eocd = "PK\x05\x06"s + std::string(18, '\0');
  EXPECT_TRUE(parse(eocd).empty());
  EXPECT_EQ(as_string(serialize_npz({})), eocd);
}

TEST(NpzReject, BadCrc) {
  const std::string npy = fixture("c_f8_2x3.npy");
  for (const bool deflate : {false, true}) {
    const std::string zip = make_zip({{"pos.npy", npy, deflate, crc_of(npy) ^ 0x1}});
    expect_error([&] { parse(zip, "crc.npz"); }, {"crc.npz:pos", "CRC-32 mismatch"});
  }
}

TEST(NpzReject, CorruptStoredPayloadFailsCrc) {
  // Flip one payload byte of a member in an archive our writer made: still a valid .npy, but
  // the CRC no longer matches.
  Bytes zip = serialize_npz({{"pos", NdArray::from_double(DType::Float64, {4}, {1, 2, 3, 4})}}, false);
  const std::string s = as_string(zip);
  const std::size_t npy_at = s.find("\x93NUMPY");
  ASSERT_NE(npy_at, std::string::npos);
  zip[npy_at + 128 + 3] ^= 0x10;  // inside the payload (the header is 128 bytes)
  expect_error([&] { parse_npz(zip.data(), zip.size(), "flip.npz"); }, {"flip.npz:pos", "CRC-32 mismatch"});
}

TEST(NpzReject, CorruptDeflateStream) {
  std::string zip = make_zip({{"a.npy", fixture("c_f8_2x3.npy"), true}});
  for (std::size_t i = 40; i < 60; ++i) zip[i] = '\xff';  // inside the compressed data
  expect_error([&] { parse(zip, "z.npz"); }, {"z.npz:a"});
}

TEST(NpzReject, DeclaredSizeLiesOrExceedsLimit) {
  const std::string npy = fixture("c_f8_2x3.npy");
  for (const bool deflate : {false, true}) {
    SCOPED_TRACE(deflate);
    expect_error(
        [&] {
          parse(make_zip({{"a.npy", npy, deflate, -1, std::int64_t(npy.size()) + 10}}), "s.npz");
        },
        {"s.npz"});
    expect_error(
        [&] {
          parse(make_zip({{"a.npy", npy, deflate, -1, std::int64_t(npy.size()) - 10}}), "s.npz");
        },
        {"s.npz"});
  }
  expect_error(
      [&] {
        parse(make_zip({{"a.npy", npy, true, -1, 0xC0000000LL}}), "big.npz");
      },
      {"big.npz:a", "3221225472 bytes uncompressed", "limit"});
}

TEST(NpzReject, MembersThatAreNotNpy) {
  expect_error(
      [&] {
        parse(make_zip({{"readme.txt", "hello"}}), "t.npz");
      },
      {"t.npz", "member 'readme.txt' is not a .npy file"});
  expect_error([&] { parse(make_zip({{".npy", fixture("c_f8_2x3.npy")}}), "t.npz"); }, {"member '.npy'"});
  expect_error([&] { parse(make_zip({{"g.npy", "garbage, not numpy"}}), "t.npz"); }, {"t.npz:g", "bad magic"});
  std::string npy = fixture("c_f8_2x3.npy");
  npy.pop_back();
  expect_error([&] { parse(make_zip({{"short.npy", npy, true}}), "t.npz"); }, {"t.npz:short", "truncated payload"});
}

TEST(NpzReject, DuplicateMemberNames) {
  const std::string npy = fixture("c_f8_2x3.npy");
  expect_error([&] { parse(make_zip({{"a.npy", npy}, {"a.npy", npy}}), "dup.npz"); }, {"dup.npz"});
}

TEST(NpzReject, NotAZipArchive) {
  expect_error([&] { parse("", "empty.npz"); }, {"empty.npz", "empty file"});
  expect_error([&] { parse("this is not a zip archive at all, just some text", "text.npz"); },
               {"text.npz", "not a valid .npz (zip) archive"});
  expect_error([&] { parse(fixture("c_f8_2x3.npy"), "npy.npz"); }, {"npy.npz", "not a valid .npz"});
  expect_error<IoError>([] { read_npz("/nonexistent/stablelearn/x.npz"); }, {"/nonexistent/stablelearn/x.npz"});
}

TEST(NpzReject, EveryPrefixOfSmallArchivesFails) {
  for (const char* name : {"stored.npz", "deflated.npz"}) {
    const Bytes bytes = testing::file_bytes(testing::fixtures() / "io" / name);
    ASSERT_GT(bytes.size(), 300u);
    testing::expect_every_prefix_fails(bytes,
                                       [&](const std::uint8_t* d, std::size_t n) { return parse_npz(d, n, name); });
  }
}

TEST(NpzReject, SingleByteCorruptionsNeverEscapeAsOtherErrors) {
  for (const char* name : {"stored.npz", "deflated.npz"}) {
    const Bytes bytes = testing::file_bytes(testing::fixtures() / "io" / name);
    for (const std::uint8_t mask : {0x01, 0x80, 0xff}) {
      const std::size_t rejected = testing::corrupt_every_byte(
          bytes, mask, [&](const std::uint8_t* d, std::size_t n) { return parse_npz(d, n, name); });
      EXPECT_GT(rejected, bytes.size() / 2) << name;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Python- and NumPy-written archives

TEST(NpzFixtures, PythonWrittenStoredAndDeflated) {
  for (const char* name : {"stored.npz", "deflated.npz"}) {
    const auto m = read_npz(testing::fixtures() / "io" / name);
    ASSERT_EQ(m.size(), 2u) << name;
    EXPECT_EQ(m.at("a").to_double(), (std::vector<double>{0.5, -1.25, 2.0, 3.5, -4.0, 1e300}));
    EXPECT_EQ(m.at("b").dtype, DType::Int32);
    EXPECT_EQ(m.at("b").to_double(), (std::vector<double>{-2, 65536, 2147483647}));
  }
}

TEST(NpzFixtures, LasaAngleMatchesSpecFacts) {
  const auto m = read_npz(testing::project_data() / "LASA" / "lasa_numpy" / "task_x0_y0.npz");
  ASSERT_EQ(m.size(), 2u);
  const NdArray& pos = m.at("pos");
  const NdArray& t = m.at("t");
  EXPECT_EQ(pos.dtype, DType::Float64);
  EXPECT_EQ(pos.shape, (std::vector<std::int64_t>{7, 1000, 2}));
  EXPECT_EQ(t.shape, (std::vector<std::int64_t>{7, 1000}));
  const auto p = pos.to_double();
  // Spec §1.2: per-dimension mean over all 7 x 1000 points and population std.
  double mean[2] = {0, 0}, var[2] = {0, 0};
  for (std::size_t i = 0; i < 7000; ++i)
    for (int d = 0; d < 2; ++d) mean[d] += p[i * 2 + d] / 7000;
  for (std::size_t i = 0; i < 7000; ++i)
    for (int d = 0; d < 2; ++d) var[d] += (p[i * 2 + d] - mean[d]) * (p[i * 2 + d] - mean[d]) / 7000;
  EXPECT_NEAR(mean[0], -21.075751, 1e-6);
  EXPECT_NEAR(mean[1], 19.735880, 1e-6);
  EXPECT_NEAR(std::sqrt(var[0]), 15.022744, 1e-6);
  EXPECT_NEAR(std::sqrt(var[1]), 13.635629, 1e-6);
  // Demo 0: t from 0 to 2.4515 s in uniform steps of about 0.0024539 s.
  const auto tv = t.to_double();
  EXPECT_EQ(tv[0], 0.0);
  EXPECT_NEAR(tv[999], 2.4515, 1e-4);
  EXPECT_NEAR(tv[1] - tv[0], 0.0024539, 1e-7);
}

TEST(NpzFixtures, EveryLasa2DTaskEndsAtTheOrigin) {
  for (int i = 0; i < 26; ++i) {
    const std::string name = "task_x" + std::to_string(i) + "_y" + std::to_string(i) + ".npz";
    const NdArray pos = read_npz_member(testing::project_data() / "LASA" / "lasa_numpy" / name, "pos");
    ASSERT_EQ(pos.shape, (std::vector<std::int64_t>{7, 1000, 2})) << name;
    const auto p = pos.to_double();
    for (int d = 0; d < 7; ++d) {
      EXPECT_EQ(p[(d * 1000 + 999) * 2], 0.0) << name << " demo " << d;
      EXPECT_EQ(p[(d * 1000 + 999) * 2 + 1], 0.0) << name << " demo " << d;
    }
  }
}

TEST(NpzFixtures, StoredLasa32DIsConcatenationOfDeflated2D) {
  // Spec §1.3 and lasa_numpy_32D/metadata.json: lasa32D_task0 = the 2D positions of these LASA
  // tasks side by side; t = t of the last one.
  const int tasks[16] = {13, 20, 18, 5, 3, 24, 2, 16, 8, 7, 6, 21, 11, 23, 4, 1};
  const auto high = read_npz(testing::shared_data() / "LASA" / "lasa_numpy_32D" / "lasa32D_task0.npz");
  const NdArray& pos32 = high.at("pos");
  ASSERT_EQ(pos32.shape, (std::vector<std::int64_t>{7, 1000, 32}));
  const auto p32 = pos32.to_double();
  for (int k = 0; k < 16; ++k) {
    const std::string name = "task_x" + std::to_string(tasks[k]) + "_y" + std::to_string(tasks[k]) + ".npz";
    const auto low = read_npz(testing::project_data() / "LASA" / "lasa_numpy" / name);
    const auto p2 = low.at("pos").to_double();
    for (std::size_t s = 0; s < 7000; ++s) {
      ASSERT_EQ(p32[s * 32 + 2 * k], p2[s * 2]) << name << " sample " << s;
      ASSERT_EQ(p32[s * 32 + 2 * k + 1], p2[s * 2 + 1]) << name << " sample " << s;
    }
    if (k == 15) {
      EXPECT_EQ(high.at("t").bytes, low.at("t").bytes);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(NpzWrite, RoundTripStoredAndDeflated) {
  const auto dir = testing::temp_dir("npz_write");
  std::map<std::string, NdArray> arrays;
  arrays["pos"] = NdArray::from_double(DType::Float64, {3, 2}, {1, 2, 3, 4, 5, 6});
  arrays["labels"] = NdArray::from_double(DType::UInt8, {4}, {0, 1, 2, 255});
  arrays["mask"] = NdArray::from_double(DType::Bool, {2, 2}, {1, 0, 0, 1});
  arrays["scalar"] = NdArray::from_double(DType::Int64, {}, {-7});
  arrays["empty"] = NdArray::from_double(DType::Float32, {0, 5}, {});
  for (const bool compress : {false, true}) {
    SCOPED_TRACE(compress);
    const auto path = dir / (compress ? "c.npz" : "s.npz");
    write_npz(path, arrays, compress);
    const auto back = read_npz(path);
    ASSERT_EQ(back.size(), arrays.size());
    for (const auto& [name, a] : arrays) {
      EXPECT_EQ(back.at(name).dtype, a.dtype) << name;
      EXPECT_EQ(back.at(name).shape, a.shape) << name;
      EXPECT_EQ(back.at(name).bytes, a.bytes) << name;
      EXPECT_EQ(read_npz_member(path, name).bytes, a.bytes) << name;
    }
    // The first local header (APPNOTE 4.3.7): method at offset 8, name at offset 30. Members
    // are written in name order with the ".npy" suffix.
    const Bytes raw = testing::file_bytes(path);
    EXPECT_EQ(raw[8], compress ? 8 : 0);
    EXPECT_EQ(as_string(Bytes(raw.begin() + 30, raw.begin() + 39)), "empty.npy");
  }
  // Deterministic output; only the two archives remain (no temporary files).
  EXPECT_EQ(serialize_npz(arrays, true), serialize_npz(arrays, true));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 2);
  std::filesystem::remove_all(dir);
}

TEST(NpzWrite, LasaArchiveRoundTripsBitExactly) {
  const auto path = testing::project_data() / "LASA" / "lasa_numpy" / "task_x0_y0.npz";
  const auto original = read_npz(path);
  const auto dir = testing::temp_dir("npz_lasa");
  write_npz(dir / "copy.npz", original);
  const auto copy = read_npz(dir / "copy.npz");
  for (const char* name : {"pos", "t"}) {
    EXPECT_EQ(copy.at(name).shape, original.at(name).shape);
    EXPECT_EQ(copy.at(name).bytes, original.at(name).bytes);
  }
  std::filesystem::remove_all(dir);
}

TEST(NpzWrite, OverwritesAtomicallyAndRejectsBadInput) {
  const auto dir = testing::temp_dir("npz_over");
  const auto path = dir / "a.npz";
  write_npz(path, {{"x", NdArray::from_double(DType::Float64, {1}, {1})}});
  write_npz(path, {{"y", NdArray::from_double(DType::Float64, {1}, {2})}});
  const auto m = read_npz(path);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m.at("y").to_double(), (std::vector<double>{2}));

  NdArray bad;
  bad.shape = {2};
  expect_error<ShapeError>([&] { write_npz(dir / "bad.npz", {{"bad", bad}}); }, {"bad.npz", "member 'bad'"});
  expect_error([&] { write_npz(dir / "bad.npz", {{"", NdArray{}}}); }, {"bad.npz", "empty member name"});
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.npz"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  std::filesystem::remove_all(dir);
}

TEST(NpzRead, MissingMemberListsTheOthers) {
  const auto path = testing::project_data() / "LASA" / "lasa_numpy" / "task_x0_y0.npz";
  expect_error([&] { read_npz_member(path, "vel"); }, {"task_x0_y0.npz", "no member 'vel'", "members: pos, t"});
}

}  // namespace
}  // namespace stablelearn::io
