"""Streaming statistics of NAD gradients and the algebra on them: subspace overlap, sorted eigenvectors,
split-half stability.

:class:`NADStatistics` holds the float64 sufficient statistics of a set of gradients (``Σg``, ``Σggᵀ`` and the
count), kept separately for even and odd network indices.  Statistics of disjoint ranges of networks are
merged *exactly* by adding them (:meth:`NADStatistics.merge`), which is how chunks of one estimate computed
on different workers (:func:`nadlib.nad_statistics`, Ray) are combined.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import positive_int

__all__ = ["NADStatistics", "subspace_overlap", "split_half_stability", "eig_desc"]


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


def eig_desc(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
    """Subspace overlap of the top-k NADs estimated from even- vs odd-indexed networks, for each k."""
    if min(stats.count) < 2:
        return {}
    _, va = eig_desc(stats.covariance(0))
    _, vb = eig_desc(stats.covariance(1))
    return {int(k): subspace_overlap(va, vb, int(k)) for k in ks if k <= stats.dim}
