"""Neural-collapse measures (nadlib.collapse): exact answers on constructed features, the tracker on
every architecture, and the ``on_epoch_end`` hook of ``nadlib.train``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import nadlib
from nadlib import CollapseTracker, collapse_metrics, penultimate_layer, run_collapse, train
from nadlib.collapse import METRICS, CollapseRun
from nadlib import Recipe, RunControl

torch.set_num_threads(1)


def simplex_etf(c: int, d: int, r: float, seed: int = 0) -> torch.Tensor:
    """``C x D`` class means: a simplex ETF of norm ``r`` (centred, pairwise cosine ``-1/(C-1)``),
    embedded in ``R^D`` by a random orthonormal ``D x C`` matrix."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, c, generator=gen, dtype=torch.float64))
    centred = torch.eye(c, dtype=torch.float64) - 1.0 / c
    return r * math.sqrt(c / (c - 1)) * (q @ centred).T


def balanced_labels(c: int, n_per_class: int) -> torch.Tensor:
    return torch.arange(c).repeat_interleave(n_per_class)


@pytest.mark.parametrize("c, d", [(2, 5), (3, 3), (10, 84), (10, 512)])
def test_perfect_collapse_is_zero(c, d):
    """Features equal to simplex-ETF means, classifier = means: NC1-NC4 vanish."""
    mu = simplex_etf(c, d, r=3.0)
    assert torch.allclose(mu.sum(0), torch.zeros(d, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(mu.norm(dim=1), torch.full((c,), 3.0, dtype=torch.float64))
    y = balanced_labels(c, 7)
    m = collapse_metrics(mu[y], y, mu)
    assert m.nc1 == pytest.approx(0, abs=1e-20)
    assert m.nc2_equinorm == pytest.approx(0, abs=1e-12)
    assert m.nc2_equiangular == pytest.approx(0, abs=1e-12)
    assert m.nc3 == pytest.approx(0, abs=1e-12)
    assert m.nc4 == 0 and m.accuracy == 1
    assert (m.n_samples, m.num_classes, m.dim) == (7 * c, c, d)
    # float32 inputs and numpy arrays give the same answers (statistics are float64 anyway)
    m32 = collapse_metrics(mu[y].float().numpy(), y.numpy(), mu.float().numpy())
    assert m32.nc1 < 1e-10 and m32.nc3 < 1e-10 and m32.nc4 == 0


def test_nc3_is_scale_free_and_sees_misalignment():
    mu = simplex_etf(4, 6, r=2.0)
    y = balanced_labels(4, 3)
    assert collapse_metrics(mu[y], y, 17.0 * mu).nc3 == pytest.approx(0, abs=1e-12)
    # classifier rows permuted: a different frame, NC3 = ||A - B||^2 for two unit-norm matrices = 2 - 2<A,B>
    perm = mu[[1, 0, 2, 3]]
    expected = 2 - 2 * float((perm * mu).sum() / (mu.norm() ** 2))
    assert collapse_metrics(mu[y], y, perm).nc3 == pytest.approx(expected, rel=1e-12)


def test_nc2_sees_unequal_norms_and_angles():
    mu = simplex_etf(3, 4, r=1.0)
    y = balanced_labels(3, 2)
    # scale one centred mean: the global mean moves, so rebuild features around means with norms a, a, b
    stretched = mu * torch.tensor([[1.0], [1.0], [2.0]], dtype=torch.float64)
    m = collapse_metrics(stretched[y], y, stretched)
    assert m.nc2_equinorm > 0.1 and m.nc2_equiangular > 0.01
    # orthogonal (not equiangular at -1/(C-1)) means of equal norm about their centre
    eye = torch.eye(3, dtype=torch.float64)
    m2 = collapse_metrics(eye[y], y, eye)
    # centred one-hot vectors are a simplex ETF (norm sqrt(2/3)): collapse measures are 0
    assert m2.nc2_equinorm == pytest.approx(0, abs=1e-12) and m2.nc2_equiangular == pytest.approx(0, abs=1e-12)


def test_nc1_matches_the_textbook_formula():
    """The SVD route equals tr(Sigma_W Sigma_B^+)/C with explicit D x D matrices (imbalanced classes)."""
    gen = torch.Generator().manual_seed(3)
    c, d = 4, 6
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3])
    h = torch.randn(len(y), d, generator=gen, dtype=torch.float64) + 3 * torch.randn(c, d, generator=gen,
                                                                                    dtype=torch.float64)[y]
    means = torch.stack([h[y == k].mean(0) for k in range(c)])
    mu_g = h.mean(0)
    M = (means - mu_g).T
    sw = (h - means[y]).T @ (h - means[y]) / len(h)
    sb = M @ M.T / c
    expected = float(torch.trace(sw @ torch.linalg.pinv(sb)) / c)
    assert collapse_metrics(h, y, torch.randn(c, d, generator=gen)).nc1 == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("c, d, r, sigma, n", [(10, 64, 2.0, 0.5, 200), (3, 20, 1.0, 1.0, 500), (2, 8, 4.0, 2.0, 1000)])
