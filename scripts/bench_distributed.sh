#!/usr/bin/env bash
# Data-parallel speed (issue 19 item 4): the same work as 1 process x 1 thread, 1 process x 2
# threads and 2 ranks x 1 thread (stablelearn launch), side by side in one run:
#  * cl: one epoch of task 0 of split Fashion-MNIST (12 000 images) with the small CNN, fine-tuning;
#  * lfd: CHN -> sNODE with the full regulariser (every past task), LASA 2D, 4 tasks x ITERS
#    iterations; the time of task 3 (3 past tasks regularised) is reported.
# cl also with STABLELEARN_DIST_OVERLAP=0 (gradient sums after backward, not overlapped with it).
# Times are the runs' own train_seconds (start-up and evaluation excluded), median of REPS.
#   scripts/bench_distributed.sh [BUILD_DIR] [OUT_DIR]   env: REPS (default 3), ITERS (default 20), KINDS (default "cl lfd")
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build}/stablelearn
out=${2:-$root/runs/bench_distributed}
reps=${REPS:-3}
iters=${ITERS:-20}
mkdir -p "$out"
cl_args="cl run $root/configs/cl/split_fmnist_finetune.toml --quiet --set model.kind=cnn --set stream.tasks=1 --set train.epochs=1 --set output.tensorboard=false --set output.figures=false"
lfd_args="lfd train $root/configs/lasa2d_chn_snode_full.toml --quiet --set data.tasks=4 --set train.iterations=$iters"
run() {  # name task_index command...
  local name=$1 task=$2; shift 2
  for r in $(seq 1 "$reps"); do
    local dir="$out/${name}_$r"
    rm -rf "$dir"
    "$@" --out "$dir" >/dev/null
    python3 -c "import json; s = json.load(open('$dir/summary.json')); print((s.get('train_seconds') or s['per_task_train_seconds'])[$task])"
  done | sort -g | awk -v n="$name" '{a[NR]=$1} END {printf "%-28s median %.3f s  (%s runs:", n, a[int((NR+1)/2)], NR; for (i=1;i<=NR;i++) printf " %.3f", a[i]; print ")"}'
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in ${KINDS:-cl lfd}; do
  if [ $kind = cl ]; then args=$cl_args; task=0; else args=$lfd_args; task=3; fi
  run "$kind 1 process x 1 thread" $task "$bin" --threads 1 $args
  run "$kind 1 process x 2 threads" $task "$bin" --threads 2 $args
  run "$kind 2 ranks x 1 thread" $task "$bin" launch --nproc 2 --threads-per-proc 1 --timeout 300 -- $args
  # cl: the gradient sums after backward instead of overlapped with it (GradientReducer).
  [ $kind = cl ] && run "$kind 2 ranks, no overlap" $task env STABLELEARN_DIST_OVERLAP=0 "$bin" launch --nproc 2 --threads-per-proc 1 --timeout 300 -- $args
done
