#!/usr/bin/env bash
# Build the project with AddressSanitizer + UndefinedBehaviorSanitizer in its own build folder
# (build-asan/, the compiler of the ordinary build, RelWithDebInfo) and run the default test suite
# under them. Undefined behaviour aborts (-fno-sanitize-recover), leaks are reported at exit, so any
# finding fails its test.
#
#   scripts/sanitize.sh [extra ctest arguments, e.g. -R 'test_io|test_core']
#
# Environment: SL_ASAN_BUILD (build folder, default build-asan), SL_JOBS (build and test
# parallelism, default 2). The first build takes about as long as the ordinary one (libtorch is
# not rebuilt: only our code is instrumented); the suite runs 2-3x slower than without sanitizers.
#
# Suppressions (scripts/sanitize/lsan.supp) are for third-party code only, each explained there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SL_ASAN_BUILD:-$root/build-asan}
jobs=${SL_JOBS:-2}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSL_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j "$jobs"

# detect_leaks: LeakSanitizer at exit. allocator_may_return_null: a failed huge allocation returns
# NULL as glibc's malloc does (the readers' error paths are tested that way). The ODR check is off
# because libtorch's shared libraries and our static ones both carry a few of the same inline
# globals of the headers they share (not a violation of ours).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:detect_odr_violation=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/sanitize/lsan.supp:print_suppressions=0}
cd "$build"
# The browser test runs Node and Chromium, not our code.
ctest --output-on-failure -j "$jobs" --timeout 2700 -E 'report_browser' "$@"
