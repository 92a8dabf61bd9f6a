"""Neural Anisotropy Directions (NADs): estimation, stability, save/load and the ``nads`` CLI command.

The NADs of an architecture are the eigenvectors of the covariance of the input gradient of a
scalar-output network over random initialisations θ,

    Σ = E_θ[(∇ₓf_θ(x) − μ)(∇ₓf_θ(x) − μ)ᵀ],     μ = E_θ[∇ₓf_θ(x)],

ordered by decreasing eigenvalue (variance).  Two estimators of the gradient are provided:

``method="secant"``
    The estimator used for the published NADs: central differences with a *large* step ``h``
    (default 100) around one fixed random point ``x`` for every input coordinate ``j``,
    ``g_j = (f(x + h e_j) − f(x − h e_j)) / (2h)``.  With ``h = 100`` this is a secant slope over a
    range far larger than the input scale, not a local derivative.
``method="gradient"``
    The exact local input gradient ``∇ₓf(x)`` by automatic differentiation (the paper's definition);
    orders of magnitude cheaper.  The two give *different* bases (see Chapter 2).

Every network ``i`` is initialised (on the CPU, with PyTorch's default initialisation) from a seed
derived from ``(seed, i)`` only, so the networks do not depend on batching, devices or resuming.
The covariance is accumulated in float64 from streaming sufficient statistics (``Σg`` and ``Σggᵀ``),
kept separately for even and odd network indices: their union gives the estimate, the two halves
give a split-half *stability* measure (subspace overlap of the top-k NADs of each half).

Batch-norm layers are used in evaluation mode (``model.eval()``), as the authors did: at
initialisation the running statistics are the identity (mean 0, variance 1), so BN is a fixed affine
map; in training mode BN on a single input (or on a batch of perturbed copies of one input) would
normalise by statistics of the perturbation itself, which is not a property of the architecture.

Speed: for ``nadlib`` LeNets the secant method uses an exact, locality-exploiting path (the first
convolution + ReLU + max-pool are evaluated only in the small window a pixel can reach, the second
convolution adds a precomputed local response, several networks are batched per step; on the CPU the
networks of a step are split over one thread per torch thread, each running torch single-threaded).  Other
models use a batched plain path (all perturbed copies of one network per forward; on CUDA several networks
per forward, ``vmap`` over stacked parameters, channels-last inputs).  The gradient
method vectorises over networks with ``torch.func`` (``stack_module_state`` + ``vmap(grad)``).
The CUDA path (``device="cuda"``) uses the same code with larger batches; it is untested here (the
project was developed on CPUs only).
"""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import (choice, finite, fits_in_memory, is_int, positive_float, positive_int, seed as _check_seed,
                       unit_interval)
from ..config import get_device, one_torch_thread
from ..control import RunControl, as_run, check_space
from .input_gradients import grad_loop as _grad_loop, grad_vmap as _grad_vmap, secant_batched as _secant_batched
from .input_gradients import secant_plain as _secant_plain
from .lenet_secant import LeNetSecant, lenet_layers
from ..models import describe_model, get_model, model_name
from .stats import NADStatistics, eig_leading as _eig_leading, split_half_stability, subspace_overlap
from ..results import (CHECKPOINT_EVERY_S, array_sha256, Checkpoint, DeadlineReached,
                      interruptible, load_artifact, past, provenance, register_loader, save_artifact)

METHODS = ("secant", "gradient")

#: Most networks one estimate may ask for.
MAX_NETWORKS = 10_000_000

__all__ = ["NADs", "Stability", "estimate_nads", "load_nads", "subspace_overlap", "split_half_stability",
           "network_seed", "METHODS", "MAX_NETWORKS", "NADStatistics", "nad_statistics", "nads_from_statistics",
           "nad_run_settings"]


#: The statistics class under its former private name (tests and old code).
_Stats = NADStatistics

# ----------------------------------------------------------------------------------------------
# small helpers


