#!/usr/bin/env bash
# Intrinsic dimension (Li, Farkhoor, Liu, Yosinski, ICLR 2018) of a 784-200-200-10 MLP (D = 199,210)
# on Fashion-MNIST: the first 1000 training images, 1000 test images, 200 full-batch Adam steps for
# the full model (rate 1e-3) and in random subspaces of dimension d (rate 1e-2), SEEDS projections
# per d (same initialisation θ₀); per d the mean ± sample std of the test accuracy, and d_int90 in
# both conventions from the seed means: mean test accuracy ≥ 0.90 (absolute) and ≥ 90 % of the full
# model's test accuracy (relative).
# Projection: fastfood (default; memory O(D)), sparse (density 1/√D) or dense (memory D·d, 0.6 GB at
# d = 800). Measured on the shared 2-core VM, one thread, 7 d × 3 seeds + the full model: 102 s
# (fastfood), 64 s (sparse), 240 s (dense); results in docs/diagnostics.md.
# Usage: scripts/diag_intrinsic_dim.sh [BUILD_DIR] [PROJECTION]
#   environment: SEEDS (3), DIMS (10,25,50,100,200,400,800), STEPS (200), SAMPLES (1000)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
projection=${2:-fastfood}
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
print("%s projections, %d seed(s) per d" % (j["projection"], j["seeds"]))
print("full model: test acc %.3f (train %.3f)" % (j["full_test_accuracy"], j["full_train_accuracy"]))
for r in j["subspaces"]:
    sd = r["test_accuracy_std"]
    print("  d = %4d: test acc %.3f +- %s  train acc %.3f   (seeds: %s)" % (
        r["d"], r["test_accuracy"], "n/a" if sd is None else "%.3f" % sd, r["train_accuracy"],
        " ".join("%.3f" % a for a in r["test_accuracies"])))
print("d_int90 absolute (mean test acc >= %.2f): %s" % (j["absolute_threshold"], j["d_int90_absolute"]))
print("d_int90 relative (mean test acc >= 0.9 x full = %.3f): %s" % (j["relative_threshold"], j["d_int90_relative"]))
print("%.0f s" % j["seconds"])
PY
)
"$bin" --threads 1 diagnose intrinsic-dim --samples "${SAMPLES:-1000}" --test-samples 1000 --hidden 200,200 \
  --dims "${DIMS:-10,25,50,100,200,400,800}" --steps "${STEPS:-200}" --projection "$projection" --seeds "${SEEDS:-3}" |
  python3 -c "$report"
