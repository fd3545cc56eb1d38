#!/usr/bin/env bash
# Issue 16 item 4: the paper's long LASA 2D sequence (all 26 shapes) with the discrete-time sNODE
# (configs/demo_discrete.toml: CHN -> autonomous sNODE trained, evaluated and executed as the
# certified map Φ at the data's period, docs/lfd.md §7), at the demo's sizes and ITERATIONS per task
# (default 600; the paper trains 15 000 at its own sizes): CHN-1 (one sampled past task regularised
# per iteration), CHN-all (every past task) and fine-tuning (beta = 0). Then `lfd stability` of every
# skill of every run from STARTS starts. Everything resumes: a run continues from its last
# checkpoint, a stability file already written is kept. Last, the summary (scripts/lasa26_summary.py)
# goes to OUT/summary.md.
#   scripts/lasa26_discrete.sh [OUT=runs/lasa26_discrete] [ITERATIONS=600]
#   env: BIN (default build/stablelearn), THREADS (default 2), STARTS (default 50), SEED (default 100),
#        METHODS (default "chn1 chnall finetune": the runs this call trains and checks; separate calls
#        with one method each may run side by side, each touches only its own run directory;
#        "chn1cert": CHN-1 with the certificate penalty train.cert_weight = CERT, default 0.01),
#        CONFIG (default configs/demo_discrete.toml; e.g. configs/demo_stable.toml: trained with Euler,
#        executed as Φ), SETS (more "section.key=value" overrides for every run, space-separated)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/lasa26_discrete}
iters=${2:-600}
bin=${BIN:-$here/build/stablelearn}
threads=${THREADS:-2}
starts=${STARTS:-50}
seed=${SEED:-100}
mkdir -p "$out"
train() {  # name [--set ...]
  local name=$1; shift
  local resume=()
  [ -f "$out/$name/checkpoint.json" ] && resume=(--resume)
  echo "==> $(date -u +%H:%M:%S) train $name" >&2
  local extra=()
  for kv in ${SETS:-}; do extra+=(--set "$kv"); done
  "$bin" --threads "$threads" lfd train "$here/${CONFIG:-configs/demo_discrete.toml}" --out "$out/$name" "${resume[@]}" \
    --set data.tasks=0 --set train.iterations="$iters" --set train.seed="$seed" "${extra[@]}" "$@"
}
stability() {  # name
  local name=$1 tasks
  tasks=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['completed_tasks'])" "$out/$name/summary.json")
  for ((j = 0; j < tasks; j++)); do
    [ -s "$out/$name/stability_$j.json" ] && continue
    echo "==> $(date -u +%H:%M:%S) stability $name task $j" >&2
    "$bin" --threads "$threads" lfd stability "$out/$name" --task "$j" --starts "$starts" > "$out/$name/stability_$j.json.tmp"
    mv "$out/$name/stability_$j.json.tmp" "$out/$name/stability_$j.json"
  done
}
for method in ${METHODS:-chn1 chnall finetune}; do
  case $method in
    chn1) train chn1 --set train.num_regs=1 ;;
    chn1cert) train chn1cert --set train.num_regs=1 --set train.cert_weight="${CERT:-0.01}" ;;
    chnall) train chnall --set train.num_regs=0 ;;
    finetune) train finetune --set train.beta=0 ;;
    *) echo "unknown method '$method' (chn1, chn1cert, chnall, finetune)" >&2; exit 2 ;;
  esac
  stability "$method"
done
titles=()
for method in chn1 chn1cert chnall finetune; do
  [ -f "$out/$method/eval_results.json" ] || continue
  case $method in
    chn1) titles+=("chn1:CHN-1 → sNODE (Φ)") ;;
    chn1cert) titles+=("chn1cert:CHN-1 → sNODE (Φ) + certificate penalty ${CERT:-0.01}") ;;
    chnall) titles+=("chnall:CHN-all → sNODE (Φ)") ;;
    finetune) titles+=("finetune:fine-tuning (β = 0)") ;;
  esac
done
CONFIG="${CONFIG:-configs/demo_discrete.toml}" SETS="${SETS:-}" python3 "$here/scripts/lasa26_summary.py" "$out" "$iters" "${titles[@]}" > "$out/summary.md"
echo "wrote $out/summary.md" >&2
