"""nadlib builds as a wheel and an sdist that carry their results; installed from the wheel it works from
any folder.

* fast: the wheel (built offline from this checkout with the current environment's setuptools) lists the
  packaged results, the registry of the large ones and the published data, and leaves the large NAD
  files out.
* slow: ``python -m build`` writes wheel and sdist; a fresh venv (``python3.11 -m venv``; PyTorch etc.
  from the package index, skipped with the reason when that fails, e.g. offline) installs the wheel; from
  a temporary folder ``nadlib --help`` and ``python -m nadlib --help`` work, ``nadlib.results_dir()`` is
  the installed package data, and a large NAD file is downloaded through ``nadlib.result_path`` from a
  local HTTP server (``$NADLIB_RESULTS_URL``), SHA-256 checked.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import nadlib
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import results_registry  # noqa: E402

#: What the fresh venv installs before the wheel (the versions of requirements.txt; torch from its mirror).
VENV_DEPS = ["torch==2.14.1", "torchvision==0.29.1", "numpy==2.4.6", "tqdm==4.70.1", "matplotlib==3.11.2",
             "pooch==1.9.0"]
VENV_TIMEOUT_S = 1200
#: What a chapter needs beyond the core: the ``widgets`` extra, and nbformat, which every Jupyter brings and
#: plotly's notebook renderers need (pinned as in requirements.txt / this environment).
CHAPTER_DEPS = ["ipywidgets==8.1.9", "plotly==7.1.0", "ipykernel==7.4.0", f"nbformat=={nbformat.__version__}"]


def _chapter_script(notebook: Path, folder: Path) -> Path:
    """The code cells of a chapter as one Python script (IPython-only lines dropped), written to ``folder``."""
    from IPython.core.inputtransformer2 import TransformerManager

    cells = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    script = folder / f"{notebook.stem}.py"
    script.write_text("\n\n".join(TransformerManager().transform_cell(c) for c in cells))
    return script


def _build_wheel(out: Path) -> Path:
    """Build the wheel offline with this environment's setuptools (``build --no-isolation`` or pip)."""
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("nadlib-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_lists_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    small = [p.name for p in results_registry.artifacts() if p not in results_registry.large_artifacts()]
    large = [p.name for p in results_registry.large_artifacts()]
    assert small and large
    missing = [n for n in small if f"nadlib/_results/{n}" not in names]
    assert not missing, f"small results missing from the wheel: {missing}"
    shipped_large = [n for n in large if f"nadlib/_results/{n}" in names]
    assert not shipped_large, f"large results must be downloaded, not shipped: {shipped_large}"
    for needed in ("nadlib/results_registry.txt", "nadlib/published/nads_top64.npz", "nadlib/book/interactive.py", "nadlib/nads/estimate.py",
                   "nadlib/__main__.py"):
        assert needed in names, needed
    assert not any(n.endswith(".ckpt.npz") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "nadlib = nadlib.cli:main" in entry
    print(f"\n{wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB, {len(names)} files")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _clean_env(**extra) -> dict:
    """This process's environment without what would make the venv see this checkout (PYTHONPATH: pip
    would then take the checkout's nadlib.egg-info for an installed nadlib) or other results."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "NADLIB_RESULTS", "NADLIB_RESULTS_URL", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _fresh_venv(path: Path) -> Path:
    """A new venv with the runtime dependencies; skips the test when it cannot be made (offline)."""
    python = shutil.which("python3.11") or sys.executable
    proc = subprocess.run([python, "-m", "venv", str(path)], capture_output=True, text=True, timeout=300,
                          env=_clean_env())
    if proc.returncode != 0:
        pytest.skip(f"cannot create a venv with {python}: {proc.stderr.strip()[-500:]}")
    py = path / "bin" / "python"
    # --no-compile: the byte-code is written on first import instead (what is installed is the same)
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-compile", *VENV_DEPS],
                          capture_output=True, text=True,
                          timeout=VENV_TIMEOUT_S, env=_clean_env())
    if proc.returncode != 0:
        pytest.skip("cannot install nadlib's dependencies into a fresh venv (no package index reachable?): "
                    + proc.stderr.strip()[-800:])
    return py


@pytest.mark.slow
@pytest.mark.timeout(2 * VENV_TIMEOUT_S)  # installing PyTorch into the fresh venv alone may take minutes
def test_build_then_install_the_wheel_in_a_fresh_venv(tmp_path):
    pytest.importorskip("build", reason="`build` is not installed (pip install -r requirements.txt)")
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = next(dist.glob("nadlib-*.whl"))
    sdist = next(dist.glob("nadlib-*.tar.gz"))
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("results/grid_lenet_paper_s4.npz") for m in members), "sdist lacks the small results"
    assert any(m.endswith("nadlib/results_registry.txt") for m in members)

    py = _fresh_venv(tmp_path / "venv")
    proc = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)],
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (py.parent / "nadlib").is_file(), "the wheel's console script `nadlib` was not installed"

    served = tmp_path / "served"
    served.mkdir()
    for artifact in results_registry.large_artifacts():
        shutil.copy(artifact, served / artifact.name)
    big = results_registry.large_artifacts()[0]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(NADLIB_RESULTS_URL=f"http://127.0.0.1:{srv.server_address[1]}/",
                     NADLIB_DATA=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    check = (
        "import nadlib, pathlib, sys\n"
        "print(nadlib.__file__)\n"
        "d = nadlib.results_dir()\n"
        "assert d == pathlib.Path(nadlib.__file__).parent / '_results', d\n"
        "assert str(d).startswith(sys.prefix), (d, sys.prefix)\n"
        "arrays, meta = nadlib.load_artifact(nadlib.result_path('grid_lenet_paper_s4.npz'))\n"
        f"p = nadlib.result_path({big.name!r})\n"
        "print('downloaded', p)\n"
        "print(nadlib.load_nads(p))\n"
    )
    try:
        chapter = _chapter_script(ROOT / "book" / "03_cifar10.ipynb", elsewhere)
        extras = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-compile", *CHAPTER_DEPS],
                                capture_output=True,
                                text=True, timeout=VENV_TIMEOUT_S, env=_clean_env())
        assert extras.returncode == 0, extras.stderr[-2000:]
        runs = {
            "chapter 3 from a temporary folder": subprocess.run(
                [str(py), str(chapter)], cwd=elsewhere, capture_output=True, text=True, timeout=900,
                env=dict(env, NADLIB_PROFILE="smoke", MPLBACKEND="Agg", PLOTLY_RENDERER="json")),
            "nadlib --help": subprocess.run([str(py.parent / "nadlib"), "--help"], cwd=elsewhere, env=env,
                                            capture_output=True, text=True, timeout=300),
            "python -m nadlib --help": subprocess.run([str(py), "-m", "nadlib", "--help"], cwd=elsewhere, env=env,
                                                      capture_output=True, text=True, timeout=300),
            "results": subprocess.run([str(py), "-c", check], cwd=elsewhere, env=env, capture_output=True,
                                      text=True, timeout=300),
        }
    finally:
        srv.shutdown()
        srv.server_close()
    for name, run in runs.items():
        print(f"--- {name}: exit {run.returncode}\n{run.stdout[-1500:]}")
        assert run.returncode == 0, f"{name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert "usage" in runs["nadlib --help"].stdout.lower()
    assert str(tmp_path / "venv") in runs["results"].stdout  # the installed copy, not this checkout
    assert (tmp_path / "cache" / f"results-v{nadlib.__version__}" / big.name).is_file()
