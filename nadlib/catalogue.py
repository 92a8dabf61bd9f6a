"""The catalogue of results: one declarative table of every result the book shows and every artifact
``python -m nadlib paper`` makes.

Each :class:`Entry` has a stable *key* (``"lenet/nads/secant"``, ``"resnet18/grid"``, ``"lenet/cifar/flip-fit"``,
...), says in one line what it holds, how it loads (its *kind*), which networks and chapters it belongs to,
which file of ``results/`` stands for it today (``bundled``), and, for each run profile that can make it
(``smoke``, ``default``, ``paper``), the library call and arguments that produce it (:class:`Make`: a
producer name, keyword arguments, and the other entries it reads).  The producers themselves (which
library function each name calls) are wired in :mod:`nadlib.paper_run`; this module is plain data plus
the arithmetic of names and costs, so that :mod:`nadlib.results` can look results up by key.

* :func:`canonical_name` is the one place where a file name is derived: ``lenet/nads/secant`` made in the
  ``paper`` profile is ``lenet__nads__secant__paper.npz``.
* :func:`entry_cost` estimates the seconds an entry takes on a device type from :data:`COSTS`, a small
  table of per-unit costs per (unit kind, architecture, device type), measured where marked.

Loading by key (the reader's folder first, then the bundled file) is :func:`nadlib.results.load`.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from .config import PAPER_RECIPE, PROFILE_NAMES, get_profile
from .directions import fourier_grid
from .models import paper_networks

__all__ = ["Make", "Entry", "ENTRIES", "CATALOGUE", "networks", "all_entries", "registered_entries", "KINDS",
           "PRODUCERS", "RANKING", "COSTS",
           "DEVICE_TYPES", "canonical_name", "parse_canonical_name", "entry", "entries", "select", "unit_cost",
           "entry_units", "entry_cost", "make_command"]



def networks() -> dict[str, str]:
    """The networks of the book's coverage tables, name -> display name: those of the architecture registry
    with ``in_paper`` (:func:`nadlib.models.paper_networks`), read when called."""
    return {a.name: a.display_name for a in paper_networks()}


#: How an entry loads (the loaders are registered in :mod:`nadlib.results` by the modules that define them).
KINDS = ("artifact", "nads", "grid", "signatures", "collapse")
#: Producer names (wired to library calls in :mod:`nadlib.paper_run`).
PRODUCERS = ("nads", "grid", "trainability", "pooling", "poison", "flip", "signatures", "collapse")
#: Profiles of the reader's results, best first: :func:`nadlib.results.load` takes the first one present.
RANKING = ("paper", "default", "smoke")
DEVICE_TYPES = ("cpu", "cuda")

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*")


@dataclass(frozen=True)
class Make:
    """How one profile makes an entry: ``producer`` (a name of :data:`PRODUCERS`) called with ``kwargs``;
    ``needs`` maps an argument to the catalogue key whose artifact (of the same profile) it reads, e.g.
    ``{"nads": "lenet/nads/secant"}``."""

    producer: str
    kwargs: dict
    needs: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))
        object.__setattr__(self, "needs", MappingProxyType(dict(self.needs)))


@dataclass(frozen=True)
class Entry:
    """One result of the book (see the module docstring)."""

    key: str
    what: str  # one line
    kind: str  # how it loads: one of KINDS
    step: str  # the kind of work, as `--only` accepts it: nads, trainability, grid, pooling, poison, flip, ...
    archs: tuple[str, ...]  # the networks it is about (the first one prices it)
    chapters: tuple[int, ...] = ()  # the chapters that show it
    make: dict = field(default_factory=dict)  # profile -> Make (a profile that is absent cannot make it)
    bundled: str | None = None  # the file of results/ that stands for it today
    label: str | None = None  # its cell in the coverage table of chapters[0] (None: not listed there)
    priority: int = 100  # order of `python -m nadlib paper` (lower first)
    command: str | None = None  # how the bundled file was made, when no profile of the planner can

    def __post_init__(self):
        object.__setattr__(self, "make", MappingProxyType(dict(self.make)))

    @property
    def arch(self) -> str:
        return self.archs[0]

    def profiles(self) -> tuple[str, ...]:
        """The profiles that can make this entry, in the order smoke, default, paper."""
        return tuple(p for p in PROFILE_NAMES if p in self.make)

    def file_name(self, profile: str) -> str:
        return canonical_name(self.key, profile)


# --------------------------------------------------------------------------------------------------
# names


def canonical_name(key: str, profile: str) -> str:
    """The file name of entry ``key`` made in ``profile``: ``/`` becomes ``__`` and the profile is the last
    part, e.g. ``("lenet/nads/secant", "paper") -> "lenet__nads__secant__paper.npz"``.  The only place where a
    planner file name is derived."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or "__" in key:
        raise ValueError(f"a catalogue key is lower-case words separated by '/' (no '__'), got {key!r}")
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return key.replace("/", "__") + f"__{profile}.npz"


