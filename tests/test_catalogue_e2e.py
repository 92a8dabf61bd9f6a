"""End to end: what ``python -m nadlib paper`` writes is what the chapters show.

``python -m nadlib paper --profile smoke --out-dir <empty folder>`` makes every catalogue entry the smoke
profile can make; then every chapter is executed with that folder as the reader's results folder
(``$NADLIB_RESULTS``) and a load log (``$NADLIB_LOAD_LOG``, one JSON line per :func:`nadlib.results.load` in
the chapter's kernel).  Every entry a chapter shows that the smoke profile can make must have been loaded by
that chapter from that folder, at the smoke profile's canonical name; everything else it loads comes from
the bundled results.  A planner that wrote other names than the chapters read (the split this catalogue
removed) fails here.

The chapters' artifact checks (cells labelled ``# artifact check(s) of ...``, see tests/test_artifact_checks.py)
assert the book's claims at the sizes of the bundled results; smoke-sized results cannot carry them, so their
``assert`` statements are left out here (the rest of those cells runs).  ``make test`` runs the chapters, asserts
included, against the bundled results.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from nadlib import catalogue as C

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9]*.ipynb"))

pytestmark = [pytest.mark.slow, pytest.mark.book]


def _without_asserts(source: str) -> str:
    """A labelled artifact-check cell with its ``assert`` statements replaced by ``pass``."""
    tree = ast.parse(TransformerManager().transform_cell(source))

    class Drop(ast.NodeTransformer):
        def visit_Assert(self, node):
            return ast.copy_location(ast.Pass(), node)

    return ast.unparse(ast.fix_missing_locations(Drop().visit(tree)))


def _comments(source: str) -> str:
    return " ".join(line.strip().lstrip("#") for line in source.splitlines() if line.strip().startswith("#"))


def _execute(path: Path, env: dict) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "artifact check" in _comments(cell.source):
            cell.source = _without_asserts(cell.source)
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "nadlib-results"
    env = {k: v for k, v in os.environ.items() if k not in ("NADLIB_RESULTS", "NADLIB_LOAD_LOG")}
    env.update(NADLIB_PROFILE="smoke", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-m", "nadlib", "paper", "--profile", "smoke", "--out-dir", str(out),
                          "--device", "cpu", "--quiet"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "complete:" in run.stdout
    return out


def test_the_smoke_run_writes_every_smoke_entry_under_its_catalogue_name(smoke_results):
    names = sorted(p.name for p in smoke_results.iterdir())
    assert names == sorted(C.canonical_name(e.key, "smoke") for e in C.select(None, "smoke"))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_each_chapter_shows_the_readers_results(smoke_results, path, tmp_path):
    log = tmp_path / "loads.jsonl"
    _execute(path, {"NADLIB_RESULTS": str(smoke_results), "NADLIB_PROFILE": "smoke", "NADLIB_LOAD_LOG": str(log)})
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    chapter = int(path.name[:2])
    by_key: dict[str, list[dict]] = {}
    for r in records:
        by_key.setdefault(r["key"], []).append(r)
    expected = {e.key for e in C.entries(chapter) if "smoke" in e.make}
    assert expected <= set(by_key), f"{path.name} never loads {sorted(expected - set(by_key))}"
    for key, loads in by_key.items():
        for r in loads:
            if key in expected:
                assert (r["source"], r["profile"]) == ("yours", "smoke"), (key, r)
                assert Path(r["path"]) == smoke_results / C.canonical_name(key, "smoke"), (key, r)
            else:  # nothing of the smoke run stands for it: the bundled file
                assert r["source"] == "bundled", (key, r)
        assert chapter in C.entry(key).chapters, f"{path.name} loads {key}, which the catalogue does not list for it"
