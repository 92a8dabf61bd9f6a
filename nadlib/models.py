"""The architectures of the paper, CIFAR-style for 32x32 inputs, with PyTorch's default initialisation.

NAD statistics depend on the initialisation, so no model here re-initialises its layers: every
``nn.Conv2d``/``nn.Linear`` keeps PyTorch's default (Kaiming-uniform with ``a=sqrt(5)``) and every
``nn.BatchNorm2d`` starts at weight 1, bias 0.

Each CNN has a *pooling-free* variant (``<name>_nopool``): every down-sampling step (max/average
pooling, and for ResNet the stride-2 convolutions and shortcut projections) is removed, and the final
linear layer grows to take the full-resolution feature map, as in the pooling experiment of the paper.

Use :func:`get_model` with a name from :data:`ARCHITECTURES`.  :data:`REGISTRY` holds each network with the
metadata the book uses (display name, family, pooling-free twin, colour, key of the authors' data); a new
network is one :func:`register_architecture` call.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ._checks import positive_int, seed as _check_seed

INPUT_SIZE = 32


class LogReg(nn.Module):
    """Logistic regression: one linear layer on the flattened image (an isotropic model)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, size: int = INPUT_SIZE):
        super().__init__()
        self.linear = nn.Linear(in_channels * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class LeNet(nn.Module):
    """LeNet-5 for 32x32 inputs: two 5x5 conv + ReLU (+ 2x2 max-pool) stages and three linear layers."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, pool: bool = True):
        super().__init__()
        pool_layer = (lambda: nn.MaxPool2d(2)) if pool else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), pool_layer(),
            nn.Conv2d(6, 16, 5), nn.ReLU(), pool_layer(),
        )
        side = 5 if pool else 24
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 with batch normalisation, CIFAR-style (3x3 convolutions, one linear classifier)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, pool: bool = True, cfg=_VGG11):
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, INPUT_SIZE
        for item in cfg:
            if item == "M":
                if pool:
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
                continue
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN layers with an identity or 1x1 projection shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR-style: 3x3 stem without max-pool, four stages, global 4x4 average pool."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, pool: bool = True):
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stride = stride if pool else 1
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        side = 1 if pool else INPUT_SIZE
        self.linear = nn.Linear(512 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.pool:
            out = nn.functional.avg_pool2d(out, 4)
        return self.linear(out.flatten(1))


class _DenseLayer(nn.Module):
    def __init__(self, in_planes: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class _Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, pool: bool):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(torch.relu(self.bn(x))))


class DenseNet121(nn.Module):
    """DenseNet-121 (growth 32, blocks 6-12-24-16, compression 0.5), CIFAR-style 3x3 stem."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, pool: bool = True,
                 blocks=(6, 12, 24, 16), growth: int = 32):
        super().__init__()
        self.pool = pool
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, n_layers in enumerate(blocks):
            layers = []
            for _ in range(n_layers):
                layers.append(_DenseLayer(planes, growth))
                planes += growth
            stages.append(nn.Sequential(*layers))
            if i < len(blocks) - 1:
                stages.append(_Transition(planes, planes // 2, pool))
                planes //= 2
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(planes)
        side = 1 if pool else INPUT_SIZE
        self.linear = nn.Linear(planes * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.features(self.conv1(x))))
        if self.pool:
            out = nn.functional.avg_pool2d(out, 4)
        return self.linear(out.flatten(1))


@dataclass(frozen=True)
class Architecture:
    """One network the book knows: how to build it, and how chapters, figures, coverage tables and the paper
    run name, colour and compare it.  Add a network with :func:`register_architecture`; everything that
    loops over networks reads :data:`REGISTRY`.

    Fields:
        name: the registry key (``"vgg11"``), lower case.
        display_name: its name in figures and tables (``"VGG-11"``).
        build: ``build(in_channels, num_classes)`` returns a freshly initialised network for 32x32 inputs.
        family: the pooled network a pooling-free twin belongs to (a pooled network's own name).
        in_paper: one of the paper's five networks (the rows of every chapter's coverage table).
        nopool: the name of its pooling-free twin, if it has one.
        colour: its colour in figures (a twin is drawn in its family's colour, dashed).
        published_key: the key of the authors' published data (``acc_<key>`` columns of their Fourier maps
            and NAD curves, ``<name>_nads`` of their NADs), None when they published nothing for it.
    """

    name: str
    display_name: str
    build: Callable[..., nn.Module]
    family: str = ""
    in_paper: bool = False
    nopool: str | None = None
    colour: str | None = None
    published_key: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.lower() \
                or not self.name.replace("_", "").isalnum():
            raise ValueError(f"an architecture name is a lower-case identifier, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"build must be callable as build(in_channels, num_classes), got {self.build!r}")
        if not self.family:
            object.__setattr__(self, "family", self.name)

    @property
    def is_twin(self) -> bool:
        """A pooling-free twin of another network."""
        return self.family != self.name


#: Every network the book knows, by name, in the order chapters show them (the paper's five first).
REGISTRY: dict[str, Architecture] = {}


def register_architecture(arch: Architecture, *, replace: bool = False) -> Architecture:
    """Add ``arch`` to :data:`REGISTRY` (``replace=True`` to redefine a name); return it.

    Raises:
        ValueError: the name is taken (and ``replace`` is false), or its twin/family is unknown.
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"register an Architecture, got {type(arch).__name__}")
    if arch.name in REGISTRY and not replace:
        raise ValueError(f"architecture {arch.name!r} is already registered (pass replace=True to redefine it)")
    if arch.family not in REGISTRY and arch.family != arch.name:
        raise ValueError(f"{arch.name!r}: unknown family {arch.family!r}; register the pooled network first")
    REGISTRY[arch.name] = arch
    return arch


def unregister_architecture(name: str) -> None:
    """Remove a network added with :func:`register_architecture` (and its twin, if registered)."""
    arch = REGISTRY.pop(_model_key(name))
    if arch.nopool:
        REGISTRY.pop(arch.nopool, None)


def paper_networks() -> tuple[Architecture, ...]:
    """The networks of the paper (and any registered with ``in_paper=True``), in registry order."""
    return tuple(a for a in REGISTRY.values() if a.in_paper)


def _twin_builder(cls) -> Callable[..., nn.Module]:
    return lambda in_channels=1, num_classes=2: cls(in_channels, num_classes, pool=False)


_PAPER = (  # name, display name, class, colour, key of the authors' data
    ("logreg", "LogReg", LogReg, "#7f7f7f", "lr"),
    ("lenet", "LeNet", LeNet, "#1f77b4", "ln"),
    ("vgg11", "VGG-11", VGG, "#ff7f0e", "vgg"),
    ("resnet18", "ResNet-18", ResNet18, "#2ca02c", "rn"),
    ("densenet121", "DenseNet-121", DenseNet121, "#d62728", "dn"),
)
for _name, _display, _cls, _colour, _key in _PAPER:  # each CNN followed by its pooling-free twin
    _twin = None if _cls is LogReg else f"{_name}_nopool"
    register_architecture(Architecture(_name, _display, _cls, in_paper=True, nopool=_twin, colour=_colour,
                                       published_key=_key))
    if _twin:
        register_architecture(Architecture(_twin, f"{_display} without pooling", _twin_builder(_cls),
                                           family=_name, colour=_colour))


class _Names(Sequence):
    """The registered architecture names, read live from :data:`REGISTRY` (a tuple-like view)."""

    def __getitem__(self, i):
        return tuple(REGISTRY)[i]

    def __len__(self) -> int:
        return len(REGISTRY)

    def __contains__(self, name) -> bool:
        return name in REGISTRY

    def __eq__(self, other) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (tuple, list, Sequence)) else NotImplemented

    def __hash__(self):
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(REGISTRY))


#: Names accepted by :func:`get_model`: every key of :data:`REGISTRY` (a live view).
ARCHITECTURES: Sequence[str] = _Names()


def _model_key(name) -> str:
    """The registry key of an architecture name (case-insensitive); a clear error for unknown names."""
    if not isinstance(name, str):
        raise TypeError(f"architecture name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return key


def get_model(name: str, in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """Build a freshly (randomly) initialised network for 32x32 inputs.

    Args:
        name: one of :data:`ARCHITECTURES` (``logreg``, ``lenet``, ``vgg11``, ``resnet18``,
            ``densenet121`` and the pooling-free ``*_nopool`` variants of the CNNs).
        in_channels: input channels (1 for the synthetic experiments, 3 for CIFAR-10).
        num_classes: outputs of the last layer (2 for D(v) with cross-entropy, 1 for NADs, 10 for CIFAR-10).

    The initialisation follows the global torch RNG: call ``torch.manual_seed`` first for a fixed network.
    """
    key = _model_key(name)
    positive_int(in_channels, "in_channels", maximum=4096)
    positive_int(num_classes, "num_classes", maximum=1_000_000)
    return REGISTRY[key].build(in_channels=in_channels, num_classes=num_classes)


def seeded_model(arch: str | Callable[[], nn.Module], seed: int, in_channels: int = 1,
                 num_classes: int = 2) -> nn.Module:
    """A network initialised from ``seed``, leaving the caller's global torch RNG as it was.

    ``arch`` is a name of :data:`ARCHITECTURES` (built by :func:`get_model` with ``in_channels`` and
    ``num_classes``) or a zero-argument callable returning a fresh ``nn.Module``.  The same seed gives
    the same parameters on every call.
    """
    seed = _check_seed(seed)
    if isinstance(arch, nn.Module):
        raise TypeError(f"arch must be an architecture name or a zero-argument callable that builds a fresh "
                        f"network (e.g. `lambda: {type(arch).__name__}()`), not a network instance: the network is "
                        "initialised from the seed")
    if not isinstance(arch, str) and not callable(arch):
        raise TypeError(f"arch must be an architecture name or a callable, got {type(arch).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(arch, str):
            return get_model(arch, in_channels=in_channels, num_classes=num_classes)
        return arch()


# --------------------------------------------------------------------------------------------------
# what a user's model *is*: the key of its checkpoints and its name in provenance


def _source(obj) -> str:
    """The source of a function or class, or its qualified name when Python cannot find it (a built-in, a
    class made at run time)."""
    target = getattr(obj, "func", obj)  # functools.partial: its function
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def model_fingerprint(arch: str | Callable[[], nn.Module], input_shape=(1, 32, 32)) -> str:
    """What a model constructor is, as 16 hex digits: for a registered name, the name; for a callable, the
    SHA-256 of the source of the callable and of the class it builds, the names and shapes of one network's
    parameters and buffers, and that network's output on a fixed probe input (seed 0, on the CPU).

    Two different models, or a class edited under the same name, get different fingerprints; the same model
    gets the same one in every process.  The global torch RNG is left as it was.
    """
    if isinstance(arch, str):
        return arch.lower()
    if not callable(arch):
        raise TypeError(f"arch must be an architecture name or a callable, got {type(arch).__name__}")
    h = hashlib.sha256(_source(arch).encode())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = arch()
        if not isinstance(net, nn.Module):
            raise TypeError(f"the model callable must return an nn.Module, got {type(net).__name__}")
        net = net.cpu().eval()
        probe = torch.randn(2, *input_shape)
        with torch.inference_mode():
            try:
                out = net(probe)
            except Exception as err:  # noqa: BLE001 -- a model that cannot take the probe is named by its source
                out = repr(type(err).__name__)
    h.update(_source(type(net)).encode())
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        h.update(f"{name}:{tuple(t.shape)};".encode())
    h.update(repr([round(float(v), 5) for v in out.flatten()[:64]] if isinstance(out, torch.Tensor) else out).encode())
    return h.hexdigest()[:16]


def describe_model(arch: str | Callable[[], nn.Module], input_shape=(1, 32, 32)) -> str:
    """A model's name for checkpoints and provenance: a registered name as it is, a callable as
    ``"<qualified name> #<fingerprint>"`` (:func:`model_fingerprint`; never a memory address)."""
    if isinstance(arch, str):
        return arch.lower()
    return f"{model_name(arch)} #{model_fingerprint(arch, input_shape)}"


def model_name(arch: str | Callable[[], nn.Module]) -> str:
    """A readable name of a model: a registered name, else the qualified name of the callable (of the wrapped
    function for a ``functools.partial``: ``"partial(make)"``); never a memory address."""
    if isinstance(arch, str):
        return arch.lower()
    name = getattr(arch, "__qualname__", None)
    if name is None and hasattr(arch, "func"):
        name = f"{type(arch).__qualname__}({model_name(arch.func)})"
    return name or type(arch).__qualname__


def model_from_spec(spec: str, kwargs: dict | None = None, num_classes: int | None = None):
    """A model given as text (the command line's ``--arch``): a registered name, returned as it is, or
    ``"package.module:Class"`` (or a function), imported and returned as a zero-argument constructor
    ``functools.partial(Class, **kwargs)``.  The task sets the outputs through the documented hook: when the
    class takes a ``num_classes`` argument and ``kwargs`` does not set it, ``num_classes`` is passed.

    Raises ``ValueError`` with what to write when the spec is neither, or the module or name cannot be found.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"a model is a registered name ({', '.join(REGISTRY)}) or 'package.module:Class', got "
                         f"{spec!r}")
    if ":" not in spec:
        get_model(spec)  # a registered name: validated (with the list of names) here
        if kwargs:
            raise ValueError("--arch-kwargs is for a model of yours ('package.module:Class'), not a registered name")
        return spec.lower()
    module_name, _, attr = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} for the model {spec!r}: {err} (is its folder on "
                         "PYTHONPATH, or the current folder?)") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no {attr!r} (model {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec!r} is not a class or function that builds a model")
    kwargs = dict(kwargs or {})
    try:
        takes_classes = "num_classes" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        takes_classes = False
    if num_classes is not None and takes_classes:
        kwargs.setdefault("num_classes", int(num_classes))
    return functools.partial(target, **kwargs)