def parse_canonical_name(name: str) -> tuple[str, str] | None:
    """``"lenet__grid__paper.npz" -> ("lenet/grid", "paper")``; None for a name that is not canonical."""
    if not name.endswith(".npz") or name.endswith(".ckpt.npz"):
        return None
    *parts, profile = name[:-4].split("__")
    if not parts or profile not in PROFILE_NAMES:
        return None
    key = "/".join(parts)
    return (key, profile) if _KEY.fullmatch(key) else None


# --------------------------------------------------------------------------------------------------
# the table


def _recipe() -> dict:
    """The D(v) training recipe of the paper (learning rate, clipping, batch, noise and margin)."""
    r = PAPER_RECIPE
    return dict(lr=r.lr, clip=r.clip, batch_size=r.batch_size, sigma=r.sigma, epsilon=r.epsilon)


_SMOKE_DV = dict(n_train=256, n_test=128, epochs=1)
_PAPER_DV = dict(n_train=10_000, n_test=10_000, epochs=20)


def _grid_make(arch: str, profile: str, **where) -> Make:
    sizes = _SMOKE_DV if profile == "smoke" else _PAPER_DV
    extra = {"workers": 1} if profile == "smoke" else {}
    return Make("grid", dict(arch=arch, **where, **sizes, **_recipe(), **extra))


def _grid(arch: str, smoke: dict | None, default: dict | None, paper: dict | None, **kw) -> Entry:
    make = {p: _grid_make(arch, p, **w) for p, w in (("smoke", smoke), ("default", default), ("paper", paper))
            if w is not None}
    band = (paper or default or {}).get("band")
    what = (f"test accuracy of {arch} trained on D(v) for the low-frequency Fourier directions (band {band}), "
            "paper recipe" if band else
            f"test accuracy of {arch} trained on D(v) over a Fourier grid of the whole spectrum, paper recipe")
    return Entry(what=what, kind="grid", step="grid", archs=(arch,), priority=30, **kw, make=make)


def _nads(arch: str, method: str, networks: dict, keep: int | None = None, **kw) -> Entry:
    make = {p: Make("nads", dict(arch=arch, n_networks=n, method=method, **({"keep": keep} if keep else {})))
            for p, n in networks.items()}
    what = (f"NADs of {arch} ({method} estimator): orthonormal directions and eigenvalues of the gradient "
            "covariance of random networks" + (f", top {keep} kept" if keep else ""))
    return Entry(kind="nads", step="nads", archs=(arch,), make=make, what=kw.pop("what", what), **kw)


def _trainability(arch: str, nads_key: str | None, sizes: dict, **kw) -> Entry:
    make = {}
    for p, s in sizes.items():
        kwargs = dict(arch=arch, **s)
        if nads_key is None:
            make[p] = Make("trainability", dict(kwargs, nads="published"))
        else:
            make[p] = Make("trainability", kwargs, needs={"nads": nads_key})
    return Entry(kind="artifact", step="trainability", archs=(arch,), priority=20, make=make, **kw)


def _cifar_sizes(profile: str, **over) -> dict:
    if profile == "smoke":
        return dict(n_train=100, n_test=50, epochs=1, synthetic=True, **over)
    c = get_profile(profile).cifar
    return dict(dict(n_train=c.n_train, n_test=c.n_test, epochs=c.epochs), **over)


def _poison(arch: str, nads_key: str, profiles, **kw) -> Entry:
    make = {}
    for p in profiles:
        idx = (0,) if p == "smoke" else get_profile(p).cifar.poison_indices
        make[p] = Make("poison", dict(arch=arch, indices=list(idx), **_cifar_sizes(p)), needs={"nads": nads_key})
    return Entry(what=f"{arch} trained on CIFAR-10 poisoned with class carriers on single NADs: accuracies "
                      "against the NAD index, and the clean baseline", kind="artifact", step="poison",
                 archs=(arch,), priority=50, make=make, **kw)


def _flip(arch: str, nads_key: str, sizes: dict, what: str | None = None, **kw) -> Entry:
    make = {p: Make("flip", dict(arch=arch, **s), needs={"nads": nads_key}) for p, s in sizes.items()}
    return Entry(what=what or f"{arch} trained on CIFAR-10 and on its NAD-flipped version, same recipe",
                 kind="artifact", step="flip", archs=(arch,), priority=60, make=make, **kw)