def test_nc1_of_isotropic_noise(c, d, r, sigma, n):
    """NC1 of simplex-ETF means plus isotropic Gaussian noise: sigma^2 (C-1)^2 / (r^2 C) in the population.

    Derivation.  Population: ``Sigma_W = sigma^2 I_D``.  ``M^T M`` (the Gram matrix of the ETF) is
    ``r^2 C/(C-1) (I - 11^T/C)``: eigenvalue ``r^2 C/(C-1)`` with multiplicity ``C-1``, so ``Sigma_B =
    M M^T / C`` has ``C-1`` eigenvalues ``r^2/(C-1)`` and ``Sigma_B^+`` has ``C-1`` eigenvalues
    ``(C-1)/r^2`` on the span ``S`` of the means.  Hence ``tr(Sigma_W Sigma_B^+) / C = sigma^2 (C-1)
    (C-1)/r^2 / C``.

    Finite sample, exactly.  We centre the noise within each class (subtract its class mean), so the
    sample class means *are* the ETF and ``Sigma_B`` is exact.  Then ``NC1 = (C-1)/(r^2 C N) * sum_i
    ||P_S e_i||^2`` with ``e_i`` the centred noise; in each of the ``C-1`` orthonormal directions of ``S``
    and each class, the ``n`` centred projections have sum of squares ``sigma^2 chi^2_{n-1}``, all
    independent, so ``sum_i ||P_S e_i||^2 = sigma^2 chi^2_k`` with ``k = C (C-1) (n-1)`` degrees of freedom:
    ``E[NC1] = population * (n-1)/n`` and ``sd[NC1] = population * sqrt(2k) / k * (n-1)/n``.  We accept
    5 standard deviations (a false alarm has probability < 1e-6 by the chi-square tail).
    """
    mu = simplex_etf(c, d, r, seed=1)
    y = balanced_labels(c, n)
    gen = torch.Generator().manual_seed(2)
    noise = sigma * torch.randn(len(y), d, generator=gen, dtype=torch.float64)
    for k in range(c):
        noise[y == k] -= noise[y == k].mean(0)
    m = collapse_metrics(mu[y] + noise, y, mu)
    population = sigma ** 2 * (c - 1) ** 2 / (r ** 2 * c)
    dof = c * (c - 1) * (n - 1)
    mean = population * (n - 1) / n
    sd = mean * math.sqrt(2 * dof) / dof
    assert abs(m.nc1 - mean) < 5 * sd, (m.nc1, mean, sd)
    # the class means are still the exact ETF
    assert m.nc2_equinorm < 1e-12 and m.nc2_equiangular < 1e-12 and m.nc3 < 1e-12

    # without centring (raw noise) the sample means move too (by ~sigma/sqrt(n) per coordinate), a bias
    # of relative order sigma^2 D / (n r^2) <= 0.04 here; a loose sanity check only (measured: -7% to +2%)
    raw = collapse_metrics(mu[y] + sigma * torch.randn(len(y), d, generator=gen, dtype=torch.float64), y, mu)
    assert raw.nc1 == pytest.approx(population, rel=0.15)

    # a nearest-class-mean classifier from the same features: W rows 2 mu_c, bias -||mu_c||^2
    h = mu[y] + noise
    means = torch.stack([h[y == k].mean(0) for k in range(c)])
    ncc = collapse_metrics(h, y, 2 * means, -(means ** 2).sum(1))
    assert ncc.nc4 == 0


