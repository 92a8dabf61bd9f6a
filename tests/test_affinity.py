"""Affinity score and non-linearity signature (nadlib.affinity), checked against closed-form answers.

Tolerances are derived, not tuned: each test says which statistic bounds the error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import nadlib
from nadlib import affinity
from nadlib.affinity import REGULARISATION, affinity_score, nonlinearity_signature
from nadlib import RunControl

torch.set_num_threads(1)

#: Population score of a ReLU on N(0, 1): r = cov(x, relu x) / (sd x sd relu x) = 0.5 / sqrt(0.5 - 1/(2 pi)).
R_RELU = 0.5 / math.sqrt(0.5 - 1 / (2 * math.pi))
RHO_RELU = 1 - math.sqrt(1 - R_RELU)


def test_population_constant():
    assert RHO_RELU == pytest.approx(0.6211, abs=5e-5)


def test_affine_map_of_gaussian_data_scores_one():
    """y = B x + c with B symmetric positive definite: the Gaussian OT map is exactly B (its covariances
    match by construction), so T(X) = Y sample by sample and the OT cost is 0 -- up to the 1e-6
    regulariser, which moves A away from B by a relative O(eps / lambda_min(S_X)).  Then
    1 - rho <= ||A - B|| sqrt(tr S_X / (2 tr S_Y)) = O(eps / lambda_min); we allow 100 times that."""
    gen = np.random.default_rng(0)
    n, d = 500, 4
    x = gen.standard_normal((n, d)) @ np.diag([1.0, 0.5, 2.0, 1.5])
    q, _ = np.linalg.qr(gen.standard_normal((d, d)))
    b = q @ np.diag([0.5, 1.0, 2.0, 3.0]) @ q.T
    y = x @ b.T + np.array([1.0, -2.0, 0.5, 3.0])
    lam_min = np.linalg.eigvalsh(np.cov(x.T)).min()
    assert 1 - affinity_score(x, y) <= 100 * REGULARISATION / lam_min


def test_decreasing_affine_map_tends_to_one_with_n():
    """y = -2x + 3 in 1-D is affine but not the gradient of a convex map: T(x) = +2x + c, and the
    OT cost between T(X) and Y (a sorted matching) is 4 mean((x_(i) + x_(N+1-i) - 2 mean x)^2), the
    asymmetry of the sample, which is O_P(log log N / N).  So 1 - rho = sqrt(asymmetry / (2 s^2)) -> 0
    like sqrt(log log N / N): the exact finite-sample value is checked, and that it is below 0.03 at
    N = 100,000 (sqrt(log log N / N) = 0.005)."""
    for n in (1000, 100_000):
        x = np.random.default_rng(1).standard_normal(n)
        xs = np.sort(x)
        asym = np.mean((xs + xs[::-1] - 2 * x.mean()) ** 2)
        s2 = x.var(ddof=1) * 4 + REGULARISATION
        expected = 1 - math.sqrt(4 * asym / (2 * s2))
        rho = affinity_score(x, -2 * x + 3)
        assert rho == pytest.approx(expected, abs=1e-6)
    assert 1 - rho < 0.03


def _exact_1d(x: np.ndarray, y: np.ndarray) -> float:
    """The score in 1-D by hand: slope a = s_Y / s_X (regularised), T(x) = a (x - mean x) + mean y, and the
    OT between two 1-D samples of equal size with uniform weights matches them in sorted order."""
    sx2, sy2 = x.var(ddof=1) + REGULARISATION, y.var(ddof=1) + REGULARISATION
    tx = math.sqrt(sy2 / sx2) * (x - x.mean()) + y.mean()
    cost = np.mean((np.sort(tx) - np.sort(y)) ** 2)
    return 1 - math.sqrt(cost / (2 * sy2))


@pytest.mark.parametrize("f", [lambda x: np.maximum(x, 0), np.tanh, lambda x: x ** 3, lambda x: 1 / (1 + np.exp(-x))],
                         ids=["relu", "tanh", "cube", "sigmoid"])
@pytest.mark.parametrize("n", [50, 1000])
def test_finite_sample_value_is_exact_in_1d(f, n):
    """The POT solution equals the closed-form sorted matching (an LP solver, so ~1e-9 agreement)."""
    x = np.random.default_rng(n).normal(0.3, 1.2, n)
    assert affinity_score(x, f(x)) == pytest.approx(_exact_1d(x, f(x)), abs=1e-8)


def test_general_solver_matches_1d_solver():
    """ot.emd2 (d > 1 path) on a 2-D sample whose 2nd feature is constant agrees with the 1-D solver:
    padding both clouds with a shared constant coordinate changes no distance."""
    x = np.random.default_rng(5).standard_normal(300)
    y = np.maximum(x, 0)
    x2, y2 = np.stack([x, np.zeros_like(x)], 1), np.stack([y, np.zeros_like(y)], 1)
    assert affinity_score(x2, y2) == pytest.approx(affinity_score(x, y), abs=1e-5)


def test_relu_large_n_matches_population_value():
    """For increasing f, T is increasing too, so the OT pairs T(x_i) with f(x_i) and the cost is
    2 s_Y^2 (1 - r_hat) (N - 1) / N: rho_hat = 1 - sqrt(1 - r_hat) + O(1/N).  The error is that of r_hat;
    its standard error is estimated from 20 disjoint batches (sd of batch scores / sqrt(20)) and the
    estimate must be within 5 standard errors (plus the O(1/N) term) of 0.6211."""
    n, batches = 200_000, 20
    x = np.random.default_rng(7).standard_normal(n)
    y = np.maximum(x, 0)
    rho = affinity_score(x, y)
    parts = [affinity_score(xb, yb) for xb, yb in zip(np.split(x, batches), np.split(y, batches))]
    se = np.std(parts, ddof=1) / math.sqrt(batches)
    assert 0 < se < 0.01
    assert abs(rho - RHO_RELU) < 5 * se + 1 / n
    r_hat = np.corrcoef(x, y)[0, 1]  # the identity above, on this sample (regulariser: ~1e-6 relative)
    assert rho == pytest.approx(1 - math.sqrt((1 - r_hat) * (n - 1) / n), abs=1e-5)


def test_relu_score_decreases_as_the_input_mean_moves_negative():
    """Common random numbers (the same z for every mean): a far-positive mean is the identity part of
    the ReLU (rho ~ 1), a far-negative one leaves only a rare positive tail (rho -> 0).  In between rho
    falls steeply (d rho / d mu ~ 0.2 near 0), far more than the sampling noise of common-z differences."""
    z = np.random.default_rng(3).standard_normal(20_000)
    means = np.linspace(4, -3, 15)
    rho = [affinity_score(m + z, np.maximum(m + z, 0)) for m in means]
    assert rho[0] > 0.99
    assert rho[-1] < 0.1
    assert all(a > b for a, b in zip(rho, rho[1:])), np.round(rho, 4)


def test_constant_output_is_affine():
    x = np.random.default_rng(0).standard_normal((100, 3))
    assert affinity_score(x, np.zeros_like(x)) == 1.0


def test_4d_inputs_are_averaged_over_space():
    x = torch.randn(64, 3, 4, 4)
    y = torch.relu(x)
    assert affinity_score(x, y) == pytest.approx(affinity_score(x.double().mean((2, 3)), y.double().mean((2, 3))), abs=1e-12)


@pytest.mark.parametrize("x, y, exc, fragment", [
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], TypeError, "torch.Tensor or numpy.ndarray"),
    (np.zeros(10), "y", TypeError, "torch.Tensor or numpy.ndarray"),
    (np.zeros(10, dtype=bool), np.zeros(10, dtype=bool), TypeError, "real numbers"),
    (np.zeros((10, 2)), np.zeros((10, 3)), ValueError, "same shape"),
    (np.zeros((10, 2)), np.zeros((11, 2)), ValueError, "same shape"),
    (np.zeros((5, 8)), np.zeros((5, 8)), ValueError, "too few samples"),
    (np.zeros((1,)), np.zeros((1,)), ValueError, "too few samples"),
    (np.zeros((10, 2, 3)), np.zeros((10, 2, 3)), ValueError, "N x C x H x W"),
    (np.array([0.0, np.nan, 1.0]), np.zeros(3), ValueError, "NaN"),
    (np.zeros(3), np.array([0.0, np.inf, 1.0]), ValueError, "NaN or infinite"),
])
def test_affinity_score_errors(x, y, exc, fragment):
    with pytest.raises(exc, match=fragment):
        affinity_score(x, y)


# --------------------------------------------------------------------------------------------------
# the signature: hooks, order, in-place activations


def test_lenet_signature_has_its_four_relus_in_forward_order():
    torch.manual_seed(0)
    model = nadlib.get_model("lenet", in_channels=3, num_classes=10).train()
    sig = nonlinearity_signature(model, torch.randn(300, 3, 32, 32), n_samples=256, run=RunControl(progress=False))
    assert sig.names == ("features.1", "features.4", "classifier.2", "classifier.4")
    assert sig.dims == (6, 16, 120, 84) and sig.kinds == ("ReLU",) * 4
    assert sig.n_samples == 256 and len(sig) == 4
    assert np.all((sig.rho >= 0) & (sig.rho <= 1))
    assert model.training  # mode restored
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # hooks removed
    assert "lenet" not in repr(sig) and "features.4" in repr(sig)


def test_signature_is_that_of_the_recorded_layers():
    """The score of a layer equals affinity_score on its (pre-activation, activation) pair computed by hand."""
    torch.manual_seed(1)
    model = nadlib.get_model("lenet", in_channels=3, num_classes=10)
    x = torch.randn(200, 3, 32, 32)
    sig = nonlinearity_signature(model, x, n_samples=200, run=RunControl(progress=False))
    with torch.no_grad():
        pre = model.features[0](x)
    assert sig.rho[0] == pytest.approx(affinity_score(pre, torch.relu(pre)), abs=1e-9)


class _InPlaceNet(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.act = nn.ReLU(inplace=inplace)

    def forward(self, x):
        return self.act(self.lin(x))


def test_inplace_relu_input_is_captured_before_it_is_overwritten():
    """An in-place ReLU overwrites its input; read from a forward hook it would equal the output
    (rho = 1).  The pre-hook clone gives the same score as the out-of-place ReLU."""
    x = torch.randn(500, 3)
    scores = []
    for inplace in (False, True):
        torch.manual_seed(0)
        scores.append(nonlinearity_signature(_InPlaceNet(inplace), x, n_samples=500,
                                             run=RunControl(progress=False)).rho[0])
    assert scores[0] == pytest.approx(scores[1], abs=1e-12)
    assert scores[1] < 0.95


def test_vgg_inplace_relus_are_all_found():
    torch.manual_seed(0)
    model = nadlib.get_model("vgg11", in_channels=3, num_classes=10)
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    sig = nonlinearity_signature(model, torch.randn(520, 3, 32, 32), n_samples=520, layers=["features.2"],
                                 run=RunControl(progress=False))
    assert sig.names == ("features.2",) and sig.rho[0] < 0.95


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.lin2 = nn.Linear(4, 4), nn.Linear(4, 4)
        self.tanh = nn.Tanh()

    def forward(self, x):
        x = torch.relu(self.lin(x))
        return self.tanh(nn.functional.gelu(self.lin2(x)))


def test_functional_activations_are_recorded_in_forward_order():
    sig = nonlinearity_signature(_Functional(), torch.randn(100, 4), n_samples=100, run=RunControl(progress=False))
    assert sig.names == ("relu", "gelu", "tanh") and sig.kinds == ("relu", "gelu", "Tanh")


def test_resnet_functional_relus():
    torch.manual_seed(0)
    model = nadlib.get_model("resnet18", in_channels=3, num_classes=10)
    rec = affinity._record(model.eval(), torch.randn(2, 3, 32, 32), 2)
    assert rec.order[:3] == ["relu", "layer1.0/relu", "layer1.0/relu#2"] and len(rec.order) == 17


@pytest.mark.parametrize("kwargs, exc, fragment", [
    (dict(model="lenet"), TypeError, "nn.Module"),
    (dict(inputs=[[1.0]]), TypeError, "torch.Tensor"),
    (dict(n_samples=100), ValueError, "too few samples"),
    (dict(n_samples=2.5), TypeError, "n_samples must be an int"),
    (dict(layers="features.1"), TypeError, "sequence of layer names"),
    (dict(layers=["nope"]), ValueError, "unknown layer names"),
    (dict(inputs=torch.full((300, 3, 32, 32), float("nan"))), ValueError, "NaN"),
    (dict(model=nn.Linear(3, 3), inputs=torch.randn(10, 3)), ValueError, "no activation layers"),
])
def test_signature_errors(kwargs, exc, fragment):
    args = dict(model=nadlib.get_model("lenet", in_channels=3, num_classes=10), inputs=torch.randn(300, 3, 32, 32),
                n_samples=256, run=RunControl(progress=False))
    args.update(kwargs)
    with pytest.raises(exc, match=fragment):
        nonlinearity_signature(**args)


def test_small_layers_selection_allows_fewer_samples():
    model = nadlib.get_model("lenet", in_channels=3, num_classes=10)
    sig = nonlinearity_signature(model, torch.randn(50, 3, 32, 32), n_samples=50,
                                 layers=["features.1", "features.4"], run=RunControl(progress=False))
    assert sig.names == ("features.1", "features.4")


def test_run_signatures_round_trip(tmp_path):
    x = torch.randn(130, 3, 32, 32)
    res = nadlib.run_signatures(["lenet"], x, n_samples=128, init_seeds=[0, 1], out=tmp_path / "s.npz",
                                run=RunControl(progress=False))
    again = nadlib.run_signatures(["lenet"], x, n_samples=128, init_seeds=[0], run=RunControl(progress=False))
    np.testing.assert_array_equal(res["lenet"][0].rho, again["lenet"][0].rho)  # seeded
    loaded, meta = nadlib.load_signatures(tmp_path / "s.npz")
    assert [s.meta["init_seed"] for s in loaded["lenet"]] == [0, 1]
    np.testing.assert_allclose(loaded["lenet"][1].rho, res["lenet"][1].rho)
    assert loaded["lenet"][0].names == res["lenet"][0].names
    assert meta["n_samples"] == 128 and meta["init_seeds"] == {"lenet": [0, 1]}
    with pytest.raises(ValueError, match="unknown architecture"):
        nadlib.run_signatures(["lenet5"], x)


def test_run_signatures_resumes_from_a_checkpoint(tmp_path, monkeypatch):
    x = torch.randn(130, 3, 32, 32)
    ckpt = tmp_path / "s.ckpt.npz"
    first = nadlib.run_signatures(["lenet"], x, n_samples=128, init_seeds=[0],
                                  run=RunControl(checkpoint=ckpt, progress=False))
    assert ckpt.exists()  # kept: no `out` was written
    calls = []
    monkeypatch.setattr(affinity, "nonlinearity_signature", lambda *a, **k: calls.append(1) or first["lenet"][0])
    again = nadlib.run_signatures(["lenet"], x, n_samples=128, init_seeds=[0],
                                  run=RunControl(checkpoint=ckpt, progress=False))
    assert not calls  # the finished network was read back, not recomputed
    np.testing.assert_array_equal(again["lenet"][0].rho, first["lenet"][0].rho)
    assert again["lenet"][0].names == first["lenet"][0].names


def test_affine_fit_1d_widget_is_fast():
    pytest.importorskip("ipywidgets")
    from nadlib.book.widgets import AffinityExplorer

    w = AffinityExplorer(n=2000)
    w.function.value = "tanh"
    w.mean.value = 1.5
    assert w.fit.name == "tanh" and w.fit.mean == 1.5 and w.last_seconds < 0.5
