"""Committed chapters are clean: no outputs, no library code, standard first cells; the TOC is complete.

The book executes the chapters at build time (``execute_notebooks: cache``), so a committed output
would only be stale.  Chapters call ``nadlib`` instead of defining functions or classes, so that the
code the book shows is the code that is tested.  Fix a failure with::

    .venv/bin/jupyter nbconvert --clear-output --inplace book/*.ipynb

The first code cell installs nadlib on Colab (written by ``tools/sync_chapters.py``; fix a failure with
``python tools/sync_chapters.py``), the second prints the environment.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from booktoc import toc_pages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_chapters  # noqa: E402
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def _python(source: str) -> ast.Module:
    """Parse a code cell, turning IPython syntax (``%magic``, ``!cmd``) into plain Python first."""
    return ast.parse(TransformerManager().transform_cell(source))


def test_every_toc_entry_exists():
    missing = [f for f in toc_pages()
               if not any((ROOT / f"{f}{ext}").is_file() for ext in (".ipynb", ".md", ""))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_chapter_is_in_the_toc():
    listed = set(toc_pages())
    orphans = [str(p.relative_to(ROOT)) for p in CHAPTERS
               if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not orphans, f"notebooks in book/ that _toc.yml does not list (they would not be built): {orphans}"


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks found in book/"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    problems = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append("metadata.kernelspec.name must be 'python3' (nbval and the book run that kernel)")
    if "widgets" in nb.metadata:
        problems.append("saved widget state in metadata.widgets (clear outputs before committing)")
    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for i, cell in code_cells:
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell.execution_count}")
        try:
            tree = _python(cell.source)
        except SyntaxError as err:
            problems.append(f"cell {i} is not valid Python: {err}")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                problems.append(f"cell {i} defines {type(node).__name__} {node.name!r}: "
                                "library code belongs in nadlib, chapters only call it")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_first_code_cell_installs_nadlib_when_missing(path: Path):
    nb = nbformat.read(path, as_version=4)
    why = sync_chapters.out_of_sync(nb, sync_chapters.install_cell_source())
    assert why is None, f"{path.name}: {why}; run `python tools/sync_chapters.py`"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_second_code_cell_describes_the_environment(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 2, f"{path.name} needs the install cell and the environment cell"
    tree = _python(code[1].source)
    imports_nadlib = any(isinstance(n, ast.Import) and any(a.name == "nadlib" for a in n.names)
                         for n in ast.walk(tree))
    prints_env = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
        and any(isinstance(a, ast.Call) and isinstance(a.func, ast.Attribute)
                and a.func.attr == "describe_environment"
                and isinstance(a.func.value, ast.Name) and a.func.value.id == "nadlib" for a in n.args)
        for n in ast.walk(tree))
    assert imports_nadlib and prints_env, (
        f"{path.name}: the second code cell (after the install cell) must be "
        f"`import nadlib; print(nadlib.describe_environment())` (it prints version, profile and device); "
        f"found:\n{code[1].source}")
