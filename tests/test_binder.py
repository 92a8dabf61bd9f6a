"""The Binder image (``binder/``) pins what the root ``requirements.txt`` pins, with CPU-only PyTorch.

Only the files are checked here: building the image needs ``download.pytorch.org`` (see binder/README.md).
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: module a chapter imports -> the distribution that provides it
MODULE_DIST = {"matplotlib": "matplotlib", "numpy": "numpy", "torch": "torch", "torchvision": "torchvision",
               "IPython": "ipykernel", "ipywidgets": "ipywidgets", "plotly": "plotly", "tqdm": "tqdm"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_binder_uses_cpu_torch_of_the_pinned_version():
    text = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    root, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    for name in ("torch", "torchvision"):
        assert binder[name] == root[name] + "+cpu", (name, binder[name], root[name])


def test_binder_pins_equal_the_root_pins():
    root, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    differ = {k: (v, root.get(k)) for k, v in binder.items() if k not in ("torch", "torchvision") and root.get(k) != v}
    assert not differ, f"binder/requirements.txt pins differ from requirements.txt (binder, root): {differ}"


def test_binder_covers_nadlib_and_the_chapters_imports():
    binder = _pins(ROOT / "binder" / "requirements.txt")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {_dist(d) for d in deps["dependencies"] + deps["optional-dependencies"]["widgets"]}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                needed |= {MODULE_DIST[n.split(".")[0]] for n in names if n.split(".")[0] in MODULE_DIST}
    missing = sorted(needed - set(binder) - {"jupyterlab"})
    assert not missing, f"binder/requirements.txt lacks {missing}"
    assert "jupyterlab" in binder
    assert "pip install --no-deps" in (ROOT / "binder" / "postBuild").read_text()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_thebe_is_on_and_nothing_sets_the_smoke_profile():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["launch_buttons"]["thebe"] is True
    assert config["launch_buttons"]["binderhub_url"].startswith("https://")
    for path in (ROOT / "binder").iterdir():
        if path.name == "README.md":
            continue
        assert "NADLIB_PROFILE" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("dist", ["jupyterlab", "pooch", "build"])
def test_root_requirements_pin_the_new_tools(dist):
    assert dist in _pins(ROOT / "requirements.txt")
