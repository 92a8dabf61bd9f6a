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
* :func:`fourier_map_entries`, :func:`fourier_map_table`: the published Fourier maps of the five networks
  beside the book's own, with the agreement numbers (behind :func:`nadlib.book.interactive.fourier_map_explorer`).

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
from .grid import GridResult
from .models import REGISTRY, paper_networks
from .nads import NADs, subspace_overlap
from .tables import MarkdownTable, markdown_table

#: Where the published numbers come from (for captions).
PAPER_SOURCE = ("published by the authors (Ortiz-Jimenez et al., NeurIPS 2020; repository "
                "LTS4/neural-anisotropy-directions, Apache-2.0)")



def _file(name: str):
    return resources.files("nadlib.published").joinpath(name)


@lru_cache(maxsize=None)
def _csv(name: str) -> tuple[dict, ...]:
    with _file(name).open("r", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def _published_columns(name: str) -> dict[str, str]:
    """``{network: column}`` of the published table ``name``: the ``acc_<published_key>`` columns that exist."""
    header = _csv(name)[0].keys()
    return {a.name: f"acc_{a.published_key}" for a in paper_networks()
            if a.published_key and f"acc_{a.published_key}" in header}


def _published_nad_archs() -> tuple[str, ...]:
    with _file("nads_top64.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        keys = set(data.files)
    return tuple(a.name for a in paper_networks() if f"{a.name}_nads" in keys)


# what the authors published, per network of the registry (nadlib.models.REGISTRY)
_DFT_COLUMNS = _published_columns("dft_accuracies.csv")
_NAD_COLUMNS = _published_columns("nads.csv")
#: Networks with published NADs (the first 64 are bundled).
PUBLISHED_NAD_ARCHS = _published_nad_archs()


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
            "test_acc": np.array([float(r[col]) / 100 for r in rows])}


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


def compare_with_paper(grid, arch: str | None = None, published: dict | None = None) -> dict:
    """Match a measured grid (a :class:`nadlib.GridResult`) with the published accuracies.

    Returns a dict with ``freqs`` (the common frequencies, in the grid's keys), ``ours`` and ``paper``
    (accuracies in [0, 1], arrays in the same order), and ``pearson`` (their correlation, NaN for fewer
    than 3 directions or when either side is constant).  ``arch`` defaults to the grid's architecture;
    ``published`` (``{(kx, ky): accuracy}``) replaces :func:`paper_fourier_accuracy` of ``arch``.
    """
    arch = arch or grid.arch
    if published is None:
        published = paper_fourier_accuracy(arch, grid.size)
    freqs, ours, paper = [], [], []
    for f, acc in grid.accuracy.items():
        match = published.get(f, published.get(mirror(*f, grid.size)))
        if match is not None:
            freqs.append(f)
            ours.append(acc)
            paper.append(match)
    ours_a, paper_a = np.asarray(ours, dtype=float), np.asarray(paper, dtype=float)
    # constant means max == min: std() of equal values that are not exact binary fractions (0.7, 0.7, 0.7) is
    # ~1e-16, not 0, and the correlation of such rounding noise is a meaningless number, not NaN
    ok = len(freqs) >= 3 and np.ptp(ours_a) > 0 and np.ptp(paper_a) > 0
    pearson = float(np.corrcoef(ours_a, paper_a)[0, 1]) if ok else float("nan")
    return {"freqs": freqs, "ours": ours_a, "paper": paper_a, "pearson": pearson}


# --------------------------------------------------------------------------------------------------
# The five published Fourier maps beside the book's own
# --------------------------------------------------------------------------------------------------

#: The networks of the published Fourier maps, in the order the book shows them.
FOURIER_MAP_ARCHS = tuple(_DFT_COLUMNS)
#: Their names in figures and tables.
NETWORK_NAMES = {a.name: a.display_name for a in paper_networks()}
#: Test samples per direction behind the published maps (the paper's 10,000).
PAPER_N_TEST = 10_000
#: "At chance" margin, in binomial standard deviations of a chance-level test accuracy.
CHANCE_SIGMAS = 3.0
#: Short label of the authors' maps (menus, tables); :data:`PAPER_SOURCE` is the full caption.
PUBLISHED_LABEL = "published (Ortiz-Jimenez et al.)"


def chance_threshold(n_test: int, sigmas: float = CHANCE_SIGMAS) -> float:
    """The accuracy below which a direction counts as *at chance*: ``0.5 + sigmas * 0.5 / sqrt(n_test)``.

    A classifier that has learned nothing labels each of the ``n_test`` balanced test samples correctly
    with probability 1/2, so its test accuracy is ``Binomial(n_test, 1/2) / n_test``: mean 0.5, standard
    deviation ``0.5 / sqrt(n_test)``.  With the default 3 standard deviations and 10,000 test samples
    the threshold is 0.515; a chance-level run exceeds it with probability about 0.13 %.
    """
    n_test = int(n_test)
    if n_test < 1:
        raise ValueError(f"n_test must be a positive number of test samples, got {n_test}")
    return 0.5 + float(sigmas) * 0.5 / np.sqrt(n_test)


def failing_share(accuracies, n_test: int, sigmas: float = CHANCE_SIGMAS) -> float:
    """Fraction of ``accuracies`` at chance (below :func:`chance_threshold`); NaN when there are none."""
    a = np.asarray(list(accuracies), dtype=float)
    return float(np.mean(a < chance_threshold(n_test, sigmas))) if a.size else float("nan")


def _merge_grids(arch: str, grids) -> GridResult:
    """One :class:`GridResult` from one or several grids of ``arch`` (the union of their directions;
    a direction measured twice gets the mean).  ``settings['parts']`` lists each grid's settings."""
    if isinstance(grids, GridResult):
        grids = [grids]
    grids = [g for g in grids if g is not None]
    if not grids:
        raise ValueError(f"no grid given for {arch!r}")
    for g in grids:
        if g.arch != arch:
            raise ValueError(f"a grid of {g.arch!r} was given for {arch!r}")
        if g.size != grids[0].size:
            raise ValueError(f"the grids of {arch!r} have different sizes: {[g.size for g in grids]}")
        if not g.settings.get("n_test"):
            raise ValueError(f"a grid of {arch!r} lacks settings['n_test'] (needed for the chance margin)")
    n_test = {int(g.settings["n_test"]) for g in grids}
    if len(n_test) > 1:
        raise ValueError(f"the grids of {arch!r} have different test-set sizes: {sorted(n_test)}")
    values: dict = {}
    for g in grids:
        for f, a in g.accuracy.items():
            key = f if f in values or mirror(*f, g.size) not in values else mirror(*f, g.size)
            values.setdefault(key, []).append(float(a))
    settings = dict(grids[0].settings) if len(grids) == 1 else {
        "n_test": n_test.pop(), "parts": [dict(g.settings) for g in grids]}
    return GridResult(arch, {f: float(np.mean(v)) for f, v in values.items()}, grids[0].size, settings,
                      sum(g.wall_time for g in grids))


def _describe_grid(grid: GridResult, short: bool = False) -> str:
    """How a book grid was made, in a few words: lattice, directions, profile, sizes, device (``short``:
    lattice, profile and device only)."""
    parts = grid.settings.get("parts") or [grid.settings]

    def joined(key_fn):
        seen = []
        for p in parts:
            v = key_fn(p)
            if v and v not in seen:
                seen.append(v)
        return " + ".join(seen)

    lattice = joined(lambda p: f"band {p['band']}" if p.get("band") else
                     (f"stride {p['stride']}" if p.get("stride") else ""))
    profile = joined(lambda p: f"{p['profile']} profile" if p.get("profile") else "")
    sizes = joined(lambda p: (f"{int(p['n_train']):,} / {int(p['n_test']):,} samples, {p.get('epochs', '?')} ep."
                              if p.get("n_train") else ""))
    device = joined(lambda p: str(p.get("device_name") or p.get("device") or ""))
    if short:
        return ", ".join(w for w in (lattice, profile, device) if w)
    words = [(f"{lattice}: " if lattice else "") + f"{len(grid.accuracy)} directions", profile, sizes, device]
    return ", ".join(w for w in words if w)


def fourier_map_entries(ours: dict | None = None, *, published: dict | None = None,
                        sigmas: float = CHANCE_SIGMAS) -> list[dict]:
    """The Fourier maps of the five networks: the authors' and, where given, the book's, with agreement.

    Args:
        ours: ``{arch: GridResult, a list of them, or None}`` for registered architectures: the book's
            measured grids (an architecture the authors did not publish, e.g. ``lenet_nopool``, gets a book
            entry without agreement, after the five networks) (several grids of one network are merged, e.g. a coarse grid and
            a low-frequency band; ``None`` entries, also inside a list, are skipped).  Their ``settings['n_test']`` sets their chance margin.
        published: ``{arch: {(kx, ky): accuracy}}`` replacing the bundled published maps (for tests);
            default :func:`paper_fourier_accuracy`, measured on :data:`PAPER_N_TEST` test samples.
        sigmas: the *at chance* margin of :func:`chance_threshold`.

    Returns one dict per (network, source) that exists, networks in :data:`FOURIER_MAP_ARCHS` order (then
    the book-only ones in the order given), the published map first: ``arch``, ``network`` (display name), ``source`` (``"published"`` or
    ``"this book"``), ``label`` (:data:`PUBLISHED_LABEL` or ``"this book (<how it was made>)"``),
    ``short_label`` (the same, in fewer words, for menus), ``details`` (how it was measured, in words),
    ``accuracy`` (``{(kx, ky): acc}``, one member per symmetric pair), ``grid`` (the book's merged
    :class:`GridResult`, None for published), ``n_test``, ``threshold`` (at chance below it),
    ``failing`` (share of its directions at chance) and ``agreement`` (the same dict on both entries of
    a network; None without a book map): ``shared`` (number of directions in both maps), ``pearson``
    (:func:`compare_with_paper` over them; NaN when either side is constant, e.g. LogReg's published map
    is 1.0 everywhere), ``mean_abs`` (mean absolute difference), ``failing_ours`` and
    ``failing_published`` (shares at chance over the shared directions, each with its own test-set size),
    ``threshold_ours`` and ``threshold_published`` (the two limits).
    """
    ours = {k: ([g for g in v if g is not None] if isinstance(v, (list, tuple)) else v)
            for k, v in (ours or {}).items()}
    ours = {k: v for k, v in ours.items() if v is not None and v != []}
    unknown = sorted(set(ours) - set(REGISTRY))
    if unknown:
        raise ValueError(f"unknown architecture(s) {unknown} (neither published by the authors, "
                         f"{', '.join(FOURIER_MAP_ARCHS)}, nor registered: {', '.join(REGISTRY)})")
    entries = []
    for arch in FOURIER_MAP_ARCHS:
        name = NETWORK_NAMES[arch]
        pub = (published or {}).get(arch)
        if pub is None:
            pub = paper_fourier_accuracy(arch)
        pub_entry = dict(arch=arch, network=name, source="published", label=PUBLISHED_LABEL,
                         short_label=PUBLISHED_LABEL, accuracy=dict(pub),
                         details=(f"their measurements: {len(pub)} directions, {PAPER_N_TEST:,} test samples "
                                  "each"),
                         grid=None, n_test=PAPER_N_TEST, threshold=chance_threshold(PAPER_N_TEST, sigmas),
                         failing=failing_share(pub.values(), PAPER_N_TEST, sigmas), agreement=None)
        entries.append(pub_entry)
        if arch not in ours:
            continue
        grid = _merge_grids(arch, ours[arch])
        n_test = int(grid.settings["n_test"])
        cmp = compare_with_paper(grid, arch, published=pub)
        agreement = dict(shared=len(cmp["freqs"]), pearson=cmp["pearson"],
                         mean_abs=float(np.abs(cmp["ours"] - cmp["paper"]).mean()) if cmp["freqs"] else float("nan"),
                         failing_ours=failing_share(cmp["ours"], n_test, sigmas),
                         failing_published=failing_share(cmp["paper"], PAPER_N_TEST, sigmas),
                         threshold_ours=chance_threshold(n_test, sigmas),
                         threshold_published=chance_threshold(PAPER_N_TEST, sigmas))
        pub_entry["agreement"] = agreement
        entries.append(dict(arch=arch, network=name, source="this book", label=f"this book ({_describe_grid(grid)})",
                            short_label=f"this book ({_describe_grid(grid, short=True)})",
                            details=_describe_grid(grid),
                            accuracy=dict(grid.accuracy), grid=grid, n_test=n_test,
                            threshold=chance_threshold(n_test, sigmas),
                            failing=failing_share(grid.accuracy.values(), n_test, sigmas), agreement=agreement))
    for arch in (a for a in ours if a not in FOURIER_MAP_ARCHS):  # maps the authors did not publish
        grid = _merge_grids(arch, ours[arch])
        n_test = int(grid.settings["n_test"])
        entries.append(dict(arch=arch, network=REGISTRY[arch].display_name, source="this book",
                            label=f"this book ({_describe_grid(grid)})",
                            short_label=f"this book ({_describe_grid(grid, short=True)})",
                            details=_describe_grid(grid), accuracy=dict(grid.accuracy), grid=grid, n_test=n_test,
                            threshold=chance_threshold(n_test, sigmas),
                            failing=failing_share(grid.accuracy.values(), n_test, sigmas), agreement=None))
    return entries


def _percent(x: float) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.0f}%"


