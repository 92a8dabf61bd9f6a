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


def _is_code_span(node: ast.JoinedStr) -> bool:
    """``f"`{x}`"``: one value as inline code, no prose (a glued text would typeset its ``--`` as a dash)."""
    v = node.values
    return (len(v) == 3 and isinstance(v[1], ast.FormattedValue)
            and all(isinstance(c, ast.Constant) and c.value == "`" for c in (v[0], v[2])))


def _builds_a_string(node: ast.AST) -> bool:
    """``node`` is a string built at run time: an f-string, ``"..." % x``, ``"..." + s`` or ``"...".format()``."""
    if isinstance(node, ast.JoinedStr):
        return not _is_code_span(node)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _is_string_expr(node)
    return False


def _is_string_expr(node: ast.AST) -> bool:
    """A (sub)expression that evaluates to a string: a literal, an f-string, ``.join``/``.format``, or
    a concatenation or ``%``-formatting of those."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("join", "format")
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _is_string_expr(node.left) or _is_string_expr(node.right)
    return False


def _markdown_prose_calls(tree: ast.AST) -> list[int]:
    """Lines of the ``Markdown(...)`` calls whose first argument builds a string at run time."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "Markdown" and any(_builds_a_string(n) for n in ast.walk(node.args[0])):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_prose_is_markdown_not_python(path: Path):
    """A chapter tells its story in Markdown cells; numbers are computed in a hidden cell and cited with
    MyST-NB glue (``nadlib.glue("name", value)``, then ``{glue:text}`name:.3f``` in the Markdown cell
    after it).  Prose assembled in Python (``display(Markdown(f"..."))``) is neither searchable nor
    editable as text, and hides its wording inside code.  Tables (``nadlib.markdown_table``) are fine, and
    so is one value as inline code, ``Markdown(f"`{command}`")``, glued and cited with ``{glue:md}``."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for line in _markdown_prose_calls(_python(cell.source)):
            problems.append(f"cell {i}, line {line}: Markdown(...) of a string built in Python "
                            "(f-string, %, + or .format): write the prose in a Markdown cell and cite the "
                            "numbers with nadlib.glue / {glue:text}")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)
