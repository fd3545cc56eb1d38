// Built without libtorch (no include path, no link): proves the runtime is self-contained.
// Usage: runtime_no_torch SKILL_FILE -> rolls the skill out from its goal-offset start, exit 0.
#include <cmath>
#include <cstdio>
#include <vector>

#include "stablelearn/runtime/skill.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    const auto skill = stablelearn::runtime::Skill::load(argv[1]);
    stablelearn::runtime::Workspace ws(skill);
    std::vector<double> x(skill.dim(), 0.5), out((100 + 1) * skill.dim());
    skill.rollout(x.data(), skill.header().t0, 0.01, 100, out.data(), ws);
    for (double v : out)
      if (!std::isfinite(v)) return 1;
    std::printf("ok %s\n", skill.header().name.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
