// main() of every libtorch test binary: one intra-op thread (deterministic, no oversubscription
// when ctest runs suites in parallel) and a fixed global seed.
#include <gtest/gtest.h>

#include "stablelearn/core/env.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  stablelearn::apply_threads(1);
  stablelearn::seed_everything(0);
  return RUN_ALL_TESTS();
}
