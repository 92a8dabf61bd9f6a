"""Insert or update the install cell at the top of every chapter (Colab, Binder-less or bare Jupyter).

The first code cell of each chapter installs ``nadlib`` at the book's version, from the book's
repository, *only when it is not importable*: locally (``make book``, ``make lab``, Binder) it does
nothing; on Colab or a bare Jupyter it runs ``pip install "nadlib[widgets] @ git+<url>@v<version>"``.
``<url>`` is ``repository.url`` of ``_config.yml`` (the one place the repository URL is set) and
``<version>`` is ``nadlib/_version.py``'s ``__version__``; a release is therefore the tag ``v<version>``.
The cell carries the tag ``remove-input``: the rendered book hides it, but it stays in the notebook, so
Colab runs it.

Usage (idempotent: a second run changes nothing)::

    python tools/sync_chapters.py                 # update book/*.ipynb
    python tools/sync_chapters.py --check         # exit 1 and list the chapters that are out of sync
    python tools/sync_chapters.py path/to/a.ipynb # only these notebooks

Run it after changing ``repository.url`` or the version; ``tests/test_notebooks_clean.py`` fails while a
chapter's install cell is missing or stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bookconfig import ROOT, package_version, repository_url  # noqa: E402

#: ``id`` of the install cell in every chapter (how the tool recognises it).
CELL_ID = "install-nadlib"
#: Tags of the install cell: hidden in the rendered book, still in the notebook (Colab runs it).
CELL_TAGS = ["remove-input"]
MARKER = "# Colab / bare Jupyter: install nadlib"


def requirement(url: str | None = None, version: str | None = None) -> str:
    """The pip requirement the install cell uses, e.g. ``nadlib[widgets] @ git+https://...@v0.1.0``."""
    url = url or repository_url()
    version = version or package_version()
    return f"nadlib[widgets] @ git+{url}@v{version}"


def install_cell_source(url: str | None = None, version: str | None = None) -> str:
    """The exact source of the install cell for ``url`` and ``version`` (defaults: this repository)."""
    return (f"{MARKER} (the book's version) when it is missing; does nothing locally.\n"
            "# Written by tools/sync_chapters.py from _config.yml (repository.url) and nadlib/_version.py.\n"
            "import importlib, importlib.util, subprocess, sys\n"
            "if importlib.util.find_spec(\"nadlib\") is None:\n"
            f"    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",\n"
            f"                           \"{requirement(url, version)}\"])\n"
            "    importlib.invalidate_caches()")


def _is_install_cell(cell) -> bool:
    return cell.cell_type == "code" and (cell.get("id") == CELL_ID or cell.source.startswith(MARKER))


def sync_notebook(nb, source: str) -> bool:
    """Make ``nb``'s first code cell the install cell with ``source``; returns True when ``nb`` changed."""
    for i, cell in enumerate(nb.cells):
        if _is_install_cell(cell):
            changed = (cell.source != source or cell.metadata.get("tags") != CELL_TAGS or cell.get("id") != CELL_ID
                       or any(c.cell_type == "code" for c in nb.cells[:i]) or cell.outputs
                       or cell.execution_count is not None)
            if not changed:
                return False
            del nb.cells[i]
            break
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(CELL_TAGS)})
    cell.id = CELL_ID
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, cell)
    return True


def out_of_sync(nb, source: str) -> str | None:
    """Why ``nb``'s install cell is missing or stale (None when it is in sync)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not _is_install_cell(code[0]):
        return "the first code cell is not the install cell"
    cell = code[0]
    if cell.source != source:
        return "its install cell differs from the one _config.yml and the version give"
    if cell.metadata.get("tags") != CELL_TAGS:
        return f"its install cell must carry the tags {CELL_TAGS}, has {cell.metadata.get('tags')}"
    if cell.get("id") != CELL_ID:
        return f"its install cell must have the id {CELL_ID!r}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a chapter is out of sync")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    source = install_cell_source()
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            why = out_of_sync(nb, source)
            if why:
                stale.append(f"{path}: {why}")
        elif sync_notebook(nb, source):
            nbformat.validate(nb)
            nbformat.write(nb, path)
            print(f"updated {path}")
    if stale:
        print("out of sync (run `python tools/sync_chapters.py`):\n  " + "\n  ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
