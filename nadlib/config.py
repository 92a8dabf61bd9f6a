"""Run profiles and device selection: the one place where experiment sizes are decided.

A *profile* fixes the sizes of every experiment in the book, so that the same chapter runs

* ``smoke``   -- in well under a minute per chapter on a CPU (used by the tests),
* ``default`` -- in a few minutes per chapter on a 2-core laptop CPU (what ``make book`` uses),
* ``paper``   -- at the sizes of the paper (10,000 samples, 20 epochs, full grids), meant for a GPU.

The profile is chosen with the environment variable ``NADLIB_PROFILE`` (default: ``default``) or
explicitly with :func:`get_profile`.  Chapters read ``nadlib.get_profile()`` and never hard-code sizes.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from . import _checks
from ._version import __version__

PROFILE_ENV = "NADLIB_PROFILE"
PROFILE_NAMES = ("smoke", "default", "paper")

#: The CIFAR-10 class names, in the order of the labels 0..9.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class Recipe:
    """The paper's D(v) recipe, written once: every default of the library's training on D(v) reads it.

    Ortiz-Jimenez et al. (NeurIPS 2020) and their released code (``directional_bias.py``, ``utils.train``):
    """

    n_train: int = 10_000        # training samples of D(v): what a linear classifier needs in d = 1024
    n_test: int = 10_000         # test samples: binomial standard error 0.005 at chance
    epochs: int = 20             # SGD epochs of the authors' training loop
    batch_size: int = 128        # their DataLoader's batch size
    lr: float = 0.5              # their max_lr, decayed linearly to 0 over the run
    clip: float | None = 0.5     # their clip_grad_norm_ before every step
    momentum: float = 0.0        # plain SGD
    weight_decay: float = 0.0    # no weight decay
    sigma: float = 3.0           # noise std orthogonal to v (their sigma)
    epsilon: float = 1.0         # margin: the class means sit at +-epsilon/2 along v

    def __post_init__(self):
        _checks.positive_int(self.n_train, "n_train")
        _checks.positive_int(self.n_test, "n_test")
        _checks.positive_int(self.epochs, "epochs", maximum=100_000)
        _checks.positive_int(self.batch_size, "batch_size")
        _checks.positive_float(self.lr, "lr", maximum=1e3)
        if self.clip is not None:
            _checks.positive_float(self.clip, "clip")
        if not 0 <= _checks.real(self.momentum, "momentum") < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if _checks.real(self.weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _checks.positive_float(self.sigma, "sigma")
        _checks.positive_float(self.epsilon, "epsilon")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed: ``PAPER_RECIPE.replace(epochs=5)``."""
        return replace(self, **changes)

    def training(self) -> dict:
        """The keyword arguments of :func:`nadlib.train` (``lr``, ``clip``, ``batch_size``, ...)."""
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, clip=self.clip,
                    momentum=self.momentum, weight_decay=self.weight_decay)


#: The recipe of the paper (see :class:`Recipe`).
PAPER_RECIPE = Recipe()


@dataclass(frozen=True)
class SeparabilityConfig:
    """Sizes of the linearly separable experiments (Chapter 1)."""

    n_train: int
    n_test: int
    epochs: int
    grid_stride: int  # train on every `grid_stride`-th Fourier frequency along each axis
    batch_size: int = PAPER_RECIPE.batch_size
    lr: float = PAPER_RECIPE.lr
    clip: float = PAPER_RECIPE.clip
    sigma: float = PAPER_RECIPE.sigma
    epsilon: float = PAPER_RECIPE.epsilon
    # Live runs of Chapter 1 (the full maps come from `results/`, written by `python -m nadlib grid`):
    live_stride: int = 8  # LogReg is trained live on fourier_grid(32, live_stride) (one per mirror pair)
    # Live runs within the profile's budgets "ch1.lenet" / "ch1.nopool": the first two LeNet directions (an
    # easy and a hard one) and the first pooling-free one always run, the others while time is left.
    lenet_freqs: tuple[tuple[int, int], ...] = ((1, 0), (16, 15))  # LeNet, live
    nopool_freqs: tuple[tuple[int, int], ...] = ((16, 15),)  # LeNet without pooling, live
    resnet_live_stride: int = 0  # >0: ResNet-18 trained live on this grid (paper profile, for a GPU)
    widget_stride: int = 4  # step of the clickable Fourier grid of the Chapter 1 widget

    def recipe(self) -> Recipe:
        """The D(v) recipe of this profile (:class:`Recipe`: its sizes, the paper's training otherwise)."""
        return Recipe(n_train=self.n_train, n_test=self.n_test, epochs=self.epochs, batch_size=self.batch_size,
                      lr=self.lr, clip=self.clip, sigma=self.sigma, epsilon=self.epsilon)


