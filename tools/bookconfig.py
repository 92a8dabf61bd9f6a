"""Settings the repository tools share: the book's repository URL and the package version.

The repository URL has ONE home, ``_config.yml`` (``repository.url``); the version has one home,
``nadlib/_version.py``.  ``tools/sync_chapters.py`` and ``tools/results_registry.py`` derive everything
else (the chapters' install cell, the download URL of the large artifacts) from these two.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def repository_url(root: Path = ROOT) -> str:
    """``repository.url`` of ``<root>/_config.yml``, without a trailing slash or ``.git``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    url = str((config.get("repository") or {}).get("url") or "").strip()
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{root / '_config.yml'}: repository.url must be an http(s) URL, got {url!r}")
    url = url.rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def package_version(root: Path = ROOT) -> str:
    """``__version__`` of ``<root>/nadlib/_version.py``, read without importing the package."""
    tree = ast.parse((root / "nadlib" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ValueError(f"{root / 'nadlib' / '_version.py'} defines no __version__")


def release_ref(root: Path = ROOT) -> str:
    """The git ref a published version lives at: the tag ``v<version>``."""
    return f"v{package_version(root)}"
