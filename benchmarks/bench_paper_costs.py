"""Per-unit costs of the paper run (`python -m nadlib paper`) on this machine's CPU, as a Markdown table.

Measures, with one torch thread:

* secant NADs: networks per second for LeNet (the exact windowed path, 256 networks) and seconds per
  network for the deep CNNs (central differences over the first ``--coords`` pixels of one network,
  extrapolated to all 1,024);
* one LeNet direction of D(v) at the paper's recipe (10,000 samples), one epoch, extrapolated to 20.

The numbers go into ``nadlib.catalogue.COSTS`` by hand (they are machine- and load-dependent).

    OMP_NUM_THREADS=1 python benchmarks/bench_paper_costs.py [--coords 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from nadlib import direction_accuracy, estimate_nads, fourier_direction, markdown_table
from nadlib.models import get_model
from nadlib import Recipe, RunControl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coords", type=int, default=64, help="pixels timed per deep network")
    parser.add_argument("--archs", default="vgg11,resnet18,densenet121")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    res = estimate_nads("lenet", 256, run=RunControl(seed=0, progress=False, device="cpu"))
    rate = 256 / res.meta["gradient_time_s"]
    rows.append(["secant NADs", "lenet", f"{rate:.1f} networks/s", f"{1 / rate:.3f} s/network"])
    x = torch.randn(1, 32, 32)
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        net = get_model(arch, in_channels=1, num_classes=1).eval()
        with torch.inference_mode():
            net(x[None])  # warm-up
            # the forward passes _secant_plain makes for `coords` pixels (2 per pixel)
            xs = x.reshape(-1).expand(2 * args.coords, 1024).clone()
            t = time.perf_counter()
            net(xs.view(-1, 1, 32, 32))
            per_net = (time.perf_counter() - t) * 1024 / args.coords
        rows.append(["secant NADs", arch, f"{per_net:.1f} s/network (extrapolated from {args.coords} pixels)", ""])
    t = time.perf_counter()
    direction_accuracy("lenet", fourier_direction(1, 0), recipe=Recipe(n_train=10_000, n_test=10_000, epochs=1),
                       run=RunControl(device="cpu"))
    one = time.perf_counter() - t
    rows.append(["D(v) direction", "lenet", f"{one:.1f} s for 1 epoch", f"~{20 * one:.0f} s at 20 epochs"])
    print(markdown_table(["what", "arch", "measured", "per unit"], rows))


if __name__ == "__main__":
    main()
