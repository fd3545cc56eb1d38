// libFuzzer target for the IDX reader, plain or gzip-compressed (scripts/fuzz.sh builds and runs
// it): decode_idx gunzips inputs that start with 1f 8b, then parse_idx. stablelearn::Error is the
// expected way to reject an input; any other exception, a crash, a leak or a sanitizer report is
// a finding.
#include <cstddef>
#include <cstdint>

#include "stablelearn/core/error.h"
#include "stablelearn/io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stablelearn::io;
  // A tighter bound on inflated output than read_idx's default keeps each run fast and within
  // libFuzzer's memory limit; the bounding logic exercised is the same.
  constexpr std::size_t kMaxInflated = std::size_t(64) << 20;
  try {
    const NdArray a = decode_idx(data, size, "fuzz.idx", kMaxInflated);
    a.validate("fuzz.idx");
    if (a.dtype != DType::UInt8 || a.shape.empty()) __builtin_trap();
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