def network_seed(seed: int, index: int) -> int:
    """The seed of network ``index`` of a run with ``seed``: a 63-bit hash of ``(seed, index)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, int(index)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# ----------------------------------------------------------------------------------------------
# result object


@dataclass(eq=False)
class NADs:
    """Estimated NADs of an architecture.

    Attributes:
        directions: ``k × C × H × W`` float32 tensor, orthonormal rows ordered by decreasing variance.
        eigenvalues: the variances (eigenvalues of the gradient covariance), float64, descending.  All
            ``C·H·W`` of them (the full ``eigh``; ``meta["eigen_path"] == "eigh"``), even when fewer directions
            are kept -- except on the top-m path: when only ``k`` directions are kept of a large input
            (``C·H·W > 1024``, e.g. colour 3 × 32 × 32, see :func:`nadlib.nads.stats.eigen_path`) only the top
            ``m = max(k, largest stability k)`` eigenpairs are computed (Lanczos; ``meta["eigen_path"] ==
            "eigsh"``, ``meta["eigen_m"] == m``) and ``eigenvalues`` holds those ``m`` values, with the total
            variance in ``total_variance``.
        total_variance: the sum of ALL ``C·H·W`` eigenvalues (the trace of the covariance) when
            ``eigenvalues`` holds only the top ``m`` of them; None when ``eigenvalues`` is the whole spectrum
            (its sum is then the total).  :meth:`variance_fractions` uses whichever applies.
        n_networks: number of random networks used.
        method: ``"secant"`` or ``"gradient"``.
        stability: split-half overlap ``{k: overlap}`` of the top-k NADs (even vs odd networks).
        meta: provenance and settings (architecture, seed, step, eval point seed, wall time, ...).
        eval_point: the input ``x`` at which gradients were taken (``C × H × W``).
    """

    directions: torch.Tensor
    eigenvalues: torch.Tensor
    n_networks: int
    method: str
    stability: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    eval_point: torch.Tensor | None = None
    total_variance: float | None = None

    def variance_fractions(self) -> torch.Tensor:
        """The fraction of the total gradient variance along each NAD held in :attr:`eigenvalues`
        (``eigenvalues / total``, the total being :attr:`total_variance` if set, else the sum of the
        eigenvalues): exact on both eigen paths."""
        total = float(self.eigenvalues.sum()) if self.total_variance is None else float(self.total_variance)
        if not total > 0:
            raise ValueError(f"the total variance is {total!r}: no fractions of it")
        return self.eigenvalues.to(torch.float64) / total

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.directions.shape[1:])

    def __len__(self) -> int:
        return self.directions.shape[0]

    def __getitem__(self, i) -> torch.Tensor:
        """NAD number ``i`` (``C × H × W``)."""
        return self.directions[i]

    def __eq__(self, other) -> bool:
        """Equal: the same directions, eigenvalues, eval point, total variance (exactly), counts, method and
        stability; the provenance (``meta``: dates, wall times) is not compared."""
        if not isinstance(other, NADs):
            return NotImplemented
        same = lambda a, b: (a is None and b is None) or (  # noqa: E731
            a is not None and b is not None and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()))
        return (self.n_networks == other.n_networks and self.method == other.method
                and self.stability == other.stability and self.total_variance == other.total_variance
                and same(self.directions, other.directions)
                and same(self.eigenvalues, other.eigenvalues) and same(self.eval_point, other.eval_point))

    __hash__ = None  # mutable, like any dataclass with eq

    def overlap(self, other, k: int) -> float:
        """:func:`subspace_overlap` of the top-``k`` NADs with another :class:`NADs` or array of rows."""
        other = other.directions if isinstance(other, NADs) else other
        return subspace_overlap(self.directions, other, k)

    def save(self, path, k: int | None = None) -> Path:
        """Write to ``path`` (.npz, no pickle); ``k`` keeps only the top-k directions (all by default)."""
        if k is not None and (not is_int(k) or not 1 <= k <= len(self)):
            raise ValueError(f"k must be an int in [1, {len(self)}] (the directions held) or None, got {k!r}")
        d = self.directions if k is None else self.directions[:k]
        arrays = {"directions": d.to(torch.float32).numpy(),
                  "eigenvalues": self.eigenvalues.to(torch.float64).numpy(),
                  "stability_k": np.array(sorted(self.stability), dtype=np.int64),
                  "stability": np.array([self.stability[k_] for k_ in sorted(self.stability)], dtype=np.float64)}
        if self.eval_point is not None:
            arrays["eval_point"] = self.eval_point.to(torch.float32).numpy()
        if self.total_variance is not None:  # only the top-m eigenvalues are held
            arrays["total_variance"] = np.array(float(self.total_variance), dtype=np.float64)
        meta = dict(self.meta, n_networks=int(self.n_networks), method=self.method)
        return save_artifact(path, arrays, meta)

    @classmethod
    def load(cls, path) -> "NADs":
        """Same as :func:`load_nads`."""
        return load_nads(path)

    def __repr__(self) -> str:
        stab = ", ".join(f"top-{k}: {v:.3f}" for k, v in sorted(self.stability.items()))
        return (f"NADs(method={self.method!r}, n_networks={self.n_networks}, directions={tuple(self.directions.shape)}, "
                f"arch={self.meta.get('arch')!r}, split-half stability: {stab or 'n/a'})")


def load_nads(path) -> NADs:
    """Read NADs written by :meth:`NADs.save` (or by ``python -m nadlib nads``)."""
    arrays, meta = load_artifact(path)
    for key in ("directions", "eigenvalues"):
        if key not in arrays:
            raise ValueError(f"{str(path)!r} is not a NAD artifact (missing {key!r})")
    if arrays["directions"].ndim != 4 or arrays["eigenvalues"].ndim != 1:
        raise ValueError(f"{str(path)!r} is not a NAD artifact: directions must be k x C x H x W and eigenvalues "
                         f"1-D, got shapes {arrays['directions'].shape} and {arrays['eigenvalues'].shape}")
    stab = {int(k): float(v) for k, v in zip(arrays.get("stability_k", []), arrays.get("stability", []))}
    ep = arrays.get("eval_point")
    total = arrays.get("total_variance")
    if total is not None and (total.shape != () or not np.isfinite(total) or total < 0):
        raise ValueError(f"{str(path)!r} is not a NAD artifact: total_variance must be one finite number >= 0, "
                         f"got {total!r}")
    return NADs(directions=torch.from_numpy(arrays["directions"]).to(torch.float32),
                eigenvalues=torch.from_numpy(arrays["eigenvalues"]).to(torch.float64),
                n_networks=int(meta.get("n_networks", 0)), method=str(meta.get("method", "")),
                stability=stab, meta=meta, eval_point=None if ep is None else torch.from_numpy(ep),
                total_variance=None if total is None else float(total))


register_loader("nads", load_nads)  # nadlib.results.load of the catalogue's NAD entries


# ----------------------------------------------------------------------------------------------
# model handling


def _model_factory(model, input_shape) -> tuple[Callable[[], nn.Module], str]:
    if isinstance(model, str):
        get_model(model, in_channels=input_shape[0], num_classes=1)  # validates the name early
        return (lambda: get_model(model, in_channels=input_shape[0], num_classes=1)), model.lower()
    if isinstance(model, nn.Module):
        raise TypeError("model must be an architecture name or a zero-argument callable returning a fresh "
                        "nn.Module (e.g. `lambda: MyNet()`), not a module instance: NADs average over "
                        "random initialisations")
    if not callable(model):
        raise TypeError(f"model must be an architecture name (str) or a zero-argument callable, "
                        f"got {type(model).__name__}")
    return model, model_name(model)


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(isinstance(s, bool) for s in input_shape):
        raise ValueError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    d = math.prod(shape)  # float64 statistics: two d x d sums, the covariance and the eigendecomposition's work
    fits_in_memory(4 * 8 * d * d, f"the {d:,} x {d:,} gradient statistics of input_shape={shape}",
                   "estimate NADs of a smaller input (NADs are directions in input space: d = C x H x W)")
    return shape


def _build(factory, index: int, seed: int) -> nn.Module:
    torch.manual_seed(network_seed(seed, index))
    net = factory()
    if not isinstance(net, nn.Module):
        raise TypeError(f"the model callable must return an nn.Module, got {type(net).__name__}")
    return net.eval()


def _check_model(net: nn.Module, x: torch.Tensor) -> None:
    try:
        with torch.inference_mode():
            out = net(x[None])
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"the model does not accept inputs of shape (1, {', '.join(map(str, x.shape))}) "
                         f"(input_shape={tuple(x.shape)}): {err}") from None
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"NADs need a model with ONE scalar output per input, got output shape {shape}; "
                         "build it with num_classes=1")


# ----------------------------------------------------------------------------------------------
# main entry point


def _default_batch(method: str, fast_lenet: bool, n_params: int, device: torch.device) -> int:
    gpu = device.type == "cuda"
    if method == "gradient":  # stacked parameters of one batch: ~50M numbers on a CPU, ~1G on a GPU
        return max(1, min(1024 if gpu else 128, int((1e9 if gpu else 5e7) // max(n_params, 1))))
    if fast_lenet:  # on the CPU: 8 networks per thread on 2 cores (_on_threads)
        return 64 if gpu else 16
    return 4 if gpu else 1


@dataclass(frozen=True)
class _Request:
    """The validated arguments of one :func:`estimate_nads` call."""

    n_networks: int
    method: str
    input_shape: tuple[int, int, int]
    k: int | None
    seed: int
    step: float
    batch_size: int | None
    stop_at_stability: float | None
    stability_k: int
    check_every: int | None
    stability_ks: tuple[int, ...]
    checkpoint_every: float

    @property
    def dim(self) -> int:
        return int(np.prod(self.input_shape))


def _validate(n_networks, method, input_shape, k, seed, step, batch_size, stability: "Stability | None",
              checkpoint_every) -> _Request:
    choice(method, "method", METHODS)
    if not is_int(n_networks) or n_networks < 2:
        raise ValueError(f"n_networks must be an int >= 2 (a covariance needs two samples), got {n_networks!r}")
    if n_networks > MAX_NETWORKS:
        raise ValueError(f"n_networks must be at most {MAX_NETWORKS:,}, got {n_networks:,}")
    input_shape = _check_input_shape(input_shape)
    dim = int(np.prod(input_shape))
    if k is not None and (not is_int(k) or not 1 <= k <= dim):
        raise ValueError(f"k must be an int in [1, {dim}] (the input dimension) or None, got {k!r}")
    if batch_size is not None:
        positive_int(batch_size, "batch_size", maximum=1_000_000)
    stab = Stability() if stability is None else stability
    if not isinstance(stab, Stability):
        raise TypeError(f"stability must be a nadlib.Stability or None, got {type(stab).__name__}: {stab!r}")
    if stab.stop_at is not None and stab.k > dim:
        raise ValueError(f"Stability.k={stab.k} exceeds the input dimension {dim}: early stopping could never "
                         "trigger")
    return _Request(int(n_networks), method, input_shape, None if k is None else int(k), _check_seed(seed),
                    positive_float(step, "step", maximum=1e12), batch_size, stab.stop_at, stab.k,
                    stab.check_every, stab.ks, positive_float(checkpoint_every, "checkpoint_every"))


@dataclass(frozen=True)
class Stability:
    """The split-half stability of an estimate: which ``k`` it reports, and whether it stops early.

    Attributes:
        ks: the ``k`` values reported in :attr:`NADs.stability` (overlap of the top-``k`` subspaces of two
            halves of the networks).
        stop_at: stop early once the top-``k`` overlap reaches this value (None: never stop early).
        k: the ``k`` of the early-stopping check.
        check_every: networks between two checks (default ``max(64, n_networks // 20)``).
    """

    ks: tuple[int, ...] = (1, 5, 10, 50)
    stop_at: float | None = None
    k: int = 10
    check_every: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "ks", tuple(positive_int(k_, "Stability.ks entry") for k_ in self.ks))
        if self.stop_at is not None:
            object.__setattr__(self, "stop_at", unit_interval(self.stop_at, "Stability.stop_at"))
        object.__setattr__(self, "k", positive_int(self.k, "Stability.k"))
        if self.check_every is not None:
            positive_int(self.check_every, "Stability.check_every")


def _eval_point(eval_point, input_shape, seed) -> torch.Tensor:
    """The input at which gradients are taken (CPU float32): ``randn(input_shape)`` seeded by ``seed``."""
    if eval_point is None:
        return torch.randn(input_shape, generator=torch.Generator().manual_seed(seed))
    x = torch.as_tensor(eval_point, dtype=torch.float32).detach().cpu()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if tuple(x.shape) != input_shape:
        raise ValueError(f"eval_point must have shape {input_shape} (input_shape), got {tuple(x.shape)}")
    return finite(x, "eval_point")


def estimate_nads(model, n_networks: int, method: str = "secant", input_shape=(1, 32, 32), k: int | None = None,
                  eval_point=None, step: float = 100.0, batch_size: int | None = None, *,
                  stability: Stability | None = None, run: RunControl | None = None) -> NADs:
    """Estimate the NADs of an architecture from ``n_networks`` random initialisations.

    Args:
        model: an architecture name of :data:`nadlib.ARCHITECTURES` (built with
            ``get_model(name, in_channels=input_shape[0], num_classes=1)``) or a zero-argument callable
            returning a freshly initialised ``nn.Module`` with ONE output.
        n_networks: number of random networks (at least 2); an upper bound when ``stability`` stops early.
        method: ``"secant"`` (central differences with step ``step``, the authors' estimator) or
            ``"gradient"`` (autograd input gradients).
        input_shape: ``(C, H, W)`` of one input.
        k: number of directions to keep (default: all ``C·H·W``).  For large inputs (``C·H·W > 1024``) a
            ``k`` lets only the top ``max(k, largest stability k)`` eigenpairs be computed when that is at
            most 64 (Lanczos, 2-3× faster at 3 × 32 × 32; see :func:`nads_from_statistics`): ``eigenvalues``
            then holds only those and ``total_variance`` the total.
        eval_point: the input ``x`` at which gradients are taken (``C × H × W``).
        step: the secant step ``h`` (ignored by ``method="gradient"``).
        batch_size: networks processed per step (default: chosen by method, model and device).  On the CPU
            the result is deterministic for fixed ``(seed, batch_size)`` and torch thread count; other batch sizes
            and thread counts agree to float rounding.
        stability: the split-half stability reported and early stopping (:class:`Stability`; default:
            report ``k`` = 1, 5, 10, 50, never stop early).
        run: :class:`nadlib.RunControl`.  ``run.seed``: network ``i`` is initialised from
            :func:`network_seed` ``(seed, i)``; the evaluation point is ``randn(input_shape)`` from a
            generator seeded with ``seed`` unless ``eval_point`` is given.  ``run.device``: default CUDA if
            available.  ``run.progress``: a ``tqdm`` bar (default on).  ``run.checkpoint``: statistics are
            saved there every ``run.checkpoint_every`` seconds, on an interruption and at the end, and an
            existing checkpoint with the same settings is resumed (identical result).  ``run.deadline``: the
            estimate stops after the current batch of networks, saves the checkpoint and raises
            :class:`nadlib.results.DeadlineReached` (calling again continues).  ``run.tf32``: allow TF32 on
            CUDA (faster, ~1e-3 relative error; off by default).  ``run.precision="bf16"`` (secant only):
            the gradients under BF16 autocast, allowed only behind an accuracy guard: before the estimate,
            the first :data:`GUARD_NETWORKS` networks are evaluated in float32 and in BF16, and unless the
            top-:data:`GUARD_K` NAD subspaces of the two overlap by at least :data:`GUARD_MIN_OVERLAP` the
            call raises ``ValueError``; the overlap is recorded in ``meta`` (``precision_guard``).

    The global torch RNG is left as it was.

    Returns:
        :class:`NADs`.

    Raises:
        ValueError: bad sizes/shapes, a model with more than one output, non-finite gradients (the message
            names the network index and seed), too little free disk for the checkpoint (twice the float64
            statistics, before any work).
        TypeError: ``model`` is neither a name nor a callable.
        RuntimeError: CUDA requested but not available.
    """
    t0 = time.perf_counter()
    run = as_run(run)
    req = _validate(n_networks, method, input_shape, k, run.seed, step, batch_size, stability, run.checkpoint_every)
    device, checkpoint, progress, tf32 = run.torch_device(), run.checkpoint, run.shows_progress(True), run.tf32
    if checkpoint is not None:  # the checkpoint and its temporary copy while it is rewritten
        check_space(checkpoint, 2 * NADStatistics.nbytes(math.prod(req.input_shape)), "the checkpoint")
    bf16 = run.precision == "bf16"
    if bf16 and req.method != "secant":
        raise ValueError("precision='bf16' is offered for method='secant' only (the gradient method is cheap in "
                         "float32)")
    x_cpu = _eval_point(eval_point, req.input_shape, req.seed)
    guard = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        setup = _Setup(model, req, device, x_cpu)
        if bf16:
            setup.settings["precision"] = "bf16"  # a float32 checkpoint is not continued in BF16
        work = setup.run()
        if bf16:
            with _tf32(device, tf32):
                guard = precision_guard(work)
            if not guard["passed"]:
                raise ValueError(f"precision='bf16' refused by its accuracy guard: the top-{GUARD_K} NADs of "
                                 f"networks 0..{guard['networks'] - 1} in BF16 overlap the float32 ones by "
                                 f"{guard['overlap']:.4f} < {GUARD_MIN_OVERLAP}; use precision='fp32'")
        ckpt = Checkpoint(checkpoint, setup.settings) if checkpoint is not None else None
        if ckpt is not None and ckpt.resumed:
            work.resume(ckpt.arrays)
        start = work.next_index
        t_grad = time.perf_counter()
        with _tf32(device, tf32), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            work.execute(ckpt, progress, deadline=run.deadline)
        t_grad = time.perf_counter() - t_grad
    meta = provenance(device=device, arch=setup.arch_name, method=req.method, seed=req.seed,
                      input_shape=list(req.input_shape), step=setup.settings["step"], batch_size=setup.batch,
                      path=setup.path, eval_point="randn(input_shape) from torch.Generator().manual_seed(seed)"
                      if eval_point is None else "given", stopped_early=work.stopped,
                      requested_networks=req.n_networks, wall_time_s=round(time.perf_counter() - t0, 3),
                      gradient_time_s=round(t_grad, 3), resumed=start > 0, resumed_from=start, bn_mode="eval",
                      precision=("bf16 autocast" if bf16 else "tf32" if tf32 and device.type == "cuda"
                                 else "float32"),
                      model=setup.settings.get("model", setup.arch_name))
    if guard is not None:
        meta["precision_guard"] = guard
    if ckpt is not None:
        work.save(ckpt)
    return nads_from_statistics(work.stats, req.input_shape, req.method, k=req.k, stability_ks=req.stability_ks,
                                meta=meta, eval_point=x_cpu)


def nads_from_statistics(stats: NADStatistics, input_shape, method: str, *, k: int | None = None,
                         stability_ks=(1, 5, 10, 50), meta: dict | None = None, eval_point=None) -> NADs:
    """The :class:`NADs` of gradient statistics (e.g. merged chunks of :func:`nad_statistics`): eigenvectors
    of the covariance, sorted by decreasing variance, and the split-half stability.

    With ``k`` (keep the top ``k`` directions) and a large dimension only the top
    ``m = max(k, largest stability k <= dim)`` eigenpairs are computed, by Lanczos, when
    :func:`nadlib.nads.stats.eigen_path` says it pays (``dim > 1024``, ``m <= 64``, at least ``m + 1``
    networks): ``eigenvalues`` then holds those ``m`` and ``total_variance`` the trace of the covariance.
    Otherwise (``k`` None, ``dim <= 1024``, e.g. 1 × 32 × 32) the full ``eigh`` gives every eigenvalue, as
    before.  ``meta["eigen_path"]`` (``"eigh"`` or ``"eigsh"``) and ``meta["eigen_m"]`` (eigenpairs computed)
    record which."""
    if not isinstance(stats, NADStatistics):
        raise TypeError(f"stats must be NADStatistics, got {type(stats).__name__}")
    shape = _check_input_shape(input_shape)
    if int(np.prod(shape)) != stats.dim:
        raise ValueError(f"input_shape {shape} does not match statistics of dimension {stats.dim}")
    choice(method, "method", METHODS)
    if k is not None and (not is_int(k) or not 1 <= k <= stats.dim):
        raise ValueError(f"k must be an int in [1, {stats.dim}] (the input dimension) or None, got {k!r}")
    ks = tuple(positive_int(k_, "stability_ks entry") for k_ in stability_ks)
    keep = stats.dim if k is None else int(k)
    m = None if k is None else max([keep] + [k_ for k_ in ks if k_ <= stats.dim])
    cov = stats.covariance()
    vals, vecs, path = _eig_leading(cov, m, stats.n_networks)
    total = float(cov.diagonal().sum().clamp_min(0)) if path == "eigsh" else None
    info = {"method": method, "input_shape": list(shape), "n_networks": stats.n_networks, "k": keep,
            "source": "nads_from_statistics"}
    return NADs(directions=vecs[:keep].to(torch.float32).reshape(keep, *shape), eigenvalues=vals,
                n_networks=stats.n_networks, method=method, stability=split_half_stability(stats, ks),
                meta={**info, **(meta or {}), "eigen_path": path, "eigen_m": len(vals)}, eval_point=eval_point,
                total_variance=total)


def nad_statistics(model, start: int, stop: int, method: str = "secant", input_shape=(1, 32, 32), eval_point=None,
                   step: float = 100.0, batch_size: int | None = None, *,
                   run: RunControl | None = None) -> NADStatistics:
    """Gradient statistics of networks ``start, ..., stop - 1`` of the estimate :func:`estimate_nads` makes with
    the same arguments -- one chunk of it.  Network ``i`` depends only on ``(seed, i)``, so chunks computed
    anywhere and merged with :meth:`NADStatistics.merge` give the statistics of the whole estimate; with
    chunk bounds that are multiples of the batch size (:func:`nad_run_settings`) every network sees the
    same batches, and only the float64 summation order differs (eigenvalues agree to ~1e-12 relative).
    ``run`` (:class:`nadlib.RunControl`) gives the seed, device, progress bar (default off) and TF32 switch;
    a chunk has no checkpoint or deadline of its own."""
    run = as_run(run)
    run.require_fp32("nad_statistics")
    if not is_int(start) or not is_int(stop) or not 0 <= start < stop <= MAX_NETWORKS:
        raise ValueError(f"need ints 0 <= start < stop <= {MAX_NETWORKS:,}, got start={start!r}, stop={stop!r}")
    req = _validate(max(int(stop), 2), method, input_shape, None, run.seed, step, batch_size, Stability(ks=(1,)),
                    run.checkpoint_every)
    device = run.torch_device()
    x_cpu = _eval_point(eval_point, req.input_shape, req.seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _tf32(device, run.tf32):
        work = _Setup(model, req, device, x_cpu).run()
        work.next_index = int(start)
        work.execute(None, run.shows_progress(False), end=int(stop))
    return work.stats


def nad_run_settings(model, method: str = "secant", input_shape=(1, 32, 32), seed: int = 0, device=None,
                     eval_point=None, step: float = 100.0, batch_size: int | None = None) -> dict:
    """The settings that identify an estimate (what its checkpoint records), including the batch size the
    estimate uses (chunks of :func:`nad_statistics` should start at multiples of it)."""
    req = _validate(2, method, input_shape, None, seed, step, batch_size, Stability(ks=(1,)), CHECKPOINT_EVERY_S)
    device = get_device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return dict(_Setup(model, req, device, _eval_point(eval_point, req.input_shape, req.seed)).settings)


#: The BF16 accuracy guard of :func:`estimate_nads`: networks compared, subspace size, least overlap.
GUARD_NETWORKS, GUARD_K, GUARD_MIN_OVERLAP = 32, 10, 0.99


def _top_directions(g: torch.Tensor, k: int) -> torch.Tensor:
    g = g.double().cpu()
    return torch.linalg.svd(g - g.mean(0), full_matrices=False).Vh[:k]


def precision_guard(work: "_Run", n: int | None = None) -> dict:
    """The BF16 guard: input gradients of networks ``0 .. n - 1`` of an estimate in float32 and under BF16
    autocast, by the estimate's own path and batch size; the top-:data:`GUARD_K` eigenvectors of the
    covariance of each set (the NADs of these networks) and the overlap of the two subspaces
    (:func:`subspace_overlap`; ``n`` defaults to :data:`GUARD_NETWORKS`).  Returns ``{"networks", "k",
    "overlap", "min_overlap", "passed"}``."""
    device, n = work.device, GUARD_NETWORKS if n is None else n

    def gradients() -> torch.Tensor:
        rows = []
        for i in range(0, n, work.batch_size):
            rows.append(work.gradients(work.maker(range(i, min(i + work.batch_size, n)))).float())
        return torch.cat(rows)
    with torch.inference_mode():
        g32 = gradients()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            g16 = gradients()
    if not torch.isfinite(g16).all():
        return {"networks": n, "k": GUARD_K, "overlap": 0.0, "min_overlap": GUARD_MIN_OVERLAP, "passed": False}
    overlap = subspace_overlap(_top_directions(g32, GUARD_K), _top_directions(g16, GUARD_K), GUARD_K)
    return {"networks": n, "k": GUARD_K, "overlap": round(float(overlap), 6), "min_overlap": GUARD_MIN_OVERLAP,
            "passed": bool(overlap >= GUARD_MIN_OVERLAP)}


@contextmanager
def _tf32(device: torch.device, allow: bool):
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(allow)
    try:
        yield
    finally:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


class _Setup:
    """What every estimate starts with (inside ``fork_rng``): the network factory, the first network checked,
    the gradient path and batch size, and the settings a checkpoint records."""

    def __init__(self, model, req: _Request, device: torch.device, x_cpu: torch.Tensor):
        self.req, self.device, self.x = req, device, x_cpu.to(device)
        self.factory, self.arch_name = _model_factory(model, req.input_shape)
        first = _build(self.factory, 0, req.seed).to(device)
        _check_model(first, self.x)
        self.fast = _fast_lenet(first, req) if req.method == "secant" else None
        n_params = sum(p.numel() for p in first.parameters())
        self.batch = int(req.batch_size or _default_batch(req.method, self.fast is not None, n_params, device))
        self.path = "lenet-windowed" if self.fast is not None else ("vmap" if req.method == "gradient" else "batched")
        self.settings = {"arch": self.arch_name, "method": req.method, "input_shape": list(req.input_shape),
                         "seed": req.seed, "step": req.step if req.method == "secant" else None,
                         "eval_point_sha256": array_sha256(x_cpu.numpy()), "device_type": device.type, "batch_size": self.batch,
                         "path": self.path}
        if not isinstance(model, str):  # a user's model: keyed on what it is, not on its name
            self.settings["model"] = describe_model(model, req.input_shape)

    def run(self) -> "_Run":
        return _Run(self.factory, self.req, self.device, self.x, self.fast, self.batch, self.arch_name)


def _fast_lenet(net: nn.Module, req: _Request) -> LeNetSecant | None:
    """The windowed LeNet secant path when ``net`` is a pooling nadlib LeNet it can handle, else None."""
    layers = lenet_layers(net)
    if layers is None:
        return None
    try:
        return LeNetSecant(layers[0], layers[1], req.input_shape, next(net.parameters()).device)
    except ValueError:
        return None


def _on_threads(fn, nets: list[nn.Module], *args) -> torch.Tensor:
    """``fn(nets, *args)`` (rows, one per network) computed by one Python thread per torch thread on consecutive
    groups of ``nets``, torch single-threaded in each, rows concatenated in the networks' order.

    For paths made of many small tensor operations (the windowed LeNet secant: ~1,000 per call), this is
    ~1.5x the throughput of torch's intra-op threads on 2 cores, whose barrier after every operation also
    makes them stall when another process takes a core.  Each group is the same computation as on its own, so
    a network's row does not depend on which thread ran it (inference mode, as the secant loop, and the
    caller's autocast, e.g. BF16: both are thread-local, so each thread enters them again).
    """
    workers = min(len(nets), torch.get_num_threads())
    if workers <= 1:
        return fn(nets, *args)
    bounds = [len(nets) * i // workers for i in range(workers + 1)]
    casts = [(dev, torch.get_autocast_dtype(dev)) for dev in ("cpu", "cuda") if torch.is_autocast_enabled(dev)]

    def group(k: int) -> torch.Tensor:
        with ExitStack() as scope:
            scope.enter_context(torch.inference_mode())
            for dev, dtype in casts:
                scope.enter_context(torch.autocast(dev, dtype=dtype))
            return fn(nets[bounds[k]:bounds[k + 1]], *args)

    with one_torch_thread(), ThreadPoolExecutor(workers, thread_name_prefix="nadlib-secant") as pool:
        return torch.cat(list(pool.map(group, range(workers))))


class _NetworkMaker:
    """Networks ``j`` seeded with ``network_seed(seed, j)``.  Building a module is slow in Python, so when
    re-initialising a pool of modules in place (``reset_parameters()`` of every submodule, in registration
    order, under the same seed) gives exactly the parameters and buffers of a freshly built network (checked
    on network 0), the pool is reused; otherwise every network is built by ``factory``."""

    def __init__(self, factory, seed, device, pool_size):
        self.factory, self.seed, self.device = factory, seed, device
        fresh = _build(factory, 0, seed)
        pool0 = _build(factory, 0, seed + 1)
        self._reinit(pool0, 0)
        a, b = fresh.state_dict(), pool0.state_dict()
        self.reuse = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        self.pool = [pool0.to(device)] + [factory().eval().to(device) for _ in range(pool_size - 1)] \
            if self.reuse else []

    def _reinit(self, net, j):
        torch.manual_seed(network_seed(self.seed, j))
        with torch.no_grad():
            for m in net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()

    def __call__(self, indices) -> list[nn.Module]:
        if not self.reuse:
            return [_build(self.factory, j, self.seed).to(self.device) for j in indices]
        nets = self.pool[:len(indices)]
        for net, j in zip(nets, indices):
            if self.device.type == "cpu":
                self._reinit(net, j)
            else:  # initialise on the CPU (same numbers on every device), then copy
                cpu = _build(self.factory, j, self.seed)
                net.load_state_dict(cpu.state_dict())
        return nets


class _Run:
    """The loop over networks of one estimate: gradients of batches of networks into streaming statistics,
    with checkpoints, early stopping on split-half stability, and a clean stop on an interruption."""

    def __init__(self, factory, req: _Request, device, x, fast, batch_size: int, arch_name: str):
        self.req, self.device, self.x, self.fast, self.batch_size = req, device, x, fast, batch_size
        self.arch_name = arch_name
        self.stats = NADStatistics(req.dim)
        self.next_index = 0
        self.stopped = False
        self.use_vmap = True
        self.chunk = 2048 if device.type == "cuda" else 256
        self.maker = _NetworkMaker(factory, req.seed, device, batch_size)

    def resume(self, arrays: dict) -> None:
        n = int(arrays["next_index"])
        if n > self.req.n_networks:
            raise ValueError(f"the checkpoint already holds {n:,} networks but n_networks={self.req.n_networks:,}; "
                             f"ask for at least {n:,} or delete the checkpoint")
        self.stats = NADStatistics.from_arrays(arrays)
        if int(self.stats.count.sum()) != n:
            raise ValueError(f"the checkpoint is inconsistent: it claims {n:,} networks but its statistics hold "
                             f"{int(self.stats.count.sum()):,}; delete it and start again")
        self.next_index = n

    def save(self, ckpt: Checkpoint) -> None:
        ckpt.save(**self.stats.arrays(), next_index=np.array(self.next_index))

    def gradients(self, nets: list[nn.Module]) -> torch.Tensor:
        """Input gradients (secant or autograd) of a batch of networks, one row each."""
        if self.req.method == "secant":
            if self.fast is not None:
                if self.device.type == "cpu":
                    return _on_threads(self.fast, nets, self.x, self.req.step)
                return self.fast(nets, self.x, self.req.step)
            if len(nets) > 1 and self.use_vmap and self.device.type == "cuda":  # vmap is slower on CPUs
                try:
                    return _secant_batched(nets, self.x, self.req.step, max(1, self.chunk // len(nets)))
                except Exception as err:  # some custom modules do not vmap: fall back, once
                    warnings.warn(f"batched secant over networks failed ({type(err).__name__}: {err}); "
                                  "using a loop over networks", RuntimeWarning)
                    self.use_vmap = False
            return torch.stack([_secant_plain(n, self.x, self.req.step, self.chunk) for n in nets])
        for n in nets:
            n.requires_grad_(False)
        if self.use_vmap:
            try:
                return _grad_vmap(nets, self.x)
            except Exception as err:  # some custom modules do not vmap: fall back, once
                warnings.warn(f"vmap over networks failed ({type(err).__name__}: {err}); "
                              "using a loop over networks", RuntimeWarning)
                self.use_vmap = False
        return _grad_loop(nets, self.x)

    def _add(self, g: torch.Tensor, i: int) -> None:
        g = g.reshape(len(g), -1)
        bad = ~torch.isfinite(g).all(dim=1)
        if bad.any():
            j = i + int(bad.nonzero()[0])
            raise ValueError(f"non-finite input gradient for network {j} (initialised with "
                             f"torch.manual_seed({network_seed(self.req.seed, j)}), i.e. "
                             f"network_seed({self.req.seed}, {j}))")
        self.stats.add(g, i)

    def execute(self, ckpt: Checkpoint | None, progress: bool, *, end: int | None = None,
                deadline: float | None = None) -> None:
        """Networks ``next_index, ..., end - 1`` (default ``n_networks``); stops after the current batch once
        ``deadline`` passed (checkpoint saved, :class:`DeadlineReached` raised)."""
        req = self.req
        end = req.n_networks if end is None else end
        check_every = req.check_every or max(64, req.n_networks // 20)
        last_save, next_check = time.perf_counter(), self.next_index + check_every
        bar = tqdm(total=end, initial=self.next_index, disable=not progress, unit="net",
                   desc=f"NADs {self.arch_name} ({req.method})")
        try:
            with torch.inference_mode(req.method == "secant"), interruptible():
                while self.next_index < end:
                    i = self.next_index
                    b = min(self.batch_size, end - i)
                    self._add(self.gradients(self.maker(range(i, i + b))), i)
                    self.next_index = i + b
                    bar.update(b)
                    if ckpt is not None and time.perf_counter() - last_save >= req.checkpoint_every:
                        self.save(ckpt)
                        last_save = time.perf_counter()
                    if req.stop_at_stability is not None and next_check <= self.next_index < end:
                        next_check = self.next_index + check_every
                        stab = split_half_stability(self.stats, (req.stability_k,)).get(req.stability_k, 0.0)
                        bar.set_postfix(stability=f"{stab:.3f}")
                        if stab >= req.stop_at_stability:
                            self.stopped = True
                            break
                    if self.next_index < end and past(deadline):
                        if ckpt is not None:
                            self.save(ckpt)
                        raise DeadlineReached(f"NADs {self.arch_name}: networks", self.next_index, end,
                                              None if ckpt is None else ckpt.path)
        except KeyboardInterrupt:
            if ckpt is not None:
                self.save(ckpt)
            raise
        finally:
            bar.close()
