"""The non-linearity signature of a network: the affinity score of each activation layer (Chapter 4).

After Bouniot et al., *Understanding deep neural networks through the lens of their non-linearity*
(written from the paper's definition; no code of theirs is used).

Affinity score
--------------
For an activation layer with inputs ``X`` and outputs ``Y`` (``N`` samples of ``d`` features; 4-D
tensors ``N x C x H x W`` are first averaged over height and width, so ``d = C``):

1. means ``m_X``, ``m_Y`` and unbiased covariances ``S_X``, ``S_Y`` (each plus ``1e-6 * I``);
2. the optimal-transport (OT) map between the Gaussians ``N(m_X, S_X)`` and ``N(m_Y, S_Y)``, which is
   affine: ``A = S_Y^{1/2} (S_Y^{1/2} S_X S_Y^{1/2})^{-1/2} S_Y^{1/2}``, ``T(x) = A (x - m_X) + m_Y``
   (``A = 0`` when the unregularised ``tr S_Y`` is negligible: the output is constant);
3. the exact OT cost ``W = OT(T(X), Y)`` between the two point clouds, uniform weights, squared
   Euclidean cost (POT's ``ot.emd2``; in 1-D its exact sorted-matching solver ``ot.emd2_1d``);
4. the affinity score ``rho = 1 - sqrt(W / (2 tr S_Y))``, clipped to ``[0, 1]``.

``T(X)`` and ``Y`` have the same mean and covariance, and any two such laws are at most
``2 tr S_Y`` apart in squared Wasserstein distance (the independent coupling), hence ``rho`` in
``[0, 1]``.  ``rho = 1`` when the layer acts as an affine map that is the gradient of a convex function
(e.g. ``x -> 2x + 1``; the identity part of a ReLU whose inputs are all positive); ``rho`` falls as the
output departs from every such affine image of the input.  In 1-D, for Gaussian ``x`` and any increasing
``f``, ``rho = 1 - sqrt(1 - r)`` in the population, ``r`` the Pearson correlation of ``x`` and ``f(x)``
(0.6211 for a ReLU on ``N(0, 1)``).

Matrix square roots use a symmetric eigendecomposition in float64 on the tensors' device (CPU or
GPU); the OT problem is solved on the CPU.  The cost of the exact OT grows like ``N^2`` in memory and
about ``N^3`` in time, so a few thousand samples per layer is the practical limit.

Signature
---------
:func:`nonlinearity_signature` runs a model on inputs, records the inputs and outputs of every
activation in forward order (activation *modules* through forward pre-hooks and hooks, and functional
activations such as ``torch.relu`` called inside other modules through a ``TorchFunctionMode``), and
returns the vector of affinity scores as a :class:`Signature`.  :func:`run_signatures` does this for
many architectures and writes an artifact to ``results/``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from ._checks import fits_in_memory, is_int
from .control import RunControl, as_run
from .directions import fourier_energy

__all__ = ["REGULARISATION", "ACTIVATION_MODULES", "FUNCTIONS_1D", "AffineFit1D", "affine_fit_1d",
           "nad_low_frequency_energy", "gaussian_relu_reference", "Signature", "affinity_score",
           "nonlinearity_signature", "relative_depth"]

#: Added to the diagonal of both covariances.
REGULARISATION = 1e-6

#: Module types whose inputs and outputs are recorded by :func:`nonlinearity_signature`.
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign,
    nn.LogSigmoid, nn.Tanhshrink, nn.Threshold,
)

_F = nn.functional
#: Functional activations recorded when called outside an activation module (e.g. ResNet's torch.relu).
_FUNCTIONAL = {
    torch.relu: "relu", torch.relu_: "relu", _F.relu: "relu", _F.relu_: "relu", torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu", _F.relu6: "relu6", _F.leaky_relu: "leaky_relu", _F.elu: "elu",
    _F.selu: "selu", _F.celu: "celu", _F.gelu: "gelu", _F.silu: "silu", _F.mish: "mish",
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", _F.tanh: "tanh", torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid", _F.sigmoid: "sigmoid", _F.hardtanh: "hardtanh",
    _F.hardswish: "hardswish", _F.hardsigmoid: "hardsigmoid", _F.softplus: "softplus",
    _F.softsign: "softsign", _F.logsigmoid: "logsigmoid",
}


# --------------------------------------------------------------------------------------------------
# Affinity score
# --------------------------------------------------------------------------------------------------

def _as_samples(a, name: str) -> torch.Tensor:
    """Validate one side of :func:`affinity_score` and return an ``N x d`` float64 tensor."""
    if isinstance(a, np.ndarray):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
        a = torch.from_numpy(np.ascontiguousarray(a))
    elif not isinstance(a, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(a).__name__}")
    if a.dtype == torch.bool or a.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.dim() not in (1, 2, 4):
        raise ValueError(f"{name} must be N (1-D), N x d or N x C x H x W, got shape {tuple(a.shape)}")
    a = a.detach().to(torch.float64)
    if a.dim() == 1:
        a = a[:, None]
    elif a.dim() == 4:
        a = a.mean(dim=(2, 3))
    return a


def _check_pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = tuple(getattr(x, "shape", ())), tuple(getattr(y, "shape", ()))
    xs, ys = _as_samples(x, "x"), _as_samples(y, "y")
    if shapes[0] != shapes[1]:
        raise ValueError(f"x and y must have the same shape (inputs and outputs of one activation), "
                         f"got {shapes[0]} and {shapes[1]}")
    n, d = xs.shape
    if n < 2 or n <= d:
        raise ValueError(f"too few samples for the dimension: {n} samples of {d} features; the "
                         f"covariances need more samples than features (at least {d + 1}, better many more)")
    if xs.device != ys.device:
        raise ValueError(f"x and y are on different devices ({xs.device}, {ys.device})")
    for name, a in (("x", xs), ("y", ys)):
        if not torch.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return xs, ys


def _sym_pow(s: torch.Tensor, power: float) -> torch.Tensor:
    """``s ** power`` of a symmetric positive semi-definite matrix by eigendecomposition (float64)."""
    w, v = torch.linalg.eigh((s + s.T) / 2)
    w = w.clamp_min(0.0) if power > 0 else w.clamp_min(torch.finfo(w.dtype).tiny)
    return (v * w.pow(power)) @ v.T


def _ot_cost(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact squared-Euclidean OT cost between two equal-size point clouds, uniform weights (POT)."""
    import ot

    n = len(a)
    if a.shape[1] == 1:
        return float(ot.emd2_1d(a[:, 0].cpu().numpy(), b[:, 0].cpu().numpy(), metric="sqeuclidean"))
    cost = torch.cdist(a, b).pow_(2).cpu().numpy()
    w = np.full(n, 1.0 / n)
    return float(ot.emd2(w, w, cost, numItermax=max(100_000, 50 * n * n)))


