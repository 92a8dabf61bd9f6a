"""A live LeNet run on an idle and on a busy CPU: torch's default thread count against ``nadlib.free_cores``.

A chapter's live cell must slow down gracefully when other processes share the CPU.  This script trains LeNet
on D(v) (the paper's recipe, ``--epochs`` epochs of 10,000 samples) four times: on the idle machine and with
``--hog`` busy processes beside it (pure-Python loops, started here and stopped after), each with torch's
default thread count (one per core) and with the count :func:`nadlib.use_free_cores` chooses.  It prints the
seconds per epoch and the slowdown against the idle machine with the same policy, measured in the same run.

    python benchmarks/bench_busy.py                 # 2 busy processes, 2 epochs per measurement
    python benchmarks/bench_busy.py --hog 3 --epochs 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from nadlib import Recipe, RunControl


def _spin(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _epoch_seconds(threads: int | None, epochs: int) -> tuple[float, int]:
    import torch

    import nadlib

    before = torch.get_num_threads()
    if threads is None:
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        nadlib.use_free_cores()
    used = torch.get_num_threads()
    t0 = time.perf_counter()
    nadlib.direction_accuracy("lenet", nadlib.fourier_direction(1, 0),
                              recipe=Recipe(n_train=10_000, n_test=2_000, epochs=epochs), run=RunControl(device="cpu"))
    torch.set_num_threads(before)
    return (time.perf_counter() - t0) / epochs, used


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hog", type=int, default=2, help="busy processes beside the run (default 2)")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args(argv)
    if args.hog < 1 or args.epochs < 1:
        ap.error("--hog and --epochs must be positive")

    import torch

    import nadlib

    print(f"# LeNet on D(v), 10,000 samples an epoch, idle vs {args.hog} busy processes: "
          f"{platform.machine()} with {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average before {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}\n")
    _epoch_seconds(None, 1)  # warm-up
    policies = {"torch default (one thread per core)": None, "nadlib.use_free_cores()": "auto"}
    idle = {name: _epoch_seconds(p, args.epochs) for name, p in policies.items()}
    stop = mp.Event()
    hogs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.hog)]
    for h in hogs:
        h.start()
    try:
        time.sleep(1.0)  # let the busy processes show up in the run queue
        busy = {name: _epoch_seconds(p, args.epochs) for name, p in policies.items()}
    finally:
        stop.set()
        for h in hogs:
            h.join(5)
    rows = [[name, idle[name][1], f"{idle[name][0]:.2f}", busy[name][1], f"{busy[name][0]:.2f}",
             f"{busy[name][0] / idle[name][0]:.1f}×"] for name in policies]
    print(nadlib.markdown_table(["threads", "threads idle", "s / epoch idle", "threads busy", "s / epoch busy",
                                 "slowdown"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
