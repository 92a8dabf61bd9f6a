"""The signature card of an architecture: its three signatures on one self-contained HTML page.

    python -m nadlib card mymodels:StrideGAPNet --arch-kwargs '{"width": 32}' --profile smoke --out card/

measures, for any architecture, what the book measures for the paper's networks, and draws each beside
LeNet and ResNet-18 (the bundled results of the book, labelled as such):

1. its secant NADs (the first eight) and their eigenvalue spectrum, with the split-half stability;
2. its test accuracy on D(v) over a Fourier grid;
3. its test accuracy on D(u_i) against the NAD index i (on its own NADs);
4. its non-linearity signature (affinity score of each activation layer, at initialisation);
5. its neural-collapse measures NC1-NC4 over a training run on a two-class D(v).

The model is given as ``make(num_classes)`` (a registered name, or a callable taking the number of outputs:
NADs need 1, D(v) 2, the signature 10).  Sizes come from :data:`CARD_SIZES` of a profile; every section states
its sizes, device and time.  The page embeds its figures (PNG), so it opens anywhere; the arrays behind it
are written beside it (``card.npz``, with provenance).
"""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from .. import results
from ..affinity import nonlinearity_signature
from ..collapse import run_collapse, separable_data
from ..config import PAPER_RECIPE
from ..control import RunControl, as_run
from ..directions import fourier_direction
from ..experiments import CIFARHyperParams, nad_trainability
from ..grid import accuracy_grid
from ..models import get_model, model_fingerprint
from ..nads import estimate_nads
from ..results import provenance, save_artifact
from . import plotting, plotting_collapse, plotting_signature


@dataclass(frozen=True)
class CardSizes:
    """The sizes of a card (every section states them)."""

    networks: int  # random networks of the secant NAD estimate
    grid_stride: int  # Fourier grid: every grid_stride-th frequency along each axis
    n_train: int  # D(v) samples (training; as many for testing)
    epochs: int  # D(v) training epochs
    nad_indices: tuple[int, ...]  # NAD indices of the trainability curve
    signature_samples: int  # inputs of the signature
    collapse_epochs: int  # epochs of the collapse run


#: Sizes per run profile: ``smoke`` for a test (a minute on a CPU), ``default`` for a laptop, ``paper`` for a GPU.
CARD_SIZES = {
    "smoke": CardSizes(networks=16, grid_stride=16, n_train=256, epochs=1, nad_indices=(0, 4, 16),
                       signature_samples=128, collapse_epochs=2),
    "default": CardSizes(networks=512, grid_stride=8, n_train=2_000, epochs=10, nad_indices=(0, 5, 20, 100, 400),
                         signature_samples=1_024, collapse_epochs=20),
    "paper": CardSizes(networks=10_000, grid_stride=2, n_train=PAPER_RECIPE.n_train, epochs=PAPER_RECIPE.epochs,
                       nad_indices=(0, 1, 5, 10, 20, 50, 100, 200, 400, 1000), signature_samples=4_096,
                       collapse_epochs=200),
}

#: The networks a card is drawn beside (their bundled results).
REFERENCES = {"lenet": "LeNet", "resnet18": "ResNet-18"}
#: The catalogue entries a card reads (those of :data:`REFERENCES`; the reader's own results first, as in the book).
READS = (*(f"{a}/{what}" for what in ("nads/secant", "grid", "trainability/secant") for a in REFERENCES),
         "cnns/signatures")


def maker(arch) -> Callable[[int], torch.nn.Module]:
    """``make(num_classes)`` for a registered name (one input channel), or ``arch`` itself if it is a callable."""
    if isinstance(arch, str):
        get_model(arch)  # validates the name
        return lambda k: get_model(arch, in_channels=1, num_classes=k)
    if not callable(arch):
        raise TypeError(f"arch must be a registered name or a callable make(num_classes), got {type(arch).__name__}")
    return arch


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bundled(key: str):
    assert key in READS, key  # the catalogue lists the card's chapter for each entry it reads
    try:
        return results.load(key, missing_ok=True)
    except Exception:  # noqa: BLE001 -- a reference that cannot be read is left out, and the page says so
        return None


