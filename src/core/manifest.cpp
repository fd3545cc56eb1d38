// The versioned checkpoint manifest (core/run.h), in the torch-free sl_base so that the fuzzer
// (fuzz/fuzz_manifest.cpp) and torch-free tools can read it.
#include <algorithm>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"

namespace stablelearn {

using json = nlohmann::json;

CheckpointManifest read_checkpoint_manifest(const fs::path& path, const std::string& format, int max_version) {
  SL_CHECK(fs::exists(path), IoError, path.string(), ": no checkpoint (is this a run directory?)");
  json j;
  try {
    j = json::parse(read_file_text(path));
  } catch (const json::exception& e) {
    SL_THROW(DataError, path.string(), ": corrupt checkpoint (", e.what(), ")");
  }
  SL_CHECK(j.is_object() && j.value("format", "") == format, DataError, path.string(), ": not a stablelearn ", format, " file");
  const auto& v = j.contains("version") ? j.at("version") : json();
  SL_CHECK(v.is_number_integer(), DataError, path.string(), ": no format version");
  // As a 64-bit integer first: a version beyond int's range must not wrap into 1..max_version.
  const auto wide = v.is_number_unsigned() ? static_cast<long long>(std::min<std::uint64_t>(v.get<std::uint64_t>(), 1u << 30))
                                           : v.get<long long>();
  SL_CHECK(wide >= 1 && wide <= (1 << 30), DataError, path.string(), ": format version ", wide, " is not valid");
  const int version = static_cast<int>(wide);
  SL_CHECK(version >= 1, DataError, path.string(), ": format version ", version, " is not valid");
  SL_CHECK(version <= max_version, DataError, path.string(), ": format version ", version,
           " was written by a newer stablelearn; this build reads versions 1..", max_version);
  CheckpointManifest m;
  m.format = format;
  m.version = version;
  j.erase("format");
  j.erase("version");
  m.fields = std::move(j);
  return m;
}

void write_checkpoint_manifest(const fs::path& path, const CheckpointManifest& manifest) {
  // nlohmann::json orders keys; format and version are found by name, so the order is cosmetic.
  json j = manifest.fields.is_object() ? manifest.fields : json::object();
  j["format"] = manifest.format;
  j["version"] = manifest.version;
  write_file_atomic(path, j.dump(1));
}

}  // namespace stablelearn