def fourier_map_table(ours: dict | None = None, *, published: dict | None = None,
                      sigmas: float = CHANCE_SIGMAS) -> MarkdownTable:
    """The table behind :func:`nadlib.book.interactive.fourier_map_explorer`, one row per map.

    Columns: network | source (book maps: the short label) | directions (book maps: how many of them the
    published map shares) |
    r with published (Pearson, over the shared directions; "–" when undefined) | failing share (of all
    the map's directions, at chance as in :func:`chance_threshold`) | failing share on the shared
    directions, this book / published.  Arguments as :func:`fourier_map_entries`.
    """
    rows = []
    entries = fourier_map_entries(ours, published=published, sigmas=sigmas)
    for e in entries:
        ag = e["agreement"]
        if e["source"] == "published":
            rows.append([e["network"], PUBLISHED_LABEL, len(e["accuracy"]), None, _percent(e["failing"]), None])
        elif ag is None:  # a map the authors did not publish
            rows.append([e["network"], e["short_label"], len(e["accuracy"]), None, _percent(e["failing"]), None])
        else:
            rows.append([e["network"], e["short_label"], f"{len(e['accuracy'])} ({ag['shared']} shared)", ag["pearson"],
                         _percent(e["failing"]),
                         f"{_percent(ag['failing_ours'])} / {_percent(ag['failing_published'])}"])
    limits = "; ".join(f"{t:.3f} for {n:,} test samples"
                       for n, t in sorted({(e["n_test"], e["threshold"]) for e in entries}))
    return markdown_table(
        ["network", "source", "directions", "r with published", "failing share",
         "failing share on shared directions: this book / published"], rows, digits=2,
        caption=(f"Failing: test accuracy at chance, below 0.5 + {sigmas:g} × 0.5 / √n_test ({limits}).  "
                 f"r: Pearson correlation with the published map over the directions both maps hold (– where "
                 f"undefined: one map is constant).  Source of the published maps: {PAPER_SOURCE}."))


