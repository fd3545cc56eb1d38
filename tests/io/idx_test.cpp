// Tests of the IDX reader/writer and the bounded gunzip: hand-made byte buffers, the
// Python-written fixtures (make_fixtures.py), Debian's Fashion-MNIST files (known class counts and
// pixel statistics), and corrupt, truncated and oversized inputs.
#include "stablelearn/io/idx.h"

#include <zlib.h>

#include <array>
#include <cmath>
#include <numeric>

#include "io_testing.h"
#include "testing.h"

namespace stablelearn::io {
namespace {

using namespace std::string_literals;
using stablelearn::testing::be32;
using stablelearn::testing::Bytes;
using stablelearn::testing::expect_error;
using stablelearn::testing::to_bytes;

NdArray parse(const std::string& s, const std::string& source = "hand.idx") {
  return parse_idx(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), source);
}
NdArray decode(const Bytes& b, const std::string& source = "hand.idx.gz", std::size_t max = kMaxIdxInflatedBytes) {
  return decode_idx(b.data(), b.size(), source, max);
}

/// A gzip member written with zlib directly (level 9), independent of gzip_compress.
Bytes zlib_gzip(const std::string& s) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + 15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, s.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  zs.avail_in = static_cast<uInt>(s.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

const std::string kLabels = "\x00\x00\x08\x01"s + be32(3) + "\x07\x00\x09"s;

// ---------------------------------------------------------------------------------------------
// Hand-made buffers

TEST(IdxRead, HandMadeLabelsAndImages) {
  const NdArray labels = parse(kLabels);
  EXPECT_EQ(labels.dtype, DType::UInt8);
  EXPECT_EQ(labels.shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(labels.bytes, (Bytes{7, 0, 9}));
  std::string pixels(2 * 2 * 3, '\0');
  std::iota(pixels.begin(), pixels.end(), char(1));
  const NdArray images = parse("\x00\x00\x08\x03"s + be32(2) + be32(2) + be32(3) + pixels);
  EXPECT_EQ(images.shape, (std::vector<std::int64_t>{2, 2, 3}));
  EXPECT_EQ(images.bytes, to_bytes(pixels));
  const NdArray empty = parse("\x00\x00\x08\x02"s + be32(0) + be32(28));
  EXPECT_EQ(empty.shape, (std::vector<std::int64_t>{0, 28}));
  EXPECT_TRUE(empty.bytes.empty());
}

TEST(IdxRead, GzipDetectedByMagicNotByName) {
  const NdArray a = decode(zlib_gzip(kLabels), "labels_without_gz_suffix");
  EXPECT_EQ(a.bytes, (Bytes{7, 0, 9}));
  EXPECT_EQ(decode(to_bytes(kLabels), "plain.gz").bytes, (Bytes{7, 0, 9}));
  // Concatenated gzip members are one stream, as for gunzip(1).
  Bytes two = zlib_gzip(kLabels.substr(0, 5));
  const Bytes rest = zlib_gzip(kLabels.substr(5));
  two.insert(two.end(), rest.begin(), rest.end());
  EXPECT_EQ(decode(two).bytes, (Bytes{7, 0, 9}));
}

TEST(IdxReject, BadMagicTypeAndDims) {
  expect_error([] { parse("\x01\x00\x08\x01"s + be32(3) + "abc", "m.idx"); },
               {"m.idx", "bad magic 0x01 0x00", "expected 0x00 0x00 <type> <ndim>"});
  expect_error([] { parse("\x00\x00\x0d\x01"s + be32(1) + "abcd", "f.idx"); },
               {"f.idx", "unsupported IDX element type 0x0d (float32)", "only 0x08"});
  expect_error([] { parse("\x00\x00\x0c\x01"s + be32(1) + "abcd", "i.idx"); }, {"0x0c (int32)"});
  expect_error([] { parse("\x00\x00\x08\x00"s, "z.idx"); }, {"z.idx", "0 dimensions"});
  expect_error([] { parse("\x00\x00\x08\x03"s + be32(2) + be32(2), "h.idx"); },
               {"h.idx", "truncated IDX header: 3 dimensions need 16 bytes, file has 12"});
  expect_error([] { parse("\x00\x00\x08\x01"s + be32(0x80000000u), "n.idx"); },
               {"n.idx", "dimension 0 is 2147483648", "signed 32-bit"});
  expect_error([] { parse("\x00\x00\x08\x03"s + be32(0x7fffffff) + be32(0x7fffffff) + be32(0x7fffffff), "o.idx"); },
               {"o.idx", "too large"});
  expect_error(
      [] { parse("\x00\x00\x08\x04"s + be32(0) + be32(0x7fffffff) + be32(0x7fffffff) + be32(0x7fffffff), "e.idx"); },
      {"e.idx", "too large"});
  expect_error([] { parse("\x00\x00"s, "s.idx"); }, {"s.idx", "file has 2 bytes"});
}

TEST(IdxReject, WrongDimsForPayload) {
  // Labels header says 4 but 3 follow; images header says 2 x 2 x 2 but 9 bytes follow.
  expect_error(
      [] { parse("\x00\x00\x08\x01"s + be32(4) + "\x01\x02\x03"s, "l.idx"); },
      {"l.idx: truncated IDX payload: header says dimensions [4] = 4 bytes, file has 3 after the 8-byte header"});
  expect_error([] { parse("\x00\x00\x08\x03"s + be32(2) + be32(2) + be32(2) + std::string(9, 'x'), "i.idx"); },
               {"i.idx: 1 extra bytes after the IDX payload", "[2, 2, 2] = 8 bytes, file has 9"});
}

TEST(IdxReject, EveryPrefixFailsPlainAndGzip) {
  const Bytes plain = testing::file_bytes(testing::fixtures() / "io" / "labels.idx1-ubyte");
  testing::expect_every_prefix_fails(plain, [](const std::uint8_t* d, std::size_t n) { return decode_idx(d, n, "l"); });
  const Bytes gz = testing::file_bytes(testing::fixtures() / "io" / "images.idx3-ubyte.gz");
  testing::expect_every_prefix_fails(gz, [](const std::uint8_t* d, std::size_t n) { return decode_idx(d, n, "g"); });
}

TEST(IdxReject, TruncatedGzipSaysSo) {
  const Bytes gz = testing::file_bytes(std::filesystem::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz");
  for (const std::size_t n :
       {std::size_t(3), std::size_t(10), std::size_t(100), gz.size() / 2, gz.size() - 9, gz.size() - 1}) {
    SCOPED_TRACE(n);
    const Bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(n));
    expect_error([&] { gunzip(cut.data(), cut.size(), "cut.gz"); }, {"cut.gz", "truncated gzip stream"});
  }
}

TEST(IdxReject, CorruptGzip) {
  Bytes gz = zlib_gzip(kLabels);
  Bytes crc = gz;
  crc[crc.size() - 6] ^= 0x01;  // CRC-32 in the trailer
  expect_error([&] { decode(crc, "crc.gz"); }, {"crc.gz", "corrupt gzip data", "incorrect data check"});
  Bytes len = gz;
  len[len.size() - 2] ^= 0x01;  // ISIZE in the trailer
  expect_error([&] { decode(len, "len.gz"); }, {"len.gz", "corrupt gzip data", "incorrect length check"});
  Bytes body = gz;
  body[12] ^= 0xff;
  expect_error([&] { decode(body, "body.gz"); }, {"body.gz"});
  Bytes trailing = gz;
  trailing.push_back(0);
  expect_error([&] { decode(trailing, "t.gz"); }, {"t.gz", "1 bytes of trailing garbage"});
  expect_error([&] { gunzip(to_bytes(kLabels).data(), kLabels.size(), "plain"); }, {"plain", "not a gzip stream"});
}

TEST(IdxReject, InflatedSizeIsBounded) {
  const Bytes bomb = zlib_gzip(std::string(1 << 20, '\0'));  // 1 MiB of zeros, about 1 KiB compressed
  ASSERT_LT(bomb.size(), 2000u);
  EXPECT_EQ(gunzip(bomb.data(), bomb.size(), "b", 1 << 20).size(), std::size_t(1) << 20);
  expect_error([&] { gunzip(bomb.data(), bomb.size(), "bomb.gz", (1 << 20) - 1); },
               {"bomb.gz", "inflates to more than 1048575 bytes"});
  expect_error([&] { decode(bomb, "bomb.gz", 4096); }, {"bomb.gz", "more than 4096 bytes"});
}

TEST(IdxReject, SingleByteCorruptionsNeverEscapeAsOtherErrors) {
  for (const char* name : {"labels.idx1-ubyte", "images.idx3-ubyte.gz"}) {
    const Bytes bytes = testing::file_bytes(testing::fixtures() / "io" / name);
    for (const std::uint8_t mask : {0x01, 0x80, 0xff}) {
      testing::corrupt_every_byte(
          bytes, mask, [&](const std::uint8_t* d, std::size_t n) { return decode_idx(d, n, name, 1 << 20); });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and Fashion-MNIST

TEST(IdxFixtures, PythonWrittenFiles) {
  const NdArray labels = read_idx(testing::fixtures() / "io" / "labels.idx1-ubyte");
  EXPECT_EQ(labels.shape, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(labels.bytes, (Bytes{3, 1, 4, 1, 5}));
  const NdArray images = read_idx(testing::fixtures() / "io" / "images.idx3-ubyte.gz");
  EXPECT_EQ(images.shape, (std::vector<std::int64_t>{2, 3, 4}));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(images.bytes[(i * 3 + j) * 4 + k], 12 * i + 4 * j + k);
}

void expect_balanced_labels(const NdArray& labels, std::int64_t n) {
  ASSERT_EQ(labels.shape, (std::vector<std::int64_t>{n}));
  std::array<std::int64_t, 10> count{};
  for (const std::uint8_t l : labels.bytes) {
    ASSERT_LT(l, 10);
    ++count[l];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[c], n / 10) << "class " << c;
}

TEST(IdxFixtures, FashionMnistTrain) {
  const std::filesystem::path dir = kFashionMnistDir;
  const NdArray images = read_idx(dir / "train-images-idx3-ubyte.gz");
  EXPECT_EQ(images.dtype, DType::UInt8);
  EXPECT_EQ(images.shape, (std::vector<std::int64_t>{60000, 28, 28}));
  // Widely quoted normalisation constants of Fashion-MNIST's training set: mean 0.2860, std 0.3530.
  double sum = 0, sq = 0;
  for (const std::uint8_t p : images.bytes) {
    sum += p / 255.0;
    sq += (p / 255.0) * (p / 255.0);
  }
  const double n = static_cast<double>(images.bytes.size());
  EXPECT_NEAR(sum / n, 0.2860, 5e-4);
  EXPECT_NEAR(std::sqrt(sq / n - (sum / n) * (sum / n)), 0.3530, 5e-4);
  expect_balanced_labels(read_idx(dir / "train-labels-idx1-ubyte.gz"), 60000);
}

TEST(IdxFixtures, FashionMnistTest) {
  const std::filesystem::path dir = kFashionMnistDir;
  EXPECT_EQ(read_idx(dir / "t10k-images-idx3-ubyte.gz").shape, (std::vector<std::int64_t>{10000, 28, 28}));
  expect_balanced_labels(read_idx(dir / "t10k-labels-idx1-ubyte.gz"), 10000);
}

// ---------------------------------------------------------------------------------------------
// Writing

TEST(IdxWrite, RoundTripPlainAndGzip) {
  const auto dir = testing::temp_dir("idx_write");
  std::vector<double> v(3 * 4 * 5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i * 37 % 256);
  const NdArray a = NdArray::from_double(DType::UInt8, {3, 4, 5}, v);
  write_idx(dir / "a.idx", a, false);
  write_idx(dir / "a.idx.gz", a, true);
  const Bytes plain = testing::file_bytes(dir / "a.idx");
  EXPECT_EQ(plain.size(), 4u + 12u + 60u);
  EXPECT_EQ(Bytes(plain.begin(), plain.begin() + 16), to_bytes("\x00\x00\x08\x03"s + be32(3) + be32(4) + be32(5)));
  const Bytes gz = testing::file_bytes(dir / "a.idx.gz");
  EXPECT_EQ(gz[0], 0x1f);
  EXPECT_EQ(gz[1], 0x8b);
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    const NdArray b = read_idx(dir / name);
    EXPECT_EQ(b.shape, a.shape) << name;
    EXPECT_EQ(b.bytes, a.bytes) << name;
  }
  // gzip_compress output is a standard gzip member that zlib itself inflates.
  Bytes out(plain.size());
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, 16 + 15), Z_OK);
  zs.next_in = const_cast<Bytef*>(gz.data());
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  inflateEnd(&zs);
  EXPECT_EQ(out, plain);
  std::filesystem::remove_all(dir);
}

TEST(IdxWrite, RejectsNonUint8AndBadShapes) {
  const auto dir = testing::temp_dir("idx_bad");
  expect_error<ShapeError>(
      [&] {
        write_idx(dir / "f.idx", NdArray::from_double(DType::Float32, {2}, {1, 2}));
      },
      {"f.idx", "uint8", "float32"});
  expect_error<ShapeError>([&] { write_idx(dir / "s.idx", NdArray::from_double(DType::UInt8, {}, {1})); },
                           {"s.idx", "1 to 255 dimensions, got 0"});
  EXPECT_FALSE(std::filesystem::exists(dir / "f.idx"));
  expect_error<IoError>([] { read_idx("/nonexistent/stablelearn/x.idx"); }, {"/nonexistent/stablelearn/x.idx"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stablelearn::io
