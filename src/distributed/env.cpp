// torchrun environment parsing (distributed/env.h).
#include "stablelearn/distributed/env.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "stablelearn/core/error.h"

namespace stablelearn::distributed {

namespace {

/// The value of an integer variable in [lo, hi]; UsageError naming the variable otherwise.
long long parse_int(const char* name, const char* value, long long lo, long long hi) {
  const std::string s(value);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  SL_CHECK(!s.empty() && end == s.c_str() + s.size() && errno == 0, UsageError, "environment variable ", name, "=\"", s,
           "\" is not an integer");
  SL_CHECK(v >= lo && v <= hi, UsageError, "environment variable ", name, "=", v, " is outside ", lo, "..", hi);
  return v;
}

}  // namespace

std::optional<DistEnv> read_dist_env(const EnvLookup& lookup) {
  const EnvLookup get = lookup ? lookup : EnvLookup([](const char* k) { return std::getenv(k); });
  const char* rank = get("RANK");
  const char* world = get("WORLD_SIZE");
  if (rank == nullptr && world == nullptr) return std::nullopt;
  SL_CHECK(rank != nullptr, UsageError, "environment variable WORLD_SIZE=", world,
           " is set but RANK is not (a distributed run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as torchrun "
           "or `stablelearn launch` set them)");
  SL_CHECK(world != nullptr, UsageError, "environment variable RANK=", rank,
           " is set but WORLD_SIZE is not (a distributed run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as "
           "torchrun or `stablelearn launch` set them)");
  DistEnv e;
  e.world_size = static_cast<int>(parse_int("WORLD_SIZE", world, 1, 1 << 20));
  e.rank = static_cast<int>(parse_int("RANK", rank, 0, std::numeric_limits<int>::max()));
  SL_CHECK(e.rank < e.world_size, UsageError, "environment variable RANK=", e.rank, " must be below WORLD_SIZE=",
           e.world_size, " (ranks are 0..", e.world_size - 1, ")");
  e.local_rank = e.rank;
  if (const char* lr = get("LOCAL_RANK")) {
    e.local_rank = static_cast<int>(parse_int("LOCAL_RANK", lr, 0, std::numeric_limits<int>::max()));
    SL_CHECK(e.local_rank < e.world_size, UsageError, "environment variable LOCAL_RANK=", e.local_rank,
             " must be below WORLD_SIZE=", e.world_size);
  }
  if (const char* t = get("STABLELEARN_DIST_TIMEOUT"))
    e.timeout = std::chrono::seconds(parse_int("STABLELEARN_DIST_TIMEOUT", t, 1, 24 * 3600));
  if (e.world_size == 1) return std::nullopt;  // one rank: the single-process path
  const char* addr = get("MASTER_ADDR");
  const char* port = get("MASTER_PORT");
  SL_CHECK(addr != nullptr && *addr != '\0', UsageError, "environment variable MASTER_ADDR is not set (RANK=", e.rank,
           ", WORLD_SIZE=", e.world_size, "; rank 0 serves the rendezvous at MASTER_ADDR:MASTER_PORT)");
  SL_CHECK(port != nullptr, UsageError, "environment variable MASTER_PORT is not set (RANK=", e.rank, ", WORLD_SIZE=",
           e.world_size, "; rank 0 serves the rendezvous at MASTER_ADDR:MASTER_PORT)");
  e.master_addr = addr;
  e.master_port = static_cast<int>(parse_int("MASTER_PORT", port, 1, 65535));
  return e;
}

std::string describe(const DistEnv& e) {
  return fmt::format("rank {} of {} (local rank {}), master {}:{}, timeout {} s", e.rank, e.world_size, e.local_rank,
                     e.master_addr, e.master_port, e.timeout.count() / 1000.0);
}

}  // namespace stablelearn::distributed