class _Card:
    def __init__(self, name: str, sizes: CardSizes, run: RunControl):
        self.name, self.sizes, self.run = name, sizes, run
        self.sections: list[str] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.seconds: dict[str, float] = {}

    def section(self, title: str, what: str, figure, started: float, notes: str = "") -> None:
        self.seconds[title] = round(time.perf_counter() - started, 2)
        self.sections.append(
            f"<section><h2>{html.escape(title)}</h2><p>{html.escape(what)}</p>"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{_png(figure)}'>"
            f"<p class='how'>{html.escape(notes)} · {self.seconds[title]:.1f} s on {self.run.torch_device()}</p>"
            "</section>")

    def page(self, meta: dict) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in meta.items())
        return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>Signature card: {html.escape(self.name)}</title><style>"
                "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
                "img{max-width:100%}section{border-top:1px solid #ccc;margin-top:1.5em}.how{color:#555;font-size:90%}"
                "td{padding:2px 8px;font-size:90%;vertical-align:top}</style></head><body>"
                f"<h1>Signature card: {html.escape(self.name)}</h1>"
                "<p>Three signatures of an architecture's inductive bias, measured by nadlib: its neural anisotropy "
                "directions (Ortiz-Jimenez et al., NeurIPS 2020), its non-linearity signature and its neural "
                "collapse, each beside LeNet and ResNet-18 (the book's bundled results, labelled as such).</p>"
                + "".join(self.sections)
                + f"<section><h2>Provenance</h2><table>{rows}</table></section></body></html>")


