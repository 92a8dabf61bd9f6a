"""Which training setting gives the published curves?  A small sweep of the D(v) recipe.

The published LeNet accuracies (the Fourier map and the accuracy against NAD index) are compared with runs
of :func:`nadlib.direction_accuracy` at the paper's recipe and at variants of it: each *setting* changes
some of ``epsilon`` (margin), ``sigma`` (noise), ``n_train`` (training-set size), ``epochs`` and ``lr``
(maximum learning rate) and keeps the rest of the recipe (SGD without momentum, linear decay to 0, clipping
0.5, batches of 128).  Each setting trains one network per *probe*: a direction ``v`` (a published NAD or a
Fourier direction) with the published accuracy on D(v) as its target.

:func:`recipe_sweep` runs the grid of settings x probes on the resumable runner of
:mod:`nadlib.experiments` (optionally in worker processes, one thread each) and returns the arrays of an
artifact; :func:`sweep_table` turns them into the Markdown table of Chapter 2.
"""

from __future__ import annotations

import math
from multiprocessing import get_context
from typing import Iterable, Sequence

import numpy as np
import torch

from ._checks import positive_float, positive_int
from .config import PAPER_RECIPE as _RECIPE
from .control import RunControl, as_run
from .data import as_direction
from .directions import fourier_direction, mirror
from .experiments import ResumableRuns, _digest
from .paper import paper_fourier_accuracy, published_trainability
from .tables import MarkdownTable, markdown_table
from .training import direction_accuracy

__all__ = ["PAPER_RECIPE", "DEFAULT_SETTINGS", "parse_settings", "sweep_probes", "recipe_sweep", "sweep_table",
           "sweep_summary", "RECIPE_DIFFERENCES", "recipe_differences_table"]

#: The recipe of the authors' linearly separable experiments (and of :func:`nadlib.direction_accuracy`).
PAPER_RECIPE = {"epsilon": _RECIPE.epsilon, "sigma": _RECIPE.sigma, "n_train": _RECIPE.n_train,
                "epochs": _RECIPE.epochs, "lr": _RECIPE.lr}

_INT_KEYS = ("n_train", "epochs")
_MAX = {"epsilon": 1e3, "sigma": 1e3, "lr": 10.0, "n_train": 1_000_000, "epochs": 1_000}

#: The settings of the committed sweep, as overrides of :data:`PAPER_RECIPE` ("base" = no override).
DEFAULT_SETTINGS = "base;epsilon=3;n_train=20000;epsilon=2;lr=0.1"


def _setting(overrides: dict) -> dict:
    out = dict(PAPER_RECIPE)
    for key, value in overrides.items():
        if key not in PAPER_RECIPE:
            raise ValueError(f"unknown recipe parameter {key!r}; choose from {', '.join(PAPER_RECIPE)}")
        if key in _INT_KEYS:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
            out[key] = positive_int(int(float(value)), key, maximum=_MAX[key])
        else:
            out[key] = positive_float(float(value), key, maximum=_MAX[key])
    return out


def parse_settings(spec: str | Sequence[dict]) -> list[dict]:
    """Settings from a string like ``"base;epsilon=2;n_train=20000,epochs=40"`` (``;`` between settings,
    ``,`` between the overrides of one setting; ``base`` is the paper's recipe) or from a list of override
    dicts.  Returns complete settings (every key of :data:`PAPER_RECIPE`); duplicates are refused."""
    if isinstance(spec, str):
        items = [part.strip() for part in spec.split(";") if part.strip()]
        overrides = []
        for item in items:
            if item == "base":
                overrides.append({})
                continue
            pairs = {}
            for pair in item.split(","):
                key, sep, value = pair.partition("=")
                if not sep or not key.strip() or not value.strip():
                    raise ValueError(f"a setting is 'base' or 'key=value[,key=value]', got {item!r}")
                try:
                    pairs[key.strip()] = float(value)
                except ValueError:
                    raise ValueError(f"{key.strip()} must be a number, got {value.strip()!r}") from None
            overrides.append(pairs)
    else:
        overrides = [dict(o) for o in spec]
    if not overrides:
        raise ValueError("no settings to run")
    settings = [_setting(o) for o in overrides]
    seen = set()
    for s in settings:
        key = tuple(s[k] for k in PAPER_RECIPE)
        if key in seen:
            raise ValueError(f"setting {setting_label(s)!r} appears twice")
        seen.add(key)
    return settings


