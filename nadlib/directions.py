"""Fourier directions: real, unit-norm images made from one DFT coefficient.

Convention
----------
An image is indexed ``v[row, col]``.  The direction of frequency ``(kx, ky)`` (``kx`` along columns,
i.e. horizontal, ``ky`` along rows, both in ``0 .. size-1``) is the inverse DFT of a spectrum whose only
non-zero entries are a purely *imaginary* unit at ``(ky, kx)`` and its Hermitian mirror at
``(-ky, -kx)``, so that the image is real.  Normalised, this is the sine wave

    v[r, c] = sqrt(2) / size * sin(2 pi (ky r + kx c) / size).

Frequencies ``(kx, ky)`` and ``(size-kx, size-ky)`` are a *symmetric pair*: they give ``v`` and ``-v``,
the same line, hence the same data distribution D(v) up to a label swap.  Grid helpers therefore keep
one member of each pair (:func:`fourier_grid` with ``half=True``) and maps are filled symmetrically.

For the four *self-conjugate* frequencies (each of ``kx, ky`` is 0 or ``size/2``) the sine vanishes
on the sampling grid; there the real (cosine) part of the coefficient is used instead, so every
frequency has a well-defined direction.  Together the directions form an orthonormal basis of R^(size x size).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import index as _check_index, integer, is_int, positive_int


def _check_size(size: int) -> None:
    positive_int(size, "size", maximum=4096)


def _check_frequency(k, size: int, name: str) -> int:
    if not is_int(k):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if not 0 <= k < size:
        raise ValueError(f"{name}={k} out of range: frequencies are integers in [0, {size - 1}] for size={size}")
    return int(k)


def is_self_conjugate(kx: int, ky: int, size: int = 32) -> bool:
    """True when ``(kx, ky)`` is its own mirror, i.e. the DFT coefficient there is real."""
    return (2 * kx) % size == 0 and (2 * ky) % size == 0


def fourier_direction(kx: int, ky: int, size: int = 32, dtype=torch.float32) -> torch.Tensor:
    """Unit-norm real image (``size x size``) of the Fourier frequency ``(kx, ky)``; see the module docstring."""
    _check_size(size)
    kx = _check_frequency(kx, size, "kx")
    ky = _check_frequency(ky, size, "ky")
    r = torch.arange(size, dtype=torch.float64)[:, None]
    c = torch.arange(size, dtype=torch.float64)[None, :]
    phase = 2 * math.pi * (ky * r + kx * c) / size
    wave = torch.cos(phase) if is_self_conjugate(kx, ky, size) else torch.sin(phase)
    return (wave / wave.norm()).to(dtype)


def mirror(kx: int, ky: int, size: int = 32) -> tuple[int, int]:
    """The symmetric partner of a frequency: ``((size - kx) % size, (size - ky) % size)``."""
    return (-kx) % size, (-ky) % size


def signed_frequency(k: int, size: int = 32) -> int:
    """The signed version of a DFT index ``k`` in ``0..size-1``: ``k`` or ``k - size``, in
    ``[-size//2, size - size//2)`` (the position of ``k`` after ``fftshift``)."""
    k = _check_index(k, "frequency", size)
    return k - size if k >= size - size // 2 else k


def fourier_grid(size: int = 32, stride: int = 1, half: bool = True, band: int | None = None) -> list[tuple[int, int]]:
    """Frequencies ``(kx, ky)`` on a regular grid with step ``stride``.

    With ``half=True`` only one member of each symmetric pair is kept (the first in row-major order),
    which is all a direction experiment needs.  With ``band=B`` only the low-frequency block whose
    signed frequencies lie in ``[-B, B-1]`` is kept (``band=8`` gives the central 16 x 16 block that the
    paper's Fourier maps show).
    """
    _check_size(size)
    positive_int(stride, "stride", maximum=size)
    if band is not None:
        integer(band, "band", minimum=1, maximum=size // 2)
    freqs, seen = [], set()
    for ky in range(0, size, stride):
        for kx in range(0, size, stride):
            if band is not None and not all(-band <= signed_frequency(k, size) < band for k in (kx, ky)):
                continue
            if half and mirror(kx, ky, size) in seen:
                continue
            seen.add((kx, ky))
            freqs.append((kx, ky))
    return freqs


def fourier_basis(size: int = 32, dtype=torch.float32) -> torch.Tensor:
    """All ``size**2`` Fourier directions as rows of an orthonormal matrix, ordered by :func:`fourier_grid`.

    Each symmetric pair contributes its sine (row of the first member) and its cosine (row of the second
    member), so the rows span the whole space.
    """
    rows, index = [], {}
    r = torch.arange(size, dtype=torch.float64)[:, None]
    c = torch.arange(size, dtype=torch.float64)[None, :]
    for ky in range(size):
        for kx in range(size):
            phase = 2 * math.pi * (ky * r + kx * c) / size
            if is_self_conjugate(kx, ky, size):
                wave = torch.cos(phase)
            elif mirror(kx, ky, size) in index:
                wave = torch.cos(phase)  # the partner already holds the sine
            else:
                wave = torch.sin(phase)
            index[(kx, ky)] = len(rows)
            rows.append((wave / wave.norm()).flatten())
    return torch.stack(rows).to(dtype)


def fourier_energy(v, shift: bool = True) -> torch.Tensor:
    """Fraction of the energy of ``v`` at each 2-D frequency, ``|DFT(v)|^2 / sum``, summed over channels.

    ``v`` may be ``H x W``, ``C x H x W`` or ``N x C x H x W`` (one map per leading item).  With
    ``shift=True`` the zero frequency is moved to the centre (``torch.fft.fftshift``), as in the figures.
    """
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.dim() < 2:
        raise ValueError(f"fourier_energy needs an image of at least 2 dims (H x W), got shape {tuple(v.shape)}")
    spec = torch.fft.fft2(v).abs() ** 2
    if v.dim() >= 3:
        spec = spec.sum(dim=-3)
    total = spec.sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    energy = spec / total
    return torch.fft.fftshift(energy, dim=(-2, -1)) if shift else energy


def fill_symmetric(values: dict, size: int = 32, fill=np.nan) -> np.ndarray:
    """A ``size x size`` map (rows ``ky``, columns ``kx``) from ``{(kx, ky): value}``, mirrored to both members
    of each symmetric pair; missing frequencies get ``fill``.  Raises ``ValueError`` for a frequency outside
    ``0..size-1``."""
    _check_size(size)
    outside = [f for f in values if not all(is_int(k) and 0 <= k < size for k in f)]
    if outside:
        raise ValueError(f"frequencies must be (kx, ky) with 0 <= kx, ky < {size} (the map's size), got "
                         f"{outside[:4]}")
    grid = np.full((size, size), fill, dtype=float)
    for (kx, ky), value in values.items():
        grid[ky, kx] = value
        mx, my = mirror(kx, ky, size)
        grid[my, mx] = value
    return grid


def frequency_radius(size: int = 32) -> torch.Tensor:
    """``sqrt(kx^2 + ky^2)`` of every row of :func:`fourier_basis` (row ``ky * size + kx``), with each index
    folded to its distance from 0 (``min(k, size - k)``), float64."""
    _check_size(size)
    k = torch.arange(size, dtype=torch.float64)
    k = torch.minimum(k, size - k)
    return (k[:, None] ** 2 + k[None, :] ** 2).sqrt().flatten()


def low_to_high_order(size: int = 32) -> torch.Tensor:
    """The permutation of the rows of :func:`fourier_basis` from low to high :func:`frequency_radius`
    (stable: ties keep the basis order)."""
    return torch.argsort(frequency_radius(size), stable=True)