def test_two_balanced_classes_with_close_means():
    """C = 2, balanced: M = [d/2, -d/2] has rank 1 (its second singular value is rounding noise), and
    NC1 = tr(Sigma_W (M M^T)^+) = 2 d^T Sigma_W d / ||d||^4 with d = mu_1 - mu_0.  Float32 features, as
    a network gives them (ReLU, common offset), with means only 1e-3 apart: the rounding direction must
    not count (a pinv-style cut-off at max(D, C) * eps kept it and gave NC1 ~1e26 times too large)."""
    gen = torch.Generator().manual_seed(5)
    y = balanced_labels(2, 500)
    h = (10 + torch.relu(torch.randn(1000, 84, generator=gen))
         + 1e-3 * y[:, None] * torch.randn(84, generator=gen)).float()
    h64 = h.double()
    d = h64[y == 1].mean(0) - h64[y == 0].mean(0)
    centred = h64 - torch.stack([h64[y == 0].mean(0), h64[y == 1].mean(0)])[y]
    sw = centred.T @ centred / len(h)
    expected = float(2 * d @ sw @ d / d.norm() ** 4)
    assert collapse_metrics(h, y, torch.randn(2, 84, generator=gen)).nc1 == pytest.approx(expected, rel=1e-6)


_BAD = [
    (dict(features=[[1.0, 2.0]]), TypeError, "torch.Tensor or numpy"),
    (dict(features=torch.ones(6, 3, dtype=torch.long)), TypeError, "floating-point"),
    (dict(features=torch.ones(6)), ValueError, r"shape \(N, D\)"),
    (dict(features=torch.ones(0, 3)), ValueError, "empty"),
    (dict(features=torch.full((6, 3), float("nan"))), ValueError, "NaN"),
    (dict(weight=torch.ones(3, 4)), ValueError, "columns"),
    (dict(weight=torch.ones(3)), ValueError, r"shape \(C, D\)"),
    (dict(weight=torch.tensor([[1.0, float("inf"), 0.0]] * 3)), ValueError, "NaN or infinite"),
    (dict(weight=torch.ones(1, 3), labels=torch.zeros(6, dtype=torch.long)), ValueError, "at least 2 classes"),
    (dict(labels=torch.tensor([0, 1, 2, 0, 1, 3])), ValueError, r"in \[0, 2\]"),
    (dict(labels=torch.tensor([0, 1, 2, 0, 1, -2])), ValueError, r"in \[0, 2\]"),
    (dict(labels=torch.tensor([0.0, 1, 2, 0, 1, 2])), TypeError, "integer"),
    (dict(labels=torch.tensor([0, 1, 2, 0, 1])), ValueError, "6 samples but labels has 5"),
    (dict(labels=torch.tensor([[0, 1, 2, 0, 1, 2]])), ValueError, "1-D"),
    (dict(labels=torch.tensor([0, 1, 0, 0, 1, 1])), ValueError, r"class\(es\) \[2\] have no samples"),
    (dict(bias=torch.ones(2)), ValueError, r"bias must have shape \(3,\)"),
    (dict(bias=torch.ones(3, dtype=torch.long)), TypeError, "bias must be floating-point"),
    (dict(bias=torch.tensor([0.0, float("nan"), 1.0])), ValueError, "bias contains NaN"),
]