@dataclass(frozen=True)
class NADConfig:
    """Sizes of the NAD experiments (Chapter 2)."""

    n_networks: int  # networks for a live LeNet / LogReg estimate
    trainability_indices: tuple[int, ...]  # NAD indices i used for training on D(u_i)
    n_networks_large: int = 8  # networks for a live gradient estimate of ResNet-18 / VGG-11 / DenseNet-121
    n_train: int = 2_000  # samples of D(u_i) for the trainability experiment
    n_test: int = 2_000
    epochs: int = 5


@dataclass(frozen=True)
class CIFARConfig:
    """Sizes of the CIFAR-10 experiments (Chapter 3)."""

    n_train: int  # training images used (a class-balanced subset when smaller than 50,000)
    n_test: int
    epochs: int
    poison_indices: tuple[int, ...]
    batch_size: int = 128
    epsilon: float = 1.0  # carrier size of the NAD poisoning (pixel units, images in [0, 1])


@dataclass(frozen=True)
class CollapseConfig:
    """Sizes of the neural-collapse experiments (Chapter 5).

    The main run trains ``arch`` on a class-balanced CIFAR-10 subset (synthetic stand-in images when
    CIFAR-10 is not available) far past zero training error; the NAD-link runs train ``nad_arch`` on
    D(v) for each Fourier frequency of ``nad_freqs`` (an easy and a hard one for LeNet) with few samples,
    so that both reach zero training error.  Recipe: SGD with momentum, linear learning-rate decay to 0,
    weight decay (see :func:`nadlib.run_collapse`).
    """

    arch: str = "lenet"
    n_train: int = 1_000  # CIFAR-10 training images (class-balanced subset)
    n_test: int = 1_000
    epochs: int = 60
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    nad_arch: str = "lenet"
    nad_freqs: tuple[tuple[int, int], ...] = ((1, 0), (16, 15))  # easy, hard (Chapter 1)
    nad_n_train: int = 500  # samples of D(v): few, so that even a hard direction is memorised
    nad_n_test: int = 1_000
    nad_epochs: int = 40
    nad_sigma: float = 3.0
    # margin of D(v): larger than the paper's 1 so that LeNet *generalises* on the easy direction from
    # a few hundred samples (with epsilon = 1 it needs ~10,000, too many to memorise on a CPU)
    nad_epsilon: float = 6.0
    widget_n_train: int = 500  # sizes of the widget's live runs
    widget_epochs: int = 20


@dataclass(frozen=True)
class SignatureConfig:
    """Sizes of the non-linearity signature experiments (Chapter 4)."""

    n_samples: int  # CIFAR-10 test images per live signature (LeNet, LeNet without pooling)
    n_seeds: int  # random initialisations per architecture in the live comparisons
    n_train: int  # CIFAR-10 training images for the short LeNet training (before vs after)
    epochs: int
    # run_signatures (all 8 architectures, results/signatures_<profile>.npz): more samples than the
    # widest activation (DenseNet-121: 1,024 channels); seeds of the cheap and of the costly networks
    artifact_n_samples: int = 1152
    artifact_seeds: int = 3
    artifact_seeds_nopool_deep: int = 1  # VGG-11/ResNet-18/DenseNet-121 without pooling: ~0.2-0.5 s/image on a CPU core
    widget_n: int = 2000  # 1-D samples behind the widget (answers in milliseconds)


