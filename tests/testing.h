// Helpers shared by the test suites.
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <algorithm>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

namespace stablelearn::testing {

/// The shared/ folder beside the checkout (reference data). CI always has it; a missing folder
/// fails the test that needs it (it is never silently skipped).
inline std::filesystem::path shared_dir() { return SL_SHARED_DIR; }
inline std::filesystem::path shared_data() { return std::filesystem::path(SL_SHARED_DIR) / "data"; }
/// The project's shipped data/ folder.
inline std::filesystem::path project_data() { return SL_DATA_DIR; }
/// Committed test fixtures (tests/fixtures).
inline std::filesystem::path fixtures() { return SL_TEST_FIXTURES; }
/// The checkout (source folder).
inline std::filesystem::path source_dir() { return std::filesystem::path(SL_TEST_FIXTURES).parent_path().parent_path(); }
/// The build folder (where the stablelearn binary is).
inline std::filesystem::path binary_dir() { return SL_BINARY_DIR; }

/// Intra-op threads the suites run with: 1 (deterministic, no oversubscription under ctest -j),
/// or SL_TEST_THREADS=N to check that no assertion depends on the thread count. tests/torch_main.cpp
/// applies it; suites that set threads themselves come back to it, and run_cli passes it on.
inline int test_threads() {
  const char* env = std::getenv("SL_TEST_THREADS");
  return env != nullptr && *env != '\0' ? std::max(1, std::atoi(env)) : 1;
}

/// A fresh empty temporary folder per call, removed by the caller's fixture if wanted.
inline std::filesystem::path temp_dir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path() /
              ("stablelearn_test_" + tag + "_" + std::to_string(::getpid()) + "_" +
               std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  return base;
}

/// Fails unless `fn` throws exactly `E` (or a subclass) with a message containing `part`.
template <typename E>
void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "expected an exception containing '" << part << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << part;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type, message: " << e.what();
  }
}

}  // namespace stablelearn::testing
