"""Kernel-free interactive figures: Chapter 1's Fourier-map explorer (a menu), Chapters 2 and 3's sliders.

Unlike the ipywidgets of :mod:`nadlib.book.widgets`, these figures need no running kernel: every slider
position or menu entry is precomputed and stored in the figure (``layout.sliders[0].steps``,
``layout.updatemenus[0].buttons``), so they stay interactive
in the static HTML of the book (rendered offline by ``book/_ext/nadbook_sphinx.py`` with a local
plotly.js) and in JupyterLab.

To keep the pages light, only a few dozen positions are stored (``max_steps``) and the values are
stored as whole percentages (images scaled to [-100, 100], energies to [0, 100] of their largest value).  ``plotly`` is
imported lazily (``pip install 'nadlib[book]'``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..directions import fill_symmetric, fourier_direction, fourier_energy
from ..paper import CHANCE_SIGMAS, PAPER_SOURCE, PUBLISHED_STEP, fourier_map_entries
from .plotting import ACC_VMAX, ACC_VMIN, NOT_TRAINED_COLOR, accuracy_lattice, nad_rows, rgb_image

#: Slider positions stored in a figure by default (each holds the images of every architecture).
MAX_STEPS = 24


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as err:  # pragma: no cover - installed with the book's requirements
        raise ImportError("nadlib.book.interactive needs plotly: pip install 'nadlib[book]'") from err
    return go, make_subplots


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def nad_panels(nads, index: int) -> tuple[list, list]:
    """The two images the explorer shows for NAD ``index``, as nested lists (JSON-ready).

    Returns ``(pixels, energy)`` as whole percentages (the figure's JSON stays small): the NAD summed over
    channels, in percent of its largest absolute value (so in [-100, 100]); and its Fourier energy
    (:func:`nadlib.fourier_energy`, zero frequency at the centre) in percent of its largest value.
    """
    u = nad_rows(nads)[int(index)]
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
    n = min(len(nad_rows(nads_by_arch[a])) for a in names)
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
    return (rgb_image(img) * 255).round().astype(np.uint8).tolist()


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


# --------------------------------------------------------------------------------------------------
# Chapter 1: the published Fourier maps of the five networks beside the book's own
# --------------------------------------------------------------------------------------------------

#: Signed frequencies of the published 16 x 16 block: columns ``kx = -7 .. 8``, rows ``ky = -8 .. 7``
#: (the authors' grid, see :mod:`nadlib.paper`; every cell holds a measurement or its mirror's).
#: Signed frequencies of the published maps: the whole spectrum with step 2 (see :mod:`nadlib.paper`).
PUBLISHED_KX = PUBLISHED_KY = np.arange(-16, 16, PUBLISHED_STEP)


def _published_block(accuracy: dict, size: int = 32) -> np.ndarray:
    """The published accuracies on their 16 x 16 lattice of even frequencies (rows ``PUBLISHED_KY``, columns
    ``PUBLISHED_KX``), each direction also drawn at its mirror."""
    full = fill_symmetric(accuracy, size)
    return full[np.ix_(PUBLISHED_KY % size, PUBLISHED_KX % size)]


def _agreement_lines(entry: dict) -> list[str]:
    ag = entry["agreement"]
    if ag is None and entry["source"] == "this book":
        return [f"the authors published no map of {entry['network']}"]
    if ag is None:
        return [f"no map of {entry['network']} in this book (it needs a GPU): the authors' values only"]
    r = ag["pearson"]
    r_text = f"Pearson r = {r:.2f}" if np.isfinite(r) else "Pearson r undefined (a constant map)"
    t_ours, t_pub = ag["threshold_ours"], ag["threshold_published"]
    limit = f"{t_ours:.3f}" if abs(t_ours - t_pub) < 5e-4 else f"{t_ours:.3f} / {t_pub:.3f}"
    return [f"this book vs published on {ag['shared']} shared directions: {r_text}, mean |diff.| "
            f"{ag['mean_abs']:.3f}",
            f"at chance (test acc. < {limit}): {ag['failing_ours']:.0%} in this book, "
            f"{ag['failing_published']:.0%} published"]


#: Hovering a map cell redraws the direction panel with the image of that Fourier direction, computed in the
#: browser from the cell's signed ``(kx, ky)`` (the formula of :func:`nadlib.fourier_direction`).  Stored in
#: ``layout.meta["nadbook_post_script"]`` and run by the book's Sphinx extension (``{plot_id}`` is the id of the
#: figure's ``div``); in a kernel the panel keeps the first direction.
HOVER_JS = """
(function () {
  var gd = document.getElementById('{plot_id}');
  if (!gd || !gd.on) { return; }
  var meta = gd.layout.meta || {};
  var N = meta.size || 32, img = meta.image_trace;
  gd.on('plotly_hover', function (ev) {
    var p = ev.points && ev.points[0];
    if (!p || p.curveNumber === img) { return; }
    var kx = p.x, ky = p.y;
    var cos = ((2 * kx) % N === 0) && ((2 * ky) % N === 0);
    var z = [], norm = 0, r, c;
    for (r = 0; r < N; r++) {
      var row = [];
      for (c = 0; c < N; c++) {
        var ph = 2 * Math.PI * (ky * r + kx * c) / N;
        var w = cos ? Math.cos(ph) : Math.sin(ph);
        row.push(w); norm += w * w;
      }
      z.push(row);
    }
    norm = Math.sqrt(norm);
    for (r = 0; r < N; r++) { for (c = 0; c < N; c++) { z[r][c] /= norm; } }
    Plotly.restyle(gd, {z: [z]}, [img]);
    Plotly.relayout(gd, {'xaxis2.title.text': 'direction (kx, ky) = (' + kx + ', ' + ky + ')'});
  });
})();
"""


def _map_title(entry: dict) -> str:
    """Title of one map: network and source (bold line), how it was measured, agreement (small lines)."""
    if entry["source"] == "published":
        head = f"<b>{entry['network']}</b> — published (Ortiz-Jimenez et al., NeurIPS 2020)"
    else:
        head = f"<b>{entry['network']}</b> — this book"
    small = [entry["details"], *_agreement_lines(entry)]
    return head + "".join(f"<br><span style='font-size:12px'>{line}</span>" for line in small)


def fourier_map_explorer(ours: dict | None = None, *, start: str = "lenet", published: dict | None = None,
                         sigmas: float = CHANCE_SIGMAS, direction: tuple[int, int] = (1, 0)):
    """The Fourier accuracy maps of the five networks, published and the book's, behind one menu, and the
    image of the hovered direction beside them.

    One heatmap per (network, source) that exists (:func:`nadlib.paper.fourier_map_entries`, in its
    order); a menu entry per heatmap, labelled ``"<network>: published (Ortiz-Jimenez et al.)"`` or
    ``"<network>: this book (<lattice>, <profile>, <device>)"``, shows it alone.  The published maps are
    the authors' measurements (:data:`nadlib.paper.PAPER_SOURCE`), drawn on their lattice of even signed
    frequencies ``-16 .. 14`` (the whole spectrum with step 2); the book's maps on their measured lattice
    (:func:`nadlib.book.plotting.accuracy_lattice`).
    Colours: test accuracy from 0.5 (chance) to 1, the same scale for every map; grey: not measured.

    The title names the source and, when both maps of a network exist, their agreement: Pearson ``r``
    over the directions both hold, the mean absolute difference, and the *failing share* of each, i.e.
    the fraction of those directions at chance.  A direction is at chance when its test accuracy lies
    below ``0.5 + sigmas * 0.5 / sqrt(n_test)`` (:func:`nadlib.paper.chance_threshold`): an untrained
    classifier's accuracy on ``n_test`` balanced samples is Binomial(n_test, 1/2) / n_test, with standard
    deviation ``0.5 / sqrt(n_test)``; ``n_test`` is the grid's own test-set size (the paper's 10,000
    for the published maps), so with ``sigmas = 3`` both margins are 0.515.

    Args:
        ours: ``{arch: GridResult, a list of them (merged), or None}`` (see
            :func:`nadlib.paper.fourier_map_entries`).
        start: the network shown first: its book map if there is one, else its published map.
        published, sigmas: as :func:`nadlib.paper.fourier_map_entries`.

    Right: the image of the Fourier direction under the cursor (:data:`HOVER_JS`, in the static book), starting
    with ``direction``.  The book's maps of architectures the authors did not publish (e.g. ``lenet_nopool``)
    are menu entries of their own.

    ``layout.meta["entries"]`` lists, per map trace, ``arch``, ``source``, ``pearson`` (None when undefined
    or absent) and the two failing shares over the shared directions; ``layout.meta["image_trace"]`` is the
    index of the direction image (the last trace).
    """
    go, make_subplots = _plotly()
    entries = fourier_map_entries(ours, published=published, sigmas=sigmas)
    first = next((i for i, e in enumerate(entries) if e["arch"] == start and e["source"] == "this book"),
                 next((i for i, e in enumerate(entries) if e["arch"] == start), 0))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.16)
    ranges = []
    for i, e in enumerate(entries):
        if e["source"] == "published":
            kx, ky, z = PUBLISHED_KX, PUBLISHED_KY, _published_block(e["accuracy"])
            step = PUBLISHED_STEP
            who = "<b>published</b> (Ortiz-Jimenez et al.)"
        else:
            coords, z, step = accuracy_lattice(e["grid"])
            kx = ky = coords
            who = "<b>this book</b>"
        ranges.append(([float(kx[0] - step / 2), float(kx[-1] + step / 2)],
                       [float(ky[0] - step / 2), float(ky[-1] + step / 2)]))
        fig.add_trace(go.Heatmap(
            z=np.where(np.isnan(z), None, np.round(z, 4)).tolist(), x=kx.tolist(), y=ky.tolist(),
            name=f"{e['network']}: {e['short_label']}", visible=i == first, zmin=ACC_VMIN, zmax=ACC_VMAX,
            colorscale="Viridis", hoverongaps=False, xgap=0.5, ygap=0.5,
            colorbar=dict(title="test acc.", len=1.0, x=0.56),
            hovertemplate=(f"{who}, {e['network']}<br>(kx, ky) = (%{{x}}, %{{y}})<br>test accuracy "
                           "%{z:.3f}<extra></extra>")), row=1, col=1)
    n = len(entries)
    image = fourier_direction(*direction).numpy()
    lim = float(np.sqrt(2) / image.shape[-1]) * 1.05
    fig.add_trace(go.Heatmap(z=image.tolist(), colorscale="RdBu", reversescale=True, zmin=-lim, zmax=lim,
                             showscale=False, name="direction", hoverinfo="skip", visible=True), row=1, col=2)

    def view(i):
        (x0, x1), (y0, y1) = ranges[i]
        return {"title.text": _map_title(entries[i]), "xaxis.range": [x0, x1], "yaxis.range": [y0, y1]}

    buttons = [dict(label=f"{e['network']}: {e['short_label']}", method="update",
                    args=[{"visible": [j == i for j in range(n)] + [True]}, view(i)]) for i, e in enumerate(entries)]
    init = view(first)
    fig.update_layout(
        title=dict(text=init["title.text"], x=0.01, y=0.97, yanchor="top", font=dict(size=13)),
        updatemenus=[dict(buttons=buttons, direction="down", active=first, x=0.0, xanchor="left", y=1.01,
                          yanchor="bottom", showactive=True, pad=dict(l=0, t=0, b=4, r=0))],
        height=660, margin=dict(t=150, l=60, r=20, b=75), plot_bgcolor="white",
        shapes=[dict(type="rect", xref="x domain", yref="y domain", x0=0, x1=1, y0=0, y1=1,
                     fillcolor=NOT_TRAINED_COLOR, line_width=0, layer="below")],
        modebar=dict(remove=["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "toImage"]),
        annotations=[dict(text=("menu: network and source · grey: not measured · hover a cell to see its "
                                "direction<br>the published maps hold the even frequencies; their values are "
                                "the authors' (Ortiz-Jimenez et al.)"),
                          showarrow=False, xref="paper", yref="paper", x=0.0, y=-0.1, xanchor="left",
                          yanchor="top", font=dict(size=11))],
        meta={"source": PAPER_SOURCE, "chance_sigmas": float(sigmas), "nadbook_post_script": HOVER_JS,
              "image_trace": n, "size": int(image.shape[-1]),
              "entries": [dict(arch=e["arch"], source=e["source"], n_test=e["n_test"],
                               pearson=(None if e["agreement"] is None or not np.isfinite(e["agreement"]["pearson"])
                                        else e["agreement"]["pearson"]),
                               failing_ours=None if e["agreement"] is None else e["agreement"]["failing_ours"],
                               failing_published=(None if e["agreement"] is None
                                                  else e["agreement"]["failing_published"]))
                          for e in entries]},
    )
    fig.update_xaxes(title_text="kx (signed)", range=init["xaxis.range"], constrain="domain", zeroline=False,
                     row=1, col=1)
    fig.update_yaxes(title_text="ky (signed)", range=init["yaxis.range"], scaleanchor="x", constrain="domain",
                     zeroline=False, row=1, col=1)
    fig.update_xaxes(title_text=f"direction (kx, ky) = {tuple(direction)}", showticklabels=False,
                     constrain="domain", showgrid=False, zeroline=False, row=1, col=2)
    fig.update_yaxes(autorange="reversed", scaleanchor="x2", showticklabels=False, showgrid=False,
                     zeroline=False, row=1, col=2)
    return fig
