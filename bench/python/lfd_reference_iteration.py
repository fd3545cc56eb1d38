#!/usr/bin/env python3
"""Time per training iteration and peak memory of the *published* Python implementation of
HN -> sNODE and CHN -> sNODE (github.com/sayantanauddy/clfd-snode, `tr_hn_lsddm.py` and
`tr_chn_lsddm_stochastic.py`) on LASA 2D, for comparison with `stablelearn lfd train`.

Nothing of the reference is copied here: this harness imports the reference's own modules from a
checkout given with --reference and calls its own `train_task` for each task, which returns the
task's wall-clock duration (the reference measures it itself). Only the modules that the training
loop does not use are replaced by inert stand-ins, because Debian 12 does not package them
(torchdiffeq, similaritymeasures, pyquaternion) or they only draw plots (matplotlib, seaborn):

* torchdiffeq.odeint is replaced by the fixed-grid explicit Euler step that the reference requests
  (`method='euler'`, no step size, so the grid is the requested time vector:
  y_{k+1} = y_k + (t_{k+1} - t_k) f(t_k, y_k)). It does less bookkeeping than torchdiffeq's
  FixedGridODESolver (no input checks, no interpolation), so the reference's measured time is,
  if anything, a little lower than with the real torchdiffeq: the comparison favours Python.
* tqdm.trange is `range` (no progress bar).

Usage (Debian: `apt-get install python3-torch`; the reference is not downloaded by this script):
  git clone https://github.com/sayantanauddy/clfd-snode /tmp/clfd-snode
  /usr/bin/python3 bench/python/lfd_reference_iteration.py --reference /tmp/clfd-snode \
      --model chn --iterations 40 --tasks 2 --threads 1
Prints one JSON object: per-task seconds, ms per iteration, peak resident memory (MiB).
"""
import argparse
import importlib
import json
import os
import resource
import sys
import tempfile
import types
from unittest import mock