# ids without regex escapes: node ids holding backslashes cannot be selected again (mutmut selects tests by id)
@pytest.mark.parametrize("override, err, match", _BAD, ids=[re.sub(r"[^\w.,-]+", " ", m).strip() for _, _, m in _BAD])
def test_bad_input(override, err, match):
    args = dict(features=torch.randn(6, 3), labels=torch.tensor([0, 1, 2, 0, 1, 2]), weight=torch.randn(3, 3),
                bias=None)
    args.update(override)
    with pytest.raises(err, match=match):
        collapse_metrics(**args)


def test_pm1_labels_and_degenerate_features():
    h = torch.tensor([[1.0, 0.0], [1.2, 0.1], [-1.0, 0.0], [-0.9, -0.1]])
    a = collapse_metrics(h, torch.tensor([1, 1, -1, -1]), torch.eye(2))
    b = collapse_metrics(h, torch.tensor([1, 1, 0, 0]), torch.eye(2))
    assert a == b
    with pytest.warns(RuntimeWarning, match="class means coincide"):  # issue 20: no tie-broken NC4
        dead = collapse_metrics(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), torch.eye(2))
    assert math.isnan(dead.nc1) and math.isnan(dead.nc3) and math.isnan(dead.nc4)


@pytest.mark.parametrize("arch", nadlib.ARCHITECTURES)
def test_tracker_captures_the_last_layer_features_of_every_architecture(arch):
    torch.manual_seed(0)
    model = nadlib.get_model(arch, in_channels=1, num_classes=3)
    layer = penultimate_layer(model)
    assert layer.out_features == 3
    x, y = torch.randn(6, 1, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    tracker = CollapseTracker(model, x, y, x[:3], y[:3], batch_size=4)
    model.train()
    tracker(0, model)
    tracker(1, model)
    assert model.training  # mode restored
    hist = tracker.history()
    assert list(hist["epoch"]) == [0, 1] and hist["dim"][0] == layer.in_features
    for key in METRICS:
        assert np.isfinite(hist[key]).all() and np.isfinite(hist[f"test_{key}"]).all(), key
    # the captured features reproduce the network's outputs through the last layer
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).double().mean().item()
    assert hist["accuracy"][0] == pytest.approx(acc)
    assert not layer._forward_pre_hooks  # the hook is removed after each measurement


def test_tracker_bad_input():
    model = nadlib.get_model("logreg")
    with pytest.raises(TypeError, match="nn.Module"):
        penultimate_layer("lenet")
    with pytest.raises(ValueError, match="no nn.Linear"):
        penultimate_layer(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match="samples"):
        CollapseTracker(model, torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="both"):
        CollapseTracker(model, torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 0, 1]), x_test=torch.randn(2, 1, 32, 32))


def test_train_calls_on_epoch_end_once_per_epoch():
    x, y = nadlib.linear_separable(nadlib.fourier_direction(1, 0), 64, seed=0, device="cpu")
    calls = []

    def record(epoch, model):
        calls.append((epoch, model.training))
        model.eval()  # train() must put the model back in train mode

    torch.manual_seed(0)
    model = nadlib.get_model("lenet")
    train(model, x, y, x, y, eval_every=2, on_epoch_end=record, recipe=Recipe(epochs=3),
          run=RunControl(progress=False, device="cpu"))
    assert calls == [(1, True), (2, True), (3, True)]
    assert model.training


def test_tracker_in_train_records_one_row_per_epoch():
    x, y = nadlib.linear_separable(nadlib.fourier_direction(1, 0), 64, seed=0, device="cpu")
    torch.manual_seed(0)
    model = nadlib.get_model("lenet")
    tracker = CollapseTracker(model, x, y)
    train(model, x, y, on_epoch_end=tracker, recipe=Recipe(epochs=4), run=RunControl(progress=False, device="cpu"))
    assert [r["epoch"] for r in tracker.rows] == [1, 2, 3, 4]


