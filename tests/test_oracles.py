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
    nadlib.direction_accuracy("logreg", nadlib.fourier_direction(1, 0), n_train=64, n_test=64, epochs=1,
                              device="cpu")
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
    nadlib.nad_trainability(u, [3, 11], n_train=8, n_test=8, epochs=1, progress=False)
    assert len(directions) == 2
    torch.testing.assert_close(directions[0], u[3])
    torch.testing.assert_close(directions[1], u[11])
