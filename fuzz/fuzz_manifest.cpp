// libFuzzer target for the checkpoint manifest reader (core/run.h read_checkpoint_manifest; scripts/
// fuzz.sh builds and runs it). The input is written to a file (the reader takes a path) and read as
// a version-1 cl checkpoint manifest; an accepted manifest must have a version in 1..1 and its
// format and version removed from the fields. stablelearn::Error is the expected rejection.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"
#include "stablelearn/core/run.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/stablelearn_fuzz_manifest_" + std::to_string(::getpid()) + ".json";
  stablelearn::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const auto m = stablelearn::read_checkpoint_manifest(path, "stablelearn-cl-checkpoint", 1);
    if (m.version != 1 || m.fields.contains("format") || m.fields.contains("version") || !m.fields.is_object())
      __builtin_trap();
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