#: Wall-clock budgets, in seconds, of the chapters' live cells on a CPU (``nadlib.within_budget``): a live cell
#: runs its essential units whatever the time, then more units only while they fit in its budget.  Chosen so
#: that the ``default`` profile shows every planned unit on an idle 2-core CPU and the essential ones, within
#: about twice the idle time, on a busy one.
DEFAULT_BUDGETS = {
    "ch1.lenet": 90.0,      # LeNet on cfg.lenet_freqs (~21 s a direction idle)
    "ch1.nopool": 150.0,    # LeNet without pooling on cfg.nopool_freqs (~66 s a direction idle)
    "ch2.large": 45.0,      # small gradient NAD estimates of the three deep CNNs (~4 s each idle)
    "ch2.trainability": 60.0,  # LeNet on D(u_i), secant and gradient NADs (~21 s idle)
}


@dataclass(frozen=True)
class Profile:
    """All experiment sizes of one run profile; see the module docstring.

    ``budgets`` maps the name of a chapter's live cell (``"ch1.lenet"``) to its wall-clock budget in seconds;
    read it with :meth:`budget`.
    """

    name: str
    separability: SeparabilityConfig
    nads: NADConfig
    cifar: CIFARConfig
    signature: SignatureConfig = SignatureConfig(n_samples=512, n_seeds=3, n_train=5_000, epochs=2)
    extra: dict = field(default_factory=dict)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    budgets: dict = field(default_factory=lambda: dict(DEFAULT_BUDGETS))

    def budget(self, name: str) -> float:
        """The wall-clock budget in seconds of the live cell ``name`` (``"ch1.lenet"``, ...).

        Raises:
            KeyError: an unknown name (the message lists the known ones).
        """
        try:
            return float(self.budgets[name])
        except KeyError:
            raise KeyError(f"no budget named {name!r} in the {self.name} profile; known: "
                           f"{', '.join(sorted(self.budgets))}") from None

    def with_overrides(self, **sections) -> "Profile":
        """A copy with some sections replaced, e.g. ``p.with_overrides(separability=...)``."""
        return replace(self, **sections)


