#!/usr/bin/env bash
# The stability gap (De Lange et al., ICLR 2023) of experience replay on split Fashion-MNIST:
# configs/cl/split_fmnist_er_balanced.toml (class-balanced memory, updated at task ends) with
# continual evaluation every 5 iterations on 500 fixed test images per task. Copies the per-task
# accuracy curves to docs/figures/stability_gap_er_split_fmnist.svg and prints the metrics.
# Usage: scripts/cl_stability_gap.sh [THREADS] [RUN_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
threads=${1:-2}
run=${2:-$root/runs/stability_gap_er}
rm -rf "$run"
"$root/build/stablelearn" --threads "$threads" cl run "$root/configs/cl/split_fmnist_er_balanced.toml" --out "$run" \
  --set eval.every=5
mkdir -p "$root/docs/figures"
cp "$run/accuracy_curves.svg" "$root/docs/figures/stability_gap_er_split_fmnist.svg"
echo "figure: docs/figures/stability_gap_er_split_fmnist.svg"
