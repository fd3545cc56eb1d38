#!/usr/bin/env bash
# Seconds per training epoch of `stablelearn cl run` (bench/cl_epoch.toml) against the equivalent
# plain PyTorch-Python loop (bench/python/cl_epoch.py, Debian's python3-torch), with 1 and 2
# threads, without and with continual evaluation every 10 iterations (500 test images). Medians of
# 3 repetitions, all measured in this one run. Needs `apt-get install python3-torch` for the Python
# column (it is skipped otherwise).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/build/stablelearn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpp_epoch() {  # threads every batch
  for rep in 1 2 3; do
    rm -rf "$tmp/run"
    "$bin" --threads "$1" cl run "$root/bench/cl_epoch.toml" --out "$tmp/run" --set eval.every="$2" --set train.seed=$rep \
      --set train.batch_size="$3" >/dev/null 2>&1
    grep -A1 '"train_seconds"' "$tmp/run/summary.json" | tail -1 | tr -d ' ,' | awk '{print $1/3}'
  done | median
}
py_epoch() {
  if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 "$root/bench/python/cl_epoch.py" --threads "$1" --every "$2" --batch "$3" --epochs 3 --repeats 3
  else echo "n/a"; fi
}
echo "| threads | batch | continual eval | stablelearn s/epoch | PyTorch-Python s/epoch | speed-up |"
echo "|---|---|---|---|---|---|"
for batch in 128 10; do
  for t in 1 2; do
    for every in 0 10; do
      [ "$batch" = 10 ] && [ "$every" = 10 ] && continue
      c=$(cpp_epoch $t $every $batch)
      p=$(py_epoch $t $every $batch)
      ratio=$(awk -v c="$c" -v p="$p" 'BEGIN { if (p == "n/a") print "n/a"; else printf "%.2fx", p / c }')
      label=$([ "$every" = 0 ] && echo "off" || echo "every $every it, 500 images")
      echo "| $t | $batch | $label | $c | $p | $ratio |"
    done
  done
done
