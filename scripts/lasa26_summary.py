#!/usr/bin/env python3
"""Summary of scripts/lasa26_discrete.sh: per run, after every task the median and IQR of the DTW of
every demonstration of every task seen so far (the statistic of the paper's figure, "median
cumulative DTW vs current task"), and per skill its just-learned and final median DTW, converged
starts and share of radially pulled steps (lfd stability).
    scripts/lasa26_summary.py OUT ITERATIONS [RUN:TITLE ...]   (default: chn1, chnall, finetune)"""
import json
import os
import statistics
import sys

out, iters = sys.argv[1], sys.argv[2]
runs = [("chn1", "CHN-1 → sNODE (Φ)"), ("chnall", "CHN-all → sNODE (Φ)"), ("finetune", "fine-tuning (β = 0)")]
if len(sys.argv) > 3:
    runs = [tuple(a.split(":", 1)) for a in sys.argv[3:]]
# The paper's figure (shared/specs/clfd-snode.md §6.2, read off the plot, ±5 %): CHN → sNODE.
paper = {0: 1.1e3, 10: 1.3e3, 25: 1.7e3}


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


config = os.environ.get("CONFIG", "configs/demo_discrete.toml")
sets = "".join(f" --set {kv}" for kv in os.environ.get("SETS", "").split())
loaded = {}
for name, title in runs:
    path = os.path.join(out, name)
    if not os.path.exists(os.path.join(path, "eval_results.json")):
        print(f"{title}: not run\n")
        continue
    errs = json.load(open(os.path.join(path, "eval_results.json")))["data"]["metric_errors"]
    summ = json.load(open(os.path.join(path, "summary.json")))
    loaded[name] = (errs, summ)
n_max = max((s["completed_tasks"] for _, s in loaded.values()), default=0)
dataset = "lasa2d"
for name, _ in runs:
    cfg = os.path.join(out, name, "config.toml")
    if name in loaded and os.path.exists(cfg):
        for line in open(cfg):
            if line.startswith("dataset"):
                dataset = line.split("=", 1)[1].strip().strip("'\"")
        break
titles = {"lasa2d": "LASA 2D", "robottasks9": "RoboTasks9", "helloworld": "HelloWorld"}
if dataset != "lasa2d":
    paper = {}
total = max((len(s["task_files"]) for _, s in loaded.values()), default=0)
print(f"# {titles.get(dataset, dataset)}, all {total} tasks, discrete-time sNODE ({config}), {iters} iterations per task\n")
print(f"Produced by `scripts/lasa26_discrete.sh` ({config}, `--set data.tasks=0 "
      f"--set train.iterations={iters}{sets}`); stability: `lfd stability RUN --task J --starts 50`.\n")

print("## Median DTW over every demonstration of the tasks seen so far (Q1 – Q3), after each task\n")
print("| after task | " + " | ".join(t for n, t in runs if n in loaded) + (" | paper, CHN → sNODE |" if paper else " |"))
print("|---:|" + "---:|" * (len(loaded) + (1 if paper else 0)))
for i in range(n_max):
    cells = []
    for name, _ in runs:
        if name not in loaded:
            continue
        errs, _ = loaded[name]
        row = errs.get(f"train_task_{i}")
        if row is None:
            cells.append("–")
            continue
        pooled = [d for j in range(i + 1) for d in row[f"eval_task_{j}"]["dtw"]]
        q1, med, q3 = quartiles(pooled)
        cells.append(f"{med:.0f} ({q1:.0f} – {q3:.0f})")
    ref = (f" {'≈ %.1e' % paper[i] if i in paper else ''} |") if paper else ""
    print(f"| {i} | " + " | ".join(cells) + " |" + ref)

for name, title in runs:
    if name not in loaded:
        continue
    errs, summ = loaded[name]
    n = summ["completed_tasks"]
    med = summ["median_errors"]
    total = summ.get("tasks", n)
    print(f"\n## {title}: per skill ({n} of {total} tasks trained{'' if n == total else '; the run resumes'})\n")
    print(f"training: {sum(summ['per_task_train_seconds']) / 60:.1f} min in all; CL scores: " +
          ", ".join(f"{k} {v:.3f}" for k, v in summ.get("cl_scores", {}).items() if isinstance(v, (int, float))))
    quat = "quat_error" in med["train_task_0"]["eval_task_0"]
    print(f"\n| task | shape | DTW just learned | DTW after task {n - 1} |" +
          (f" quaternion error just learned | after task {n - 1} |" if quat else "") +
          " converged starts | pulled steps | pulled on the way | pulled from the demonstrations' starts |"
          " at the goal after (demonstrations) |")
    print("|---:|---|---:|---:|" + ("---:|---:|" if quat else "") + "---:|---:|---:|---:|---:|")
    conv_all = 0
    for j in range(n):
        jl = med[f"train_task_{j}"][f"eval_task_{j}"]["dtw"]
        last = med[f"train_task_{n - 1}"][f"eval_task_{j}"]["dtw"]
        sp = os.path.join(out, name, f"stability_{j}.json")
        if os.path.exists(sp) and os.path.getsize(sp) > 0:
            st = json.load(open(sp))
            k = round(st["converged_fraction"] * st["starts"])
            conv_all += k == st["starts"]
            conv, pulled = f"{k}/{st['starts']}", f"{100 * st.get('projected_fraction', 0):.2f} %"
            way = (f"{100 * st['projected_fraction_outside_ball']:.2f} %"
                   if "projected_fraction_outside_ball" in st else "–")
            demo = f"{100 * st['demo_projected_fraction']:.2f} %" if "demo_projected_fraction" in st else "–"
            arr = (f"{st['demo_arrival_median_seconds']:.1f} s ({st['demo_duration_seconds']:.1f} s)"
                   if "demo_arrival_median_seconds" in st else "–")
        else:
            conv, pulled, way, demo, arr = "–", "–", "–", "–", "–"
        shape = os.path.basename(summ["task_files"][j]).replace(".npz", "") if j < len(summ["task_files"]) else ""
        q = (f" {med[f'train_task_{j}'][f'eval_task_{j}']['quat_error']:.3f} |"
             f" {med[f'train_task_{n - 1}'][f'eval_task_{j}']['quat_error']:.3f} |") if quat else ""
        print(f"| {j} | {shape} | {jl:.0f} | {last:.0f} |{q} {conv} | {pulled} | {way} | {demo} | {arr} |")
    print(f"\n{conv_all} of {n} skills converge from every start.")
