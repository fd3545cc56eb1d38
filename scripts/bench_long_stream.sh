#!/usr/bin/env bash
# Per-task time and resident memory of `stablelearn cl run` over a long rotated Fashion-MNIST
# stream (tasks generated lazily, data/cl_task_stream.h), fine-tuning an MLP 784-100-10 with SGD.
# A sampler polls the run's process every 0.1 s: VmRSS and the number of finished tasks
# (checkpoint_task<i>.npz files); per-task wall time is the time between two task ends, and the
# run's own summary.json gives the training seconds of every task (the loop alone, without the
# task-end evaluation of all tasks and the reports).
#
# Usage: scripts/bench_long_stream.sh [TASKS] [TRAIN_PER_TASK] [TEST_PER_TASK]   (default 300 256 64)
# Writes results/long_stream/{samples.csv,per_task.csv} and prints the task 10 / task N summary.
# REPORT_EVERY=K sets [output] report_every (default 1: summary.json and accuracy_matrix.csv, which
# hold the whole accuracy matrix, rewritten after every task).
# EXTRA='[backbone]\nfile = "bb.npz"\nfreeze = true\nadapter = "bottleneck"' appends tables to the config.
# BIN=/path/to/stablelearn picks another build, RES=dir another results folder. OUT=dir keeps the run
# directory (default: a temp dir).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BIN:-$root/build/stablelearn}
tasks=${1:-300}
ntrain=${2:-256}
ntest=${3:-64}
res=${RES:-$root/results/long_stream}
mkdir -p "$res"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run=${OUT:-$tmp/run}
rm -rf "$run"
cat > "$tmp/long.toml" <<TOML
[stream]
kind = "rotated"
tasks = $tasks
rotation_step = 9.0
train_per_task = $ntrain
test_per_task = $ntest
[model]
kind = "mlp"
hidden = [100]
[strategy]
name = "finetune"
[train]
epochs = 1
batch_size = 32
lr = 0.01
seed = 0
[output]
tensorboard = false
figures = false
log_every = 1000
report_every = ${REPORT_EVERY:-1}
TOML
# EXTRA: more TOML tables appended to the configuration (e.g. a [backbone] with adapters).
printf '%b\n' "${EXTRA:-}" >> "$tmp/long.toml"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load before: $(uptime | sed 's/.*load average: //')"
start=$(date +%s.%N)
"$bin" --threads 1 cl run "$tmp/long.toml" --out "$run" --quiet > "$tmp/stdout" 2>&1 &
pid=$!
tick=$(getconf CLK_TCK)
echo "t,tasks_done,rss_kb,cpu_s" > "$res/samples.csv"
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
  cpu=$(awk -v t="$tick" '{printf "%.2f", ($14 + $15) / t}' /proc/$pid/stat 2>/dev/null || true)
  done_tasks=$( (find "$run" -maxdepth 1 -name 'checkpoint_task*.npz' 2>/dev/null || true) | wc -l)
  [ -n "$rss" ] && [ -n "$cpu" ] && echo "$(echo "$(date +%s.%N) - $start" | bc),$done_tasks,$rss,$cpu" >> "$res/samples.csv"
  sleep 0.1
done
wait "$pid" || { cat "$tmp/stdout"; exit 1; }
echo "load after: $(uptime | sed 's/.*load average: //')"
# Task ends: the modification times of checkpoint_task<i>.npz (written at the end of task i).
for ((i = 0; i < tasks; i++)); do
  echo "$i,$(echo "$(stat -c '%.9Y' "$run/checkpoint_task$i.npz") - $start" | bc)"
done > "$tmp/ends.csv"
python3 - "$res" "$run/summary.json" "$tasks" "$tmp/ends.csv" <<'PY'
import csv, json, sys
res, summary, T, ends = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = [(float(t), int(d), int(r), float(c)) for t, d, r, c in list(csv.reader(open(res + "/samples.csv")))[1:]]
end = {int(i): float(t) for i, t in csv.reader(open(ends))}
train = json.load(open(summary))["train_seconds"]
def peak_until(t):  # highest RSS sampled up to time t
    v = [r for s, _, r, _ in rows if s <= t]
    return max(v) if v else 0
def cpu_at(t):  # CPU seconds (user + system) of the run's process at the last sample before t
    v = [c for s, _, _, c in rows if s <= t]
    return v[-1] if v else 0.0
with open(res + "/per_task.csv", "w") as f:
    f.write("task,wall_seconds,train_seconds,rss_peak_mb\n")
    for k in range(1, T):
        f.write(f"{k},{end[k]-end[k-1]:.4f},{train[k]:.4f},{peak_until(end[k])/1024:.1f}\n")
per = list(csv.DictReader(open(res + "/per_task.csv")))
def window(lo, hi, key):
    v = sorted(float(r[key]) for r in per if lo <= int(r["task"]) < hi)
    return v[len(v) // 2] if v else float("nan")
last = T - 10
for key in ("wall_seconds", "train_seconds"):
    a, b = window(10, 20, key), window(last, T, key)
    print(f"{key}: median tasks 10-19 {a:.4f} s, tasks {last}-{T-1} {b:.4f} s, growth {100*(b/a-1):+.1f} %")
m10 = float(per[9]["rss_peak_mb"])
mT = float(per[-1]["rss_peak_mb"])
# Windows of 30 tasks: median wall seconds per task, CPU seconds per task (load-independent), RSS.
print("tasks    wall s/task (median)  CPU s/task  peak RSS MB")
first_cpu = None
for lo in range(10, T, 30):
    hi = min(lo + 30, T) - 1
    if hi <= lo:
        break
    w = sorted(float(r["wall_seconds"]) for r in per if lo <= int(r["task"]) <= hi)
    c = (cpu_at(end[hi]) - cpu_at(end[lo - 1])) / (hi - lo + 1)
    first_cpu = first_cpu or c
    print(f"{lo:3d}-{hi:3d}  {w[len(w)//2]:.4f}                {c:.4f} ({100*(c/first_cpu-1):+.1f} %)  {float(per[hi-1]['rss_peak_mb']):.1f}")
print(f"peak RSS: up to task 10 {m10:.1f} MB, up to task {per[-1]['task']} {mT:.1f} MB, growth {100*(mT/m10-1):+.1f} %")
print(f"total wall {end[T-1]:.1f} s for {T} tasks")
PY