def _check_cost_matrix(n: int, what: str, hint: str) -> None:
    """The exact OT cost needs an ``n x n`` float64 cost matrix (and POT a copy): refused before any work when
    it cannot fit in memory."""
    fits_in_memory(2 * 8 * n * n, f"the {n:,} x {n:,} optimal-transport cost matrix of {what}", hint)


def affinity_score(x, y) -> float:
    """Affinity score ``rho`` in ``[0, 1]`` of the map ``x -> y`` (1: the layer acts affinely).

    Args:
        x, y: inputs and outputs of one activation layer, same shape: ``N`` (1-D data), ``N x d``, or
            ``N x C x H x W`` (averaged over ``H`` and ``W`` first, so ``d = C``); ``torch.Tensor`` (CPU or
            GPU) or ``numpy.ndarray``.  Needs more samples than features (``N > d``).

    The computation (see the module docstring for the reasoning): means and unbiased covariances
    ``S_X``, ``S_Y`` plus ``1e-6 I``; the affine OT map between the two Gaussian approximations,
    ``T(x) = A (x - m_X) + m_Y`` with ``A = S_Y^{1/2} (S_Y^{1/2} S_X S_Y^{1/2})^{-1/2} S_Y^{1/2}``
    (``A = 0`` when ``tr S_Y`` is negligible); the exact OT cost ``W`` between ``T(X)`` and ``Y``
    (``ot.emd2``, uniform weights, squared Euclidean cost; ``ot.emd2_1d`` in 1-D); and
    ``rho = 1 - sqrt(W / (2 tr S_Y))``, clipped to ``[0, 1]``.

    Degenerate pairs: a constant ``y`` is an affine (constant) function of any ``x``, so ``rho = 1``; a constant
    ``x`` with a varying ``y`` is no function at all and raises; when both are constant the score is undefined
    and is ``nan``, with a ``RuntimeWarning``.

    Raises:
        TypeError: ``x`` or ``y`` is not a real tensor/array.
        ValueError: shapes differ or are not 1-, 2- or 4-D, ``N <= d``, values are NaN/infinite, or ``x`` is
            constant while ``y`` varies.
    """
    xs, ys = _check_pair(x, y)
    if xs.shape[1] > 1:
        _check_cost_matrix(len(xs), f"{len(xs):,} samples", "score a subset of the samples")
    return _affinity(xs, ys)