def _pooling(settings: list[str] | None, freqs, key: str, what: str, bundled: str, label=None) -> Entry:
    def make(p):
        smoke = p == "smoke"
        return Make("pooling", dict(settings=settings, freqs=[list(f) for f in freqs],
                                    n_test=200 if smoke else 10_000, scale=0.02 if smoke else 1.0))
    return Entry(key, what, kind="artifact", step="pooling", archs=("lenet",), chapters=(1,), bundled=bundled,
                 label=label, priority=35, make={p: make(p) for p in PROFILE_NAMES})


_DEEP = ("vgg11", "resnet18", "densenet121")
_NOPOOL = ("vgg11_nopool", "resnet18_nopool", "densenet121_nopool")
_GPU_NADS = 10_000  # networks of the paper's secant NADs
_LARGE = get_profile("paper").nads.n_networks_large  # gradient NADs of the deep networks, paper profile


def _paper_trainability(profile: str) -> dict:
    n = get_profile(profile).nads
    return dict(indices=list(n.trainability_indices), n_train=n.n_train, n_test=n.n_test, epochs=n.epochs)


_LENET_TRAIN = {  # LeNet on D(u_i): smoke tiny; default = the bundled runs (CPU); paper = the paper's recipe
    "smoke": dict(indices=[0, 10, 50, 200], **_SMOKE_DV),
    "default": dict(indices=[0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], n_train=10_000, n_test=2_000,
                    epochs=10),
    "paper": _paper_trainability("paper"),
}

#: The chapter of the signature card (``nadlib.book.card``), which draws a reader's model beside the bundled
#: LeNet and ResNet-18 results: the entries it reads list it too.
_CARD = 6


def _card_too(arch: str, *chapters: int) -> tuple[int, ...]:
    return (*chapters, _CARD) if arch in ("lenet", "resnet18") else chapters


