// libFuzzer target for the skill file reader (runtime/skill.h, header-only; scripts/fuzz.sh builds
// and runs it): parse, and for an accepted skill evaluate its field and one certified step at the
// goal and at a far point. SkillError is the expected rejection; a crash, a sanitizer report or
// another exception is a finding. (A parsed skill's numbers may be anything the checksum allows:
// the values are not checked, only that evaluating them is memory-safe.)
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stablelearn/runtime/skill.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stablelearn::runtime;
  try {
    const Skill skill = Skill::parse(data, size, "fuzz.slskill");
    Workspace ws(skill);
    std::vector<double> x(skill.dim(), 0.0), v(skill.dim(), 0.0);
    skill.velocity_model(x.data(), 0.0, v.data(), ws);
    for (auto& xi : x) xi = 3.0;
    skill.velocity_model(x.data(), 0.5, v.data(), ws);
  } catch (const SkillError&) {
  }
  return 0;
}
