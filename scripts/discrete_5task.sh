#!/usr/bin/env bash
# Issue 16 item 2: the 5-task LASA sequence with the discrete-time sNODE (configs/demo_discrete.toml:
# CHN -> autonomous sNODE trained, evaluated and executed as the certified map Φ at the data's
# period, docs/lfd.md §7) for several seeds and variants, then `lfd stability` of every skill from
# STARTS starts (converged fraction, share of pulled steps). Everything resumes: a finished run and a
# stability file already written are kept, an interrupted run continues from its checkpoint. The
# summary (scripts/discrete_5task_summary.py) goes to OUT/summary.md.
#   scripts/discrete_5task.sh [OUT=runs/discrete_5task]
#   env: BIN (default build/stablelearn), THREADS (1), STARTS (50), SEEDS ("100 101 102"),
#        VARIANTS: "NAME:KEY=VALUE,KEY=VALUE ..." (default "base: cert01:train.cert_weight=0.1"); the
#          pseudo-key config=PATH trains another configuration (e.g. the Euler baseline
#          config=configs/demo_autonomous.toml,model.eps=1e-4) and stability=0 skips the checks,
#        CONFIG (default configs/demo_discrete.toml: the configuration of variants without config=),
#        JOBS (2: runs trained side by side, each on THREADS threads), BASELINE (a variant name: the
#        summary adds each variant's DTW ratio to it)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-runs/discrete_5task}
bin=${BIN:-$here/build/stablelearn}
threads=${THREADS:-1}
starts=${STARTS:-50}
seeds=${SEEDS:-100 101 102}
variants=${VARIANTS:-base: cert01:train.cert_weight=0.1}
jobs=${JOBS:-2}
mkdir -p "$out"

one() {  # variant-spec seed
  local name=${1%%:*} sets=${1#*:} seed=$2
  local run="$out/${name}_s$seed" args=() config="$here/${CONFIG:-configs/demo_discrete.toml}" check=1
  IFS=',' read -ra kv <<< "$sets"
  for s in "${kv[@]}"; do
    case "$s" in
      "") ;;
      config=*) config="$here/${s#config=}" ;;
      stability=0) check=0 ;;
      *) args+=(--set "$s") ;;
    esac
  done
  if ! grep -q '"completed_tasks": 5' "$run/summary.json" 2>/dev/null; then
    local resume=()
    [ -f "$run/checkpoint.json" ] && resume=(--resume)
    echo "==> $(date -u +%H:%M:%S) train ${name}_s$seed" >&2
    "$bin" --threads "$threads" lfd train "$config" --out "$run" --quiet "${resume[@]}" \
      --set data.tasks=5 --set train.seed="$seed" "${args[@]}" > "$run.log" 2>&1
  fi
  for j in 0 1 2 3 4; do
    [ "$check" = 1 ] || break
    [ -s "$run/stab_$j.json" ] && continue
    "$bin" --threads "$threads" lfd stability "$run" --task "$j" --starts "$starts" > "$run/stab_$j.json.tmp"
    mv "$run/stab_$j.json.tmp" "$run/stab_$j.json"
  done
  echo "==> $(date -u +%H:%M:%S) done ${name}_s$seed" >&2
}

pids=()
for v in $variants; do
  for s in $seeds; do
    one "$v" "$s" &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 5; done
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
python3 "$here/scripts/discrete_5task_summary.py" "$out" $variants > "$out/summary.md"
cat "$out/summary.md"
exit $status