# --------------------------------------------------------------------------------------------------
# the authors' released code beside nadlib (benchmarks/authors_oracle.py, catalogue "lenet/authors-oracle")


def oracle_rows(arrays: dict, meta: dict, kind: str | None = None) -> list[dict]:
    """The rows of an authors-oracle artifact: per direction, the mean test accuracy of the authors' code and
    of nadlib over the seeds, the published value and the difference nadlib − authors' with its standard error.

    The standard error of one accuracy ``p`` on ``n_test`` test samples is ``sqrt(p (1 - p) / n_test)`` (the
    binomial sampling of the test set; the spread over training seeds is not in it -- with one seed it cannot
    be measured), of a mean over ``s`` seeds that divided by ``sqrt(s)``, of a difference the root of the sum
    of squares.  ``kind``: ``"fourier"`` or ``"nad"`` for those rows only.
    """
    n_test = int(meta["n_test"])
    theirs, ours = np.asarray(arrays["authors_acc"], float), np.asarray(arrays["nadlib_acc"], float)
    seeds = theirs.shape[0]
    rows = []
    for j, (name, k) in enumerate(zip(np.asarray(arrays["names"]).tolist(), np.asarray(arrays["kinds"]).tolist())):
        if kind is not None and k != kind:
            continue
        a, b = float(theirs[:, j].mean()), float(ours[:, j].mean())
        se = [np.sqrt(p * (1 - p) / n_test / seeds) for p in (a, b)]
        rows.append(dict(name=str(name), kind=str(k), authors=a, nadlib=b,
                         published=float(np.asarray(arrays["published_acc"], float)[j]), difference=b - a,
                         se=float(np.hypot(*se)), se_authors=float(se[0])))
    return rows


def oracle_table(arrays: dict, meta: dict, kind: str | None = None) -> MarkdownTable:
    """The authors' code / nadlib / published, one row per direction (:func:`oracle_rows`)."""
    rows = oracle_rows(arrays, meta, kind)
    seeds = ", ".join(str(int(s)) for s in np.asarray(arrays["seeds"]))
    return markdown_table(
        ["LeNet trained on", "authors' released code", "nadlib", "published", "nadlib − authors' (± 2 s.e.)"],
        [[r["name"], r["authors"], r["nadlib"], r["published"], f"{r['difference']:+.3f} ± {2 * r['se']:.3f}"]
         for r in rows], digits=3,
        caption=(f"Both codes on the same D(v) recipe (σ 3, ε 1, {int(meta['n_train']):,} training and "
                 f"{int(meta['n_test']):,} test samples, {int(meta['epochs'])} epochs, seed(s) {seeds}); the authors' "
                 f"code is theirs, unchanged (commit {str(meta.get('authors_commit', '?'))[:7]}; run with: "
                 f"{'; '.join(meta.get('accommodations', []))}).  s.e.: binomial, test sampling only.  "
                 f"Published: {PAPER_SOURCE}."))
