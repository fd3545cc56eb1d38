#!/usr/bin/env bash
# Per-task training time of CHN -> sNODE (LASA 2D, paper sizes) with the stochastic regulariser
# (one sampled past task, "CHN-1") and the full one (all past tasks, "CHN-all").
#   scripts/chn_scaling.sh [tasks=8] [iterations=30] [threads=2]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tasks=${1:-8}; iters=${2:-30}; threads=${3:-2}
out=$(mktemp -d)
for regs in 1 0; do
  "$here/build/stablelearn" --threads "$threads" lfd train "$here/configs/lasa2d_chn_snode_stochastic.toml" \
    --out "$out/regs$regs" --set data.tasks="$tasks" --set train.iterations="$iters" \
    --set train.num_regs="$regs" --set eval.evaluate=false 2>/dev/null
done
python3 - "$out" "$iters" <<'PY'
import json, sys
out, iters = sys.argv[1], int(sys.argv[2])
a = json.load(open(f"{out}/regs1/summary.json"))["per_task_train_seconds"]
b = json.load(open(f"{out}/regs0/summary.json"))["per_task_train_seconds"]
print("task | CHN-1 ms/iteration | CHN-all ms/iteration")
for i, (x, y) in enumerate(zip(a, b)):
    print(f"{i} | {1000*x/iters:.1f} | {1000*y/iters:.1f}")
print(f"total s | {sum(a):.1f} | {sum(b):.1f}")
PY
rm -rf "$out"
