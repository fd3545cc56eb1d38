#!/usr/bin/env bash
# Intrinsic dimension (Li, Farkhoor, Liu, Yosinski, ICLR 2018) of a 784-200-200-10 MLP (D = 199,210)
# on Fashion-MNIST: the first 1000 training images, 1000 test images, 200 full-batch Adam steps for
# the full model (rate 1e-3) and in random dense subspaces of dimension d (rate 1e-2); d_int90 in
# both conventions: test accuracy ≥ 0.90 (absolute) and ≥ 90 % of the full model's test accuracy.
# A few minutes on one thread (memory: the D × d projection, 0.6 GB at d = 800).
# Usage: scripts/diag_intrinsic_dim.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
print("full model: test acc %.3f (train %.3f)" % (j["full_test_accuracy"], j["full_train_accuracy"]))
for r in j["subspaces"]:
    print("  d = %4d: test acc %.3f  train acc %.3f" % (r["d"], r["test_accuracy"], r["train_accuracy"]))
print("d_int90 absolute (test acc >= %.2f): %s" % (j["absolute_threshold"], j["d_int90_absolute"]))
print("d_int90 relative (test acc >= 0.9 x full = %.3f): %s" % (j["relative_threshold"], j["d_int90_relative"]))
print("%.0f s" % j["seconds"])
PY
)
"$bin" --threads 1 diagnose intrinsic-dim --samples 1000 --test-samples 1000 --hidden 200,200 --dims 10,25,50,100,200,400,800 \
  --steps 200 | python3 -c "$report"
