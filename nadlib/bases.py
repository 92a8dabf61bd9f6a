"""NAD bases: coefficients, energies, poisoning a NAD coefficient, and the flip (Chapter 3).

A NAD basis is a ``k x 1024`` matrix whose rows are orthonormal 32x32 single-channel directions (a
``k x 1 x 32 x 32`` or ``k x 32 x 32`` tensor is accepted too).  A colour image has one coefficient per
(NAD, channel): ``<x[c], u_i>``.  Nothing here is specific to CIFAR-10 beyond the 32x32 image size.

* :func:`poison_with_nads` sets, for every training image, the coefficient of a class-dependent carrier
  to ``+-epsilon`` (see :func:`poison_assignment` for the exact table), which makes the training set
  linearly separable by the carriers alone.
* :func:`change_basis` ("flip") maps ``x -> U^T flip(U x)`` per channel: the coefficient on NAD ``i``
  moves to NAD ``1023 - i``.  It is an orthogonal map (norms are preserved) and an involution.
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import finite, integer, positive_float
from .config import CIFAR10_CLASSES
from .directions import fourier_basis, frequency_radius, low_to_high_order

IMAGE_SIZE = 32
PIXELS = IMAGE_SIZE * IMAGE_SIZE


def as_nad_basis(nads, name: str = "nads") -> torch.Tensor:
    """Validate a set of NADs and return it as a ``k x 1024`` float32 matrix (rows = directions).

    Accepts a tensor/array of shape ``k x 1024``, ``k x 32 x 32`` or ``k x 1 x 32 x 32``, or an object with
    a ``nads``/``directions``/``basis`` attribute holding one (e.g. what :func:`nadlib.load_nads` returns).
    The rows must be orthonormal (checked to ``1e-3``).
    """
    for attr in ("nads", "directions", "basis"):
        if not isinstance(nads, (torch.Tensor, np.ndarray)) and hasattr(nads, attr):
            nads = getattr(nads, attr)
            break
    if isinstance(nads, dict):
        for attr in ("nads", "directions", "basis"):
            if attr in nads:
                nads = nads[attr]
                break
    try:
        u = torch.as_tensor(nads)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or array of directions, got {type(nads).__name__}") from None
    if not u.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {u.dtype}")
    if u.dim() == 4 and u.shape[1] == 1:
        u = u[:, 0]
    if u.dim() == 3:
        u = u.flatten(1)
    if u.dim() != 2 or u.shape[1] != PIXELS:
        raise ValueError(f"{name} must have shape (k, 1024), (k, 32, 32) or (k, 1, 32, 32), "
                         f"got {tuple(torch.as_tensor(nads).shape)}")
    if not torch.isfinite(u).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    u64 = u.detach().cpu().to(torch.float64)
    err = (u64 @ u64.T - torch.eye(len(u64), dtype=torch.float64)).abs().max().item()
    if err > 1e-3:
        raise ValueError(f"the rows of {name} must be orthonormal; max |U U^T - I| = {err:.2e} > 1e-3")
    return u.detach().to(torch.float32)


def check_images(x, name: str = "x") -> torch.Tensor:
    """Images ``N x C x 32 x 32``, floating point and finite."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images N x C x 32 x 32, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point (images in [0, 1]), got {x.dtype}")
    if x.dim() != 4 or x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{name} must have shape (N, C, 32, 32), got {tuple(x.shape)}")
    return finite(x, name)


def nad_coefficients(x: torch.Tensor, nads) -> torch.Tensor:
    """Coefficients ``<x[n, c], u_i>`` of images ``N x C x 32 x 32`` on NADs; returns ``N x C x k``."""
    x = check_images(x)
    u = as_nad_basis(nads).to(x.device, x.dtype)
    return x.flatten(2) @ u.T


