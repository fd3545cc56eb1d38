#!/usr/bin/env bash
# trace(H) against 2/(ηp) at SGD minima (Wu & Su, ICML 2023; Mulayoff & Michaeli 2023): an MLP
# 784-50-10 trained with SGD on the first 500 Fashion-MNIST training images for 40 epochs, then
# λ_max (Lanczos), tr(H) (Hutch++, 60 products) and the thresholds 2/η, 2/(ηp) of the full-data
# Hessian. Losses: mse-scalar (scalar output f = first logit, target ±1 for classes 0–4 / 5–9,
# rank-one per-sample Hessians: the setting of the condition) and mse (½‖f − onehot‖², 10
# outputs). About 2 min on one thread.
# Usage: scripts/diag_sgd_minimum.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
s = j["stability"]
if s["trace"] is None:
    print("%s eta=%g B=%d epochs=%d: diverged (loss %s)" % (j["loss_kind"], j["learning_rate"], j["batch_size"], j["epochs"], j["loss"]))
    sys.exit(0)
print("%s eta=%g B=%d epochs=%d: loss %.4f train acc %.3f test acc %.3f | lambda_max %.2f (2/eta %.0f) | tr(H) %.1f +- %.1f"
      " (2/(eta p) %.0f, eta p tr/2 = %.2f) | eta*tr(H) = %.2f"
      % (j["loss_kind"], j["learning_rate"], j["batch_size"], j["epochs"], j["loss"], j["train_accuracy"], j["test_accuracy"], s["lambda_max"],
         s["gd_threshold"], s["trace"], s["trace_stderr"], s["trace_threshold"], s["trace_ratio"], j["learning_rate"] * s["trace"]))
PY
)
for run in "mse-scalar 0.01 1" "mse-scalar 0.02 1" "mse-scalar 0.05 1" "mse-scalar 0.05 4" "mse 0.01 1" "mse 0.02 1"; do
  set -- $run
  "$bin" --threads 1 diagnose sgd-minimum --samples 500 --hidden 50 --loss "$1" --lr "$2" --batch-size "$3" --epochs 40 \
    | python3 -c "$report"
done
