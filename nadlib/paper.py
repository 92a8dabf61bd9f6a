"""The authors' published results, to put the book's measurements side by side with them.

Everything here is read from the package folder ``nadlib/published/`` (see its README): data of the
authors of the paper (repository ``LTS4/neural-anisotropy-directions``, Apache-2.0), never the book's
own results.  Every function returns values labelled with :data:`PAPER_SOURCE`-style captions.

* :func:`paper_fourier_accuracy`: test accuracy on D(v) per Fourier direction of the central 16 x 16
  block, for ``logreg, lenet, resnet18, densenet121, vgg11`` (``dft_accuracies.csv``).
* :func:`published_nads`: the first 64 NADs of the five networks (``nads_top64.npz``).
* :func:`published_trainability`: test accuracy on D(u_i) against the NAD index ``i`` for the four CNNs
  (``nads.csv``).
* :func:`compare_with_paper`, :func:`nads_agreement`, :func:`trainability_agreement`: one agreement
  number per figure (correlation of maps, top-k subspace overlap, per-index accuracy difference).

Fourier convention.  The published grid has cells ``(x, y)``, ``x, y = 0..15``, and is mirror-symmetric
in ``x`` (``acc(x, y) = acc(16 - x, y)`` exactly: the experiments were run for ``x = 0..8`` and drawn
mirrored).  It is *not* the central 16 x 16 block of the spectrum: it covers the whole 32 x 32 spectrum
with step 2.  The authors' page shows, for each cell, the image of its direction
(``docs/images/fourier_<x>_<y>.png`` of their repository); read back, cell ``(x, y)`` is the sine wave of
signed frequency ``(kx, ky) = (2 (y - 8), 2 (x - 8))`` (``kx`` along columns, :mod:`nadlib.directions`),
e.g. cell (8, 9) is vertical stripes with two periods, (8, 10) four, (0, 0) the checkerboard (16, 16).
So only even frequencies were published; see :data:`PUBLISHED_STEP`.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from .directions import mirror
from .nads import NADs, subspace_overlap

#: Where the published numbers come from (for captions).
PAPER_SOURCE = ("published by the authors (Ortiz-Jimenez et al., NeurIPS 2020; repository "
                "LTS4/neural-anisotropy-directions, Apache-2.0)")

_DFT_COLUMNS = {"logreg": "acc_lr", "lenet": "acc_ln", "resnet18": "acc_rn", "densenet121": "acc_dn",
                "vgg11": "acc_vgg"}
_NAD_COLUMNS = {"lenet": "ln", "resnet18": "rn", "densenet121": "dn", "vgg11": "vgg"}
#: Networks with published NADs (the first 64 are bundled).
PUBLISHED_NAD_ARCHS = ("lenet", "vgg11", "resnet18", "densenet121", "logreg")


def _file(name: str):
    return resources.files("nadlib.published").joinpath(name)


@lru_cache(maxsize=None)
def _csv(name: str) -> tuple[dict, ...]:
    with _file(name).open("r", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def _check_arch(arch: str, known) -> str:
    if arch not in known:
        raise ValueError(f"no published data for {arch!r}; available: {', '.join(known)}")
    return arch


#: Frequency step between neighbouring cells of the published Fourier grid (see the module docstring).
PUBLISHED_STEP = 2


def published_cell_frequency(x: int, y: int, size: int = 32) -> tuple[int, int]:
    """The frequency ``(kx, ky)`` (this library's convention, ``0 <= kx, ky < size``) of the published
    grid's cell ``(x, y)``: signed ``(2 (y - 8), 2 (x - 8))``."""
    return (PUBLISHED_STEP * (y - 8)) % size, (PUBLISHED_STEP * (x - 8)) % size


def paper_fourier_accuracy(arch: str, size: int = 32) -> dict[tuple[int, int], float]:
    """Published test accuracy (in [0, 1]) of ``arch`` on D(v) per Fourier frequency ``(kx, ky)``.

    Keys use this library's convention (``0 <= kx, ky < size``, one member per symmetric pair): the even
    frequencies of the whole spectrum, ``ky`` signed ``-16 .. 0`` (the rows ``x = 0..8`` that were run) and
    ``kx`` signed ``-16 .. 14`` (:func:`published_cell_frequency`).  Where the published grid holds both
    members of a symmetric pair (rows ``ky = 0`` and ``ky = -16``) the two runs are averaged.
    """
    column = _DFT_COLUMNS[_check_arch(arch, _DFT_COLUMNS)]
    values: dict[tuple[int, int], list[float]] = {}
    for row in _csv("dft_accuracies.csv"):
        x, y = int(row["x"]), int(row["y"])
        if x > 8:  # the mirrored half of the published figure
            continue
        key = published_cell_frequency(x, y, size)
        key = min(key, mirror(*key, size), key=lambda k: (k[1], k[0]))  # one member per pair
        values.setdefault(key, []).append(float(row[column]) / 100)
    return {k: float(np.mean(v)) for k, v in values.items()}


def published_nads(arch: str) -> NADs:
    """The first 64 NADs of ``arch`` published by the authors (secant estimator, 10,000 networks).

    ``eigenvalues`` holds the squares of the published PCA singular values divided by ``n - 1`` with
    ``n = 10,000`` (variances, comparable with :func:`nadlib.estimate_nads`), all 1023 of them.
    """
    arch = _check_arch(arch, PUBLISHED_NAD_ARCHS)
    with _file("nads_top64.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        directions = torch.from_numpy(data[f"{arch}_nads"].astype(np.float32)).reshape(-1, 1, 32, 32)
        singular = torch.from_numpy(data[f"{arch}_singular_values"].astype(np.float64))
    return NADs(directions=directions, eigenvalues=singular ** 2 / (10_000 - 1), n_networks=10_000,
                method="secant (published)", meta={"arch": arch, "source": PAPER_SOURCE})


def published_trainability(arch: str) -> dict:
    """Published test accuracy (in [0, 1]) of ``arch`` trained on D(u_i) for its own NAD ``u_i``.

    Returns ``{"indices": 0..1022, "test_acc": ...}`` for ``lenet, vgg11, resnet18, densenet121``.
    """
    col = _NAD_COLUMNS[_check_arch(arch, _NAD_COLUMNS)]
    rows = _csv("nads.csv")
    return {"indices": np.array([int(r["index"]) for r in rows]),
            "test_acc": np.array([float(r[f"acc_{col}"]) / 100 for r in rows])}


def nads_agreement(nads, arch: str, ks=(1, 5, 10)) -> dict[int, float]:
    """Top-k subspace overlap (:func:`nadlib.subspace_overlap`) of ``nads`` with the published NADs of
    ``arch``: 1 means the same subspace, about ``k / 1024`` for unrelated ones."""
    ours = getattr(nads, "directions", nads)
    theirs = published_nads(arch).directions
    return {int(k): subspace_overlap(ours, theirs, int(k)) for k in ks}


def trainability_agreement(curve: dict, arch: str) -> dict:
    """Our accuracy against NAD index (``{"indices", "test_acc"}``) beside the published one at the same
    indices: ``{"indices", "ours", "paper", "difference"}`` (ours minus published) and ``mean_abs``."""
    pub = published_trainability(arch)
    lookup = dict(zip(pub["indices"].tolist(), pub["test_acc"].tolist()))
    idx = [int(i) for i in np.asarray(curve["indices"]) if int(i) in lookup]
    ours = np.array([float(a) for i, a in zip(np.asarray(curve["indices"]), np.asarray(curve["test_acc"]))
                     if int(i) in lookup])
    paper = np.array([lookup[i] for i in idx])
    diff = ours - paper
    return {"indices": np.array(idx), "ours": ours, "paper": paper, "difference": diff,
            "mean_abs": float(np.abs(diff).mean()) if len(diff) else float("nan")}


def compare_with_paper(grid, arch: str | None = None) -> dict:
    """Match a measured grid (a :class:`nadlib.GridResult`) with the published accuracies.

    Returns a dict with ``freqs`` (the common frequencies, in the grid's keys), ``ours`` and ``paper``
    (accuracies in [0, 1], arrays in the same order), and ``pearson`` (their correlation, NaN for fewer
    than 3 directions).  ``arch`` defaults to the grid's architecture.
    """
    arch = arch or grid.arch
    published = paper_fourier_accuracy(arch, grid.size)
    freqs, ours, paper = [], [], []
    for f, acc in grid.accuracy.items():
        match = published.get(f, published.get(mirror(*f, grid.size)))
        if match is not None:
            freqs.append(f)
            ours.append(acc)
            paper.append(match)
    ours_a, paper_a = np.asarray(ours, dtype=float), np.asarray(paper, dtype=float)
    ok = len(freqs) >= 3 and ours_a.std() > 0 and paper_a.std() > 0
    pearson = float(np.corrcoef(ours_a, paper_a)[0, 1]) if ok else float("nan")
    return {"freqs": freqs, "ours": ours_a, "paper": paper_a, "pearson": pearson}
