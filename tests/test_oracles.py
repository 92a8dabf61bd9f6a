"""Independent oracles: exact values from hand-made inputs, instead of checks that repeat the code.

Each test states a value that follows from the definition (not from running the same code twice) and
fails when the behaviour behind it is removed.
"""

from __future__ import annotations

import pytest
import torch

import nadlib
from nadlib import experiments, training
from nadlib.directions import fourier_basis, frequency_radius
from nadlib import Recipe, RunControl


def test_nad_energy_of_a_two_direction_image():
    """An image a*u_0 + b*u_3 (one channel, not centred) has energy a^2 and b^2 on those two directions
    and none elsewhere: normalised, [a^2, 0, 0, b^2, 0, ...] / (a^2 + b^2)."""
    u = torch.linalg.qr(torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64))[0].T.float()
    a, b = 3.0, 4.0
    x = (a * u[0] + b * u[3]).view(1, 1, 32, 32)
    e = nadlib.nad_energy(x, u[:8], centre=False)
    expected = torch.zeros(8)
    expected[0], expected[3] = a * a / 25, b * b / 25
    torch.testing.assert_close(e, expected, atol=1e-5, rtol=0)


def test_fourier_energy_by_radius_puts_a_wave_at_its_radius():
    """A single Fourier direction of frequency (3, 4) (radius 5) has all its energy at one position of
    the low-to-high order, whose radius is 5."""
    row = 4 * 32 + 3  # fourier_basis row of (kx, ky) = (3, 4)
    x = fourier_basis(32)[row].view(1, 1, 32, 32).repeat(1, 3, 1, 1)
    energy, radius = nadlib.fourier_energy_by_radius(x, centre=False)
    top = int(energy.argmax())
    assert energy[top] == pytest.approx(1.0, abs=1e-5) and float(radius[top]) == pytest.approx(5.0)
    assert float(frequency_radius(32)[row]) == pytest.approx(5.0)


def test_seeded_subsets_differ_and_stay_balanced():
    y = torch.arange(1000) % 10
    first = nadlib.balanced_subset(y, 50)
    s1, s2 = nadlib.balanced_subset(y, 50, seed=1), nadlib.balanced_subset(y, 50, seed=2)
    assert first.tolist() == sorted(range(50))  # no seed: the first 5 of every class, in data-set order
    assert not torch.equal(s1, s2) and not torch.equal(s1, first)
    for s in (s1, s2):
        assert torch.bincount(y[s], minlength=10).tolist() == [5] * 10


def test_direction_accuracy_tests_on_other_samples_than_it_trains_on(monkeypatch):
    """With n_train == n_test the test set is still a different draw of D(v) (seed + TEST_SEED_OFFSET)."""
    seen = {}

    def capture(model, x_tr, y_tr, x_te, y_te, **kw):
        seen["train"], seen["test"] = x_tr, x_te
        return training.TrainResult(test_acc=[0.5])

    monkeypatch.setattr(training, "train", capture)
    nadlib.direction_accuracy("logreg", nadlib.fourier_direction(1, 0), recipe=Recipe(n_train=64, n_test=64, epochs=1),
                              run=RunControl(device="cpu"))
    assert seen["train"].shape == seen["test"].shape
    assert (seen["train"] - seen["test"]).abs().max() > 1.0


def test_trainability_trains_on_the_nad_of_each_index(monkeypatch):
    """``nad_trainability(nads, [i, j])`` trains on D(u_i) then D(u_j): the direction handed to training
    is row i, then row j, of the basis."""
    u = torch.linalg.qr(torch.randn(1024, 16, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64))[0].T.float().view(16, 1, 32, 32)
    directions = []

    def capture(arch, v, **kw):
        directions.append(torch.as_tensor(v).clone())
        return 0.5

    monkeypatch.setattr(experiments, "direction_accuracy", capture)
    nadlib.nad_trainability(u, [3, 11], recipe=Recipe(n_train=8, n_test=8, epochs=1), run=RunControl(progress=False))
    assert len(directions) == 2
    torch.testing.assert_close(directions[0], u[3])
    torch.testing.assert_close(directions[1], u[11])


def _rows(k: int = 6) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(1024, k, generator=torch.Generator().manual_seed(1),
                                       dtype=torch.float64))[0].T.float().view(k, 1, 32, 32)


