"""The Ray engine against the serial one: a local Ray instance with 2 CPUs (runs in CI, ~1-2 minutes)."""

import sys
import time

import numpy as np
import pytest
import torch

from nadlib import accuracy_grid, estimate_nads
from nadlib import distributed as D
from nadlib.cli import main
from nadlib.results import DeadlineReached, load_artifact
from nadlib import Recipe, RunControl

torch.set_num_threads(1)
GRID = dict(band=2, recipe=Recipe(n_train=1000, n_test=200, epochs=1))


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'nadlib\[ray\]'"):
        D.require_ray()


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray", reason="the Ray engine needs `pip install 'nadlib[ray]'`")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_grid_equals_serial_grid(ray, tmp_path):
    serial = accuracy_grid("logreg", workers=1, run=RunControl(progress=False), **GRID)
    ckpt = tmp_path / "g.ckpt.npz"
    with pytest.raises(DeadlineReached):  # stops submitting at once; the directions in flight are kept
        D.ray_accuracy_grid("logreg",
                            run=RunControl(checkpoint=ckpt, deadline=time.monotonic(), progress=False), **GRID)
    assert 0 < len(load_artifact(ckpt)[0]["freqs"]) < len(serial.accuracy)
    distributed = D.ray_accuracy_grid("logreg", run=RunControl(checkpoint=ckpt, progress=False), **GRID)
    assert distributed.accuracy == serial.accuracy  # identical floats, every direction
    assert len(set(serial.accuracy.values())) > 1  # not a degenerate map


@pytest.mark.ray
def test_ray_nads_chunks_merge_to_the_serial_estimate(ray, tmp_path):
    serial = estimate_nads("lenet", 96, run=RunControl(seed=1, progress=False))
    ckpt = tmp_path / "n.ckpt.npz"
    with pytest.raises(DeadlineReached):
        D.ray_estimate_nads("lenet", 96, chunk=16,
                            run=RunControl(seed=1, checkpoint=ckpt, deadline=time.monotonic(), progress=False))
    res = D.ray_estimate_nads("lenet", 96, chunk=16, run=RunControl(seed=1, checkpoint=ckpt, progress=False))
    assert res.n_networks == 96
    rel = ((res.eigenvalues - serial.eigenvalues).abs().max() / serial.eigenvalues.max()).item()
    assert rel < 1e-10
    assert abs(abs(float(res.directions[0].flatten() @ serial.directions[0].flatten())) - 1) < 1e-6
    with pytest.raises(ValueError, match="multiple of the batch size 16"):
        D.ray_estimate_nads("lenet", 48, chunk=12, run=RunControl(progress=False))


@pytest.mark.ray
def test_a_failed_task_is_retried_without_stopping_the_others(ray, tmp_path):
    def _flaky(marker: str, fail_always: bool) -> int:  # local, so Ray pickles it by value
        """Fails on its first call (and on every call with ``fail_always``)."""
        from pathlib import Path
        path = Path(marker)
        if fail_always or not path.exists():
            path.write_text("failed once")
            raise RuntimeError("flaky task")
        return 7

    remote = ray.remote(_flaky).options(**D._task_options("cpu", None, 1))
    jobs = [(str(tmp_path / "a"), False), (str(tmp_path / "b"), True), (str(tmp_path / "c"), False)]
    results = {job[0][-1]: (res, err) for job, res, err in D._Pump(ray, remote, jobs, 2, None)}
    assert results["a"] == (7, None) and results["c"] == (7, None)  # failed once, retried, succeeded
    assert results["b"][0] is None and "flaky task" in str(results["b"][1])


@pytest.mark.ray
def test_paper_cli_with_the_ray_engine(ray, tmp_path, capsys):
    serial, dist = tmp_path / "serial", tmp_path / "ray"
    base = ["paper", "--profile", "smoke", "--only", "lenet/nads/secant,logreg/grid,lenet/grid", "--quiet", "--device",
            "cpu"]
    assert main(base + ["--out-dir", str(serial)]) == 0
    assert main(base + ["--out-dir", str(dist), "--engine", "ray"]) == 0
    assert "complete:" in capsys.readouterr().out
    for name in ("logreg__grid__smoke.npz", "lenet__grid__smoke.npz"):
        a, b = load_artifact(serial / name)[0], load_artifact(dist / name)[0]
        assert np.array_equal(a["accuracy"], b["accuracy"]) and np.array_equal(a["freqs"], b["freqs"])
    a, b = load_artifact(serial / "lenet__nads__secant__smoke.npz")[0], load_artifact(dist / "lenet__nads__secant__smoke.npz")[0]
    assert np.allclose(a["eigenvalues"], b["eigenvalues"], rtol=0, atol=1e-10 * a["eigenvalues"].max())
    assert load_artifact(dist / "lenet__nads__secant__smoke.npz")[1]["engine"] == "ray"
