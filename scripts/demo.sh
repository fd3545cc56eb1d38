#!/usr/bin/env bash
# Set everything up (packages + build) and run the main demo.
#   scripts/demo.sh [extra arguments for 'stablelearn demo']
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Only the command-line program is built; scripts/test.sh builds the tests and benchmarks too.
"$here/scripts/setup.sh" --target stablelearn
echo "==> stablelearn demo"
"$here/build/stablelearn" demo "$@"
