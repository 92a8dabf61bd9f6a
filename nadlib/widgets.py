"""ipywidgets UIs used by the chapters; each function displays its widget and returns it."""

from __future__ import annotations


# --------------------------------------------------------------------------------------------------
# Chapter 3: poisoning explorer and flip table
# --------------------------------------------------------------------------------------------------

def poisoning_widget(x, y, nads, sweep=None, n_show: int = 6, live_data=None, live_epochs: int = 3,
                     max_index: int | None = None):
    """Choose a NAD index and a carrier size: see poisoned samples and the clean-test accuracy.

    Args:
        x, y: a few clean images (``N x 3 x 32 x 32`` in [0, 1]) and labels to poison and show.
        nads: the NAD basis (rows).
        sweep: optional ``(arrays, meta)`` of ``python -m nadlib poison``: the precomputed clean-test
            accuracy at the nearest swept index is shown (valid for the sweep's epsilon only).
        live_data: optional dict from :func:`nadlib.cifar.cifar_data` (a small subset): enables a button that
            trains a LeNet for ``live_epochs`` epochs on it, poisoned with the chosen settings (seconds).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    import numpy as _np
    from IPython.display import display

    from .cifar import as_nad_basis, poison_with_nads, run_poison_sweep
    from .plotting import plot_poisoned_examples

    u = as_nad_basis(nads)
    top = (len(u) - 1) if max_index is None else int(max_index)
    index = W.IntSlider(value=0, min=0, max=top, description="NAD index", continuous_update=False)
    eps_default = float(sweep[1]["settings"]["epsilon"]) if sweep else 1.0
    eps = W.FloatLogSlider(value=eps_default, base=10, min=-1, max=1, step=0.05, description="epsilon",
                           continuous_update=False)
    out, info = W.Output(), W.HTML()
    button = W.Button(description=f"live run ({live_epochs} epochs)", disabled=live_data is None)

    def redraw(*_):
        xp, _ = poison_with_nads(x[:n_show], y[:n_show], u, index.value, eps.value)
        with out:
            out.clear_output(wait=True)
            fig = plot_poisoned_examples(x[:n_show], xp, y[:n_show])
            plt.show(fig)
        text = f"carrier: NAD {index.value}, epsilon {eps.value:.2f}"
        if sweep is not None:
            arrays, meta = sweep
            idx = _np.asarray(arrays["indices"])
            j = int(_np.argmin(_np.abs(idx - index.value)))
            s = meta.get("settings", {})
            text += (f"<br>precomputed ({meta.get('profile')} profile, {s.get('n_train')} train images, "
                     f"epsilon {s.get('epsilon')}): nearest swept index {idx[j]} &rarr; clean test accuracy "
                     f"<b>{arrays['test_acc'][j]:.3f}</b> (train {arrays['train_acc'][j]:.3f})")
        info.value = text

    def live(_):
        button.disabled = True
        info.value += "<br>training..."
        arrays, _ = run_poison_sweep("lenet", u, live_data, indices=[index.value], epsilon=eps.value,
                                     epochs=live_epochs, baseline=False, progress=False)
        info.value += (f"<br>live run ({live_data['n_train']} train images, {live_epochs} epochs): clean test "
                       f"accuracy <b>{arrays['test_acc'][0]:.3f}</b>, train {arrays['train_acc'][0]:.3f}")
        button.disabled = False

    index.observe(redraw, names="value")
    eps.observe(redraw, names="value")
    button.on_click(live)
    redraw()
    box = W.VBox([W.HBox([index, eps, button]), info, out])
    display(box)
    return box


def flip_widget(results: dict):
    """Choose an architecture and see its flip table row (``results``: ``{arch: (arrays, meta) or None}``)."""
    import ipywidgets as W
    from IPython.display import Markdown, display

    from .plotting import flip_table

    choice = W.Dropdown(options=list(results), description="architecture")
    out = W.Output()

    def show(*_):
        with out:
            out.clear_output(wait=True)
            display(Markdown(flip_table({choice.value: results[choice.value]})))

    choice.observe(show, names="value")
    show()
    box = W.VBox([choice, out])
    display(box)
    return box


# --------------------------------------------------------------------------------------------------
# Chapter 2: NAD explorer and live training on D(u_i)
# --------------------------------------------------------------------------------------------------

def nad_explorer(nads_by_arch: dict):
    """Choose an architecture and scroll through its NADs: image, Fourier energy and eigenvalue.

    ``nads_by_arch`` maps a label to a :class:`nadlib.NADs`."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .directions import fourier_energy

    names = list(nads_by_arch)
    arch = W.Dropdown(options=names, value=names[0], description="architecture")
    index = W.IntSlider(value=0, min=0, max=len(nads_by_arch[names[0]]) - 1, description="NAD index",
                        continuous_update=False)
    out, info = W.Output(), W.HTML()

    def redraw(*_):
        nads = nads_by_arch[arch.value]
        index.max = len(nads) - 1
        u = nads.directions[index.value].double()
        ev = nads.eigenvalues
        info.value = (f"{arch.value}: NAD {index.value} of {len(ev)}, variance {float(ev[index.value]):.3g} "
                      f"({float(ev[index.value] / ev.sum()):.2%} of the total); {nads.method} estimate from "
                      f"{nads.n_networks} networks")
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(1, 2, figsize=(6, 3))
            img = u.sum(0).numpy()
            m = abs(img).max() or 1.0
            ax[0].imshow(img, cmap="BrBG", vmin=-m, vmax=m)
            ax[0].set_title("pixels")
            ax[1].imshow(fourier_energy(u).numpy(), cmap="magma")
            ax[1].set_title("Fourier energy")
            for a in ax:
                a.axis("off")
            plt.show(fig)

    arch.observe(redraw, names="value")
    index.observe(redraw, names="value")
    redraw()
    box = W.VBox([W.HBox([arch, index]), info, out])
    display(box)
    return box


