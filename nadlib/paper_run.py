"""The paper run: make every catalogue entry of a profile that is missing, in priority order, within a budget.

``python -m nadlib paper`` (argparse lives in :mod:`nadlib.cli`) plans the entries of :mod:`nadlib.catalogue`
that the chosen profile (``paper`` by default; ``default`` for a CPU; ``smoke`` for the tests) can make, in
priority order (the NADs first, since later entries read them; then trainability, the Fourier maps, the
pooling ablation, the CIFAR-10 poisoning and flips, the signatures, neural collapse), and makes those whose
file is missing from the output folder.  Each file gets its catalogue name (:func:`nadlib.catalogue.
canonical_name`, e.g. ``lenet__nads__secant__paper.npz``), so that :func:`nadlib.results.load` finds it when the
book is built with ``$NADLIB_RESULTS`` naming that folder (the default output folder is ``$NADLIB_RESULTS``
itself, else ``./nadlib-results``).

Before starting, the plan is printed with an estimated cost per entry (:func:`nadlib.catalogue.entry_cost`:
measured per-unit costs where marked, otherwise estimates).  A *budget* turns into a ``time.monotonic()``
deadline handed to every producer: it stops after its current unit (a batch of networks, a direction, a
training run), keeps its checkpoint ``<out>.ckpt.npz`` and the run ends with "budget reached"; the next call
skips finished files and resumes the checkpoints, so a run split over several calls writes the same files as
one uninterrupted run.  Every call makes progress: the deadline is checked only after the first unit.

The producers (:data:`PRODUCERS`) are the only wiring from a catalogue entry to the library: each calls one
library function (:func:`nadlib.estimate_nads`, :func:`nadlib.accuracy_grid`, :func:`nadlib.nad_trainability`,
:func:`nadlib.run_pooling_ablation`, :func:`nadlib.run_poison_sweep`, :func:`nadlib.run_flip`,
:func:`nadlib.run_signatures`, :func:`nadlib.run_collapse`) with the entry's arguments and writes the file with
its provenance (device name, precision, wall time, profile, catalogue key, command, versions).  With
``engine="ray"`` the NADs and the Fourier maps run as Ray tasks (:mod:`nadlib.distributed`); the rest runs
in this process.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .catalogue import (COSTS, DEVICE_TYPES, Entry, all_entries, canonical_name, entry, entry_cost, entry_units, select,
                        unit_cost)
from .cifar10 import CIFAR10NotFoundError, cifar_data
from .collapse import run_collapse
from .config import PROFILE_NAMES, Recipe, get_profile
from .control import RunControl, as_run
from .distributed import init_ray, ray_accuracy_grid, ray_estimate_nads
from .experiments import CIFARHyperParams, load_basis, nad_trainability, run_flip, run_poison_sweep
from .grid import accuracy_grid
from .nads import estimate_nads, load_nads
from .paper import published_nads
from .pooling import ABLATION, CONTROLS, run_pooling_ablation
from .results import (DeadlineReached, checkpoint_path, load_artifact, provenance, save_artifact, yours_dir)
from .signature_runs import run_signatures, signature_inputs
from .tables import markdown_table

__all__ = ["COSTS", "DEVICE_TYPES", "PRODUCERS", "PlanRow", "unit_cost", "parse_budget", "parse_only",
           "default_out_dir", "paper_plan", "format_plan", "run_paper"]

#: The default output folder when no results folder of yours is set (relative to the current folder).
DEFAULT_OUT_DIR = Path("nadlib-results")


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


def parse_only(text: str | None) -> tuple[str, ...] | None:
    """``"lenet/nads/secant,*/grid,flip"`` -> its items (keys, key patterns or steps); None -> None (all).
    Which entries they select depends on the profile (:func:`nadlib.catalogue.select`)."""
    if text is None:
        return None
    items = tuple(t.strip() for t in str(text).split(",") if t.strip())
    steps = {e.step for e in all_entries()}
    bad = [i for i in items if i not in steps and not any(fnmatch.fnmatchcase(e.key, i) for e in all_entries())]
    if not items or bad:
        raise ValueError(f"--only takes comma-separated catalogue keys (nadlib.catalogue.CATALOGUE), key patterns "
                         f"like 'lenet/*' or steps ({', '.join(sorted(steps))}); got {text!r}")
    return items


# --------------------------------------------------------------------------------------------------
# the plan


@dataclass
class PlanRow:
    """One row of the plan: a catalogue entry, the file it goes to and how much of it is done."""

    entry: Entry
    profile: str
    out: Path
    needs: dict = field(default_factory=dict)  # argument -> path of the artifact it reads (same profile)
    units: int = 0
    unit: str = "run"  # what one unit is: "network", "direction", "run"
    done_units: int = 0
    status: str = "todo"

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def step(self) -> str:
        return self.entry.step

    @property
    def arch(self) -> str:
        return self.entry.arch

    @property
    def kwargs(self) -> dict:
        return dict(self.entry.make[self.profile].kwargs)

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

    def cost(self, device_type: str) -> tuple[float, str]:
        """Estimated seconds left and the source of the per-unit cost."""
        return entry_cost(self.entry, self.profile, device_type, self.done_units)


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


def default_out_dir() -> Path:
    """Your results folder (:func:`nadlib.results.yours_dir`: ``nadlib.set_results_dir()``, else
    ``$NADLIB_RESULTS``), else ``./nadlib-results``."""
    return yours_dir() or DEFAULT_OUT_DIR


def _check_profile(profile: str) -> str:
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return profile


def paper_plan(profile: str = "paper", only=None, out_dir=None) -> list[PlanRow]:
    """The rows of a paper run of ``profile``, in priority order, with their status read from ``out_dir``.

    Raises:
        ValueError: unknown profile, an ``only`` that selects nothing, or a selected entry that reads another
            one which is neither in ``out_dir`` nor selected.
    """
    profile = _check_profile(profile)
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    rows = []
    for e in select(only, profile):
        make = e.make[profile]
        units, unit = entry_units(e, profile)
        needs = {arg: out / canonical_name(key, profile) for arg, key in make.needs.items()}
        rows.append(PlanRow(e, profile, out / canonical_name(e.key, profile), needs, units, unit))
    for row in rows:
        row.refresh()
    made = {r.out for r in rows}
    for row in rows:
        for arg, path in row.needs.items():
            need = row.entry.make[profile].needs[arg]
            if row.status != "done" and path not in made and not path.exists():
                raise ValueError(f"{row.step} for {row.arch} needs {need} ({str(path)!r}) to make {row.key}, "
                                 f"and it does not exist: include "
                                 f"'{need}' (or the step '{entry(need).step}') in --only, or make it first")
    return rows


def _human(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def format_plan(rows: list[PlanRow], profile: str = "paper", device_type: str = "cpu") -> str:
    """The plan as a Markdown table (key, step, arch, units, est. cost, status, file) with the total and the
    source of the costs."""
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"device_type must be one of {', '.join(DEVICE_TYPES)}, got {device_type!r}")
    table, total = [], 0.0
    for r in rows:
        sec, _ = r.cost(device_type)
        total += sec
        status = f"partial ({r.done_units:,}/{r.units:,})" if r.status == "partial" else r.status
        table.append([r.key, r.step, r.arch, f"{r.units:,} {r.unit}s", _human(sec), status, r.out.name])
    note = ("costs on CUDA measured on one H200 where marked measured in nadlib.catalogue.COSTS (secant NADs "
            "of the three deep CNNs, ResNet-18 on D(v)); the rest are estimates" if device_type == "cuda" else
            "costs measured on a 2-core CPU, one thread per process, where marked measured in "
            "nadlib.catalogue.COSTS; the rest are estimates")
    folder = rows[0].out.parent if rows else "-"
    head = (f"paper run, profile {profile}, device type {device_type}, into {folder}: {len(rows)} entries, "
            f"{sum(r.status == 'done' for r in rows)} done; estimated time left {_human(total)} ({note})")
    return head + "\n\n" + markdown_table(["key", "step", "arch", "units", "est. cost", "status", "artifact"], table)


# --------------------------------------------------------------------------------------------------
# producers: catalogue entry -> library call -> file with provenance


@dataclass
class _Context:
    """What every producer shares: how the runs run (seed, device, progress, the budget as a deadline), the
    engine, and the CIFAR-10 data."""

    run: RunControl
    engine: str
    data: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.run.torch_device()

    def control(self, row: PlanRow) -> RunControl:
        """The run control of one entry: the shared one with the entry's checkpoint."""
        return self.run.replace(checkpoint=row.ckpt)

    def meta(self, row: PlanRow, t0: float, **extra) -> dict:
        dev = self.device
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
        fields = dict(device_name=name, precision="float32", wall_time_s=round(time.perf_counter() - t0, 3),
                      profile=row.profile, catalogue_key=row.key, step=row.step, arch=row.arch,
                      engine=self.engine, seed=self.run.seed, resumed=row.status == "partial",
                      producer=row.entry.make[row.profile].producer, kwargs=row.kwargs)
        fields.update(extra)
        return provenance(device=dev, **fields)

    def cifar(self, profile: str, k: dict) -> dict:
        """CIFAR-10 (or the synthetic stand-in images, ``synthetic=True``) of the sizes in ``k``, cached."""
        spec = (profile, k["n_train"], k["n_test"], bool(k.get("synthetic")))
        if spec not in self.data:
            self.data[spec] = cifar_data(get_profile(profile), n_train=k["n_train"], n_test=k["n_test"],
                                         synthetic=True if k.get("synthetic") else None, seed=self.run.seed,
                                         device=self.device)
        return self.data[spec]


