"""ipywidgets UIs of the chapters, one small class each (every class *is* its ``VBox``), only where something
is computed live (training a direction, a NAD index, a poison level, a collapse run, a 1-D fit); stored
results are browsed in the Plotly figures of :mod:`nadlib.book.interactive`, which also work in the static book.

Each ``*_widget`` function builds one, displays it and returns it; building trains nothing.  Callbacks
show figures as PNG images (``Output.append_display_data``), so they work with or without a kernel
front-end, and the widgets expose their parts (buttons, outputs, results) for scripting and tests.
"""

from __future__ import annotations

import io
import math
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

try:
    import ipywidgets as W
    from IPython.display import Image, display
except ImportError as err:  # pragma: no cover - installed with the book's requirements
    raise ImportError("nadlib.book.widgets needs ipywidgets and IPython: pip install 'nadlib[book]'") from err

from ..affinity import FUNCTIONS_1D, affine_fit_1d
from ..bases import as_nad_basis, poison_with_nads
from ..cifar10 import balanced_subset, cifar_data
from ..collapse import run_collapse, separable_data
from ..budget import use_free_cores
from ..config import Recipe, get_device, get_profile
from ..control import RunControl
from ..directions import fourier_direction, signed_frequency
from ..experiments import CIFARHyperParams, run_poison_sweep
from ..models import ARCHITECTURES
from .plotting import (ACC_VMAX, ACC_VMIN, NOT_TRAINED_COLOR, plot_fourier_directions, plot_learning_curves,
                       plot_poisoned_examples)
from .plotting_collapse import plot_collapse
from .plotting_signature import plot_affine_fit_1d
from ..training import direction_accuracy

#: Architectures offered by the Chapter 1 "train now" widget (others can be passed explicitly).
CH1_TRAIN_ARCHS = ("logreg", "lenet", "lenet_nopool", "resnet18")


def accuracy_color(value: float | None, vmin: float = ACC_VMIN, vmax: float = ACC_VMAX) -> str:
    """Colour of an accuracy on the maps' colour scale (viridis, chance to 1); grey for NaN/None."""
    if value is None or not math.isfinite(value):
        return NOT_TRAINED_COLOR
    t = min(max((value - vmin) / (vmax - vmin), 0.0), 1.0)
    return matplotlib.colors.to_hex(matplotlib.colormaps["viridis"](t))


