"""The batched paths of issue 26 against the sequential ones, in the same run, with achieved TFLOP/s.

Three workloads, each timed on the same device, one path after the other:

* **secant NADs, LeNet**: the exact windowed LeNet path (``estimate_nads``, gradient phase) vs the generic
  secant (:func:`nadlib.nads.input_gradients.secant_plain`), one network at a time;
* **secant NADs, a deep CNN** (VGG-11, ResNet-18, DenseNet-121): generic secant one network at a time vs
  several networks per forward (:func:`nadlib.nads.input_gradients.secant_batched`, ``vmap`` over stacked
  parameters); optionally the batched path under BF16 autocast, with the accuracy guard of the issue: the
  top-10 subspace of the BF16 gradients' covariance must overlap the FP32 one by at least 0.99;
* **D(v) training**: one direction at a time (:func:`nadlib.direction_accuracy`) vs a batch of directions
  in one model stack (:func:`nadlib.grid.stacked_direction_accuracies`, batch norm included).

Columns: units per second (networks/s or directions/s), achieved TFLOP/s, % of the card's dense peak at the
precision used (:mod:`nadlib.flops`; none on a CPU), and the speed-up over the sequential path of the same
workload.  FLOPs are *nominal*: a secant network costs ``2·C·H·W`` forwards (central differences; the
windowed LeNet path computes less, so its rate is an effective one), a direction costs ``epochs·n_train``
training samples (forward + backward) plus ``n_test`` test forwards.  Every path is warmed up once (one
network, or a one-epoch run on a few samples) before it is timed.

    python benchmarks/bench_gpu_paths.py --quick                 # CPU check, a few minutes on 2 cores
    python benchmarks/bench_gpu_paths.py --device cuda --json out.json
    python benchmarks/bench_gpu_paths.py --tiny                  # seconds: checks it runs (tests)

Specs: ``--secant vgg11:64:16`` is ``arch:networks:networks-per-forward``; ``--train resnet18:16:10000:2`` is
``arch:directions:n_train:epochs``; several are separated by commas.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import contextmanager, nullcontext

import torch

import nadlib
from nadlib import Recipe, RunControl
from nadlib.directions import fourier_direction
from nadlib.flops import achieved, card_of, forward_flops, training_flops
from nadlib.grid import stacked_direction_accuracies
from nadlib.nads import network_seed
from nadlib.nads.input_gradients import secant_batched, secant_plain
from nadlib.nads.stats import subspace_overlap

#: Sizes per mode: LeNet networks (windowed, sequential generic), deep secant specs, training specs.
MODES = {
    "tiny": dict(lenet=(2, 1), secant="lenet:2:2", train="lenet:2:32:1", n_test=32),
    "quick": dict(lenet=(64, 8), secant="vgg11:4:2", train="lenet:4:1024:2,vgg11:2:128:1", n_test=500),
    "cpu": dict(lenet=(200, 16), secant="vgg11:8:4,resnet18:4:2", train="lenet:8:2000:4,vgg11:4:256:1",
                n_test=1000),
    "cuda": dict(lenet=(4096, 64), secant="vgg11:256:32,resnet18:128:16,densenet121:32:8",
                 train="lenet:32:10000:4,resnet18:16:10000:1", n_test=10000),
}
GUARD_K, GUARD_MIN = 10, 0.99


def _spec(text: str, n: int, what: str) -> list[tuple]:
    out = []
    for item in filter(None, text.split(",")):
        parts = item.split(":")
        if len(parts) != n or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
            raise SystemExit(f"bad {what} spec {item!r}: expected {n} fields arch:positive integers")
        if parts[0] not in nadlib.ARCHITECTURES:
            raise SystemExit(f"unknown architecture {parts[0]!r}; known: {', '.join(nadlib.ARCHITECTURES)}")
        out.append((parts[0], *map(int, parts[1:])))
    return out


class Timer:
    """Wall-clock seconds of a block, synchronising CUDA before and after."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, 0.0

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self):
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self.start


@contextmanager
def tf32(device: torch.device, allow: bool):
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


def networks(arch: str, indices, device) -> list:
    """Scalar-output networks seeded as :func:`nadlib.estimate_nads` seeds them, in eval mode, on ``device``."""
    out = []
    for i in indices:
        torch.manual_seed(network_seed(0, i))
        out.append(nadlib.get_model(arch, 1, 1).eval().to(device))
    return out


def row(workload, path, units, count, seconds, flops, card, precision, base=None, **extra) -> dict:
    r = {"workload": workload, "path": path, "units": units, "count": count, "seconds": seconds,
         "rate": count / seconds, "flops": flops, **achieved(flops, seconds, card, precision), **extra}
    r["speedup"] = None if base is None else r["rate"] / base["rate"]
    return r


