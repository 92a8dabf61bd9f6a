"""Answer time of the Chapter 1 "train now" widget (``nadlib.book.widgets.FourierTrainWidget``) on the CPU.

The widget's answer is ``train_now()``: train the chosen architecture on D(v) for the selected Fourier
direction with the profile's sizes, then draw the learning curve.  This script builds the widget as
Chapter 1 does (precomputed maps from the packaged results), selects a square, and times
``train_now()`` per architecture, ``--repeats`` times each (the first run includes warm-up): the time to the
first answer (the test accuracy after one epoch, streamed while the run goes on, beside the stored answer)
and to the final answer.  Target: first answer ≤ 5 s in the ``default`` profile on a laptop CPU.  The browser round trip (click to accuracy shown in
Chromium, through JupyterLab) is measured by ``tests/test_widget_browser.py`` (smoke profile) and adds
well under a second to these numbers.

    python benchmarks/bench_widget.py                       # default profile, logreg and lenet
    python benchmarks/bench_widget.py --archs logreg lenet lenet_nopool --repeats 2 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    ap.add_argument("--archs", nargs="+", default=["logreg", "lenet"])
    ap.add_argument("--freq", type=int, nargs=2, default=(8, 0), metavar=("KX", "KY"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--target", type=float, default=5.0, help="seconds (default 5)")
    args = ap.parse_args(argv)

    import torch

    import nadlib
    from nadlib.book import widgets

    torch.set_num_threads(args.threads)
    profile = nadlib.get_profile(args.profile)
    grids = {"logreg": nadlib.GridResult.from_artifact(nadlib.result_path("grid_logreg_paper_s2.npz")),
             "lenet": nadlib.GridResult.from_artifact(nadlib.result_path("grid_lenet_paper_s4.npz"))}
    w = widgets.fourier_train_widget(grids, profile, archs=args.archs, display_widget=False)
    w.select(tuple(args.freq))
    n = w.sizes
    print(f"# Chapter 1 widget answer time: {args.profile} profile ({n['n_train']:,} train / {n['n_test']:,} "
          f"test samples, {n['epochs']} epochs), (kx, ky) = {tuple(args.freq)}, device {w.device}, "
          f"{args.threads} torch thread(s), {platform.machine()} with {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
    rows = []
    for arch in args.archs:
        w.arch.value = arch
        first, final = [], []
        for _ in range(args.repeats):
            w.train_now()
            first.append(w.first_reading_s)
            final.append(w.final_answer_s)
        acc = w.results[-1][2].final_test_acc
        rows.append([arch, " / ".join(f"{t:.1f}" for t in first), f"{statistics.median(first):.1f}",
                     " / ".join(f"{t:.1f}" for t in final), f"{acc:.3f}",
                     "yes" if statistics.median(first) <= args.target else "**no**"])
    print(nadlib.markdown_table(["architecture", "first answer (s)", "median first (s)", "final answer (s)",
                                 "test acc.", f"first ≤ {args.target:g} s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