def _constant(s_raw: torch.Tensor, scale: float) -> bool:
    """A covariance whose trace is negligible next to ``scale`` (the sum of both traces, at least 1)."""
    return float(torch.trace(s_raw)) <= 1e-12 * max(scale, 1.0)


def _affinity(xs: torch.Tensor, ys: torch.Tensor, return_map: bool = False):
    n, d = xs.shape
    mx, my = xs.mean(0), ys.mean(0)
    xc, yc = xs - mx, ys - my
    eye = torch.eye(d, dtype=torch.float64, device=xs.device)
    sx_raw, sy_raw = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1)
    sx, sy = sx_raw + REGULARISATION * eye, sy_raw + REGULARISATION * eye
    scale = float(torch.trace(sx_raw)) + float(torch.trace(sy_raw))
    if _constant(sx_raw, scale):
        if not _constant(sy_raw, scale):
            raise ValueError("x is constant but y varies: no function maps these inputs to these outputs (were "
                             "x and y taken from the same samples?)")
        warnings.warn("affinity score of a constant input and a constant output is undefined: nan",
                      RuntimeWarning, stacklevel=3)
        nan = float("nan")
        return (nan, torch.zeros_like(sy), mx, my) if return_map else nan
    if _constant(sy_raw, scale):
        a = torch.zeros_like(sy)  # constant output: T maps everything to m_Y
    else:
        sy_half = _sym_pow(sy, 0.5)
        a = sy_half @ _sym_pow(sy_half @ sx @ sy_half, -0.5) @ sy_half
    tx = xc @ a.T + my
    w = max(_ot_cost(tx, ys), 0.0)
    rho = min(max(1.0 - math.sqrt(w / (2.0 * float(torch.trace(sy)))), 0.0), 1.0)
    return (rho, a, mx, my) if return_map else rho


# --------------------------------------------------------------------------------------------------
# 1-D pictures
# --------------------------------------------------------------------------------------------------