ENTRIES: tuple[Entry, ...] = (
    # ---- Chapter 2 first: the NADs everything else reads
    _nads("lenet", "secant", {"smoke": 16, "default": 4_000, "paper": _GPU_NADS}, key="lenet/nads/secant",
          chapters=(2, _CARD), bundled="nads_lenet_secant.npz", label="secant NADs", priority=10),
    *(_nads(a, "secant", {"paper": _GPU_NADS}, key=f"{a}/nads/secant", chapters=_card_too(a, 2),
            bundled=f"nads_{a}_secant_gpu.npz", label="secant NADs", priority=11) for a in _DEEP),
    _nads("lenet", "secant", {"smoke": 256, "default": 2_048, "paper": _GPU_NADS}, key="lenet/nads/cifar-basis",
          what="LeNet's secant NADs used as the basis of the CIFAR-10 experiments (poisoning, flip), the "
               "signature link and the collapse widget (2,048 networks in the bundled file)",
          chapters=(3, 4, 5), bundled="nads_lenet_secant_n2048.npz", priority=12),
    _nads("lenet", "gradient", {"smoke": 16, "default": 10_000, "paper": _GPU_NADS}, key="lenet/nads/gradient",
          chapters=(2, 3, 4), bundled="nads_lenet_gradient.npz", label="gradient NADs (contrast)", priority=15),
    _nads("logreg", "gradient", {"smoke": 16, "default": 2_000, "paper": _GPU_NADS}, keep=100,
          key="logreg/nads/gradient", chapters=(2,), bundled="nads_logreg_gradient.npz", label="gradient NADs",
          priority=15),
    _nads("vgg11", "gradient", {"smoke": 2, "default": 100, "paper": _LARGE}, keep=100, key="vgg11/nads/gradient",
          chapters=(2, 4), bundled="nads_vgg11_gradient.npz", label="gradient NADs (contrast)", priority=16),
    _nads("resnet18", "gradient", {"smoke": 2, "default": 200, "paper": _LARGE}, key="resnet18/nads/gradient",
          chapters=(2, 4), bundled="nads_resnet18_gradient.npz", label="gradient NADs (contrast)", priority=16),
    _nads("densenet121", "gradient", {"default": 100, "paper": _LARGE}, keep=100,
          key="densenet121/nads/gradient", chapters=(2, 4), bundled="nads_densenet121_gradient.npz",
          label="gradient NADs (contrast)", priority=16),
    # ---- trainability against the NAD index (Chapter 2)
    _trainability("lenet", "lenet/nads/secant", _LENET_TRAIN, key="lenet/trainability/secant",
                  what="LeNet's test accuracy on D(u_i) against the index i of its own secant NADs",
                  chapters=(2, _CARD), bundled="trainability_lenet_secant.npz", label="accuracy vs NAD index"),
    _trainability("lenet", "lenet/nads/gradient", _LENET_TRAIN, key="lenet/trainability/gradient",
                  what="LeNet's test accuracy on D(u_i) against the index i of its gradient NADs (contrast)",
                  chapters=(2,), bundled="trainability_lenet_gradient.npz"),
    _trainability("resnet18", "resnet18/nads/secant", {"paper": _paper_trainability("paper")},
                  key="resnet18/trainability/secant",
                  what="ResNet-18's test accuracy on D(u_i) against the index i of its own secant NADs",
                  chapters=(2, _CARD), bundled="trainability_resnet18_secant_gpu.npz", label="accuracy vs NAD index"),
    _trainability("resnet18", None, {"paper": dict(indices=[0, 1, 2, 5, 10, 50], **_PAPER_DV)},
                  key="resnet18/trainability/published",
                  what="ResNet-18's test accuracy on D(u_i) for the authors' published ResNet-18 NADs (first 64)",
                  chapters=(2,), bundled="trainability_resnet18_published_gpu.npz"),
    *(_trainability(a, f"{a}/nads/secant", {"paper": _paper_trainability("paper")}, key=f"{a}/trainability/secant",
                    what=f"{a}'s test accuracy on D(u_i) against the index i of its own secant NADs")
      for a in ("vgg11", "densenet121")),
    # ---- Fourier maps (Chapter 1; LeNet's also in Chapter 2)
    _grid("logreg", {"stride": 16}, {"stride": 2}, {"stride": 2}, key="logreg/grid", chapters=(1,),
          bundled="grid_logreg_paper_s2.npz", label="Fourier accuracy map"),
    # smoke: the directions the chapters name in their text (the published grid's (2, 0), (0, 2), (12, 0), ...)
    _grid("lenet", {"freqs": [[0, 0], [2, 0], [0, 2], [12, 0], [0, 12], [8, 8], [16, 0], [4, 4]]}, {"stride": 4},
          {"stride": 2}, key="lenet/grid", chapters=(1, 2, _CARD),
          bundled="grid_lenet_paper_s4.npz", label="Fourier accuracy map"),
    _grid("lenet", {"band": 1}, {"band": 4}, {"band": 4}, key="lenet/grid/band4", chapters=(1, 2),
          bundled="grid_lenet_paper_band4.npz", label="low-frequency block"),
    _grid("lenet_nopool", {"stride": 16}, {"stride": 8}, {"stride": 2}, key="lenet_nopool/grid", chapters=(1,),
          bundled="grid_lenet_nopool_paper_s8.npz"),
    _grid("resnet18", None, None, {"stride": 2}, key="resnet18/grid", chapters=(1, _CARD),
          label="Fourier accuracy map"),
    *(_grid(a, None, None, {"stride": 2}, key=f"{a}/grid") for a in ("vgg11", "densenet121", *_NOPOOL)),
    # ---- the pooling ablation (Chapter 1)
    _pooling(None, ((0, 8),), "lenet/pooling/ablation", "LeNet without pooling on D(v) for a direction LeNet "
             "fails, one change of network or recipe at a time", "pooling_ablation_lenet.npz", "pooling ablation"),
    _pooling(["lenet_n40k"], ((0, 8),), "lenet/pooling/control-n40k", "control of the ablation: LeNet with "
             "pooling and 40,000 training samples", "pooling_control_lenet_n40k.npz"),
    _pooling(["lenet_n40k", "n40k"], ((16, 16),), "lenet/pooling/control-n40k-16-16", "control of the "
             "ablation on the direction (16, 16): 40,000 samples with and without pooling",
             "pooling_control_n40k_16_16.npz"),
    # ---- CIFAR-10 (Chapter 3)
    _poison("lenet", "lenet/nads/cifar-basis", PROFILE_NAMES, key="lenet/cifar/poison", chapters=(3,),
            bundled="cifar_poison_lenet_default.npz", label="NAD poisoning on CIFAR-10"),
    _flip("lenet", "lenet/nads/cifar-basis", {p: _cifar_sizes(p) for p in PROFILE_NAMES}, key="lenet/cifar/flip",
          chapters=(3,), bundled="cifar_flip_lenet_default.npz"),
    _flip("lenet", "lenet/nads/cifar-basis", {"default": _cifar_sizes("default", epochs=40)},
          key="lenet/cifar/flip-40ep", what="the flip of lenet/cifar/flip trained for 40 epochs", chapters=(3,),
          bundled="cifar_flip_lenet_default_40ep.npz"),
    _flip("lenet", "lenet/nads/cifar-basis", {"default": dict(n_train=5_000, n_test=2_000, epochs=60)},
          key="lenet/cifar/flip-5k", what="the flip on 5,000 CIFAR-10 images for 60 epochs", chapters=(3,),
          bundled="cifar_flip_lenet_5k_60ep.npz", label="flip, fixed epochs"),
    _flip("lenet", "lenet/nads/cifar-basis", {"default": dict(n_train=1_000, n_test=2_000, epochs=50,
                                                              until_train_acc=0.99, max_epochs=400)},
          key="lenet/cifar/flip-fit", what="the flip on 1,000 CIFAR-10 images, each version trained until it "
          "fits its training set (train acc. 0.99)", chapters=(3,), bundled="cifar_flip_lenet_1k_fit.npz",
          label="flip, equal training accuracy"),
    _flip("resnet18", "resnet18/nads/secant", {"paper": _cifar_sizes("paper")}, key="resnet18/cifar/flip",
          chapters=(3,), label="NAD flip on CIFAR-10"),
    _poison("resnet18", "resnet18/nads/secant", ("paper",), key="resnet18/cifar/poison"),
    *(e for a in ("vgg11", "densenet121") for e in (
        _poison(a, f"{a}/nads/secant", ("paper",), key=f"{a}/cifar/poison"),
        _flip(a, f"{a}/nads/secant", {"paper": _cifar_sizes("paper")}, key=f"{a}/cifar/flip"))),
    # ---- non-linearity signatures (Chapter 4)
    Entry("cnns/signatures", "non-linearity signatures (affinity score per activation layer) of random networks "
          "of the four CNNs and their pooling-free twins on CIFAR-10 test images", kind="signatures",
          step="signatures", archs=("lenet", "vgg11", "resnet18", "densenet121"), chapters=(4, _CARD),
          bundled="signatures_default.npz", label="non-linearity signature (and its pooling-free twin)",
          priority=70, make={
              # smoke: the networks of the chapter's live fallback, one each, just more images than the widest
              # layer (512 channels)
              "smoke": Make("signatures", dict(archs=["lenet", "lenet_nopool", "vgg11", "resnet18"], n_samples=544,
                                               init_seeds=[0], synthetic=True)),
              **{p: Make("signatures", dict(archs=["lenet", "lenet_nopool", "vgg11", "vgg11_nopool", "resnet18",
                                                   "resnet18_nopool", "densenet121", "densenet121_nopool"],
                                            n_samples=get_profile(p).signature.artifact_n_samples))
                 for p in ("default", "paper")}}),
    # ---- neural collapse (Chapter 5, paper profile)
    Entry("resnet18/collapse", "neural collapse (NC1-NC4 per epoch) of ResNet-18 trained on all of CIFAR-10 far "
          "past zero training error", kind="collapse", step="collapse", archs=("resnet18",), chapters=(5,),
          label="NC1-NC4 on CIFAR-10", priority=80, make={"paper": Make("collapse", dict(
              arch="resnet18", n_train=50_000, n_test=10_000, **{
                  k: getattr(get_profile("paper").collapse, k)
                  for k in ("epochs", "lr", "momentum", "weight_decay", "batch_size")}))}),
    # ---- the D(v) recipe against the published curves (Chapter 2): needs the authors' full NAD file
    Entry("lenet/recipe-sweep", "LeNet on the authors' NADs and on Fourier directions under variants of the D(v) "
          "recipe, beside the published accuracies", kind="artifact", step="recipe-sweep", archs=("lenet",),
          chapters=(2,), bundled="recipe_sweep_lenet.npz", priority=90,
          command="python -m nadlib recipe-sweep --nads <the authors' LeNet_NADs.npy> --indices 0,100,400 "
                  "--freqs '2,0;12,0' --workers 2 --out <folder>/lenet__recipe-sweep__default.npz"),
    # ---- the authors' released code as an oracle (Chapters 1 and 2): needs a checkout of their repository
    Entry("lenet/authors-oracle", "LeNet on D(v) trained by the authors' released code and by nadlib on the same "
          "directions and seeds, beside the published accuracies; their secant NADs against ours",
          kind="artifact", step="authors-oracle", archs=("lenet",), chapters=(1, 2),
          bundled="authors_oracle_lenet.npz", priority=95,
          command="python benchmarks/authors_oracle.py --authors-code <a checkout of LTS4/neural-anisotropy-"
                  "directions> --seeds 0 --out <folder>/lenet__authors-oracle__default.npz"),
)

