"""Streaming statistics of NAD gradients and the algebra on them: subspace overlap, sorted eigenvectors,
split-half stability.

Eigenvectors come from one of two paths (:func:`eigen_path` decides): the full ``eigh`` of the covariance
(every eigenpair; always for ``d <= 1024``, e.g. 1 x 32 x 32 inputs), or, when only the top ``m`` eigenpairs
are needed and ``d`` is large (colour 3 x 32 x 32 inputs, ``d = 3072``), a Lanczos solver (scipy's
``eigsh``, fixed start vector, machine-precision tolerance) that computes just those, 2-3x faster for
``m <= 64``.  Both return the same order (descending) and sign convention (the entry of largest magnitude is
positive).

:class:`NADStatistics` holds the float64 sufficient statistics of a set of gradients (``Σg``, ``Σggᵀ`` and the
count), kept separately for even and odd network indices.  Statistics of disjoint ranges of networks are
merged *exactly* by adding them (:meth:`NADStatistics.merge`), which is how chunks of one estimate computed
on different workers (:func:`nadlib.nad_statistics`, Ray) are combined.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._checks import is_int, positive_int
from ..config import one_torch_thread

__all__ = ["NADStatistics", "subspace_overlap", "split_half_stability", "eig_desc", "eig_top_desc", "eig_leading",
           "eigen_path", "LANCZOS_MIN_DIM", "LANCZOS_MAX_M"]

#: The top-m (Lanczos) eigen path is used only for dimensions ``d`` above this: 1 x 32 x 32 inputs keep the
#: full ``eigh`` (0.4 s at d = 1024).
LANCZOS_MIN_DIM = 1024
#: ... and only for ``m <= LANCZOS_MAX_M`` eigenpairs.  Measured on the covariance of 1,000
#: colour LeNets (d = 3072, 2 busy cores, ``benchmarks/bench_eigen.py``): full ``eigh`` 7-11 s, Lanczos 2.4 s
#: (m = 20), 3.7-4.4 s (50), 3.3 s (64), but 19-24 s (100): a real NAD spectrum has relative gaps of ~0.1-1 %
#: past the first few eigenvalues, and Lanczos slows down sharply beyond a few dozen pairs.
LANCZOS_MAX_M = 64


def _as_rows(a, k: int | None, name: str) -> torch.Tensor:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach()
    a = a.to(torch.float64).cpu()
    if a.dim() < 2:
        raise ValueError(f"{name} must hold one direction per row (2-D or more), got shape {tuple(a.shape)}")
    a = a.reshape(a.shape[0], -1)
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if k is not None:
        positive_int(k, "k")
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
    for m, name in ((a, "A"), (b, "B")):
        err = (m @ m.T - torch.eye(m.shape[0], dtype=m.dtype)).abs().max().item()
        if err > 1e-3:
            raise ValueError(f"the rows of {name} must be orthonormal (max |{name} {name}^T - I| = {err:.2g}); "
                             "orthonormalise them first, e.g. with torch.linalg.qr")
    s = torch.linalg.svdvals(a @ b.T)
    return float((s ** 2).mean())


def _signed_rows(vals: torch.Tensor, vecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``vals`` (descending) clamped at 0 and the rows ``vecs`` each with its entry of largest magnitude
    made positive."""
    idx = vecs.abs().argmax(dim=1)
    signs = torch.sign(vecs[torch.arange(vecs.shape[0]), idx])
    signs[signs == 0] = 1
    return vals.clamp_min(0), vecs * signs[:, None]


def _check_cov(cov) -> torch.Tensor:
    if not isinstance(cov, torch.Tensor) or cov.dim() != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 1:
        shape = tuple(cov.shape) if isinstance(cov, torch.Tensor) else type(cov).__name__
        raise ValueError(f"cov must be a square 2-D torch.Tensor (a covariance), got {shape}")
    return cov


