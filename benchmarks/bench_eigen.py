"""Full eigh vs the top-m Lanczos path for colour NADs (d = 3 x 32 x 32 = 3072), in one run.

The covariance is a real one: autograd input gradients of ``--networks`` random colour LeNets
(``nad_statistics("lenet", ..., method="gradient", input_shape=(3, 32, 32))``).  Rows:

* the eigendecomposition of the whole covariance: full ``eig_desc`` (``eigh``, one thread, as nadlib runs it)
  against ``eig_top_desc(cov, m)`` (scipy ``eigsh``) for m = 20, 50, 64, 100, with the largest relative
  eigenvalue difference and the smallest ``<u_i, v_i>`` of the top m (same sign convention, so ~1);
* ``nads_from_statistics`` as a user meets it: ``k=None`` (every direction: full eigh, the split-half
  stability by Lanczos), ``k=20`` (top-m path throughout), and the cost before issue 21 (three full
  eighs: the whole covariance and the two halves of the stability), measured here as three ``eig_desc``.

    python benchmarks/bench_eigen.py                 # ~2-4 minutes on 2 busy cores
    python benchmarks/bench_eigen.py --networks 400  # fewer networks (faster statistics)
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import nadlib
from nadlib.nads.stats import eig_desc, eig_top_desc


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=1000)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}")
    shape = (3, 32, 32)
    stats, t_stats = _timed(lambda: nadlib.nad_statistics("lenet", 0, args.networks, method="gradient",
                                                          input_shape=shape))
    cov = stats.covariance()
    print(f"statistics of {args.networks} colour LeNets (gradient): {t_stats:.1f} s; d = {cov.shape[0]}\n")

    (vals, vecs), t_full = _timed(lambda: eig_desc(cov))
    print("| eigendecomposition of the 3072 x 3072 covariance | time (s) | max rel. eigenvalue diff | min <u_i, v_i> |")
    print("|---|---:|---:|---:|")
    print(f"| full `eig_desc` (eigh, all 3072 pairs) | {t_full:.2f} | - | - |", flush=True)
    for m in (20, 50, 64, 100):
        (tv, tu), t = _timed(lambda: eig_top_desc(cov, m))
        rel = ((tv - vals[:m]).abs() / vals[:m]).max().item()
        dot = (tu * vecs[:m]).sum(1).min().item()
        print(f"| top-m `eig_top_desc` (eigsh), m = {m} | {t:.2f} | {rel:.1e} | {1 - dot:+.1e} from 1 |",
              flush=True)

    print("\n| `nads_from_statistics` on these statistics | eigen path | time (s) |")
    print("|---|---|---:|")
    _, t_halves = _timed(lambda: (eig_desc(stats.covariance(0)), eig_desc(stats.covariance(1))))
    print(f"| before issue 21 (three full eighs: whole + two halves) | eigh x 3 | {t_full + t_halves:.1f} |")
    for k in (None, 20):
        res, t = _timed(lambda: nadlib.nads_from_statistics(stats, shape, "gradient", k=k))
        print(f"| k = {k} (stability k = 1, 5, 10, 50) | {res.meta['eigen_path']}, m = {res.meta['eigen_m']}; "
              f"stability by eigsh | {t:.1f} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
