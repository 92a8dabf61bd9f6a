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
convolution adds a precomputed local response, several networks are batched per step).  Other
models use a batched plain path (all perturbed copies of one network per forward).  The gradient
method vectorises over networks with ``torch.func`` (``stack_module_state`` + ``vmap(grad)``).
The CUDA path (``device="cuda"``) uses the same code with larger batches; it is untested here (the
project was developed on CPUs only).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import get_device
from .results import Checkpoint, load_artifact, provenance, save_artifact

METHODS = ("secant", "gradient")

__all__ = ["NADs", "estimate_nads", "load_nads", "subspace_overlap", "split_half_stability",
           "network_seed", "nad_trainability", "METHODS"]


# ----------------------------------------------------------------------------------------------
# small helpers


def network_seed(seed: int, index: int) -> int:
    """The seed of network ``index`` of a run with ``seed``: a 63-bit hash of ``(seed, index)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, int(index)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _as_rows(a, k: int | None, name: str) -> torch.Tensor:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach()
    a = a.to(torch.float64).cpu()
    if a.dim() < 2:
        raise ValueError(f"{name} must hold one direction per row (2-D or more), got shape {tuple(a.shape)}")
    a = a.reshape(a.shape[0], -1)
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if k > a.shape[0]:
            raise ValueError(f"k={k} but {name} has only {a.shape[0]} rows")
        a = a[:k]
    return a


def subspace_overlap(A, B, k: int | None = None) -> float:
    """Overlap of the subspaces spanned by the first ``k`` rows of ``A`` and of ``B``.

    Rows are directions (any trailing shape is flattened) and must be orthonormal.  The overlap is
    the mean of the squared singular values of ``A_k B_kᵀ`` (the squared cosines of the principal
    angles): 1 for the same subspace, ``k/d`` on average for random ``k``-dim subspaces of ``R^d``.
    """
    a, b = _as_rows(A, k, "A"), _as_rows(B, k, "B")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B live in different dimensions ({a.shape[1]} vs {b.shape[1]})")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"A and B have different numbers of rows ({a.shape[0]} vs {b.shape[0]}); pass k")
    s = torch.linalg.svdvals(a @ b.T)
    return float((s ** 2).mean())


def _eig_desc(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors as rows, with a deterministic sign
    (the entry of largest magnitude is positive)."""
    threads = torch.get_num_threads()
    try:  # multi-threaded LAPACK eigh is much slower on small, busy CPUs; one thread is ~0.4 s for d=1024
        if cov.device.type == "cpu":
            torch.set_num_threads(1)
        vals, vecs = torch.linalg.eigh(cov)
    finally:
        torch.set_num_threads(threads)
    vals, vecs = vals.flip(0), vecs.flip(1).T.contiguous()
    idx = vecs.abs().argmax(dim=1)
    signs = torch.sign(vecs[torch.arange(vecs.shape[0]), idx])
    signs[signs == 0] = 1
    return vals.clamp_min(0), vecs * signs[:, None]


