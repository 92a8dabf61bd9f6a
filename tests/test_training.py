"""Training, the grid runner and the scientific claims of Chapter 1 at sizes that fit CI."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import nadlib
from nadlib import accuracy_grid, direction_accuracy, fourier_direction, linear_separable, train
from nadlib.results import load_artifact
from nadlib.grid import stacked_accuracies

SMALL = dict(n_train=256, n_test=256, epochs=2)


def test_train_history_and_determinism():
    x, y = linear_separable(fourier_direction(1, 2), 300, seed=0, device="cpu")
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train(nadlib.get_model("lenet"), x, y, x, y, epochs=3, seed=4, progress=False, device="cpu"))
    a, b = runs
    assert a.epochs == [1, 2, 3] and len(a.test_acc) == 3 and len(a.loss) == 3
    assert a.loss == b.loss and a.test_acc == b.test_acc
    assert all(0 <= acc <= 1 for acc in a.train_acc + a.test_acc)


def test_direction_accuracy_deterministic_and_seed_matters():
    v = fourier_direction(3, 1)
    a = direction_accuracy("lenet", v, **SMALL, seed=1, device="cpu", return_history=True)
    b = direction_accuracy("lenet", v, **SMALL, seed=1, device="cpu", return_history=True)
    c = direction_accuracy("lenet", v, **SMALL, seed=2, device="cpu", return_history=True)
    assert a.loss == b.loss and a.final_test_acc == b.final_test_acc
    assert a.loss != c.loss
    assert isinstance(direction_accuracy("logreg", v, **SMALL, device="cpu"), float)


def test_class_index_labels_and_multiclass():
    x = torch.randn(64, 3, 32, 32)
    y = torch.arange(64) % 10
    r = train(nadlib.get_model("logreg", 3, 10), x, y, epochs=1, lr=0.01, progress=False, device="cpu")
    assert r.test_acc == [] and math.isnan(r.final_test_acc) and 0 <= r.final_train_acc <= 1


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(x=torch.full((4, 1, 32, 32), float("nan"))), ValueError, "NaN"),
    (dict(x=torch.randn(4, 32, 32)), ValueError, "shape"),
    (dict(y=torch.tensor([0, 1, 1])), ValueError, "samples"),
    (dict(y=torch.tensor([-1, 0, 1, 1])), ValueError, "must be \\+-1"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(lr=-0.1), ValueError, "lr"),
    (dict(x=torch.zeros(4, 1, 32, 32, dtype=torch.long)), TypeError, "floating-point"),
])
def test_train_bad_input(kwargs, err, match):
    args = dict(x=torch.randn(4, 1, 32, 32), y=torch.tensor([0, 1, 0, 1]), epochs=1)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        train(nadlib.get_model("logreg"), args.pop("x"), args.pop("y"), progress=False, device="cpu", **args)


def test_stacked_runner_matches_sequential_training():
    """The vmap runner (used on CUDA) computes the same thing as one train() per direction."""
    freqs = [(1, 0), (5, 7), (16, 3)]
    settings = dict(n_train=300, n_test=300, epochs=2, seed=3)
    stacked = stacked_accuracies("lenet", freqs, 32, settings, torch.device("cpu"))
    sequential = [direction_accuracy("lenet", fourier_direction(*f), device="cpu", **settings) for f in freqs]
    # same arithmetic in another order: allow at most a couple of test samples to flip
    assert np.allclose(stacked, sequential, atol=3 / 300)


def test_grid_resume_skips_finished_directions(tmp_path, monkeypatch):
    import nadlib.grid as tr

    freqs = [(1, 0), (0, 3), (5, 5)]
    ckpt = tmp_path / "g.ckpt.npz"
    first = accuracy_grid("logreg", freqs[:2], **SMALL, workers=1, checkpoint=ckpt, progress=False, device="cpu")
    calls = []
    real = tr._grid_task
    monkeypatch.setattr(tr, "_grid_task", lambda *a: calls.append(a[1]) or real(*a))
    resumed = accuracy_grid("logreg", freqs, **SMALL, workers=1, checkpoint=ckpt, progress=False, device="cpu")
    assert calls == [(5, 5)]
    fresh = accuracy_grid("logreg", freqs, **SMALL, workers=1, progress=False, device="cpu")
    assert resumed.accuracy == fresh.accuracy and all(resumed.accuracy[f] == first.accuracy[f] for f in freqs[:2])
    with pytest.raises(ValueError, match="other settings"):
        accuracy_grid("logreg", freqs, n_train=128, n_test=256, epochs=2, workers=1, checkpoint=ckpt, progress=False)


def test_grid_worker_processes_agree_with_in_process():
    freqs = [(1, 0), (2, 9)]
    a = accuracy_grid("logreg", freqs, **SMALL, workers=2, progress=False, device="cpu")
    b = accuracy_grid("logreg", freqs, **SMALL, workers=1, progress=False, device="cpu")
    assert a.accuracy == b.accuracy
    assert a.map.shape == (32, 32) and a.map[0, 1] == a.accuracy[(1, 0)] and a.map[0, 31] == a.accuracy[(1, 0)]


def test_grid_bad_input():
    with pytest.raises(ValueError, match="known"):
        accuracy_grid("nonet", [(1, 1)])
    with pytest.raises(ValueError, match="out of range"):
        accuracy_grid("logreg", [(40, 1)])


def test_cli_writes_artifact_with_provenance(tmp_path):
    out = tmp_path / "grid.npz"
    cmd = [sys.executable, "-m", "nadlib", "grid", "--arch", "logreg", "--profile", "smoke", "--stride", "16",
           "--workers", "1", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    arrays, meta = load_artifact(out)
    assert arrays["freqs"].shape == (4, 2) and arrays["map"].shape == (32, 32)
    assert meta["profile"] == "smoke" and meta["seed"] == 0 and "torch" in meta and meta["wall_time"] > 0
    assert not (tmp_path / "grid.ckpt.npz").exists()
    grid = nadlib.GridResult.from_artifact(out)
    assert set(grid.accuracy) == {tuple(f) for f in arrays["freqs"]}


# ---- scientific claims (paper sizes for the data: 10,000 samples, as the effect needs n > 2d) ------

@pytest.mark.slow
@pytest.mark.parametrize("freq", [(1, 0), (7, 13), (16, 16), (31, 20)])
def test_logreg_learns_every_fourier_direction(freq):
    acc = direction_accuracy("logreg", fourier_direction(*freq), n_train=10_000, n_test=2_000, epochs=20,
                             device="cpu")
    assert acc > 0.95


@pytest.mark.slow
def test_lenet_fails_and_succeeds_where_the_paper_says():
    """LeNet at the paper's recipe: (kx, ky) = (1, 0) is learned, (0, 8) is not.

    Choice: in our stride-4 and band-8 grids and in the authors' published map (central 16 x 16
    frequencies) LeNet reaches ~80% on (1, 0) (we measured 0.805 / 0.806 / 0.805 for seeds 0-2;
    published 80.4%) and stays at chance on (0, 8) (0.502 / 0.498 / 0.505; published 51.1%).
    Thresholds: with n_test = 2,000 a chance-level classifier has accuracy 0.5 +- 0.011 (binomial
    std), so < 0.55 is chance within 4.5 std and > 0.70 is 18 std above it, leaving room for the
    seed-to-seed spread of training (< 0.01 above).
    """
    sizes = dict(n_train=10_000, n_test=2_000, epochs=20, device="cpu")
    learned = direction_accuracy("lenet", fourier_direction(1, 0), **sizes)
    failed = direction_accuracy("lenet", fourier_direction(0, 8), **sizes)
    assert learned > 0.70, learned
    assert failed < 0.55, failed
