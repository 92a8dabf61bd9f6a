"""The pooling ablation of Chapter 1: under which setting does a pooling-free LeNet learn the directions
that LeNet cannot?

The paper (Section 2.1) removes the pooling layers of its CNNs, compensates the lost down-sampling with a
larger final fully connected layer, and reports that the networks then generalise on every Fourier
direction of D(v).  :class:`PoolFreeLeNet` is LeNet with each 2x2 max-pooling replaced by one of three
compensations, and with a configurable first hidden layer and initialisation; :data:`ABLATION` lists the
controlled changes of the training recipe and of the network (one at a time, everything else at the
paper's recipe), and :func:`run_pooling_ablation` trains every setting on the same directions.

A setting *learns* a direction when its test accuracy clears :data:`LEARNED` (0.9); it is *at chance* when
it stays within the binomial margin of 0.5 for the test-set size (:func:`chance_margin`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ._checks import positive_int, unit_interval
from .config import PAPER_RECIPE, Recipe
from .control import RunControl, as_run
from .directions import fourier_direction
from .experiments import ResumableRuns
from .results import DeadlineReached
from .tables import markdown_table
from .training import direction_accuracy

__all__ = ["PoolFreeLeNet", "AblationSetting", "ABLATION", "CONTROLS", "combine_ablations", "ABLATION_FREQS", "LEARNED", "chance_margin",
           "run_pooling_ablation", "ablation_table"]

#: Test accuracy above which a direction counts as learned.
LEARNED = 0.9

#: Ways to replace LeNet's two 2x2 max-pooling layers (``"pool"`` keeps them: the original LeNet).
COMPENSATIONS = ("pool", "fc", "stride", "dilation")
INITS = ("default", "kaiming")

#: Direction of the ablation: where LeNet is at chance at the paper's recipe and its pooling-free twin
#: is worst on Chapter 1's grid (0.56).  Training length is covered by the per-epoch test accuracy.
ABLATION_FREQS: tuple[tuple[int, int], ...] = ((0, 8),)


class PoolFreeLeNet(nn.Module):
    """LeNet-5 with its down-sampling replaced by ``compensation``; 1-channel 32x32 inputs, 2 classes.

    * ``"pool"``: the original LeNet (2x2 max-pooling after each convolution; equals ``get_model("lenet")``
      for ``hidden=120``, ``init="default"``).
    * ``"fc"``: no pooling; the first linear layer takes the whole 16x24x24 feature map (the paper's
      compensation; equals ``get_model("lenet_nopool")`` for ``hidden=120``, ``init="default"``).
    * ``"stride"``: no pooling; both convolutions have stride 2 (the same 5x5 output as LeNet's, reached
      by strided convolution instead of pooling).
    * ``"dilation"``: no pooling; the second convolution is dilated by 2 (a receptive field as wide as
      after pooling, with no down-sampling; a 16x20x20 map).

    ``hidden`` is the width of the first linear layer (LeNet: 120); ``init="kaiming"`` draws every weight
    from He's normal initialisation for ReLU (fan-in) with zero biases instead of PyTorch's default.
    """

    def __init__(self, compensation: str = "fc", hidden: int = 120, init: str = "default"):
        super().__init__()
        if compensation not in COMPENSATIONS:
            raise ValueError(f"compensation must be one of {COMPENSATIONS}, got {compensation!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        positive_int(hidden, "hidden", maximum=1 << 16)
        pool = nn.MaxPool2d(2) if compensation == "pool" else nn.Identity()
        stride = 2 if compensation == "stride" else 1
        dilation = 2 if compensation == "dilation" else 1
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, stride=stride), nn.ReLU(), pool,
            nn.Conv2d(6, 16, 5, stride=stride, dilation=dilation), nn.ReLU(), pool,
        )
        with torch.no_grad():
            side = self.features(torch.zeros(1, 1, 32, 32)).shape[-1]
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, hidden), nn.ReLU(),
            nn.Linear(hidden, 84), nn.ReLU(),
            nn.Linear(84, 2),
        )
        self.feature_side = side
        if init == "kaiming":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class AblationSetting:
    """One row of the ablation: a network (:class:`PoolFreeLeNet` arguments) and a training recipe.

    The defaults are the pooling-free LeNet at the paper's recipe (10,000 samples, 20 epochs, SGD with
    lr 0.5 decayed linearly to 0, gradient-norm clipping at 0.5, no weight decay).
    """

    name: str
    label: str
    compensation: str = "fc"
    hidden: int = 120
    init: str = "default"
    n_train: int = PAPER_RECIPE.n_train
    epochs: int = PAPER_RECIPE.epochs
    lr: float = PAPER_RECIPE.lr
    clip: float | None = PAPER_RECIPE.clip
    weight_decay: float = PAPER_RECIPE.weight_decay

    def model(self) -> PoolFreeLeNet:
        return PoolFreeLeNet(self.compensation, self.hidden, self.init)

    def recipe(self) -> dict:
        return {"epochs": self.epochs, "lr": self.lr, "clip": self.clip, "weight_decay": self.weight_decay}


#: The ablation of Chapter 1: LeNet, then its pooling-free twin with one change at a time.
ABLATION: tuple[AblationSetting, ...] = (
    AblationSetting("lenet", "LeNet (with pooling)", compensation="pool"),
    AblationSetting("nopool", "no pooling, larger FC (paper's recipe)"),
    AblationSetting("n40k", "40,000 training samples", n_train=40_000),
    AblationSetting("wd5e-3", "weight decay 5e-3", weight_decay=5e-3),
    AblationSetting("lr0.1", "lr 0.1", lr=0.1),
    AblationSetting("hidden1024", "first FC layer 1,024 wide", hidden=1024),
    AblationSetting("stride", "strided convolutions instead", compensation="stride"),
    AblationSetting("dilation", "dilated convolution instead", compensation="dilation"),
    AblationSetting("kaiming", "He (Kaiming-normal) init", init="kaiming"),
    AblationSetting("hidden32", "first FC layer 32 wide", hidden=32),
    AblationSetting("lr0.02_noclip", "lr 0.02, no clipping", lr=0.02, clip=None),
)

#: Controls run on their own (``nadlib pooling --settings lenet_n40k``): whether a larger training set
#: also lets LeNet *with* pooling learn the hard direction, which would make it a matter of data, not
#: of pooling.
CONTROLS: tuple[AblationSetting, ...] = (
    AblationSetting("lenet_n40k", "LeNet (with pooling), 40,000 training samples", compensation="pool",
                    n_train=40_000),
)


def chance_margin(n_test: int, z: float = 3.0) -> float:
    """Half-width of the band around 0.5 that a classifier at chance stays in: ``z`` binomial standard
    errors, ``z * 0.5 / sqrt(n_test)`` (0.015 for 10,000 test samples at z = 3)."""
    positive_int(n_test, "n_test")
    return z * 0.5 / math.sqrt(n_test)


def _check_settings(settings) -> list[AblationSetting]:
    settings = list(ABLATION if settings is None else settings)
    if not settings:
        raise ValueError("settings is empty")
    for s in settings:
        if not isinstance(s, AblationSetting):
            raise TypeError(f"settings must be AblationSetting objects, got {type(s).__name__}")
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names must be unique, got {names}")
    return settings


def run_pooling_ablation(settings: Sequence[AblationSetting] | None = None,
                         freqs: Iterable[tuple[int, int]] = ABLATION_FREQS, *, n_test: int = 10_000,
                         scale: float = 1.0, run: RunControl | None = None) -> tuple[dict, dict]:
    """Train every setting on D(v) for every Fourier direction ``freqs`` (same data, same seed).

    ``scale`` multiplies every training-set size and epoch count (e.g. 0.05 for a quick check; at least
    256 samples and 1 epoch).  Returns ``(arrays, settings_dict)``: ``names`` and ``labels`` (one per
    setting), ``freqs`` (k x 2), ``test_acc`` and ``train_acc`` (settings x directions) and ``wall_time``
    (seconds per setting), ``best_test_acc`` and ``best_epoch`` (the highest test accuracy over the epochs
    and its epoch: what stopping early would give at best -- optimistic, as it is chosen on the test set).
    ``run`` (:class:`nadlib.RunControl`): one seed for every run; resumable through ``run.checkpoint`` (see
    :class:`nadlib.ResumableRuns`); with ``run.deadline`` the runs stop after the one that finishes past it
    and the runs not done are NaN; ``settings_dict["complete"]`` says whether every run was done (rerun the same
    call with the same checkpoint to finish).
    """
    settings = _check_settings(settings)
    freqs = [tuple(int(c) for c in f) for f in freqs]
    if not freqs:
        raise ValueError("freqs is empty")
    dirs = {f: fourier_direction(*f) for f in freqs}  # validates the frequencies before any work
    positive_int(n_test, "n_test")
    run = as_run(run)
    seed = run.seed
    scale = unit_interval(scale, "scale")

    def sized(s: AblationSetting) -> tuple[int, int]:
        return max(256, round(s.n_train * scale)), max(1, round(s.epochs * scale))

    record = {"settings": [asdict(s) for s in settings], "freqs": freqs, "n_test": n_test, "seed": seed,
              "scale": scale}
    keys = [f"{s.name}@{kx}_{ky}" for s in settings for kx, ky in freqs]
    by_name = {s.name: s for s in settings}

    def work(key: str) -> dict:
        name, _, f = key.partition("@")
        s = by_name[name]
        freq = tuple(int(c) for c in f.split("_"))
        n_train, epochs = sized(s)
        recipe = Recipe(n_train=n_train, n_test=n_test, **dict(s.recipe(), epochs=epochs))
        h = direction_accuracy(s.model, dirs[freq], recipe=recipe, return_history=True, run=inner)
        return {"test_acc": h.final_test_acc, "train_acc": h.final_train_acc, "wall_time": h.wall_time,
                "best_test_acc": max(h.test_acc), "best_epoch": h.epochs[int(np.argmax(h.test_acc))]}

    inner = run.replace(progress=False, checkpoint=None, deadline=None)
    runner = ResumableRuns(run.checkpoint, record)
    try:
        done = runner.run(keys, work, desc="pooling ablation", progress=run.shows_progress(True),
                          deadline=run.deadline)
    except DeadlineReached:
        done = runner.done
    shape = (len(settings), len(freqs))
    arrays = {"names": np.array([s.name for s in settings]), "labels": np.array([s.label for s in settings]),
              "freqs": np.array(freqs, dtype=np.int64)}
    for field_name in ("test_acc", "train_acc", "wall_time", "best_test_acc", "best_epoch"):
        values = [float(done[k][field_name]) if k in done else np.nan for k in keys]
        arrays[field_name] = np.array(values).reshape(shape)
    arrays["wall_time"] = np.nansum(arrays["wall_time"], axis=1)
    return arrays, dict(record, complete=all(k in done for k in keys))


def ablation_table(arrays: dict, n_test: int = 10_000):
    """The ablation as a Markdown table: one row per setting, final test (train) accuracy per direction,
    the best test accuracy over the epochs (optimistic early stopping), and how many of the directions
    LeNet fails on that setting learns (final test accuracy > :data:`LEARNED`)."""
    names, labels = list(arrays["names"]), list(arrays["labels"])
    freqs = [tuple(int(c) for c in f) for f in arrays["freqs"]]
    test, train = np.asarray(arrays["test_acc"]), np.asarray(arrays["train_acc"])
    if "lenet" not in names:
        raise ValueError("the ablation has no 'lenet' row to define the hard directions")
    lenet = test[names.index("lenet")]
    hard = [j for j in range(len(freqs)) if np.isfinite(lenet[j]) and abs(lenet[j] - 0.5) <= chance_margin(n_test)]
    best = np.asarray(arrays.get("best_test_acc", test), float)
    epoch = np.asarray(arrays.get("best_epoch", np.full(test.shape, np.nan)), float)
    header = ["setting", *[f"{f}{' (hard)' if j in hard else ''}: test (train)" for j, f in enumerate(freqs)],
              *[f"{f}: best epoch" for f in freqs], f"hard directions learned (> {LEARNED})"]
    rows = []
    for i, label in enumerate(labels):
        cells = [f"{test[i, j]:.3f} ({train[i, j]:.2f})" if np.isfinite(test[i, j]) else "not run"
                 for j in range(len(freqs))]
        cells += [f"{best[i, j]:.3f} (epoch {epoch[i, j]:.0f})" if np.isfinite(epoch[i, j]) else "–"
                  for j in range(len(freqs))]
        ran = [j for j in hard if np.isfinite(test[i, j])]
        learned = sum(test[i, j] > LEARNED for j in ran)
        rows.append([label, *cells, f"{learned} / {len(ran)}" if ran else "not run"])
    return markdown_table(header, rows)


def combine_ablations(*parts: dict) -> dict:
    """Stack the rows of several ablation results (e.g. the main ablation and a control run) that were run on
    the same directions, in the order given."""
    if not parts:
        raise ValueError("nothing to combine")
    freqs = np.asarray(parts[0]["freqs"])
    for p in parts[1:]:
        if not np.array_equal(np.asarray(p["freqs"]), freqs):
            raise ValueError(f"the parts were run on different directions: {freqs.tolist()} vs "
                             f"{np.asarray(p['freqs']).tolist()}")
    out = {"freqs": freqs}
    for name in ("names", "labels", "test_acc", "train_acc", "wall_time", "best_test_acc", "best_epoch"):
        if all(name in p for p in parts):
            out[name] = np.concatenate([np.asarray(p[name]) for p in parts])
    return out
