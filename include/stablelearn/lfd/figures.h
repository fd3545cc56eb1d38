// Figures of a run (SVG, viewable in a browser): for every learned task of a data set with at least
// two position coordinates, the demonstrations, the model's rollouts from their starts (the
// evaluation protocol) and, for 2-D states, the learned vector field; and the error-vs-task curves.
#pragma once

#include <filesystem>
#include <vector>

namespace stablelearn::lfd {

class LfdRun;

/// Writes DIR/task_<j>.svg for every learned task and DIR/errors.svg (from RUN/summary.json).
/// Returns the files written.
std::vector<std::filesystem::path> write_run_figures(const LfdRun& run, const std::filesystem::path& run_dir,
                                                     const std::filesystem::path& out_dir);

}  // namespace stablelearn::lfd
