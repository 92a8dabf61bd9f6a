"""One GPU session's measurements for issue 26 ("Use the GPU"): ``benchmarks/bench_gpu_paths.py`` step by
step, within a wall-clock budget, resumable, every result written under ``--out`` (``$OUT`` on the lent
machine).

Each step is one run of the benchmark in its own process (a CUDA error or an out-of-memory in one step
costs only that step), with a time limit of the smaller of its own cap and the budget left; a step is
skipped when the budget left is below its expected cost.  A step that finished wrote ``<step>.json``;
running the script again with the same ``--out`` skips it (resume after a cut-off session).  At the end
``summary.md`` holds one Markdown table of every finished step, with the card's name, and ``log.json`` the
status of each step (done, failed, skipped for time).

    python scripts/gpu_issue26.py --out "$OUT" --budget 420          # on the GPU
    python scripts/gpu_issue26.py --out /tmp/g26 --device cpu --tiny  # end-to-end check on a CPU (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_gpu_paths.py"

#: (name, benchmark arguments, expected seconds on one H100, cap in seconds), in order of priority.
GPU_STEPS = [
    ("secant_resnet18", ["--only", "secant", "--secant", "resnet18:64:16", "--bf16"], 60, 150),
    ("train_resnet18", ["--only", "train", "--train", "resnet18:16:10000:1"], 60, 150),
    ("secant_vgg11", ["--only", "secant", "--secant", "vgg11:128:32", "--bf16"], 30, 90),
    ("lenet", ["--only", "lenet", "--lenet", "4096:64"], 20, 60),
    ("secant_densenet121", ["--only", "secant", "--secant", "densenet121:16:8"], 60, 120),
    ("train_lenet", ["--only", "train", "--train", "lenet:32:10000:4"], 30, 90),
]
#: The same steps at a size a CPU runs in seconds (``--tiny``): checks the script, not the card.
TINY_STEPS = [
    ("secant_lenet", ["--tiny", "--only", "secant", "--secant", "lenet:12:4", "--bf16"], 10, 120),
    ("train_lenet", ["--tiny", "--only", "train"], 10, 120),
    ("lenet", ["--tiny", "--only", "lenet"], 10, 120),
]


def run_steps(steps, out: Path, budget_s: float, device: str | None, extra: list[str]) -> dict:
    """Run the steps not finished yet, in order, while the budget lasts; return the log."""
    log_path = out / "log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    end = time.monotonic() + budget_s
    for name, args, expected, cap in steps:
        result = out / f"{name}.json"
        if result.exists():
            log.setdefault(name, {})["status"] = "done (earlier run)"
            continue
        left = end - time.monotonic()
        if left < expected:
            log[name] = {"status": f"skipped: {left:.0f} s left, expected {expected} s"}
            print(f"{name}: skipped ({left:.0f} s left)", flush=True)
            continue
        cmd = [sys.executable, str(BENCH), *args, "--json", str(result), *extra]
        if device:
            cmd += ["--device", device]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=min(cap, left), cwd=ROOT)
            status = "done" if proc.returncode == 0 and result.exists() else f"failed (exit {proc.returncode})"
            text = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            status = f"timed out after {min(cap, left):.0f} s"
            text = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        (out / f"{name}.log").write_text(text)
        log[name] = {"status": status, "seconds": round(time.monotonic() - start, 1), "command": cmd[1:]}
        print(f"{name}: {status} in {log[name]['seconds']} s", flush=True)
        log_path.write_text(json.dumps(log, indent=1))
    log_path.write_text(json.dumps(log, indent=1))
    return log


def summary(steps, out: Path) -> str:
    """One Markdown table of every finished step (the benchmark's own table format)."""
    sys.path.insert(0, str(BENCH.parent))
    from bench_gpu_paths import table  # noqa: E402 (the benchmark's table, one format for both)

    rows, metas = [], []
    for name, *_ in steps:
        path = out / f"{name}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            rows += saved["rows"]
            metas.append(saved["meta"])
    if not rows:
        return "no step finished\n"
    m = metas[0]
    head = (f"Measured on {m['device_name']} ({m['device']}, card key {m['card']}, {m['precision']}), torch "
            f"{m['torch']}, {m['date_utc']}; command: `python scripts/gpu_issue26.py`.\n\n")
    return head + table(rows) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=os.environ.get("OUT"), help="default: $OUT")
    p.add_argument("--budget", type=float, default=420.0, help="wall-clock seconds for all steps")
    p.add_argument("--device", default=None)
    p.add_argument("--tiny", action="store_true", help="CPU-sized steps: checks the script end to end")
    p.add_argument("--no-tf32", action="store_true", help="measure in plain FP32 on CUDA")
    args = p.parse_args(argv)
    if args.out is None:
        p.error("--out is required (or set $OUT)")
    if not args.budget > 0:
        p.error("--budget must be positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = TINY_STEPS if args.tiny else GPU_STEPS
    log = run_steps(steps, out, args.budget, args.device, ["--no-tf32"] if args.no_tf32 else [])
    (out / "summary.md").write_text(summary(steps, out))
    print((out / "summary.md").read_text())
    return log


if __name__ == "__main__":
    main()
