#!/usr/bin/env bash
# Short LASA 2D continual-learning comparison for the README results table: the first 5 shapes,
# configs/demo_autonomous.toml sizes (600 iterations per task), CHN -> autonomous sNODE with the
# stochastic output regulariser against the baselines FT, REP, SI and MAS (same sNODE target,
# same iterations), then `lfd stability` (automatic horizon) of every learned skill, twice: plain
# Euler on the data grid (stability_euler_task<J>.json) and the default Lyapunov-certified Euler
# (stability_task<J>.json; docs/lfd.md §2.2).
#   scripts/lfd_short_results.sh [OUT=runs/lfd_short] [BIN=build/stablelearn]
# About 5 min per method for training and evaluation, plus 1-5 min per skill for the certified
# stability check, with --threads 1 on a shared 2-core machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/lfd_short}
bin=${2:-$here/build/stablelearn}
tasks=5
mkdir -p "$out"
for method in hnet ft rep si mas; do
  if [ ! -f "$out/$method/summary.json" ] || ! grep -q "\"completed_tasks\": $tasks" "$out/$method/summary.json"; then
    rm -rf "${out:?}/$method"
    "$bin" --threads 1 lfd train "$here/configs/demo_autonomous.toml" --out "$out/$method" \
      --set data.tasks=$tasks --set model.method=$method 2>/dev/null
  fi
  for ((j = 0; j < tasks; j++)); do
    "$bin" --threads 1 lfd stability "$out/$method" --task $j --starts 50 --method euler > "$out/$method/stability_euler_task$j.json"
    "$bin" --threads 1 lfd stability "$out/$method" --task $j --starts 50 > "$out/$method/stability_task$j.json"
  done
done
python3 - "$out" "$tasks" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
print("method | task | DTW just learned | DTW after task %d | converged (Euler / certified) | max final distance (Euler / certified) / tolerance" % (n - 1))
for method in ("hnet", "ft", "rep", "si", "mas"):
    s = json.load(open(f"{out}/{method}/summary.json"))["median_errors"]
    for j in range(n):
        st = json.load(open(f"{out}/{method}/stability_task{j}.json"))
        eu = json.load(open(f"{out}/{method}/stability_euler_task{j}.json"))
        print(f"{method} | {j} | {s[f'train_task_{j}'][f'eval_task_{j}']['dtw']:.0f} | "
              f"{s[f'train_task_{n - 1}'][f'eval_task_{j}']['dtw']:.0f} | "
              f"{eu['converged_fraction']:.2f} / {st['converged_fraction']:.2f} | "
              f"{eu['max_final_distance']:.2f} / {st['max_final_distance']:.2f} / {st['tolerance']:.2f}")
PY