#: key -> entry, in the order of :data:`ENTRIES`.
CATALOGUE: dict[str, Entry] = {e.key: e for e in ENTRIES}


def registered_entries(arch: str) -> tuple[Entry, ...]:
    """The paper's experiments for a network of the registry that the table above does not list (a network
    added with :func:`nadlib.register_architecture` and ``in_paper=True``): its secant NADs and its accuracy
    against its own NAD index (Chapter 2), its Fourier map (Chapter 1), and CIFAR-10 poisoned on its NADs
    (Chapter 3), each at the paper's sizes (a GPU run of ``python -m nadlib paper``)."""
    nads_key = f"{arch}/nads/secant"
    return (
        _nads(arch, "secant", {"paper": _GPU_NADS}, key=nads_key, chapters=(2,), label="secant NADs", priority=11),
        _trainability(arch, nads_key, {"paper": _paper_trainability("paper")}, key=f"{arch}/trainability/secant",
                      what=f"test accuracy of {arch} trained on D(u_i) of its own secant NADs u_i", chapters=(2,),
                      label="accuracy vs NAD index"),
        _grid(arch, None, None, {"stride": 2}, key=f"{arch}/grid", chapters=(1,), label="Fourier accuracy map"),
        _poison(arch, nads_key, ("paper",), key=f"{arch}/cifar/poison", chapters=(3,),
                label="NAD poisoning on CIFAR-10"),
    )


