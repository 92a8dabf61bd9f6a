"""``tools/sync_chapters.py`` writes each chapter's Colab install cell from ``_config.yml`` and the version:
inserted before the first code cell, updated in place, idempotent, detected when stale.  Runs on copies
of the chapters in a temporary folder (the committed chapters are checked by test_notebooks_clean.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nadlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bookconfig  # noqa: E402
import sync_chapters  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.fixture
def copies(tmp_path):
    """The chapters as they would be without the install cell (what the tool has to insert)."""
    for p in CHAPTERS:
        nb = nbformat.read(p, as_version=4)
        nb.cells = [c for c in nb.cells if c.get("id") != sync_chapters.CELL_ID]
        nbformat.write(nb, tmp_path / p.name)
    return sorted(tmp_path.glob("*.ipynb"))


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "sync_chapters.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_requirement_comes_from_config_and_version():
    assert bookconfig.package_version() == nadlib.__version__
    url = bookconfig.repository_url()
    assert url.startswith("https://") and not url.endswith("/")
    assert sync_chapters.requirement() == f"nadlib[widgets] @ git+{url}@v{nadlib.__version__}"
    assert sync_chapters.requirement() in sync_chapters.install_cell_source()


def test_install_cell_is_a_no_op_when_nadlib_is_importable(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: calls.append(a))
    exec(compile(sync_chapters.install_cell_source(), "<install cell>", "exec"), {})
    assert calls == []
    ast.parse(sync_chapters.install_cell_source())


def test_install_cell_installs_when_nadlib_is_missing(monkeypatch):
    import importlib.util
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **k: calls.append(cmd))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nadlib" else real(name, *a))
    exec(compile(sync_chapters.install_cell_source(), "<install cell>", "exec"), {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", sync_chapters.requirement()]]


def test_sync_inserts_then_is_idempotent(copies):
    before = {p: nbformat.read(p, as_version=4) for p in copies}
    assert _run("--check", *copies).returncode == 1  # no install cell yet
    first = _run(*copies)
    assert first.returncode == 0, first.stderr
    after = {p: p.read_bytes() for p in copies}
    second = _run(*copies)
    assert second.returncode == 0 and second.stdout == ""
    assert {p: p.read_bytes() for p in copies} == after
    assert _run("--check", *copies).returncode == 0
    for p in copies:
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].id == sync_chapters.CELL_ID and code[0].metadata["tags"] == ["remove-input"]
        assert code[0].source == sync_chapters.install_cell_source()
        old = before[p]
        assert [c.source for c in nb.cells if c.id != sync_chapters.CELL_ID] == [c.source for c in old.cells]
        assert nb.cells[0].cell_type == "markdown"  # the title stays first


def test_a_stale_cell_is_detected_and_replaced(copies):
    _run(*copies)
    path = copies[0]
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.id == sync_chapters.CELL_ID)
    cell.source = cell.source.replace("@v", "@v9")
    cell.metadata["tags"] = ["remove-cell"]
    nbformat.write(nb, path)
    check = _run("--check", path)
    assert check.returncode == 1 and path.name in check.stderr
    assert _run(path).returncode == 0
    nb = nbformat.read(path, as_version=4)
    assert sync_chapters.out_of_sync(nb, sync_chapters.install_cell_source()) is None
    assert sum(c.id == sync_chapters.CELL_ID for c in nb.cells) == 1


def test_a_moved_cell_goes_back_to_the_top():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 1")]
    src = sync_chapters.install_cell_source("https://example.org/r", "1.2.3")
    assert sync_chapters.sync_notebook(nb, src)
    nb.cells.append(nb.cells.pop(1))  # move the install cell to the end
    assert sync_chapters.out_of_sync(nb, src) == "the first code cell is not the install cell"
    assert sync_chapters.sync_notebook(nb, src)
    assert [c.source for c in nb.cells] == ["# T", src, "x = 1"]
    assert "nadlib[widgets] @ git+https://example.org/r@v1.2.3" in src
