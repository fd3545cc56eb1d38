// libFuzzer target for the .npz reader (scripts/fuzz.sh builds and runs it).
// stablelearn::Error is the expected way to reject an input; any other exception, a crash, a leak
// or a sanitizer report is a finding. Accepted archives must hold valid arrays and survive a
// write/read round trip unchanged.
#include <cstddef>
#include <cstdint>

#include "stablelearn/core/error.h"
#include "stablelearn/io/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stablelearn::io;
  try {
    const auto arrays = parse_npz(data, size, "fuzz.npz");
    for (const auto& [name, a] : arrays) a.validate("fuzz.npz:" + name);
    const std::vector<std::uint8_t> again = serialize_npz(arrays, size % 2 == 0);
    const auto back = parse_npz(again.data(), again.size(), "fuzz.npz (rewritten)");
    if (back.size() != arrays.size()) __builtin_trap();
    for (const auto& [name, a] : arrays) {
      const auto it = back.find(name);
      if (it == back.end() || it->second.dtype != a.dtype || it->second.shape != a.shape || it->second.bytes != a.bytes)
        __builtin_trap();
    }
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
