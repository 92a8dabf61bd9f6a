"""The linearly separable family D(v) of the paper.

A sample of D(v) is ``x = y * (epsilon / 2) * v + P_perp(w)`` with ``y`` uniform in ``{-1, +1}``,
``w ~ N(0, sigma^2 I)`` and ``P_perp`` the projection on the orthogonal complement of the unit vector
``v``.  The projection of every sample on ``v`` is therefore *exactly* ``+-epsilon/2``: a margin of
``epsilon`` separates the classes along ``v`` and the noise has no component there, so a linear
classifier ``sign(v^T x)`` is perfect.
"""

from __future__ import annotations

import torch

from ._checks import positive_float, positive_int, seed as _check_seed
from .config import PAPER_RECIPE, get_device

#: Largest data set :func:`linear_separable` draws at once, in numbers (8 GiB of float32).
MAX_ELEMENTS = 2 ** 31


def as_direction(v, name: str = "v") -> torch.Tensor:
    """Validate a direction (``H x W`` or ``C x H x W``, finite, non-zero); return it as a unit-norm
    ``C x H x W`` float32 tensor."""
    v = torch.as_tensor(v)
    if not (v.is_floating_point() or v.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real tensor, got dtype {v.dtype}")
    if v.dim() == 2:
        v = v.unsqueeze(0)
    if v.dim() != 3:
        raise ValueError(f"{name} must have shape (H, W) or (C, H, W), got {tuple(v.shape)}")
    v = v.to(torch.float64)
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    norm = v.norm()
    if norm == 0:
        raise ValueError(f"{name} is the zero vector; a direction needs a non-zero norm")
    return (v / norm).to(torch.float32)


def balanced_signs(n: int, generator: torch.Generator, device) -> torch.Tensor:
    """``n`` labels in ``{-1, +1}``, as balanced as ``n`` allows (counts differ by at most one), shuffled."""
    y = torch.ones(n, device=device)
    y[n // 2:] = -1  # the extra sample of an odd n is a -1
    return y[torch.randperm(n, generator=generator, device=device)]


def linear_separable(v, n: int, sigma: float = PAPER_RECIPE.sigma, epsilon: float = PAPER_RECIPE.epsilon, seed: int = 0,
                     device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` samples of D(v); returns ``x`` (``n x C x H x W`` float32) and ``y`` (``n`` labels, +-1, int64).

    Args:
        v: the separating direction, ``H x W`` or ``C x H x W``; it is normalised to unit norm.
        n: number of samples (labels balanced: ``n // 2`` of +1 and the rest -1, shuffled).
        sigma: standard deviation of the Gaussian noise (in every direction orthogonal to ``v``).
        epsilon: the margin; every sample has ``<x, v> = +-epsilon / 2`` exactly.
        seed: seed of the generator; the same seed gives the same data on the same device.
        device: where the data is generated (default: CUDA if available, else CPU).
    """
    n = positive_int(n, "n")
    sigma = positive_float(sigma, "sigma", maximum=1e6)
    epsilon = positive_float(epsilon, "epsilon", maximum=1e6)
    seed = _check_seed(seed)
    v = as_direction(v)
    if n * v.numel() > MAX_ELEMENTS:
        raise ValueError(f"n={n:,} samples of {v.numel():,} numbers each exceed {MAX_ELEMENTS:,} numbers "
                         "(8 GiB); draw the data in smaller parts")
    device = get_device(device)
    v = v.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    y = balanced_signs(n, gen, device)
    w = torch.randn((n, *v.shape), generator=gen, device=device) * sigma
    flat_v = v.flatten()
    for _ in range(2):  # remove the component along v; a second pass removes float32 rounding residue
        w -= (w.flatten(1) @ flat_v)[:, None, None, None] * v
    x = w + (y * (epsilon / 2))[:, None, None, None] * v
    return x, y.to(torch.int64)