def test_run_collapse_reaches_zero_error_and_collapses(tmp_path):
    """run_collapse records epochs 0..E, the loss, and writes an artifact that loads back."""
    data = nadlib.separable_data(nadlib.fourier_direction(1, 0), 40, 40, seed=0, device="cpu")
    out = tmp_path / "c.npz"
    run = run_collapse("lenet", data, 3, out=out, profile="test", run=RunControl(progress=False, device="cpu"))
    assert list(run.history["epoch"]) == [0, 1, 2, 3]
    assert math.isnan(run.history["loss"][0]) and np.isfinite(run.history["loss"][1:]).all()
    loaded = CollapseRun.from_artifact(out)
    assert loaded.arch == "lenet" and loaded.settings["profile"] == "test" and loaded.settings["n_train"] == 40
    np.testing.assert_array_equal(loaded.history["nc1"], run.history["nc1"])
    assert loaded.zero_error_epoch == run.zero_error_epoch
    with pytest.raises(ValueError, match="epochs"):
        run_collapse("lenet", data, 0)
    with pytest.raises(TypeError, match="dict"):
        run_collapse("lenet", (data["x_train"], data["y_train"]), 1)


def test_collapse_widget_builds_without_training_and_runs(monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    import nadlib.book.widgets
    from nadlib.book.widgets import collapse_widget

    profile = nadlib.get_profile("smoke")
    real = nadlib.book.widgets.run_collapse
    monkeypatch.setattr(nadlib.book.widgets, "run_collapse",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("building must not train")))
    nads = torch.linalg.qr(torch.randn(1024, 4, dtype=torch.float64))[0].T.reshape(4, 1, 32, 32).float()
    w = collapse_widget(profile, nads=nads, display_widget=False, device="cpu")
    assert w.runs == [] and w.source.options[1].startswith("D(u_i)") and w.nad_index.max == 3
    assert w.nad_index.disabled and w.kx.disabled  # CIFAR-10 subset selected first
    w.source.value = w.source.options[2]
    assert not w.kx.disabled and "(kx, ky) = (1, 0)" in w.status.value
    monkeypatch.setattr(nadlib.book.widgets, "run_collapse", real)
    w.epochs.value = 2
    w.source.value = w.source.options[1]
    w.nad_index.value = 3
    run = w.run()
    assert w.runs == [run] and list(run.history["epoch"]) == [0, 1, 2]
    assert run.settings["n_train"] == profile.collapse.widget_n_train
    assert "done in" in w.status.value and len(w.output.outputs) == 1
    w.source.value = w.source.options[0]  # synthetic stand-in CIFAR when no data is given
    assert w.data()["x_train"].shape[1] == 3


def test_plotting_collapse_accepts_runs_and_histories():
    import matplotlib

    matplotlib.use("Agg")
    from nadlib.book import plotting_collapse as pc

    mu = simplex_etf(3, 5, 1.0)
    y = balanced_labels(3, 4)
    row = {"epoch": 0, **collapse_metrics(mu[y], y, mu).as_dict()}
    hist = {k: np.array([row[k], row[k]]) for k in row}
    hist["epoch"] = np.array([0, 1])
    hist.update({f"test_{k}": hist[k] for k in ("nc1", "nc4", "accuracy")})
    axes = pc.plot_collapse({"a": hist, "b": CollapseRun("lenet", hist)})
    assert len(axes) == 6
    assert len(pc.plot_train_test_nc1({"a": hist})) == 2
    table = pc.collapse_table({"easy": hist})
    assert table.count("\n") == 2 and "| easy | 1.000 | 1.000 | 0 |" in table
    with pytest.raises(TypeError, match="CollapseRun"):
        pc.plot_collapse({"a": [1, 2]})