def figure_png(fig) -> Image:
    """An ``IPython.display.Image`` of a matplotlib figure, which is then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def _show(output: W.Output, item) -> None:
    """Replace what ``output`` shows by ``item`` (an Image, Markdown, ...)."""
    output.outputs = ()
    output.append_display_data(item)


def _shown(widget, display_widget: bool):
    if display_widget:
        display(widget)
    return widget


# --------------------------------------------------------------------------------------------------
# Chapter 1: clickable Fourier grid + "train now", and a precomputed-map switcher
# --------------------------------------------------------------------------------------------------

class FourierGrid(W.GridBox):
    """Buttons for the half-plane ``ky >= 0`` of signed frequencies with step ``stride``.

    ``.buttons`` maps unsigned ``(kx, ky)`` to its button; ``on_select(freq)`` is called on a click.
    """

    def __init__(self, size: int, stride: int, on_select):
        half = size // 2
        kxs = list(range(-half, half, stride))
        kys = list(range(half, -1, -stride))  # top row: ky = size/2, bottom row: ky = 0
        self.size = size
        self.buttons: dict = {}
        cells = [W.Label("ky \\ kx", layout=W.Layout(width="52px"))]
        cells += [W.Label(str(k), layout=W.Layout(width="30px")) for k in kxs]
        for ky in kys:
            cells.append(W.Label(str(ky), layout=W.Layout(width="52px")))
            for kx in kxs:
                button = W.Button(description="", layout=W.Layout(width="30px", height="24px", padding="0px"))
                button.freq = (kx % size, ky % size)
                button.on_click(lambda b: on_select(b.freq))
                self.buttons[button.freq] = button
                cells.append(button)
        super().__init__(cells, layout=W.Layout(grid_template_columns=f"52px repeat({len(kxs)}, 30px)",
                                                grid_gap="2px"))

    def paint(self, accuracy_of, selected) -> None:
        """Colour every button by ``accuracy_of(freq)``; mark the selected one."""
        for key, b in self.buttons.items():
            acc = accuracy_of(key)
            b.style.button_color = accuracy_color(acc)
            signed = (signed_frequency(key[0], self.size), signed_frequency(key[1], self.size))
            b.tooltip = f"(kx, ky) = {signed} = {key} mod {self.size}: " + (
                f"precomputed test accuracy {acc:.3f}" if acc == acc else "not precomputed")
            b.icon = "check" if key == selected else ""


class FourierTrainWidget(W.VBox):
    """Pick a Fourier coefficient on a clickable grid and an architecture; "train now" on D(v).

    Each square is coloured by the precomputed test accuracy of the chosen architecture in ``grids``
    (``{arch: GridResult}``, grey when not trained).  Clicking selects the frequency and shows its
    direction image; "train now" trains the architecture on D(v) with the profile's sizes and shows the
    learning curve and the final test accuracy.  Parts: ``.arch`` (Dropdown), ``.buttons``,
    ``.train_button``, ``.status`` (HTML), ``.output`` (Output), ``.selected`` (a one-item list holding
    the selected ``(kx, ky)``), ``.results`` (``(arch, (kx, ky), TrainResult)`` of the runs so far).
    """

    def __init__(self, grids: dict | None = None, profile=None, *, archs=None, stride: int | None = None,
                 n_train: int | None = None, n_test: int | None = None, epochs: int | None = None,
                 seed: int = 0, device=None, size: int = 32):
        profile = profile or get_profile()
        cfg = profile.separability
        self.grids = {k: g for k, g in (grids or {}).items() if g is not None}
        self.profile_name = profile.name
        stride = int(stride or cfg.widget_stride)
        if stride < 1 or size % stride:
            raise ValueError(f"stride must be a positive divisor of size={size}, got {stride}")
        self.sizes = {"n_train": int(n_train or cfg.n_train), "n_test": int(n_test or cfg.n_test),
                      "epochs": int(epochs or cfg.epochs)}
        self.recipe = cfg.recipe().replace(**self.sizes)
        archs = list(archs) if archs is not None else list(dict.fromkeys([*CH1_TRAIN_ARCHS[:3], *self.grids]))
        unknown = [a for a in archs if a not in ARCHITECTURES]
        if not archs or unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; known: {', '.join(ARCHITECTURES)}")
        self.seed, self.size, self.device = seed, size, get_device(device)
        self.arch = W.Dropdown(options=archs, value=archs[0], description="architecture")
        self.train_button = W.Button(description="train now", button_style="primary", icon="play")
        self.status, self.output = W.HTML(), W.Output()
        self.image = W.Output(layout=W.Layout(width="190px"))
        self.selected = [(1 % size, 0)]
        self.results: list = []
        self.grid = FourierGrid(size, stride, self.select)
        self.buttons = self.grid.buttons
        self.arch.observe(lambda _: self.repaint(), names="value")
        self.train_button.on_click(lambda _: self.train_now())
        legend = W.HTML("colour: precomputed test accuracy of the chosen architecture (purple 0.5 = chance, "
                        "yellow 1.0; grey: not precomputed); click a square to pick its frequency")
        super().__init__([W.HBox([self.arch, self.train_button]), legend, W.HBox([self.grid, self.image]),
                          self.status, self.output])
        self.select(self.selected[0])

    def accuracy_of(self, freq) -> float:
        grid = self.grids.get(self.arch.value)
        return float("nan") if grid is None else float(grid.map[freq[1], freq[0]])

    def repaint(self) -> None:
        self.grid.paint(self.accuracy_of, self.selected[0])
        self.describe()

    def describe(self) -> None:
        kx, ky = self.selected[0]
        name = self.arch.value
        acc = self.accuracy_of(self.selected[0])
        if acc == acc:
            s = self.grids[name].settings
            pre = (f"precomputed test accuracy of <b>{name}</b>: <b>{acc:.3f}</b> ({s.get('profile', '?')} "
                   f"profile, {s.get('n_train', '?')} train samples, {s.get('epochs', '?')} epochs, "
                   f"{s.get('device', '?')})")
        else:
            pre = f"no precomputed accuracy of <b>{name}</b> for this frequency"
        n = self.sizes
        self.status.value = (f"selected (kx, ky) = ({kx}, {ky}); {pre}.<br>train now: {name} on D(v), "
                             f"{n['n_train']:,} train / {n['n_test']:,} test samples, {n['epochs']} "
                             f"epochs ({self.profile_name} profile, {self.device})")

    def select(self, freq) -> None:
        self.selected[0] = freq
        _, ax = plt.subplots(figsize=(2.0, 2.1))
        _show(self.image, figure_png(plot_fourier_directions([freq], size=self.size, axes=ax)))
        self.repaint()

    def stored_answer(self) -> str:
        """The precomputed accuracy of the selection, marked as stored (empty when there is none)."""
        acc = self.accuracy_of(self.selected[0])
        if acc != acc:
            return ""
        s = self.grids[self.arch.value].settings
        return (f"stored: <b>{acc:.3f}</b> ({s.get('n_train', '?')} train samples, {s.get('epochs', '?')} "
                f"epochs, {s.get('device', '?')})")

    def train_now(self) -> None:
        """Train the chosen architecture on D(v) of the selected direction, streaming the test accuracy
        (with its binomial standard error) and the learning curve after every epoch, next to the stored
        answer when there is one."""
        freq, name = self.selected[0], self.arch.value
        self.train_button.disabled = True
        self.describe()
        base, stored = self.status.value, self.stored_answer()
        n_test = self.sizes["n_test"]
        start = time.perf_counter()
        self.first_reading_s = None

        def stream(hist) -> None:
            acc = hist.test_acc[-1]
            if self.first_reading_s is None:
                self.first_reading_s = time.perf_counter() - start
            se = math.sqrt(max(acc * (1 - acc), 0.25 / n_test) / n_test)
            self.status.value = (f"{base}<br>{stored + '; ' if stored else ''}live: <b>{name}</b> on (kx, ky) = "
                                 f"{freq}, epoch {hist.epochs[-1]} of {self.sizes['epochs']}: test accuracy "
                                 f"<b>{acc:.3f} ± {se:.3f}</b> (train {hist.train_acc[-1]:.3f}), "
                                 f"{time.perf_counter() - start:.1f} s")
            fig, ax = plt.subplots(figsize=(6.0, 3.3))
            plot_learning_curves({f"{name} {freq}": hist}, ax=ax,
                                 title=f"{name} on D(v), (kx, ky) = {freq}: {self.sizes['n_train']:,} samples")
            ax.set_xlim(0.5, self.sizes["epochs"] + 0.5)
            _show(self.output, figure_png(fig))

        self.status.value = f"{base}<br>{stored + '; ' if stored else ''}<i>training {name}...</i>"
        if self.device.type == "cpu":
            use_free_cores()  # a busy laptop: one thread per free core, not a stall
        try:
            hist = direction_accuracy(name, fourier_direction(*freq, size=self.size), recipe=self.recipe,
                                      return_history=True,
                                      run=RunControl(seed=self.seed, device=self.device, progress=stream))
            elapsed = time.perf_counter() - start
        except Exception as err:  # shown in the widget instead of lost in a callback
            self.status.value += f"<br><b>error:</b> {type(err).__name__}: {err}"
            raise
        finally:
            self.train_button.disabled = False
        self.results.append((name, freq, hist))
        self.final_answer_s = elapsed
        self.status.value = (f"{base}<br>{stored + '; ' if stored else ''}live run: <b>{name}</b> on (kx, ky) = "
                             f"{freq}: final test accuracy <b>{hist.final_test_acc:.3f}</b> (train "
                             f"{hist.final_train_acc:.3f}), {elapsed:.1f} s on {self.device}; first reading "
                             f"after {self.first_reading_s:.1f} s")


def fourier_train_widget(grids: dict | None = None, profile=None, *, display_widget: bool = True,
                         **kwargs) -> FourierTrainWidget:
    """Build (and display) a :class:`FourierTrainWidget`."""
    return _shown(FourierTrainWidget(grids, profile, **kwargs), display_widget)


# --------------------------------------------------------------------------------------------------
# Chapter 2: live training on D(u_i)
# --------------------------------------------------------------------------------------------------

class NADTrainingWidget(W.VBox):
    """Pick a NAD index ``i`` and train ``arch`` on D(u_i) live (:func:`nadlib.direction_accuracy`)."""

    def __init__(self, nads, arch: str = "lenet", n_train: int = 1000, n_test: int = 1000, epochs: int = 2,
                 seed: int = 0, device="cpu"):
        self.nads, self.arch, self.seed, self.device = nads, arch, seed, device
        self.sizes = {"n_train": n_train, "n_test": n_test, "epochs": epochs}
        self.index = W.BoundedIntText(value=0, min=0, max=len(nads) - 1, description="NAD index")
        self.button = W.Button(description=f"train {arch} ({epochs} epochs)")
        self.info = W.HTML(f"{n_train} training and {n_test} test samples of D(u_i), seed {seed}")
        self.results: list[tuple[int, float]] = []
        self.button.on_click(lambda _: self.run())
        super().__init__([W.HBox([self.index, self.button]), self.info])

    def run(self) -> float:
        self.button.disabled = True
        try:
            i = int(self.index.value)
            acc = direction_accuracy(self.arch, self.nads.directions[i], recipe=Recipe(**self.sizes),
                                     run=RunControl(seed=self.seed, device=self.device))
        finally:
            self.button.disabled = False
        self.results.append((i, acc))
        self.info.value += f"<br>NAD {i}: test accuracy <b>{acc:.3f}</b>"
        return acc


def nad_training_widget(nads, arch: str = "lenet", display_widget: bool = True, **kwargs) -> NADTrainingWidget:
    """Build (and display) a :class:`NADTrainingWidget`."""
    return _shown(NADTrainingWidget(nads, arch, **kwargs), display_widget)


# --------------------------------------------------------------------------------------------------
# Chapter 3: live poisoning
# --------------------------------------------------------------------------------------------------

class PoisoningWidget(W.VBox):
    """Choose a NAD index and a carrier size: see poisoned samples and the clean-test accuracy.

    Args:
        x, y: a few clean images (``N x 3 x 32 x 32`` in [0, 1]) and labels to poison and show.
        nads: the NAD basis (rows).
        sweep: optional ``(arrays, meta)`` of ``python -m nadlib poison``: the precomputed clean-test
            accuracy at the nearest swept index is shown (valid for the sweep's epsilon only).
        live_data: optional dict from :func:`nadlib.cifar_data` (a small subset): enables a button that
            trains a LeNet for ``live_epochs`` epochs on it, poisoned with the chosen settings (seconds).
    """

    def __init__(self, x, y, nads, sweep=None, n_show: int = 6, live_data=None, live_epochs: int = 3,
                 max_index: int | None = None):
        self.x, self.y, self.u = x[:n_show], y[:n_show], as_nad_basis(nads)
        self.sweep, self.live_data, self.live_epochs = sweep, live_data, live_epochs
        top = (len(self.u) - 1) if max_index is None else int(max_index)
        self.index = W.IntSlider(value=0, min=0, max=top, description="NAD index", continuous_update=False)
        eps = float(sweep[1]["settings"]["epsilon"]) if sweep else 1.0
        self.epsilon = W.FloatLogSlider(value=eps, base=10, min=-1, max=1, step=0.05, description="epsilon",
                                        continuous_update=False)
        self.output, self.info = W.Output(), W.HTML()
        self.button = W.Button(description=f"live run ({live_epochs} epochs)", disabled=live_data is None)
        self.index.observe(lambda _: self.redraw(), names="value")
        self.epsilon.observe(lambda _: self.redraw(), names="value")
        self.button.on_click(lambda _: self.live())
        super().__init__([W.HBox([self.index, self.epsilon, self.button]), self.info, self.output])
        self.redraw()

    def redraw(self) -> None:
        xp, _ = poison_with_nads(self.x, self.y, self.u, self.index.value, self.epsilon.value)
        _show(self.output, figure_png(plot_poisoned_examples(self.x, xp, self.y)))
        text = f"carrier: NAD {self.index.value}, epsilon {self.epsilon.value:.2f}"
        if self.sweep is not None:
            arrays, meta = self.sweep
            idx = np.asarray(arrays["indices"])
            j = int(np.argmin(np.abs(idx - self.index.value)))
            s = meta.get("settings", {})
            text += (f"<br>precomputed ({meta.get('profile')} profile, {s.get('n_train')} train images, "
                     f"epsilon {s.get('epsilon')}): nearest swept index {idx[j]} &rarr; clean test accuracy "
                     f"<b>{arrays['test_acc'][j]:.3f}</b> (train {arrays['train_acc'][j]:.3f})")
        self.info.value = text

    def live(self) -> None:
        self.button.disabled = True
        self.info.value += "<br>training..."
        try:
            arrays, _ = run_poison_sweep("lenet", self.u, self.live_data, indices=[self.index.value],
                                         epsilon=self.epsilon.value, epochs=self.live_epochs, baseline=False,
                                         run=RunControl(progress=False))
        finally:
            self.button.disabled = False
        self.info.value += (f"<br>live run ({self.live_data['n_train']} train images, {self.live_epochs} epochs): "
                            f"clean test accuracy <b>{arrays['test_acc'][0]:.3f}</b>, train "
                            f"{arrays['train_acc'][0]:.3f}")


def poisoning_widget(x, y, nads, display_widget: bool = True, **kwargs) -> PoisoningWidget:
    """Build (and display) a :class:`PoisoningWidget`."""
    return _shown(PoisoningWidget(x, y, nads, **kwargs), display_widget)


# --------------------------------------------------------------------------------------------------
# Chapter 5: train and watch neural collapse
# --------------------------------------------------------------------------------------------------

class CollapseWidget(W.VBox):
    """Choose an architecture, a data set and a weight decay; train and watch NC1-NC4 epoch by epoch.

    Data: a CIFAR-10 subset (the ``cifar_data`` dict given, e.g. the chapter's, else synthetic stand-in
    images), D(u_i) for NAD index ``i`` of ``nads`` (when given), or D(v) for a Fourier direction
    ``(kx, ky)``; sizes from ``profile.collapse`` (``widget_n_train`` samples, ``widget_epochs`` epochs,
    the profile's recipe and D(v) noise/margin).  Building the widget trains nothing; :meth:`run` (the
    button) trains with :func:`nadlib.run_collapse` and redraws the curves about five times per run.

    ``archs`` defaults to LeNet, LeNet without pooling and LogReg (plus ResNet-18 when training on a GPU).
    Parts for scripting and tests: ``arch``, ``source``, ``nad_index``, ``kx``, ``ky``, ``weight_decay``,
    ``epochs`` (controls), ``button``, ``status`` (HTML), ``output`` (Output) and ``runs`` (the
    :class:`nadlib.CollapseRun` trained so far); ``box`` is the widget itself.
    """

    SOURCES = ("CIFAR-10 subset", "D(u_i): NAD index", "D(v): Fourier direction")

    def __init__(self, profile=None, *, cifar_data: dict | None = None, nads=None, archs=None, seed: int = 0,
                 device=None):
        self.profile = profile or get_profile()
        self.cfg = self.profile.collapse
        self.device = get_device(device)
        if archs is None:  # ResNet-18 takes minutes per run on a CPU: offered on a GPU only
            archs = ("lenet", "lenet_nopool", "logreg") + (("resnet18",) if self.device.type == "cuda" else ())
        archs = tuple(archs)
        unknown = [a for a in archs if a not in ARCHITECTURES]
        if not archs or unknown:
            raise ValueError(f"unknown architecture(s) {unknown}; known: {', '.join(ARCHITECTURES)}")
        self.cifar_data, self.nads, self.seed = cifar_data, nads, seed
        sources = [s for s in self.SOURCES if nads is not None or not s.startswith("D(u_i)")]
        self.arch = W.Dropdown(options=list(archs), value=archs[0], description="architecture")
        self.source = W.Dropdown(options=sources, value=sources[0], description="data")
        self.nad_index = W.BoundedIntText(value=0, min=0, max=(len(nads) - 1) if nads is not None else 0,
                                          description="NAD index i")
        self.kx = W.BoundedIntText(value=1, min=0, max=31, description="kx")
        self.ky = W.BoundedIntText(value=0, min=0, max=31, description="ky")
        self.weight_decay = W.FloatLogSlider(value=self.cfg.weight_decay, base=10, min=-6, max=-1,
                                             description="weight decay", readout_format=".0e")
        self.epochs = W.IntSlider(value=self.cfg.widget_epochs, min=1, max=max(100, self.cfg.widget_epochs),
                                  description="epochs")
        self.button = W.Button(description="train and watch", button_style="primary", icon="play")
        self.status, self.output = W.HTML(), W.Output()
        self.runs: list = []
        self.button.on_click(self.run)
        for control in (self.arch, self.source, self.nad_index, self.kx, self.ky, self.weight_decay, self.epochs):
            control.observe(lambda _: self.describe(), names="value")
        super().__init__([W.HBox([self.arch, self.source]), W.HBox([self.nad_index, self.kx, self.ky]),
                          W.HBox([self.weight_decay, self.epochs, self.button]), self.status, self.output])
        self.describe()

    @property
    def box(self) -> "CollapseWidget":
        return self

    def describe(self) -> None:
        self.nad_index.disabled = not self.source.value.startswith("D(u_i)")
        self.kx.disabled = self.ky.disabled = not self.source.value.startswith("D(v)")
        self.status.value = (f"{self.arch.value} on {self.data_description()}, {self.epochs.value} epochs, "
                             f"weight decay {self.weight_decay.value:.0e} ({self.profile.name} profile, "
                             f"{self.device})")

    def data_description(self) -> str:
        n = self.cfg.widget_n_train
        if self.source.value.startswith("CIFAR"):
            src = (self.cifar_data or {}).get("source", "synthetic stand-in images (not CIFAR-10)")
            return f"{n} images of {src}"
        if self.source.value.startswith("D(u_i)"):
            return f"{n} samples of D(u_{self.nad_index.value})"
        return f"{n} samples of D(v), (kx, ky) = ({self.kx.value}, {self.ky.value})"

    def data(self) -> dict:
        """The data dict of the current choice (training and test sets of ``widget_n_train`` samples)."""
        n = self.cfg.widget_n_train
        if self.source.value.startswith("CIFAR"):
            data = self.cifar_data
            if data is None:
                return cifar_data(self.profile, n_train=n, n_test=n, synthetic=True, device="cpu")
            i_tr = balanced_subset(data["y_train"], n)
            i_te = balanced_subset(data["y_test"], n)
            return {"x_train": data["x_train"][i_tr], "y_train": data["y_train"][i_tr],
                    "x_test": data["x_test"][i_te], "y_test": data["y_test"][i_te], "source": data["source"]}
        if self.source.value.startswith("D(u_i)"):
            v = torch.as_tensor(self.nads[int(self.nad_index.value)])
        else:
            v = fourier_direction(int(self.kx.value), int(self.ky.value))
        return separable_data(v, n, n, sigma=self.cfg.nad_sigma, epsilon=self.cfg.nad_epsilon, seed=self.seed,
                              device="cpu")

    def run(self, _=None):
        """Train with the current choices, redrawing the curves as training goes; returns the run."""
        epochs = int(self.epochs.value)
        every = max(1, epochs // 5)  # a redraw costs about a second on a laptop CPU
        title = f"{self.arch.value} on {self.data_description()}, weight decay {self.weight_decay.value:.0e}"

        def redraw(epoch, model, tracker):
            if epoch % every and epoch != epochs:
                return
            fig, axes = plt.subplots(2, 3, figsize=(11.0, 5.6), constrained_layout=True)
            plot_collapse(tracker.history(), axes=axes, title=f"{title}: epoch {epoch}/{epochs}")
            _show(self.output, figure_png(fig))

        self.button.disabled = True
        self.status.value += "<br><i>training...</i>"
        try:
            start = time.perf_counter()
            cfg = self.cfg
            hp = CIFARHyperParams(lr=cfg.lr, momentum=cfg.momentum, weight_decay=float(self.weight_decay.value),
                                  batch_size=cfg.batch_size)
            run = run_collapse(self.arch.value, self.data(), epochs, hp=hp, on_epoch_end=redraw,
                               run=RunControl(seed=self.seed, device=self.device, progress=False))
        except Exception as err:  # shown in the widget instead of lost in a callback
            self.status.value += f"<br><b>error:</b> {type(err).__name__}: {err}"
            raise
        finally:
            self.button.disabled = False
        self.runs.append(run)
        zero = run.zero_error_epoch
        self.describe()
        self.status.value += (
            f"<br>done in {time.perf_counter() - start:.1f} s: train accuracy {run.final('accuracy'):.3f}, "
            f"test {run.final('test_accuracy'):.3f}; zero training error "
            f"{'at epoch ' + str(zero) if zero is not None else 'not reached'}; final NC1 train "
            f"{run.final('nc1'):.3g} / test {run.final('test_nc1'):.3g}, NC4 {run.final('nc4'):.3g}")
        return run


def collapse_widget(profile=None, display_widget: bool = True, **kwargs) -> CollapseWidget:
    """Build (and display) a :class:`CollapseWidget`."""
    return _shown(CollapseWidget(profile, **kwargs), display_widget)


# --------------------------------------------------------------------------------------------------
# Chapter 4: the affinity score of a 1-D activation
# --------------------------------------------------------------------------------------------------

class AffinityExplorer(W.VBox):
    """Choose an activation and the mean/spread of its Gaussian input; see the affine OT fit and rho.

    Each change recomputes :func:`nadlib.affinity.affine_fit_1d` on ``n`` samples (exact 1-D OT, a few
    milliseconds) and redraws :func:`nadlib.book.plotting_signature.plot_affine_fit_1d`; :attr:`last_seconds`
    is the time of the last computation.  Parts: ``function``, ``mean``, ``std``, ``info``, ``out``.
    """

    def __init__(self, n: int = 2000, function: str = "ReLU", mean: float = 0.0, std: float = 1.0,
                 seed: int = 0):
        self.n, self.seed = int(n), int(seed)
        self.function = W.Dropdown(options=list(FUNCTIONS_1D), value=function, description="f")
        self.mean = W.FloatSlider(value=mean, min=-4.0, max=4.0, step=0.1, description="input mean",
                                  continuous_update=False)
        self.std = W.FloatLogSlider(value=std, base=10, min=-1, max=1, step=0.05,
                                    description="input std", continuous_update=False)
        self.info, self.out = W.HTML(), W.Output()
        self.fit = None
        self.last_seconds = float("nan")
        for w in (self.function, self.mean, self.std):
            w.observe(lambda _: self.update(), names="value")
        super().__init__([W.HBox([self.function, self.mean, self.std]), self.info, self.out])
        self.update()

    @property
    def box(self) -> "AffinityExplorer":
        return self

    def compute(self):
        """Recompute the fit for the current settings (no drawing); returns it."""
        start = time.perf_counter()
        self.fit = affine_fit_1d(self.function.value, self.mean.value, self.std.value, self.n, self.seed)
        self.last_seconds = time.perf_counter() - start
        return self.fit

    def update(self) -> None:
        fit = self.compute()
        increasing = fit.name != "GELU"
        formula = (f", population formula 1 - sqrt(1 - r) = {fit.rho_from_r:.4f} (r = {fit.r:.4f})"
                   if increasing else " (GELU is not increasing: the 1 - sqrt(1 - r) formula does not apply)")
        self.info.value = (f"<b>rho = {fit.rho:.4f}</b> on {self.n} samples{formula}; "
                           f"computed in {1000 * self.last_seconds:.1f} ms")
        _show(self.out, figure_png(plot_affine_fit_1d(fit)[0].figure))

    def show(self) -> "AffinityExplorer":
        """Display the widget; returns ``self``."""
        display(self)
        return self
