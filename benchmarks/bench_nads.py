"""Throughput of NAD estimation: plain re-implementation of the authors' algorithm vs nadlib.

One run, same machine, same networks (network i is seeded with nadlib.nads.network_seed(0, i) in every
config).  Each config runs in its own subprocess so that its peak memory (ru_maxrss) is its own.

    python benchmarks/bench_nads.py            # LeNet + ResNet-18 on CPU (a few minutes on 2 cores)
    python benchmarks/bench_nads.py --quick    # fewer networks

estimate_nads needs at least 2 networks, hence 2 for the ResNet-18 secant row.
Columns: networks/s of the gradient phase (the part that scales with the number of networks), total
wall time including the final PCA / eigendecomposition, and peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import torch
import nadlib
from nadlib.nads import network_seed
kind, arch, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
x = torch.randn((1, 32, 32), generator=torch.Generator().manual_seed(0))
t0 = time.perf_counter()
if kind == "plain":
    # the authors' algorithm, plainly: one network at a time, central differences (step 100) over all
    # 1,024 pixels in one batch of 2 x 1,024 inputs, stacked gradients, centred PCA
    d = x.numel(); eye = torch.eye(d).view(d, 1, 32, 32); grads = []
    with torch.no_grad():
        for i in range(n):
            torch.manual_seed(network_seed(0, i))
            net = nadlib.get_model(arch, 1, 1).eval()
            grads.append(((net(x[None] + 100 * eye) - net(x[None] - 100 * eye)) / 200).reshape(-1))
    t_grad = time.perf_counter() - t0
    g = torch.stack(grads).double(); g -= g.mean(0)
    torch.linalg.svd(g, full_matrices=False)
    wall = time.perf_counter() - t0
else:
    res = nadlib.estimate_nads(arch, n, method=kind, run=nadlib.RunControl(progress=False, device="cpu"))
    t_grad, wall = res.meta["gradient_time_s"], time.perf_counter() - t0
print(json.dumps({"n": n, "t_grad": t_grad, "wall": wall,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind, arch, n, threads):
    out = subprocess.run([sys.executable, "-c", CHILD, kind, arch, str(n), str(threads)], check=True,
                         capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["rate"] = r["n"] / r["t_grad"]
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    q = args.quick
    configs = [("lenet", "plain", 8 if q else 24), ("lenet", "secant", 32 if q else 96),
               ("lenet", "gradient", 512 if q else 2048),
               ("resnet18", "plain", 1), ("resnet18", "secant", 2), ("resnet18", "gradient", 8 if q else 32)]
    import torch
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average before: {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows, base = [], {}
    for arch, kind, n in configs:
        r = run(kind, arch, n, args.threads)
        if kind == "plain":
            base[arch] = r["rate"]
        rows.append((arch, kind, r))
        print(f"  done {arch:9s} {kind:9s} n={n:4d}: {r['rate']:.2f} networks/s", flush=True)
    print()
    print("| architecture | method | networks | networks/s | × plain secant | total wall (s) | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for arch, kind, r in rows:
        label = {"plain": "plain secant (authors' algorithm)", "secant": "estimate_nads secant",
                 "gradient": "estimate_nads gradient"}[kind]
        print(f"| {arch} | {label} | {r['n']} | {r['rate']:.2f} | {r['rate'] / base[arch]:.1f}× | "
              f"{r['wall']:.1f} | {r['rss_mb']:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