def setting_label(s: dict) -> str:
    """Short label of a setting: the parameters that differ from the paper's recipe (or ``paper recipe``)."""
    diff = [f"{k}={s[k]:g}" for k in PAPER_RECIPE if s[k] != PAPER_RECIPE[k]]
    return ", ".join(diff) if diff else "paper recipe"


def sweep_probes(nads, nad_indices: Iterable[int] = (0, 100, 400), freqs: Iterable[tuple[int, int]] = ((2, 0),),
                 arch: str = "lenet") -> dict:
    """The probes of a sweep: ``{"names", "directions" (k x 1 x 32 x 32), "published" (targets in [0, 1])}``.

    ``nads`` holds NADs as rows (a :class:`nadlib.NADs`, tensor or array, ``k x 1024`` or ``k x 1 x 32 x 32``)
    whose index ``i`` is the published NAD index (the authors' basis); the targets are the published accuracy
    of ``arch`` on D(u_i) and, for each Fourier frequency, on D(v) (NaN where nothing was published).
    """
    d = torch.as_tensor(getattr(nads, "directions", nads)).float()
    if d.dim() == 2:
        d = d.reshape(len(d), 1, 32, 32) if d.shape[1] == 1024 else d
    if d.dim() != 4:
        raise ValueError(f"nads must hold one 32 x 32 direction per row, got shape {tuple(d.shape)}")
    nad_indices = [int(i) for i in nad_indices]
    bad = [i for i in nad_indices if not 0 <= i < len(d)]
    if bad:
        raise ValueError(f"NAD index {bad[0]} out of range: these NADs have indices 0..{len(d) - 1}")
    freqs = [tuple(int(k) for k in f) for f in freqs]
    for f in freqs:
        if len(f) != 2:
            raise ValueError(f"a frequency is a pair (kx, ky), got {f!r}")
        fourier_direction(*f)  # validates the range
    if not nad_indices and not freqs:
        raise ValueError("no probes: give NAD indices or frequencies")
    pub_nad = dict(zip(*(published_trainability(arch)[k].tolist() for k in ("indices", "test_acc"))))
    pub_map = paper_fourier_accuracy(arch)
    names, dirs, targets = [], [], []
    for i in nad_indices:
        names.append(f"NAD {i}")
        dirs.append(as_direction(d[i]))
        targets.append(pub_nad.get(i, float("nan")))
    for f in freqs:
        names.append(f"Fourier {f}")
        dirs.append(fourier_direction(*f).unsqueeze(0))
        targets.append(pub_map.get(f, pub_map.get(mirror(*f), float("nan"))))
    return {"names": np.array(names), "directions": torch.stack(dirs).numpy(), "published": np.array(targets)}


def _run_one(job: tuple) -> float:
    v, s, n_test, seed, device, arch = job
    torch.set_num_threads(1)
    recipe = _RECIPE.replace(n_train=s["n_train"], n_test=n_test, epochs=s["epochs"], sigma=s["sigma"],
                             epsilon=s["epsilon"], lr=s["lr"])
    return float(direction_accuracy(arch, torch.from_numpy(v), recipe=recipe,
                                    run=RunControl(seed=seed, device=device, progress=False)))


