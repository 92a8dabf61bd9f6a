"""Chapter 1 widgets: built without training, callbacks work (tiny sizes), outputs change."""

from __future__ import annotations


import matplotlib
import pytest

matplotlib.use("Agg")

pytest.importorskip("ipywidgets")

import nadlib  # noqa: E402
from nadlib import GridResult  # noqa: E402
from nadlib.book.widgets import fourier_train_widget  # noqa: E402


@pytest.fixture()
def grids():
    # LogReg: known accuracy on a stride-8 grid; LeNet: only two frequencies (the rest not trained)
    logreg = GridResult("logreg", {f: 0.9 + 0.01 * i for i, f in enumerate(nadlib.fourier_grid(32, 8))}, 32,
                        {"profile": "test", "n_train": 100, "n_test": 50, "epochs": 1, "device": "cpu"})
    lenet = GridResult("lenet", {(8, 0): 0.5, (0, 8): 0.8}, 32, {"profile": "test"})
    return {"logreg": logreg, "lenet": lenet}


def test_train_widget_builds_without_training(grids, monkeypatch):
    import nadlib.book.widgets

    def fail(*args, **kwargs):
        raise AssertionError("building the widget must not train")

    monkeypatch.setattr(nadlib.book.widgets, "direction_accuracy", fail)
    box = fourier_train_widget(grids, nadlib.get_profile("smoke"), stride=8, display_widget=False)
    # half-plane ky in {16, 8, 0} x kx in {-16, -8, 0, 8}: 12 buttons
    assert len(box.buttons) == 12
    assert box.results == []
    # colours follow the precomputed accuracies of the chosen architecture; untrained squares are grey
    from nadlib.book.plotting import NOT_TRAINED_COLOR
    from nadlib.book.widgets import accuracy_color as _hex_color

    assert box.buttons[(8, 0)].style.button_color == _hex_color(grids["logreg"].accuracy[(8, 0)])
    box.arch.value = "lenet"
    assert box.buttons[(8, 0)].style.button_color == _hex_color(0.5)
    assert box.buttons[(0, 8)].style.button_color == _hex_color(0.8)
    assert box.buttons[(16, 16)].style.button_color == NOT_TRAINED_COLOR
    assert _hex_color(0.5) != _hex_color(0.8)


def test_click_then_train_now_updates_outputs(grids):
    box = fourier_train_widget(grids, nadlib.get_profile("smoke"), stride=8, n_train=64, n_test=32, epochs=2,
                               device="cpu", display_widget=False)
    box.buttons[(24, 8)].click()  # signed (-8, 8)
    assert box.selected[0] == (24, 8)
    assert "(24, 8)" in box.status.value
    assert box.buttons[(24, 8)].icon == "check" and box.buttons[(0, 0)].icon == ""
    assert box.output.outputs == ()
    box.train_button.click()
    assert len(box.results) == 1
    arch, freq, hist = box.results[0]
    assert (arch, freq) == ("logreg", (24, 8))
    assert hist.epochs == [1, 2] and 0.0 <= hist.final_test_acc <= 1.0
    assert f"{hist.final_test_acc:.3f}" in box.status.value
    assert len(box.output.outputs) == 1 and "image/png" in box.output.outputs[0]["data"]
    assert not box.train_button.disabled
    # the same click with the same seed gives the same run (deterministic)
    box.train_button.click()
    assert box.results[1][2].test_acc == hist.test_acc


def test_train_widget_rejects_bad_input(grids):
    with pytest.raises(ValueError, match="stride"):
        fourier_train_widget(grids, stride=5, display_widget=False)
    with pytest.raises(ValueError, match="known"):
        fourier_train_widget(grids, archs=["alexnet"], display_widget=False)


def test_stored_results_are_browsed_in_plotly_not_in_widgets():
    """One interactive stack: ipywidgets only where something is computed live."""
    import nadlib.book.widgets

    for gone in ("accuracy_map_switcher", "MapSwitcher", "nad_explorer", "NADExplorer", "flip_widget", "FlipWidget"):
        assert not hasattr(nadlib.book.widgets, gone), gone


def test_train_now_streams_each_epoch_beside_the_stored_answer(grids, monkeypatch):
    import nadlib.book.widgets

    box = fourier_train_widget(grids, nadlib.get_profile("smoke"), stride=8, n_train=64, n_test=32, epochs=3,
                               device="cpu", display_widget=False)
    box.buttons[(8, 0)].click()  # stored LogReg accuracy 0.9 + 0.01 * its index
    stored = f"{grids['logreg'].accuracy[(8, 0)]:.3f}"
    statuses = []
    real_figure_png = nadlib.book.widgets.figure_png

    def spy(fig):  # the status shown each time the learning curve is redrawn
        statuses.append(box.status.value)
        return real_figure_png(fig)

    monkeypatch.setattr(nadlib.book.widgets, "figure_png", spy)
    box.train_button.click()
    hist = box.results[0][2]
    assert len(statuses) == 3  # one reading per epoch
    for epoch, (status, acc) in enumerate(zip(statuses, hist.test_acc), start=1):
        se = (max(acc * (1 - acc), 0.25 / 32) / 32) ** 0.5
        assert f"epoch {epoch} of 3: test accuracy <b>{acc:.3f} ± {se:.3f}</b>" in status
        assert f"stored: <b>{stored}</b>" in status
    assert "final test accuracy" in box.status.value and f"stored: <b>{stored}</b>" in box.status.value
    assert 0 < box.first_reading_s <= box.final_answer_s
    # no stored answer for an untrained square: none is claimed
    box.arch.value = "lenet"
    box.buttons[(16, 16)].click()
    box.train_button.click()
    assert "stored:" not in box.status.value