def all_entries() -> tuple[Entry, ...]:
    """:data:`ENTRIES` and, for every network of the registry that they do not cover, its
    :func:`registered_entries`, read when called (so a newly registered network is planned and covered)."""
    covered = {a for e in ENTRIES for a in e.archs}
    extra = tuple(e for a in paper_networks() if a.name not in covered for e in registered_entries(a.name))
    return ENTRIES + extra


def entry(key: str) -> Entry:
    """The entry of ``key``; a ``KeyError`` naming the closest keys when there is none."""
    table = {e.key: e for e in all_entries()}
    try:
        return table[key]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(key), list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no catalogue entry {key!r}{hint} (nadlib.catalogue.CATALOGUE lists them)") from None


def entries(chapter: int | None = None, arch: str | None = None) -> list[Entry]:
    """The entries a chapter shows and/or that are about a network, in catalogue order."""
    return [e for e in all_entries()
            if (chapter is None or chapter in e.chapters) and (arch is None or arch in e.archs)]


def select(only, profile: str) -> list[Entry]:
    """The entries ``only`` selects among those ``profile`` can make, in priority order.

    ``only`` is None (all), or a comma-separated string / list of keys, glob patterns of keys (``"lenet/*"``,
    ``"*/grid"``) and step names (``nads``, ``trainability``, ``grid``, ``pooling``, ``poison``, ``flip``,
    ``signatures``, ``collapse``).

    Raises:
        ValueError: an item that matches no entry this profile can make.
    """
    makeable = sorted((e for e in all_entries() if profile in e.make), key=lambda e: e.priority)
    if only is None:
        return makeable
    items = [t.strip() for t in (only.split(",") if isinstance(only, str) else map(str, only)) if t.strip()]
    steps = {e.step for e in all_entries()}
    chosen, bad = set(), []
    for item in items:
        hits = {e.key for e in makeable if e.step == item or fnmatch.fnmatchcase(e.key, item)}
        if not hits:
            bad.append(item)
        chosen |= hits
    if not items or bad:
        known = sorted(steps & {e.step for e in makeable})
        raise ValueError(f"--only takes comma-separated catalogue keys, patterns like 'lenet/*' or steps "
                         f"({', '.join(known)}) that the {profile} profile can make; nothing matches "
                         f"{', '.join(map(repr, bad)) or repr(only)}")
    return [e for e in makeable if e.key in chosen]


def make_command(key: str) -> str | None:
    """The command that makes ``key`` (the smallest profile that is not ``smoke``), or how the bundled file
    was made when no profile can; None when neither is known."""
    e = entry(key)
    for p in ("default", "paper", "smoke"):
        if p in e.make:
            return f"python -m nadlib paper --only {key} --profile {p}"
    return e.command


# --------------------------------------------------------------------------------------------------
# costs

#: Paper recipe sizes the per-unit costs refer to: D(v) samples x epochs, CIFAR-10 images x epochs.
_DV_WORK, _CIFAR_WORK = 10_000 * 20, 50_000 * 30

