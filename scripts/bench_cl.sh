#!/usr/bin/env bash
# Seconds per training epoch of `stablelearn cl run` (bench/cl_epoch.toml) against the equivalent
# plain PyTorch-Python loop (bench/python/cl_epoch.py, Debian's python3-torch), with 1 and 2
# threads, at batch 128 (without and with continual evaluation every 10 iterations, 500 test images)
# and batch 10; and the same epochs against their GEMM floor (bench_cl_step's BM_GemmFloor: the
# matrix products of forward and backward alone, summed over the epoch's batches). Medians of
# REPS (default 5) repetitions, stablelearn and Python alternating, all in this one run.
#
# Both sides run the same OpenBLAS kernels: stablelearn re-executes itself with
# OPENBLAS_CORETYPE=<fast core> where OpenBLAS mis-detects the CPU (core/env.cpp,
# select_blas_kernels) and Python does not, so this script exports the core that
# `stablelearn --version` reports for both (and for the floor).
#
# Usage: scripts/bench_cl.sh [python|floor|all]   (default all). Needs `apt-get install
# python3-torch` for the Python column (skipped otherwise) and build/bench_cl_step for the floor.
# BASELINE_BIN=/path/to/an/older/stablelearn adds that build's s/epoch, alternating with the others.
# THREADS="1" (default "1 2") and BATCHES="10" (default "128 10") restrict the rows.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/build/stablelearn
floor_bin=$root/build/bench_cl_step
mode=${1:-all}
reps=${REPS:-5}
threads_list=${THREADS:-1 2}
batches=${BATCHES:-128 10}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

core=$("$bin" --version | awk '/^BLAS core/ {print $3}')
[ -n "$core" ] && export OPENBLAS_CORETYPE=$core
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} for both sides; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "load before: $(uptime | sed 's/.*load average: //')"

cpp_epoch() {  # threads every batch seed [binary] -> seconds per epoch of one run (3 epochs)
  rm -rf "$tmp/run"
  "${5:-$bin}" --threads "$1" cl run "$root/bench/cl_epoch.toml" --out "$tmp/run" --set eval.every="$2" --set train.seed="$4" \
    --set train.batch_size="$3" --quiet >/dev/null 2>&1
  grep -A1 '"train_seconds"' "$tmp/run/summary.json" | tail -1 | tr -d ' ,' | awk '{print $1/3}'
}
have_python() { /usr/bin/python3 -c "import torch" 2>/dev/null; }
py_epoch() {  # threads every batch seed
  /usr/bin/python3 "$root/bench/python/cl_epoch.py" --threads "$1" --every "$2" --batch "$3" --epochs 3 --repeats 1 --seed "$4"
}

if [ "$mode" = python ] || [ "$mode" = all ]; then
  echo
  base_h=""; base_s=""
  [ -n "${BASELINE_BIN:-}" ] && base_h=" baseline build s/epoch | Python / baseline |" && base_s="---:|---:|"
  echo "| threads | batch | continual eval | stablelearn s/epoch | PyTorch-Python s/epoch | speed-up |$base_h"
  echo "|---|---|---|---:|---:|---:|$base_s"
  for batch in $batches; do
    for t in $threads_list; do
      for every in 0 10; do
        [ "$batch" = 10 ] && [ "$every" = 10 ] && continue
        : >"$tmp/c"; : >"$tmp/p"; : >"$tmp/r"; : >"$tmp/b"; : >"$tmp/rb"
        for rep in $(seq 1 "$reps"); do
          c=$(cpp_epoch "$t" "$every" "$batch" "$rep"); echo "$c" >>"$tmp/c"
          if [ -n "${BASELINE_BIN:-}" ]; then bb=$(cpp_epoch "$t" "$every" "$batch" "$rep" "$BASELINE_BIN"); echo "$bb" >>"$tmp/b"; fi
          if have_python; then
            p=$(py_epoch "$t" "$every" "$batch" "$rep"); echo "$p" >>"$tmp/p"
            awk -v c="$c" -v p="$p" 'BEGIN {print p / c}' >>"$tmp/r"
            [ -n "${BASELINE_BIN:-}" ] && awk -v c="$bb" -v p="$p" 'BEGIN {print p / c}' >>"$tmp/rb"
          fi
        done
        c=$(median <"$tmp/c")
        if have_python; then
          p=$(median <"$tmp/p"); r=$(median <"$tmp/r")
          ratio=$(awk -v r="$r" 'BEGIN {printf "%.2fx", r}')
        else p="n/a"; ratio="n/a"; fi
        label=$([ "$every" = 0 ] && echo "off" || echo "every $every it, 500 images")
        extra=""
        if [ -n "${BASELINE_BIN:-}" ]; then
          extra=" $(median <"$tmp/b") | $(median <"$tmp/rb" | awk '{printf "%.2fx", $1}') |"
        fi
        echo "| $t | $batch | $label | $c | $p | $ratio |$extra"
      done
    done
  done
  echo "(speed-up: median of the per-repetition ratios Python / stablelearn)"
fi

if [ "$mode" = floor ] || [ "$mode" = all ]; then
  [ -x "$floor_bin" ] || { echo "build $floor_bin first (cmake --build build --target bench_cl_step)"; exit 1; }
  floor_us() {  # batch threads -> median µs of BM_GemmFloor
    "$floor_bin" --benchmark_filter="BM_GemmFloor/batch:$1/threads:$2/" --benchmark_repetitions=5 \
      --benchmark_report_aggregates_only=true --benchmark_format=csv 2>/dev/null |
      awk -F, '/_median/ {t=$4; u=$5; gsub(/"/, "", u); print (u == "ns" ? t / 1000 : (u == "ms" ? t * 1000 : t))}'
  }
  echo
  echo "| threads | batch | stablelearn s/epoch | GEMM floor s/epoch | stablelearn / floor |"
  echo "|---|---|---:|---:|---:|"
  n=12000
  for batch in $batches; do
    for t in $threads_list; do
      : >"$tmp/c"; : >"$tmp/f"; : >"$tmp/r"
      full=$((n / batch)); rest=$((n % batch))
      for rep in $(seq 1 "$reps"); do
        c=$(cpp_epoch "$t" 0 "$batch" "$rep"); echo "$c" >>"$tmp/c"
        fb=$(floor_us "$batch" "$t")
        fr=0; [ "$rest" -gt 0 ] && fr=$(floor_us "$rest" "$t")
        f=$(awk -v a="$fb" -v b="$fr" -v k="$full" 'BEGIN {print (k * a + b) / 1e6}'); echo "$f" >>"$tmp/f"
        awk -v c="$c" -v f="$f" 'BEGIN {print c / f}' >>"$tmp/r"
      done
      printf "| %s | %s | %s | %.4f | %.3f |\n" "$t" "$batch" "$(median <"$tmp/c")" "$(median <"$tmp/f")" "$(median <"$tmp/r")"
    done
  done
  echo "(floor s/epoch: $((n / 128)) batches of 128 + one of $((n % 128)), or $((n / 10)) of 10; ratio: median of per-repetition ratios)"
fi
echo "load after: $(uptime | sed 's/.*load average: //')"