def test_trainability_defaults_results_and_resume(monkeypatch, tmp_path):
    """The paper's recipe by default (LeNet, 10,000 + 10,000 samples, 20 epochs, seed 0); one accuracy per index
    in the order asked; the SHA-256 of the directions; a checkpoint skips finished indices and refuses other
    settings; a deadline stops after the run that finishes past it."""
    import time

    from nadlib.results import DeadlineReached, array_sha256

    u = _rows()
    calls = []

    def capture(arch, v, *, recipe, run):
        calls.append((arch, torch.as_tensor(v).clone(), {"n_train": recipe.n_train, "n_test": recipe.n_test,
                                                         "epochs": recipe.epochs, "seed": run.seed,
                                                         "device": run.device}))
        return 0.5 + 0.1 * len(calls)

    monkeypatch.setattr(experiments, "direction_accuracy", capture)
    out = nadlib.nad_trainability(nadlib.NADs(directions=u, eigenvalues=torch.ones(6), n_networks=2,
                                              method="gradient"), [4, 0], run=RunControl(progress=False))
    assert [c[0] for c in calls] == ["lenet", "lenet"]
    assert calls[0][2] == {"n_train": 10_000, "n_test": 10_000, "epochs": 20, "seed": 0, "device": None}
    torch.testing.assert_close(calls[0][1], u[4])
    torch.testing.assert_close(calls[1][1], u[0])
    assert out["indices"].tolist() == [4, 0] and out["test_acc"].tolist() == pytest.approx([0.6, 0.7])
    assert out["nads_sha256"] == array_sha256(u.numpy())
    calls.clear()
    ck = tmp_path / "t.npz"
    control = RunControl(seed=3, device="cpu", progress=False, checkpoint=ck)
    kw = dict(arch="logreg", recipe=Recipe(n_train=8, n_test=4, epochs=2), run=control)
    first = nadlib.nad_trainability(u, [1, 2], **kw)
    assert calls[0][0] == "logreg" and calls[0][2] == {"n_train": 8, "n_test": 4, "epochs": 2, "seed": 3,
                                                       "device": "cpu"}
    calls.clear()
    again = nadlib.nad_trainability(u, [1, 2], **kw)
    assert calls == [] and again["test_acc"].tolist() == first["test_acc"].tolist()
    for other in (dict(run=control.replace(seed=4)), dict(recipe=Recipe(n_train=8, n_test=4, epochs=3)),
                  dict(recipe=Recipe(n_train=9, n_test=4, epochs=2)),
                  dict(recipe=Recipe(n_train=8, n_test=5, epochs=2)),
                  dict(arch="lenet")):
        with pytest.raises(ValueError):
            nadlib.nad_trainability(u, [1, 2], **{**kw, **other})
    with pytest.raises(ValueError):
        nadlib.nad_trainability(u * 1.5, [1, 2], **kw)  # other directions: other checkpoint
    calls.clear()
    with pytest.raises(DeadlineReached, match="^deadline reached: train logreg on D\\(u_i\\): runs 1 of 2 done"):
        nadlib.nad_trainability(u, [3, 4], **{**kw, "run": control.replace(checkpoint=None, deadline=time.monotonic())})
    assert len(calls) == 1


@pytest.mark.parametrize("nads, indices, err, message", [
    (torch.ones(5), [0], ValueError, "nads must hold one direction per row, got shape (5,)"),
    (_rows(), [], ValueError, "indices is empty"),
    (_rows(), [6], ValueError, "NAD index must be an int in [0, 5], got 6"),
    (_rows(), [-1], ValueError, "NAD index must be an int in [0, 5], got -1"),
    (_rows(), [1.0], TypeError, "NAD index must be an int, got float 1.0"),
])
def test_trainability_messages(nads, indices, err, message):
    # tiny sizes: a check that lets a bad index through trains (and fails the test) in a moment, instead of
    # running the paper's 10,000-sample recipe until a time limit
    with pytest.raises(err) as info:
        nadlib.nad_trainability(nads, indices, recipe=Recipe(n_train=2, n_test=2, epochs=1),
                                run=RunControl(progress=False))
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0), "n_train must be a positive int, got 0"),
    (dict(n_test=0), "n_test must be a positive int, got 0"),
    (dict(epochs=0), "epochs must be a positive int, got 0"),
    (dict(seed=-1), "seed must be in [0, 2**63 - 1], got -1"),
])
def test_trainability_size_messages(kwargs, message):
    """Bad sizes (fields of the Recipe) and a bad seed (of the RunControl) are refused with their message."""
    recipe = {k: v for k, v in kwargs.items() if k != "seed"}
    with pytest.raises(ValueError) as info:
        nadlib.nad_trainability(_rows(), [0, 5], recipe=Recipe(**{"n_train": 2, "n_test": 2, "epochs": 1, **recipe}),
                                run=RunControl(progress=False, seed=kwargs.get("seed", 0)))
    assert str(info.value) == message
