"""Cost of one non-linearity signature per architecture on this machine (Chapter 4).

For each architecture: one randomly initialised network (10 outputs, 3 input channels) and ``--n``
normalised CIFAR-10 test images (the synthetic stand-in images when CIFAR-10 is not available; set
``NADLIB_CIFAR10_NPZ`` or let torchvision download it).  Columns: time of the plain forward passes over
the images, time of :func:`nadlib.nonlinearity_signature` (forward passes with hooks + one affinity
score per layer: two eigendecompositions and one exact OT problem of n x n), and their difference,
the cost of the scores.

    python benchmarks/bench_signature.py                       # the four pooled CNNs + LeNet nopool
    python benchmarks/bench_signature.py --archs lenet vgg11_nopool --n 1152 --threads 1
    python benchmarks/bench_signature.py --from results/signatures_default.npz   # table of an artifact

``--from`` prints the per-network wall times recorded by ``nadlib.run_signatures`` instead of
measuring (useful for the costly pooling-free deep networks, ~0.2-0.5 s per image on one core).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

import nadlib
from nadlib.affinity import nonlinearity_signature
from nadlib.signature_runs import load_signatures, signature_inputs
from nadlib import RunControl


def measure(arch: str, x: torch.Tensor, n: int, batch_size: int = 256) -> dict:
    torch.manual_seed(0)
    model = nadlib.get_model(arch, in_channels=3, num_classes=10).eval()
    with torch.no_grad():
        model(x[:2])
        t0 = time.perf_counter()
        for i in range(0, n, batch_size):
            model(x[i:i + batch_size])
        forward = time.perf_counter() - t0
    t0 = time.perf_counter()
    sig = nonlinearity_signature(model, x, n_samples=n, batch_size=batch_size, run=RunControl(progress=False))
    total = time.perf_counter() - t0
    return {"arch": arch, "layers": len(sig), "widest": max(sig.dims), "forward": forward,
            "total": total, "scores": max(total - forward, 0.0), "mean_rho": float(sig.rho.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+",
                        default=["lenet", "lenet_nopool", "vgg11", "resnet18", "densenet121"])
    parser.add_argument("--n", type=int, default=1152, help="images per signature (> widest layer)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--from", dest="artifact", default=None,
                        help="print the wall times stored in a run_signatures artifact instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s), torch {torch.__version__}"
    if args.artifact:
        sigs, meta = load_signatures(args.artifact)
        print(f"# from {args.artifact}: {meta['data_source']}, n = {meta['n_samples']}, "
              f"{meta['machine']}, {meta['torch_threads']} thread(s), {meta['date'][:10]}")
        print("| architecture | activation layers | widest | networks | s / signature (mean) |")
        print("|---|---:|---:|---:|---:|")
        for arch, ss in sigs.items():
            secs = [s.meta["seconds"] for s in ss]
            print(f"| {arch} | {len(ss[0])} | {max(ss[0].dims)} | {len(ss)} | {np.mean(secs):.1f} |")
        return
    x, source = signature_inputs(nadlib.get_profile(), args.n)
    nadlib.affinity_score(torch.randn(64, 4), torch.randn(64, 4))  # warm-up: imports POT, first eigh
    print(f"# {source}; n = {args.n}; {machine}")
    print("| architecture | activation layers | widest | forward passes (s) | signature (s) | "
          "of which scores (s) | ms / image |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for arch in args.archs:
        r = measure(arch, x, args.n)
        print(f"| {arch} | {r['layers']} | {r['widest']} | {r['forward']:.1f} | {r['total']:.1f} | "
              f"{r['scores']:.1f} | {1000 * r['total'] / args.n:.1f} |", flush=True)


if __name__ == "__main__":
    main()