def install_stand_ins():
    """Registers inert modules for the imports that the training loop never calls."""
    for name in ["matplotlib", "matplotlib.pyplot", "matplotlib.ticker", "matplotlib.patheffects",
                 "matplotlib.transforms", "matplotlib.colors", "matplotlib.animation", "seaborn",
                 "pandas", "scipy", "scipy.io", "scipy.signal", "scipy.interpolate",
                 "similaritymeasures", "pyquaternion", "tslearn", "tslearn.metrics"]:
        sys.modules.setdefault(name, mock.MagicMock(name=name))
    try:
        import numba  # noqa: F401  (Debian: python3-numba)
    except ImportError:
        numba = types.ModuleType("numba")
        numba.jit = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
        sys.modules["numba"] = numba
    tqdm = types.ModuleType("tqdm")
    tqdm.trange = lambda n, *a, **k: range(n)
    tqdm.tqdm = lambda it, *a, **k: it
    sys.modules["tqdm"] = tqdm

    import torch
    torchdiffeq = types.ModuleType("torchdiffeq")

    def odeint(func, y0, t, rtol=None, atol=None, method=None, options=None):
        if method != "euler":
            raise NotImplementedError(f"stand-in torchdiffeq: only method='euler' is provided, got {method!r}")
        ys, y = [y0], y0
        for k in range(t.shape[0] - 1):
            y = y + (t[k + 1] - t[k]) * func(t[k], y)
            ys.append(y)
        return torch.stack(ys)

    torchdiffeq.odeint = odeint
    sys.modules["torchdiffeq"] = torchdiffeq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", required=True, help="checkout of github.com/sayantanauddy/clfd-snode")
    ap.add_argument("--model", choices=["hn", "chn"], required=True, help="hn: HN->sNODE h=100; chn: CHN->sNODE h=1000, num_regs=1")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/LASA/lasa_numpy"))
    ap.add_argument("--seq-file", default=None, help="default: DATA_DIR/../lasa_numpy_sequence_all.txt")
    ap.add_argument("--iterations", type=int, default=40, help="iterations per task")
    ap.add_argument("--tasks", type=int, default=2, help="tasks to train (task 1 adds the regulariser)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=100)
    a = ap.parse_args()

    ref = os.path.abspath(a.reference)
    script = {"hn": "tr_hn_lsddm", "chn": "tr_chn_lsddm_stochastic"}[a.model]
    if not os.path.isfile(os.path.join(ref, script + ".py")):
        sys.exit(f"--reference {ref}: {script}.py not found (expected a checkout of sayantanauddy/clfd-snode)")
    data_dir = os.path.abspath(a.data_dir)
    seq_file = a.seq_file or os.path.join(os.path.dirname(data_dir), "lasa_numpy_sequence_all.txt")
    for p in (data_dir, seq_file):
        if not os.path.exists(p):
            sys.exit(f"{p}: not found (LASA numpy data, shared/data/LASA)")

    install_stand_ins()
    import torch
    torch.set_num_threads(a.threads)
    sys.path.insert(0, ref)
    tr = importlib.import_module(script)
    from imitation_cl.model.lsddm_hn_t import configure as configure_t
    from imitation_cl.model.node import NODE
    from imitation_cl.model.hypernetwork import HyperNetwork, ChunkedHyperNetwork, str_to_ints
    from imitation_cl.train.utils import set_seed

    # The README's LASA 2D hyper-parameters of the paper (spec §5.1).
    h = 100 if a.model == "hn" else 1000
    argv = ["--data_dir", data_dir, "--seq_file", seq_file, "--num_iter", str(a.iterations), "--tsub", "20",
            "--lr", "1e-4", "--tnet_dim", "2", "--fhat_layers", "3", "--hnet_arch", "200,200,200",
            "--task_emb_dim", "256", "--explicit_time", "1", "--beta", "0.005", "--data_class", "LASA",
            "--seed", str(a.seed), "--description", "bench", "--lsddm_h", str(h), "--lsddm_hp", "100",
            "--lsddm_a", "0.5", "--lsddm_rehu", "0.01", "--lsddm_projfn_eps", "0.0001", "--plot_traj", "0"]
    if a.model == "chn":
        argv += ["--chunk_emb_dim", "256", "--chunk_dim", "8192", "--num_regs", "1"]
    args = tr.parse_args(return_parser=True).parse_args(argv)
    set_seed(args.seed)
    device = torch.device("cpu")
    properties = {"latent_space_dim": args.tnet_dim, "explicit_time": args.explicit_time, "a": args.lsddm_a,
                  "projfn": args.lsddm_projfn, "projfn_eps": args.lsddm_projfn_eps, "smooth_v": args.lsddm_smooth_v,
                  "hp": args.lsddm_hp, "h": args.lsddm_h, "rehu": args.lsddm_rehu, "device": device,
                  "fhat_layers": args.fhat_layers}
    tnet = configure_t(properties).to(device)
    param_names, param_shapes = tnet.get_param_shapes()
    if a.model == "hn":
        hnet = HyperNetwork(layers=str_to_ints(args.hnet_arch), te_dim=args.task_emb_dim, target_shapes=param_shapes,
                            device=device).to(device)
    else:
        hnet = ChunkedHyperNetwork(final_target_shapes=param_shapes, layers=str_to_ints(args.hnet_arch),
                                   chunk_dim=args.chunk_dim, te_dim=args.task_emb_dim, ce_dim=args.chunk_emb_dim,
                                   device=device).to(device)
    node = NODE(target_network=tnet, method="euler", explicit_time=args.explicit_time).to(device)

    seconds = []
    with tempfile.TemporaryDirectory() as save_dir:
        for task_id in range(a.tasks):
            if a.model == "hn":
                hnet, duration, _, _ = tr.train_task(args, task_id, hnet, tnet, node, device, param_names)
            else:
                hnet, duration, _, _ = tr.train_task(args, task_id, hnet, tnet, node, args.beta, device, param_names,
                                                     save_dir=save_dir)
            seconds.append(duration)
            print(f"task {task_id}: {duration:.2f} s ({1000 * duration / a.iterations:.1f} ms/it)", file=sys.stderr)
    print(json.dumps({"implementation": "clfd-snode (Python)", "model": a.model, "threads": a.threads,
                      "iterations": a.iterations, "per_task_seconds": seconds,
                      "ms_per_iteration": [1000 * s / a.iterations for s in seconds],
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
