// The torchrun environment of one process of a distributed run (no libtorch, no c10d here).
//
// torchrun (and `stablelearn launch`) start every rank with
//   MASTER_ADDR, MASTER_PORT   where rank 0 serves the rendezvous store (c10d::TCPStore)
//   RANK, WORLD_SIZE           this process's rank and the number of ranks
//   LOCAL_RANK                 the rank on this machine (optional; default RANK)
// and stablelearn reads one more:
//   STABLELEARN_DIST_TIMEOUT   seconds to wait for the other ranks (rendezvous and every
//                              collective) before failing with an error (default 60)
// None of RANK / WORLD_SIZE set, or WORLD_SIZE = 1: a single process, nothing changes.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace stablelearn::distributed {

/// The variables of one rank, checked.
struct DistEnv {
  std::string master_addr;
  int master_port = 0;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::chrono::milliseconds timeout{60000};
};

/// Reads a variable; nullptr when unset (std::getenv by default; tests pass their own).
using EnvLookup = std::function<const char*(const char*)>;

/// The distributed settings of this process, or nullopt for a single process (RANK and WORLD_SIZE
/// both unset, or WORLD_SIZE = 1 with RANK = 0). UsageError naming the variable and its value
/// when a variable is not a number, out of range (RANK >= WORLD_SIZE, a port outside 1..65535),
/// or when the set is incomplete (RANK without WORLD_SIZE, no MASTER_ADDR/MASTER_PORT).
std::optional<DistEnv> read_dist_env(const EnvLookup& lookup = {});

/// One line describing the settings ("rank 1 of 2, master 127.0.0.1:29500, timeout 60 s").
std::string describe(const DistEnv& env);

}  // namespace stablelearn::distributed
