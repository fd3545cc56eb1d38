// libFuzzer target for the TOML configuration reader (core/config.h; scripts/fuzz.sh builds and
// runs it): parse, read every value through the typed getters a config section offers, write the
// document back and parse that again. stablelearn::Error is the expected way to reject an input;
// anything else (another exception, a crash, a sanitizer report, a document whose own TOML text
// does not parse back to the same values) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "stablelearn/core/config.h"
#include "stablelearn/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using stablelearn::Config;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Config cfg = Config::from_string(text, "fuzz.toml");
    const auto values = cfg.flat_values();
    // Typed reads: each may reject a value of another type with a ConfigError, never crash.
    for (const auto& [key, _] : values) {
      const auto dot = key.find('.');
      if (dot == std::string::npos) continue;
      auto sec = cfg.section(key.substr(0, dot));
      const auto k = key.substr(dot + 1);
      try { (void)sec.get(k, std::int64_t{0}); } catch (const stablelearn::Error&) {}
      try { (void)sec.get(k, 0.0); } catch (const stablelearn::Error&) {}
      try { (void)sec.get(k, false); } catch (const stablelearn::Error&) {}
      try { (void)sec.get(k, std::string()); } catch (const stablelearn::Error&) {}
      try { (void)sec.get(k, std::vector<std::int64_t>{}); } catch (const stablelearn::Error&) {}
      try { (void)sec.get(k, std::vector<std::string>{}); } catch (const stablelearn::Error&) {}
    }
    // Round trip: the written document parses back to the same values.
    const Config again = Config::from_string(cfg.to_string(), "fuzz-roundtrip.toml");
    if (again.flat_values() != values) __builtin_trap();
  } catch (const stablelearn::Error&) {
  }
  return 0;
}