def nad_training_widget(nads, arch: str = "lenet", n_train: int = 1000, n_test: int = 1000, epochs: int = 2,
                        seed: int = 0):
    """Pick a NAD index ``i`` and train ``arch`` on D(u_i) live (:func:`nadlib.direction_accuracy`)."""
    import ipywidgets as W
    from IPython.display import display

    from .training import direction_accuracy

    index = W.BoundedIntText(value=0, min=0, max=len(nads) - 1, description="NAD index")
    button = W.Button(description=f"train {arch} ({epochs} epochs)")
    info = W.HTML(f"{n_train} training and {n_test} test samples of D(u_i), seed {seed}")

    def run(_):
        button.disabled = True
        i = int(index.value)
        acc = direction_accuracy(arch, nads.directions[i], n_train=n_train, n_test=n_test, epochs=epochs,
                                 seed=seed, device="cpu")
        info.value += f"<br>NAD {i}: test accuracy <b>{acc:.3f}</b>"
        button.disabled = False

    button.on_click(run)
    box = W.VBox([W.HBox([index, button]), info])
    display(box)
    return box


# --------------------------------------------------------------------------------------------------
# Chapter 1: clickable Fourier grid + "train now", and a precomputed-map switcher
# --------------------------------------------------------------------------------------------------

#: Architectures offered by the Chapter 1 "train now" widget (others can be passed explicitly).
CH1_TRAIN_ARCHS = ("logreg", "lenet", "lenet_nopool", "resnet18")


def _hex_color(value: float, vmin: float = 0.5, vmax: float = 1.0) -> str:
    """Colour of an accuracy on the maps' colour scale (viridis, chance to 1); grey for NaN."""
    import math

    import matplotlib

    from .plotting import NOT_TRAINED_COLOR

    if value is None or not math.isfinite(value):
        return NOT_TRAINED_COLOR
    t = min(max((value - vmin) / (vmax - vmin), 0.0), 1.0)
    return matplotlib.colors.to_hex(matplotlib.colormaps["viridis"](t))


