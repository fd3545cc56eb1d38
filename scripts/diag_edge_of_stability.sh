#!/usr/bin/env bash
# Edge of stability (Cohen et al., ICLR 2021): full-batch GD with MSE (ℓ = ½(f − y)²) on the toy
# tanh MLP (2 inputs, 16 hidden units, 65 parameters, 64 samples), sharpness λ_max of the
# full-batch Hessian measured by 20 Lanczos steps every 100 steps. Prints, per learning rate, 2/η
# and λ_max along training. About 30 s on one thread.
# Usage: scripts/diag_edge_of_stability.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
t = j["trace"]
print("eta=%g  2/eta=%.3f  lambda_max: start %.3f  max %.3f (eta*max/2 = %.3f)  end %.3f  first within 10%% of 2/eta at step %s"
      "  final loss %.4g" % (j["learning_rate"], j["gd_threshold"], j["initial_lambda_max"], j["max_lambda_max"],
      j["max_sharpness_ratio"], j["final_lambda_max"], j["first_step_within_10pct_of_edge"], j["final_loss"]))
print("  step:lambda_max " + " ".join("%d:%.2f" % (r["step"], r["lambda_max"]) for r in t[::4]))
PY
)
for lr in 1.0 0.5 0.25 0.1; do
  "$bin" --threads 1 diagnose edge-of-stability --lr "$lr" --steps 4000 --every 100 | python3 -c "$report"
done
