"""The README's module map lists every module of nadlib, each on a floor above every module it imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nadlib"
#: Not part of the map: the package's own plumbing.
PLUMBING = {"__init__", "_version"}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name relative to ``nadlib`` (a sub-package as ``pkg``, its
    modules as ``pkg.mod``), without the plumbing."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if name and name not in PLUMBING:
            out[name] = path
    return out


def _readme_floors() -> dict[str, int]:
    floors = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^\| (\d+) \| (.+?) \|", line)
        if m:
            for name in re.findall(r"`([\w.]+)`", m.group(2)):
                floors[name] = int(m.group(1))
    return floors


def _imports(path: Path, package_parts: list[str]) -> set[str]:
    """The nadlib modules ``path`` imports (relative imports, resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package_parts[: len(package_parts) - node.level + 1] if node.level > 1 else package_parts
            target = [*base, *(node.module.split(".") if node.module else [])]
            names = [target] if node.module else [[*target, a.name] for a in node.names]
            found.update(".".join(n) for n in names if n)
    return found


def test_the_readme_map_lists_every_module():
    floors = _readme_floors()
    assert floors, "no module map found in README.md (rows like '| 1 | `config`, ... | ... |')"
    modules = set(_modules())
    top = {m.split(".")[0] for m in modules}
    missing = sorted(m for m in top if m not in floors and m not in PLUMBING)
    unknown = sorted(n for n in floors if n.split(".")[0] not in top)
    assert not missing, f"modules of nadlib missing from the README's module map: {missing}"
    assert not unknown, f"the README's module map names modules that do not exist: {unknown}"


def test_every_module_imports_only_from_floors_below_or_its_own():
    floors = _readme_floors()
    problems = []
    for name, path in _modules().items():
        top = name.split(".")[0]
        if top not in floors:
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
        for dep in _imports(path, list(parts)):
            dep_top = dep.split(".")[0]
            if dep_top in floors and dep_top != top and floors[dep_top] > floors[top]:
                problems.append(f"{name} (floor {floors[top]}) imports {dep_top} (floor {floors[dep_top]})")
    assert not problems, "imports that go up the README's floors:\n  " + "\n  ".join(sorted(set(problems)))


def test_the_contributing_paths_name_tests_that_exist():
    """CONTRIBUTING.md says which test checks each path; every test it names must exist."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    named = re.findall(r"tests/(test_\w+\.py)(?:::(test_\w+))?", text)
    assert named, "CONTRIBUTING.md names no tests"
    missing = []
    for module, test in named:
        path = ROOT / "tests" / module
        if not path.is_file():
            missing.append(module)
        elif test and not re.search(rf"^def {test}\(", path.read_text(), re.M):
            missing.append(f"{module}::{test}")
    assert not missing, f"CONTRIBUTING.md names tests that do not exist: {missing}"
