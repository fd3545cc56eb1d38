#!/usr/bin/env bash
# Set everything up (packages + build) and run the main demo.
#   scripts/demo.sh [extra arguments for 'stablelearn demo']
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
echo "==> stablelearn demo"
"$here/build/stablelearn" demo "$@"
