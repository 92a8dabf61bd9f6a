"""Figures used by the chapters, in book order; each function returns its figure or axes.

Chapter 1: Fourier directions, accuracy maps over the Fourier grid (DC at the centre), learning curves,
pooling and aliasing (matplotlib), the interactive accuracy map of the static HTML (Plotly).
Chapter 2: NAD images and their Fourier energy, eigenvalue spectra, trainability against NAD index.
Chapter 3: poisoned images, accuracy against the poisoned NAD index, energy along NADs vs Fourier, flip table.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch

from .._checks import is_int
from ..config import CIFAR10_CLASSES
from ..directions import fill_symmetric, fourier_direction, fourier_energy, signed_frequency
from ..tables import MarkdownTable, markdown_table

# --------------------------------------------------------------------------------------------------
# Chapter 1: Fourier directions, accuracy maps over the Fourier grid (DC at the centre), learning
# curves, pooling and aliasing (matplotlib); the interactive accuracy map of the static HTML (Plotly)
# --------------------------------------------------------------------------------------------------


#: Colour range of accuracy maps: chance (0.5) to perfect (1.0).
ACC_VMIN, ACC_VMAX = 0.5, 1.0
#: Colour of frequencies that were not trained (NaN in a map).
NOT_TRAINED_COLOR = "#c8c8c8"




def _finite(a, name: str, *, nonnegative: bool = False) -> np.ndarray:
    """``a`` as a float64 array, refused when it holds NaN or infinite (or, with ``nonnegative``, negative)
    values: a figure of them would be blank or silently clipped."""
    arr = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"NaN or infinite values in {name}")
    if nonnegative and (arr < 0).any():
        raise ValueError(f"{name} must be >= 0 (energies and variances), got {arr[arr < 0][:3].tolist()}")
    return arr


def _map_of(grid, size: int | None = None):
    """``(map, size)`` for a :class:`~nadlib.training.GridResult`, a ``{(kx, ky): acc}`` dict or a
    square array (rows ``ky``, columns ``kx``, unshifted)."""

    if hasattr(grid, "accuracy") and hasattr(grid, "size"):
        out = np.asarray(grid.map, dtype=float), int(grid.size)
    elif isinstance(grid, dict):
        n = int(size or 32)
        out = fill_symmetric(grid, n), n
    else:
        arr = np.asarray(grid, dtype=float)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(f"an accuracy map must be a square 2-D array (rows ky, columns kx), got shape "
                             f"{arr.shape}")
        out = arr, arr.shape[0]
    known = out[0][np.isfinite(out[0])]
    if ((known < 0) | (known > 1)).any() or np.isinf(out[0]).any():
        bad = out[0][~np.isnan(out[0]) & ((out[0] < 0) | (out[0] > 1) | np.isinf(out[0]))]
        raise ValueError(f"accuracies must lie in [0, 1] (NaN: not trained), got {sorted(set(bad.tolist()))[:4]}")
    return out


def shifted_accuracy_map(grid, size: int | None = None):
    """The accuracy map with the zero frequency at the centre.

    Returns ``(signed, shifted)``: ``signed`` are the signed frequencies along each axis
    (``-size//2 .. size - size//2 - 1``) and ``shifted[i, j]`` is the accuracy at
    ``(kx, ky) = (signed[j], signed[i])`` (NaN where not trained).
    """

    amap, n = _map_of(grid, size)
    signed = np.arange(n) - n // 2
    return signed, np.fft.fftshift(amap)


def accuracy_lattice(grid, size: int | None = None):
    """The trained frequencies of a (possibly coarse) map as a regular lattice, for display.

    A grid trained with stride ``s`` (``fourier_grid(size, s)``) covers the frequencies that are
    multiples of ``s``; drawn at full resolution it would be mostly empty.  Returns
    ``(coords, values, step)``: the signed lattice coordinates (multiples of ``step`` in
    ``[-size/2, size/2)``), the accuracy at ``(kx, ky) = (coords[j], coords[i])`` in ``values[i, j]``
    (NaN where not trained) and ``step``, the largest divisor of ``size`` dividing every trained index.
    """

    signed, shifted = shifted_accuracy_map(grid, size)
    n = len(signed)
    rows, cols = np.nonzero(~np.isnan(shifted))
    step = n
    for k in np.concatenate([signed[rows], signed[cols]]):
        step = math.gcd(step, int(abs(k)))
    step = max(step, 1) if len(rows) else 1
    keep = signed % step == 0
    return signed[keep], shifted[np.ix_(keep, keep)], step


def _accuracy_axis(ax, xlabel: str, ylabel: str):
    """The common frame of accuracy plots: labels, accuracy range from below chance to 1, grid, legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.4, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _accuracy_cmap():

    return matplotlib.colormaps["viridis"].with_extremes(bad=NOT_TRAINED_COLOR)


def grid_caption(grid) -> str:
    """Short provenance of a GridResult: profile, sizes, device and wall time (when known)."""
    s = getattr(grid, "settings", None) or {}
    if not s:
        return ""
    parts = []
    if s.get("profile"):
        parts.append(f"{s['profile']} profile")
    if s.get("n_train"):
        parts.append(f"{int(s['n_train']):,} train / {int(s.get('n_test', 0)):,} test, {s.get('epochs', '?')} ep.")
    if s.get("device"):
        parts.append(str(s.get("device_name") or s["device"]))
    wall = s.get("wall_time", getattr(grid, "wall_time", 0.0))
    if wall:
        parts.append(f"{float(wall) / 60:.0f} min" if float(wall) >= 120 else f"{float(wall):.0f} s")
    return ", ".join(parts)


def plot_fourier_directions(freqs, size: int = 32, ncols: int | None = None, axes=None):
    """Images of the Fourier directions ``freqs`` (a list of ``(kx, ky)``), titled with their frequency.

    Colours: red positive, blue negative, white zero (shared symmetric scale).
    """

    freqs = [tuple(int(k) for k in f) for f in freqs]
    if not freqs:
        raise ValueError("freqs is empty: give at least one (kx, ky)")
    images = [fourier_direction(kx, ky, size).numpy() for kx, ky in freqs]
    lim = float(max(np.abs(im).max() for im in images))
    if axes is None:
        ncols = int(ncols or min(len(freqs), 6))
        nrows = -(-len(freqs) // ncols)
        _, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.0 * nrows), squeeze=False)
    flat = np.ravel(axes)
    if len(flat) < len(freqs):
        raise ValueError(f"{len(freqs)} directions but only {len(flat)} axes")
    for ax, (kx, ky), im in zip(flat, freqs, images):
        ax.imshow(im, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"(kx, ky) = ({kx}, {ky})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[len(freqs):]:
        ax.axis("off")
    flat[0].figure.tight_layout()
    return flat[0].figure


def plot_accuracy_map(grid, ax=None, title: str | None = None, colorbar: bool = True,
                      mark=None, size: int | None = None, zoom: int | None = None):
    """Test accuracy over the Fourier grid, zero frequency at the centre (``fftshift``).

    Args:
        grid: a :class:`~nadlib.training.GridResult`, a ``{(kx, ky): accuracy}`` dict, or an unshifted
            ``size x size`` map (rows ``ky``, columns ``kx``); untrained frequencies (NaN) are grey.
        mark: optional list of ``(kx, ky)`` (unsigned, as given to ``fourier_direction``) to circle.
        title: default: the architecture name of a GridResult.
        zoom: show only ``|kx|, |ky| <= zoom`` (e.g. a grid of the low frequencies only).

    The axes are the signed frequencies; the colour scale runs from chance (0.5) to 1.  Returns ``ax``.
    """

    _, full = shifted_accuracy_map(grid, size)
    n = full.shape[0]
    coords, shifted, step = accuracy_lattice(grid, size)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.0))
    lo, hi = coords[0] - step / 2, coords[-1] + step / 2  # a cell of side `step` around each frequency
    image = ax.imshow(shifted, origin="lower", extent=(lo, hi, lo, hi), cmap=_accuracy_cmap(),
                      vmin=ACC_VMIN, vmax=ACC_VMAX, interpolation="nearest")
    ax.set_xlabel("kx (signed)")
    ax.set_ylabel("ky (signed)")
    ticks = [int(c) for c in coords if c % max(n // 4, step) == 0]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    if zoom is not None:
        if not is_int(zoom) or not 0 < zoom <= n // 2:
            raise ValueError(f"zoom must be an int in [1, {n // 2}], got {zoom!r}")
        ticks = list(range(-zoom, zoom + 1, max(1, zoom // 4)))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlim(-zoom - step / 2, zoom + step / 2)
        ax.set_ylim(-zoom - step / 2, zoom + step / 2)
    if title is None:
        title = getattr(grid, "arch", None)
    if title:
        ax.set_title(title, fontsize=10)
    for kx, ky in mark or ():
        ax.plot(signed_frequency(kx, n), signed_frequency(ky, n), "o", mfc="none", mec="red", mew=1.5, ms=9)
    if colorbar:
        cb = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("test accuracy")
    if (shifted != shifted).any():  # NaN present
        ax.legend(handles=[Patch(color=NOT_TRAINED_COLOR, label="not trained")], loc="upper right",
                  fontsize=7, framealpha=0.8)
    return ax


def plot_accuracy_maps(grids: dict, ncols: int | None = None, missing_text: str = "no artifact",
                       captions: bool = True):
    """Accuracy maps of several architectures side by side with one colour bar.

    ``grids`` maps a panel title (e.g. the architecture) to a GridResult / dict / map, or to ``None``
    for an architecture without results (an empty panel says ``missing_text``).  With ``captions``
    each panel states the profile, data size, device and wall time of its GridResult.
    """

    if not grids:
        raise ValueError("grids is empty: give at least one {name: grid}")
    ncols = int(ncols or len(grids))
    nrows = -(-len(grids) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.7 * ncols + 0.8, 3.9 * nrows), squeeze=False)
    flat = np.ravel(axes)
    for ax, (name, grid) in zip(flat, grids.items()):
        if grid is None:
            ax.text(0.5, 0.5, missing_text, ha="center", va="center", wrap=True, fontsize=9,
                    transform=ax.transAxes)
            ax.set_title(name, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        plot_accuracy_map(grid, ax=ax, title=name, colorbar=False)
        if captions and grid_caption(grid):
            ax.set_title(f"{name}\n{grid_caption(grid)}", fontsize=8)
    for ax in flat[len(grids):]:
        ax.axis("off")
    mappable = plt.cm.ScalarMappable(cmap=_accuracy_cmap(), norm=plt.Normalize(ACC_VMIN, ACC_VMAX))
    fig.tight_layout()
    cb = fig.colorbar(mappable, ax=list(flat), fraction=0.02, pad=0.02)
    cb.set_label("test accuracy")
    return fig


def plot_learning_curves(histories: dict, ax=None, title: str | None = None):
    """Train (dashed) and test (solid) accuracy per epoch of several runs.

    ``histories``: ``{label: TrainResult}`` (e.g. from ``direction_accuracy(..., return_history=True)``).
    """

    if not histories:
        raise ValueError("histories is empty")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.6))
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        if not getattr(h, "epochs", None):
            raise ValueError(f"run {label!r} has no recorded epochs")
        if h.test_acc:
            ax.plot(h.epochs, h.test_acc, "o-", color=color, ms=3, label=f"{label} (test)")
        ax.plot(h.epochs, h.train_acc, "--", color=color, alpha=0.7, label=f"{label} (train)")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(histories) > 2 else 1)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def pooling_aliasing(freqs, size: int = 32) -> list[dict]:
    """What a 2x2 pooling (stride 2) does to Fourier directions, one dict per ``(kx, ky)``.

    Keys: ``freq``; ``folded``: the signed frequency the direction lands on after stride-2 subsampling
    (``k mod size/2``: frequencies ``size/2`` apart become the same); ``avg_gain``: the fraction of
    the direction's norm that survives a 2x2 average pool (a low-pass filter with gain
    ``|cos(pi kx/size) cos(pi ky/size)|``, exact unless the direction folds onto a self-conjugate
    frequency; 1 for a constant image); ``max_contrast``: how much of the
    difference between the two classes ``+v`` and ``-v`` survives a 2x2 max pool,
    ``||maxpool(v) - maxpool(-v)|| / ||v - (-v)||`` rescaled so that a constant image gives 1.
    """

    rows = []
    half = size // 2
    for kx, ky in freqs:
        v = fourier_direction(int(kx), int(ky), size, dtype=torch.float64)[None, None]
        avg = F.avg_pool2d(v, 2)
        diff = F.max_pool2d(v, 2) - F.max_pool2d(-v, 2)
        # a pooled image has 4x fewer pixels: a factor 2 on norms makes a constant image keep 1
        rows.append({
            "freq": (int(kx), int(ky)),
            "folded": (signed_frequency(int(kx) % half, half), signed_frequency(int(ky) % half, half)),
            "avg_gain": float(2 * avg.norm() / v.norm()),
            "max_contrast": float(2 * diff.norm() / (2 * v.norm())),
        })
    return rows


def plot_pooling_aliasing(freqs, size: int = 32):
    """Per direction (columns): the image ``v``, its 2x2 average pool, and ``maxpool(v) - maxpool(-v)``
    (what is left of the class difference after a max pool); titles give the numbers of
    :func:`pooling_aliasing`."""

    freqs = [tuple(int(k) for k in f) for f in freqs]
    if not freqs:
        raise ValueError("freqs is empty")
    stats = pooling_aliasing(freqs, size)
    fig, axes = plt.subplots(3, len(freqs), figsize=(2.0 * len(freqs), 6.3), squeeze=False)
    for j, ((kx, ky), st) in enumerate(zip(freqs, stats)):
        v = fourier_direction(kx, ky, size, dtype=torch.float64)[None, None]
        panels = (v, F.avg_pool2d(v, 2), F.max_pool2d(v, 2) - F.max_pool2d(-v, 2))
        lim = float(v.abs().max()) * 2
        titles = (f"v: ({kx}, {ky})", f"avg-pool: gain {st['avg_gain']:.2f}\nfolds to {st['folded']}",
                  f"max-pool(v) - max-pool(-v)\ncontrast {st['max_contrast']:.2f}")
        for i, (img, t) in enumerate(zip(panels, titles)):
            ax = axes[i, j]
            ax.imshow(img[0, 0].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(t, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_accuracy_vs_pooling(grids: dict, ax=None):
    """Test accuracy of each trained direction against its max-pool class contrast
    (:func:`pooling_aliasing`), one colour per grid (``{name: GridResult}``; ``None`` skipped)."""

    grids = {k: g for k, g in grids.items() if g is not None}
    if not grids:
        raise ValueError("no grids to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.8))
    for i, (name, g) in enumerate(grids.items()):
        freqs = sorted(g.accuracy)
        stats = pooling_aliasing(freqs, int(g.size))
        ax.plot([st["max_contrast"] for st in stats], [g.accuracy[f] for f in freqs], "o", ms=4, alpha=0.75,
                color=f"C{i % 10}", label=f"{name} ({len(freqs)} directions)")
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    return _accuracy_axis(ax, "class contrast after one 2x2 max pool", "test accuracy")


# --------------------------------------------------------------------------------------------------
# Chapter 2: NADs (images + Fourier energy, eigenvalue spectra, trainability vs NAD index)
# --------------------------------------------------------------------------------------------------

def nad_rows(nads) -> np.ndarray:
    """NAD rows as a float64 numpy array ``k x C x H x W`` from a :class:`nadlib.NADs` or an array
    (``k x H x W``, or ``k x (H*W)`` with square single-channel images).  Shared by the matplotlib figures
    and the Plotly explorers (:mod:`nadlib.book.interactive`).

    Raises:
        ValueError: any other shape.
    """
    d = getattr(nads, "directions", nads)
    d = d.detach().cpu().numpy() if isinstance(d, torch.Tensor) else np.asarray(d)
    if d.ndim == 2:  # k x (H*W): assume square single-channel images
        side = int(round(d.shape[1] ** 0.5))
        d = d.reshape(d.shape[0], 1, side, side)
    elif d.ndim == 3:
        d = d[:, None]
    if d.ndim != 4:
        raise ValueError(f"NADs must be k x C x H x W (or k x H x W), got shape {d.shape}")
    return _finite(d, "the NADs")


def plot_nads(nads, indices=(0, 1, 2, 3, 4, 5, 6, 7), title: str | None = None, axes=None):
    """Top row: NADs ``u_i`` in pixel space (diverging colours, channels summed); bottom row: their Fourier
    energy ``|DFT(u_i)|²`` with the zero frequency at the centre.  Returns the figure."""

    d = nad_rows(nads)
    indices = [int(i) for i in indices]
    outside = [i for i in indices if not 0 <= i < len(d)]
    if outside or not indices:
        raise ValueError(f"indices must be NAD indices in 0..{len(d) - 1} (at least one), got {outside or indices}")
    if axes is None:
        fig, axes = plt.subplots(2, len(indices), figsize=(1.6 * len(indices), 3.4), squeeze=False)
    else:
        fig = axes[0][0].figure
    for col, i in enumerate(indices):
        img = d[i].sum(0)
        m = np.abs(img).max() or 1.0
        axes[0][col].imshow(img, cmap="BrBG", vmin=-m, vmax=m)
        axes[0][col].set_title(f"NAD {i}", fontsize=9)
        axes[1][col].imshow(fourier_energy(d[i]).numpy(), cmap="magma")
        for r in (0, 1):
            axes[r][col].set_xticks([])
            axes[r][col].set_yticks([])
    axes[0][0].set_ylabel("pixels", fontsize=9)
    axes[1][0].set_ylabel("Fourier energy", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_eigenvalues(spectra: dict, ax=None, normalize: bool = True):
    """Eigenvalue spectra (variances along the NADs, descending) of several estimates on a log scale.

    ``spectra`` maps a label to a :class:`nadlib.NADs` or an array of eigenvalues; with ``normalize``
    each spectrum is divided by the total gradient variance (fraction of it): the sum of the spectrum, or,
    for NADs holding only their top ``m`` eigenvalues (the Lanczos path of large inputs), their
    ``total_variance`` (the trace of the covariance), so the fractions are exact on both paths and only the
    top ``m`` points are drawn."""

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, spec in spectra.items():
        total = getattr(spec, "total_variance", None)
        ev = _finite(getattr(spec, "eigenvalues", spec), f"the eigenvalues of {label!r}", nonnegative=True)
        if ev.ndim != 1 or not ev.any():
            raise ValueError(f"the eigenvalues of {label!r} must be a 1-D spectrum, not all zero; got shape {ev.shape}")
        if total is not None and not (np.isfinite(total) and total >= ev.sum() * (1 - 1e-9)):
            raise ValueError(f"the total variance of {label!r} ({total!r}) must be finite and at least the sum of "
                             f"its eigenvalues ({ev.sum():.6g})")
        ev = np.where(ev > ev.max() * 1e-12, ev, np.nan)  # a covariance of n < D networks has rank n - 1
        ax.semilogy(ev / (np.nansum(ev) if total is None else total) if normalize else ev, label=label)
    ax.set_xlabel("NAD index i")
    ax.set_ylabel("variance fraction" if normalize else "variance")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_trainability(curves: dict, ax=None, chance: float = 0.5):
    """Test accuracy after training on D(u_i) vs NAD index i; ``curves`` maps a label to ``(indices, accs)``."""

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, (idx, acc) in curves.items():
        ax.plot(list(idx), list(acc), "o-", label=label)
    ax.axhline(chance, color="grey", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=-0.5)
    return _accuracy_axis(ax, "NAD index i (linear below 10, logarithmic above)", "test accuracy on D(u_i)")



# --------------------------------------------------------------------------------------------------
# Chapter 3: CIFAR-10 (poisoned images, accuracy vs NAD index, energy along NADs vs Fourier, flip table)
# --------------------------------------------------------------------------------------------------

def rgb_image(img) -> np.ndarray:
    """A ``C x H x W`` image (C = 1 or 3; or ``H x W``) in about [0, 1] as an ``H x W x 3`` float64 array
    clipped to [0, 1] (grey images repeated over the three channels).

    Raises:
        ValueError: any other shape.
    """
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    a = a.astype(np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"an image must be C x H x W with C in (1, 3), got shape {a.shape}")
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return np.clip(a.transpose(1, 2, 0), 0.0, 1.0)


def plot_poisoned_examples(x, x_poisoned, y, n: int = 6, amplify: float | None = None, class_names=None,
                           labels=("clean", "poisoned")):
    """Clean images (top row), their poisoned versions (middle) and the change, amplified (bottom).

    Args:
        x, x_poisoned: images ``N x 3 x 32 x 32`` in [0, 1] (the first ``n`` are shown).
        y: labels (titles).
        amplify: the bottom row shows ``0.5 + amplify * (x_poisoned - x)``; ``None`` (default) rescales the
            change of each image to fill the grey range (``0.5 + 0.5 * d / max|d|``), ``0`` hides the row.
        labels: names of the first two rows (e.g. ``("original", "flipped")``).
    """

    names = class_names or CIFAR10_CLASSES
    if _finite(x, "x").shape != _finite(x_poisoned, "x_poisoned").shape:
        raise ValueError(f"x and x_poisoned must have the same shape, got {tuple(x.shape)} and "
                         f"{tuple(x_poisoned.shape)}")
    n = min(int(n), len(x))
    rows = 2 if amplify == 0 else 3
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.75 * rows), squeeze=False)
    for j in range(n):
        d = x_poisoned[j] - x[j]
        scale = amplify if amplify is not None else 0.5 / max(float(abs(d).max()), 1e-12)
        tag = f"change x{amplify:g}" if amplify is not None else "change (rescaled)"
        panels = ((x[j], labels[0]), (x_poisoned[j], labels[1]), (0.5 + scale * d, tag))[:rows]
        for i, (img, label) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(rgb_image(img), interpolation="nearest")
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

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.8))
    idx = np.asarray(arrays["indices"])
    name = label or (meta or {}).get("settings", {}).get("arch", "")
    ax.plot(idx, arrays["test_acc"], "o-", label=f"{name} clean test accuracy".strip())
    ax.plot(idx, arrays["train_acc"], "s--", alpha=0.7, label=f"{name} train accuracy (poisoned)".strip())
    if "clean_test_acc" in arrays:
        ax.axhline(float(arrays["clean_test_acc"]), color="gray", ls=":", label="trained without poison")
    ax.axhline(0.1, color="k", lw=0.8, ls="-.", label="chance")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=-0.5)
    ax.set_xlim(-0.5, max(float(idx.max()) * 1.3, 20.0))
    ax.set_xlabel("NAD index of the carrier")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax


def plot_energy_nads_vs_fourier(nad_energy, fourier_energy, label: str = "NADs", axes=None):
    """Energy of images along basis directions: per direction (log scale) and cumulative.

    ``nad_energy``: from :func:`nadlib.nad_energy` (NAD order); ``fourier_energy``: from
    :func:`nadlib.fourier_energy_by_radius` (low to high frequency).  Both normalised to sum 1.
    """

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    e_nad = _finite(nad_energy, "nad_energy", nonnegative=True)
    e_f = _finite(fourier_energy, "fourier_energy", nonnegative=True)
    k = np.arange(len(e_nad))
    axes[0].semilogy(k, e_nad, lw=0.8, label=f"along {label} (index order)")
    axes[0].semilogy(np.arange(len(e_f)), e_f, lw=0.8, alpha=0.8, label="along Fourier (low to high frequency)")
    axes[0].set_xlabel("direction index")
    axes[0].set_ylabel("fraction of energy")
    axes[1].plot(k + 1, np.cumsum(e_nad), label=label)
    axes[1].plot(np.arange(1, len(e_f) + 1), np.cumsum(e_f), label="Fourier")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("number of directions (first k)")
    axes[1].set_ylabel("cumulative fraction of energy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def flip_table(results: dict) -> MarkdownTable:
    """A Markdown table of flip experiments: ``{arch: (arrays, meta)}`` -> train/test accuracy of both
    variants, with the data size, profile, device and wall time of each run (``None`` entries are
    reported as not measured)."""
    rows = []
    for arch, item in results.items():
        if item is None:
            rows.append([arch, "–", "not yet measured", None, None, None, None])
            continue
        arrays, meta = item
        s = meta.get("settings", {})
        tr, te = arrays["train_acc"], arrays["test_acc"]
        epochs = ("/".join(str(int(e)) for e in arrays["epochs"]) + " epochs (original/flipped, trained to "
                  f"train acc. {s['until_train_acc']})" if "until_train_acc" in s and "epochs" in arrays
                  else f"{s.get('epochs', '?')} epochs")
        where = (f"{meta.get('profile', '?')}, {s.get('n_train', '?')}/{s.get('n_test', '?')} images, "
                 f"{epochs}, {meta.get('device', '?')}, {float(meta.get('wall_time', 0)):.0f} s")
        rows.append([arch, meta.get("data_source", s.get("source", "?")), float(tr[0]), float(tr[1]),
                     float(te[0]), float(te[1]), where])
    return markdown_table(["architecture", "data", "train acc. original", "train acc. flipped",
                           "test acc. original", "test acc. flipped", "profile, size, device, time"], rows)


# --------------------------------------------------------------------------------------------------
# Chapter 1: comparison with the published map
# --------------------------------------------------------------------------------------------------

def plot_paper_comparison(comparison: dict, ax=None, label: str = "LeNet"):
    """Scatter of our accuracy vs the published one per Fourier direction (from
    :func:`nadlib.paper.compare_with_paper`), with the diagonal and the correlation in the title."""

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0.45, 1.0], [0.45, 1.0], color="gray", lw=0.8, ls="--", label="equal")
    ax.scatter(comparison["paper"], comparison["ours"], s=18, alpha=0.8, label=f"{label}, one direction each")
    ax.set_xlim(0.45, 1.0)
    ax.set_ylim(0.45, 1.0)
    ax.set_xlabel("published test accuracy")
    ax.set_ylabel("our test accuracy")
    ax.set_title(f"{label}: {len(comparison['freqs'])} directions, Pearson r = {comparison['pearson']:.2f}",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return ax