def recipe_sweep(probes: dict, settings, *, arch: str = "lenet", n_test: int = 10_000, workers: int = 1,
                 run: RunControl | None = None) -> dict:
    """Test accuracy of ``arch`` on D(v) for every probe (see :func:`sweep_probes`) under every setting.

    ``settings``: anything :func:`parse_settings` takes.  Every run uses the same ``run.seed`` (data,
    initialisation, batch order), so settings differ only in the recipe; ``run.checkpoint`` and
    ``run.deadline`` as in :class:`nadlib.experiments.ResumableRuns`.  ``workers > 1`` trains in that many
    spawned processes with one torch thread each (results are recorded in order, so a checkpoint stays
    valid).  Returns the arrays of the artifact: ``accuracy`` (settings x probes), the settings' columns
    ``epsilon, sigma, n_train, epochs, lr``, ``labels``, the probes' ``names``, ``directions`` and
    ``published``, ``distance`` (mean absolute difference to the published values, per setting), and
    ``directions_sha256``.
    """
    settings = parse_settings(settings)
    names = [str(n) for n in np.asarray(probes["names"])]
    dirs = np.asarray(probes["directions"], dtype=np.float32)
    published = np.asarray(probes["published"], dtype=float)
    if not (len(names) == len(dirs) == len(published)) or not names:
        raise ValueError("probes must have as many names, directions and published values (at least one)")
    positive_int(n_test, "n_test")
    run = as_run(run)
    seed = run.seed
    positive_int(workers, "workers", maximum=256)
    device = str(run.torch_device())
    sha = _digest(dirs)
    keys = [f"s{j}-p{k}" for j in range(len(settings)) for k in range(len(names))]
    jobs = {f"s{j}-p{k}": (dirs[k], s, n_test, seed, device, arch)
            for j, s in enumerate(settings) for k in range(len(names))}
    runs = ResumableRuns(run.checkpoint, {"arch": arch, "settings": [list(s.values()) for s in settings],
                                      "probes": names, "n_test": n_test, "seed": seed,
                                      "directions_sha256": sha})
    todo = [k for k in keys if k not in runs.done]
    pool = None
    if workers > 1 and len(todo) > 1:
        pool = get_context("spawn").Pool(min(workers, len(todo)))
        results = pool.imap(_run_one, [jobs[k] for k in todo])  # in order: computed ahead, consumed in turn
        pending = iter(todo)

        def work(key: str) -> dict:
            assert next(pending) == key
            return {"test_acc": next(results)}
    else:
        def work(key: str) -> dict:
            return {"test_acc": _run_one(jobs[key])}
    try:
        done = runs.run(keys, work, desc=f"{arch} recipe sweep", progress=run.shows_progress(True),
                        deadline=run.deadline,
                        label=lambda k: f"{setting_label(settings[int(k[1:].split('-')[0])])} | "
                                        f"{names[int(k.split('-p')[1])]}")
        if pool is not None:
            pool.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    acc = np.array([[float(done[f"s{j}-p{k}"]["test_acc"]) for k in range(len(names))]
                    for j in range(len(settings))])
    known = ~np.isnan(published)
    distance = np.abs(acc[:, known] - published[known]).mean(1) if known.any() else np.full(len(settings), np.nan)
    out = {"accuracy": acc, "labels": np.array([setting_label(s) for s in settings]), "names": np.array(names),
           "directions": dirs, "published": published, "distance": distance, "directions_sha256": sha}
    for key in PAPER_RECIPE:
        out[key] = np.array([s[key] for s in settings])
    return out


def sweep_summary(arrays: dict) -> dict:
    """The setting closest to the published values: ``{"label", "distance", "index"}``, and the paper
    recipe's distance (``base_distance``, NaN when the paper recipe was not run)."""
    dist = np.asarray(arrays["distance"], dtype=float)
    j = int(np.nanargmin(dist))
    labels = [str(x) for x in np.asarray(arrays["labels"])]
    base = labels.index("paper recipe") if "paper recipe" in labels else None
    return {"index": j, "label": labels[j], "distance": float(dist[j]),
            "base_distance": float(dist[base]) if base is not None else math.nan}