def _figure_png(fig) -> "object":
    """An ``IPython.display.Image`` of a matplotlib figure (which is then closed), so that widget
    callbacks can show figures through ``Output.append_display_data`` with or without a kernel."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def fourier_train_widget(grids: dict | None = None, profile=None, *, archs=None, stride: int | None = None,
                         n_train: int | None = None, n_test: int | None = None, epochs: int | None = None,
                         seed: int = 0, device=None, size: int = 32, display_widget: bool = True):
    """Pick a Fourier coefficient on a clickable grid and an architecture; "train now" on D(v).

    The grid shows the half-plane ``ky >= 0`` of signed frequencies with step ``stride`` (default: the
    profile's ``separability.widget_stride``); each button is coloured by the precomputed test
    accuracy of the chosen architecture in ``grids`` (``{arch: GridResult}``, grey when not
    trained).  Clicking selects the frequency and shows its direction image; "train now" trains the
    architecture on D(v) with the profile's sizes (``n_train``, ``n_test``, ``epochs`` override them)
    and shows the learning curve and the final test accuracy.  Building the widget trains nothing.

    Returns the ``VBox``; for scripting and tests it carries ``.arch`` (Dropdown), ``.buttons``
    (``{(kx, ky): Button}`` with unsigned frequencies), ``.train_button``, ``.status`` (HTML),
    ``.output`` (Output), ``.selected`` (a one-item list holding the selected ``(kx, ky)``) and
    ``.results`` (list of ``(arch, (kx, ky), TrainResult)`` of the runs so far).
    """
    import time

    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .config import get_device, get_profile
    from .directions import fourier_direction
    from .models import ARCHITECTURES
    from .plotting import plot_fourier_directions, plot_learning_curves, signed_frequency
    from .training import direction_accuracy

    grids = {k: g for k, g in (grids or {}).items() if g is not None}
    cfg = (profile or get_profile()).separability
    prof_name = (profile or get_profile()).name
    stride = int(stride or cfg.widget_stride)
    if size % stride or stride < 1:
        raise ValueError(f"stride must be a positive divisor of size={size}, got {stride}")
    sizes = {"n_train": int(n_train or cfg.n_train), "n_test": int(n_test or cfg.n_test),
             "epochs": int(epochs or cfg.epochs)}
    if archs is None:
        archs = list(dict.fromkeys([*CH1_TRAIN_ARCHS[:3], *grids]))
    archs = list(archs)
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if not archs or unknown:
        raise ValueError(f"unknown architecture(s) {unknown}; known: {', '.join(ARCHITECTURES)}")
    dev = get_device(device)

    arch = W.Dropdown(options=archs, value=archs[0], description="architecture")
    train_button = W.Button(description="train now", button_style="primary", icon="play")
    status = W.HTML()
    output = W.Output()
    image_out = W.Output(layout=W.Layout(width="190px"))
    selected = [(1 % size, 0)]
    results: list = []

    half = size // 2
    kxs = list(range(-half, half, stride))
    kys = list(range(half, -1, -stride))  # top row: ky = size/2, bottom row: ky = 0
    buttons: dict = {}
    cells = [W.Label("ky \\ kx", layout=W.Layout(width="52px"))]
    cells += [W.Label(str(k), layout=W.Layout(width="30px")) for k in kxs]
    for ky in kys:
        cells.append(W.Label(str(ky), layout=W.Layout(width="52px")))
        for kx in kxs:
            key = (kx % size, ky % size)
            b = W.Button(description="", layout=W.Layout(width="30px", height="24px", padding="0px"))
            b.freq = key
            b.on_click(lambda btn: select(btn.freq))
            buttons[key] = b
            cells.append(b)
    grid_box = W.GridBox(cells, layout=W.Layout(grid_template_columns=f"52px repeat({len(kxs)}, 30px)",
                                                grid_gap="2px"))

    def accuracy_of(name, freq):
        g = grids.get(name)
        if g is None:
            return float("nan")
        return float(g.map[freq[1], freq[0]])

    def recolor(*_):
        for key, b in buttons.items():
            acc = accuracy_of(arch.value, key)
            b.style.button_color = _hex_color(acc)
            signed = (signed_frequency(key[0], size), signed_frequency(key[1], size))
            b.tooltip = f"(kx, ky) = {signed} = {key} mod {size}: " + (
                f"precomputed test accuracy {acc:.3f}" if acc == acc else "not precomputed")
            b.icon = "check" if key == selected[0] else ""
        describe()

    def describe():
        kx, ky = selected[0]
        acc = accuracy_of(arch.value, selected[0])
        g = grids.get(arch.value)
        if acc == acc:
            s = g.settings
            pre = (f"precomputed test accuracy of <b>{arch.value}</b>: <b>{acc:.3f}</b> ({s.get('profile', '?')} "
                   f"profile, {s.get('n_train', '?')} train samples, {s.get('epochs', '?')} epochs, "
                   f"{s.get('device', '?')})")
        else:
            pre = f"no precomputed accuracy of <b>{arch.value}</b> for this frequency"
        status.value = (f"selected (kx, ky) = ({kx}, {ky}); {pre}.<br>train now: {arch.value} on D(v), "
                        f"{sizes['n_train']:,} train / {sizes['n_test']:,} test samples, {sizes['epochs']} "
                        f"epochs ({prof_name} profile, {dev})")

    def select(freq):
        selected[0] = freq
        image_out.outputs = ()
        _, ax = plt.subplots(figsize=(2.0, 2.1))
        image_out.append_display_data(_figure_png(plot_fourier_directions([freq], size=size, axes=ax)))
        recolor()

    def train_now(_=None):
        freq, name = selected[0], arch.value
        train_button.disabled = True
        status.value += "<br><i>training...</i>"
        try:
            start = time.perf_counter()
            hist = direction_accuracy(name, fourier_direction(*freq, size=size), seed=seed, device=dev,
                                      return_history=True, **sizes)
            elapsed = time.perf_counter() - start
        except Exception as err:  # shown in the widget instead of lost in a callback
            status.value += f"<br><b>error:</b> {type(err).__name__}: {err}"
            raise
        finally:
            train_button.disabled = False
        results.append((name, freq, hist))
        describe()
        status.value += (f"<br>live run: <b>{name}</b> on (kx, ky) = {freq}: final test accuracy "
                         f"<b>{hist.final_test_acc:.3f}</b> (train {hist.final_train_acc:.3f}), "
                         f"{elapsed:.1f} s on {dev}")
        fig, ax = plt.subplots(figsize=(6.0, 3.3))
        plot_learning_curves({f"{name} {freq}": hist}, ax=ax,
                             title=f"{name} on D(v), (kx, ky) = {freq}: {sizes['n_train']:,} samples")
        output.outputs = ()
        output.append_display_data(_figure_png(fig))

    arch.observe(recolor, names="value")
    train_button.on_click(train_now)
    select(selected[0])
    legend = W.HTML("colour: precomputed test accuracy of the chosen architecture (purple 0.5 = chance, "
                    "yellow 1.0; grey: not precomputed); click a square to pick its frequency")
    box = W.VBox([W.HBox([arch, train_button]), legend, W.HBox([grid_box, image_out]), status, output])
    box.arch, box.buttons, box.train_button, box.status = arch, buttons, train_button, status
    box.output, box.selected, box.results = output, selected, results
    box.select = select
    if display_widget:
        display(box)
    return box


def accuracy_map_switcher(grids: dict, display_widget: bool = True):
    """A dropdown that switches the displayed precomputed accuracy map by architecture.

    ``grids``: ``{name: GridResult}`` (``None`` entries are listed as missing).  Returns the ``VBox``
    with ``.choice`` (Dropdown) and ``.output`` (Output) attached.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from .plotting import _grid_caption, plot_accuracy_map

    if not grids:
        raise ValueError("grids is empty: give at least one {name: GridResult}")
    choice = W.Dropdown(options=list(grids), description="architecture")
    output = W.Output()

    def show(*_):
        output.outputs = ()
        grid = grids[choice.value]
        if grid is None:
            output.append_display_data(Markdown(f"No precomputed map for **{choice.value}** in `results/`."))
            return
        fig, ax = plt.subplots(figsize=(5.0, 4.2))
        plot_accuracy_map(grid, ax=ax, title=f"{choice.value}\n{_grid_caption(grid)}")
        output.append_display_data(_figure_png(fig))

    choice.observe(show, names="value")
    show()
    box = W.VBox([choice, output])
    box.choice, box.output = choice, output
    if display_widget:
        display(box)
    return box


# --------------------------------------------------------------------------------------------------
# Chapter 5: train and watch neural collapse
# --------------------------------------------------------------------------------------------------

class CollapseWidget:
    """Choose an architecture, a data set and a weight decay; train and watch NC1-NC4 epoch by epoch.

    Data: a CIFAR-10 subset (the ``cifar_data`` dict given, e.g. the chapter's, else synthetic stand-in
    images), D(u_i) for NAD index ``i`` of ``nads`` (when given), or D(v) for a Fourier direction
    ``(kx, ky)``; sizes from ``profile.collapse`` (``widget_n_train`` samples, ``widget_epochs`` epochs,
    the profile's recipe and D(v) noise/margin).  Building the widget trains nothing; :meth:`run` (the
    button) trains with :func:`nadlib.run_collapse` and redraws the curves about five times per run.

    ``archs`` defaults to LeNet, LeNet without pooling and LogReg (plus ResNet-18 when training on a GPU).
    Attributes for scripting and tests: ``arch``, ``source``, ``nad_index``, ``kx``, ``ky``,
    ``weight_decay``, ``epochs`` (controls), ``button``, ``status`` (HTML), ``output`` (Output),
    ``box`` (the VBox) and ``runs`` (list of the :class:`nadlib.CollapseRun` trained so far).
    """

    SOURCES = ("CIFAR-10 subset", "D(u_i): NAD index", "D(v): Fourier direction")

    def __init__(self, profile=None, *, cifar_data: dict | None = None, nads=None,
                 archs=None, seed: int = 0, device=None, display_widget: bool = True):
        import ipywidgets as W

        from .config import get_device, get_profile
        from .models import ARCHITECTURES

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
        self.status = W.HTML()
        self.output = W.Output()
        self.runs: list = []
        self.button.on_click(self.run)
        for control in (self.arch, self.source, self.nad_index, self.kx, self.ky, self.weight_decay, self.epochs):
            control.observe(self._describe, names="value")
        self.box = W.VBox([W.HBox([self.arch, self.source]), W.HBox([self.nad_index, self.kx, self.ky]),
                           W.HBox([self.weight_decay, self.epochs, self.button]), self.status, self.output])
        self._describe()
        if display_widget:
            from IPython.display import display

            display(self.box)

    def _describe(self, *_) -> None:
        self.nad_index.disabled = not self.source.value.startswith("D(u_i)")
        self.kx.disabled = self.ky.disabled = not self.source.value.startswith("D(v)")
        data = self.data_description()
        self.status.value = (f"{self.arch.value} on {data}, {self.epochs.value} epochs, weight decay "
                             f"{self.weight_decay.value:.0e} ({self.profile.name} profile, {self.device})")

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
        import torch

        from . import balanced_subset, cifar_data  # package level: the CIFAR-10 module is being renamed
        from .collapse import separable_data
        from .directions import fourier_direction

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

    @staticmethod
    def _png(fig):
        """The figure as an ``IPython.display.Image`` (then closed), shown with or without a kernel."""
        import io

        import matplotlib.pyplot as plt
        from IPython.display import Image

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        return Image(data=buf.getvalue(), format="png")

    def run(self, _=None):
        """Train with the current choices, redrawing the curves as training goes; returns the run."""
        import time

        import matplotlib.pyplot as plt

        from .collapse import run_collapse
        from .plotting_collapse import plot_collapse

        epochs = int(self.epochs.value)
        every = max(1, epochs // 5)  # a redraw costs about a second on a laptop CPU
        title = f"{self.arch.value} on {self.data_description()}, weight decay {self.weight_decay.value:.0e}"

        def redraw(epoch, model, tracker):
            if epoch % every and epoch != epochs:
                return
            fig, axes = plt.subplots(2, 3, figsize=(11.0, 5.6), constrained_layout=True)
            plot_collapse(tracker.history(), axes=axes, title=f"{title}: epoch {epoch}/{epochs}")
            self.output.outputs = ()
            self.output.append_display_data(self._png(fig))

        self.button.disabled = True
        self.status.value += "<br><i>training...</i>"
        try:
            start = time.perf_counter()
            cfg = self.cfg
            run = run_collapse(self.arch.value, self.data(), epochs, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=float(self.weight_decay.value), batch_size=cfg.batch_size,
                               seed=self.seed, device=self.device, progress=False, on_epoch_end=redraw)
        except Exception as err:  # shown in the widget instead of lost in a callback
            self.status.value += f"<br><b>error:</b> {type(err).__name__}: {err}"
            raise
        finally:
            self.button.disabled = False
        self.runs.append(run)
        zero = run.zero_error_epoch
        self._describe()
        self.status.value += (
            f"<br>done in {time.perf_counter() - start:.1f} s: train accuracy {run.final('accuracy'):.3f}, "
            f"test {run.final('test_accuracy'):.3f}; zero training error "
            f"{'at epoch ' + str(zero) if zero is not None else 'not reached'}; final NC1 train "
            f"{run.final('nc1'):.3g} / test {run.final('test_nc1'):.3g}, NC4 {run.final('nc4'):.3g}")
        return run
