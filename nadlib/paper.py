"""Numbers published with the paper, to put our measurements side by side with them.

Fourier-direction accuracies
----------------------------
The authors' project page (repository ``LTS4/neural-anisotropy-directions``, file
``docs/data/dft_accuracies.csv``, Apache-2.0) lists the test accuracy (%) of LogReg, LeNet,
ResNet-18, DenseNet-121 and VGG-11 trained on D(v) with the paper's recipe, for the Fourier
directions of the central 16 x 16 block of frequencies.  Its grid is mirror-symmetric in the
horizontal index (the experiments were run for ``kx = 0 .. 8`` and drawn mirrored), so the table below
keeps one half: row ``r`` is the vertical frequency ``ky = r - 8`` and column ``c`` the horizontal
frequency ``kx = 8 - c`` (our convention, :mod:`nadlib.directions`).  LogReg is 100.0 everywhere.
Values are rounded to 0.1 %.  LeNet and ResNet-18 are transcribed; the other columns are not.
"""

from __future__ import annotations

import numpy as np

from .directions import mirror

# rows: ky = -8 .. 7; columns: kx = 8, 7, ..., 0
_LENET = (
    (50.3, 50.7, 50.8, 49.8, 51.0, 50.6, 50.2, 50.8, 51.1),
    (50.4, 50.2, 50.0, 49.6, 50.3, 51.0, 52.8, 55.9, 74.4),
    (49.7, 50.6, 50.0, 50.9, 51.0, 50.5, 61.7, 69.3, 77.4),
    (50.5, 49.8, 50.8, 50.4, 51.4, 50.7, 55.0, 61.7, 70.1),
    (50.8, 50.0, 50.8, 50.5, 50.9, 50.3, 50.2, 50.6, 50.4),
    (50.7, 50.0, 51.7, 51.1, 50.0, 50.8, 58.7, 68.9, 70.3),
    (50.0, 51.8, 53.9, 52.9, 50.1, 57.3, 69.3, 74.8, 81.0),
    (50.1, 64.8, 70.0, 57.6, 49.8, 66.4, 75.5, 78.9, 81.6),
    (49.6, 55.9, 74.8, 58.8, 50.5, 67.4, 78.8, 80.4, 72.5),
    (51.1, 53.2, 66.4, 60.8, 50.6, 64.9, 74.3, 78.3, 81.2),
    (50.7, 53.2, 62.3, 50.5, 50.2, 57.4, 68.2, 73.8, 79.4),
    (50.6, 51.1, 51.2, 50.4, 50.5, 50.8, 54.8, 66.7, 74.4),
    (50.7, 50.8, 50.3, 50.4, 50.4, 50.2, 51.0, 49.9, 50.1),
    (50.8, 50.3, 50.8, 50.4, 50.2, 50.6, 52.0, 58.7, 59.5),
    (50.1, 50.7, 49.8, 50.4, 50.2, 51.4, 56.9, 68.3, 75.2),
    (49.5, 51.0, 51.1, 51.0, 49.9, 50.0, 52.6, 57.6, 70.0),
)
_RESNET18 = (
    (100.0, 98.6, 100.0, 97.3, 100.0, 97.4, 99.9, 98.6, 100.0),
    (99.8, 51.0, 95.2, 50.9, 97.0, 50.6, 96.7, 50.8, 99.2),
    (100.0, 97.4, 99.8, 95.8, 99.9, 96.5, 99.9, 97.0, 100.0),
    (99.3, 50.2, 96.2, 50.7, 97.0, 52.4, 93.7, 51.7, 99.5),
    (100.0, 98.0, 99.8, 97.3, 100.0, 96.7, 99.9, 97.5, 100.0),
    (99.3, 50.9, 96.9, 51.8, 98.3, 50.9, 96.8, 50.8, 99.5),
    (100.0, 98.0, 99.8, 97.7, 99.8, 97.5, 99.8, 97.1, 100.0),
    (99.3, 51.2, 96.5, 51.3, 97.1, 51.1, 95.6, 51.4, 99.9),
    (100.0, 98.2, 99.9, 98.0, 100.0, 96.8, 99.9, 98.7, 99.9),
    (99.4, 51.2, 96.8, 51.5, 97.3, 51.0, 97.3, 51.3, 99.8),
    (100.0, 96.8, 99.9, 95.5, 99.9, 96.7, 99.9, 96.7, 100.0),
    (99.1, 50.5, 95.3, 50.7, 96.9, 51.8, 96.1, 51.6, 99.8),
    (100.0, 97.6, 99.7, 96.6, 100.0, 97.4, 99.8, 98.0, 100.0),
    (99.4, 51.0, 95.2, 51.7, 96.7, 49.9, 97.6, 51.1, 99.7),
    (100.0, 97.0, 99.9, 96.0, 99.9, 95.4, 99.8, 97.3, 100.0),
    (99.6, 51.3, 97.5, 51.6, 98.2, 52.6, 96.4, 51.0, 99.6),
)
_TABLES = {"lenet": _LENET, "resnet18": _RESNET18}

#: Where the published numbers come from (for captions).
PAPER_SOURCE = ("Ortiz-Jimenez et al. (NeurIPS 2020), accuracies published on the authors' project page "
                "(LTS4/neural-anisotropy-directions, docs/data/dft_accuracies.csv, Apache-2.0)")


def paper_fourier_accuracy(arch: str, size: int = 32) -> dict[tuple[int, int], float]:
    """Published test accuracy (in [0, 1]) of ``arch`` on D(v) per Fourier frequency ``(kx, ky)``.

    Keys use this library's convention (``0 <= kx, ky < size``); the block covers ``kx = 0 .. 8`` and
    signed ``ky = -8 .. 7``.  Where the published grid holds both members of a symmetric pair (on the
    ``kx = 0`` column) the two runs are averaged.  ``logreg`` is 1.0 on the same block.
    """
    if arch == "logreg":
        table = np.full((16, 9), 100.0)
    elif arch in _TABLES:
        table = np.asarray(_TABLES[arch])
    else:
        raise ValueError(f"no published Fourier accuracies for {arch!r}; available: logreg, {', '.join(_TABLES)}")
    values: dict[tuple[int, int], list[float]] = {}
    for row in range(16):
        for col in range(9):
            key = (8 - col, (row - 8) % size)
            key = min(key, mirror(*key, size), key=lambda k: (k[1], k[0]))  # one member per pair
            values.setdefault(key, []).append(table[row, col] / 100)
    return {k: float(np.mean(v)) for k, v in values.items()}


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
