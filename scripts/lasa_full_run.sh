#!/usr/bin/env bash
# The full LASA 2D continual-learning experiment (26 tasks, 15 000 iterations per task, paper
# hyper-parameters): CHN -> sNODE with the stochastic regulariser (CHN-1), with the full one
# (CHN-all), and fine-tuning (beta = 0). About 15 h per run on a 2-core machine; runs resume where
# they stopped when the script is started again.
#   scripts/lasa_full_run.sh [OUT=runs/lasa2d_full] [extra --set arguments ...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/lasa2d_full}; shift || true
bin=$here/build/stablelearn
run() {  # name config [--set ...]
  local name=$1 cfg=$2; shift 2
  local resume=()
  [ -f "$out/$name/checkpoint.json" ] && resume=(--resume)
  "$bin" lfd train "$here/configs/$cfg" --out "$out/$name" "${resume[@]}" "$@"
}
run chn1 lasa2d_chn_snode_stochastic.toml "$@"
run chnall lasa2d_chn_snode_full.toml "$@"
run finetune lasa2d_chn_snode_stochastic.toml --set train.beta=0 "$@"
python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
print("run | median DTW over all tasks after the last task | ACC | BWT | total training h")
for name in ("chn1", "chnall", "finetune"):
    s = json.load(open(f"{out}/{name}/summary.json"))
    last = s["median_errors"][f"train_task_{s['completed_tasks'] - 1}"]
    dtw = statistics.median(v["dtw"] for v in last.values())
    cl = s.get("cl_scores", {})
    print(f"{name} | {dtw:.0f} | {cl.get('ACC', float('nan')):.3f} | {cl.get('BWT', float('nan')):.3f} | "
          f"{sum(s['per_task_train_seconds']) / 3600:.1f}")
PY