def poison_assignment(index: int, n_nads: int = 1024, num_classes: int = 10) -> list[dict]:
    """The class -> (NAD, channel, sign) table used by :func:`poison_with_nads`.

    Classes are paired into groups ``g = class // 2``; the even class of a pair gets sign ``+1``, the odd
    one ``-1``.  Group ``g`` owns one *slot*: colour channel ``g % 3`` (0 = red, 1 = green, 2 = blue) of NAD
    ``index + g // 3``.  For CIFAR-10 (5 groups) this is::

        classes 0/1 -> NAD index,   red      classes 6/7 -> NAD index+1, red
        classes 2/3 -> NAD index,   green    classes 8/9 -> NAD index+1, green
        classes 4/5 -> NAD index,   blue

    When ``index`` is too close to the end of the basis, the extra NADs are taken *below* it instead
    (``index - 1``, ...), so every index ``0 .. n_nads-1`` can be poisoned.  Every slot is a different
    (NAD, channel) pair, hence the slot coordinates of an image are independent orthonormal coefficients;
    after poisoning, an image of class ``k`` has ``sign_k * epsilon`` in its own slot and ``0`` in every
    other slot, so the 10 classes are the points ``+-epsilon e_g`` -- linearly separable with margin
    ``epsilon`` by the carriers alone.

    Returns:
        one dict per class: ``{"class", "name", "nad", "channel", "sign", "slot"}``.
    """
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    integer(num_classes, "num_classes", minimum=2, maximum=10_000)
    groups = (num_classes + 1) // 2
    needed = (groups + 2) // 3
    if not isinstance(n_nads, (int, np.integer)) or isinstance(n_nads, bool) or n_nads < needed:
        raise ValueError(f"{num_classes} classes need at least {needed} NADs, the basis has {n_nads}")
    if not 0 <= index < n_nads:
        raise ValueError(f"index={index} out of range: NAD indices are 0 .. {n_nads - 1}")
    index = int(index)
    nad_ids = (list(range(index, index + needed)) if index + needed <= n_nads
               else list(range(index, index - needed, -1)))
    table = []
    for k in range(num_classes):
        g = k // 2
        table.append({"class": k, "name": CIFAR10_CLASSES[k] if num_classes == 10 else str(k),
                      "nad": nad_ids[g // 3], "channel": g % 3, "sign": 1 if k % 2 == 0 else -1, "slot": g})
    return table


def poison_with_nads(x: torch.Tensor, y: torch.Tensor, nads, index: int, epsilon: float,
                     num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Poison images so that their class is written in NAD coefficients (the carrier) of size ``epsilon``.

    For every image ``x`` of class ``k`` and every slot ``(NAD u, channel c)`` of :func:`poison_assignment`,
    the coefficient on that slot is *set*::

        x'[c] = x[c] - <x[c], u> u + t u,   t = sign_k * epsilon in the class's own slot, 0 in the others.

    All other coefficients (other NADs, other channels) are unchanged.  Pixels may leave ``[0, 1]``
    slightly; they are not clipped, so the coefficients stay exact.

    Args:
        x: images ``N x 3 x 32 x 32`` (float, e.g. from :func:`load_cifar10`); not modified.
        y: class labels ``N`` in ``0 .. num_classes-1``.
        nads: a NAD basis (see :func:`as_nad_basis`); needs at least ``index + 1`` rows.
        index: the NAD index of the carrier.
        epsilon: the carrier size (> 0), in the units of ``x`` (pixels in [0, 1] -> a unit-norm pattern).
        num_classes: number of classes.

    Returns:
        ``(x_poisoned, carriers)``: the poisoned images (same dtype/device as ``x``) and the carrier of
        each class, ``num_classes x 3 x 32 x 32`` (``sign * epsilon * u`` in its channel), i.e. what a
        zero-coefficient image of that class gets added.
    """
    x = check_images(x)
    if x.shape[1] != 3:
        raise ValueError(f"poisoning uses the three colour channels; x has {x.shape[1]} channels")
    y = torch.as_tensor(y, device=x.device)
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"y must be integer labels of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0 .. {num_classes - 1}")
    epsilon = positive_float(epsilon, "epsilon", maximum=1e6)
    u_all = as_nad_basis(nads)
    table = poison_assignment(index, n_nads=len(u_all), num_classes=num_classes)
    slots = sorted({(r["slot"], r["nad"], r["channel"]) for r in table})
    target = torch.zeros((num_classes, len(slots)), dtype=torch.float64)
    for r in table:
        target[r["class"], r["slot"]] = r["sign"] * epsilon
    target = target.to(x.device)
    out = x.clone()
    carriers = torch.zeros((num_classes, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=x.dtype, device=x.device)
    chunk = 8192
    for g, nad, c in slots:
        u = u_all[nad].to(x.device, torch.float64)
        carriers[:, c] += (target[:, g, None] * u).view(num_classes, IMAGE_SIZE, IMAGE_SIZE).to(x.dtype)
        for s in range(0, len(x), chunk):
            xc = out[s:s + chunk, c].flatten(1).to(torch.float64)
            coef = xc @ u
            xc += (target[y[s:s + chunk], g] - coef)[:, None] * u
            out[s:s + chunk, c] = xc.view(-1, IMAGE_SIZE, IMAGE_SIZE).to(x.dtype)
    return out, carriers


def flip_basis(U) -> torch.Tensor:
    """Validate a *full* orthonormal basis for :func:`change_basis`: ``1024 x 1024``, rows orthonormal."""
    u = as_nad_basis(U, name="U")
    if u.shape[0] != PIXELS:
        raise ValueError(f"the flip needs a full basis of {PIXELS} directions, got {u.shape[0]}")
    return u


def change_basis(x: torch.Tensor, U, order=None) -> torch.Tensor:
    """Re-express images in a permuted basis: ``x' = U^T P U x`` per channel ("flip" by default).

    ``U`` is a full orthonormal basis with the directions as **rows** (``1024 x 1024``, e.g. all NADs,
    first row = first NAD).  Coefficients ``z = U x[c]`` are permuted -- by default reversed, so the
    coefficient on NAD ``i`` moves to NAD ``1023 - i`` -- and mapped back.  The map is orthogonal, so
    ``||x'|| = ||x||`` (up to float rounding), and the flip is an involution.

    Args:
        x: images ``N x C x 32 x 32`` (float); every channel is transformed with the same ``U``.
        U: the basis (see :func:`flip_basis`).
        order: optional permutation of ``0..1023`` (new coefficient ``j`` = old coefficient ``order[j]``);
            default ``1023, 1022, ..., 0``.
    """
    x = check_images(x)
    u = flip_basis(U).to(x.device, torch.float64)
    if order is None:
        perm = torch.arange(PIXELS - 1, -1, -1, device=x.device)
    else:
        perm = torch.as_tensor(order, device=x.device)
        if perm.shape != (PIXELS,) or not torch.equal(perm.sort().values.cpu(), torch.arange(PIXELS)):
            raise ValueError(f"order must be a permutation of 0..{PIXELS - 1}")
    out = torch.empty_like(x)
    chunk = 4096
    for s in range(0, len(x), chunk):
        flat = x[s:s + chunk].flatten(2).to(torch.float64)
        z = flat @ u.T
        out[s:s + chunk] = (z[..., perm] @ u).view_as(x[s:s + chunk]).to(x.dtype)
    return out


def nad_energy(x: torch.Tensor, nads, centre: bool = True) -> torch.Tensor:
    """Mean energy of images along each basis direction: ``E_i = mean_n sum_c <x[n,c] - m_c, u_i>^2``,
    normalised to sum to 1 over the directions given (``centre`` subtracts the mean image ``m`` first).

    Computed in float64; returned as a float32 tensor of length ``k`` (one value per direction), whatever
    the dtype of ``x`` and ``nads``.

    Raises ``ValueError`` when the images carry no energy along the directions (e.g. ``centre=True`` with
    identical images, or all-zero images): the shares would be 0/0."""
    x = check_images(x)
    if centre:
        x = x - x.mean(dim=0, keepdim=True)
    coef = nad_coefficients(x.to(torch.float64), as_nad_basis(nads).to(torch.float64))
    energy = (coef ** 2).sum(dim=1).mean(dim=0)
    total = float(energy.sum())
    if not total > 0:
        why = "the images are all the same once their mean image is subtracted" if centre else "the images are 0"
        raise ValueError(f"the images carry no energy along these directions ({why}): energy shares are undefined")
    return (energy / total).to(torch.float32)


def fourier_energy_by_radius(x: torch.Tensor, centre: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of images along the 1024 real Fourier directions (:func:`nadlib.fourier_basis`), sorted from
    low to high frequency (radius ``sqrt(kx^2 + ky^2)`` with ``k`` folded to ``-16..16``).

    Returns ``(energy, radius)``: normalised energies (sum 1) and the radius of each, both of length 1024,
    comparable index by index with :func:`nad_energy`.  Both are float32 tensors, like :func:`nad_energy`'s
    result (``radius`` is :func:`nadlib.directions.frequency_radius`, which is float64, rounded to float32).
    """
    basis = fourier_basis(IMAGE_SIZE, dtype=torch.float64)
    radius = frequency_radius(IMAGE_SIZE)  # row index = ky * 32 + kx
    order = low_to_high_order(IMAGE_SIZE)
    energy = nad_energy(x, basis, centre=centre).to(torch.float64)
    return energy[order].to(torch.float32), radius[order].to(torch.float32)


def fourier_low_to_high() -> torch.Tensor:
    """The real Fourier basis of 32x32 images (:func:`nadlib.fourier_basis`) with its rows sorted from low
    to high frequency: the NAD-like basis of an isotropic, low-frequency-first model."""
    return fourier_basis(IMAGE_SIZE)[low_to_high_order(IMAGE_SIZE)]
