"""No lost work at the edges of an interruption (issue 20): a second Ctrl-C while a checkpoint is being written
waits for the write, and a grid worker that dies stops the run at once, naming the directions it did not
finish, instead of leaving the grid waiting forever."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import numpy as np
import pytest

import nadlib
from nadlib import Recipe, RunControl, results
from nadlib.grid import WorkerDied


def test_a_signal_during_a_write_waits_for_the_write(tmp_path, monkeypatch, capsys):
    """The signal arrives in the middle of writing (here: from inside the write itself); the file is written in
    full, no temporary file is left, and the interruption is delivered afterwards."""
    write = np.savez_compressed

    def interrupted_write(fh, **arrays):
        os.kill(os.getpid(), signal.SIGINT)
        write(fh, **arrays)

    monkeypatch.setattr(np, "savez_compressed", interrupted_write)
    path = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        results.save_artifact(path, {"x": np.arange(5)}, {"settings": {"k": 1}})
    monkeypatch.undo()
    assert results.load_artifact(path)[0]["x"].tolist() == [0, 1, 2, 3, 4]
    assert not list(tmp_path.glob("*.tmp")) and "finishing the write of" in capsys.readouterr().err
    # SIGTERM inside interruptible() (a scheduler pre-empting the job) is held the same way
    monkeypatch.setattr(np, "savez_compressed", lambda fh, **a: (os.kill(os.getpid(), signal.SIGTERM), write(fh, **a)))
    with pytest.raises(KeyboardInterrupt, match="signal 15"), results.interruptible():
        results.save_artifact(path, {"x": np.arange(3)}, {})
    monkeypatch.undo()
    assert results.load_artifact(path)[0]["x"].tolist() == [0, 1, 2]


DYING = textwrap.dedent('''
    import os
    from pathlib import Path
    from torch import nn

    class DiesOnce:
        """Builds a tiny network, except the first time in a worker process: then the worker dies (as one
        killed by the out-of-memory killer does, without a word)."""

        def __init__(self, marker):
            self.marker = marker

        def __call__(self):
            import multiprocessing
            if multiprocessing.parent_process() is not None and not Path(self.marker).exists():
                Path(self.marker).touch()
                os._exit(9)
            return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
''')


def test_a_dead_grid_worker_stops_the_run_and_names_what_is_lost(tmp_path, monkeypatch):
    (tmp_path / "dying.py").write_text(DYING)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("dying", None)
    import dying
    make = dying.DiesOnce(str(tmp_path / "died"))
    freqs = [(1, 0), (0, 1), (1, 1)]
    kw = dict(size=4, recipe=Recipe(n_train=32, n_test=32, epochs=1), workers=2)
    ckpt = tmp_path / "g.npz"
    with pytest.raises(WorkerDied, match=r"worker process died .* direction\(s\) \[.*\]; the finished directions"
                                         r" are in .*g\.npz"):
        nadlib.accuracy_grid(make, freqs, **kw, run=RunControl(progress=False, device="cpu", checkpoint=ckpt))
    # the same call again: nothing dies now, and the grid is completed from the checkpoint
    grid = nadlib.accuracy_grid(make, freqs, **kw, run=RunControl(progress=False, device="cpu", checkpoint=ckpt))
    assert sorted(grid.accuracy) == sorted(freqs) and all(0 <= a <= 1 for a in grid.accuracy.values())
    sys.modules.pop("dying", None)


def test_a_failed_final_write_keeps_the_checkpoint_and_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    """The output folder turns unwritable after the work (disk full, permissions): one line that names the kept
    checkpoint, exit 2, and the same command then finishes from it without redoing the work."""
    from nadlib import cli
    out = tmp_path / "g.npz"
    argv = ["grid", "--arch", "logreg", "--freqs", "1,0;0,1", "--n-train", "32", "--n-test", "32", "--epochs", "1",
            "--workers", "1", "--device", "cpu", "--profile", "smoke", "--out", str(out)]
    real = results.save_artifact

    def full_disk(path, arrays, meta):
        if path == out:
            raise OSError(28, "No space left on device")
        return real(path, arrays, meta)

    monkeypatch.setattr(cli, "save_artifact", full_disk)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "g.ckpt.npz" in err and "Traceback" not in err
    assert (tmp_path / "g.ckpt.npz").exists() and not out.exists()
    monkeypatch.undo()
    monkeypatch.setattr(nadlib.grid, "_grid_task", lambda *a: pytest.fail("a finished direction was trained again"))
    assert cli.main(argv) == 0
    assert len(nadlib.GridResult.from_artifact(out).accuracy) == 2 and not (tmp_path / "g.ckpt.npz").exists()


def test_the_finished_nad_statistics_survive_a_failed_write(tmp_path, monkeypatch, capsys):
    """The NAD estimate checkpoints its finished statistics, so the same command after a failed write of the
    result computes no network again."""
    from nadlib import cli
    out = tmp_path / "n.npz"
    argv = ["nads", "--arch", "logreg", "--method", "gradient", "--networks", "4", "--quiet", "--out", str(out)]
    monkeypatch.setattr(nadlib.nads.estimate, "save_artifact",
                        lambda path, a, m: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    assert cli.main(argv) == 2
    assert "Read-only file system" in capsys.readouterr().err and (tmp_path / "n.ckpt.npz").exists()
    monkeypatch.undo()
    monkeypatch.setattr(nadlib.nads.estimate._Run, "gradients",
                        lambda *a: pytest.fail("a finished network was computed again"))
    assert cli.main(argv) == 0
    assert nadlib.load_nads(out).n_networks == 4 and not (tmp_path / "n.ckpt.npz").exists()


def test_too_little_disk_for_the_nad_checkpoint_stops_before_any_network(tmp_path, monkeypatch, capsys):
    """The checkpoint of an estimate holds two float64 d x d sums; with less free disk than the checkpoint and
    its temporary copy, the command stops in one line before the first network (not at the first save)."""
    from nadlib import cli
    from nadlib.nads.stats import NADStatistics
    need = 2 * NADStatistics.nbytes(32 * 32)  # what the check asks for, LeNet's 1 x 32 x 32 input
    free = {"now": need - 1}
    real = nadlib.control.shutil.disk_usage
    monkeypatch.setattr(nadlib.control.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=free["now"]))
    monkeypatch.setattr(nadlib.nads.estimate._Run, "gradients",
                        lambda *a: pytest.fail("a network was computed before the disk check"))
    argv = ["nads", "--arch", "logreg", "--method", "gradient", "--networks", "4", "--quiet",
            "--out", str(tmp_path / "n.npz")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "n.ckpt.npz" in err and "MiB of disk" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    free["now"] = need  # exactly enough: the estimate runs (the check is not off by one in the other direction)
    monkeypatch.setattr(nadlib.control.shutil, "disk_usage", lambda p: real(p)._replace(free=free["now"]))
    assert cli.main(argv) == 0 and (tmp_path / "n.npz").exists()
