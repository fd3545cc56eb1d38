// .npz reader and writer on top of libzip. Archives are always handled in memory
// (zip_source_buffer_create): reading a file and parsing a buffer share one code path, which is
// the path the fuzzer exercises, and writing produces bytes that write_file_atomic puts in place.
#include "stablelearn/io/npz.h"

#include <zip.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <set>
#include <string_view>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/io/npy.h"

namespace stablelearn::io {
namespace {

constexpr std::string_view kNpySuffix = ".npy";
/// Read granularity when inflating a member.
constexpr std::uint64_t kReadChunk = std::uint64_t(1) << 20;

struct ArchiveCloser {
  void operator()(zip_t* za) const { zip_discard(za); }
};
struct FileCloser {
  void operator()(zip_file_t* zf) const { zip_fclose(zf); }
};
struct SourceFreer {
  void operator()(zip_source_t* src) const { zip_source_free(src); }
};

/// Message of a libzip error structure, then released.
std::string take_message(zip_error_t& err) {
  std::string msg = zip_error_strerror(&err);
  zip_error_fini(&err);
  return msg;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// A read-only archive over caller-owned bytes, with its .npy members listed and checked.
class Archive {
 public:
  struct Member {
    std::string name;  ///< without ".npy"
    zip_uint64_t index = 0;
    zip_uint64_t size = 0;  ///< declared uncompressed size
  };

  Archive(const std::uint8_t* data, std::size_t size, const std::string& source) : source_(source) {
    SL_CHECK(size > 0, DataError, source, ": empty file, not an .npz (zip) archive");
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(data, size, 0, &err);
    SL_CHECK(src != nullptr, DataError, source, ": cannot read archive (libzip: ", take_message(err), ")");
    zip_t* za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (za == nullptr) {
      zip_source_free(src);  // zip_open_from_source takes ownership only on success
      // libzip reports two entries with one name as "File already exists".
      const std::string why =
          zip_error_code_zip(&err) == ZIP_ER_EXISTS ? "two members have the same name" : "libzip: " + take_message(err);
      zip_error_fini(&err);
      SL_THROW(DataError, source, ": not a valid .npz (zip) archive (", why, ")");
    }
    zip_error_fini(&err);
    za_.reset(za);

    const zip_int64_t n = zip_get_num_entries(za, 0);
    SL_CHECK(n >= 0, DataError, source, ": cannot list archive members");
    std::set<std::string> names;
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      zip_stat_init(&st);
      SL_CHECK(zip_stat_index(za, static_cast<zip_uint64_t>(i), 0, &st) == 0 && (st.valid & ZIP_STAT_NAME) != 0,
               DataError, source, ": cannot read the directory entry of member ", i, " (libzip: ", zip_strerror(za),
               ")");
      const std::string full = st.name;
      SL_CHECK(ends_with(full, kNpySuffix) && full.size() > kNpySuffix.size(), DataError, source, ": member '", full,
               "' is not a .npy file (an .npz holds only '<name>.npy' members)");
      SL_CHECK((st.valid & ZIP_STAT_SIZE) != 0, DataError, source, ":", full, ": uncompressed size unknown");
      Member m{full.substr(0, full.size() - kNpySuffix.size()), static_cast<zip_uint64_t>(i), st.size};
      // libzip already refuses duplicate names when opening; keep the invariant explicit.
      SL_CHECK(names.insert(m.name).second, DataError, source, ": member '", full, "' appears twice");
      members_.push_back(std::move(m));
    }
  }

  const std::vector<Member>& members() const { return members_; }

  /// Decompresses and parses one member.
  NdArray read(const Member& m) const {
    const std::string where = source_ + ":" + m.name;
    SL_CHECK(m.size <= kMaxNpzMemberBytes, DataError, where, ": member declares ", m.size,
             " bytes uncompressed, more than the limit of ", kMaxNpzMemberBytes);
    std::unique_ptr<zip_file_t, FileCloser> zf(zip_fopen_index(za_.get(), m.index, 0));
    SL_CHECK(zf != nullptr, DataError, where, ": cannot open member (libzip: ", zip_strerror(za_.get()), ")");
    // Read until libzip reports the end: only then has it verified the CRC-32 and the size.
    // Growing the buffer as data arrives (instead of trusting the declared size) keeps a lying
    // header from making us allocate more than the member really holds.
    std::vector<std::uint8_t> bytes;
    for (;;) {
      const std::size_t old = bytes.size();
      const std::uint64_t want = std::min<std::uint64_t>(kReadChunk, m.size + 1 - old);
      bytes.resize(old + want);
      const zip_int64_t got = zip_fread(zf.get(), bytes.data() + old, want);
      if (got < 0) {
        zip_error_t* err = zip_file_get_error(zf.get());
        SL_CHECK(zip_error_code_zip(err) != ZIP_ER_CRC, DataError, where,
                 ": CRC-32 mismatch, the member data is corrupt");
        SL_THROW(DataError, where, ": cannot decompress member (libzip: ", zip_error_strerror(err), ")");
      }
      bytes.resize(old + static_cast<std::size_t>(got));
      if (got == 0) break;
      SL_CHECK(bytes.size() <= m.size, DataError, where, ": member holds more than the ", m.size,
               " bytes its directory entry declares");
    }
    SL_CHECK(bytes.size() == m.size, DataError, where, ": member holds ", bytes.size(),
             " bytes, its directory entry declares ", m.size);
    return parse_npy(bytes.data(), bytes.size(), where);
  }

 private:
  std::string source_;
  std::unique_ptr<zip_t, ArchiveCloser> za_;
  std::vector<Member> members_;
};

std::map<std::string, NdArray> read_all(const Archive& archive) {
  std::map<std::string, NdArray> out;
  for (const auto& m : archive.members()) out.emplace(m.name, archive.read(m));
  return out;
}

/// 1980-01-01 00:00 local time: the earliest zip (MS-DOS) timestamp, which NumPy also writes.
std::time_t dos_epoch() {
  std::tm tm{};
  tm.tm_year = 80;
  tm.tm_mon = 0;
  tm.tm_mday = 1;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

/// serialize_npz, with `what` (the destination path, or "serialize_npz") leading every message.
std::vector<std::uint8_t> build_archive(const std::map<std::string, NdArray>& arrays, bool compress,
                                        const std::string& what) {
  if (arrays.empty()) {
    // libzip writes nothing for an archive without entries; NumPy writes the bare end record.
    std::vector<std::uint8_t> empty(22, 0);
    empty[0] = 'P';
    empty[1] = 'K';
    empty[2] = 5;
    empty[3] = 6;
    return empty;
  }
  // Serialise (and so validate) every member before touching libzip; the buffers must outlive
  // zip_close, which is when libzip reads them.
  std::vector<std::vector<std::uint8_t>> payloads;
  for (const auto& [name, array] : arrays) {
    SL_CHECK(!name.empty(), DataError, what, ": empty member name");
    array.validate(what + ": member '" + name + "'");
    payloads.push_back(serialize_npy(array));
  }

  zip_error_t err;
  zip_error_init(&err);
  std::unique_ptr<zip_source_t, SourceFreer> buffer(zip_source_buffer_create(nullptr, 0, 0, &err));
  SL_CHECK(buffer != nullptr, IoError, what, ": cannot create buffer (libzip: ", take_message(err), ")");
  std::unique_ptr<zip_t, ArchiveCloser> za(zip_open_from_source(buffer.get(), ZIP_TRUNCATE, &err));
  SL_CHECK(za != nullptr, IoError, what, ": cannot create archive (libzip: ", take_message(err), ")");
  zip_error_fini(&err);
  zip_source_keep(buffer.get());  // the archive now co-owns the buffer; we read it after zip_close

  const std::time_t mtime = dos_epoch();
  std::size_t k = 0;
  for (const auto& entry : arrays) {
    const std::string member = entry.first + std::string(kNpySuffix);
    const auto& payload = payloads[k++];
    zip_source_t* src = zip_source_buffer(za.get(), payload.data(), payload.size(), 0);
    SL_CHECK(src != nullptr, IoError, what, ": member '", member, "' (libzip: ", zip_strerror(za.get()), ")");
    const zip_int64_t idx = zip_file_add(za.get(), member.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
      SL_THROW(IoError, what, ": cannot add member '", member, "' (libzip: ", zip_strerror(za.get()), ")");
    }
    const auto index = static_cast<zip_uint64_t>(idx);
    SL_CHECK(zip_set_file_compression(za.get(), index, compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) == 0 &&
                 zip_file_set_mtime(za.get(), index, mtime, 0) == 0,
             IoError, what, ": member '", member, "' (libzip: ", zip_strerror(za.get()), ")");
  }
  SL_CHECK(zip_close(za.get()) == 0, IoError, what, ": cannot finish archive (libzip: ", zip_strerror(za.get()), ")");
  za.release();  // zip_close freed it

  // Copy the finished archive out of the buffer source.
  zip_stat_t st;
  zip_stat_init(&st);
  SL_CHECK(zip_source_open(buffer.get()) == 0, IoError, what,
           ": cannot reopen buffer (libzip: ", zip_error_strerror(zip_source_error(buffer.get())), ")");
  std::vector<std::uint8_t> out;
  const bool stat_ok = zip_source_stat(buffer.get(), &st) == 0 && (st.valid & ZIP_STAT_SIZE) != 0;
  if (stat_ok) {
    out.resize(st.size);
    std::size_t done = 0;
    while (done < out.size()) {
      const zip_int64_t got = zip_source_read(buffer.get(), out.data() + done, out.size() - done);
      if (got <= 0) break;
      done += static_cast<std::size_t>(got);
    }
    out.resize(done);
  }
  zip_source_close(buffer.get());
  SL_CHECK(stat_ok && out.size() == st.size, IoError, what, ": cannot read back the archive from memory");
  return out;
}

}  // namespace

std::map<std::string, NdArray> parse_npz(const std::uint8_t* data, std::size_t size, const std::string& source) {
  return read_all(Archive(data, size, source));
}

std::map<std::string, NdArray> read_npz(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_npz(bytes.data(), bytes.size(), path.string());
}

NdArray read_npz_member(const std::filesystem::path& path, const std::string& name) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  const Archive archive(bytes.data(), bytes.size(), path.string());
  std::string present;
  for (const auto& m : archive.members()) {
    if (m.name == name) return archive.read(m);
    present += (present.empty() ? "" : ", ") + m.name;
  }
  SL_THROW(DataError, path.string(), ": no member '", name,
           "' (members: ", present.empty() ? std::string("none") : present, ")");
}

std::vector<std::uint8_t> serialize_npz(const std::map<std::string, NdArray>& arrays, bool compress) {
  return build_archive(arrays, compress, "serialize_npz");
}

void write_npz(const std::filesystem::path& path, const std::map<std::string, NdArray>& arrays, bool compress) {
  const std::vector<std::uint8_t> bytes = build_archive(arrays, compress, path.string());
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace stablelearn::io
