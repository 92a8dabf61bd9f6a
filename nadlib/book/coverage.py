"""What each chapter shows for each of the paper's five networks: ours (with sizes and device, read from
the artifacts, and whose result it is) or the authors' published data (with its source), or nothing yet and
why.

``coverage_table(chapter)`` is the table at the top of every chapter.  It is computed from the catalogue
(:mod:`nadlib.catalogue`): every entry with a coverage ``label`` is a cell of its networks' rows in the first
chapter that shows it, described from the provenance of the file :func:`nadlib.results.load` would read (yours
first, else the bundled one), or, when there is none, with the command that makes it.  Only the authors'
published data and the chapters' live runs are small tables here, keyed by network.
"""

from __future__ import annotations

from ..catalogue import entries, entry, make_command, networks
from ..models import paper_networks
from ..results import describe_artifact, origin_of
from ..tables import markdown_table

__all__ = ["PUBLISHED", "LIVE", "describe_artifact", "coverage_cells", "coverage_table"]

_PUBLISHED = "the authors' published data (LTS4/neural-anisotropy-directions, Apache-2.0)"
_GPU_MISSING = "not computed: needs a GPU (`python -m nadlib paper`)"

#: chapter -> network -> the authors' published data the chapter shows: (what, which table).
PUBLISHED: dict[int, dict[str, tuple[tuple[str, str], ...]]] = {
    1: {a.name: (("Fourier accuracy map", "dft_accuracies.csv"),) for a in paper_networks() if a.published_key},
    2: {"logreg": (("NADs", "LogReg_NADs.npy"),),
        "lenet": (("NADs and accuracy vs NAD index", "LeNet_NADs.npy, nads.csv"),),
        "vgg11": (("NADs and accuracy vs NAD index", "VGG11_NADs.npy, nads.csv"),),
        "resnet18": (("NADs and accuracy vs NAD index", "ResNet18_NADs.npy, nads.csv"),),
        "densenet121": (("NADs and accuracy vs NAD index", "DenseNet121_NADs.npy, nads.csv"),)},
}

#: chapter -> network -> what the chapter trains live (not a stored result).
LIVE: dict[int, dict[str, str]] = {
    5: {"lenet": "NC1-NC4 on CIFAR-10 and on D(v): trained in the chapter (profile sizes, CPU)"},
}

#: Why a chapter shows nothing for a network.
_ABSENT: dict[int, dict[str, str]] = {
    3: {"logreg": "not in the book's CIFAR-10 experiments", "vgg11": _GPU_MISSING, "resnet18": _GPU_MISSING,
        "densenet121": _GPU_MISSING},
    4: {"logreg": "no activation layer: the signature is empty"},
    5: {"logreg": "no hidden features to collapse", "vgg11": _GPU_MISSING, "resnet18": _GPU_MISSING,
        "densenet121": _GPU_MISSING},
}


def _missing(key: str) -> str:
    e = entry(key)
    how = make_command(key)
    gpu = "paper" in e.make and "default" not in e.make  # only the GPU-sized profile makes it for real
    return f"{'not computed: needs a GPU' if gpu else 'not computed yet'}" + (f" (`{how}`)" if how else "")


def coverage_cells(chapter: int, net: str) -> list[str]:
    """The "this book" cells of one network's row: ``"<label>: <sizes, device>"`` per catalogue entry (``"...;
    your result"`` when it comes from your results folder), or how to make a missing one."""
    cells = []
    for e in entries(chapter, net):
        if e.label is None or e.chapters[0] != chapter:  # listed once, in the first chapter that shows it
            continue
        origin = origin_of(e.key)
        if origin is None:
            cells.append(f"{e.label}: {_missing(e.key)}")
        else:
            mine = f"; your result ({origin.profile} profile)" if origin.source == "yours" and origin.profile else (
                "; your result" if origin.source == "yours" else "")
            cells.append(f"{e.label}: {origin.sizes}{mine}")
    live = LIVE.get(chapter, {}).get(net)
    if live:
        cells.append(live)
    return cells


def coverage_table(chapter: int):
    """The Markdown table of what ``chapter`` (1-5) shows for each of the paper's five networks."""
    chapters = sorted({c for e in entries() for c in e.chapters} | set(LIVE) | set(PUBLISHED))
    if chapter not in chapters:
        raise ValueError(f"chapter must be one of {chapters}, got {chapter!r}")
    rows = []
    for net, name in networks().items():
        ours = coverage_cells(chapter, net) or [_ABSENT.get(chapter, {}).get(net, _GPU_MISSING)]
        published = [f"{what} ({source})" for what, source in PUBLISHED.get(chapter, {}).get(net, ())]
        rows.append([name, "; ".join(ours), "; ".join(published) or "–"])
    return markdown_table(["network", "this book (sizes, device)", "published by the authors"], rows,
                          caption=f"What this chapter shows for each network of the paper. Published: {_PUBLISHED}.")
