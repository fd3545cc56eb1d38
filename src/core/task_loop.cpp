#include "stablelearn/core/task_loop.h"

#include <chrono>
#include <cmath>

#include "stablelearn/core/error.h"

namespace stablelearn {

void run_task_loop(TaskLearner& learner, std::int64_t first, std::int64_t last) {
  using clock = std::chrono::steady_clock;
  for (std::int64_t i = first; i < last; ++i) {
    const auto t0 = clock::now();
    const std::int64_t steps = learner.begin_task(i);
    for (std::int64_t s = 0; s < steps; ++s) {
      const double loss = learner.step(i, s);
      SL_CHECK(std::isfinite(loss), DataError, "task ", i, " iteration ", s, ": the training loss is ", loss, " (diverged; ",
               learner.divergence_hint(), ")");
      learner.after_step(i, s, loss);
    }
    learner.end_task(i);
    learner.evaluate(i, std::chrono::duration<double>(clock::now() - t0).count());
    learner.checkpoint(i);
    learner.report(i);
  }
}

}  // namespace stablelearn
