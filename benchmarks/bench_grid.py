"""Grid runner vs a plain per-direction training loop with a DataLoader (the authors' style).

Both train the same architecture on the same Fourier directions with the same recipe (SGD, lr 0.5
with linear decay, grad-norm clip 0.5, batch 128) and the same data; the plain loop is written the way the authors' public training script is: batches
from ``torch.utils.data.DataLoader`` (shuffled, two loader worker processes), and an evaluation of
the whole test set after every epoch.  Prints one table: time per direction, speed-up, and the accuracies of both.

    python benchmarks/bench_grid.py --arch lenet --directions 4 --n-train 10000 --epochs 20

Timings are wall-clock on this machine, measured in the same run; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nadlib
from nadlib.models import seeded_model
from nadlib.training import TEST_SEED_OFFSET
from nadlib import Recipe, RunControl


def plain_loop_accuracy(arch, v, n_train, n_test, epochs, seed=0, lr=0.5, clip=0.5, batch_size=128, workers=2):
    """A straightforward training script: DataLoader batches (2 workers, as in the authors' script),
    per-epoch evaluation, default memory format."""
    x_tr, y_tr = nadlib.linear_separable(v, n_train, seed=seed, device="cpu")
    x_te, y_te = nadlib.linear_separable(v, n_test, seed=seed + TEST_SEED_OFFSET, device="cpu")
    train_loader = DataLoader(TensorDataset(x_tr, (y_tr > 0).long()), batch_size=batch_size, shuffle=True,
                              num_workers=workers, generator=torch.Generator().manual_seed(seed))
    test_loader = DataLoader(TensorDataset(x_te, (y_te > 0).long()), batch_size=batch_size, num_workers=workers)
    model = seeded_model(arch, seed, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    total = epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / total)
    criterion = nn.CrossEntropyLoss()
    acc = 0.0
    for _ in range(epochs):
        model.train()
        for xb, yb in train_loader:
            opt.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in test_loader:
                correct += (model(xb).argmax(1) == yb).sum().item()
        acc = correct / n_test
    return acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="lenet")
    p.add_argument("--directions", type=int, default=4, help="how many Fourier directions")
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers of the plain loop")
    args = p.parse_args()

    freqs = [(1, 0), (5, 3), (0, 7), (16, 15), (3, 3), (12, 20), (8, 0), (2, 30)][:args.directions]
    sizes = dict(n_train=args.n_train, n_test=args.n_test, epochs=args.epochs)
    print(f"{args.arch}, {len(freqs)} directions, {sizes}, torch {torch.__version__}, "
          f"{platform.machine()} with {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")

    t0 = time.perf_counter()
    plain = [plain_loop_accuracy(args.arch, nadlib.fourier_direction(*f), workers=args.loader_workers, **sizes)
             for f in freqs]
    t_plain = time.perf_counter() - t0

    t0 = time.perf_counter()
    grid = nadlib.accuracy_grid(args.arch, freqs, recipe=Recipe(**sizes), run=RunControl(device="cpu", progress=False))
    t_grid = time.perf_counter() - t0

    n = len(freqs)
    print()
    print("| runner | s / direction | speed-up | mean test acc. |")
    print("|---|---:|---:|---:|")
    print(f"| plain loop (DataLoader, {args.loader_workers} workers, per-epoch eval) | {t_plain / n:.1f} | 1.0x | {sum(plain) / n:.3f} |")
    print(f"| nadlib.accuracy_grid | {t_grid / n:.1f} | {t_plain / t_grid:.1f}x | "
          f"{sum(grid.accuracy.values()) / n:.3f} |")
    print()
    print("| (kx, ky) | plain | grid runner |")
    print("|---|---:|---:|")
    for f, a in zip(freqs, plain):
        print(f"| {f} | {a:.3f} | {grid.accuracy[f]:.3f} |")


if __name__ == "__main__":
    main()
