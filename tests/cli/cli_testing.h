// Running the stablelearn binary from the CLI test suites.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "stablelearn/core/fs.h"
#include "testing.h"

namespace stablelearn::testing {

struct CliResult {
  int status = -1;
  std::string out, err;
  nlohmann::json js() const { return nlohmann::json::parse(out); }
};

/// Runs `stablelearn --threads T ARGS` (T = test_threads(), 1 by default) from the build folder, capturing stdout and stderr.
inline CliResult run_cli(const std::string& args) {
  static const std::filesystem::path dir = temp_dir("cli_io");
  const auto out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = (binary_dir() / "stablelearn").string() + " --threads " + std::to_string(test_threads()) + " " + args + " >" + out.string() + " 2>" +
                          err.string();
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file_text(out);
  r.err = read_file_text(err);
  return r;
}

/// A usage error: exit status 2, `text` in the one-line message on stderr, nothing on stdout.
inline void expect_usage_error(const std::string& args, const std::string& text) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.status, 2) << args;
  EXPECT_NE(r.err.find(text), std::string::npos) << args << ": " << r.err;
  EXPECT_TRUE(r.out.empty()) << args;
}

}  // namespace stablelearn::testing