#: Seconds per unit at the paper's sizes: (kind, arch, device type) -> (seconds, source).  Kinds: ``nads``
#: (one network, secant over 1,024 pixels), ``direction`` (one training on D(v), 10,000 samples, 20 epochs;
#: used by trainability, grid and the pooling ablation), ``cifar`` (one CIFAR-10 training, 50,000 images, 30
#: epochs), ``signature`` (one random network's signature on 1,000 images).
COSTS: dict[tuple[str, str, str], tuple[float, str]] = {
    # CPU: this project's 2-core CPU, one torch thread (benchmarks/bench_paper_costs.py, whose run on a machine
    # shared by four jobs gave LeNet 13.7 networks/s, VGG-11 14.7 s, ResNet-18 44.8 s and DenseNet-121 191 s
    # per network, LeNet 155 s per direction: the idle-machine numbers are kept where known)
    ("nads", "logreg", "cpu"): (1 / 200, "estimate"),
    ("nads", "lenet", "cpu"): (1 / 50, "measured"),
    ("nads", "vgg11", "cpu"): (15.0, "measured"),
    ("nads", "resnet18", "cpu"): (30.0, "measured"),
    ("nads", "densenet121", "cpu"): (190.0, "measured"),
    ("direction", "logreg", "cpu"): (4.0, "estimate"),
    ("direction", "lenet", "cpu"): (40.0, "measured"),
    ("direction", "lenet_nopool", "cpu"): (120.0, "estimate"),
    ("direction", "vgg11", "cpu"): (35 * 60.0, "estimate"),
    ("direction", "vgg11_nopool", "cpu"): (3 * 3600.0, "estimate"),
    ("direction", "resnet18", "cpu"): (70 * 60.0, "measured"),
    ("direction", "resnet18_nopool", "cpu"): (4 * 3600.0, "estimate"),
    ("direction", "densenet121", "cpu"): (2.5 * 3600.0, "estimate"),
    ("direction", "densenet121_nopool", "cpu"): (8 * 3600.0, "estimate"),
    # signatures: results/signatures_default.npz (1,152 images, one thread) per network, scaled to 1,000 images
    ("signature", "lenet", "cpu"): (1.1, "measured"),
    ("signature", "lenet_nopool", "cpu"): (0.5, "measured"),
    ("signature", "vgg11", "cpu"): (5.5, "measured"),
    ("signature", "vgg11_nopool", "cpu"): (330.0, "measured"),
    ("signature", "resnet18", "cpu"): (30.0, "measured"),
    ("signature", "resnet18_nopool", "cpu"): (600.0, "measured"),
    ("signature", "densenet121", "cpu"): (180.0, "measured"),
    ("signature", "densenet121_nopool", "cpu"): (1290.0, "measured"),
    # CUDA: measured on one NVIDIA H200 where marked (scripts/gpu_deep_nads.py, batched secant, float32;
    # results/*_gpu.npz: 568 VGG-11 networks in 63 s, 256 ResNet-18 in 64 s, 36 DenseNet-121 in 64 s, and
    # ResNet-18 on D(v) at 14-16 s per direction, one at a time); the rest are estimates
    ("nads", "logreg", "cuda"): (0.0001, "estimate"),
    ("nads", "lenet", "cuda"): (0.0005, "estimate"),
    ("nads", "vgg11", "cuda"): (1 / 9.1, "measured (H200)"),
    ("nads", "resnet18", "cuda"): (1 / 4.0, "measured (H200)"),  # target was 10,000 networks in <= 60 s
    ("nads", "densenet121", "cuda"): (1 / 0.56, "measured (H200)"),
    ("direction", "logreg", "cuda"): (0.2, "estimate"),
    ("direction", "lenet", "cuda"): (0.5, "estimate"),
    ("direction", "lenet_nopool", "cuda"): (1.0, "estimate"),
    ("direction", "vgg11", "cuda"): (2.0, "estimate"),
    ("direction", "vgg11_nopool", "cuda"): (5.0, "estimate"),
    ("direction", "resnet18", "cuda"): (15.0, "measured (H200)"),  # target was <= 3 s per direction
    ("direction", "resnet18_nopool", "cuda"): (50.0, "estimate"),  # ~3.4x ResNet-18, as on the CPU
    ("direction", "densenet121", "cuda"): (10.0, "estimate"),
    ("direction", "densenet121_nopool", "cuda"): (30.0, "estimate"),
    # one CIFAR-10 training (50,000 images, 30 epochs) is not batched over runs like D(v) directions are
    ("cifar", "lenet", "cuda"): (60.0, "estimate"),
    ("cifar", "vgg11", "cuda"): (180.0, "estimate"),
    ("cifar", "resnet18", "cuda"): (300.0, "estimate"),
    ("cifar", "densenet121", "cuda"): (900.0, "estimate"),
}

#: The secant costs of COSTS divided by this give the gradient estimator's (benchmarks: 50-250x faster).
_GRADIENT_SPEEDUP = 50.0
#: A signature on a GPU: the CPU cost divided by this (an estimate).
_SIGNATURE_GPU_SPEEDUP = 20.0
#: The network whose costs stand in for a registered network without costs of its own.
_UNMEASURED = "resnet18"