class _Stats:
    """Float64 sufficient statistics of gradients, kept for even and odd network indices."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = np.zeros(2, dtype=np.int64)
        self.s1 = torch.zeros(2, dim, dtype=torch.float64)
        self.s2 = torch.zeros(2, dim, dim, dtype=torch.float64)

    def add(self, grads: torch.Tensor, first_index: int) -> None:
        g = grads.detach().to("cpu", torch.float64).reshape(grads.shape[0], -1)
        for half in (0, 1):
            start = (half - first_index) % 2
            part = g[start::2]
            if part.shape[0]:
                self.count[half] += part.shape[0]
                self.s1[half] += part.sum(0)
                self.s2[half].addmm_(part.T, part)

    def covariance(self, half: int | None = None) -> torch.Tensor:
        if half is None:
            n, s1, s2 = int(self.count.sum()), self.s1.sum(0), self.s2.sum(0)
        else:
            n, s1, s2 = int(self.count[half]), self.s1[half], self.s2[half]
        if n < 2:
            raise ValueError("a covariance needs at least 2 networks")
        cov = (s2 - torch.outer(s1, s1) / n) / (n - 1)
        return (cov + cov.T) / 2

    def arrays(self) -> dict:
        return {"count": self.count, "s1": self.s1.numpy(), "s2": self.s2.numpy()}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "_Stats":
        st = cls(arrays["s1"].shape[1])
        st.count = np.asarray(arrays["count"], dtype=np.int64).copy()
        st.s1 = torch.from_numpy(np.array(arrays["s1"], dtype=np.float64))
        st.s2 = torch.from_numpy(np.array(arrays["s2"], dtype=np.float64))
        return st


def split_half_stability(stats: _Stats, ks=(1, 5, 10, 50)) -> dict:
    """Subspace overlap of the top-k NADs estimated from even- vs odd-indexed networks, for each k."""
    if min(stats.count) < 2:
        return {}
    _, va = _eig_desc(stats.covariance(0))
    _, vb = _eig_desc(stats.covariance(1))
    return {int(k): subspace_overlap(va, vb, int(k)) for k in ks if k <= stats.dim}


# ----------------------------------------------------------------------------------------------
# result object


@dataclass
class NADs:
    """Estimated NADs of an architecture.

    Attributes:
        directions: ``k × C × H × W`` float32 tensor, orthonormal rows ordered by decreasing variance.
        eigenvalues: the variances (eigenvalues of the gradient covariance), float64, descending;
            all ``C·H·W`` of them even when fewer directions are kept.
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.directions.shape[1:])

    def __len__(self) -> int:
        return self.directions.shape[0]

    def __getitem__(self, i) -> torch.Tensor:
        """NAD number ``i`` (``C × H × W``)."""
        return self.directions[i]

    def overlap(self, other, k: int) -> float:
        """:func:`subspace_overlap` of the top-``k`` NADs with another :class:`NADs` or array of rows."""
        other = other.directions if isinstance(other, NADs) else other
        return subspace_overlap(self.directions, other, k)

    def save(self, path, k: int | None = None) -> Path:
        """Write to ``path`` (.npz, no pickle); ``k`` keeps only the top-k directions (all by default)."""
        d = self.directions if k is None else self.directions[:k]
        arrays = {"directions": d.to(torch.float32).numpy(),
                  "eigenvalues": self.eigenvalues.to(torch.float64).numpy(),
                  "stability_k": np.array(sorted(self.stability), dtype=np.int64),
                  "stability": np.array([self.stability[k_] for k_ in sorted(self.stability)], dtype=np.float64)}
        if self.eval_point is not None:
            arrays["eval_point"] = self.eval_point.to(torch.float32).numpy()
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
    stab = {int(k): float(v) for k, v in zip(arrays.get("stability_k", []), arrays.get("stability", []))}
    ep = arrays.get("eval_point")
    return NADs(directions=torch.from_numpy(arrays["directions"]).to(torch.float32),
                eigenvalues=torch.from_numpy(arrays["eigenvalues"]).to(torch.float64),
                n_networks=int(meta.get("n_networks", 0)), method=str(meta.get("method", "")),
                stability=stab, meta=meta, eval_point=None if ep is None else torch.from_numpy(ep))


# ----------------------------------------------------------------------------------------------
# model handling


def _model_factory(model, input_shape) -> tuple[Callable[[], nn.Module], str]:
    if isinstance(model, str):
        from .models import get_model
        get_model(model, in_channels=input_shape[0], num_classes=1)  # validates the name early
        return (lambda: get_model(model, in_channels=input_shape[0], num_classes=1)), model.lower()
    if isinstance(model, nn.Module):
        raise TypeError("model must be an architecture name or a zero-argument callable returning a fresh "
                        "nn.Module (e.g. `lambda: MyNet()`), not a module instance: NADs average over "
                        "random initialisations")
    if not callable(model):
        raise TypeError(f"model must be an architecture name (str) or a zero-argument callable, "
                        f"got {type(model).__name__}")
    return model, getattr(model, "__qualname__", repr(model))


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1 or any(isinstance(s, bool) for s in input_shape):
        raise ValueError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
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
# secant: plain batched path (any model)


def _secant_plain(net: nn.Module, x: torch.Tensor, step: float, chunk: int) -> torch.Tensor:
    """Central differences with step ``step`` over every input coordinate of one network."""
    d = x.numel()
    grad = torch.empty(d, device=x.device, dtype=torch.float32)
    flat = x.reshape(-1)
    for start in range(0, d, chunk):
        idx = torch.arange(start, min(start + chunk, d), device=x.device)
        n = idx.numel()
        xs = flat.expand(2 * n, d).clone()
        xs[torch.arange(n), idx] += step
        xs[torch.arange(n, 2 * n), idx] -= step
        out = net(xs.view(2 * n, *x.shape)).reshape(2 * n).float()
        grad[start:start + n] = (out[:n] - out[n:]) / (2 * step)
    return grad


# ----------------------------------------------------------------------------------------------
# secant: fast exact path for nadlib LeNets (conv-relu-pool, conv-relu-pool, 3 linear layers)


