// `stablelearn launch`: N local ranks of one command, as torchrun starts them (no libtorch here).
#pragma once

#include <string>
#include <vector>

namespace stablelearn::distributed {

struct LaunchOptions {
  int nproc = 1;                      ///< ranks to start (>= 1)
  int threads_per_proc = 0;           ///< --threads of every rank; 0 = max(1, cores / nproc)
  int master_port = 0;                ///< 0 = a free port of 127.0.0.1 (bound once to find it)
  int timeout_s = 60;                 ///< STABLELEARN_DIST_TIMEOUT of the ranks
  double grace_s = 10;                ///< SIGTERM → SIGKILL delay when stopping ranks
  std::string program;                ///< the executable of every rank (stablelearn itself)
  std::vector<std::string> command;   ///< its arguments after the global options (e.g. cl run ...)
};

/// A free TCP port of 127.0.0.1 (binds port 0 and closes it; a race with another program is
/// possible but rare). IoError when no socket can be bound.
int free_port();

/// Starts ranks 0..nproc-1 as `program --threads T command...` with MASTER_ADDR=127.0.0.1,
/// MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, STABLELEARN_DIST_TIMEOUT and OMP_NUM_THREADS set,
/// then waits. SIGINT/SIGTERM received by the launcher are forwarded to every rank. When a rank
/// exits non-zero (or is killed by a signal), the others get SIGTERM (then SIGKILL after
/// grace_s), a line naming the failed rank goes to stderr, and the result is that rank's exit
/// status (128 + signal when killed; at least 1). 0 when every rank exits 0. Each rank dies with
/// the launcher (PR_SET_PDEATHSIG).
int launch(const LaunchOptions& options);

}  // namespace stablelearn::distributed