def unit_cost(kind: str, arch: str, device_type: str) -> tuple[float, str]:
    """Seconds per unit at the paper's sizes and where the number comes from.  A CIFAR-10 training without
    an entry of its own is derived from the D(v) cost of the same architecture (per image and epoch), a
    signature on CUDA from its CPU cost."""
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"device_type must be one of {', '.join(DEVICE_TYPES)}, got {device_type!r}")
    if arch not in {a for _, a, _ in COSTS}:  # a registered network that nobody has timed yet
        sec, src = unit_cost(kind, _UNMEASURED, device_type)
        return sec, f"guess: no cost measured for {arch}, {_UNMEASURED}'s ({src})"
    if kind == "cifar" and (kind, arch, device_type) not in COSTS:
        sec, src = COSTS[("direction", arch, device_type)]
        return sec * _CIFAR_WORK / _DV_WORK, f"derived ({src} D(v) cost)"
    if kind == "signature" and device_type == "cuda":
        sec, src = COSTS[("signature", arch, "cpu")]
        return sec / _SIGNATURE_GPU_SPEEDUP, f"derived ({src} CPU cost)"
    return COSTS[(kind, arch, device_type)]


def _pooling_runs(kwargs) -> tuple[int, float]:
    """Number of trainings of a pooling ablation and their work relative to one paper-recipe direction."""
    names = kwargs["settings"]
    n_settings = 11 if names is None else len(names)
    n40k = 1 if names is None else sum("n40k" in n for n in names)
    scale = kwargs["scale"]
    work = sum(max(256, round(n * scale)) * max(1, round(20 * scale))
               for n in [40_000] * n40k + [10_000] * (n_settings - n40k))
    return n_settings * len(kwargs["freqs"]), work / (n_settings * _DV_WORK)


def entry_units(e: Entry, profile: str) -> tuple[int, str]:
    """How many units of work ``e`` is in ``profile`` and what one unit is (network, direction, run)."""
    m = e.make[profile]
    k = m.kwargs
    if m.producer == "nads":
        return k["n_networks"], "network"
    if m.producer == "grid":
        if "freqs" in k:
            return len(k["freqs"]), "direction"
        return len(list(fourier_grid(32, k.get("stride", 1), band=k.get("band")))), "direction"
    if m.producer == "trainability":
        return len(k["indices"]), "direction"
    if m.producer == "pooling":
        return _pooling_runs(k)[0], "run"
    if m.producer == "poison":
        return 1 + len(k["indices"]), "run"
    if m.producer == "flip":
        return 2, "run"
    if m.producer == "signatures":
        return sum(len(k.get("init_seeds") or range(_signature_seeds(a, profile))) for a in k["archs"]), "network"
    return 1, "run"  # collapse


def _signature_seeds(arch: str, profile: str) -> int:
    cfg = get_profile(profile).signature
    return cfg.artifact_seeds_nopool_deep if arch in _NOPOOL else cfg.artifact_seeds


def entry_cost(e: Entry, profile: str, device_type: str, done_units: int = 0) -> tuple[float, str]:
    """Estimated seconds to finish ``e`` in ``profile`` on ``device_type`` with ``done_units`` done, and the
    source of the per-unit cost (``measured``, ``estimate``, ``derived ...``)."""
    m = e.make[profile]
    k = m.kwargs
    units, _ = entry_units(e, profile)
    left = max(units - done_units, 0)
    if m.producer == "nads":
        sec, src = unit_cost("nads", k["arch"], device_type)
        if k["method"] == "gradient":
            sec, src = sec / _GRADIENT_SPEEDUP, f"derived ({src} secant cost)"
        return sec * left, src
    if m.producer in ("grid", "trainability"):
        sec, src = unit_cost("direction", k["arch"], device_type)
        return sec * k["n_train"] * k["epochs"] / _DV_WORK * left, src
    if m.producer == "pooling":
        sec, src = unit_cost("direction", "lenet_nopool", device_type)
        return sec * _pooling_runs(k)[1] * left, src
    if m.producer == "signatures":
        archs = k["archs"]
        per = {a: unit_cost("signature", a, device_type) for a in archs}
        seeds = {a: len(k.get("init_seeds") or range(_signature_seeds(a, profile))) for a in archs}
        total = sum(per[a][0] * seeds[a] for a in archs) * k["n_samples"] / 1000
        return total * left / max(units, 1), per[archs[0]][1]
    # poison, flip, collapse: CIFAR-10 trainings
    sec, src = unit_cost("cifar", k["arch"], device_type)
    epochs = k["epochs"] * (2 if k.get("until_train_acc") else 1)  # a run to a training accuracy: one doubling
    return sec * k["n_train"] * epochs / _CIFAR_WORK * left, src
