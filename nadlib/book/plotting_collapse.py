"""Figures and tables of Chapter 5 (neural collapse): NC1-NC4 against epoch, train vs test.

Every function takes :class:`nadlib.CollapseRun` objects or their ``history`` dicts (one row per epoch,
keys ``epoch``, ``accuracy``, ``nc1``, ..., ``test_nc1``, ...) and returns matplotlib axes or a
Markdown string; nothing here trains.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..collapse import CollapseRun, first_zero_error_epoch
from ..tables import MarkdownTable, markdown_table

#: Panels of :func:`plot_collapse`: (history key, title, log scale).
COLLAPSE_PANELS = (
    ("error", "training error (test dashed)", False),
    ("nc1", r"NC1: tr($\Sigma_W \Sigma_B^+$)/C", True),
    ("nc2_equinorm", "NC2: equinorm (CV of $\\|\\mu_c-\\mu_G\\|$)", True),
    ("nc2_equiangular", "NC2: distance to simplex-ETF angles", True),
    ("nc3", "NC3: $\\|W/\\|W\\| - M^T/\\|M\\|\\|_F^2$", True),
    ("nc4", "NC4: mismatch with nearest class mean", True),
)


_ZERO = 1e-12  # NC values below this are rounding noise of an exact 0


def _history(run) -> dict:
    if isinstance(run, CollapseRun):
        return run.history
    if isinstance(run, dict) and "epoch" in run:
        return run
    raise TypeError(f"expected a CollapseRun or a history dict with 'epoch', got {type(run).__name__}")


def _series(h: dict, key: str, prefix: str = "") -> np.ndarray:
    if key == "error":
        return 1.0 - np.asarray(h[f"{prefix}accuracy"], dtype=float)
    return np.asarray(h[f"{prefix}{key}"], dtype=float)


def plot_collapse(runs, axes=None, title: str | None = None, mark_zero_error: bool = True):
    """The four phenomena against epoch, as in Papyan et al. (2020): training error, NC1, NC2
    (equinorm, equiangularity), NC3, NC4, one panel each (log scale for the NC measures).

    ``runs``: one run (``CollapseRun`` or history dict) or ``{label: run}``.  A dotted vertical line marks
    the first epoch with zero training error of each run.  NC4 values of exactly 0 cannot be shown on a
    log scale: they are drawn at ``0.5 / N`` (half of one sample), below the grey line at ``1 / N``.
    Returns the array of 6 axes.
    """
    if not isinstance(runs, dict) or "epoch" in runs:
        runs = {None: runs}
    if axes is None:
        _, axes = plt.subplots(2, 3, figsize=(12.5, 6.4), constrained_layout=True)
    axes = np.asarray(axes).ravel()
    if len(axes) < len(COLLAPSE_PANELS):
        raise ValueError(f"plot_collapse needs {len(COLLAPSE_PANELS)} axes, got {len(axes)}")
    for i, (label, run) in enumerate(runs.items()):
        h = _history(run)
        color = f"C{i}"
        epochs = np.asarray(h["epoch"])
        zero = first_zero_error_epoch(h)
        n = float(np.asarray(h["n_samples"])[0]) if "n_samples" in h else None
        for ax, (key, name, log) in zip(axes, COLLAPSE_PANELS):
            y = _series(h, key)
            if key == "nc4" and n:
                ax.axhline(1.0 / n, color="0.75", lw=0.8)
                if i == 0:
                    ax.text(0.99, 1.0 / n, "1 sample; 0 is drawn below", transform=ax.get_yaxis_transform(),
                            ha="right", va="bottom", fontsize=7, color="0.5")
                y = np.where(y > 0, y, 0.5 / n)
            elif log:
                y = np.where(y > _ZERO, y, np.nan)  # exact zeros have no place on a log scale
            ax.plot(epochs, y, color=color, label=label or "train")
            if key == "error" and "test_accuracy" in h:
                ax.plot(epochs, _series(h, key, "test_"), color=color, ls="--", label=None if label else "test")
            if mark_zero_error and zero is not None:
                ax.axvline(zero, color=color, ls=":", lw=1.2)
            if log and np.nanmax(np.abs(y), initial=0.0) > _ZERO:
                ax.set_yscale("log")
            elif log and i == 0:  # e.g. NC2 with two classes: two centred means are always an ETF
                ax.text(0.5, 0.5, "0 up to rounding\n(always, for 2 classes)" if key.startswith("nc2")
                        else "0 up to rounding", transform=ax.transAxes, ha="center", va="center",
                        fontsize=9, color="0.4")
                ax.set_xlim(epochs.min(), max(epochs.max(), epochs.min() + 1))
                ax.set_yticks([])
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("epoch")
    axes[0].set_ylim(-0.02, 1.0)
    if any(label for label in runs) or "test_accuracy" in _history(next(iter(runs.values()))):
        axes[0].legend(fontsize=8)
    if title:
        axes[0].figure.suptitle(title, fontsize=11)
    return axes


def plot_train_test_nc1(runs: dict, axes=None, title: str | None = None):
    """NC1 of the training features (solid) and of the test features (dashed) per run, and the train /
    test accuracies, against epoch; dotted lines mark zero training error.  ``runs``: ``{label: run}``."""
    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs must be a non-empty {label: CollapseRun}")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11.0, 3.8), constrained_layout=True)
    ax_nc, ax_acc = axes
    for i, (label, run) in enumerate(runs.items()):
        h = _history(run)
        color, epochs = f"C{i}", np.asarray(h["epoch"])
        ax_nc.plot(epochs, h["nc1"], color=color, label=f"{label}: train")
        ax_acc.plot(epochs, h["accuracy"], color=color, label=f"{label}: train")
        if "test_nc1" in h:
            ax_nc.plot(epochs, h["test_nc1"], color=color, ls="--", label=f"{label}: test")
            ax_acc.plot(epochs, h["test_accuracy"], color=color, ls="--", label=f"{label}: test")
        zero = first_zero_error_epoch(h)
        if zero is not None:
            for ax in axes:
                ax.axvline(zero, color=color, ls=":", lw=1.2)
    if any(np.nanmax(_history(r)["nc1"], initial=0.0) > _ZERO for r in runs.values()):
        ax_nc.set_yscale("log")
    ax_nc.set_title("NC1 of train and test features", fontsize=10)
    ax_acc.set_title("accuracy", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    if title:
        ax_nc.figure.suptitle(title, fontsize=11)
    return axes


def collapse_table(runs: dict) -> MarkdownTable:
    """Markdown table comparing runs at the end of training: accuracies, zero-error epoch, and NC1-NC4
    of the training features next to NC1 and NC4 of the test features.  ``runs``: ``{label: run}``."""
    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs must be a non-empty {label: CollapseRun}")
    rows = []
    for label, run in runs.items():
        h = _history(run)
        zero = first_zero_error_epoch(h)
        last = {k: float(np.asarray(h[k])[-1]) if k in h else float("nan")
                for k in ("accuracy", "test_accuracy", "nc1", "test_nc1", "nc2_equiangular", "nc3", "nc4", "test_nc4")}
        rows.append([label, f"{last['accuracy']:.3f}", f"{last['test_accuracy']:.3f}",
                     zero if zero is not None else "never",
                     *(f"{last[k]:.3g}" for k in ("nc1", "test_nc1", "nc2_equiangular", "nc3", "nc4", "test_nc4"))])
    return markdown_table(["run", "train acc.", "test acc.", "zero train error at epoch", "NC1 train", "NC1 test",
                           "NC2 angle train", "NC3", "NC4 train", "NC4 test"], rows)
