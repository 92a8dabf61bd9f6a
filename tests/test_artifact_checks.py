"""Every artifact check of the chapters names live counterparts that exist.

A hidden chapter cell whose asserts read stored results (``results/*.npz``, the published data of
``nadlib.paper``) is labelled by a leading comment ``# artifact check(s) of <artifacts>; live
counterpart(s): tests/<file>.py::<test>`` (or says why a claim has no live test, e.g. a GPU-only run).
This test reads those comments and fails when a named test file or test function does not exist (a
renamed or deleted test), or when a label names no counterpart and gives no reason.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
#: ``tests/<file>.py`` or ``tests/<file>.py::<test function>`` in a comment.
REFERENCE = re.compile(r"tests/(test_\w+\.py)(?:::(\w+))?")


def _comments(source: str) -> str:
    """The cell's comment lines, joined into one text (the ``#`` and indentation removed)."""
    return " ".join(line.strip().lstrip("#").strip() for line in source.splitlines()
                    if line.strip().startswith("#"))


def artifact_checks(path: Path) -> list[tuple[int, str]]:
    """``(cell index, comment text)`` of every code cell of a chapter labelled as an artifact check."""
    nb = nbformat.read(path, as_version=4)
    return [(i, _comments(c.source)) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "artifact check" in _comments(c.source)]


@lru_cache(maxsize=None)
def _test_functions(file: str) -> frozenset[str]:
    tree = ast.parse((ROOT / "tests" / file).read_text())
    return frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def test_the_chapters_have_labelled_artifact_checks():
    assert sum(len(artifact_checks(p)) for p in CHAPTERS) >= 10


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_artifact_checks_name_live_counterparts_that_exist(path: Path):
    problems = []
    for i, text in artifact_checks(path):
        refs = REFERENCE.findall(text)
        if not refs and "no live test" not in text:
            problems.append(f"cell {i}: names no live counterpart (tests/<file>.py::<test>) and says "
                            f"no 'no live test': {text[:120]!r}")
        for file, name in refs:
            if not (ROOT / "tests" / file).is_file():
                problems.append(f"cell {i}: tests/{file} does not exist")
            elif name and name not in _test_functions(file):
                problems.append(f"cell {i}: tests/{file} has no test {name!r}")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)