def _affine(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x + 1.0


def _cube(x: torch.Tensor) -> torch.Tensor:
    return x ** 3


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.leaky_relu(x, 0.1)


#: The 1-D functions of Chapter 4's pictures and widget (all increasing except GELU, which dips below 0).
FUNCTIONS_1D = {"ReLU": torch.relu, "leaky ReLU (0.1)": _leaky, "GELU": nn.functional.gelu,
                "softplus": nn.functional.softplus, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                "x^3": _cube, "2x + 1": _affine}


@dataclass(frozen=True)
class AffineFit1D:
    """One activation on 1-D Gaussian inputs: samples, the affine OT map ``T`` and the scores.

    ``r`` is the Pearson correlation of ``x`` and ``y``; for increasing functions the population score
    is ``1 - sqrt(1 - r)``, printed as ``rho_from_r`` next to the exact finite-sample ``rho``.
    """

    name: str
    mean: float
    std: float
    x: np.ndarray
    y: np.ndarray
    tx: np.ndarray
    slope: float
    intercept: float
    rho: float
    r: float

    @property
    def rho_from_r(self) -> float:
        return 1.0 - math.sqrt(max(1.0 - self.r, 0.0))


def affine_fit_1d(f="ReLU", mean: float = 0.0, std: float = 1.0, n: int = 2000, seed: int = 0) -> AffineFit1D:
    """Apply ``f`` (a name from :data:`FUNCTIONS_1D` or a callable on tensors) to ``n`` samples of
    ``N(mean, std^2)`` and fit the affine OT map; milliseconds for a few thousand samples."""
    if isinstance(f, str):
        if f not in FUNCTIONS_1D:
            raise ValueError(f"unknown function {f!r}; choose one of {', '.join(FUNCTIONS_1D)}")
        name, f = f, FUNCTIONS_1D[f]
    elif callable(f):
        name = getattr(f, "__name__", "f")
    else:
        raise TypeError(f"f must be a function name or a callable, got {type(f).__name__}")
    if not (isinstance(std, (int, float)) and std > 0 and math.isfinite(mean)):
        raise ValueError(f"need a finite mean and std > 0, got mean={mean!r}, std={std!r}")
    gen = torch.Generator().manual_seed(seed)
    x = mean + std * torch.randn(n, generator=gen, dtype=torch.float64)
    y = f(x).to(torch.float64)
    xs, ys = _check_pair(x, y)
    rho, a, mx, my = _affinity(xs, ys, return_map=True)
    slope = float(a[0, 0])
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(xc.norm() * yc.norm())
    r = float((xc * yc).sum()) / denom if denom > 0 else 0.0
    return AffineFit1D(name=name, mean=float(mean), std=float(std), x=x.numpy(), y=y.numpy(),
                       tx=(slope * (x - mx[0]) + my[0]).numpy(), slope=slope,
                       intercept=float(my[0] - slope * mx[0]), rho=rho, r=r)


def gaussian_relu_reference(n_samples: int, widths, seed: int = 0, max_points: int = 8) -> np.ndarray:
    """Finite-sample reference: the score of a ReLU on ``n_samples`` i.i.d. ``N(0, I_d)`` inputs, per width.

    In the population every width gives ``1 - sqrt(1 - r) = 0.6211`` (the coordinates are independent
    and the map acts coordinate-wise); at a finite sample the estimate rises with ``d / n_samples``
    (about +0.07 at ``d / n = 0.9``), which is the part of a layer's score that comes from its width.
    Computed exactly at up to ``max_points`` widths spread over the range and interpolated linearly in
    between (a few seconds for widths up to 1,024).
    """
    widths = np.asarray(widths, dtype=float)
    if widths.size == 0:
        return widths
    uniq = np.unique(widths.astype(int))
    grid = uniq if len(uniq) <= max_points else np.unique(
        np.round(np.geomspace(uniq.min(), uniq.max(), max_points)).astype(int))
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for d in grid:
        x = torch.randn(n_samples, int(d), generator=gen, dtype=torch.float64)
        vals.append(affinity_score(x, torch.relu(x)))
    return np.interp(widths, grid, vals)


def nad_low_frequency_energy(nads, k: int = 10, radius: float = 4.0) -> float:
    """Mean fraction of Fourier energy within ``radius`` of the zero frequency in the top-``k`` NADs.

    ``nads``: a :class:`nadlib.NADs` or a ``k x C x H x W`` tensor of directions.  A flat spectrum on a
    32 x 32 grid would give about ``pi radius^2 / 1024`` (0.05 for radius 4).
    """
    d = getattr(nads, "directions", nads)
    d = torch.as_tensor(d)[:k]
    energy = fourier_energy(d)  # k x H x W, zero frequency at the centre
    h, w = energy.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    mask = (yy.double() ** 2 + xx.double() ** 2) <= radius ** 2
    return float(energy[..., mask].sum(-1).mean())


# --------------------------------------------------------------------------------------------------
# Signature of a network
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """The non-linearity signature of a network: affinity scores of its activations in forward order.

    Attributes:
        names: one name per activation call: the module path (e.g. ``features.1``) for activation
            modules, ``<module path>/<function>`` (e.g. ``layer1.0/relu``) for functional activations;
            ``#k`` is appended to the k-th call (k >= 2) of the same module or function.
        rho: affinity scores, ``float64`` array in ``[0, 1]``.
        n_samples: inputs used (the same for every layer).
        dims: features ``d`` of each layer (channels for 4-D activations).
        kinds: the activation of each layer (``ReLU``, ``relu``, ``Tanh``, ...).
        meta: free-form settings (architecture, seed, data source, wall time, ...).
    """

    names: tuple[str, ...]
    rho: np.ndarray
    n_samples: int
    dims: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def depth(self) -> np.ndarray:
        """Relative depth of each layer in ``(0, 1]`` (layer ``i`` of ``L`` at ``(i + 1) / L``)."""
        return relative_depth(len(self))

    def __repr__(self) -> str:
        label = self.meta.get("arch", "network")
        rho = np.asarray(self.rho)
        head = (f"Signature({label}: {len(self)} activation layers, n_samples={self.n_samples}, "
                f"rho mean {rho.mean():.3f}, min {rho.min():.3f}, max {rho.max():.3f})" if len(self)
                else f"Signature({label}: no activation layers)")
        rows = [f"  {i:>3} {n:<24} {k:<8} d={d:<5} rho={r:.4f}"
                for i, (n, k, d, r) in enumerate(zip(self.names, self.kinds, self.dims, rho))]
        if len(rows) > 12:
            rows = rows[:6] + [f"  ... ({len(rows) - 10} more)"] + rows[-4:]
        return "\n".join([head, *rows])


def relative_depth(n_layers: int) -> np.ndarray:
    """``(i + 1) / n_layers`` for ``i = 0 .. n_layers - 1``: the x-axis of the signature plots."""
    return np.arange(1, n_layers + 1) / max(n_layers, 1)


class _Recorder(TorchFunctionMode):
    """Collects (input, output) of every activation call of one forward pass, in call order.

    Activation modules are seen through forward pre-hooks (the input is cloned there, so an in-place
    activation cannot overwrite it) and forward hooks; functional activations called directly inside
    other modules are seen through this ``TorchFunctionMode`` (input cloned before the call).  Each
    call is reduced at once to ``B x d`` float64 (mean over height and width for 4-D tensors; 3-D token
    tensors flattened, or averaged over the tokens with ``tokens="mean"``).
    """

    def __init__(self, model: nn.Module, keep=None, tokens: str = "flatten"):
        super().__init__()
        self.keep = keep  # None: every layer; else a set of names
        self.tokens = tokens  # N x T x D activations: "flatten" to T*D features, or "mean" over the T tokens
        self.stack: list[tuple[str, nn.Module]] = []
        self.calls: dict[str, int] = {}
        self.records: dict[str, list] = {}  # name -> [kind, [x batches], [y batches]]
        self.order: list[str] = []
        self.pending: dict[int, list] = {}
        self.handles = []
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave(path)))

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        if t.dim() == 4:
            return t.mean(dim=(2, 3), dtype=torch.float64)  # as affinity_score does: float64 first
        if t.dim() == 3 and self.tokens == "mean":  # N x T x D tokens: their mean, as channels over space
            return t.mean(dim=1, dtype=torch.float64)
        return t.reshape(len(t), -1).to(torch.float64)

    def _name(self, base: str) -> str:
        k = self.calls.get(base, 0) + 1
        self.calls[base] = k
        return base if k == 1 else f"{base}#{k}"

    def _store(self, name: str, kind: str, x: torch.Tensor, y: torch.Tensor) -> None:
        if name not in self.records:
            self.records[name] = [kind, [], []]
            self.order.append(name)
        if self.keep is None or name in self.keep:
            self.records[name][1].append(x)
            self.records[name][2].append(self._reduce(y))

    def _enter(self, path: str):
        def hook(module, args):
            self.stack.append((path, module))
            if isinstance(module, ACTIVATION_MODULES) and args and isinstance(args[0], torch.Tensor):
                # clone before an in-place activation (nn.ReLU(inplace=True)) overwrites its input
                self.pending[id(module)] = self._reduce(args[0].clone())
        return hook

    def _leave(self, path: str):
        def hook(module, args, output):
            self.stack.pop()
            if isinstance(module, ACTIVATION_MODULES) and id(module) in self.pending:
                x = self.pending.pop(id(module))
                self._store(self._name(path or type(module).__name__), type(module).__name__, x, output)
        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fname = _FUNCTIONAL.get(func)
        inside_activation = bool(self.stack) and isinstance(self.stack[-1][1], ACTIVATION_MODULES)
        if fname is None or inside_activation or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        x = self._reduce(args[0].clone())
        out = func(*args, **kwargs)
        path = self.stack[-1][0] if self.stack else ""
        self._store(self._name(f"{path}/{fname}" if path else fname), fname, x, out)
        return out

    def reset_calls(self) -> None:
        self.calls.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def _record(model: nn.Module, inputs: torch.Tensor, batch_size: int, keep=None, progress: bool = False,
            tokens: str = "flatten"):
    rec = _Recorder(model, keep, tokens)
    try:
        with torch.no_grad():
            starts = range(0, len(inputs), batch_size)
            for i in tqdm(starts, desc="forward", unit="batch", disable=not progress or len(starts) < 2,
                          leave=False):
                rec.reset_calls()
                with rec:
                    model(inputs[i:i + batch_size])
    finally:
        rec.remove()
    return rec


