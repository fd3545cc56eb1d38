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
    if (skill.header().discrete_step) {
      // A discrete-step skill: 100 control periods of the map it was trained with; V must fall by
      // at least e^{−κα period} per period (as the runtime computes V).
      std::vector<double> m(skill.dim());
      skill.to_model(x.data(), m.data());
      const double V0 = skill.lyapunov_model(m.data(), 0, ws);
      for (int k = 0; k < 100; ++k) skill.step_discrete(x.data(), ws);
      skill.to_model(x.data(), m.data());
      const auto& h = skill.header();
      if (!(skill.lyapunov_model(m.data(), 0, ws) <= V0 * std::exp(-h.kappa * h.alpha * h.period * 100) * (1 + 1e-4))) return 1;
    }
    std::printf("ok %s (%s kernels)\n", skill.header().name.c_str(), stablelearn::runtime::isa_name(skill.isa()));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
