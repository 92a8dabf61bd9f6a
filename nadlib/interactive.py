"""Kernel-free interactive figures for Chapters 2 and 3: Plotly figures with a slider.

Unlike the ipywidgets of :mod:`nadlib.widgets`, these figures need no running kernel: every slider
position is precomputed and stored in the figure (``layout.sliders[0].steps``), so they stay interactive
in the static HTML of the book (rendered offline by ``book/_ext/nadbook_sphinx.py`` with a local
plotly.js, as :func:`nadlib.plotting.accuracy_map_plotly`) and in JupyterLab.

To keep the pages light, only a few dozen positions are stored (``max_steps``) and the values are
stored as whole percentages (images scaled to [-100, 100], energies to [0, 100] of their largest value).  ``plotly`` is
imported lazily (``pip install 'nadlib[book]'``).
"""

from __future__ import annotations

import numpy as np
import torch

from .directions import fourier_energy

#: Slider positions stored in a figure by default (each holds the images of every architecture).
MAX_STEPS = 24


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as err:  # pragma: no cover - installed with the book's requirements
        raise ImportError("nadlib.interactive needs plotly: pip install 'nadlib[book]'") from err
    return go, make_subplots


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _nad_images(nads) -> np.ndarray:
    """NAD rows of a :class:`nadlib.NADs` (or an array) as ``k x C x H x W`` float64."""
    d = _numpy(getattr(nads, "directions", nads)).astype(np.float64)
    if d.ndim == 3:
        d = d[:, None]
    if d.ndim != 4:
        raise ValueError(f"NADs must be k x C x H x W (or k x H x W), got shape {d.shape}")
    return d


def nad_panels(nads, index: int) -> tuple[list, list]:
    """The two images the explorer shows for NAD ``index``, as nested lists (JSON-ready).

    Returns ``(pixels, energy)`` as whole percentages (the figure's JSON stays small): the NAD summed over
    channels, in percent of its largest absolute value (so in [-100, 100]); and its Fourier energy
    (:func:`nadlib.fourier_energy`, zero frequency at the centre) in percent of its largest value.
    """
    u = _nad_images(nads)[int(index)]
    img = u.sum(0)
    img = img / (np.abs(img).max() or 1.0)
    energy = fourier_energy(torch.from_numpy(u)).numpy()
    energy = energy / (energy.max() or 1.0)
    return (np.round(100 * img).astype(int).tolist(), np.round(100 * energy).astype(int).tolist())