_PROFILES = {
    "smoke": Profile(
        name="smoke",
        # 10,000 samples even here: with fewer, LogReg overfits D(v) in d=1024 (5 epochs: ~99% test)
        separability=SeparabilityConfig(n_train=10_000, n_test=1_000, epochs=5, grid_stride=8,
                                        lenet_freqs=((1, 0), (16, 15)), nopool_freqs=((16, 15),)),
        nads=NADConfig(n_networks=64, trainability_indices=(0, 1000), n_networks_large=4,
                       n_train=512, n_test=256, epochs=1),
        cifar=CIFARConfig(n_train=500, n_test=200, epochs=2, poison_indices=(0, 1000)),
        collapse=CollapseConfig(n_train=200, n_test=200, epochs=40, batch_size=32, nad_n_train=200,
                                nad_n_test=200, nad_epochs=40, widget_n_train=100, widget_epochs=3),
        signature=SignatureConfig(n_samples=256, n_seeds=2, n_train=500, epochs=1, artifact_n_samples=1088,
                                  artifact_seeds=1, widget_n=1000),
    ),
    "default": Profile(
        name="default",
        # D(v) in d=1024 needs ~10,000 samples for LogReg to generalise (2,000: test 55%), so the
        # live runs keep the paper's training size and recipe and only use fewer directions.
        separability=SeparabilityConfig(n_train=10_000, n_test=2_000, epochs=20, grid_stride=4,
                                        lenet_freqs=((1, 0), (16, 15), (5, 3), (12, 20)),
                                        nopool_freqs=((16, 15), (12, 20))),
        # LeNet needs ~10,000 samples of D(u_i) to learn even the first NADs (2,000: chance level)
        nads=NADConfig(n_networks=256, trainability_indices=(0, 20, 1000), n_networks_large=8,
                       n_train=10_000, n_test=1_000, epochs=3),
        cifar=CIFARConfig(n_train=20_000, n_test=5_000, epochs=10,
                          poison_indices=(0, 10, 50, 100, 300, 600, 1000)),
        # LeNet on 50 images per class reaches zero training error after ~40 of 80 epochs; on D(v) of the hard
        # direction it memorises 200 samples in 40 epochs (500 samples: 0.83 training accuracy after 40)
        collapse=CollapseConfig(n_train=500, n_test=1_000, epochs=80, batch_size=32, nad_n_train=200),
        signature=SignatureConfig(n_samples=1024, n_seeds=5, n_train=10_000, epochs=3),
    ),
    "paper": Profile(
        name="paper",
        separability=SeparabilityConfig(n_train=10_000, n_test=10_000, epochs=20, grid_stride=1,
                                        live_stride=4,
                                        lenet_freqs=((1, 0), (16, 15), (0, 1), (5, 3), (12, 20), (8, 8)),
                                        nopool_freqs=((16, 15), (5, 3), (12, 20), (8, 8)),
                                        resnet_live_stride=8),
        nads=NADConfig(
            n_networks=10_000,
            trainability_indices=(0, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1023),
            n_networks_large=1_000, n_train=10_000, n_test=10_000, epochs=20,
        ),
        cifar=CIFARConfig(
            n_train=50_000, n_test=10_000, epochs=30, poison_indices=(0, 10, 50, 100, 300, 600, 1000)
        ),
        # ResNet-18 on all of CIFAR-10 (Papyan et al. train 350 epochs; a GPU is needed); the NAD link
        # keeps LeNet (the network of Chapter 1) with the paper's noise and a margin of 3
        collapse=CollapseConfig(arch="resnet18", n_train=50_000, n_test=10_000, epochs=200, lr=0.05,
                                batch_size=128, nad_n_train=1_000, nad_n_test=10_000, nad_epochs=60,
                                nad_epsilon=3.0, widget_n_train=1_000, widget_epochs=30),
        signature=SignatureConfig(n_samples=2048, n_seeds=10, n_train=50_000, epochs=10,
                                  artifact_n_samples=2048, artifact_seeds=5, artifact_seeds_nopool_deep=3),
        # sized for a GPU: 5 minutes per live cell, half the book's 10-minute cell timeout (_config.yml)
        budgets={name: 300.0 for name in DEFAULT_BUDGETS},
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the run profile ``name``, or the one named by ``$NADLIB_PROFILE`` (default ``"default"``).

    Raises:
        ValueError: if the name is not one of ``smoke``, ``default``, ``paper``.
    """
    if name is None:
        name = os.environ.get(PROFILE_ENV, "default").strip() or "default"
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
                         f"(set ${PROFILE_ENV} or pass the name)")
    return _PROFILES[name]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Resolve a device: CUDA when available and nothing was asked, else CPU.

    A device that was asked for explicitly is never silently replaced: requesting CUDA on a machine
    without it raises ``RuntimeError``.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"invalid device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was requested but CUDA is not available on this "
                           "machine; pass device='cpu' or leave device=None to pick automatically")
    return device


@contextmanager
def one_torch_thread(active: bool = True):
    """torch's intra-op thread count at 1 while inside (restored after); a no-op when ``active`` is False."""
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def describe_environment(profile: Profile | None = None, device: str | torch.device | None = None) -> str:
    """One line for the first cell of each chapter: library version, profile and device."""
    profile = profile or get_profile()
    dev = get_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return f"nadlib {__version__} | profile: {profile.name} | device: {dev} ({name}) | torch {torch.__version__}"
