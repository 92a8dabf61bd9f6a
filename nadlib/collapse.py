"""Neural collapse (Papyan, Han & Donoho, PNAS 2020): measures NC1-NC4 and a tracker for training.

In the *terminal phase of training* (training error zero, training continues) the last-layer features
of a classifier collapse: NC1 within-class variability vanishes, NC2 the class means form a simplex
equiangular tight frame (ETF), NC3 the classifier aligns with the class means, NC4 the decision becomes
nearest class centre.

Definitions (pinned here, used everywhere in the book)
------------------------------------------------------
Features ``h_i`` (``N x D``, last-layer features = the input of the final linear layer), labels
``y_i in {0, ..., C-1}``, classifier ``W`` (``C x D``) and bias ``b``; all statistics in float64.

* class means ``mu_c`` (mean of the features of class ``c``) and global mean ``mu_G`` (mean of *all*
  ``N`` features, as in Papyan et al.; for balanced classes it is also the mean of the class means);
  ``M = [mu_1 - mu_G, ..., mu_C - mu_G]`` (``D x C``);
* ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, ``Sigma_B = (1/C) M M^T``;
* **NC1** ``= tr(Sigma_W Sigma_B^+) / C`` (``^+``: Moore-Penrose pseudo-inverse).  Computed without any
  ``D x D`` matrix: with the thin SVD ``M = U S V^T`` (rank ``r``), ``Sigma_B^+ = C U_r S_r^-2 U_r^T`` and
  NC1 ``= (1/N) sum_i ||S_r^-1 U_r^T (h_i - mu_{y_i})||^2``.  Singular values below
  ``sqrt(eps) * s_max`` (``eps`` of float64, so ``1.5e-8 * s_max``) count as zero: they are rounding
  noise of the means -- with balanced classes the centred means sum to zero, so ``M`` has rank ``C - 1``
  and its last singular value is pure rounding (a cut-off at ``max(D, C) * eps`` as in
  ``torch.linalg.pinv`` can keep it and blow NC1 up by ~20 orders of magnitude);
* **NC2, equinorm** ``= std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||`` (coefficient of variation,
  population standard deviation, ``ddof=0``);
* **NC2, equiangularity** ``= ||G - G_ETF||_F / ||G_ETF||_F`` with ``G`` the ``C x C`` matrix of cosines
  between the centred class means and ``G_ETF = (C I - 1 1^T) / (C - 1)`` that of a simplex ETF
  (1 on the diagonal, ``-1/(C-1)`` elsewhere); ``||G_ETF||_F = C / sqrt(C - 1)``;
* **NC3** ``= || W / ||W||_F - M^T / ||M||_F ||_F^2`` (in ``[0, 4]``; 0 when the classifier rows are the
  centred class means up to one common scale);
* **NC4** ``=`` fraction of samples whose nearest class mean (Euclidean, ``argmin_c ||h - mu_c||``)
  differs from the network's decision ``argmax_c (W h + b)_c``; ties go to the lowest class index.

When all class means coincide (``M = 0``, e.g. a network whose features are all zero) NC1, NC2 and NC3
are undefined and reported as NaN.

:class:`CollapseTracker` records these measures after every epoch of :func:`nadlib.train` (through its
``on_epoch_end`` callback); :func:`run_collapse` trains one architecture with a tracker and writes an
artifact with provenance.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ._checks import positive_int
from .config import PAPER_RECIPE
from .control import RunControl, as_run
from .data import as_direction, linear_separable
from .experiments import CIFARHyperParams, Normaliser
from .models import describe_model, model_name, seeded_model
from .results import load_artifact, provenance, register_loader, save_artifact
from .training import TEST_SEED_OFFSET, TrainResult, check_fits, train

__all__ = ["CollapseMetrics", "collapse_metrics", "penultimate_layer", "CollapseTracker", "CollapseRun",
           "run_collapse", "separable_data", "first_zero_error_epoch", "METRICS"]

#: The measures recorded per epoch, in the order of the chapter's figures.
METRICS = ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4")


@dataclass(frozen=True)
class CollapseMetrics:
    """NC1-NC4 of one set of features (see the module docstring for the exact definitions).

    ``accuracy`` is the accuracy of the classifier ``argmax(W h + b)`` on these features (that is, of the
    network on these samples); ``n_samples``, ``num_classes`` and ``dim`` describe the input.
    """

    nc1: float
    nc2_equinorm: float
    nc2_equiangular: float
    nc3: float
    nc4: float
    accuracy: float
    n_samples: int
    num_classes: int
    dim: int

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------

def _as_tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        if a.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got dtype object")
        return torch.from_numpy(np.ascontiguousarray(a))
    if isinstance(a, torch.Tensor):
        return a.detach()
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def _float_matrix(a, name: str, shape_text: str) -> torch.Tensor:
    a = _as_tensor(a, name)
    if not a.is_floating_point():
        raise TypeError(f"{name} must be floating-point, got dtype {a.dtype}")
    if a.dim() != 2:
        raise ValueError(f"{name} must have shape {shape_text}, got {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _as_class_indices(y, name: str = "labels") -> torch.Tensor:
    """Integer labels as class indices; ``+-1`` labels become ``0/1`` (as :func:`nadlib.train` does)."""
    y = _as_tensor(y, name)
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}")
    y = y.long()
    if y.numel() and y.min() < 0 and bool(((y == -1) | (y == 1)).all()):
        y = (y > 0).long()
    return y


def _check_inputs(features, labels, weight, bias):
    h = _float_matrix(features, "features", "(N, D)")
    w = _float_matrix(weight, "weight", "(C, D)")
    y = _as_class_indices(labels)
    n, d = h.shape
    c = w.shape[0]
    if n == 0:
        raise ValueError("features is empty (N = 0)")
    if w.shape[1] != d:
        raise ValueError(f"weight has {w.shape[1]} columns but features have D = {d}; weight must be (C, D)")
    if c < 2:
        raise ValueError(f"neural collapse needs at least 2 classes, weight has C = {c} row(s)")
    if len(y) != n:
        raise ValueError(f"features has {n} samples but labels has {len(y)}")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"labels must be class indices in [0, {c - 1}] (C = {c} rows of weight), "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    counts = torch.bincount(y.cpu(), minlength=c)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class(es) {missing[:10]} have no samples; every class needs at least one "
                         "(class means are undefined otherwise)")
    if bias is not None:
        bias = _as_tensor(bias, "bias")
        if not bias.is_floating_point():
            raise TypeError(f"bias must be floating-point, got dtype {bias.dtype}")
        if bias.shape != (c,):
            raise ValueError(f"bias must have shape ({c},), got {tuple(bias.shape)}")
        if not torch.isfinite(bias).all():
            raise ValueError("bias contains NaN or infinite values")
    return h, y, w, bias, counts


# --------------------------------------------------------------------------------------------------
# the measures
# --------------------------------------------------------------------------------------------------

@torch.no_grad()
def collapse_metrics(features, labels, weight, bias=None) -> CollapseMetrics:
    """NC1-NC4 of last-layer ``features`` (``N x D``) with ``labels`` and classifier ``weight`` (``C x D``),
    ``bias`` (``C``, optional).  Definitions: see :mod:`nadlib.collapse`.

    Inputs may be torch tensors (CPU or GPU; the work happens on the device of ``features``) or numpy
    arrays; everything is computed in float64.  Labels are class indices ``0..C-1`` (``+-1`` labels
    of D(v) are mapped to ``0/1`` as in :func:`nadlib.train`).

    Degenerate features: when all class means coincide NC1-NC3 are ``nan`` (no between-class spread), and
    when any two coincide NC4 is ``nan`` with a ``RuntimeWarning`` (every sample ties between them).

    Raises:
        TypeError: non-array input, non-float features/weight/bias, non-integer labels.
        ValueError: wrong shapes, NaN/inf, labels out of range, fewer than 2 classes, a class without
            samples -- all checked before any computation.
    """
    h, y, w, bias, counts = _check_inputs(features, labels, weight, bias)
    dev = h.device
    h = h.to(torch.float64)
    y = y.to(dev)
    w = w.to(dev, torch.float64)
    n, d = h.shape
    c = w.shape[0]
    counts = counts.to(dev, torch.float64)

    means = torch.zeros(c, d, dtype=torch.float64, device=dev).index_add_(0, y, h) / counts[:, None]
    mu_g = h.mean(0)
    m = (means - mu_g).T  # D x C
    logits = h @ w.T
    if bias is not None:
        logits = logits + bias.to(dev, torch.float64)
    net = logits.argmax(1)
    accuracy = (net == y).double().mean().item()
    # nearest class mean: argmin ||h - mu_c||^2 = argmin (||mu_c||^2 - 2 h.mu_c); undefined (a tie for every
    # sample between them) when two class means coincide
    ncc = ((means * means).sum(1) - 2 * h @ means.T).argmin(1)
    nc4 = (ncc != net).double().mean().item()
    gaps = torch.cdist(means, means) + torch.eye(c, dtype=torch.float64, device=dev)
    if bool((gaps == 0).any()):
        warnings.warn("two class means coincide: the nearest class mean is a tie, NC4 is undefined (nan)",
                      RuntimeWarning, stacklevel=2)
        nc4 = float("nan")

    m_norm = torch.linalg.norm(m)
    if m_norm == 0:
        nan = float("nan")
        return CollapseMetrics(nan, nan, nan, nan, nc4, accuracy, n, c, d)

    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    keep = s > s.max() * math.sqrt(torch.finfo(torch.float64).eps)
    z = ((h - means[y]) @ u[:, keep]) / s[keep]
    nc1 = (z * z).sum().item() / n

    norms = torch.linalg.norm(m, dim=0)
    nc2_norm = (norms.std(unbiased=False) / norms.mean()).item()
    if (norms == 0).any():
        nc2_angle = float("nan")  # a class mean equal to the global mean has no direction
    else:
        unit = m / norms
        gram = unit.T @ unit
        etf = (c * torch.eye(c, dtype=torch.float64, device=dev) - 1) / (c - 1)
        nc2_angle = (torch.linalg.norm(gram - etf) / (c / math.sqrt(c - 1))).item()

    w_norm = torch.linalg.norm(w)
    nc3 = (torch.linalg.norm(w / w_norm - m.T / m_norm) ** 2).item() if w_norm > 0 else float("nan")
    return CollapseMetrics(nc1, nc2_norm, nc2_angle, nc3, nc4, accuracy, n, c, d)


# --------------------------------------------------------------------------------------------------
# features of a network
# --------------------------------------------------------------------------------------------------

def penultimate_layer(model: nn.Module, head: str | None = None) -> nn.Linear:
    """The classifier of ``model``: the ``nn.Linear`` named ``head`` (as in ``model.named_modules()``, e.g.
    ``"fc"`` or ``"classifier.2"``), or by default the last ``nn.Linear`` in registration order.  Its input is
    the last-layer feature vector (of every nadlib architecture; for LogReg, the flattened image itself).
    Name the head of a model that registers its classifier before other linear layers."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if head is not None:
        named = dict(model.named_modules())
        if head not in named:
            linear = [n for n, m in named.items() if isinstance(m, nn.Linear)]
            raise ValueError(f"{type(model).__name__} has no module named {head!r}; its linear layers: {linear}")
        if not isinstance(named[head], nn.Linear):
            raise ValueError(f"the head {head!r} of {type(model).__name__} is a {type(named[head]).__name__}, "
                             "not an nn.Linear classifier")
        return named[head]
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer, so it has no last-layer features")
    return last


