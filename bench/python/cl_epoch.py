"""Plain PyTorch-Python reference for BENCHMARKS.md: the training loop `stablelearn cl run` runs for
one task of split Fashion-MNIST (classes 0 and 1, 12000 images), MLP 784-400-400-10, SGD lr 0.01
momentum 0.9, batch 128 (--batch), shuffled every epoch; optionally evaluates 500 fixed test images every
`--every` iterations. Uses Debian's python3-torch (same libtorch 1.13 as the C++ build).

Usage: OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/python/cl_epoch.py --threads 2 --epochs 3 [--every 10]
(set OPENBLAS_CORETYPE as scripts/bench_cl.sh does: the core `stablelearn --version` reports)
Prints seconds per epoch (median over --repeats)."""
import argparse
import gzip
import statistics
import struct
import time

import numpy as np
import torch


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--every", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help="seed of the first repetition (then seed + 1, ...)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = idx(f"{a.data}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xt = idx(f"{a.data}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    yt = idx(f"{a.data}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    keep = (y == 0) | (y == 1)
    x = torch.from_numpy((x[keep] - 0.2860) / 0.3530).unsqueeze(1)
    y = torch.from_numpy(y[keep])
    kt = (yt == 0) | (yt == 1)
    xt = torch.from_numpy((xt[kt][:500] - 0.2860) / 0.3530).unsqueeze(1)
    yt = torch.from_numpy(yt[kt][:500])
    times = []
    for rep in range(a.repeats):
        torch.manual_seed(a.seed + rep)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 400), torch.nn.ReLU(),
                                    torch.nn.Linear(400, 400), torch.nn.ReLU(), torch.nn.Linear(400, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        it = 0
        t0 = time.perf_counter()
        for _ in range(a.epochs):
            order = torch.randperm(len(y))
            for b in range(0, len(y), a.batch):
                idx_b = order[b : b + a.batch]
                opt.zero_grad()
                loss = loss_fn(model(x[idx_b]), y[idx_b])
                loss.backward()
                opt.step()
                it += 1
                if a.every and it % a.every == 0:
                    with torch.no_grad():
                        (model(xt).argmax(1) == yt).float().mean().item()
        times.append((time.perf_counter() - t0) / a.epochs)
    print(f"{statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
