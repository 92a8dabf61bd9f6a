"""Figures used by the chapters (matplotlib); each function returns its figure or axes."""

from __future__ import annotations


# --------------------------------------------------------------------------------------------------
# Chapter 3: CIFAR-10 (poisoned images, accuracy vs NAD index, energy along NADs vs Fourier, flip table)
# --------------------------------------------------------------------------------------------------

def _to_rgb(img):
    """``3 x H x W`` tensor/array in about [0, 1] -> ``H x W x 3`` numpy array clipped to [0, 1]."""
    import numpy as _np
    import torch as _torch

    a = img.detach().cpu().numpy() if isinstance(img, _torch.Tensor) else _np.asarray(img)
    return _np.clip(a.transpose(1, 2, 0), 0.0, 1.0)


def plot_poisoned_examples(x, x_poisoned, y, n: int = 6, amplify: float = 10.0, class_names=None):
    """Clean images (top row), their poisoned versions (middle) and the change, amplified (bottom).

    Args:
        x, x_poisoned: images ``N x 3 x 32 x 32`` in [0, 1] (the first ``n`` are shown).
        y: labels (titles).
        amplify: the bottom row shows ``0.5 + amplify * (x_poisoned - x)``.
    """
    import matplotlib.pyplot as plt

    from .cifar import CIFAR10_CLASSES

    names = class_names or CIFAR10_CLASSES
    n = min(int(n), len(x))
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for j in range(n):
        diff = 0.5 + amplify * (x_poisoned[j] - x[j])
        for i, (img, label) in enumerate(((x[j], "clean"), (x_poisoned[j], "poisoned"),
                                          (diff, f"change x{amplify:g}"))):
            ax = axes[i, j]
            ax.imshow(_to_rgb(img), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
        axes[0, j].set_title(names[int(y[j])], fontsize=9)
    fig.tight_layout()
    return fig


def plot_poison_sweep(arrays: dict, meta: dict | None = None, ax=None, label: str | None = None):
    """Clean-test accuracy (and poisoned-train accuracy) vs the NAD index of the carrier.

    ``arrays``/``meta`` as written by ``python -m nadlib poison`` (:func:`nadlib.load_artifact`).  The
    unpoisoned run and chance level are drawn as horizontal lines.
    """
    import matplotlib.pyplot as plt
    import numpy as _np

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    idx = _np.asarray(arrays["indices"])
    name = label or (meta or {}).get("settings", {}).get("arch", "")
    ax.plot(idx, arrays["test_acc"], "o-", label=f"{name} clean test accuracy".strip())
    ax.plot(idx, arrays["train_acc"], "s--", alpha=0.7, label=f"{name} train accuracy (poisoned)".strip())
    if "clean_test_acc" in arrays:
        ax.axhline(float(arrays["clean_test_acc"]), color="gray", ls=":", label="trained without poison")
    ax.axhline(0.1, color="k", lw=0.8, ls="-.", label="chance")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("NAD index of the carrier")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax


def plot_energy_nads_vs_fourier(nad_energy, fourier_energy, label: str = "NADs", axes=None):
    """Energy of images along basis directions: per direction (log scale) and cumulative.

    ``nad_energy``: from :func:`nadlib.cifar.nad_energy` (NAD order); ``fourier_energy``: from
    :func:`nadlib.cifar.fourier_energy_by_radius` (low to high frequency).  Both normalised to sum 1.
    """
    import matplotlib.pyplot as plt
    import numpy as _np

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    e_nad, e_f = _np.asarray(nad_energy, dtype=float), _np.asarray(fourier_energy, dtype=float)
    k = _np.arange(len(e_nad))
    axes[0].semilogy(k, e_nad, lw=0.8, label=f"along {label} (index order)")
    axes[0].semilogy(_np.arange(len(e_f)), e_f, lw=0.8, alpha=0.8, label="along Fourier (low to high frequency)")
    axes[0].set_xlabel("direction index")
    axes[0].set_ylabel("fraction of energy")
    axes[1].plot(k + 1, _np.cumsum(e_nad), label=label)
    axes[1].plot(_np.arange(1, len(e_f) + 1), _np.cumsum(e_f), label="Fourier")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("number of directions (first k)")
    axes[1].set_ylabel("cumulative fraction of energy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def flip_table(results: dict) -> str:
    """A Markdown table of flip experiments: ``{arch: (arrays, meta)}`` -> train/test accuracy of both
    variants, with the data size, profile, device and wall time of each run (``None`` entries are
    reported as not measured)."""
    lines = ["| architecture | data | train acc. original | train acc. flipped | test acc. original "
             "| test acc. flipped | profile, size, device, time |",
             "|---|---|---|---|---|---|---|"]
    for arch, item in results.items():
        if item is None:
            lines.append(f"| {arch} | – | not yet measured | | | | |")
            continue
        arrays, meta = item
        s = meta.get("settings", {})
        tr, te = arrays["train_acc"], arrays["test_acc"]
        where = (f"{meta.get('profile', '?')}, {s.get('n_train', '?')}/{s.get('n_test', '?')} images, "
                 f"{s.get('epochs', '?')} epochs, {meta.get('device', '?')}, {float(meta.get('wall_time', 0)):.0f} s")
        lines.append(f"| {arch} | {meta.get('data_source', s.get('source', '?'))} | {tr[0]:.3f} | {tr[1]:.3f} "
                     f"| {te[0]:.3f} | {te[1]:.3f} | {where} |")
    return "\n".join(lines)
