"""The paper run: every artifact the book reads, at the paper's sizes, in priority order, within a budget.

``python -m nadlib paper`` (argparse lives in :mod:`nadlib.cli`) runs these steps, each architecture one
row of the plan:

1. ``nads``         secant NADs of the four CNNs (10,000 networks, :func:`nadlib.estimate_nads`);
2. ``trainability`` each CNN trained on D(u_i) of its own NADs at the paper's indices
   (:func:`nadlib.nad_trainability`);
3. ``grid``         Fourier maps of the five networks and the pooling-free twins, band 8 (the paper's 16x16
   block of low frequencies, :func:`nadlib.accuracy_grid`);
4. ``poison``, ``flip``  CIFAR-10 poisoned at NAD indices, and NAD-flipped (:func:`nadlib.run_poison_sweep`,
   :func:`nadlib.run_flip`), each CNN with its own NADs.

Before starting, the plan is printed with an estimated cost per row from :data:`COSTS`, a small table of
per-unit costs per (step kind, architecture, device type): measured on this project's 2-core CPU where
marked ``measured``, otherwise estimates (on CUDA: the secant NADs of the deep CNNs and ResNet-18 on D(v)
were measured on one H200).  A *budget* turns
into a ``time.monotonic()`` deadline handed to every step: the step stops after its current unit (a batch
of networks, a direction, a training run), keeps its checkpoint ``<out>.ckpt.npz`` and the run ends with
"budget reached"; the next call skips finished artifacts and resumes the checkpoints, so a run split over
several calls writes the same artifacts as one uninterrupted run.  Every call makes progress: the deadline
is checked only after the first unit.

Artifacts (in ``out_dir``): ``nads_<arch>_secant_<sizes>.npz``, ``trainability_<arch>_<sizes>.npz``,
``grid_<arch>_<sizes>_band<B>.npz``, ``cifar_poison_<arch>_<sizes>.npz``, ``cifar_flip_<arch>_<sizes>.npz``,
with ``<sizes>`` = ``paper`` (or ``smoke``, the tiny sizes the tests use).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .cifar10 import cifar_data
from .config import get_device, get_profile
from .directions import fourier_grid
from .distributed import init_ray, ray_accuracy_grid, ray_estimate_nads
from .experiments import load_basis, nad_trainability, run_flip, run_poison_sweep
from .grid import accuracy_grid
from .nads import estimate_nads, load_nads
from .results import DeadlineReached, checkpoint_path, load_artifact, past, provenance, results_dir, save_artifact
from .tables import markdown_table

__all__ = ["STEPS", "SIZES", "COSTS", "RunSizes", "PlanRow", "parse_budget", "parse_only", "paper_plan",
           "format_plan", "run_paper"]

STEPS = ("nads", "trainability", "grid", "poison", "flip")
CNNS = ("lenet", "vgg11", "resnet18", "densenet121")
GRID_ARCHS = ("logreg", "lenet", "vgg11", "resnet18", "densenet121",
              "lenet_nopool", "vgg11_nopool", "resnet18_nopool", "densenet121_nopool")
DEVICE_TYPES = ("cpu", "cuda")


@dataclass(frozen=True)
class RunSizes:
    """The sizes of every step of one paper run."""

    name: str
    nad_networks: int
    nad_archs: tuple[str, ...]
    train_indices: tuple[int, ...]
    n_train: int  # D(v) / D(u_i) samples (train and test)
    n_test: int
    epochs: int
    grid_band: int
    grid_archs: tuple[str, ...]
    grid_workers: int | None  # CPU worker processes of a grid (None: one per core)
    cifar_n_train: int
    cifar_n_test: int
    cifar_epochs: int
    poison_indices: tuple[int, ...]
    cifar_archs: tuple[str, ...]
    synthetic: bool  # synthetic stand-in images instead of CIFAR-10 (tests only)


def _paper_sizes() -> RunSizes:
    p = get_profile("paper")
    return RunSizes("paper", p.nads.n_networks, CNNS, p.nads.trainability_indices, p.nads.n_train, p.nads.n_test,
                    p.nads.epochs, 8, GRID_ARCHS, None, p.cifar.n_train, p.cifar.n_test, p.cifar.epochs,
                    p.cifar.poison_indices, CNNS, False)


SIZES = {
    "paper": _paper_sizes(),
    # every step shrunk to seconds on a CPU (the tests): LeNet only, LogReg for a second grid
    "smoke": RunSizes("smoke", 16, ("lenet",), (0, 5), 256, 128, 1, 1, ("logreg", "lenet"), 1, 100, 50, 1, (0,),
                      ("lenet",), True),
}

#: Paper recipe sizes the per-unit costs refer to: D(v) samples x epochs, CIFAR-10 images x epochs.
_DV_WORK, _CIFAR_WORK = 10_000 * 20, 50_000 * 30

#: Seconds per unit at the paper's sizes: (kind, arch, device type) -> (seconds, source).  Kinds: ``nads``
#: (one network, secant over 1,024 pixels), ``direction`` (one training on D(v), 10,000 samples, 20 epochs;
#: used by trainability and grid), ``cifar`` (one CIFAR-10 training, 50,000 images, 30 epochs).
COSTS: dict[tuple[str, str, str], tuple[float, str]] = {
    # CPU: this project's 2-core CPU, one torch thread (DESIGN.md; benchmarks/bench_paper_costs.py, whose run
    # on a machine shared by four jobs gave LeNet 13.7 networks/s, VGG-11 14.7 s, ResNet-18 44.8 s and
    # DenseNet-121 191 s per network, LeNet 155 s per direction: the idle-machine numbers are kept where known)
    ("nads", "lenet", "cpu"): (1 / 50, "measured"),
    ("nads", "vgg11", "cpu"): (15.0, "measured"),
    ("nads", "resnet18", "cpu"): (30.0, "measured"),
    ("nads", "densenet121", "cpu"): (190.0, "measured"),
    ("direction", "logreg", "cpu"): (4.0, "estimate"),
    ("direction", "lenet", "cpu"): (40.0, "measured"),
    ("direction", "lenet_nopool", "cpu"): (120.0, "estimate"),
    ("direction", "vgg11", "cpu"): (35 * 60.0, "estimate"),
    ("direction", "vgg11_nopool", "cpu"): (3 * 3600.0, "estimate"),
    ("direction", "resnet18", "cpu"): (70 * 60.0, "measured"),
    ("direction", "resnet18_nopool", "cpu"): (4 * 3600.0, "estimate"),
    ("direction", "densenet121", "cpu"): (2.5 * 3600.0, "estimate"),
    ("direction", "densenet121_nopool", "cpu"): (8 * 3600.0, "estimate"),
    # CUDA: measured on one NVIDIA H200 where marked (scripts/gpu_deep_nads.py, batched secant, float32;
    # results/*_gpu.npz: 568 VGG-11 networks in 63 s, 256 ResNet-18 in 64 s, 36 DenseNet-121 in 64 s, and
    # ResNet-18 on D(v) at 14-16 s per direction, one at a time); the rest are estimates
    ("nads", "lenet", "cuda"): (0.0005, "estimate"),
    ("nads", "vgg11", "cuda"): (1 / 9.1, "measured (H200)"),
    ("nads", "resnet18", "cuda"): (1 / 4.0, "measured (H200)"),  # target was 10,000 networks in <= 60 s
    ("nads", "densenet121", "cuda"): (1 / 0.56, "measured (H200)"),
    ("direction", "logreg", "cuda"): (0.2, "estimate"),
    ("direction", "lenet", "cuda"): (0.5, "estimate"),
    ("direction", "lenet_nopool", "cuda"): (1.0, "estimate"),
    ("direction", "vgg11", "cuda"): (2.0, "estimate"),
    ("direction", "vgg11_nopool", "cuda"): (5.0, "estimate"),
    ("direction", "resnet18", "cuda"): (15.0, "measured (H200)"),  # target was <= 3 s per direction
    ("direction", "resnet18_nopool", "cuda"): (50.0, "estimate"),  # ~3.4x ResNet-18, as on the CPU
    ("direction", "densenet121", "cuda"): (10.0, "estimate"),
    ("direction", "densenet121_nopool", "cuda"): (30.0, "estimate"),
    # one CIFAR-10 training (50,000 images, 30 epochs) is not batched over runs like D(v) directions are
    ("cifar", "lenet", "cuda"): (60.0, "estimate"),
    ("cifar", "vgg11", "cuda"): (180.0, "estimate"),
    ("cifar", "resnet18", "cuda"): (300.0, "estimate"),
    ("cifar", "densenet121", "cuda"): (900.0, "estimate"),
}


def unit_cost(kind: str, arch: str, device_type: str) -> tuple[float, str]:
    """Seconds per unit at the paper's sizes and where the number comes from.  A CIFAR-10 training without
    an entry of its own is derived from the D(v) cost of the same architecture (per image and epoch)."""
    if kind == "cifar" and (kind, arch, device_type) not in COSTS:
        sec, src = COSTS[("direction", arch, device_type)]
        return sec * _CIFAR_WORK / _DV_WORK, f"derived ({src} D(v) cost)"
    return COSTS[(kind, arch, device_type)]


# --------------------------------------------------------------------------------------------------
# parsing


_BUDGET = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def parse_budget(text: str) -> float:
    """``"90s"``, ``"12m"``, ``"2h"``, ``"1.5h"``, ``"0.5s"`` -> seconds.  Anything else is a ``ValueError``."""
    if not isinstance(text, str):
        raise ValueError(f"a budget is a string like '90s', '12m' or '2h', got {text!r}")
    m = _BUDGET.fullmatch(text.strip())
    if not m:
        raise ValueError(f"a budget is a number and a unit s, m or h, like '90s', '12m', '2h' or '1.5h'; "
                         f"got {text!r}")
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 0 < seconds <= 366 * 86400:
        raise ValueError(f"a budget must be more than 0 and at most a year, got {text!r}")
    return seconds


def parse_only(text: str | None) -> tuple[str, ...]:
    """``"nads,grid"`` -> ``("nads", "grid")`` (in priority order); None -> every step."""
    if text is None:
        return STEPS
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [n for n in names if n not in STEPS]
    if not names or bad:
        raise ValueError(f"--only takes comma-separated steps out of {', '.join(STEPS)}; got {text!r}")
    return tuple(s for s in STEPS if s in names)


# --------------------------------------------------------------------------------------------------
# the plan


@dataclass
class PlanRow:
    """One row of the plan: a step for one architecture, its artifact and how much of it is done."""

    step: str
    arch: str
    units: int
    unit: str  # what one unit is: "network", "direction", "run"
    out: Path
    needs: Path | None = None  # the NAD artifact this step reads
    done_units: int = 0
    status: str = "todo"

    @property
    def ckpt(self) -> Path:
        return checkpoint_path(self.out)

    def refresh(self) -> None:
        """Status from the files: ``done`` (artifact), ``partial`` (checkpoint), else ``todo``."""
        if self.out.exists():
            self.status, self.done_units = "done", self.units
        elif self.ckpt.exists():
            self.status, self.done_units = "partial", _ckpt_progress(self.ckpt)
        else:
            self.status, self.done_units = "todo", 0

    def cost(self, sizes: RunSizes, device_type: str) -> tuple[float, str]:
        """Estimated seconds left and the source of the per-unit cost."""
        kind = {"nads": "nads", "trainability": "direction", "grid": "direction"}.get(self.step, "cifar")
        sec, src = unit_cost(kind, self.arch, device_type)
        if kind == "direction":
            sec *= sizes.n_train * sizes.epochs / _DV_WORK
        elif kind == "cifar":
            sec *= sizes.cifar_n_train * sizes.cifar_epochs / _CIFAR_WORK
        return sec * max(self.units - self.done_units, 0), src


def _ckpt_progress(path: Path) -> int:
    """Units finished in a checkpoint (networks, directions or runs); 0 when it cannot be read."""
    try:
        arrays, _ = load_artifact(path)
    except (ValueError, OSError):
        return 0
    if "next_index" in arrays:
        return int(arrays["next_index"])
    if "freqs" in arrays:
        return len(arrays["freqs"])
    return len({name.partition("__")[0] for name in arrays})


def paper_plan(sizes: str | RunSizes = "paper", only=None, out_dir=None) -> list[PlanRow]:
    """The rows of a paper run, in priority order, with their status read from ``out_dir``.

    Raises:
        ValueError: unknown sizes or steps, or a selected step that needs NADs which are neither present
            nor selected.
    """
    if isinstance(sizes, str):
        if sizes not in SIZES:
            raise ValueError(f"unknown sizes {sizes!r}; choose one of {', '.join(SIZES)}")
        sizes = SIZES[sizes]
    steps = parse_only(",".join(map(str, only)) if isinstance(only, (list, tuple)) else only)
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    tag = sizes.name
    nads = {a: out / f"nads_{a}_secant_{tag}.npz" for a in set(sizes.nad_archs) | set(sizes.cifar_archs)}
    rows = []
    for step in steps:
        if step == "nads":
            rows += [PlanRow(step, a, sizes.nad_networks, "network", nads[a]) for a in sizes.nad_archs]
        elif step == "trainability":
            rows += [PlanRow(step, a, len(sizes.train_indices), "direction", out / f"trainability_{a}_{tag}.npz",
                             nads[a]) for a in sizes.nad_archs]
        elif step == "grid":
            n = _grid_size(sizes.grid_band)
            rows += [PlanRow(step, a, n, "direction", out / f"grid_{a}_{tag}_band{sizes.grid_band}.npz")
                     for a in sizes.grid_archs]
        elif step == "poison":
            rows += [PlanRow(step, a, 1 + len(sizes.poison_indices), "run", out / f"cifar_poison_{a}_{tag}.npz",
                             nads[a]) for a in sizes.cifar_archs]
        else:
            rows += [PlanRow(step, a, 2, "run", out / f"cifar_flip_{a}_{tag}.npz", nads[a])
                     for a in sizes.cifar_archs]
    for row in rows:
        row.refresh()
    made = {r.out for r in rows if r.step == "nads"}
    for row in rows:
        if row.needs is not None and row.status != "done" and row.needs not in made and not row.needs.exists():
            raise ValueError(f"{row.step} for {row.arch} needs {str(row.needs)!r}, which does not exist: include "
                             "'nads' in --only, or run the nads step first")
    return rows


def _grid_size(band: int) -> int:
    return len(list(fourier_grid(32, 1, band=band)))


def default_out_dir() -> Path:
    """``nadlib.results_dir()``, else ``results/`` in the current folder."""
    try:
        return results_dir()
    except FileNotFoundError:
        return Path("results")


def _human(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def format_plan(rows: list[PlanRow], sizes: str | RunSizes = "paper", device_type: str = "cpu") -> str:
    """The plan as a Markdown table (step, arch, units, est. cost, status) with the total and the source of
    the costs."""
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"device_type must be one of {', '.join(DEVICE_TYPES)}, got {device_type!r}")
    sizes = SIZES[sizes] if isinstance(sizes, str) else sizes
    table, total, sources = [], 0.0, set()
    for r in rows:
        sec, src = r.cost(sizes, device_type)
        total += sec
        sources.add(src.split(" ")[0] if not src.startswith("derived") else "derived")
        status = f"partial ({r.done_units:,}/{r.units:,})" if r.status == "partial" else r.status
        table.append([r.step, r.arch, f"{r.units:,} {r.unit}s", _human(sec), status, r.out.name])
    note = ("costs on CUDA measured on one H200 where marked measured in nadlib.paper_run.COSTS (secant NADs "
            "of the three deep CNNs, ResNet-18 on D(v)); the rest are estimates" if device_type == "cuda" else
            "costs measured on a 2-core CPU, one thread per process, where marked measured in nadlib.paper_run.COSTS"
            "; the rest are estimates")
    head = (f"paper run, sizes {sizes.name}, device type {device_type}: {len(rows)} steps, "
            f"{sum(r.status == 'done' for r in rows)} done; estimated time left {_human(total)} ({note})")
    return head + "\n\n" + markdown_table(["step", "arch", "units", "est. cost", "status", "artifact"], table)


# --------------------------------------------------------------------------------------------------
# running


class _Runner:
    """Executes the rows of a plan with one device, engine and deadline."""

    def __init__(self, sizes: RunSizes, device, engine: str, address, deadline, seed: int, progress: bool):
        self.sizes, self.device, self.engine, self.address = sizes, device, engine, address
        self.deadline, self.seed, self.progress = deadline, seed, progress
        self._data = None

    def meta(self, row: PlanRow, t0: float, **extra) -> dict:
        dev = self.device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        return provenance(device=dev, device_name=name, precision="float32", wall_time_s=round(time.perf_counter()
                          - t0, 3), sizes=self.sizes.name, step=row.step, arch=row.arch, engine=self.engine,
                          seed=self.seed, resumed=row.status == "partial", **extra)

    def __call__(self, row: PlanRow) -> None:
        getattr(self, f"_{row.step}")(row, time.perf_counter())
        row.ckpt.unlink(missing_ok=True)

    def _nads(self, row, t0):
        s = self.sizes
        if self.engine == "ray":
            res = ray_estimate_nads(row.arch, s.nad_networks, seed=self.seed, device_type=self.device.type,
                                    checkpoint=row.ckpt, deadline=self.deadline, progress=self.progress)
        else:
            res = estimate_nads(row.arch, s.nad_networks, method="secant", seed=self.seed, device=self.device,
                                checkpoint=row.ckpt, deadline=self.deadline, progress=self.progress)
        res.meta.update(self.meta(row, t0, networks=s.nad_networks))
        res.save(row.out)

    def _trainability(self, row, t0):
        s = self.sizes
        nads = load_nads(row.needs)
        arrays = nad_trainability(nads, s.train_indices, arch=row.arch, n_train=s.n_train, n_test=s.n_test,
                                  epochs=s.epochs, seed=self.seed, device=self.device, progress=self.progress,
                                  checkpoint=row.ckpt, deadline=self.deadline)
        save_artifact(row.out, arrays, self.meta(row, t0, nads=row.needs.name, nads_networks=nads.n_networks,
                                                 n_train=s.n_train, n_test=s.n_test, epochs=s.epochs))

    def _grid(self, row, t0):
        s, cfg = self.sizes, get_profile("paper").separability
        recipe = dict(n_train=s.n_train, n_test=s.n_test, epochs=s.epochs, seed=self.seed, lr=cfg.lr, clip=cfg.clip,
                      batch_size=cfg.batch_size, sigma=cfg.sigma, epsilon=cfg.epsilon)
        if self.engine == "ray":
            res = ray_accuracy_grid(row.arch, band=s.grid_band, device_type=self.device.type, checkpoint=row.ckpt,
                                    deadline=self.deadline, progress=self.progress, **recipe)
        else:
            res = accuracy_grid(row.arch, band=s.grid_band, device=self.device, workers=s.grid_workers,
                                checkpoint=row.ckpt, deadline=self.deadline, progress=self.progress, **recipe)
        extra = {k: v for k, v in res.settings.items() if k not in ("arch", "seed")}
        save_artifact(row.out, res.to_arrays(), self.meta(row, t0, band=s.grid_band, stride=1, wall_time=res.wall_time,
                                                          **extra))

    def data(self) -> dict:
        if self._data is None:
            s = self.sizes
            self._data = cifar_data(get_profile("paper"), n_train=s.cifar_n_train, n_test=s.cifar_n_test,
                                    synthetic=True if s.synthetic else None, seed=self.seed, device=self.device)
        return self._data

    def _cifar(self, row, t0, fn: Callable, **kwargs):
        data = self.data()
        arrays, settings = fn(row.arch, load_basis(row.needs), data, epochs=self.sizes.cifar_epochs, seed=self.seed,
                              device=self.device, checkpoint=row.ckpt, progress=self.progress,
                              profile=get_profile("paper"), deadline=self.deadline, **kwargs)
        save_artifact(row.out, arrays, self.meta(row, t0, settings=settings, data_source=data["source"],
                                                 nads=row.needs.name))

    def _poison(self, row, t0):
        self._cifar(row, t0, run_poison_sweep, indices=list(self.sizes.poison_indices))

    def _flip(self, row, t0):
        self._cifar(row, t0, run_flip)


def run_paper(sizes: str | RunSizes = "paper", *, only=None, out_dir=None, device=None, engine: str = "serial",
              address: str | None = None, budget_s: float | None = None, seed: int = 0, progress: bool = True,
              echo: Callable[[str], None] = print) -> bool:
    """Run the plan (see the module docstring); returns True when every selected artifact exists, False
    when the budget ran out first (progress is saved; call again to continue).

    Raises:
        ValueError: bad sizes, steps, engine or budget (before any work).
        ImportError: ``engine="ray"`` without Ray installed.
    """
    if engine not in ("serial", "ray"):
        raise ValueError(f"engine must be 'serial' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("--address is for the Ray engine: add --engine ray")
    if budget_s is not None and (isinstance(budget_s, bool) or not np.isfinite(budget_s) or budget_s <= 0):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    sizes = SIZES[sizes] if isinstance(sizes, str) and sizes in SIZES else sizes
    rows = paper_plan(sizes, only, out_dir)
    device = get_device(device)
    if engine == "ray":
        init_ray(address)
    deadline = None if budget_s is None else time.monotonic() + float(budget_s)
    runner = _Runner(sizes, device, engine, address, deadline, seed, progress)
    started = False
    for row in rows:
        row.refresh()
        if row.status == "done":
            continue
        if started and past(deadline):
            echo("budget reached: run again to continue")
            return False
        started = True
        echo(f"-> {row.step} {row.arch}: {row.units - row.done_units:,} of {row.units:,} {row.unit}s to go")
        try:
            runner(row)
        except DeadlineReached as stop:
            echo(f"   {stop}")
            echo("budget reached: run again to continue")
            return False
        echo(f"   wrote {row.out}")
    echo(f"complete: every artifact of the plan is in {rows[0].out.parent if rows else out_dir}")
    return True
