"""Figures of Chapter 4: the non-linearity signature (1-D affine fits, signatures by depth, link to NADs)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..affinity import relative_depth
from ..models import REGISTRY

#: Colours of the architecture families in Chapter 4 (pooling-free twins use the same colour, dashed).
FAMILY_COLORS = {a.name: a.colour for a in REGISTRY.values() if not a.is_twin and a.colour}


def _family_style(label: str) -> dict:
    base = label.split(" ")[0].replace("_nopool", "")
    return {"color": FAMILY_COLORS.get(base), "ls": "--" if "nopool" in label else "-"}


def plot_affine_fit_1d(fit, axes=None, bins: int = 60):
    """Two panels for an :class:`nadlib.affinity.AffineFit1D`: the activation ``f`` and the affine OT map
    ``T`` over the inputs (left), and the two distributions that the OT cost compares, ``T(X)`` and
    ``Y = f(X)`` (right).  Returns the axes."""

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    ax0, ax1 = axes
    order = np.argsort(fit.x)
    x, y, tx = fit.x[order], fit.y[order], fit.tx[order]
    ax0.hist(x, bins=bins, density=True, color="0.85", label="input density")
    ax0b = ax0.twinx()
    ax0b.plot(x, y, color="C3", lw=2, label=f"f = {fit.name}")
    ax0b.plot(x, tx, color="C0", lw=2, ls="--", label=f"T(x) = {fit.slope:.2f} x {fit.intercept:+.2f}")
    ax0b.legend(fontsize=8, loc="upper left")
    ax0.set_yticks([])
    ax0.set_xlabel(f"x ~ N({fit.mean:g}, {fit.std:g}²)")
    ax0.set_title(f"{fit.name}: the map and its affine OT fit", fontsize=9)
    lo, hi = min(y.min(), tx.min()), max(y.max(), tx.max())
    edges = np.linspace(lo, hi + 1e-12, bins + 1)
    ax1.hist(tx, bins=edges, density=True, alpha=0.5, color="C0", label="T(X) (affine)")
    ax1.hist(y, bins=edges, density=True, alpha=0.5, color="C3", label="Y = f(X)")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    ax1.set_title(f"affinity score rho = {fit.rho:.3f}", fontsize=9)
    ax1.set_xlabel("output value")
    for ax in axes:
        ax.grid(alpha=0.3)
    ax0.figure.tight_layout()
    return axes


def plot_rho_curves(means, curves: dict, ax=None, xlabel: str = "mean of the Gaussian input (std 1)"):
    """Affinity score against the input mean, one line per activation (``curves``: name -> scores)."""

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for name, rho in curves.items():
        ax.plot(means, rho, marker="o", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("affinity score rho")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _rho_matrix(sigs):
    """``seeds x layers`` array from a list of :class:`~nadlib.affinity.Signature` (or one)."""

    sigs = sigs if isinstance(sigs, (list, tuple)) else [sigs]
    return np.stack([np.asarray(s.rho) for s in sigs])


def plot_signatures(signatures: dict, ax=None, title: str | None = None, band: bool = True):
    """Affinity score by relative depth (layer ``i`` of ``L`` at ``(i + 1) / L``), as Bouniot et al. plot it.

    ``signatures`` maps a label to a :class:`~nadlib.affinity.Signature` or a list of them (one per
    random initialisation): the line is the mean over them, the band their min-max range.  Labels
    containing ``nopool`` are dashed in the colour of their family.
    """

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    for label, sigs in signatures.items():
        rho = _rho_matrix(sigs)
        depth = relative_depth(rho.shape[1])
        style = _family_style(label)
        n = f", {len(rho)} nets" if len(rho) > 1 else ""
        ax.plot(depth, rho.mean(0), marker="o", ms=3, lw=1.5, label=f"{label} ({rho.shape[1]} layers{n})",
                **style)
        if band and len(rho) > 1:
            ax.fill_between(depth, rho.min(0), rho.max(0), alpha=0.15, color=style["color"])
    ax.set_xlabel("relative depth of the activation layer")
    ax.set_ylabel("affinity score rho")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_signature_pairs(signatures: dict, families=("lenet", "vgg11", "resnet18", "densenet121"),
                         reference: dict | None = None):
    """One panel per family: the signature with pooling (solid) and without (dashed).

    ``reference`` optionally maps a family to ``(depth, rho)`` of a reference curve (drawn in grey),
    e.g. the score a ReLU gets on Gaussian data of the same widths and sample size.
    """

    present = [f for f in families if f in signatures]
    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 3.0), sharey=True,
                             squeeze=False)
    for ax, fam in zip(axes[0], present):
        pair = {k: signatures[k] for k in (fam, f"{fam}_nopool") if k in signatures}
        plot_signatures(pair, ax=ax, title=fam)
        if reference and fam in reference:
            d, r = reference[fam]
            ax.plot(d, r, color="0.5", lw=1, ls=":", label="ReLU on Gaussian data")
        ax.legend(fontsize=6, loc="lower right")
        ax.set_xlabel("relative depth")
        ax.set_ylim(0.4, 1.02)
    for ax in axes[0][1:]:
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_nad_link(low_freq: dict, mean_rho: dict, ax=None):
    """Scatter of the mean affinity score of random networks (per seed: dots; mean: marker with the
    label) against the low-frequency energy of the architecture's NADs."""

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    for label, lf in low_freq.items():
        vals = np.atleast_1d(np.asarray(mean_rho[label], dtype=float))
        style = _family_style(label)
        ax.scatter(np.full(len(vals), lf), vals, s=12, alpha=0.5, color=style["color"])
        ax.plot(lf, vals.mean(), "D", color=style["color"], ms=7)
        ax.annotate(label, (lf, vals.mean()), xytext=(6, 4), textcoords="offset points", fontsize=8)
    ax.margins(x=0.2, y=0.15)
    ax.set_xlabel("Fourier energy of the top-10 NADs within radius 4 of DC")
    ax.set_ylabel("mean affinity score over layers")
    ax.grid(alpha=0.3)
    return ax