def _lenet_layers(net: nn.Module):
    """The layers of a pooling nadlib LeNet, or None when ``net`` does not have exactly that structure."""
    from .models import LeNet
    if type(net) is not LeNet:
        return None
    f, c = list(net.features), list(net.classifier)
    kinds = [type(m) for m in f]
    if kinds != [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d]:
        return None
    for conv in (f[0], f[3]):
        if conv.stride != (1, 1) or conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.groups != 1 \
                or conv.bias is None:
            return None
    for pool in (f[2], f[5]):
        if pool.kernel_size not in (2, (2, 2)) or pool.stride not in (2, (2, 2)) or pool.padding not in (0, (0, 0)):
            return None
    lin = [m for m in c if isinstance(m, nn.Linear)]
    if [type(m) for m in c] != [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]:
        return None
    return f[0], f[3], lin


def _pool2(t: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool with stride 2 over the last two dims (even sizes), any leading dims."""
    return torch.maximum(torch.maximum(t[..., 0::2, 0::2], t[..., 0::2, 1::2]),
                         torch.maximum(t[..., 1::2, 0::2], t[..., 1::2, 1::2]))


def _max4(t: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Max over ``dim`` of size 4 (the 2x2 pooling candidates in a pool-major layout)."""
    return torch.maximum(torch.maximum(t.select(dim, 0), t.select(dim, 1)),
                         torch.maximum(t.select(dim, 2), t.select(dim, 3)))


class _LeNetSecant:
    """Exact central differences for a batch of LeNets, exploiting that pixel ``j`` only reaches a
    window of the first feature maps.

    For pixel ``j`` the first pre-activation is ``conv1(x) ± h·K_j`` (the kernel placed at ``j``);
    ReLU and the 2×2 max-pool change only a 3×3 window of the pooled map, whose change ``δ`` (54
    numbers) maps linearly to a 7×7 window of the second convolution (a precomputed 54×784 matrix
    per network).  Only the dense tail (ReLU, pool, 3 linear layers) runs on every perturbed input.
    """

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, input_shape, device):
        C, H, W = input_shape
        k1, k2 = conv1.kernel_size[0], conv2.kernel_size[0]
        self.k1, self.k2, self.c1, self.c2 = k1, k2, conv1.out_channels, conv2.out_channels
        self.H1, self.W1 = H - k1 + 1, W - k1 + 1           # conv1 output
        if self.H1 % 2 or self.W1 % 2:
            raise ValueError("odd conv1 output")
        self.P1h, self.P1w = self.H1 // 2, self.W1 // 2      # pool1 output
        self.wp = (k1 + 1) // 2 + 1                          # pooled window (3 for k1=5)
        self.H2, self.W2 = self.P1h - k2 + 1, self.P1w - k2 + 1  # conv2 output
        if self.wp > min(self.P1h, self.P1w) or self.H2 < 1 or self.W2 < 1 or self.H2 % 2 or self.W2 % 2:
            raise ValueError("input too small for the windowed path")
        self.wo = self.wp + k2 - 1                           # conv2 output window (7)
        self.device = device
        self.shape = (C, H, W)
        dev = device
        ch, r, s = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
        ch, r, s = ch.reshape(-1), r.reshape(-1), s.reshape(-1)

        def start(pos, lim):  # first pooled row/col of the window reached by input row/col `pos`
            return ((pos - (k1 - 1)).clamp_min(0) // 2).clamp_max(lim - self.wp)
        # pixels are processed sorted by window position (memory locality); gradients are unsorted at the end
        order = torch.argsort(start(r, self.P1h) * (self.P1w + 1) + start(s, self.P1w), stable=True)
        ch, r, s = ch[order], r[order], s[order]
        self.order = order.to(device)
        self.pr0, self.pc0 = start(r, self.P1h), start(s, self.P1w)
        # flat[(sign, pixel, c, y, x)] = where conv2 output (y, x) of that perturbed input reads its change
        # in the flattened (sign, pixel, c, 7*7 + zero slot) window tensor
        wo, n2 = self.wp + k2 - 1, (self.P1h - k2 + 1) * (self.P1w - k2 + 1)
        # conv2 outputs are laid out pool-major: (dy, dx, qy, qx) with y = 2 qy + dy, x = 2 qx + dx, so that
        # the 2x2 max-pool is a max over 4 contiguous blocks
        qy = torch.arange((self.P1h - k2 + 1) // 2)
        qx = torch.arange((self.P1w - k2 + 1) // 2)
        Y = (2 * qy[None, None, :, None] + torch.arange(2)[:, None, None, None]).expand(2, 2, len(qy), len(qx))
        X = (2 * qx[None, None, None, :] + torch.arange(2)[None, :, None, None]).expand(2, 2, len(qy), len(qx))
        yy = Y.reshape(1, -1) - (self.pr0[:, None] - (k2 - 1))
        xx = X.reshape(1, -1) - (self.pc0[:, None] - (k2 - 1))
        inside = (yy >= 0) & (yy < wo) & (xx >= 0) & (xx < wo)
        local = torch.where(inside, yy.clamp(0, wo - 1) * wo + xx.clamp(0, wo - 1), torch.full_like(yy, wo * wo))
        local = local.reshape(-1, 1, n2)                                     # (D, 1, n2)
        n_img = 2 * local.shape[0]
        base_off = (torch.arange(n_img)[:, None, None] * self.c2 + torch.arange(self.c2)[None, :, None]) * (wo * wo + 1)
        self.flat = (base_off + local.repeat(2, 1, 1)).reshape(-1).to(device)
        # the 6x6 conv1 window is gathered pool-major: (dy, dx, py, px), row 2 pr0 + 2 py + dy
        ar = torch.arange(self.wp)
        rows = (2 * self.pr0[:, None, None, None, None] + 2 * ar[None, None, None, :, None]
                + torch.arange(2)[None, :, None, None, None])                  # (D, 2, 1, 3, 1)
        cols = (2 * self.pc0[:, None, None, None, None] + 2 * ar[None, None, None, None, :]
                + torch.arange(2)[None, None, :, None, None])                  # (D, 1, 2, 1, 3)
        ky = r[:, None, None, None, None] - rows
        kx = s[:, None, None, None, None] - cols
        valid = (ky >= 0) & (ky < k1) & (kx >= 0) & (kx < k1)
        kidx = ch[:, None, None, None, None] * k1 * k1 + ky.clamp(0, k1 - 1) * k1 + kx.clamp(0, k1 - 1)
        self.kidx = torch.where(valid, kidx, torch.full_like(kidx, C * k1 * k1)).to(dev)  # (D, 2, 2, 3, 3)
        self.rows, self.cols = rows.to(dev), cols.to(dev)
        prow = self.pr0[:, None] + torch.arange(self.wp)
        pcol = self.pc0[:, None] + torch.arange(self.wp)
        self.prow, self.pcol = prow.to(dev), pcol.to(dev)
        # ridx[(ci, py, px), co-independent, (oy, ox)]: flat index into conv2's kernel (ci, ky, kx) of the
        # weight linking pooled-window entry (ci, py, px) to conv2-window output (oy, ox); sentinel -> 0
        ci, py, px = torch.meshgrid(torch.arange(self.c1), torch.arange(self.wp), torch.arange(self.wp), indexing="ij")
        oy, ox = torch.meshgrid(torch.arange(self.wo), torch.arange(self.wo), indexing="ij")
        ky = py.reshape(-1, 1) + (k2 - 1) - oy.reshape(1, -1)
        kx = px.reshape(-1, 1) + (k2 - 1) - ox.reshape(1, -1)
        okk = (ky >= 0) & (ky < k2) & (kx >= 0) & (kx < k2)
        ridx = ci.reshape(-1, 1) * k2 * k2 + ky.clamp(0, k2 - 1) * k2 + kx.clamp(0, k2 - 1)
        ridx = torch.where(okk, ridx, torch.full_like(ridx, self.c1 * k2 * k2))
        sentinel = torch.full((ridx.shape[0], 1), self.c1 * k2 * k2)
        self.ridx = torch.cat([ridx, sentinel], dim=1).to(dev)             # (54, 50): 49 + a zero slot
        self.D = C * H * W

    def __call__(self, nets: list[nn.Module], x: torch.Tensor, step: float) -> torch.Tensor:
        B, D, dev = len(nets), self.D, self.device
        layers = [_lenet_layers(n) for n in nets]
        w1 = torch.stack([l[0].weight for l in layers])      # (B, c1, C, k, k)
        b1 = torch.stack([l[0].bias for l in layers])
        w2 = torch.stack([l[1].weight for l in layers])      # (B, c2, c1, k, k)
        b2 = torch.stack([l[1].bias for l in layers])
        c1, c2, wp, wo, k2 = self.c1, self.c2, self.wp, self.wo, self.k2
        # base pass, all networks at once (grouped by stacking output channels)
        base1 = torch.nn.functional.conv2d(x[None], w1.reshape(B * c1, *w1.shape[2:]), b1.reshape(-1))
        base1 = base1.view(B, c1, self.H1, self.W1)
        pool1 = torch.relu_(_pool2(base1))                                      # (B, c1, P, P)
        base2 = torch.nn.functional.conv2d(pool1.reshape(1, B * c1, self.P1h, self.P1w),
                                           w2.reshape(B * c2, c1, k2, k2), b2.reshape(-1), groups=B)
        base2 = base2.view(B, c2, self.H2 // 2, 2, self.W2 // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 1, 1, c2, 4, -1)
        # windows of the first stage, both signs (max-pool and ReLU commute: pool first)
        bw = base1[:, :, self.rows, self.cols]                                  # (B, c1, D, 2, 2, 3, 3)
        kpad = torch.cat([w1.reshape(B, c1, -1), w1.new_zeros(B, c1, 1)], dim=2)
        kw = kpad[:, :, self.kidx].mul_(step)                                   # (B, c1, D, 2, 2, 3, 3)
        pre = torch.stack([bw + kw, bw.sub_(kw)], dim=2).view(B, c1, 2, D, 4, wp, wp)
        pw = torch.relu_(_max4(pre))                                            # (B, c1, 2, D, 3, 3)
        pbase = pool1[:, :, self.prow[:, :, None], self.pcol[:, None, :]]       # (B, c1, D, 3, 3)
        delta = pw.sub_(pbase[:, :, None]).permute(0, 2, 3, 1, 4, 5).reshape(B, 2 * D, c1 * wp * wp)
        # response of the 7x7 conv2 window to a unit change of each of the 54 pooled-window entries,
        # read straight from the kernel: (B, 54, c2 * 49)
        w2pad = torch.cat([w2.reshape(B, c2, -1), w2.new_zeros(B, c2, 1)], dim=2)
        resp = w2pad[:, :, self.ridx].permute(0, 2, 1, 3).reshape(B, c1 * wp * wp, c2 * (wo * wo + 1))
        d2 = torch.bmm(delta, resp).view(B, -1)   # zero slot per (image, channel) comes from the sentinel
        out2 = torch.index_select(d2, 1, self.flat).view(B, 2, D, c2, 4, -1).add_(base2)
        h = torch.relu_(_max4(out2, -2)).reshape(B, 2 * D, -1)
        for j, lin in enumerate(zip(*[l[2] for l in layers])):
            w = torch.stack([m.weight for m in lin])
            b = torch.stack([m.bias for m in lin])
            h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            if j < 2:
                h = torch.relu_(h)
        out = h.view(B, 2, D)
        g = torch.empty(B, D, device=out.device, dtype=out.dtype)
        g[:, self.order] = (out[:, 0] - out[:, 1]) / (2 * step)
        return g


# ----------------------------------------------------------------------------------------------
# gradient method


def _grad_loop(nets: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    out = []
    for net in nets:
        xi = x[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi).sum(), xi)
        out.append(g.reshape(-1))
    return torch.stack(out)


def _grad_vmap(nets: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    from torch.func import functional_call, grad, stack_module_state, vmap
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def f(p, b, xi):
        return functional_call(base, (p, b), (xi[None],)).sum()
    g = vmap(grad(f, argnums=2), in_dims=(0, 0, None), randomness="different")(params, buffers, x)
    return g.reshape(len(nets), -1)


# ----------------------------------------------------------------------------------------------
# main entry point


def _default_batch(method: str, fast_lenet: bool, n_params: int, device: torch.device) -> int:
    gpu = device.type == "cuda"
    if method == "gradient":  # stacked parameters of one batch: ~50M numbers on a CPU, ~1G on a GPU
        return max(1, min(1024 if gpu else 128, int((1e9 if gpu else 5e7) // max(n_params, 1))))
    if fast_lenet:
        return 64 if gpu else 8
    return 4 if gpu else 1


def estimate_nads(model, n_networks: int, method: str = "secant", input_shape=(1, 32, 32), k: int | None = None,
                  seed: int = 0, device=None, eval_point=None, step: float = 100.0, batch_size: int | None = None,
                  progress: bool = True, *, checkpoint=None, checkpoint_every: float = 60.0,
                  stop_at_stability: float | None = None, stability_k: int = 10, check_every: int | None = None,
                  stability_ks=(1, 5, 10, 50), tf32: bool = False) -> NADs:
    """Estimate the NADs of an architecture from ``n_networks`` random initialisations.

    Args:
        model: an architecture name of :data:`nadlib.ARCHITECTURES` (built with
            ``get_model(name, in_channels=input_shape[0], num_classes=1)``) or a zero-argument callable
            returning a freshly initialised ``nn.Module`` with ONE output.
        n_networks: number of random networks (at least 2); an upper bound with ``stop_at_stability``.
        method: ``"secant"`` (central differences with step ``step``, the authors' estimator) or
            ``"gradient"`` (autograd input gradients).
        input_shape: ``(C, H, W)`` of one input.
        k: number of directions to keep (default: all ``C·H·W``).
        seed: network ``i`` is initialised from :func:`network_seed` ``(seed, i)``; the evaluation point is
            ``randn(input_shape)`` from a generator seeded with ``seed`` unless ``eval_point`` is given.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available, else CPU).
        eval_point: the input ``x`` at which gradients are taken (``C × H × W``).
        step: the secant step ``h`` (ignored by ``method="gradient"``).
        batch_size: networks processed per step (default: chosen by method, model and device).  On the CPU
            the result is deterministic for fixed ``(seed, batch_size)``; other batch sizes agree to float
            rounding.
        progress: show a ``tqdm`` progress bar.
        checkpoint: optional ``.npz`` path: statistics are saved there every ``checkpoint_every`` seconds and
            at the end, and an existing checkpoint with the same settings is resumed (identical result).
        stop_at_stability: stop early once the split-half overlap of the top-``stability_k`` NADs reaches
            this value (checked every ``check_every`` networks, default ``max(64, n_networks // 20)``).
        stability_ks: the ``k`` values reported in ``.stability``.
        tf32: allow TF32 matmuls/convolutions on CUDA (faster, ~1e-3 relative error); off by default.

    Returns:
        :class:`NADs`.

    Raises:
        ValueError: bad sizes/shapes, a model with more than one output, non-finite gradients (the message
            names the network index and seed).
        TypeError: ``model`` is neither a name nor a callable.
        RuntimeError: CUDA requested but not available.
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n_networks, bool) or not isinstance(n_networks, (int, np.integer)) or n_networks < 2:
        raise ValueError(f"n_networks must be an int >= 2 (a covariance needs two samples), got {n_networks!r}")
    n_networks = int(n_networks)
    input_shape = _check_input_shape(input_shape)
    dim = int(np.prod(input_shape))
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= dim):
        raise ValueError(f"k must be an int in [1, {dim}] (the input dimension) or None, got {k!r}")
    step = float(step)
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if stop_at_stability is not None and not 0 < float(stop_at_stability) <= 1:
        raise ValueError(f"stop_at_stability must be in (0, 1], got {stop_at_stability!r}")
    device = get_device(device)
    factory, arch_name = _model_factory(model, input_shape)

    if eval_point is None:
        gen = torch.Generator().manual_seed(int(seed))
        x_cpu = torch.randn(input_shape, generator=gen)
    else:
        x_cpu = torch.as_tensor(eval_point, dtype=torch.float32).detach().cpu()
        if x_cpu.dim() == 4 and x_cpu.shape[0] == 1:
            x_cpu = x_cpu[0]
        if tuple(x_cpu.shape) != input_shape:
            raise ValueError(f"eval_point must have shape {input_shape} (input_shape), got {tuple(x_cpu.shape)}")
        if not torch.isfinite(x_cpu).all():
            raise ValueError("eval_point contains NaN or infinite values")
    x = x_cpu.to(device)

    settings = {"arch": arch_name, "method": method, "input_shape": list(input_shape), "seed": int(seed),
                "step": step if method == "secant" else None, "eval_point_sha": _digest(x_cpu),
                "device_type": device.type, "batch_size": batch_size}
    stats, start = _Stats(dim), 0
    ckpt = None
    with torch.random.fork_rng(devices=[]):
        first = _build(factory, 0, seed).to(device)
        _check_model(first, x)
        lenet = _lenet_layers(first) if method == "secant" else None
        fast = None
        if lenet is not None:
            try:
                fast = _LeNetSecant(lenet[0], lenet[1], input_shape, device)
            except ValueError:
                fast = None
        if batch_size is None:
            batch_size = _default_batch(method, fast is not None, sum(p.numel() for p in first.parameters()), device)
        settings["batch_size"] = int(batch_size)
        settings["path"] = "lenet-windowed" if fast is not None else ("vmap" if method == "gradient" else "batched")
        if checkpoint is not None:
            ckpt = Checkpoint(checkpoint, settings)
            if ckpt.resumed:
                stats = _Stats.from_arrays(ckpt.arrays)
                start = int(ckpt.arrays["next_index"])
        prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(tf32)
        if check_every is None:
            check_every = max(64, n_networks // 20)
        use_vmap = [True]
        t_grad = time.perf_counter()
        try:
            stats, n_done, stopped = _run(factory, seed, device, x, method, step, fast, stats, start, n_networks,
                                          int(batch_size), progress, ckpt, checkpoint_every, stop_at_stability,
                                          stability_k, check_every, use_vmap, arch_name)
        finally:
            if device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
    t_grad = time.perf_counter() - t_grad
    vals, vecs = _eig_desc(stats.covariance())
    keep = dim if k is None else int(k)
    stability = split_half_stability(stats, stability_ks)
    meta = provenance(device=device, arch=arch_name, method=method, seed=int(seed), input_shape=list(input_shape),
                      step=settings["step"], batch_size=int(batch_size), path=settings["path"],
                      eval_point="randn(input_shape) from torch.Generator().manual_seed(seed)"
                      if eval_point is None else "given", stopped_early=bool(stopped),
                      requested_networks=n_networks, wall_time_s=round(time.perf_counter() - t0, 3),
                      gradient_time_s=round(t_grad, 3),
                      resumed_from=start, bn_mode="eval")
    if ckpt is not None:
        ckpt.save(**stats.arrays(), next_index=np.array(n_done))
    return NADs(directions=vecs[:keep].to(torch.float32).reshape(keep, *input_shape),
                eigenvalues=vals, n_networks=n_done, method=method, stability=stability, meta=meta,
                eval_point=x_cpu)


def _digest(t: torch.Tensor) -> str:
    import hashlib
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()[:16]


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


def _run(factory, seed, device, x, method, step, fast, stats, start, n_networks, batch_size, progress, ckpt,
         checkpoint_every, stop_at, stability_k, check_every, use_vmap, arch_name):
    from tqdm.auto import tqdm
    chunk = 2048 if device.type == "cuda" else 256
    bar = tqdm(total=n_networks, initial=start, disable=not progress, unit="net",
               desc=f"NADs {arch_name} ({method})")
    last_save, next_check, stopped = time.perf_counter(), start + check_every, False
    maker = _NetworkMaker(factory, seed, device, batch_size)
    i = start
    try:
        with torch.inference_mode(method == "secant"):
            while i < n_networks:
                b = min(batch_size, n_networks - i)
                nets = maker(range(i, i + b))
                if method == "secant":
                    if fast is not None:
                        g = fast(nets, x, step)
                    else:
                        g = torch.stack([_secant_plain(n, x, step, chunk) for n in nets])
                else:
                    for n in nets:
                        n.requires_grad_(False)
                    g = None
                    if use_vmap[0]:
                        try:
                            g = _grad_vmap(nets, x)
                        except Exception as err:  # some custom modules do not vmap: fall back, once
                            warnings.warn(f"vmap over networks failed ({type(err).__name__}: {err}); "
                                          "using a loop over networks", RuntimeWarning)
                            use_vmap[0] = False
                    if g is None:
                        g = _grad_loop(nets, x)
                g = g.reshape(b, -1)
                bad = ~torch.isfinite(g).all(dim=1)
                if bad.any():
                    j = i + int(bad.nonzero()[0])
                    raise ValueError(f"non-finite input gradient for network {j} (initialised with "
                                     f"torch.manual_seed({network_seed(seed, j)}), i.e. network_seed({seed}, {j}))")
                stats.add(g, i)
                i += b
                bar.update(b)
                now = time.perf_counter()
                if ckpt is not None and now - last_save >= checkpoint_every:
                    ckpt.save(**stats.arrays(), next_index=np.array(i))
                    last_save = now
                if stop_at is not None and i >= next_check and i < n_networks:
                    next_check = i + check_every
                    stab = split_half_stability(stats, (stability_k,)).get(stability_k, 0.0)
                    bar.set_postfix(stability=f"{stab:.3f}")
                    if stab >= stop_at:
                        stopped = True
                        break
    except KeyboardInterrupt:
        if ckpt is not None:
            ckpt.save(**stats.arrays(), next_index=np.array(i))
        raise
    finally:
        bar.close()
    return stats, i, stopped


# ----------------------------------------------------------------------------------------------
# trainability: train on D(u_i) for several NAD indices i


def nad_trainability(nads, indices, arch: str = "lenet", n_train: int = 2000, n_test: int = 2000,
                     epochs: int = 5, seed: int = 0, device=None, progress: bool = True,
                     checkpoint=None) -> dict:
    """Test accuracy of ``arch`` trained on D(u_i) (:func:`nadlib.direction_accuracy`) for each NAD index.

    Returns ``{"indices": int array, "test_acc": float array}``; with ``checkpoint`` (an ``.npz`` path)
    finished indices are stored and skipped when the same call is repeated.
    """
    from tqdm.auto import tqdm

    from .training import direction_accuracy

    d = getattr(nads, "directions", nads)
    indices = [int(i) for i in indices]
    if not indices or min(indices) < 0 or max(indices) >= len(d):
        raise ValueError(f"indices must be in [0, {len(d) - 1}], got {indices}")
    settings = {"arch": arch, "indices": indices, "n_train": n_train, "n_test": n_test, "epochs": epochs,
                "seed": seed, "nads_sha": _digest(torch.as_tensor(d[max(indices)]).float())}
    ck = Checkpoint(checkpoint, settings) if checkpoint is not None else None
    accs = list(ck.arrays.get("test_acc", [])) if ck is not None else []
    for i in tqdm(indices[len(accs):], disable=not progress, desc=f"train {arch} on D(u_i)"):
        accs.append(direction_accuracy(arch, torch.as_tensor(d[i]), n_train=n_train, n_test=n_test,
                                       epochs=epochs, seed=seed, device=device))
        if ck is not None:
            ck.save(test_acc=np.array(accs))
    return {"indices": np.array(indices), "test_acc": np.array(accs, dtype=float)}


def run_trainability_cli(args) -> None:
    t0 = time.perf_counter()
    nads = load_nads(args.nads)
    if args.indices:
        indices = [int(i) for i in args.indices.split(",")]
    else:
        from .config import get_profile
        indices = list(get_profile(args.profile).nads.trainability_indices)
    out = Path(args.out)
    ck = out.with_name(out.stem + ".ckpt.npz")
    arrays = nad_trainability(nads, indices, arch=args.arch, n_train=args.n_train, n_test=args.n_test,
                              epochs=args.epochs, seed=args.seed, device=args.device, checkpoint=ck)
    meta = provenance(device=get_device(args.device), arch=args.arch, nads=str(args.nads),
                      nads_method=nads.method, nads_networks=nads.n_networks, n_train=args.n_train,
                      n_test=args.n_test, epochs=args.epochs, seed=args.seed,
                      wall_time_s=round(time.perf_counter() - t0, 1))
    save_artifact(out, arrays, meta)
    ck.unlink(missing_ok=True)
    print(f"wrote {out}: " + ", ".join(f"{i}: {a:.3f}" for i, a in zip(arrays["indices"], arrays["test_acc"])))


# ----------------------------------------------------------------------------------------------
# CLI


def run_cli(args) -> None:
    out = Path(args.out)
    ckpt = Path(args.checkpoint) if args.checkpoint else out.with_name(out.stem + ".ckpt.npz")
    torch.set_num_threads(args.threads) if args.threads else None
    res = estimate_nads(args.arch, args.networks, method=args.method,
                        input_shape=(args.channels, args.size, args.size), seed=args.seed, device=args.device,
                        step=args.step, batch_size=args.batch_size, progress=not args.quiet, checkpoint=ckpt,
                        checkpoint_every=args.checkpoint_every, stop_at_stability=args.stop_at_stability)
    res.save(out, k=args.keep)
    ckpt.unlink(missing_ok=True)
    print(f"wrote {out}: {res!r}, wall time {res.meta['wall_time_s']:.1f} s")


def register_cli(subparsers) -> None:
    """Add ``python -m nadlib nads``."""
    p = subparsers.add_parser("nads", help="estimate the NADs of an architecture (resumable)",
                              description="Estimate NADs; interrupt with Ctrl-C and rerun the same command to resume.")
    p.add_argument("--arch", required=True, help="architecture name (see nadlib.ARCHITECTURES)")
    p.add_argument("--method", choices=METHODS, default="secant")
    p.add_argument("--networks", type=int, default=10_000, help="number of random networks")
    p.add_argument("--out", required=True, help="output artifact (.npz)")
    p.add_argument("--keep", type=int, default=None, help="directions to store (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=float, default=100.0, help="secant step h")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=None, help="networks per step")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: <out>.ckpt.npz)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between checkpoints")
    p.add_argument("--stop-at-stability", type=float, default=None,
                   help="stop when the split-half top-10 overlap reaches this value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_cli)

    t = subparsers.add_parser("trainability", help="train on D(u_i) for several NAD indices i (resumable)")
    t.add_argument("--nads", required=True, help="NAD artifact (.npz) written by `nads`")
    t.add_argument("--arch", default="lenet")
    t.add_argument("--indices", default=None, help="comma-separated NAD indices (default: the profile's)")
    t.add_argument("--profile", default=None, help="profile whose trainability indices are used")
    t.add_argument("--n-train", type=int, default=10_000)
    t.add_argument("--n-test", type=int, default=10_000)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None)
    t.add_argument("--out", required=True)
    t.set_defaults(func=run_trainability_cli)
