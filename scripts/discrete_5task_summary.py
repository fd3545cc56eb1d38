#!/usr/bin/env python3
"""Summary of scripts/discrete_5task.sh: per variant, per seed and task the median DTW just learned
and after the last task, the converged starts and the pulled shares of `lfd stability` (of all
steps, and of the steps on the way, outside the certified ball); then per task the median over
seeds and the largest pulled shares.
With BASELINE=NAME in the environment, each per-task table adds the ratio of its median DTW just
learned to that variant's (the issue's "no worse than 1.2x the eps = 1e-4 Euler baseline").
usage: discrete_5task_summary.py OUT VARIANT-SPEC..."""
import glob
import json
import os
import statistics as st
import sys


def load(run):
    p = os.path.join(run, "summary.json")
    if not os.path.exists(p):
        return None
    m = json.load(open(p))["median_errors"]
    n = len(m)
    rows = []
    for j in range(n):
        just = m[f"train_task_{j}"][f"eval_task_{j}"]["dtw"]
        last = m[f"train_task_{n - 1}"][f"eval_task_{j}"]["dtw"]
        q = os.path.join(run, f"stab_{j}.json")
        d = json.load(open(q)) if os.path.exists(q) and os.path.getsize(q) > 0 else None
        rows.append((just, last, d))
    return rows


def medians(out, name):
    runs = [load(p) for p in sorted(glob.glob(os.path.join(out, f"{name}_s*"))) if os.path.isdir(p)]
    runs = [r for r in runs if r]
    if not runs:
        return None
    return [st.median(r[j][0] for r in runs) for j in range(min(len(r) for r in runs))]


def main():
    out, specs = sys.argv[1], sys.argv[2:]
    base = os.environ.get("BASELINE")
    base_med = medians(out, base) if base else None
    for spec in specs:
        name, sets = spec.split(":", 1)
        print(f"\n### {name} ({sets or os.environ.get('CONFIG', 'configs/demo_discrete.toml') + ' as is'})\n")
        print("| seed | task | DTW just learned | DTW after last task | converged | pulled steps | pulled on the way |"
              " pulled from the demonstrations' starts | at the goal after (demonstrations) | non-finite |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        runs = {}
        for path in sorted(glob.glob(os.path.join(out, f"{name}_s*"))):
            if not os.path.isdir(path):
                continue
            rows = load(path)
            if not rows:
                continue
            seed = path.rsplit("_s", 1)[1]
            runs[seed] = rows
            for j, (just, last, d) in enumerate(rows):
                if d:
                    conv = f"{round(d['converged_fraction'] * d['starts'])}/{d['starts']}"
                    pulled = f"{100 * d['projected_fraction']:.2f} %"
                    way = (f"{100 * d['projected_fraction_outside_ball']:.2f} %"
                           if "projected_fraction_outside_ball" in d else "–")
                    demo = f"{100 * d['demo_projected_fraction']:.2f} %" if "demo_projected_fraction" in d else "–"
                    arr = (f"{d['demo_arrival_median_seconds']:.1f} s ({d['demo_duration_seconds']:.1f} s)"
                           if "demo_arrival_median_seconds" in d else "–")
                    nf = str(d["nonfinite_steps"])
                else:
                    conv = pulled = way = demo = arr = nf = "–"
                print(f"| {seed} | {j} | {just:.0f} | {last:.0f} | {conv} | {pulled} | {way} | {demo} | {arr} | {nf} |")
        if not runs:
            continue
        tasks = min(len(r) for r in runs.values())
        print(f"\nOver seeds {', '.join(runs)}: per task the median DTW, the largest pulled share\n")
        ratio = base_med is not None and not spec.startswith(base + ":")
        print("| task | median DTW just learned | median DTW after last task | after / just | max pulled |"
              " max pulled on the way | max pulled from the demonstrations' starts | all converged |"
              + (f" just learned / {base} |" if ratio else ""))
        print("|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if ratio else ""))
        for j in range(tasks):
            just = st.median(r[j][0] for r in runs.values())
            last = st.median(r[j][1] for r in runs.values())
            ds = [r[j][2] for r in runs.values() if r[j][2]]
            mp = f"{100 * max(d['projected_fraction'] for d in ds):.2f} %" if ds else "–"
            ws = [d["projected_fraction_outside_ball"] for d in ds if "projected_fraction_outside_ball" in d]
            mw = f"{100 * max(ws):.2f} %" if ws else "–"
            dm = [d["demo_projected_fraction"] for d in ds if "demo_projected_fraction" in d]
            md = f"{100 * max(dm):.2f} %" if dm else "–"
            ok = ("yes" if all(d["converged_fraction"] == 1.0 for d in ds) else "no") if ds else "–"
            extra = f" {just / base_med[j]:.2f} |" if ratio and j < len(base_med) else ""
            print(f"| {j} | {just:.0f} | {last:.0f} | {last / just:.2f} | {mp} | {mw} | {md} | {ok} |" + extra)


main()