def _make_nads(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    if ctx.engine == "ray":
        res = ray_estimate_nads(k["arch"], k["n_networks"], method=k["method"], run=ctx.control(row))
    else:
        res = estimate_nads(k["arch"], k["n_networks"], method=k["method"], run=ctx.control(row))
    res.meta.update(ctx.meta(row, t0, networks=k["n_networks"]))
    res.save(row.out, k=k.get("keep"))


def _make_grid(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    where = {w: k[w] for w in ("stride", "band") if w in k}
    if "freqs" in k:
        where["freqs"] = [tuple(f) for f in k["freqs"]]
    recipe = {r: k[r] for r in ("n_train", "n_test", "epochs", "lr", "clip", "batch_size", "sigma", "epsilon")}
    if ctx.engine == "ray":
        res = ray_accuracy_grid(k["arch"], recipe=Recipe(**recipe), run=ctx.control(row), **where)
    else:
        res = accuracy_grid(k["arch"], workers=k.get("workers"), recipe=Recipe(**recipe), run=ctx.control(row),
                            **where)
    save_artifact(row.out, res.to_arrays(), ctx.meta(row, t0, size=res.size, wall_time=res.wall_time,
                                                     stride=k.get("stride", 1), band=k.get("band"), **recipe))


def _make_trainability(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    if k.get("nads") == "published":
        nads, source = published_nads(k["arch"]), "published (bundled first 64)"
    else:
        nads, source = load_nads(row.needs["nads"]), row.needs["nads"].name
    sizes = {s: k[s] for s in ("n_train", "n_test", "epochs")}
    arrays = nad_trainability(nads, k["indices"], arch=k["arch"], recipe=Recipe(**sizes), run=ctx.control(row))
    save_artifact(row.out, arrays, ctx.meta(row, t0, nads=source, nads_networks=nads.n_networks,
                                            nads_method=nads.method, **sizes))


def _make_pooling(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    known = {s.name: s for s in (*ABLATION, *CONTROLS)}
    settings = list(ABLATION) if k["settings"] is None else [known[n] for n in k["settings"]]
    arrays, record = run_pooling_ablation(settings, [tuple(f) for f in k["freqs"]], n_test=k["n_test"],
                                          scale=k["scale"], run=ctx.control(row))
    if not record["complete"]:
        done = int(np.isfinite(arrays["test_acc"]).sum())
        raise DeadlineReached("pooling ablation: runs", done, arrays["test_acc"].size, row.ckpt)
    save_artifact(row.out, arrays, ctx.meta(row, t0, **record))


def _make_poison(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    data = ctx.cifar(row.profile, k)
    arrays, settings = run_poison_sweep(k["arch"], load_basis(row.needs["nads"]), data, indices=list(k["indices"]),
                                        epochs=k["epochs"], profile=get_profile(row.profile), run=ctx.control(row))
    wall = float(np.sum(arrays["wall_time"]) + np.sum(arrays.get("clean_wall_time", 0.0)))  # training time
    save_artifact(row.out, arrays, ctx.meta(row, t0, settings=settings, data_source=data["source"], wall_time=wall,
                                            nads_file=row.needs["nads"].name))


def _make_flip(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    data = ctx.cifar(row.profile, k)
    arrays, settings = run_flip(k["arch"], load_basis(row.needs["nads"]), data, epochs=k["epochs"],
                                profile=get_profile(row.profile), until_train_acc=k.get("until_train_acc"),
                                max_epochs=k.get("max_epochs"), run=ctx.control(row))
    wall = float(np.sum(arrays["wall_time"]) + np.sum(arrays.get("clean_wall_time", 0.0)))  # training time
    save_artifact(row.out, arrays, ctx.meta(row, t0, settings=settings, data_source=data["source"], wall_time=wall,
                                            nads_file=row.needs["nads"].name))


def _make_signatures(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    profile = get_profile(row.profile)
    inputs, source = signature_inputs(profile, k["n_samples"], synthetic=bool(k.get("synthetic")))
    meta = ctx.meta(row, t0)
    for name in ("profile", "seed", "device", "device_name", "date", "command", "nadlib", "torch", "numpy",
                 "python", "machine", "torch_threads", "wall_time_s"):
        meta.pop(name, None)  # run_signatures records these itself
    run_signatures(k["archs"], inputs, profile=profile, n_samples=k["n_samples"], init_seeds=k.get("init_seeds"),
                   out=row.out, run=ctx.control(row), data_source=source, **meta)


def _make_collapse(ctx: _Context, row: PlanRow, k: dict, t0: float) -> None:
    data = ctx.cifar(row.profile, k)
    hp = CIFARHyperParams(**{r: k[r] for r in ("lr", "momentum", "weight_decay", "batch_size")})
    meta = ctx.meta(row, t0)
    for name in ("profile", "seed", "arch", "device", "date", "command", "nadlib", "torch", "numpy", "python",
                 "machine", "torch_threads", "wall_time_s"):
        meta.pop(name, None)  # run_collapse records these itself
    run_collapse(k["arch"], data, k["epochs"], hp=hp, out=row.out, run=ctx.run, profile=row.profile,
                 data_source=data["source"], **meta)


#: producer name (:data:`nadlib.catalogue.PRODUCERS`) -> function(context, row, kwargs, start time).
PRODUCERS: dict[str, Callable] = {"nads": _make_nads, "grid": _make_grid, "trainability": _make_trainability,
                                  "pooling": _make_pooling, "poison": _make_poison, "flip": _make_flip,
                                  "signatures": _make_signatures, "collapse": _make_collapse}


# --------------------------------------------------------------------------------------------------
# running


def run_paper(profile: str = "paper", *, only=None, out_dir=None, engine: str = "serial",
              address: str | None = None, budget_s: float | None = None,
              echo: Callable[[str], None] = print, run: RunControl | None = None) -> bool:
    """Make the entries of the plan that are missing (see the module docstring); returns True when every
    selected file exists, False when the budget ran out first (progress is saved; call again to continue) or
    an entry could not be made (e.g. CIFAR-10 not on this machine: the others are made, the reason shown).
    ``run`` (:class:`nadlib.RunControl`): the seed, device and progress bars of every entry (each entry has
    its own checkpoint next to its file; ``budget_s`` sets the deadline).

    Raises:
        ValueError: bad profile, selection, engine or budget (before any work).
        ImportError: ``engine="ray"`` without Ray installed.
    """
    if engine not in ("serial", "ray"):
        raise ValueError(f"engine must be 'serial' or 'ray', got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("--address is for the Ray engine: add --engine ray")
    if budget_s is not None and (isinstance(budget_s, bool) or not np.isfinite(budget_s) or budget_s <= 0):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    run = as_run(run)
    rows = paper_plan(profile, only, out_dir)
    deadline = None if budget_s is None else time.monotonic() + float(budget_s)
    ctx = _Context(run.replace(device=run.torch_device(), deadline=deadline), engine)
    if engine == "ray":
        init_ray(address)
    started, skipped = False, []
    for row in rows:
        row.refresh()
        if row.status == "done":
            continue
        if started and ctx.run.past_deadline():
            echo("budget reached: run again to continue")
            return False
        absent = [str(p) for p in row.needs.values() if not p.exists()]
        if absent:
            skipped.append(row.key)
            echo(f"-> {row.key}: skipped, it reads {', '.join(absent)}, which was not made")
            continue
        started = True
        echo(f"-> {row.key}: {row.units - row.done_units:,} of {row.units:,} {row.unit}s to go")
        make = row.entry.make[profile]
        try:
            PRODUCERS[make.producer](ctx, row, dict(make.kwargs), time.perf_counter())
        except DeadlineReached as stop:
            echo(f"   {stop}")
            echo("budget reached: run again to continue")
            return False
        except CIFAR10NotFoundError as err:
            skipped.append(row.key)
            echo(f"   skipped: {str(err).splitlines()[0]}")
            continue
        row.ckpt.unlink(missing_ok=True)
        echo(f"   wrote {row.out}")
    folder = Path(rows[0].out.parent if rows else out_dir or default_out_dir())
    if skipped:
        echo(f"not complete: {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} could not be made "
             f"({', '.join(skipped)}); the others are in {folder}")
        return False
    echo(f"complete: every artifact of the plan is in {folder}")
    yours = yours_dir()
    if yours is None or yours.resolve() != folder.resolve():
        echo(f"the book shows them when $NADLIB_RESULTS={folder.resolve()} is set (or "
             f"nadlib.set_results_dir({str(folder.resolve())!r}))")
    return True