def nonlinearity_signature(model: nn.Module, inputs, layers: Sequence[str] | None = None,
                           n_samples: int = 2048, *, batch_size: int = 256, tokens: str = "flatten",
                           run: RunControl | None = None) -> Signature:
    """The affinity score of every activation layer of ``model`` on ``inputs``, in forward order.

    Args:
        model: any ``nn.Module``; it is run in eval mode (BatchNorm uses its running statistics) under
            ``torch.no_grad()``, and its train/eval mode is restored afterwards.
        inputs: a tensor of inputs (first dimension: samples), e.g. ``N x 3 x 32 x 32`` images.
        layers: names of the layers to score (see :attr:`Signature.names`); ``None``: all of them.
        n_samples: number of inputs used, drawn without replacement with ``run.seed`` when ``inputs`` has
            more; all of them when it has fewer.  Must exceed the width ``d`` of every scored layer.
        batch_size: inputs per forward pass.
        tokens: how an ``N x T x D`` activation (tokens of a transformer or MLP-Mixer) becomes features:
            ``"flatten"`` (``T·D`` features, the default) or ``"mean"`` (the ``D`` features averaged over the
            tokens, as convolutional maps are averaged over space).  Recorded in ``meta["tokens"]``.
        run: :class:`nadlib.RunControl`: the seed of that draw, the device (default CUDA when available;
            the model is moved there), a progress bar over layers (default on).

    Activation modules (:data:`ACTIVATION_MODULES`; an in-place ``nn.ReLU(inplace=True)`` is handled:
    its input is cloned in a forward *pre*-hook) and functional activations (``torch.relu``,
    ``F.gelu``, ...) called inside other modules are both recorded.  A probe forward pass on two
    inputs checks the layer names and widths before the real run.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``inputs`` not a tensor, or bad argument types.
        ValueError: too few samples for a layer's width, NaN or identical inputs, unknown layer names, no
            activation layers, or non-positive sizes.  A layer whose inputs are all the same (e.g. dead units
            everywhere before it) scores ``nan`` with a ``RuntimeWarning`` (:func:`affinity_score`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(inputs)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor (or numpy array), got {type(inputs).__name__}")
    run = as_run(run)
    seed, progress = run.seed, run.shows_progress(True)
    if tokens not in ("flatten", "mean"):
        raise ValueError(f"tokens must be 'flatten' or 'mean', got {tokens!r}")
    for name, value in (("n_samples", n_samples), ("batch_size", batch_size)):
        if not is_int(value):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n_samples < 2 or batch_size < 1:
        raise ValueError(f"need n_samples >= 2 and batch_size >= 1, got {n_samples} and {batch_size}")
    if inputs.dim() < 1 or len(inputs) < 2:
        raise ValueError(f"inputs must hold at least 2 samples along dimension 0, got shape {tuple(inputs.shape)}")
    _check_cost_matrix(min(n_samples, len(inputs)), f"n_samples={min(n_samples, len(inputs)):,}",
                       "pass a smaller n_samples")
    if inputs.is_floating_point() and not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values")
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise TypeError("layers must be a sequence of layer names (str), e.g. ['features.1']")
        layers = list(layers)

    device = run.torch_device()
    n = min(n_samples, len(inputs))
    if n < len(inputs):
        idx = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        inputs = inputs[idx]
    if bool((inputs == inputs[:1]).all()):
        raise ValueError(f"all {n} inputs are the same: every layer would see a constant, and an affinity score "
                         "needs inputs that vary (e.g. test images or Gaussian noise)")
    inputs = inputs.to(device)
    was_training = model.training
    model = model.to(device).eval()
    try:
        params = next(model.parameters(), None)
        numeric = inputs.is_floating_point() or inputs.dtype == torch.uint8  # not token ids of an embedding
        if params is not None and numeric and inputs.dtype != params.dtype:
            raise ValueError(f"inputs are {inputs.dtype} but the model's parameters are {params.dtype}: convert "
                             f"them first (e.g. inputs.to({params.dtype}), images scaled to [0, 1] or standardised)")
        try:
            probe = _record(model, inputs[:2], 2, tokens=tokens)
        except RuntimeError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"the model does not accept inputs of shape (N, {', '.join(map(str, inputs.shape[1:]))})"
                             f": {first}") from None
        names = probe.order
        if not names:
            raise ValueError(f"{type(model).__name__} has no activation layers that nadlib can see "
                             "(activation modules or functional activations such as torch.relu)")
        dims = {k: probe.records[k][1][0].shape[1] for k in names}
        if layers is not None:
            unknown = [k for k in layers if k not in dims]
            if unknown:
                raise ValueError(f"unknown layer names {unknown}; this model has {names}")
            names = [k for k in names if k in set(layers)]
        widest = max(names, key=lambda k: dims[k])
        if n <= dims[widest]:
            raise ValueError(f"too few samples for the dimension: layer {widest!r} has {dims[widest]} "
                             f"features but only {n} samples are used; pass n_samples > {dims[widest]} "
                             f"(and inputs with that many samples) or choose fewer layers with layers=")
        start = time.perf_counter()
        rec = _record(model, inputs, batch_size, keep=set(names), progress=progress, tokens=tokens)
        rho = []
        for k in tqdm(names, desc="affinity", unit="layer", disable=not progress, leave=False):
            _, xb, yb = rec.records[k]
            xs, ys = torch.cat(xb), torch.cat(yb)
            rec.records[k] = None  # free memory as we go
            if not (torch.isfinite(xs).all() and torch.isfinite(ys).all()):
                raise ValueError(f"layer {k!r} produced NaN or infinite values")
            rho.append(_affinity(xs, ys))
        wall = time.perf_counter() - start
    finally:
        model.train(was_training)
    kinds = tuple(probe.records[k][0] for k in names)
    return Signature(names=tuple(names), rho=np.asarray(rho, dtype=np.float64), n_samples=n,
                     dims=tuple(int(dims[k]) for k in names), kinds=kinds,
                     meta={"seed": seed, "device": str(device), "wall_time": wall, "tokens": tokens})