@torch.no_grad()
def _features(model: nn.Module, x: torch.Tensor, batch_size: int, head: str | None = None) -> torch.Tensor:
    """Inputs of the classifier for all of ``x`` (eval mode, on the model's device), ``N x D``."""
    layer = penultimate_layer(model, head)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().flatten(1)))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured)


class CollapseTracker:
    """Records NC1-NC4 of ``model`` on ``(x, y)`` (and optionally a test set) once per call.

    Use it as the ``on_epoch_end`` callback of :func:`nadlib.train`::

        tracker = CollapseTracker(model, x_train, y_train, x_test, y_test)
        nadlib.train(model, x_train, y_train, epochs=50, on_epoch_end=tracker)
        tracker.history()["nc1"]        # one value per epoch

    Each call ``tracker(epoch, model)`` runs the model in eval mode over the data (mini-batches of
    ``batch_size``), captures the input of its last ``nn.Linear`` with a forward pre-hook (removed again
    at once) and appends one row: the epoch, the :class:`CollapseMetrics` of the training features
    (with the classifier's weight and bias) and, when a test set is given, the same measures of the test
    features with the prefix ``test_`` (class means of the *test* features).  ``accuracy`` is the
    network's accuracy on the whole set in eval mode, so ``1 - accuracy`` is the training error.
    The model is left in the mode it was in.  ``head`` names the classifier (:func:`penultimate_layer`).
    """

    def __init__(self, model: nn.Module, x, y, x_test=None, y_test=None, *, batch_size: int = 1024,
                 head: str | None = None):
        self.head = head
        self.layer = penultimate_layer(model, head)
        self.x, self.y = self._check_set(x, y, "")
        if (x_test is None) != (y_test is None):
            raise ValueError("give both x_test and y_test, or neither")
        self.x_test = self.y_test = None
        if x_test is not None:
            self.x_test, self.y_test = self._check_set(x_test, y_test, "_test")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.rows: list[dict] = []

    @staticmethod
    def _check_set(x, y, suffix: str):
        x = _as_tensor(x, f"x{suffix}")
        if not x.is_floating_point():
            raise TypeError(f"x{suffix} must be floating-point, got dtype {x.dtype}")
        if x.dim() < 2 or len(x) == 0:
            raise ValueError(f"x{suffix} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
        y = _as_class_indices(y, f"y{suffix}")
        if len(y) != len(x):
            raise ValueError(f"x{suffix} has {len(x)} samples but y{suffix} has {len(y)}")
        return x, y

    def measure(self, model: nn.Module, test: bool = False) -> CollapseMetrics:
        """The measures of ``model`` on the training set (or the test set) now, without recording them."""
        x, y = (self.x_test, self.y_test) if test else (self.x, self.y)
        if x is None:
            raise ValueError("this tracker has no test set")
        layer = penultimate_layer(model, self.head)
        h = _features(model, x, self.batch_size, self.head)
        return collapse_metrics(h, y.to(h.device), layer.weight, layer.bias)

    def __call__(self, epoch: int, model: nn.Module) -> None:
        row = {"epoch": int(epoch), **self.measure(model).as_dict()}
        if self.x_test is not None:
            row.update({f"test_{k}": v for k, v in self.measure(model, test=True).as_dict().items()})
        self.rows.append(row)

    def history(self) -> dict[str, np.ndarray]:
        """The recorded rows as arrays: ``{"epoch": ..., "nc1": ..., ..., "test_nc1": ...}``."""
        if not self.rows:
            return {}
        return {k: np.array([r[k] for r in self.rows]) for k in self.rows[0]}

    @property
    def zero_error_epoch(self) -> int | None:
        """First recorded epoch with zero training error (eval mode, whole training set), or ``None``."""
        return first_zero_error_epoch(self.history())


def first_zero_error_epoch(history: dict) -> int | None:
    """First epoch of ``history`` (``{"epoch", "accuracy", ...}``) with training accuracy 1, or ``None``."""
    if not history or "accuracy" not in history:
        return None
    hit = np.nonzero(np.asarray(history["accuracy"]) >= 1.0)[0]
    return int(history["epoch"][hit[0]]) if len(hit) else None


# --------------------------------------------------------------------------------------------------
# one run with a tracker, written as an artifact
# --------------------------------------------------------------------------------------------------

@dataclass
class CollapseRun:
    """The per-epoch collapse measures of one training run (see :func:`run_collapse`)."""

    arch: str
    history: dict  # {"epoch", "nc1", ..., "accuracy", "test_nc1", ..., "test_accuracy", "loss"}
    settings: dict = field(default_factory=dict)
    wall_time: float = 0.0
    train_result: TrainResult | None = field(default=None, repr=False)

    @property
    def zero_error_epoch(self) -> int | None:
        """First epoch with zero training error (``None`` if never reached)."""
        return first_zero_error_epoch(self.history)

    def at(self, epoch: int, key: str) -> float:
        """Value of ``key`` recorded at ``epoch``."""
        idx = np.nonzero(self.history["epoch"] == epoch)[0]
        if not len(idx):
            raise KeyError(f"epoch {epoch} was not recorded")
        return float(self.history[key][idx[0]])

    def final(self, key: str) -> float:
        return float(self.history[key][-1])

    @classmethod
    def from_artifact(cls, path) -> "CollapseRun":
        """Load a run written by :func:`run_collapse` (``out=``)."""
        arrays, meta = load_artifact(path)
        if "nc1" not in arrays or "epoch" not in arrays:
            raise ValueError(f"{str(path)!r} is not a collapse artifact (missing 'nc1' or 'epoch')")
        return cls(str(meta.get("arch", "?")), arrays, meta, float(meta.get("wall_time", 0.0)))


register_loader("collapse", CollapseRun.from_artifact)  # nadlib.results.load of the catalogue's collapse runs


def separable_data(v, n_train: int, n_test: int, *, sigma: float = PAPER_RECIPE.sigma,
                   epsilon: float = PAPER_RECIPE.epsilon, seed: int = 0,
                   device=None) -> dict:
    """Training and test samples of D(v) as a data dict for :func:`run_collapse` (test seed offset as in
    :func:`nadlib.direction_accuracy`); labels are ``0/1``."""
    v = as_direction(v)
    x_tr, y_tr = linear_separable(v, n_train, sigma, epsilon, seed=seed, device=device)
    x_te, y_te = linear_separable(v, n_test, sigma, epsilon, seed=seed + TEST_SEED_OFFSET, device=device)
    return {"x_train": x_tr, "y_train": (y_tr > 0).long(), "x_test": x_te, "y_test": (y_te > 0).long(),
            "n_train": n_train, "n_test": n_test,
            "source": f"D(v), sigma {sigma}, epsilon {epsilon}, seed {seed}"}


def run_collapse(arch: str, data: dict, epochs: int, *, hp: CIFARHyperParams | None = None,
                 standardise: bool = True, out=None, head: str | None = None,
                 on_epoch_end: Callable[[int, nn.Module, "CollapseTracker"], None] | None = None,
                 run: RunControl | None = None, **meta) -> CollapseRun:
    """Train ``arch`` on ``data`` for ``epochs`` epochs and record NC1-NC4 before training and after
    every epoch (train and test features).

    Args:
        arch: a name of :data:`nadlib.ARCHITECTURES` (``num_classes`` and input channels from the data), or
            a zero-argument constructor of your model (with as many outputs as ``data`` has classes);
            initialised from ``run.seed``.  Provenance names it by :func:`nadlib.describe_model`.
        data: ``{"x_train", "y_train"}`` and optionally ``{"x_test", "y_test", "source"}``, e.g. from
            :func:`nadlib.cifar_data` or :func:`separable_data`.
        epochs: epochs of SGD with a linear learning-rate decay to 0 (:func:`nadlib.train`).
        hp: the optimiser (:class:`nadlib.CIFARHyperParams`: lr, momentum, weight decay, batch size,
            clipping); default the book's CIFAR-10 recipe.
        standardise: standardise inputs per channel with the training set's mean and std (test likewise).
        out: optional ``.npz`` path: the history is written there with :func:`nadlib.save_artifact` and
            :func:`nadlib.provenance` (settings, data source, zero-error epoch, wall time, ``meta``).
        head: the name of the classifier layer (``dict(model.named_modules())``) whose input are the features
            (:class:`CollapseTracker`); default: the last ``nn.Linear``.
        on_epoch_end: optional ``f(epoch, model, tracker)`` called after the tracker (live plots).
        run: :class:`nadlib.RunControl`: seed (initialisation and batch order), device (default CUDA if
            available), progress bar over epochs (default on).
        **meta: extra JSON-serialisable fields for the artifact's provenance (e.g. ``profile="default"``).

    Returns:
        a :class:`CollapseRun`; ``history`` has one row per epoch ``0..epochs`` (epoch 0: at initialisation)
        and also the training loss per epoch (``loss``, NaN at epoch 0).
    """
    if not isinstance(data, dict) or "x_train" not in data or "y_train" not in data:
        raise TypeError("data must be a dict with at least 'x_train' and 'y_train' (see cifar.cifar_data)")
    run = as_run(run)
    positive_int(epochs, "epochs")
    hp = CIFARHyperParams() if hp is None else hp
    if not isinstance(hp, CIFARHyperParams):
        raise TypeError(f"hp must be a nadlib.CIFARHyperParams, got {type(hp).__name__}: {hp!r}")
    recipe = hp.recipe(epochs)  # validates the values
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError("on_epoch_end must be callable as f(epoch, model, tracker)")
    device, seed = run.torch_device(), run.seed
    x_tr = _as_tensor(data["x_train"], "x_train")
    y_tr = _as_class_indices(data["y_train"], "y_train")
    has_test = data.get("x_test") is not None
    x_te = _as_tensor(data["x_test"], "x_test") if has_test else None
    y_te = _as_class_indices(data["y_test"], "y_test") if has_test else None
    if x_tr.dim() != 4:
        raise ValueError(f"x_train must have shape (N, C, H, W), got {tuple(x_tr.shape)}")
    if standardise:
        norm = Normaliser(x_tr.float())
        x_tr = norm(x_tr.float())
        x_te = norm(x_te.float()) if has_test else None
    num_classes = max(2, int(y_tr.max()) + 1)
    model = seeded_model(arch, seed, in_channels=x_tr.shape[1], num_classes=num_classes).to(device)
    check_fits(model, x_tr[:1].to(device), y_tr, "train")  # a clear error before any work, naming the shape
    tracker = CollapseTracker(model, x_tr, y_tr, x_te, y_te, head=head)

    def callback(epoch: int, net: nn.Module) -> None:
        tracker(epoch, net)
        if on_epoch_end is not None:
            on_epoch_end(epoch, net, tracker)

    start = time.perf_counter()
    callback(0, model)
    result = train(model, x_tr, y_tr, x_te, y_te, recipe=recipe, on_epoch_end=callback, run=run.replace(device=device))
    wall = time.perf_counter() - start
    history = tracker.history()
    history["loss"] = np.array([np.nan, *result.loss]) if len(result.loss) == epochs else \
        np.full(len(history["epoch"]), np.nan)
    settings = {"arch": describe_model(arch, tuple(x_tr.shape[1:])), "head": head, "epochs": epochs, **hp.train_kwargs(), "seed": seed, "standardise": standardise,
                "n_train": len(x_tr), "n_test": len(x_te) if has_test else 0, "num_classes": num_classes,
                "source": str(data.get("source", "?"))}
    collapse = CollapseRun(model_name(arch), history, settings, wall, result)
    if out is not None:
        info = provenance(device=device, wall_time=wall, zero_error_epoch=collapse.zero_error_epoch,
                          **settings, **meta)
        save_artifact(out, history, info)
        collapse.settings = info
    return collapse
