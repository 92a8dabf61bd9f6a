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
# Chapter 4: the affinity score of a 1-D activation
# --------------------------------------------------------------------------------------------------

class AffinityExplorer:
    """Choose an activation and the mean/spread of its Gaussian input; see the affine OT fit and rho.

    Each change recomputes :func:`nadlib.affinity.affine_fit_1d` on ``n`` samples (exact 1-D OT, a few
    milliseconds) and redraws :func:`nadlib.plotting.plot_affine_fit_1d`; :attr:`last_seconds` is the
    time of the last computation.  Use ``AffinityExplorer(n).show()`` in a notebook.
    """

    def __init__(self, n: int = 2000, function: str = "ReLU", mean: float = 0.0, std: float = 1.0,
                 seed: int = 0):
        import ipywidgets as W

        from .affinity import FUNCTIONS_1D

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
            w.observe(self.update, names="value")
        self.box = W.VBox([W.HBox([self.function, self.mean, self.std]), self.info, self.out])
        self.update()

    def compute(self):
        """Recompute the fit for the current settings (no drawing); returns it."""
        import time

        from .affinity import affine_fit_1d

        start = time.perf_counter()
        self.fit = affine_fit_1d(self.function.value, self.mean.value, self.std.value, self.n, self.seed)
        self.last_seconds = time.perf_counter() - start
        return self.fit

    def update(self, *_):
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .plotting import plot_affine_fit_1d

        fit = self.compute()
        increasing = fit.name != "GELU"
        formula = (f", population formula 1 - sqrt(1 - r) = {fit.rho_from_r:.4f} (r = {fit.r:.4f})"
                   if increasing else " (GELU is not increasing: the 1 - sqrt(1 - r) formula does not apply)")
        self.info.value = (f"<b>rho = {fit.rho:.4f}</b> on {self.n} samples{formula}; "
                           f"computed in {1000 * self.last_seconds:.1f} ms")
        with self.out:
            self.out.clear_output(wait=True)
            fig = plot_affine_fit_1d(fit)[0].figure
            display(fig)
            plt.close(fig)

    def show(self):
        """Display the widget; returns ``self``."""
        from IPython.display import display

        display(self.box)
        return self