def eig_desc(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors as rows, with a deterministic sign
    (the entry of largest magnitude is positive).  All ``d`` eigenpairs, by a full ``eigh``."""
    _check_cov(cov)
    # multi-threaded LAPACK eigh is much slower on small, busy CPUs; one thread is ~0.4 s for d=1024
    with one_torch_thread(cov.device.type == "cpu"):
        vals, vecs = torch.linalg.eigh(cov)
    return _signed_rows(vals.flip(0), vecs.flip(1).T.contiguous())


def _check_m(m, dim: int) -> int:
    if not is_int(m) or not 1 <= m < dim:
        raise ValueError(f"m must be an int in [1, {dim - 1}] (fewer than the dimension {dim}), got {m!r}")
    return int(m)


def eig_top_desc(cov: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``m`` eigenvalues (descending, ``m``) and eigenvectors (rows, ``m x d``) of a symmetric ``cov``
    by the Lanczos method (scipy's ``eigsh``, ``which="LA"``), in the order and sign convention of
    :func:`eig_desc` and equal to its first ``m`` pairs to ~1e-12 relative (eigenvectors up to the usual
    freedom inside a repeated eigenvalue).

    Deterministic: the start vector is ``N(0, I)`` from ``numpy.random.default_rng(0)`` and ARPACK's restarts
    draw from a generator seeded with 0; the tolerance is machine precision.

    Raises:
        ValueError: ``cov`` not square, ``m`` not in ``[1, d - 1]``.
        scipy.sparse.linalg.ArpackNoConvergence: the solver did not converge (see :func:`eigen_path` for
            the cases where it is used, with a fallback to the full ``eigh``).
    """
    from scipy.sparse.linalg import eigsh

    _check_cov(cov)
    d = cov.shape[0]
    m = _check_m(m, d)
    a = cov.detach().to("cpu", torch.float64).numpy()
    v0 = np.random.default_rng(0).standard_normal(d)
    vals, vecs = eigsh(a, k=m, which="LA", v0=v0, tol=0, rng=np.random.default_rng(0))
    order = np.argsort(-vals, kind="stable")
    vals, vecs = torch.from_numpy(vals[order].copy()), torch.from_numpy(np.ascontiguousarray(vecs[:, order].T))
    return _signed_rows(vals.to(cov.dtype), vecs.to(cov.dtype))


def eigen_path(dim: int, m: int | None, n_samples: int | None = None) -> str:
    """Which eigen path gives the top ``m`` eigenpairs of a ``dim x dim`` covariance of ``n_samples`` vectors:
    ``"eigsh"`` (Lanczos, :func:`eig_top_desc`) when ``m`` is given, ``dim > LANCZOS_MIN_DIM``,
    ``m <= LANCZOS_MAX_M`` and the covariance can have rank ``m`` (``n_samples - 1 >= m``; a
    top-``m`` reaching into the null space is arbitrary there and Lanczos resolves it badly), else
    ``"eigh"`` (all eigenpairs, :func:`eig_desc`)."""
    positive_int(dim, "dim")
    if m is None:
        return "eigh"
    positive_int(m, "m")
    if n_samples is not None and (not is_int(n_samples) or n_samples < 0):
        raise ValueError(f"n_samples must be an int >= 0 or None, got {n_samples!r}")
    if dim <= LANCZOS_MIN_DIM or m > LANCZOS_MAX_M or (n_samples is not None and n_samples - 1 < m):
        return "eigh"
    return "eigsh"


def eig_leading(cov: torch.Tensor, m: int | None = None, n_samples: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """At least the top ``m`` eigenpairs of ``cov`` (all when ``m`` is None) by the path :func:`eigen_path`
    chooses: ``(eigenvalues, eigenvectors as rows, path)``, ``path`` being ``"eigh"`` (all ``d`` pairs) or
    ``"eigsh"`` (exactly ``m``).  Should Lanczos not converge, the full ``eigh`` is used (path ``"eigh"``)."""
    _check_cov(cov)
    if m is not None:
        positive_int(m, "m")
    path = eigen_path(cov.shape[0], m, n_samples)
    if path == "eigsh":
        from scipy.sparse.linalg import ArpackNoConvergence
        try:
            return (*eig_top_desc(cov, m), "eigsh")
        except ArpackNoConvergence:
            warnings.warn(f"the Lanczos solver did not converge for the top {m} eigenpairs of a {cov.shape[0]}-"
                          "dimensional covariance; using the full eigh", RuntimeWarning)
    return (*eig_desc(cov), "eigh")


class NADStatistics:
    """Float64 sufficient statistics of gradients, kept for even and odd network indices.

    Attributes: ``dim`` (gradient length), ``count[h]`` (networks in half ``h``: 0 even, 1 odd indices),
    ``s1[h]`` (sum of gradients, ``dim``), ``s2[h]`` (sum of outer products, ``dim x dim``).
    """

    def __init__(self, dim: int):
        positive_int(dim, "dim")
        self.dim = int(dim)
        self.count = np.zeros(2, dtype=np.int64)
        self.s1 = torch.zeros(2, dim, dtype=torch.float64)
        self.s2 = torch.zeros(2, dim, dim, dtype=torch.float64)

    @staticmethod
    def nbytes(dim: int) -> int:
        """Bytes of the statistics of gradients of length ``dim`` (what a checkpoint stores, uncompressed)."""
        return 8 * (2 + 2 * dim + 2 * dim * dim)

    def add(self, grads: torch.Tensor, first_index: int) -> None:
        g = grads.detach().to("cpu", torch.float64).reshape(grads.shape[0], -1)
        for half in (0, 1):
            start = (half - first_index) % 2
            part = g[start::2]
            if part.shape[0]:
                self.count[half] += part.shape[0]
                self.s1[half] += part.sum(0)
                self.s2[half].addmm_(part.T, part)

    @property
    def n_networks(self) -> int:
        """Networks held (both halves)."""
        return int(self.count.sum())

    @classmethod
    def merge(cls, parts) -> "NADStatistics":
        """The statistics of the union of disjoint sets of networks: the sums of ``parts``, added in the
        given order (float64; the same order gives the same bits)."""
        parts = list(parts)
        if not parts or not all(isinstance(p, cls) for p in parts):
            raise ValueError("merge needs a non-empty list of NADStatistics")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise ValueError(f"cannot merge statistics of different dimensions {sorted(dims)}")
        out = cls(parts[0].dim)
        for p in parts:
            out.count += p.count
            out.s1 += p.s1
            out.s2 += p.s2
        return out

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
    def from_arrays(cls, arrays: dict) -> "NADStatistics":
        st = cls(arrays["s1"].shape[1])
        st.count = np.asarray(arrays["count"], dtype=np.int64).copy()
        st.s1 = torch.from_numpy(np.array(arrays["s1"], dtype=np.float64))
        st.s2 = torch.from_numpy(np.array(arrays["s2"], dtype=np.float64))
        return st


def split_half_stability(stats: NADStatistics, ks=(1, 5, 10, 50)) -> dict:
    """Subspace overlap of the top-k NADs estimated from even- vs odd-indexed networks, for each k (those
    ``<= stats.dim``).  Only the top ``max(ks)`` eigenvectors of each half are needed: for large dimensions
    they come from the Lanczos path (:func:`eig_leading`), else from the full ``eigh``.

    A :class:`nadlib.NADs` does not keep the statistics, only the stability computed when it was estimated
    (``nads.stability``): given one, those values are returned for the ``ks`` it holds, and a ``ValueError``
    says what to do for others."""
    if not isinstance(stats, NADStatistics):
        held = getattr(stats, "stability", None)
        if not isinstance(held, dict):
            raise TypeError(f"split_half_stability takes NADStatistics (nadlib.nad_statistics) or NADs, got "
                            f"{type(stats).__name__}")
        missing = [int(k) for k in ks if int(k) not in held]
        if missing:
            raise ValueError(f"these NADs hold their split-half stability for k in {sorted(held)} only, not "
                             f"{missing}: the statistics behind them are not kept; estimate again with "
                             f"Stability(ks=...) or compute nadlib.nad_statistics(...)")
        return {int(k): held[int(k)] for k in ks}
    ks = [int(k) for k in ks if k <= stats.dim]
    if min(stats.count) < 2 or not ks:
        return {}
    m = max(ks)
    _, va, _ = eig_leading(stats.covariance(0), m, int(stats.count[0]))
    _, vb, _ = eig_leading(stats.covariance(1), m, int(stats.count[1]))
    return {k: subspace_overlap(va, vb, k) for k in ks}
