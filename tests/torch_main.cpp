// main() of every libtorch test binary: one intra-op thread (deterministic, no oversubscription
// when ctest runs suites in parallel) and a fixed global seed. SL_TEST_THREADS=N runs the suite
// with N intra-op threads instead (libtorch and the OpenMP BLAS), to check that no assertion
// depends on the thread count. OpenBLAS runs the kernels the command line would
// (select_blas_kernels), so the suite checks the numbers users get.
#include <gtest/gtest.h>

#include "stablelearn/core/env.h"
#include "testing.h"

int main(int argc, char** argv) {
  stablelearn::select_blas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  stablelearn::apply_threads(stablelearn::testing::test_threads());
  stablelearn::seed_everything(0);
  return RUN_ALL_TESTS();
}