def signature_card(arch, out_dir, *, profile: str = "default", name: str | None = None,
                   run: RunControl | None = None) -> Path:
    """Measure ``arch`` (a registered name or ``make(num_classes)``) and write ``out_dir/card.html`` and
    ``out_dir/card.npz``; returns the page's path.  ``name``: the model's name on the page (default: the registered
    name, or the class of the model ``arch`` builds).  ``run``: seed, device and a progress bar over the five
    sections (default on)."""
    run = as_run(run)
    if profile not in CARD_SIZES:
        raise ValueError(f"profile must be one of {', '.join(CARD_SIZES)}, got {profile!r}")
    sizes = CARD_SIZES[profile]
    make = maker(arch)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file, not a folder")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    name = name or (arch.lower() if isinstance(arch, str) else type(make(1)).__name__)  # the class, not "<lambda>"
    quiet = run.replace(progress=False, checkpoint=None)
    card = _Card(name, sizes, run)
    recipe = PAPER_RECIPE.replace(n_train=sizes.n_train, n_test=sizes.n_train, epochs=sizes.epochs)
    steps = tqdm(total=5, desc=f"card {name}", unit="section", disable=not run.shows_progress(True))

    t0 = time.perf_counter()
    nads = estimate_nads(lambda: make(1), sizes.networks, "secant", run=quiet)
    refs = {label: _bundled(f"{key}/nads/secant") for key, label in REFERENCES.items()}
    shown = list(range(min(8, len(nads))))
    fig = plt.figure(figsize=(13, 3.8))
    gs = fig.add_gridspec(2, len(shown) + 4)
    plotting.plot_nads(nads, indices=shown, axes=[[fig.add_subplot(gs[r, c]) for c in range(len(shown))]
                                                  for r in range(2)])
    plotting.plot_eigenvalues({name: nads, **{f"{k} (bundled)": v for k, v in refs.items() if v is not None}},
                              ax=fig.add_subplot(gs[:, len(shown) + 1:]))
    stability = ", ".join(f"top-{k}: {v:.2f}" for k, v in sorted(nads.stability.items()))
    card.section("1. Neural anisotropy directions", "The first eight secant NADs (large-step central differences, "
                 "step 100, as the authors) and the spectrum of the gradient covariance beside LeNet's and "
                 f"ResNet-18's.  Split-half stability: {stability}.", fig, t0,
                 f"{nads.n_networks} random networks")
    ks = sorted(nads.stability)
    card.arrays.update(nad_eigenvalues=nads.eigenvalues.numpy(), nad_directions=nads.directions[:8].numpy(),
                       nad_stability_k=np.array(ks, dtype=np.int64),
                       nad_stability=np.array([nads.stability[k] for k in ks], dtype=float))
    steps.update()

    t0 = time.perf_counter()
    grid = accuracy_grid(lambda: make(2), stride=sizes.grid_stride, recipe=recipe, workers=1, run=quiet)
    maps = {f"{name}": grid, **{f"{label} (bundled)": _bundled(f"{key}/grid") for key, label in REFERENCES.items()}}
    fig = plotting.plot_accuracy_maps(maps, missing_text="not bundled (needs a GPU)", captions=False)
    card.section("2. Trainability over Fourier directions", "Test accuracy on D(v) for Fourier directions v "
                 "(grey: not trained; chance is 0.5).", fig, t0,
                 f"{len(grid.accuracy)} directions, {sizes.n_train:,} samples, {sizes.epochs} epoch(s)")
    card.arrays.update(grid_freqs=np.array(sorted(grid.accuracy)), grid_accuracy=np.array(
        [grid.accuracy[f] for f in sorted(grid.accuracy)]))
    steps.update()

    t0 = time.perf_counter()
    indices = [i for i in sizes.nad_indices if i < len(nads)]
    curve = nad_trainability(nads, indices, arch=lambda: make(2), recipe=recipe, run=quiet)
    curves = {name: (curve["indices"], curve["test_acc"])}
    for key, label in REFERENCES.items():
        ref = _bundled(f"{key}/trainability/secant")
        if ref is not None:
            curves[f"{label} (bundled)"] = (ref[0]["indices"], ref[0]["test_acc"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    plotting.plot_trainability(curves, ax=ax)
    card.section("3. Trainability against the NAD index", "Test accuracy on D(u_i) for its own NADs u_i: the "
                 "paper's signature of a directional bias is a fall with i.", fig, t0,
                 f"{len(indices)} indices, {sizes.n_train:,} samples, {sizes.epochs} epoch(s)")
    card.arrays.update(trainability_indices=curve["indices"], trainability_accuracy=curve["test_acc"])
    steps.update()

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(run.seed)
    inputs = torch.randn(sizes.signature_samples, 1, 32, 32, generator=gen)
    sig = nonlinearity_signature(make(10), inputs, n_samples=sizes.signature_samples, tokens="mean", run=quiet)
    sigs = {name: sig}
    bundled = _bundled("cnns/signatures")
    if bundled is not None:
        for key, label in REFERENCES.items():
            if key in bundled[0]:
                sigs[f"{label} (bundled, CIFAR-10)"] = bundled[0][key][0]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    plotting_signature.plot_signatures(sigs, ax=ax)
    card.section("4. Non-linearity signature", "Affinity score of each activation layer at initialisation "
                 "(1: the layer acts linearly on its inputs), against relative depth.", fig, t0,
                 f"{sizes.signature_samples} Gaussian inputs ({len(sig)} activation layers; N x T x D token "
                 "activations averaged over their T tokens)")
    card.arrays.update(signature_rho=np.asarray(sig.rho))
    steps.update()

    t0 = time.perf_counter()
    data = separable_data(fourier_direction(1, 0), sizes.n_train, sizes.n_train // 2, seed=run.seed, device="cpu")
    collapse = run_collapse(lambda: make(2), data, sizes.collapse_epochs, hp=CIFARHyperParams(batch_size=64),
                            run=quiet)
    axes = plotting_collapse.plot_collapse({name: collapse})
    card.section("5. Neural collapse", "NC1-NC4 over a training run on a two-class D(v) (v: the Fourier direction "
                 "(1, 0)); the book has no bundled run of LeNet or ResNet-18 at these sizes to draw beside it.",
                 np.asarray(axes, dtype=object).flat[0].figure, t0,
                 f"{sizes.n_train:,} samples, {sizes.collapse_epochs} epoch(s)")
    card.arrays.update({f"collapse_{k}": np.asarray(v) for k, v in collapse.history.items()})
    steps.update()
    steps.close()

    out_dir.mkdir(parents=True, exist_ok=True)
    model = arch if isinstance(arch, str) else f"{name} #{model_fingerprint(lambda: make(1))}"
    meta = provenance(device=run.torch_device(), model=model, profile=profile, sizes=asdict(sizes),
                      seconds=card.seconds, seed=run.seed)
    save_artifact(out_dir / "card.npz", card.arrays, meta)
    page = out_dir / "card.html"
    page.write_text(card.page(meta), encoding="utf-8")
    return page


def card_frame(page, height: int = 900):
    """The card at ``page`` (a path to ``card.html``) as an inline frame for a notebook or the static book: the
    page is embedded (``srcdoc``), so it needs no server and no file beside the book."""
    from IPython.display import HTML

    text = Path(page).read_bytes().decode("utf-8", errors="replace")
    if not text.lstrip().startswith("<!DOCTYPE html>"):
        raise ValueError(f"{str(page)!r} is not a card page written by signature_card")
    return HTML(f"<div><iframe title='signature card' style='width:100%;height:{int(height)}px;border:1px solid #ccc' "
                f"srcdoc=\"{html.escape(text, quote=True)}\"></iframe></div>")


def load_card(page) -> tuple[dict, dict]:
    """``(arrays, meta)`` of the card whose page is ``page`` (the ``card.npz`` written beside ``card.html``,
    checksums verified)."""
    return results.load_artifact(Path(page).with_name("card.npz"))