def sweep_table(arrays: dict, *, digits: int = 2) -> MarkdownTable:
    """Markdown table of a sweep: one row per setting (accuracy per probe, mean absolute difference to
    the published values), and a last row with the published values."""
    names = [str(n) for n in np.asarray(arrays["names"])]
    acc = np.asarray(arrays["accuracy"], dtype=float)
    rows = [[str(label), int(n), int(e), *acc[j], float(arrays["distance"][j])]
            for j, (label, n, e) in enumerate(zip(np.asarray(arrays["labels"]), np.asarray(arrays["n_train"]),
                                                  np.asarray(arrays["epochs"])))]
    rows.append(["published (authors)", None, None, *np.asarray(arrays["published"], dtype=float), None])
    return markdown_table(["setting", "n_train", "epochs", *names, "mean abs. diff."], rows, digits=digits)


#: The D(v) experiment of the authors' released code (``directional_bias.py``, ``utils.train``, ``models.LeNet``
#: of LTS4/neural-anisotropy-directions) beside this library, one aspect per row:
#: ``(aspect, authors' code, nadlib, difference and its effect)``.  Facts read from their code, in our words.
RECIPE_DIFFERENCES = (
    ("noise", "sigma * N(0, 1) in all 1024 pixels (float64), then the component along v subtracted once",
     "the same in float32, subtracted twice (removes rounding residue)", "none (same distribution)"),
    ("signal, margin", "+epsilon/2 v for class 0, -epsilon/2 v for class 1; sigma = 3, epsilon = 1",
     "+epsilon/2 v for class 1, -epsilon/2 v for class 0; sigma = 3, epsilon = 1", "label names swapped: none"),
    ("sample sizes", "10,000 training samples (half per class); the test set is drawn with num_train "
     "(the num_test argument is ignored): 10,000", "10,000 and 10,000 (balanced)", "none at the paper's sizes"),
    ("test set", "a fresh draw of D(v) (new noise, same v)", "a fresh draw (seed + 1,000,003)", "none"),
    ("shuffling, batches", "DataLoader, shuffle=True every epoch, batch 128, last partial batch kept",
     "a new permutation every epoch, batch 128, last partial batch kept", "none"),
    ("optimiser", "SGD, max_lr 0.5, momentum 0, weight decay 0", "the same", "none"),
    ("learning-rate schedule", "per batch, set before the step: max_lr (1 - t/T) for t = 1..T (first step "
     "max_lr (1 - 1/T), last step 0)", "per batch: lr (1 - t/T) for t = 0..T-1 (first step lr, last lr/T)",
     "shifted by one step of lr/T = 0.0003 (T = 1,580): negligible, not measured"),
    ("clipping, loss", "clip_grad_norm_ 0.5 before every step; cross-entropy", "the same", "none"),
    ("LeNet", "conv 1-6 5x5, ReLU, max-pool 2; conv 6-16 5x5, ReLU, max-pool 2; linear 400-120-84-2; "
     "PyTorch default initialisation; input through an identity normalisation (mean 0, std 1)",
     "the same layers and initialisation", "none"),
    ("evaluation", "model.eval(), no_grad, after every epoch; printed, no best-epoch selection in the code",
     "model.eval(), inference mode, after the last epoch", "none for LeNet (no batch norm, no dropout)"),
    ("Fourier direction", "irfft of a one-sided spectrum with one imaginary unit: a sine wave, normalised",
     "the same sine; the cosine on the 4 self-conjugate frequencies (where the sine vanishes)",
     "only (0, 0), (16, 0), (0, 16), (16, 16)"),
    ("published Fourier grid", "cell (x, y) of the 16 x 16 figure is frequency (2(y - 8), 2(x - 8)): the whole "
     "spectrum with step 2 (their direction images)", "read as (8 - x, y - 8): the central block with step 1 "
     "(bug, fixed)", "the book compared our directions with other published ones; the agreement after the "
     "fix is computed in the chapter"),
)


def recipe_differences_table() -> MarkdownTable:
    """:data:`RECIPE_DIFFERENCES` as a Markdown table."""
    return markdown_table(["aspect", "authors' code", "nadlib", "difference, effect"], RECIPE_DIFFERENCES)
