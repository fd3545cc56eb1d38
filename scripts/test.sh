#!/usr/bin/env bash
# Set everything up (packages + build) and run the default test suite with ctest.
#   scripts/test.sh [extra ctest arguments]
# Environment: SL_JOBS (build and test parallelism, default 2).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
echo "==> running tests"
cd "$here/build"
ctest --output-on-failure -j "${SL_JOBS:-2}" --timeout 900 "$@"