def bench_lenet(n_fast: int, n_seq: int, x, device, card, precision, chunk) -> list[dict]:
    per_net = forward_flops(nadlib.get_model("lenet", 1, 1).to(device), tuple(x.shape)) * 2 * x.numel()
    with torch.inference_mode():
        secant_plain(networks("lenet", [0], device)[0], x, 100.0, chunk)  # warm-up
        with Timer(device) as t:
            for net in networks("lenet", range(n_seq), device):
                secant_plain(net, x, 100.0, chunk)
    seq = row("secant NADs, LeNet", "generic secant, one network at a time", "networks", n_seq, t.seconds,
              per_net * n_seq, card, precision)
    run = RunControl(device=device, progress=False)
    nadlib.estimate_nads("lenet", 2, eval_point=x.cpu(), run=run)  # warm-up
    with Timer(device) as t:
        res = nadlib.estimate_nads("lenet", n_fast, eval_point=x.cpu(), run=run)
    grad_s = float(res.meta["gradient_time_s"])
    fast = row("secant NADs, LeNet", "windowed LeNet path (estimate_nads)", "networks", n_fast, grad_s,
               per_net * n_fast, card, precision, seq, wall_s=t.seconds)
    return [seq, fast]


def bench_secant(arch, n_nets, stack, x, device, card, precision, chunk, bf16: bool) -> list[dict]:
    per_net = forward_flops(nadlib.get_model(arch, 1, 1).to(device), tuple(x.shape)) * 2 * x.numel()
    workload = f"secant NADs, {arch}"
    with torch.inference_mode():
        secant_plain(networks(arch, [0], device)[0], x, 100.0, chunk)  # warm-up
        n_seq = min(n_nets, stack)
        with Timer(device) as t:
            for net in networks(arch, range(n_seq), device):
                secant_plain(net, x, 100.0, chunk)
        seq = row(workload, "generic secant, one network at a time", "networks", n_seq, t.seconds, per_net * n_seq,
                  card, precision)
        rows = [seq]
        per_forward = max(1, chunk // stack)
        secant_batched(networks(arch, range(stack), device), x, 100.0, per_forward)  # warm-up
        grads = []
        with Timer(device) as t:
            for i in range(0, n_nets, stack):
                grads.append(secant_batched(networks(arch, range(i, min(i + stack, n_nets)), device), x, 100.0,
                                            per_forward))
        rows.append(row(workload, f"secant_batched, {stack} networks per forward", "networks", n_nets, t.seconds,
                        per_net * n_nets, card, precision, seq))
        if bf16:
            amp = torch.autocast(device.type, dtype=torch.bfloat16)
            with amp:
                secant_batched(networks(arch, range(stack), device), x, 100.0, per_forward)  # warm-up
            low = []
            with Timer(device) as t, amp:
                for i in range(0, n_nets, stack):
                    low.append(secant_batched(networks(arch, range(i, min(i + stack, n_nets)), device), x, 100.0,
                                              per_forward))
            overlap = guard_overlap(torch.cat(grads), torch.cat(low))
            rows.append(row(workload, f"secant_batched, {stack} per forward, BF16 autocast", "networks", n_nets,
                            t.seconds, per_net * n_nets, card, "bf16", seq, top10_overlap_vs_fp32=overlap,
                            guard_passed=overlap is not None and overlap >= GUARD_MIN))
    return rows


def guard_overlap(g32: torch.Tensor, g16: torch.Tensor, k: int = GUARD_K) -> float | None:
    """Top-``k`` subspace overlap of the covariance eigenvectors (NADs) of two sets of gradients of the same
    networks; None with too few networks for ``k`` directions."""
    if len(g32) <= k:
        return None

    def top(g):
        g = g.double().cpu()
        return torch.linalg.svd(g - g.mean(0), full_matrices=False).Vh[:k]
    return subspace_overlap(top(g32), top(g16), k)


def bench_training(arch, n_dirs, n_train, epochs, n_test, device, card, precision) -> list[dict]:
    recipe = Recipe(n_train=n_train, n_test=n_test, epochs=epochs)
    model = nadlib.get_model(arch).to(device)
    per_dir = (epochs * n_train * training_flops(model, (1, 32, 32), batch=2) // 2
               + n_test * forward_flops(model, (1, 32, 32)))
    vs = [fourier_direction(1 + (3 * j) % 15, (5 * j) % 16) for j in range(n_dirs)]
    run = RunControl(seed=0, device=device, progress=False)
    warm = Recipe(n_train=2 * recipe.batch_size, n_test=64, epochs=1)
    workload = f"D(v) training, {arch} ({n_train} samples, {epochs} epoch{'s' if epochs > 1 else ''})"
    nadlib.direction_accuracy(arch, vs[0], recipe=warm, run=run)  # warm-up
    with Timer(device) as t:
        seq_acc = [nadlib.direction_accuracy(arch, v, recipe=recipe, run=run) for v in vs]
    seq = row(workload, "one direction at a time (direction_accuracy)", "directions", n_dirs, t.seconds,
              per_dir * n_dirs, card, precision)
    stacked_direction_accuracies(arch, vs, recipe=warm, run=run)  # warm-up
    with Timer(device) as t:
        stk_acc = stacked_direction_accuracies(arch, vs, recipe=recipe, run=run)
    diff = max(abs(a - b) for a, b in zip(seq_acc, stk_acc))
    stk = row(workload, f"{n_dirs} directions in one model stack", "directions", n_dirs, t.seconds,
              per_dir * n_dirs, card, precision, seq, max_accuracy_difference=diff)
    seq["max_accuracy_difference"] = 0.0
    return [seq, stk]


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    lines = ["| workload | path | units/s | TFLOP/s | % of peak | × sequential | note |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        note = []
        if "max_accuracy_difference" in r and r["speedup"] is not None:
            note.append(f"max |Δ accuracy| {r['max_accuracy_difference']:.4f}")
        if "top10_overlap_vs_fp32" in r:
            note.append(f"top-10 overlap vs FP32 {_fmt(r['top10_overlap_vs_fp32'], '.4f')} "
                        f"({'passes' if r['guard_passed'] else 'fails'} the ≥ {GUARD_MIN} guard)")
        lines.append(f"| {r['workload']} | {r['path']} | {r['rate']:.3g} {r['units']}/s | {r['tflops']:.3g} | "
                     f"{_fmt(r['pct_of_peak'], '.2f')} | {_fmt(r['speedup'], '.2f')} | {'; '.join(note)} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few minutes on a CPU")
    size.add_argument("--tiny", action="store_true", help="seconds: only checks that everything runs")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--secant", default=None, help="deep secant specs arch:networks:per-forward[,...]")
    ap.add_argument("--train", default=None, help="training specs arch:directions:n_train:epochs[,...]")
    ap.add_argument("--lenet", default=None, help="LeNet networks windowed:sequential, e.g. 200:16")
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=None, help="perturbed inputs per forward (default 2048 CUDA, 256 CPU)")
    ap.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="TF32 on CUDA (default on)")
    ap.add_argument("--bf16", action="store_true", help="also the BF16-autocast secant with its accuracy guard")
    ap.add_argument("--only", default="lenet,secant,train", help="workloads to run (comma-separated)")
    ap.add_argument("--json", default=None, help="write the rows and the machine here")
    args = ap.parse_args(argv)
    device = nadlib.get_device(args.device)
    mode = "tiny" if args.tiny else "quick" if args.quick else ("cuda" if device.type == "cuda" else "cpu")
    sizes = MODES[mode]
    secant = _spec(args.secant or sizes["secant"], 3, "--secant")
    train = _spec(args.train or sizes["train"], 4, "--train")
    lenet = tuple(int(v) for v in (args.lenet.split(":") if args.lenet else sizes["lenet"]))
    n_test = args.n_test or sizes["n_test"]
    chunk = args.chunk or (2048 if device.type == "cuda" else 256)
    only = set(args.only.split(","))
    if only - {"lenet", "secant", "train"}:
        raise SystemExit(f"--only takes lenet, secant, train; got {args.only!r}")
    card = card_of(device)
    precision = "tf32" if device.type == "cuda" and args.tf32 else "fp32"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'}"
    print(f"device {device} ({name}), card key {card}, precision {precision}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, mode {mode}", flush=True)
    x = torch.randn((1, 32, 32), generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    with tf32(device, args.tf32):
        if "lenet" in only:
            rows += bench_lenet(lenet[0], lenet[1], x, device, card, precision, chunk)
            print(f"  done LeNet secant", flush=True)
        if "secant" in only:
            for arch, n, stack in secant:
                rows += bench_secant(arch, n, stack, x, device, card, precision, chunk, args.bf16)
                print(f"  done {arch} secant", flush=True)
        if "train" in only:
            for arch, n_dirs, n_train, epochs in train:
                rows += bench_training(arch, n_dirs, n_train, epochs, n_test, device, card, precision)
                print(f"  done {arch} training", flush=True)
    print()
    print(table(rows))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        meta = {"device": str(device), "device_name": name, "card": card, "precision": precision, "mode": mode,
                "torch": torch.__version__, "cpus": os.cpu_count(), "argv": sys.argv if argv is None else argv,
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
