"""Kernel-free Plotly figures of Chapters 2 and 3 (:mod:`nadlib.book.interactive`): structure, slider steps,
and the data stored at a step equal the source values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nadlib
from nadlib.book import interactive

pytest.importorskip("plotly", reason="plotly is not installed (pip install -r requirements.txt)")


def _nads(k=40, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(k, channels * 32 * 32, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(d.T)
    dirs = q.T.reshape(k, channels, 32, 32).float()
    return nadlib.NADs(directions=dirs, eigenvalues=torch.linspace(1, 0.1, k, dtype=torch.float64),
                       n_networks=10, method="gradient", stability={}, meta={})


def test_slider_indices():
    assert interactive.slider_indices(5, 24) == [0, 1, 2, 3, 4]
    idx = interactive.slider_indices(1024, 24)
    assert len(idx) <= 24 and idx[0] == 0 and idx[-1] == 1023 and idx == sorted(set(idx))
    assert interactive.slider_indices(1024, 3, wanted=[0, 10, 100, 1000, 5000]) == [0, 100, 1000]
    with pytest.raises(ValueError, match="none of the requested"):
        interactive.slider_indices(10, 4, wanted=[20])
    with pytest.raises(ValueError, match="max_steps"):
        interactive.slider_indices(10, 1)


def test_nad_explorer_structure_and_step_data():
    a, b = _nads(seed=0), _nads(seed=1)
    fig = interactive.nad_explorer_plotly({"A": a, "B": b}, max_steps=6)
    assert [t.type for t in fig.data] == ["heatmap"] * 4
    assert [t.visible for t in fig.data] == [True, True, False, False]
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 6 and [s.label for s in steps] == [str(i) for i in interactive.slider_indices(40, 6)]
    step = steps[3]
    i = int(step.label)
    z = step.args[0]["z"]
    assert list(step.args[2]) == [0, 1, 2, 3] and len(z) == 4
    img = a.directions[i].sum(0).double().numpy()
    np.testing.assert_allclose(z[0], 100 * img / abs(img).max(), atol=0.51)
    energy = nadlib.fourier_energy(a.directions[i]).numpy()
    np.testing.assert_allclose(z[1], 100 * energy / energy.max(), atol=0.51)
    np.testing.assert_allclose(z[2], interactive.nad_panels(b, i)[0])
    assert np.max(z[3]) == 100 and np.min(z[3]) >= 0
    menu = fig.layout.updatemenus[0].buttons
    assert [m.label for m in menu] == ["A", "B"] and list(menu[1].args[0]["visible"]) == [False, False, True, True]


def test_nad_explorer_with_trainability_visits_measured_indices():
    nads = _nads()
    curves = {"secant": (np.array([0, 5, 20, 39]), np.array([0.99, 0.9, 0.6, 0.51]))}
    fig = interactive.nad_explorer_plotly({"LeNet": nads}, trainability=curves)
    assert fig.data[-1].type == "scatter" and list(fig.data[-1].x) == [0, 5, 20, 39]
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "5", "20", "39"]
    layout = steps[2].args[1]
    assert layout["shapes[0].x0"] == 20 and "test acc. 0.600" in layout["title.text"]
    assert fig.layout.updatemenus == ()  # one architecture: no menu


def test_nad_explorer_json_stays_small():
    fig = interactive.nad_explorer_plotly({"A": _nads(k=1024 // 16), "B": _nads(k=64, seed=2)})
    size = len(fig.to_json())
    print(f"\nexplorer JSON, 2 architectures, {len(fig.layout.sliders[0].steps)} steps: {size / 1e3:.0f} kB")
    assert size < 500_000


def _sweep():
    return {"indices": np.array([0, 2, 10, 100, 500]), "test_acc": np.array([0.1, 0.2, 0.4, 0.5, 0.55]),
            "carrier_acc": np.array([0.9, 0.8, 0.3, 0.12, 0.1]), "clean_test_acc": np.array(0.56)}


def test_poisoning_structure_and_step_data():
    sweep = _sweep()
    g = torch.Generator().manual_seed(0)
    examples = {int(i): torch.rand(3, 32, 32, generator=g) for i in sweep["indices"]}
    fig = interactive.poisoning_plotly(sweep, examples)
    assert [t.type for t in fig.data] == ["scatter", "scatter", "image"]
    np.testing.assert_allclose(fig.data[0].y, sweep["test_acc"])
    np.testing.assert_allclose(fig.data[1].y, sweep["carrier_acc"])
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "2", "10", "100", "500"]
    step = steps[3]
    assert list(step.args[2]) == [2] and step.args[1]["shapes[0].x0"] == 100
    assert "clean test acc. 0.500, carrier acc. 0.120" in step.args[1]["title.text"]
    img = np.asarray(step.args[0]["z"][0], dtype=float)
    np.testing.assert_allclose(img, examples[100].permute(1, 2, 0).numpy() * 255, atol=0.51)
    assert fig.layout.shapes[1].y0 == pytest.approx(0.56)
    json.loads(fig.to_json())


def test_poisoning_accepts_a_sequence_and_refuses_bad_input():
    sweep = _sweep()
    seq = [np.full((1, 8, 8), 0.5)] * 5
    fig = interactive.poisoning_plotly(sweep, seq, max_steps=2)
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "500"]
    assert np.asarray(fig.data[2].z).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="one image per index"):
        interactive.poisoning_plotly(sweep, seq[:2])
    with pytest.raises(ValueError, match="no example image"):
        interactive.poisoning_plotly(sweep, {0: seq[0]})
    with pytest.raises(ValueError, match="carrier_acc"):
        interactive.poisoning_plotly({"indices": [0], "test_acc": [0.1]}, [seq[0]])


def test_figures_render_through_the_books_offline_plotly_path():
    """The static HTML path (book/_ext/nadbook_sphinx.py): no CDN, the slider steps are in the page."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("docutils", reason="the book's Sphinx extension needs docutils (pip install -r requirements.txt)")
    path = Path(__file__).resolve().parents[1] / "book" / "_ext" / "nadbook_sphinx.py"
    spec = importlib.util.spec_from_file_location("nadbook_sphinx_for_interactive", path)
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    figs = [interactive.nad_explorer_plotly({"A": _nads()}, max_steps=3),
            interactive.poisoning_plotly(_sweep(), [np.zeros((3, 4, 4))] * 5)]
    for fig in figs:
        html = ext.plotly_json_to_html(json.loads(fig.to_json()))
        assert "Plotly.newPlot" in html and "cdn" not in html.lower()
        assert html.count('"method":"update"') == len(fig.layout.sliders[0].steps)
