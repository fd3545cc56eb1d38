#!/usr/bin/env bash
# Low-rank weight trajectory (Li et al. 2018 "Visualizing the loss landscape", PCA directions): an MLP
# 784-50-10 trained with SGD (batch 32, η = 0.05, cross-entropy) on the first 2000 Fashion-MNIST
# training images for 20 epochs (1240 steps), a checkpoint every 20 steps; PCA of the checkpoints. About 30 s.
# Usage: scripts/diag_trajectory.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
report=$(cat <<'PY'
import json, sys
j = json.load(sys.stdin)
r = j["explained_variance_ratio"]
print("%d checkpoints of D = %d: top-3 explained variance %s (sum %.3f), r90 = %d, effective rank %.2f, test acc %.3f"
      % (j["checkpoints"], j["parameters"], ", ".join("%.3f" % v for v in r), j["top_cumulative"], j["rank_90"],
         j["effective_rank"], j["test_accuracy"]))
PY
)
"$bin" --threads 1 diagnose trajectory --samples 2000 --hidden 50 --lr 0.05 --batch-size 32 --epochs 20 --every 20 --loss ce \
  | python3 -c "$report"
