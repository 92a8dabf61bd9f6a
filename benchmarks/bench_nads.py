"""Throughput of NAD estimation: plain re-implementation of the authors' algorithm vs nadlib.

One run, same machine, same networks (network i is seeded with nadlib.nads.network_seed(0, i) in every
config).  Each config runs in its own subprocess so that its peak memory (ru_maxrss) is its own.

    python benchmarks/bench_nads.py            # LeNet + ResNet-18 on CPU (a few minutes on 2 cores)
    python benchmarks/bench_nads.py --quick    # fewer networks
    python benchmarks/bench_nads.py --authors-code DIR   # also the authors' own code (a checkout of
                                               # LTS4/neural-anisotropy-directions), run unchanged

The "plain secant" row re-implements the authors' algorithm without autograd; their own code (``--authors-code``,
imported by ``benchmarks/authors_oracle.py`` with its accommodations) keeps autograd on and builds each
network anew, and is slower: the issue's "x the authors' code" is the last column.

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
if kind == "authors":
    # their GradientCovarianceAnisotropyFinder and LeNet, unchanged: gradients of n networks, then their PCA
    sys.path.insert(0, sys.argv[6])
    from authors_oracle import load_authors_code
    code = load_authors_code(sys.argv[5])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    finder = code.nad_computation.GradientCovarianceAnisotropyFinder(
        model_gen_fun=lambda: code.models.LeNet(num_classes=1, num_channels=1).eval(), scale=100,
        num_networks=n, eval_point=x, device="cpu")
    finder.sample_gradients
    t_grad = time.perf_counter() - t0
    finder.estimate_NADs()
    wall = time.perf_counter() - t0
elif kind == "plain":
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


def run(kind, arch, n, threads, authors_code=None):
    extra = [str(authors_code), os.path.dirname(os.path.abspath(__file__))] if kind == "authors" else []
    out = subprocess.run([sys.executable, "-c", CHILD, kind, arch, str(n), str(threads), *extra], check=True,
                         capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["rate"] = r["n"] / r["t_grad"]
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--archs", default="lenet,resnet18", help="comma-separated: lenet, resnet18 (default both)")
    ap.add_argument("--authors-code", metavar="DIR", help="a checkout of the authors' repository: adds their code")
    args = ap.parse_args()
    if args.authors_code:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from authors_oracle import REQUIRED
        missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(args.authors_code, f))]
        if missing:
            ap.error(f"{args.authors_code} is not a checkout of the authors' code (missing {', '.join(missing)})")
    q = args.quick
    configs = [("lenet", "authors", 8 if q else 24)] * bool(args.authors_code) + [
               ("lenet", "plain", 8 if q else 24), ("lenet", "secant", 32 if q else 96),
               ("lenet", "gradient", 512 if q else 2048),
               ("resnet18", "plain", 1), ("resnet18", "secant", 2), ("resnet18", "gradient", 8 if q else 32)]
    configs = [c for c in configs if c[0] in args.archs.split(",")]
    import torch
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average before: {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows, base = [], {}
    for arch, kind, n in configs:
        r = run(kind, arch, n, args.threads, args.authors_code)
        if kind in ("plain", "authors"):
            base[arch, kind] = r["rate"]
        rows.append((arch, kind, r))
        print(f"  done {arch:9s} {kind:9s} n={n:4d}: {r['rate']:.2f} networks/s", flush=True)
    print()
    authors = ["× authors' code"] if args.authors_code else []
    print("| " + " | ".join(["architecture", "method", "networks", "networks/s", "× plain secant", "total wall (s)",
                             "peak RSS (MB)", *authors]) + " |")
    print("|---|---|" + "---:|" * (5 + len(authors)))
    for arch, kind, r in rows:
        label = {"authors": "the authors' code (their finder, unchanged)",
                 "plain": "plain secant (authors' algorithm, no autograd)", "secant": "estimate_nads secant",
                 "gradient": "estimate_nads gradient"}[kind]
        ratio = [f"{r['rate'] / base[arch, 'authors']:.1f}×" if (arch, "authors") in base else "-"] * bool(authors)
        print("| " + " | ".join([arch, label, str(r["n"]), f"{r['rate']:.2f}", f"{r['rate'] / base[arch, 'plain']:.1f}×",
                                 f"{r['wall']:.1f}", f"{r['rss_mb']:.0f}", *ratio]) + " |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
