#!/usr/bin/env bash
# Milliseconds per training iteration and peak resident memory of `stablelearn lfd train` against
# the published Python implementation (github.com/sayantanauddy/clfd-snode, run through
# bench/python/lfd_reference_iteration.py), for HN -> sNODE (h = 100) and CHN-1 -> sNODE
# (h = 1000) on LASA 2D with the paper's hyper-parameters, 1 and 2 threads. Task 0 is trained
# without regulariser, task 1 with the Adam look-ahead and the output regulariser. Medians of REPS
# repetitions, C++ and Python alternating, all measured in this one run.
#
# Usage: scripts/bench_lfd_python.sh REFERENCE_CHECKOUT [REPS] [HN_ITERS] [CHN_ITERS]
# Needs Debian's python3-torch (`apt-get install python3-torch`) and a checkout of the reference
# (`git clone https://github.com/sayantanauddy/clfd-snode`); nothing is downloaded here.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ref=${1:?usage: $0 REFERENCE_CHECKOUT [REPS] [HN_ITERS] [CHN_ITERS]}
reps=${2:-3}
iters_hn=${3:-100}
iters_chn=${4:-20}
bin=$root/build/stablelearn
py=/usr/bin/python3
[ -x "$bin" ] || { echo "$bin: not built (run scripts/build.sh)" >&2; exit 1; }
$py -c "import torch" 2>/dev/null || { echo "$py: no torch module (apt-get install python3-torch)" >&2; exit 1; }
[ -f "$ref/tr_hn_lsddm.py" ] || { echo "$ref: not a checkout of sayantanauddy/clfd-snode" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time: missing (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One C++ run: prints "task0_ms task1_ms peak_mib".
cpp_run() {  # model threads iters
  rm -rf "$tmp/run"
  /usr/bin/time -f "%M" -o "$tmp/rss" "$bin" --threads "$2" lfd train "$root/configs/lasa2d_$1_snode_stochastic.toml" \
    --out "$tmp/run" --set data.tasks=2 --set train.iterations="$3" --set eval.evaluate=false >/dev/null 2>&1
  $py - "$tmp/run/summary.json" "$3" "$(tail -1 "$tmp/rss")" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["per_task_train_seconds"]
k = int(sys.argv[2])
print(f"{1000 * s[0] / k:.1f} {1000 * s[1] / k:.1f} {int(sys.argv[3]) / 1024:.0f}")
EOF
}
py_run() {  # model threads iters
  $py "$root/bench/python/lfd_reference_iteration.py" --reference "$ref" --model "$1" --threads "$2" \
    --iterations "$3" --tasks 2 --data-dir "$root/../shared/data/LASA/lasa_numpy" 2>/dev/null |
    $py -c 'import json,sys; r=json.load(sys.stdin); m=r["ms_per_iteration"]; print("%.1f %.1f %.0f" % (m[0], m[1], r["peak_rss_mib"]))'
}
col() { awk -v c="$1" '{print $c}' | median; }

echo "Baseline resident memory: stablelearn --help $(/usr/bin/time -f %M "$bin" --help 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}') MiB;" \
  "python3 -c 'import torch' $(/usr/bin/time -f %M $py -c 'import torch' 2>&1 | tail -1 | awk '{printf "%.0f", $1/1024}') MiB"
echo
echo "| model | threads | stablelearn task 0 / task 1 (ms/it) | Python task 0 / task 1 (ms/it) | speed-up task 0 / task 1 | peak MiB stablelearn / Python |"
echo "|---|---:|---:|---:|---:|---:|"
for model in hn chn; do
  iters=$([ "$model" = hn ] && echo "$iters_hn" || echo "$iters_chn")
  for t in 1 2; do
    : >"$tmp/c"; : >"$tmp/p"
    for ((r = 0; r < reps; r++)); do
      cpp_run "$model" "$t" "$iters" >>"$tmp/c"
      py_run "$model" "$t" "$iters" >>"$tmp/p"
    done
    c0=$(col 1 <"$tmp/c"); c1=$(col 2 <"$tmp/c"); cm=$(col 3 <"$tmp/c")
    p0=$(col 1 <"$tmp/p"); p1=$(col 2 <"$tmp/p"); pm=$(col 3 <"$tmp/p")
    label=$([ "$model" = hn ] && echo "HN -> sNODE h=100" || echo "CHN-1 -> sNODE h=1000")
    awk -v l="$label" -v t="$t" -v c0="$c0" -v c1="$c1" -v p0="$p0" -v p1="$p1" -v cm="$cm" -v pm="$pm" 'BEGIN {
      printf "| %s | %s | %s / %s | %s / %s | %.2fx / %.2fx | %s / %s |\n", l, t, c0, c1, p0, p1, p0 / c0, p1 / c1, cm, pm }'
  done
done
echo
echo "($reps repetitions each, medians; $iters_hn iterations per task for HN, $iters_chn for CHN; $(nproc) cores, $(date -u +%F))"
