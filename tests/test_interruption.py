"""Long runs survive interruption: Ctrl-C (SIGINT) and SIGTERM (a cluster pre-empting a job) checkpoint and
stop with exit code 130; the same command then resumes and writes the same artifact as a run that was
never interrupted.  Also: the estimators leave the global torch RNG as they found it.

The commands run as real subprocesses (``python -m nadlib ...``) in their own process group, so a
signal reaches them as it would from a terminal (SIGINT to the whole group) or from a scheduler
(SIGTERM to the main process).  The waits have generous time-outs that only guard against a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nadlib
from nadlib import cli
from nadlib.results import load_artifact
from nadlib import Recipe, RunControl

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _default_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and the ignored disposition
    # is inherited (CI may run this suite so): give the command the terminal's default, as a user has it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "nadlib", *args], cwd=ROOT, env=env, start_new_session=True,
                            preexec_fn=_default_sigint, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (code {proc.returncode}) before it could be interrupted:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run to make progress")
        time.sleep(0.1)


def _interrupt(proc: subprocess.Popen, sig: int) -> str:
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C: the terminal signals the whole foreground process group
    else:
        os.kill(proc.pid, sig)  # a scheduler signals the job's main process
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the command did not stop after the signal")
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    return err


def _run(args: list[str]) -> None:
    """The same command run to the end (in this process: the subprocess start-up is the slow part)."""
    assert cli.main(args) == 0


def _grid_done(ckpt: Path) -> int:
    try:
        return len(load_artifact(ckpt)[0].get("accuracy", []))
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_nads_interrupted_then_resumed_equals_uninterrupted(tmp_path, sig):
    common = ["nads", "--arch", "lenet", "--networks", "96", "--batch-size", "8", "--keep", "20",
              "--checkpoint-every", "0.1", "--quiet"]
    ref, out = tmp_path / "ref.npz", tmp_path / "int.npz"
    ckpt = tmp_path / "int.ckpt.npz"
    proc = _start([*common, "--out", str(out)])
    _wait_for(ckpt.exists, proc)
    _interrupt(proc, sig)
    assert ckpt.exists() and not out.exists()
    done = int(load_artifact(ckpt)[0]["next_index"])
    assert 0 < done < 96, done
    _run([*common, "--out", str(out)])
    _run([*common, "--out", str(ref)])
    a, meta = load_artifact(out)
    b, _ = load_artifact(ref)
    assert meta["resumed"] and meta["resumed_from"] == done and meta["n_networks"] == 96
    np.testing.assert_allclose(a["eigenvalues"], b["eigenvalues"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a["directions"], b["directions"], atol=1e-5)
    assert not ckpt.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_grid_with_workers_interrupted_then_resumed_equals_uninterrupted(tmp_path, sig):
    freqs = ";".join(f"{k},{j}" for k in range(1, 9) for j in (0, 1))  # 16 directions
    common = ["grid", "--arch", "logreg", "--freqs", freqs, "--n-train", "5000", "--n-test", "500",
              "--epochs", "3", "--workers", "2", "--device", "cpu"]
    out, ref = tmp_path / "int.npz", tmp_path / "ref.npz"
    ckpt = tmp_path / "int.ckpt.npz"
    proc = _start([*common, "--out", str(out)])
    _wait_for(lambda: _grid_done(ckpt) >= 1, proc)
    t0 = time.monotonic()
    _interrupt(proc, sig)
    print(f"stopped {time.monotonic() - t0:.1f} s after the signal")
    kept = _grid_done(ckpt)
    assert 1 <= kept < 16, kept
    _run([*common, "--out", str(out)])
    _run([*common, "--out", str(ref)])
    a, meta = load_artifact(out)
    b, _ = load_artifact(ref)
    assert meta["resumed"]
    np.testing.assert_array_equal(a["freqs"], b["freqs"])
    np.testing.assert_allclose(a["accuracy"], b["accuracy"], atol=1e-12)


def test_estimators_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    nadlib.estimate_nads("lenet", 4, run=RunControl(progress=False))
    nadlib.accuracy_grid("logreg", [(1, 0)], workers=1, recipe=Recipe(n_train=64, n_test=32, epochs=1),
                         run=RunControl(progress=False, device="cpu"))
    assert torch.equal(torch.rand(3), expected)
