"""One GPU session's work for the deep CNNs (issue "On a GPU: the deep CNNs' secant NADs and trainability").

1. Secant NADs (the authors' estimator: central differences with step 100 around one randn point, 1 input
   channel, 1 output, models in eval mode) of each architecture with as many networks as fit in a time
   budget per architecture (up to 10,000, the paper's number); networks done and networks/s are recorded.
2. The trainability curve of ResNet-18 on D(u_i) for its own NADs u_i at the paper recipe (10,000
   training and test samples, 20 epochs), indices in order until a time budget.

Every artifact carries provenance (device name, precision, networks done, wall time) and goes to --out.
Test it end to end on a CPU first with ``--tiny`` (a few networks, small data)::

    python scripts/gpu_deep_nads.py --tiny --out /tmp/gpu_check --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import nadlib
from nadlib.paper import nads_agreement
from nadlib.results import DeadlineReached, provenance, save_artifact

INDICES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def secant_nads(arch: str, n_max: int, budget_s: float, device, out: Path, log: dict) -> nadlib.NADs:
    ckpt = out / f"nads_{arch}_secant.ckpt.npz"
    start = time.monotonic()
    common = dict(method="secant", device=device, checkpoint=ckpt, progress=False, seed=0)
    try:
        nads = nadlib.estimate_nads(arch, n_max, deadline=start + budget_s, **common)
    except DeadlineReached as stop:  # as many networks as the budget allowed: finish the estimate with them
        nads = nadlib.estimate_nads(arch, max(2, stop.done), **common)
    wall = time.monotonic() - start
    nads.meta.update(precision="float32 (TF32 off)", budget_s=budget_s, wall_time_budgeted_s=round(wall, 1))
    nads.save(out / f"nads_{arch}_secant_gpu.npz")
    ckpt.unlink(missing_ok=True)
    agree = nads_agreement(nads, arch, ks=(1, 5, 10)) if arch != "lenet_nopool" else {}
    log[arch] = {"networks": nads.n_networks, "wall_s": round(wall, 1),
                 "networks_per_s": round(nads.n_networks / wall, 2), "overlap_published": agree,
                 "split_half": nads.stability}
    print(f"{arch}: {nads.n_networks} networks in {wall:.0f} s "
          f"({nads.n_networks / wall:.1f}/s); overlap with the published NADs {agree}", flush=True)
    return nads


def trainability(nads, arch: str, sizes: dict, budget_s: float, device, out: Path, log: dict,
                 indices=INDICES, name: str = "secant") -> None:
    start = time.monotonic()
    done, accs, times = [], [], []
    for i in indices:
        if i >= len(nads) or time.monotonic() - start > budget_s:
            break
        t = time.monotonic()
        accs.append(nadlib.direction_accuracy(arch, nads.directions[i], device=device, seed=0, **sizes))
        times.append(time.monotonic() - t)
        done.append(i)
        print(f"{arch} on D(u_{i}): {accs[-1]:.3f} ({times[-1]:.1f} s)", flush=True)
        meta = provenance(device=device, arch=arch, nads=name,
                          nads_networks=nads.n_networks, seed=0, precision="float32",
                          seconds_per_direction=times, **sizes)
        save_artifact(out / f"trainability_{arch}_{name.split()[0]}_gpu.npz",
                      {"indices": np.array(done), "test_acc": np.array(accs)}, meta)
    log[f"trainability_{arch}_{name.split()[0]}"] = dict(zip(map(str, done), accs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--archs", default="vgg11,resnet18,densenet121")
    p.add_argument("--nads-budget", type=float, default=70.0, help="seconds per architecture")
    p.add_argument("--train-budget", type=float, default=100.0, help="seconds for the trainability curve")
    p.add_argument("--tiny", action="store_true", help="a few networks and small data (CPU check)")
    p.add_argument("--nads-file", type=Path, default=None,
                   help="ResNet-18 NADs of an earlier run: skip the estimates, continue the curve")
    p.add_argument("--indices", default=None, help="comma-separated NAD indices (default: all of INDICES)")
    p.add_argument("--published-indices", default=None,
                   help="also train on the authors' published ResNet-18 NADs at these indices (< 64)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = nadlib.get_device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    n_max = 4 if args.tiny else 10_000
    sizes = dict(n_train=64, n_test=64, epochs=1) if args.tiny else dict(n_train=10_000, n_test=10_000, epochs=20)
    log: dict = {"device": str(device), "device_name": torch.cuda.get_device_name(device)
                 if device.type == "cuda" else "cpu", "torch": torch.__version__}
    t0 = time.monotonic()
    results = {}
    for arch in ([] if args.nads_file else args.archs.split(",")):
        try:
            results[arch] = secant_nads(arch, n_max, args.nads_budget, device, args.out, log)
        except Exception as err:  # one architecture failing must not cost the others their GPU time
            log[arch] = {"error": f"{type(err).__name__}: {err}"}
            print(f"{arch} failed: {type(err).__name__}: {err}", flush=True)
        (args.out / "log.json").write_text(json.dumps(log, indent=1, default=str))
    if args.nads_file:
        results["resnet18"] = nadlib.load_nads(args.nads_file)
    indices = INDICES if args.indices is None else tuple(int(i) for i in args.indices.split(","))
    budget_end = time.monotonic() + args.train_budget
    if "resnet18" in results:
        trainability(results["resnet18"], "resnet18", sizes, args.train_budget, device, args.out, log,
                     indices=indices, name=f"secant NADs of this run ({results['resnet18'].n_networks} networks)")
    if args.published_indices:
        from nadlib.paper import published_nads
        pub = tuple(int(i) for i in args.published_indices.split(","))
        trainability(published_nads("resnet18"), "resnet18", sizes, max(0.0, budget_end - time.monotonic()),
                     device, args.out, log, indices=pub, name="published NADs of the authors")
    log["total_s"] = round(time.monotonic() - t0, 1)
    (args.out / "log.json").write_text(json.dumps(log, indent=1, default=str))
    print(json.dumps(log, default=str))


if __name__ == "__main__":
    main()
