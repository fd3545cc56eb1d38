// libFuzzer target for the .npy reader (scripts/fuzz.sh builds and runs it).
// stablelearn::Error is the expected way to reject an input; any other exception, a crash, a leak
// or a sanitizer report is a finding. Accepted inputs must also satisfy the NdArray invariant and
// survive a write/read round trip unchanged.
#include <cstddef>
#include <cstdint>

#include "stablelearn/core/error.h"
#include "stablelearn/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stablelearn::io;
  try {
    const NdArray a = parse_npy(data, size, "fuzz.npy");
    a.validate("fuzz.npy");
    const std::vector<std::uint8_t> again = serialize_npy(a);
    const NdArray b = parse_npy(again.data(), again.size(), "fuzz.npy (rewritten)");
    if (b.dtype != a.dtype || b.shape != a.shape || b.bytes != a.bytes) __builtin_trap();
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
