"""The book's experiments on one resumable runner: trainability against NAD index (Chapter 2), and on
CIFAR-10 the NAD-poisoning sweep and the flip (Chapter 3).

Each experiment is a list of keyed *runs* (a NAD index, a data variant) executed by
:class:`ResumableRuns`: finished runs are stored in an optional checkpoint and skipped when the same call
is repeated, so an interrupted sweep (Ctrl-C, or SIGTERM from a cluster) resumes where it stopped.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import integer, positive_float, positive_int, read_npz, unit_interval
from .bases import as_nad_basis, change_basis, flip_basis, fourier_low_to_high, poison_assignment, poison_with_nads
from .config import PAPER_RECIPE, Recipe, get_profile
from .control import RunControl, as_run
from .grid import default_stack, stacked_direction_accuracies
from .models import describe_model, model_name, seeded_model
from .nads import NADs, load_nads
from .results import Checkpoint, DeadlineReached, array_sha256, check_deadline, interruptible, past
from .training import direction_accuracy, evaluate, train

__all__ = ["ResumableRuns", "nad_trainability", "CIFARHyperParams", "cifar_hyperparams", "run_poison_sweep",
           "run_flip", "load_basis"]


class ResumableRuns:
    """Run keyed pieces of work one after another, storing each result as soon as it is finished.

    ``results = ResumableRuns(checkpoint, settings).run(keys, work, desc=...)`` calls ``work(key)`` for
    every key not already in the checkpoint; ``work`` returns ``{name: array-like}``.  The checkpoint
    (optional ``.npz`` path, see :class:`nadlib.results.Checkpoint`) must have been written with the same
    ``settings``; it is saved after every run and SIGTERM is handled like Ctrl-C.  Returns
    ``{key: {name: np.ndarray}}`` in the order of ``keys``.  With ``deadline`` (a ``time.monotonic()``
    value) the runs stop after the one that finishes past it, raising :class:`nadlib.results.DeadlineReached`.
    """

    SEP = "__"

    def __init__(self, checkpoint, settings: dict):
        self.store = Checkpoint(checkpoint, settings) if checkpoint is not None else None
        self.done: dict[str, dict[str, np.ndarray]] = {}
        for name, value in (self.store.arrays if self.store else {}).items():
            key, _, field = name.partition(self.SEP)
            self.done.setdefault(key, {})[field] = value

    @property
    def resumed(self) -> bool:
        return bool(self.done)

    def run(self, keys: Iterable[str], work: Callable[[str], dict], *, desc: str = "runs",
            progress: bool = True, label: Callable[[str], str] | None = None,
            deadline: float | None = None) -> dict[str, dict[str, np.ndarray]]:
        keys = list(keys)
        deadline = check_deadline(deadline)
        joined = [k for k in keys if self.SEP in k]
        if joined:
            raise ValueError(f"run keys must not contain {self.SEP!r} (it separates a key from a field in the "
                             f"checkpoint), got {joined}")
        unknown = set(self.done) - set(keys)
        if unknown:
            raise ValueError(f"the checkpoint holds runs {sorted(unknown)} that this call does not ask for; "
                             "use the same settings as the interrupted run, or delete the checkpoint")
        bar = tqdm(keys, desc=desc, unit="run", disable=not progress)
        with interruptible():
            for key in bar:
                if key in self.done:
                    continue
                bar.set_postfix(run=label(key) if label else key)
                record = {name: np.asarray(v) for name, v in work(key).items()}
                self.done[key] = record
                if self.store is not None:
                    self.store.save(**{f"{key}{self.SEP}{name}": v for name, v in record.items()})
                left = [k for k in keys if k not in self.done]
                if left and past(deadline):
                    bar.close()
                    raise DeadlineReached(f"{desc}: runs", len(keys) - len(left), len(keys),
                                          None if self.store is None else self.store.path)
        bar.close()
        return {k: self.done[k] for k in keys}


def _digest(a) -> str:
    return array_sha256(np.asarray(torch.as_tensor(a).detach().cpu().float()))


# --------------------------------------------------------------------------------------------------
# Chapter 2: trainability against NAD index
# --------------------------------------------------------------------------------------------------

def nad_trainability(nads, indices, arch: str = "lenet", *, recipe: Recipe = PAPER_RECIPE,
                     stack: int | None = None, run: RunControl | None = None) -> dict:
    """Test accuracy of ``arch`` trained on D(u_i) (:func:`nadlib.direction_accuracy`) for each NAD index.

    ``recipe`` defaults to the paper's (10,000 training and test samples, 20 epochs).  Returns
    ``{"indices": int array, "test_acc": float array, "nads_sha256": str}``.  ``run``
    (:class:`nadlib.RunControl`): with ``run.checkpoint`` (an ``.npz`` path) finished indices are stored and
    skipped when the same call is repeated; ``run.deadline``: see :class:`ResumableRuns`; a bar over indices
    (default on).  ``stack``: how many indices to train at once in one model stack
    (:func:`nadlib.grid.stacked_direction_accuracies`, batch norm included; the same accuracies up to
    floating-point rounding); default :func:`nadlib.grid.default_stack` (16 on CUDA, 1 on the CPU).  A
    model that cannot be stacked (``vmap`` fails) is trained one index at a time, with a warning.
    """
    run = as_run(run)
    run.require_fp32("training")
    d = getattr(nads, "directions", nads)
    d = torch.as_tensor(d)
    if d.dim() < 2:
        raise ValueError(f"nads must hold one direction per row, got shape {tuple(d.shape)}")
    indices = [integer(i, "NAD index", minimum=0, maximum=len(d) - 1) for i in indices]
    if not indices:
        raise ValueError("indices is empty")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    sha = _digest(d)
    settings = {"arch": describe_model(arch, tuple(d.shape[1:])), "indices": indices, "n_train": recipe.n_train,
                "n_test": recipe.n_test, "epochs": recipe.epochs, "seed": run.seed, "nads_sha256": sha}
    if recipe.replace(n_train=PAPER_RECIPE.n_train, n_test=PAPER_RECIPE.n_test,
                      epochs=PAPER_RECIPE.epochs) != PAPER_RECIPE:
        settings["recipe"] = asdict(recipe)  # (the paper's training is implied when absent)
    stack = default_stack(run.torch_device()) if stack is None else positive_int(stack, "stack", maximum=4096)
    inner = run.replace(progress=False, checkpoint=None, deadline=None)
    runs = ResumableRuns(run.checkpoint, settings)
    keys = [f"nad_{i}" for i in indices]
    pending: dict[str, float] = {}  # accuracies of a stacked group not yet handed to the runner

    def work(key: str) -> dict:
        nonlocal stack
        if key not in pending and stack > 1:
            group = [k for k in keys if k not in runs.done and k not in pending][:stack]
            try:
                accs = stacked_direction_accuracies(arch, [d[int(k.removeprefix("nad_"))] for k in group],
                                                    recipe=recipe, run=inner)
                pending.update(zip(group, accs))
            except (RuntimeError, NotImplementedError) as err:  # a model vmap cannot batch: one at a time
                warnings.warn(f"training a model stack failed ({type(err).__name__}: {err}); training one "
                              "direction at a time", RuntimeWarning)
                stack = 1
        if key in pending:
            return {"test_acc": pending.pop(key)}
        i = int(key.removeprefix("nad_"))
        return {"test_acc": direction_accuracy(arch, d[i], recipe=recipe, run=inner)}

    done = runs.run(keys, work,
                                                       desc=f"train {arch} on D(u_i)",
                                                       progress=run.shows_progress(True), deadline=run.deadline)
    return {"indices": np.array(indices), "test_acc": np.array([float(r["test_acc"]) for r in done.values()]),
            "nads_sha256": sha}


# --------------------------------------------------------------------------------------------------
# Chapter 3: CIFAR-10 recipe, poisoning sweep and flip
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CIFARHyperParams:
    """The CIFAR-10 training recipe of this book (one recipe for every architecture and data variant).

    SGD with (heavy-ball) momentum 0.9, learning rate 0.02 decayed linearly to 0 over all steps, weight
    decay 5e-4, mini-batches of 128, no gradient clipping, no data augmentation; images are normalised
    per colour channel with the mean and standard deviation of the training set the network is trained
    on (clean, poisoned or flipped), and the test images with the same affine map.  A conventional
    recipe, chosen so that a LeNet learns CIFAR-10 in a few epochs on a CPU; the paper's exact CIFAR
    recipe may differ.
    """

    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    clip: float | None = None

    def train_kwargs(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "clip": self.clip}

    def recipe(self, epochs: int) -> Recipe:
        """This training as a :class:`nadlib.Recipe` of ``epochs`` epochs (what :func:`nadlib.train` takes)."""
        return Recipe(epochs=epochs, **self.train_kwargs())


def cifar_hyperparams(profile=None) -> CIFARHyperParams:
    """The recipe for a profile (only the batch size comes from the profile)."""
    cfg = (profile or get_profile()).cifar
    return CIFARHyperParams(batch_size=cfg.batch_size)


class Normaliser:
    """Per-channel standardisation with the statistics of one training set, applied to any images."""

    def __init__(self, x: torch.Tensor):
        self.mean = x.mean(dim=(0, 2, 3), keepdim=True)
        self.std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def _train_cifar(arch: str, x_tr, y_tr, x_te, y_te, *, epochs: int, hp: CIFARHyperParams, run: RunControl):
    model = seeded_model(arch, run.seed, in_channels=3, num_classes=10)
    return train(model, x_tr, y_tr, x_te, y_te, recipe=hp.recipe(epochs), run=run)


def _cifar_settings(arch, data, epochs, seed, hp, **extra) -> dict:
    return {"arch": describe_model(arch, (3, 32, 32)), "n_train": data["n_train"], "n_test": data["n_test"],
            "source": data["source"], "epochs": epochs, "seed": seed, **asdict(hp), **extra}


def run_poison_sweep(arch: str, nads, data: dict, *, indices=None, epsilon: float | None = None,
                     epochs: int | None = None, hp: CIFARHyperParams | None = None, baseline: bool = True,
                     profile=None, run: RunControl | None = None) -> tuple[dict, dict]:
    """Train ``arch`` on training data poisoned at each NAD index; test on the clean test set.

    For each index ``i`` the training images get the class carriers of :func:`nadlib.poison_with_nads` at
    NAD ``i`` (strength ``epsilon``); the same initialisation, batch order and recipe are used for every
    index (a common-random-numbers design).  With ``baseline=True`` the unpoisoned run is added.

    Measured per run (accuracies in [0, 1]):

    * ``train_acc``: on the poisoned training set (eval mode, after training);
    * ``test_acc``: on the *clean* test set -- what the network learned about the images;
    * ``poisoned_test_acc``: on the test set poisoned like the training set (carrier agrees with the label);
    * ``carrier_acc``: on test images carrying the carrier of *another* class (``(y + 1) mod 10``), the
      fraction classified as that carrier's class -- how much the network follows the carrier;
    * ``test_curve``: clean test accuracy after every epoch.

    Args:
        arch: a name of :data:`nadlib.ARCHITECTURES` (built with 3 input channels and 10 outputs), or a
            zero-argument constructor of your model taking 3 x 32 x 32 images to 10 outputs; checkpoints and
            provenance name it by :func:`nadlib.describe_model` (a fingerprint, never a memory address).
        nads: the NAD basis (:func:`nadlib.as_nad_basis`), indices refer to its rows.
        data: from :func:`nadlib.cifar_data`.
        indices: NAD indices (default: ``profile.cifar.poison_indices``).
        epsilon: carrier size (default: ``profile.cifar.epsilon``).
        run: :class:`nadlib.RunControl`: the seed of every run; ``run.checkpoint`` (``.npz``) stores finished
            runs, skipped when resumed; ``run.deadline``: stop after the run that finishes past it
            (:class:`nadlib.results.DeadlineReached`); bars over runs and epochs (default on).

    Returns:
        ``(arrays, settings)`` ready for :func:`nadlib.save_artifact`.
    """
    run = as_run(run)
    cfg = (profile or get_profile()).cifar
    indices = [int(i) for i in (cfg.poison_indices if indices is None else indices)]
    epochs = positive_int(cfg.epochs if epochs is None else epochs, "epochs")
    epsilon = positive_float(cfg.epsilon if epsilon is None else epsilon, "epsilon", maximum=1e6)
    hp = hp or cifar_hyperparams(profile)
    device = run.torch_device()
    u = as_nad_basis(nads)
    for i in indices:
        poison_assignment(i, len(u))  # validates every index before any training
    keys = (["clean"] if baseline else []) + [f"nad_{i}" for i in indices]
    settings = _cifar_settings(arch, data, epochs, run.seed, hp, epsilon=epsilon, indices=indices,
                               baseline=baseline, nads_sha256=_digest(u))
    x_tr, y_tr = data["x_train"].to(device), data["y_train"].to(device)
    x_te, y_te = data["x_test"].to(device), data["y_test"].to(device)
    y_other = (y_te + 1) % 10

    def work(key: str) -> dict:
        start = time.perf_counter()
        if key == "clean":
            x_p, x_tp, x_tc = x_tr, x_te, x_te
        else:
            i = int(key.removeprefix("nad_"))
            x_p, _ = poison_with_nads(x_tr, y_tr, u, i, epsilon)
            x_tp, _ = poison_with_nads(x_te, y_te, u, i, epsilon)
            x_tc, _ = poison_with_nads(x_te, y_other, u, i, epsilon)
        norm = Normaliser(x_p)  # statistics of the training set actually used, applied to every test set
        result = _train_cifar(arch, norm(x_p), y_tr, norm(x_te), y_te, epochs=epochs, hp=hp, run=inner)
        model = result.model
        return {"train_acc": evaluate(model, norm(x_p), y_tr), "test_acc": result.final_test_acc,
                "poisoned_test_acc": evaluate(model, norm(x_tp), y_te),
                "carrier_acc": evaluate(model, norm(x_tc), y_other) if key != "clean" else float("nan"),
                "test_curve": np.array(result.test_acc), "wall_time": time.perf_counter() - start}

    inner = run.replace(device=device, checkpoint=None, deadline=None)
    done = ResumableRuns(run.checkpoint, settings).run(keys, work, desc=f"{model_name(arch)} poisoning",
                                                       progress=run.shows_progress(True), deadline=run.deadline)
    runs = [done[f"nad_{i}"] for i in indices]
    arrays = {"indices": np.array(indices, dtype=np.int64)}
    for name in ("train_acc", "test_acc", "poisoned_test_acc", "carrier_acc", "wall_time"):
        arrays[name] = np.array([float(r[name]) for r in runs])
    arrays["test_curve"] = np.stack([r["test_curve"] for r in runs]) if runs else np.zeros((0, epochs))
    if baseline:
        for name in ("train_acc", "test_acc", "wall_time"):
            arrays[f"clean_{name}"] = np.array(float(done["clean"][name]))
        arrays["clean_test_curve"] = done["clean"]["test_curve"]
    # the class table for index 0: columns class, NAD offset (0: NAD i, 1: NAD i+1 -- i-1 at the end of
    # the basis), channel, sign; see poison_assignment
    arrays["assignment"] = np.array([[r["class"], r["nad"], r["channel"], r["sign"]]
                                     for r in poison_assignment(0, len(u))], dtype=np.int64)
    return arrays, settings


def run_flip(arch: str, U, data: dict, *, epochs: int | None = None, hp: CIFARHyperParams | None = None,
             profile=None, until_train_acc: float | None = None, max_epochs: int | None = None,
             run: RunControl | None = None) -> tuple[dict, dict]:
    """Train ``arch`` on CIFAR-10 and on its NAD-flipped version (:func:`nadlib.change_basis`), same recipe
    and seed.

    Returns ``(arrays, settings)`` with ``variants = ["original", "flipped"]`` and, per variant,
    ``train_acc`` (eval mode, after training), ``test_acc`` and ``test_curve`` (per epoch), ``epochs``
    and ``wall_time``.  The flipped test set is the flip of the clean test set (same ``U``).  ``arch``: a name
    or a constructor of your model, as in :func:`run_poison_sweep`.
    ``run`` (seed, device, checkpoint, deadline, progress): as in :func:`run_poison_sweep`.

    With ``until_train_acc`` (e.g. 0.99) each variant is trained to that training accuracy, so that test
    accuracies are compared between networks that fit their training sets equally well: a run of
    ``epochs`` epochs that ends below the target is repeated from the same initialisation with twice the
    epochs (the whole recipe, learning-rate decay included, stretched over the longer run), up to
    ``max_epochs`` (default ``8 * epochs``).  ``epochs`` in the result is the length of the kept run, and
    ``train_acc`` says whether the target was reached.
    """
    run = as_run(run)
    cfg = (profile or get_profile()).cifar
    epochs = positive_int(cfg.epochs if epochs is None else epochs, "epochs")
    if until_train_acc is not None:
        until_train_acc = unit_interval(until_train_acc, "until_train_acc")
        max_epochs = positive_int(8 * epochs if max_epochs is None else max_epochs, "max_epochs")
        if max_epochs < epochs:
            raise ValueError(f"max_epochs ({max_epochs}) is smaller than epochs ({epochs})")
    elif max_epochs is not None:
        raise ValueError("max_epochs needs until_train_acc")
    hp = hp or cifar_hyperparams(profile)
    device = run.torch_device()
    inner = run.replace(device=device, checkpoint=None, deadline=None)
    u = flip_basis(U)
    settings = _cifar_settings(arch, data, epochs, run.seed, hp, basis_sha256=_digest(u))
    if until_train_acc is not None:
        settings.update(until_train_acc=until_train_acc, max_epochs=max_epochs)
    x_tr, y_tr = data["x_train"].to(device), data["y_train"].to(device)
    x_te, y_te = data["x_test"].to(device), data["y_test"].to(device)
    variants = ("original", "flipped")

    def work(name: str) -> dict:
        start = time.perf_counter()
        a, b = (x_tr, x_te) if name == "original" else (change_basis(x_tr, u), change_basis(x_te, u))
        norm = Normaliser(a)
        n_epochs = epochs
        while True:
            result = _train_cifar(arch, norm(a), y_tr, norm(b), y_te, epochs=n_epochs, hp=hp, run=inner)
            train_acc = evaluate(result.model, norm(a), y_tr)
            if until_train_acc is None or train_acc >= until_train_acc or 2 * n_epochs > max_epochs:
                break
            n_epochs *= 2
        return {"train_acc": train_acc, "test_acc": result.final_test_acc, "epochs": n_epochs,
                "test_curve": np.array(result.test_acc), "wall_time": time.perf_counter() - start}

    done = ResumableRuns(run.checkpoint, settings).run(variants, work, desc=f"{model_name(arch)} flip",
                                                       progress=run.shows_progress(True), deadline=run.deadline)
    arrays = {"variants": np.array(variants)}
    for name in ("train_acc", "test_acc", "wall_time"):
        arrays[name] = np.array([float(done[v][name]) for v in variants])
    arrays["epochs"] = np.array([int(done[v]["epochs"]) for v in variants])
    curves = [done[v]["test_curve"] for v in variants]
    if len({len(c) for c in curves}) > 1:  # runs of different lengths: pad the shorter with NaN
        longest = max(len(c) for c in curves)
        curves = [np.pad(np.asarray(c, float), (0, longest - len(c)), constant_values=np.nan) for c in curves]
    arrays["test_curve"] = np.stack(curves)
    return arrays, settings


def load_basis(spec) -> torch.Tensor:
    """A basis for the CIFAR-10 experiments from a file or a name, as a ``k x 1024`` matrix.

    ``spec`` is a path to NADs written by :meth:`nadlib.NADs.save` / an artifact with an array ``nads``
    (or ``directions``/``basis``), or ``"fourier"``: the real Fourier basis sorted from low to high
    frequency (a NAD-like basis for an isotropic, low-frequency-first model), or a tensor, array or
    :class:`nadlib.NADs` (returned validated).
    """
    if isinstance(spec, (torch.Tensor, np.ndarray, NADs)):
        return as_nad_basis(spec)
    if str(spec) == "fourier":
        return fourier_low_to_high()
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no NAD file at {str(path)!r} (write one with `python -m nadlib nads ...`, "
                                "or pass 'fourier')")
    try:
        return as_nad_basis(load_nads(path))
    except (KeyError, ValueError, TypeError):
        pass
    data = read_npz(path)
    for key in ("nads", "directions", "basis"):
        if key in data:
            return as_nad_basis(data[key])
    raise ValueError(f"{str(path)!r} has no array 'nads', 'directions' or 'basis' (found {sorted(data)})")