def slider_indices(n: int, max_steps: int = MAX_STEPS, wanted=None) -> list[int]:
    """At most ``max_steps`` indices in ``[0, n)``: ``wanted`` (sorted, thinned evenly when too many) or,
    without it, 0-9 then log-spaced up to ``n - 1`` (the first NADs matter most)."""
    if max_steps < 2:
        raise ValueError(f"max_steps must be at least 2, got {max_steps}")
    if wanted is not None:
        idx = sorted({int(i) for i in wanted if 0 <= int(i) < n})
        if not idx:
            raise ValueError(f"none of the requested indices lies in [0, {n})")
    else:
        head = list(range(min(n, max_steps // 2)))
        tail = np.unique(np.geomspace(max(len(head), 1), n - 1, max_steps - len(head)).round().astype(int))
        idx = sorted(set(head) | {int(i) for i in tail if i < n})
    if len(idx) > max_steps:
        keep = np.unique(np.linspace(0, len(idx) - 1, max_steps).round().astype(int))
        idx = [idx[k] for k in keep]
    return idx


def _trainability_at(trainability: dict, index: int) -> dict:
    """``{label: accuracy}`` at ``index`` for the curves measured there."""
    out = {}
    for label, (idx, acc) in trainability.items():
        hit = np.flatnonzero(_numpy(idx).astype(int) == index)
        if hit.size:
            out[label] = float(_numpy(acc)[hit[0]])
    return out


def nad_explorer_plotly(nads_by_arch: dict, trainability: dict | None = None, *, indices=None,
                        max_steps: int = MAX_STEPS):
    """A slider over the NAD index: the NAD image, its Fourier energy and, when given, the trainability.

    Args:
        nads_by_arch: ``{label: NADs}`` (a menu switches architecture when there are several).  Every
            architecture's images are stored at every slider position, so pass two or three.
        trainability: optional ``{label: (indices, test_acc)}`` (Chapter 2's ``curves``): drawn against
            the NAD index, with a vertical line at the slider position and the accuracy at that index in
            the title.  The slider then visits the measured indices.
        indices: the slider positions (default: :func:`slider_indices`).
        max_steps: at most this many positions are stored.

    Traces: for each architecture its pixel heatmap then its energy heatmap (``2 * a`` traces), then one
    line per trainability curve.  Step ``k`` of ``layout.sliders[0]`` restyles the heatmaps' ``z`` with
    :func:`nad_panels` at its index (``step.label``).
    """
    go, make_subplots = _plotly()
    if not nads_by_arch:
        raise ValueError("nads_by_arch is empty: give at least one {label: NADs}")
    names = list(nads_by_arch)
    n = min(len(_nad_images(nads_by_arch[a])) for a in names)
    trainability = {k: v for k, v in (trainability or {}).items() if v is not None}
    wanted = indices
    if wanted is None and trainability:
        wanted = np.concatenate([_numpy(i) for i, _ in trainability.values()])
    steps_idx = slider_indices(n, max_steps, wanted)

    cols = 3 if trainability else 2
    titles = ["NAD (pixels)", "Fourier energy"] + (["trainability on D(u_i)"] if trainability else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        column_widths=[0.28, 0.28, 0.44][:cols] if trainability else None)
    first = steps_idx[0]
    for a, name in enumerate(names):
        img, energy = nad_panels(nads_by_arch[name], first)
        fig.add_trace(go.Heatmap(z=img, zmin=-100, zmax=100, colorscale="BrBG", showscale=False, visible=a == 0,
                                 name=f"{name} pixels", hovertemplate="%{z}% of max |u|<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=energy, zmin=0, zmax=100, colorscale="Magma", showscale=False, visible=a == 0,
                                 name=f"{name} energy", hovertemplate="energy %{z}% of max<extra></extra>"),
                      row=1, col=2)
    for label, (idx, acc) in trainability.items():
        fig.add_trace(go.Scatter(x=_numpy(idx).astype(int).tolist(), y=np.round(_numpy(acc), 4).tolist(),
                                 mode="lines+markers", name=label), row=1, col=3)
    heat = list(range(2 * len(names)))

    def title(i):
        acc = _trainability_at(trainability, i)
        extra = "; ".join(f"{k}: test acc. {v:.3f}" for k, v in acc.items())
        return f"NAD {i}" + (f" — {extra}" if extra else "")

    steps = []
    for i in steps_idx:
        z = [p for name in names for p in nad_panels(nads_by_arch[name], i)]
        layout = {"title.text": title(i)}
        if trainability:
            layout.update({"shapes[0].x0": i, "shapes[0].x1": i})
        steps.append(dict(method="update", label=str(i), args=[{"z": z}, layout, heat]))
    shapes = []
    if trainability:
        shapes.append(dict(type="line", xref="x3", yref="y3 domain", x0=first, x1=first, y0=0, y1=1,
                           line=dict(color="crimson", dash="dot")))
        fig.update_xaxes(title_text="NAD index i", row=1, col=3)
        fig.update_yaxes(title_text="test accuracy", range=[0.4, 1.02], row=1, col=3)
    menus = []
    if len(names) > 1:
        menus.append(dict(buttons=[dict(label=name, method="restyle",
                                        args=[{"visible": [t // 2 == a for t in heat]}, heat])
                                   for a, name in enumerate(names)],
                          direction="down", x=0.0, xanchor="left", y=1.25, yanchor="bottom"))
    fig.update_layout(
        title=dict(text=title(first), x=0.01, y=0.98, font=dict(size=14)), height=430,
        margin=dict(t=110, l=30, r=20, b=40), shapes=shapes, updatemenus=menus, plot_bgcolor="white",
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="NAD index: "), pad=dict(t=30))],
    )
    for col in (1, 2):
        fig.update_xaxes(showticklabels=False, constrain="domain", row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor=f"x{col if col > 1 else ''}",
                         row=1, col=col)
    return fig


def _rgb_uint8(img) -> list:
    """A ``C x H x W`` image in [0, 1] as a JSON-ready ``H x W x 3`` uint8 nested list (clipped)."""
    a = _numpy(img).astype(np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"an example image must be C x H x W with C in (1, 3), got shape {a.shape}")
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0).tolist()


def poisoning_plotly(sweep_arrays: dict, examples, *, max_steps: int = MAX_STEPS):
    """A slider over the poisoning index: clean-test and carrier accuracy, and a poisoned example.

    Args:
        sweep_arrays: the arrays of a ``python -m nadlib poison`` artifact (``indices``, ``test_acc``,
            ``carrier_acc``, optionally ``clean_test_acc``).
        examples: ``{index: image}`` or a sequence aligned with ``indices``: one poisoned image
            (``C x H x W`` in [0, 1]) per index, precomputed (e.g. with :func:`nadlib.poison_with_nads`).
        max_steps: at most this many slider positions (indices thinned evenly).

    Traces: clean test accuracy (0), carrier accuracy (1), the example image (2, ``go.Image``).  Step
    ``k`` sets the image's ``z`` and moves a vertical line (``layout.shapes[0]``) to its index; its title
    states both accuracies at that index.
    """
    go, make_subplots = _plotly()
    for key in ("indices", "test_acc", "carrier_acc"):
        if key not in sweep_arrays:
            raise ValueError(f"sweep_arrays lacks {key!r} (expected the arrays of a `nadlib poison` artifact)")
    idx = _numpy(sweep_arrays["indices"]).astype(int)
    test, carrier = _numpy(sweep_arrays["test_acc"]), _numpy(sweep_arrays["carrier_acc"])
    if not (len(idx) == len(test) == len(carrier)) or len(idx) == 0:
        raise ValueError(f"indices, test_acc and carrier_acc must be non-empty and of equal length, got "
                         f"{len(idx)}, {len(test)}, {len(carrier)}")
    if not isinstance(examples, dict):
        if len(examples) != len(idx):
            raise ValueError(f"examples must give one image per index ({len(idx)}), got {len(examples)}")
        examples = dict(zip(idx.tolist(), examples))
    missing = [int(i) for i in idx if int(i) not in examples]
    if missing:
        raise ValueError(f"no example image for index/indices {missing}")
    keep = slider_indices(int(idx.max()) + 1, max_steps, idx.tolist())
    pos = {int(i): k for k, i in enumerate(idx)}

    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=["accuracy vs NAD index of the carrier", "a poisoned training image"])
    fig.add_trace(go.Scatter(x=idx.tolist(), y=np.round(test, 4).tolist(), mode="lines+markers",
                             name="clean test accuracy"), row=1, col=1)
    fig.add_trace(go.Scatter(x=idx.tolist(), y=np.round(carrier, 4).tolist(), mode="lines+markers",
                             name="follows a foreign carrier", line=dict(dash="dash")), row=1, col=1)
    fig.add_trace(go.Image(z=_rgb_uint8(examples[keep[0]]), name="example", hoverinfo="skip"), row=1, col=2)

    def title(i):
        k = pos[i]
        return f"carrier on NAD {i}: clean test acc. {test[k]:.3f}, carrier acc. {carrier[k]:.3f}"

    steps = [dict(method="update", label=str(i),
                  args=[{"z": [_rgb_uint8(examples[i])]},
                        {"title.text": title(i), "shapes[0].x0": i, "shapes[0].x1": i}, [2]])
             for i in keep]
    shapes = [dict(type="line", xref="x", yref="y domain", x0=keep[0], x1=keep[0], y0=0, y1=1,
                   line=dict(color="crimson", dash="dot"))]
    if "clean_test_acc" in sweep_arrays:
        clean = float(_numpy(sweep_arrays["clean_test_acc"]))
        shapes.append(dict(type="line", xref="x domain", yref="y", x0=0, x1=1, y0=clean, y1=clean,
                           line=dict(color="gray", dash="dot")))
    fig.update_layout(
        title=dict(text=title(keep[0]), x=0.01, y=0.98, font=dict(size=14)), height=420, shapes=shapes,
        margin=dict(t=110, l=50, r=20, b=40), plot_bgcolor="white",
        legend=dict(x=0.0, y=1.12, xanchor="left", yanchor="bottom", orientation="h"),
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="NAD index: "), pad=dict(t=60))],
    )
    fig.update_xaxes(title_text="NAD index of the carrier", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(showticklabels=False, row=1, col=2)
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    return fig
