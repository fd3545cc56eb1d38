// Small helpers shared by the `diagnose` command files (private to src/cli/).
#pragma once

#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

namespace stablelearn::cli {

/// Seconds since t0 (the "seconds" of every diagnose report).
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Prints a report: one JSON object on stdout.
inline void write_json(const nlohmann::json& out) { std::cout << out.dump(2) << "\n"; }

}  // namespace stablelearn::cli
