"""Chapter 1 figures: the right data on the right axes; the Plotly map's menu, hover and post-script.

The browser test at the end opens a standalone HTML page of the interactive figure in headless
Chromium (skipped, with the reason, when Chromium or Playwright is missing), hovers a cell and checks
that the direction image and its title follow the hovered frequency, then switches architecture.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import nadlib  # noqa: E402
from nadlib import GridResult  # noqa: E402
from nadlib import directions as D  # noqa: E402
from nadlib.book import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _grid(arch, stride, value_of):
    return GridResult(arch, {f: value_of(*f) for f in nadlib.fourier_grid(32, stride)}, 32,
                      {"profile": "test", "n_train": 10, "n_test": 10, "epochs": 1, "device": "cpu"})


def test_signed_frequency():
    assert [D.signed_frequency(k) for k in (0, 1, 15, 16, 17, 31)] == [0, 1, 15, -16, -15, -1]
    with pytest.raises(ValueError):
        D.signed_frequency(32)
    with pytest.raises(TypeError):
        D.signed_frequency(1.5)


def test_shifted_map_puts_dc_at_the_centre():
    signed, shifted = P.shifted_accuracy_map({(0, 0): 0.9, (3, 2): 0.7})
    assert signed[16] == 0 and signed[0] == -16 and signed[-1] == 15
    assert shifted[16, 16] == 0.9                     # (kx, ky) = (0, 0)
    assert shifted[16 + 2, 16 + 3] == 0.7             # row = ky, column = kx
    assert shifted[16 - 2, 16 - 3] == 0.7             # the mirror (-3, -2) has the same value
    assert np.isnan(shifted).sum() == 32 * 32 - 3


def test_lattice_of_a_coarse_grid():
    coords, values, step = P.accuracy_lattice(_grid("x", 4, lambda kx, ky: 0.6))
    assert step == 4 and list(coords) == list(range(-16, 16, 4))
    assert values.shape == (8, 8) and np.all(values == 0.6)  # every lattice point trained (mirrors filled)
    coords, values, step = P.accuracy_lattice({(1, 0): 0.8})
    assert step == 1 and values.shape == (32, 32)


def test_accuracy_map_axes_and_data():
    grid = _grid("lenet", 8, lambda kx, ky: 0.5 + 0.5 * (kx == 0))
    ax = P.plot_accuracy_map(grid, mark=[(8, 0)])
    im = ax.images[0]
    data = np.ma.filled(im.get_array(), np.nan)
    coords, values, _ = P.accuracy_lattice(grid)
    np.testing.assert_array_equal(data, values)
    assert im.get_clim() == (0.5, 1.0)
    assert im.origin == "lower"
    assert "kx" in ax.get_xlabel() and "ky" in ax.get_ylabel() and ax.get_title() == "lenet"
    # DC sits at the centre of its cell: value at (kx, ky) = (0, 0) is 1.0
    j = list(coords).index(0)
    assert data[j, j] == 1.0 and data[j, j + 1] == 0.5
    # the marker is at the signed frequency
    (line,) = ax.lines
    assert tuple(line.get_xydata()[0]) == (8.0, 0.0)


def test_zoom_on_low_frequencies():
    band = {(kx % 32, ky): 0.8 for kx in range(-2, 3) for ky in range(0, 3)}
    ax = P.plot_accuracy_map(band, zoom=2)
    assert ax.get_xlim() == (-2.5, 2.5) and ax.get_ylim() == (-2.5, 2.5)
    with pytest.raises(ValueError):
        P.plot_accuracy_map(band, zoom=0)


def test_nan_is_grey_and_labelled():
    ax = P.plot_accuracy_map({(1, 0): 0.9})
    cmap = ax.images[0].get_cmap()
    assert matplotlib.colors.to_hex(cmap.get_bad()) == P.NOT_TRAINED_COLOR
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["not trained"]


def test_maps_side_by_side_and_missing_panel():
    grids = {"LogReg": _grid("logreg", 8, lambda kx, ky: 1.0), "ResNet-18": None,
             "LeNet": _grid("lenet", 8, lambda kx, ky: 0.5)}
    fig = P.plot_accuracy_maps(grids)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3
    assert [ax.get_title().splitlines()[0] for ax in panels] == ["LogReg", "ResNet-18", "LeNet"]
    assert len(panels[1].images) == 0 and "no artifact" in panels[1].texts[0].get_text()
    assert np.nanmean(panels[0].images[0].get_array()) == 1.0
    assert "test profile" in panels[0].get_title()  # the provenance caption


def test_fourier_direction_images():
    freqs = [(0, 0), (1, 0), (5, 3)]
    fig = P.plot_fourier_directions(freqs, ncols=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3
    for ax, f in zip(shown, freqs):
        np.testing.assert_allclose(ax.images[0].get_array(), nadlib.fourier_direction(*f).numpy())
        assert str(f) in ax.get_title()
    with pytest.raises(ValueError):
        P.plot_fourier_directions([])


def test_learning_curves():
    h = nadlib.TrainResult(epochs=[1, 2, 3], train_acc=[0.6, 0.8, 0.9], test_acc=[0.55, 0.7, 0.85])
    ax = P.plot_learning_curves({"lenet": h})
    ys = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert ys["lenet (test)"] == h.test_acc and ys["lenet (train)"] == h.train_acc
    assert ys["chance"] == [0.5, 0.5]


def test_pooling_aliasing_numbers():
    low, nyq, mid, diag = P.pooling_aliasing([(1, 0), (16, 15), (5, 3), (8, 8)])
    # a 2x2 average pool has gain |cos(pi kx / 32) cos(pi ky / 32)| on a sine
    assert math.isclose(low["avg_gain"], math.cos(math.pi / 32), rel_tol=1e-9)
    assert math.isclose(mid["avg_gain"], math.cos(5 * math.pi / 32) * math.cos(3 * math.pi / 32), rel_tol=1e-9)
    assert nyq["avg_gain"] < 1e-9 and nyq["max_contrast"] < 1e-9  # kx = 16: erased by both poolings
    assert 0 < mid["max_contrast"] < 1
    assert nyq["folded"] == (0, -1) and diag["folded"] == (-8, -8) and low["folded"] == (1, 0)
    fig = P.plot_pooling_aliasing([(1, 0), (16, 15)])
    assert len([ax for ax in fig.axes if ax.images]) == 6


def test_accuracy_vs_pooling():
    grid = _grid("lenet", 8, lambda kx, ky: 0.5 + 0.01 * kx)
    ax = P.plot_accuracy_vs_pooling({"lenet": grid, "none": None})
    (points, chance) = ax.lines
    xs, ys = points.get_data()
    freqs = sorted(grid.accuracy)
    assert list(ys) == [grid.accuracy[f] for f in freqs]
    assert list(xs) == [r["max_contrast"] for r in P.pooling_aliasing(freqs)]


