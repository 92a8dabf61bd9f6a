"""Precomputed results are found from any folder: :func:`nadlib.results_dir` and :func:`nadlib.result_path`.

The small artifacts of ``results/`` travel in the wheel as package data; the large NAD files are
listed in ``nadlib/results_registry.txt`` (SHA-256, size) and downloaded once through ``pooch``.  The
download tests serve a copy of ``results/`` from a local HTTP server (``$NADLIB_RESULTS_URL``), so they
run offline; they are skipped, with the reason shown, where ``pooch`` is not installed.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import threading
from pathlib import Path

import pytest

import nadlib
from nadlib import results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import results_registry  # noqa: E402

BIG = "nads_lenet_secant_n2048.npz"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over a folder; yields ``(base_url, folder)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/", folder
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from an unrelated folder as an installed wheel without the large files would: an empty results folder
    of yours, empty bundled results (no checkout next to nadlib, no packaged copy) and a private download cache."""
    empty = tmp_path / "empty_results"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NADLIB_RESULTS", str(empty))
    monkeypatch.setenv("NADLIB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(results, "_checkout_results", lambda: None)
    monkeypatch.setattr(results, "PACKAGED_RESULTS", tmp_path / "packaged")
    return tmp_path


def test_registry_and_pyproject_agree_with_results_folder():
    assert results_registry.problems() == []


def test_registry_lists_the_large_files_with_their_hashes():
    url, files = results.results_registry()
    assert "{version}" in url and url.startswith(results_registry.repository_url())
    assert BIG in files
    for name, (sha, size) in files.items():
        path = ROOT / "results" / name
        assert path.stat().st_size == size > results_registry.MAX_PACKAGED_BYTES
        assert results_registry.sha256(path) == sha


def test_results_url_is_the_tagged_repository(monkeypatch):
    monkeypatch.delenv("NADLIB_RESULTS_URL", raising=False)
    assert results.results_url() == f"{results_registry.repository_url()}/raw/v{nadlib.__version__}/results/"
    monkeypatch.setenv("NADLIB_RESULTS_URL", "http://mirror.example/r")
    assert results.results_url() == "http://mirror.example/r/"


def test_results_dir_ignores_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()  # an unrelated results/ folder must not be picked up
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NADLIB_RESULTS", raising=False)
    assert nadlib.results_dir() == ROOT / "results"


def test_result_path_finds_local_files_first():
    assert nadlib.result_path("grid_lenet_paper_s4.npz") == nadlib.results_dir() / "grid_lenet_paper_s4.npz"


@pytest.mark.parametrize("bad", ["", "../results/x.npz", "sub/x.npz", None])
def test_result_path_refuses_paths(bad):
    with pytest.raises(ValueError, match="plain file name"):
        nadlib.result_path(bad)


def test_unknown_result_says_where_it_looked(elsewhere):
    with pytest.raises(FileNotFoundError, match="not one of the downloadable ones") as info:
        nadlib.result_path("grid_resnet18_paper.npz")
    assert not isinstance(info.value, results.ResultNotAvailableError)


def test_download_false_names_the_file_and_what_to_do(elsewhere):
    with pytest.raises(results.ResultNotAvailableError) as info:
        nadlib.result_path(BIG, download=False)
    msg = str(info.value)
    assert BIG in msg and "SHA-256" in msg and str(results.results_cache_dir()) in msg


def test_downloads_once_and_checks_the_hash(elsewhere, server, monkeypatch):
    pytest.importorskip("pooch", reason="pooch is not installed (pip install -r requirements.txt)")
    base, folder = server
    shutil.copy(ROOT / "results" / BIG, folder / BIG)
    monkeypatch.setenv("NADLIB_RESULTS_URL", base)
    path = nadlib.result_path(BIG)
    assert path.parent == results.results_cache_dir() and path.read_bytes() == (ROOT / "results" / BIG).read_bytes()
    assert len(nadlib.load_nads(path)) > 0
    (folder / BIG).unlink()  # the second call uses the cache, no server needed
    assert nadlib.result_path(BIG) == path


def test_a_damaged_download_is_refused(elsewhere, server, monkeypatch):
    pytest.importorskip("pooch", reason="pooch is not installed (pip install -r requirements.txt)")
    base, folder = server
    data = bytearray((ROOT / "results" / BIG).read_bytes())
    data[-100] ^= 0xFF
    (folder / BIG).write_bytes(bytes(data))
    monkeypatch.setenv("NADLIB_RESULTS_URL", base)
    with pytest.raises(results.ResultNotAvailableError, match="could not download"):
        nadlib.result_path(BIG)
    assert not (results.results_cache_dir() / BIG).exists()


def test_offline_error_names_the_file_and_the_url(elsewhere, server, monkeypatch):
    pytest.importorskip("pooch", reason="pooch is not installed (pip install -r requirements.txt)")
    base, _ = server  # serves an empty folder: 404, as a wrong tag or an unreachable host would fail
    monkeypatch.setenv("NADLIB_RESULTS_URL", base)
    with pytest.raises(results.ResultNotAvailableError) as info:
        nadlib.result_path(BIG)
    msg = str(info.value)
    assert BIG in msg and base + BIG in msg and "put it into" in msg
