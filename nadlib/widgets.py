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
