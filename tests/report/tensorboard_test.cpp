// The event file is parsed back with an independent reader written here from the TFRecord and
// protobuf wire-format specifications (varints, fixed64/fixed32, length-delimited fields).
#include <cstring>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "stablelearn/report/tensorboard.h"
#include "testing.h"

using namespace stablelearn::report;

TEST(Crc32c, KnownCheckValues) {
  // The CRC catalogue's check value of CRC-32C for "123456789", and RFC 3720's 32 zero bytes.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const unsigned char zeros[32] = {};
  EXPECT_EQ(crc32c(zeros, 32), 0x8A9136AAu);
}

namespace {

struct Reader {
  const unsigned char* p;
  const unsigned char* end;
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int s = 0; p < end; s += 7) {
      const auto b = *p++;
      v |= static_cast<std::uint64_t>(b & 0x7f) << s;
      if (!(b & 0x80)) break;
    }
    return v;
  }
};

struct Scalar {
  std::string tag;
  float value = 0;
  std::int64_t step = -1;
};

// Decodes an Event: returns the scalar of its summary (if any) and the file_version string.
Scalar decode_event(const std::string& data, std::string* version) {
  Scalar s;
  Reader r{reinterpret_cast<const unsigned char*>(data.data()), reinterpret_cast<const unsigned char*>(data.data()) + data.size()};
  while (r.p < r.end) {
    const auto key = r.varint();
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (wire == 1) {
      r.p += 8;  // wall_time
    } else if (wire == 0) {
      const auto v = r.varint();
      if (field == 2) s.step = static_cast<std::int64_t>(v);
    } else if (wire == 2) {
      const auto len = r.varint();
      std::string sub(reinterpret_cast<const char*>(r.p), len);
      r.p += len;
      if (field == 3) *version = sub;
      if (field == 5) {  // Summary { repeated Value value = 1 }
        Reader rs{reinterpret_cast<const unsigned char*>(sub.data()), reinterpret_cast<const unsigned char*>(sub.data()) + sub.size()};
        rs.varint();
        const auto vlen = rs.varint();
        Reader rv{rs.p, rs.p + vlen};
        while (rv.p < rv.end) {
          const auto k = rv.varint();
          if ((k >> 3) == 1) {
            const auto l = rv.varint();
            s.tag.assign(reinterpret_cast<const char*>(rv.p), l);
            rv.p += l;
          } else if ((k >> 3) == 2 && (k & 7) == 5) {
            std::memcpy(&s.value, rv.p, 4);
            rv.p += 4;
          }
        }
      }
    }
  }
  return s;
}

}  // namespace

TEST(TensorBoardWriter, EventFileParsesBackWithValidCrcs) {
  const auto dir = stablelearn::testing::temp_dir("tb");
  std::filesystem::path file;
  {
    TensorBoardWriter w(dir);
    w.scalar("train/loss", 0.5, 10);
    w.scalar("eval/acc_task0", 0.875, 20);
    file = w.path();
  }
  EXPECT_EQ(file.filename().string().rfind("events.out.tfevents.", 0), 0u);
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0;
  std::vector<Scalar> scalars;
  std::string version;
  while (pos < bytes.size()) {
    ASSERT_LE(pos + 12, bytes.size());
    std::uint64_t len;
    std::uint32_t len_crc, data_crc;
    std::memcpy(&len, bytes.data() + pos, 8);
    std::memcpy(&len_crc, bytes.data() + pos + 8, 4);
    EXPECT_EQ(len_crc, masked_crc32c(bytes.data() + pos, 8));
    const std::string data = bytes.substr(pos + 12, len);
    std::memcpy(&data_crc, bytes.data() + pos + 12 + len, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data.data(), data.size()));
    auto s = decode_event(data, &version);
    if (!s.tag.empty()) scalars.push_back(s);
    pos += 12 + len + 4;
  }
  EXPECT_EQ(version, "brain.Event:2");
  ASSERT_EQ(scalars.size(), 2u);
  EXPECT_EQ(scalars[0].tag, "train/loss");
  EXPECT_FLOAT_EQ(scalars[0].value, 0.5f);
  EXPECT_EQ(scalars[0].step, 10);
  EXPECT_EQ(scalars[1].tag, "eval/acc_task0");
  EXPECT_FLOAT_EQ(scalars[1].value, 0.875f);
  EXPECT_EQ(scalars[1].step, 20);
  std::filesystem::remove_all(dir);
}
