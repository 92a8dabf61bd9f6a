"""CIFAR-10 and NADs: loading, NAD poisoning, learning in a flipped NAD basis (Chapter 3).

Data sources
------------
:func:`load_cifar10` reads the real CIFAR-10 from one of two sources, in this order:

1. a local ``.npz`` file with the arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (``uint8``,
   images ``N x 32 x 32 x 3``, labels ``N``), given by the argument ``npz=`` or by the environment
   variable ``NADLIB_CIFAR10_NPZ`` -- for offline machines and clusters;
2. otherwise ``torchvision.datasets.CIFAR10`` in a cache folder: the argument ``root=``, else
   ``$NADLIB_DATA/cifar10``, else ``~/.cache/nadlib/cifar10`` (the folder that holds
   ``cifar-10-batches-py/``).  With ``download=True`` torchvision downloads the official archive there
   (163 MB) the first time.

When neither source has the data and it cannot be downloaded, :class:`CIFAR10NotFoundError` says where
it looked, what to download and which variable to set.  Loaded tensors are kept in memory, so a
second call with the same source costs nothing.

For tests, CI and the ``smoke`` profile, :func:`synthetic_cifar10` makes small structured images in the
same layout, and :func:`write_cifar10_batches` / :func:`write_cifar10_npz` store them in the official
pickle layout (``cifar-10-batches-py/``) or as ``.npz``, so both loading paths run without the data set.

NADs as a basis
---------------
A NAD basis is a ``k x 1024`` matrix whose rows are orthonormal 32x32 single-channel directions (a
``k x 1 x 32 x 32`` or ``k x 32 x 32`` tensor is accepted too).  A colour image has one coefficient per
(NAD, channel): ``<x[c], u_i>``.

* :func:`poison_with_nads` sets, for every training image, the coefficient of a class-dependent carrier
  to ``+-epsilon`` (see :func:`poison_assignment` for the exact table), which makes the training set
  linearly separable by the carriers alone.
* :func:`change_basis` ("flip") maps ``x -> U^T flip(U x)`` per channel: the coefficient on NAD ``i``
  moves to NAD ``1023 - i``.  It is an orthogonal map (norms are preserved) and an involution.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import get_device, get_profile

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10NotFoundError", "DATA_ENV", "NPZ_ENV", "default_cifar10_root",
    "load_cifar10", "clear_cifar10_cache", "balanced_subset", "synthetic_cifar10", "write_cifar10_batches",
    "write_cifar10_npz", "as_nad_basis", "nad_coefficients", "poison_assignment", "poison_with_nads",
    "change_basis", "flip_basis", "nad_energy", "fourier_energy_by_radius", "CIFARHyperParams",
    "cifar_hyperparams", "cifar_data", "run_poison_sweep", "run_flip", "load_basis",
]

#: Environment variable naming the cache folder of data sets (CIFAR-10 goes to ``$NADLIB_DATA/cifar10``).
DATA_ENV = "NADLIB_DATA"
#: Environment variable naming a local ``.npz`` copy of CIFAR-10 (``x_train, y_train, x_test, y_test``).
NPZ_ENV = "NADLIB_CIFAR10_NPZ"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_BATCHES = "cifar-10-batches-py"
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SIZE = 32
PIXELS = IMAGE_SIZE * IMAGE_SIZE


class CIFAR10NotFoundError(FileNotFoundError):
    """CIFAR-10 is neither on disk nor downloadable; the message says where we looked and what to do."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

def default_cifar10_root() -> Path:
    """The torchvision cache folder: ``$NADLIB_DATA/cifar10`` if set, else ``~/.cache/nadlib/cifar10``."""
    base = os.environ.get(DATA_ENV, "").strip()
    return (Path(base).expanduser() / "cifar10") if base else Path.home() / ".cache" / "nadlib" / "cifar10"


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"CIFAR-10 is not available: {reason}\n"
        f"  looked in : {root / _BATCHES} (torchvision layout: data_batch_1..5, test_batch, batches.meta)\n"
        f"  download  : {_CIFAR10_URL} (163 MB) and extract it into {root}\n"
        f"              (or run once with download=True on a machine with internet access)\n"
        f"  or set    : {DATA_ENV}=<folder> to use <folder>/cifar10 as the cache folder, or\n"
        f"              {NPZ_ENV}=<file.npz> for a local .npz with x_train, y_train, x_test, y_test "
        f"(uint8, N x 32 x 32 x 3)")


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Quick check that the download host accepts a TCP connection (so offline machines fail fast)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _batches_present(root: Path) -> bool:
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return all((root / _BATCHES / f).is_file() for f in files)


_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def clear_cifar10_cache() -> None:
    """Forget the tensors kept in memory by :func:`load_cifar10`."""
    _CACHE.clear()


def _check_npz_arrays(arrays: dict, source: str) -> None:
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing arrays {missing}; a CIFAR-10 .npz needs {list(_NPZ_KEYS)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"{source}: x_{split} must be uint8 of shape (N, 32, 32, 3), "
                             f"got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{source}: y_{split} must be integer labels of shape ({x.shape[0]},), "
                             f"got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"{source}: y_{split} must hold class indices 0..9, "
                             f"got values in [{y.min()}, {y.max()}]")


def _read_npz(path: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise CIFAR10NotFoundError(
            f"CIFAR-10 .npz not found at {str(path)!r} (given by npz= or ${NPZ_ENV}); point it at a file "
            f"with x_train, y_train, x_test, y_test (uint8, N x 32 x 32 x 3), or unset {NPZ_ENV} to use "
            f"the torchvision download")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k in _NPZ_KEYS}
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a readable .npz without pickles: {err}") from None
    _check_npz_arrays(arrays, str(path))
    split = "train" if train else "test"
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def _read_torchvision(root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        from torchvision.datasets import CIFAR10
    except ImportError:  # pragma: no cover - torchvision is installed with the book's requirements
        raise CIFAR10NotFoundError(
            _missing_message(root, "torchvision is not installed (pip install torchvision)")) from None
    if not _batches_present(root):
        if not download:
            raise CIFAR10NotFoundError(_missing_message(root, "the files are not there and download=False"))
        if not _reachable(_CIFAR10_URL):
            raise CIFAR10NotFoundError(_missing_message(
                root, f"the files are not there and {urlparse(_CIFAR10_URL).hostname} cannot be reached "
                      "(offline?)"))
    try:
        ds = CIFAR10(str(root), train=train, download=download)
    except Exception as err:  # urllib/OSError/RuntimeError from torchvision: one clear message instead
        raise CIFAR10NotFoundError(_missing_message(root, f"{type(err).__name__}: {err}")) from None
    return np.asarray(ds.data), np.asarray(ds.targets)


def load_cifar10(root=None, train: bool = True, download: bool = True, device=None,
                 npz=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the CIFAR-10 training (``train=True``) or test split.

    Args:
        root: torchvision cache folder (holding ``cifar-10-batches-py/``); default
            :func:`default_cifar10_root` (``$NADLIB_DATA/cifar10`` or ``~/.cache/nadlib/cifar10``).
        train: the 50,000 training images, or the 10,000 test images.
        download: let torchvision download the official archive into ``root`` when it is missing.
        device: where the tensors live (default: CUDA if available, else CPU).
        npz: a local ``.npz`` with ``x_train, y_train, x_test, y_test`` (uint8, ``N x 32 x 32 x 3``);
            default ``$NADLIB_CIFAR10_NPZ``.  When given, it is used instead of torchvision.

    Returns:
        ``(x, y)``: images ``N x 3 x 32 x 32`` float32 in ``[0, 1]`` and labels ``N`` int64 (0..9, order
        of :data:`CIFAR10_CLASSES`), on ``device``.  They are cached in memory per (source, split,
        device); do not modify them in place.

    Raises:
        CIFAR10NotFoundError: the data is neither on disk nor downloadable (the message says what to do).
        ValueError: the ``.npz`` has missing keys or wrong shapes/dtypes.
    """
    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool, got {type(train).__name__}")
    device = get_device(device)
    if npz is None and os.environ.get(NPZ_ENV, "").strip():
        npz = os.environ[NPZ_ENV].strip()
    if npz is not None:
        path = Path(npz).expanduser().resolve()
        key = ("npz", str(path), path.stat().st_mtime_ns if path.exists() else 0, train, str(device))
    else:
        path = Path(root).expanduser().resolve() if root is not None else default_cifar10_root()
        key = ("torchvision", str(path), train, str(device))
    if key in _CACHE:
        return _CACHE[key]
    images, labels = _read_npz(path, train) if npz is not None else _read_torchvision(path, train, download)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    _CACHE[key] = (x.contiguous(), y)
    return _CACHE[key]


def balanced_subset(y, n: int, num_classes: int = 10, seed: int | None = None) -> torch.Tensor:
    """Indices of a class-balanced subset of ``n`` samples (``n // num_classes`` per class, the remainder
    going to the first classes).

    With ``seed=None`` it takes the *first* samples of each class in data-set order (deterministic, what the
    profiles use); with a seed it draws them at random with that seed.  The indices are returned sorted.

    Raises:
        ValueError: if ``n`` is not a positive int or a class has too few samples.
    """
    y = torch.as_tensor(y).cpu()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(y.shape)}")
    if n >= len(y):
        return torch.arange(len(y))
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    chosen = []
    for c in range(num_classes):
        want = n // num_classes + (1 if c < n % num_classes else 0)
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < want:
            raise ValueError(f"class {c} has only {len(idx)} samples, {want} requested (n={n})")
        if gen is not None:
            idx = idx[torch.randperm(len(idx), generator=gen)]
        chosen.append(idx[:want])
    return torch.cat(chosen).sort().values


# --------------------------------------------------------------------------------------------------
# Synthetic CIFAR-format data (tests, CI, smoke profile)
# --------------------------------------------------------------------------------------------------

def _smooth_fields(n: int, gen: torch.Generator, cutoff: float) -> torch.Tensor:
    """``n x 3 x 32 x 32`` random colour fields, low-pass filtered (Gaussian spectrum of width ``cutoff``),
    each normalised to unit standard deviation."""
    noise = torch.randn((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen, dtype=torch.float64)
    f = torch.fft.fftfreq(IMAGE_SIZE, d=1.0 / IMAGE_SIZE, dtype=torch.float64)
    radius2 = f[:, None] ** 2 + f[None, :] ** 2
    spec = torch.fft.fft2(noise) * torch.exp(-radius2 / (2 * cutoff ** 2))
    out = torch.fft.ifft2(spec).real
    out = out - out.mean(dim=(-2, -1), keepdim=True)
    return out / out.std(dim=(-3, -2, -1), keepdim=True).clamp_min(1e-12)


def synthetic_cifar10(n_train: int = 500, n_test: int = 200, seed: int = 0, signal: float = 0.06,
                      noise: float = 0.16) -> dict[str, np.ndarray]:
    """Small structured CIFAR-like data in the ``.npz`` layout (not real images!).

    Each class ``k`` has a fixed smooth colour template ``T_k`` (low-pass random field); an image of class
    ``k`` is ``clip(0.5 + signal * T_k + noise * B_i, 0, 1)`` quantised to ``uint8``, with ``B_i`` an
    independent smooth background of the same kind (unit pixel std).  With the defaults the class signal
    is weaker than the background, so a network needs a few epochs to find it -- like real images, and
    unlike a NAD carrier at a first NAD.  Labels are balanced and shuffled.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test"}``: uint8 images ``N x 32 x 32 x 3``, uint8 labels.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 10:
            raise ValueError(f"{name} must be an int >= 10 (one image per class), got {value!r}")
    gen = torch.Generator().manual_seed(int(seed))
    templates = _smooth_fields(10, gen, cutoff=2.0)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = torch.arange(n) % 10
        y = y[torch.randperm(n, generator=gen)]
        x = 0.5 + signal * templates[y] + noise * _smooth_fields(n, gen, cutoff=4.0)
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        out[f"x_{split}"] = x.numpy().copy()
        out[f"y_{split}"] = y.to(torch.uint8).numpy()
    return out


def write_cifar10_npz(path, arrays: dict) -> Path:
    """Write CIFAR-10-layout arrays (see :func:`synthetic_cifar10`) to ``path`` as an ``.npz``."""
    _check_npz_arrays(arrays, "arrays")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(arrays[k]) for k in _NPZ_KEYS})
    return path


class _Py2Str(str):
    """A text that is pickled like a Python 2 ``str`` (opcode ``SHORT_BINSTRING``/``BINSTRING``), as in the
    official CIFAR-10 archive: Python 3 reads it back as ``str`` with ``encoding="latin1"`` (what torchvision
    does) and as ``bytes`` with ``encoding="bytes"`` (the recipe of the CIFAR-10 web page)."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add one opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        data = str(obj).encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def write_cifar10_batches(root, arrays: dict) -> dict[str, str]:
    """Write CIFAR-10-layout arrays in the official python pickle layout under ``root/cifar-10-batches-py``.

    The training images are split over ``data_batch_1 .. data_batch_5`` (as evenly as possible), the test
    images go to ``test_batch``; each file is a pickled dict (protocol 2, keys pickled as Python 2 strings
    like the original archive) with ``"data"`` (uint8, ``N x 3072``, the three 32x32 channel planes one
    after the other) and ``"labels"`` (a list of ints); ``batches.meta`` holds ``"label_names"``.
    Read with ``encoding="bytes"`` the keys are ``b"data"``, ``b"labels"``, as for the original files.

    Returns:
        the MD5 checksum of every file written (file name -> hex digest).  torchvision checks the MD5s of
        the official files, so a reader of *these* files must use these checksums instead.
    """
    _check_npz_arrays(arrays, "arrays")
    folder = Path(root) / _BATCHES
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj) -> None:
        with open(folder / name, "wb") as fh:
            _Py2Pickler(fh, protocol=2).dump(obj)

    def batch(x: np.ndarray, y: np.ndarray, label: str) -> dict:
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1), dtype=np.uint8)
        return {_Py2Str("batch_label"): _Py2Str(label), _Py2Str("labels"): [int(v) for v in y],
                _Py2Str("data"): data,
                _Py2Str("filenames"): [_Py2Str(f"synthetic_{i:05d}.png") for i in range(len(x))]}

    x, y = arrays["x_train"], arrays["y_train"]
    for i, part in enumerate(np.array_split(np.arange(len(x)), 5), start=1):
        dump(f"data_batch_{i}", batch(x[part], y[part], f"training batch {i} of 5"))
    dump("test_batch", batch(arrays["x_test"], arrays["y_test"], "testing batch 1 of 1"))
    dump("batches.meta", {_Py2Str("label_names"): [_Py2Str(c) for c in CIFAR10_CLASSES],
                          _Py2Str("num_cases_per_batch"): int(math.ceil(len(x) / 5)),
                          _Py2Str("num_vis"): 3072})
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------------------------------
# NAD bases, poisoning and the flip
# --------------------------------------------------------------------------------------------------

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


def _check_images(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of images N x C x 32 x 32, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point (images in [0, 1]), got {x.dtype}")
    if x.dim() != 4 or x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{name} must have shape (N, C, 32, 32), got {tuple(x.shape)}")
    return x


def nad_coefficients(x: torch.Tensor, nads) -> torch.Tensor:
    """Coefficients ``<x[n, c], u_i>`` of images ``N x C x 32 x 32`` on NADs; returns ``N x C x k``."""
    x = _check_images(x)
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
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    groups = (num_classes + 1) // 2
    needed = (groups + 2) // 3
    if not isinstance(n_nads, (int, np.integer)) or n_nads < needed:
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
    x = _check_images(x)
    if x.shape[1] != 3:
        raise ValueError(f"poisoning uses the three colour channels; x has {x.shape[1]} channels")
    y = torch.as_tensor(y, device=x.device)
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"y must be integer labels of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0 .. {num_classes - 1}")
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
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
    x = _check_images(x)
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
    normalised to sum to 1 over the directions given (``centre`` subtracts the mean image ``m`` first)."""
    x = _check_images(x)
    if centre:
        x = x - x.mean(dim=0, keepdim=True)
    coef = nad_coefficients(x.to(torch.float64), as_nad_basis(nads).to(torch.float64))
    energy = (coef ** 2).sum(dim=1).mean(dim=0)
    return (energy / energy.sum()).to(torch.float32)


def fourier_energy_by_radius(x: torch.Tensor, centre: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of images along the 1024 real Fourier directions (:func:`nadlib.fourier_basis`), sorted from
    low to high frequency (radius ``sqrt(kx^2 + ky^2)`` with ``k`` folded to ``-16..16``).

    Returns ``(energy, radius)``: normalised energies (sum 1) and the radius of each, both of length 1024,
    comparable index by index with :func:`nad_energy`.
    """
    from .directions import fourier_basis

    basis = fourier_basis(IMAGE_SIZE, dtype=torch.float64)
    k = torch.arange(IMAGE_SIZE, dtype=torch.float64)
    k = torch.minimum(k, IMAGE_SIZE - k)
    radius = (k[:, None] ** 2 + k[None, :] ** 2).sqrt().flatten()  # row index = ky * 32 + kx
    order = torch.argsort(radius, stable=True)
    energy = nad_energy(x, basis, centre=centre).to(torch.float64)
    return energy[order].to(torch.float32), radius[order].to(torch.float32)


# --------------------------------------------------------------------------------------------------
# Experiments: poisoning sweep and flip
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CIFARHyperParams:
    """The CIFAR-10 training recipe of this book (one recipe for every architecture and data variant).

    SGD with (heavy-ball) momentum 0.9, learning rate 0.02 decayed linearly to 0 over all steps, weight
    decay 5e-4, mini-batches of 128, no gradient clipping, no data augmentation; images are normalised
    per colour channel with the mean and standard deviation of the training set the network is trained
    on (clean, poisoned or flipped), and the test images with the same affine map.  A conventional recipe, chosen so
    that a LeNet learns CIFAR-10 in a few epochs on a CPU; the paper's exact CIFAR recipe may differ.
    """

    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    clip: float | None = None

    def train_kwargs(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "clip": self.clip}


def cifar_hyperparams(profile=None) -> CIFARHyperParams:
    """The recipe for a profile (only the batch size comes from the profile)."""
    cfg = (profile or get_profile()).cifar
    return CIFARHyperParams(batch_size=cfg.batch_size)


def cifar_data(profile=None, *, n_train: int | None = None, n_test: int | None = None, npz=None,
               root=None, download: bool = True, synthetic: bool | None = None, seed: int = 0,
               device=None) -> dict:
    """The CIFAR-10 data of an experiment: class-balanced subsets of the sizes of ``profile.cifar``.

    ``synthetic=None`` (default) uses the real CIFAR-10 (``npz``/``$NADLIB_CIFAR10_NPZ``, else torchvision
    in ``root``) and raises :class:`CIFAR10NotFoundError` when it is missing; ``synthetic=True`` uses
    :func:`synthetic_cifar10` (structured stand-in images, *not* CIFAR-10) -- for tests and the smoke
    profile.  Training images are the first ``n_train / 10`` of each class, test images likewise.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test", "source", "n_train", "n_test"}`` (tensors on ``device``,
        images in ``[0, 1]``); ``source`` says where the images came from.
    """
    cfg = (profile or get_profile()).cifar
    n_train = cfg.n_train if n_train is None else n_train
    n_test = cfg.n_test if n_test is None else n_test
    device = get_device(device)
    if synthetic:
        arrays = synthetic_cifar10(n_train, n_test, seed=seed)
        to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        x_tr = to(arrays["x_train"]).permute(0, 3, 1, 2).float().div(255)
        x_te = to(arrays["x_test"]).permute(0, 3, 1, 2).float().div(255)
        y_tr, y_te = to(arrays["y_train"]).long(), to(arrays["y_test"]).long()
        source = f"synthetic stand-in images (nadlib.cifar.synthetic_cifar10, seed {seed}), NOT CIFAR-10"
    else:
        x_tr, y_tr = load_cifar10(root, True, download, device, npz)
        x_te, y_te = load_cifar10(root, False, download, device, npz)
        npz = npz or os.environ.get(NPZ_ENV, "").strip() or None
        source = (f"CIFAR-10 from a local .npz ({Path(npz).name})" if npz
                  else f"CIFAR-10 via torchvision ({root or default_cifar10_root()})")
        i_tr, i_te = balanced_subset(y_tr, n_train).to(device), balanced_subset(y_te, n_test).to(device)
        x_tr, y_tr, x_te, y_te = x_tr[i_tr], y_tr[i_tr], x_te[i_te], y_te[i_te]
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te, "source": source,
            "n_train": len(x_tr), "n_test": len(x_te)}


def _normaliser(x: torch.Tensor):
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return lambda z: (z - mean) / std


def _train_one(arch: str, x_tr, y_tr, x_te, y_te, *, epochs: int, seed: int, device, hp: CIFARHyperParams,
               progress: bool):
    from .training import _seeded_model, train

    model = _seeded_model(arch, seed, in_channels=3, num_classes=10)
    return train(model, x_tr, y_tr, x_te, y_te, epochs=epochs, seed=seed, device=device,
                 progress=progress, **hp.train_kwargs())


def _settings(arch, data, epochs, seed, hp, **extra) -> dict:
    return {"arch": arch, "n_train": data["n_train"], "n_test": data["n_test"], "source": data["source"],
            "epochs": epochs, "seed": seed, **asdict(hp), **extra}


def run_poison_sweep(arch: str, nads, data: dict, *, indices=None, epsilon: float | None = None, epochs: int | None = None,
                     seed: int = 0, device=None, hp: CIFARHyperParams | None = None, checkpoint=None,
                     baseline: bool = True, progress: bool = True, profile=None) -> tuple[dict, dict]:
    """Train ``arch`` on training data poisoned at each NAD index; test on the clean test set.

    For each index ``i`` the training images get the class carriers of :func:`poison_with_nads` at NAD ``i``
    (strength ``epsilon``); the same initialisation, batch order and recipe are used for every index (a
    common-random-numbers design).  With ``baseline=True`` the unpoisoned run is added (index ``-1``).

    Measured per run (accuracies in [0, 1]):

    * ``train_acc``: on the poisoned training set (eval mode, after training);
    * ``test_acc``: on the *clean* test set -- what the network learned about the images;
    * ``poisoned_test_acc``: on the test set poisoned like the training set (carrier agrees with the label);
    * ``carrier_acc``: on test images carrying the carrier of *another* class (``(y + 1) mod 10``), the
      fraction classified as that carrier's class -- how much the network follows the carrier;
    * ``test_curve``: clean test accuracy after every epoch.

    Args:
        nads: the NAD basis (:func:`as_nad_basis`), indices refer to its rows.
        data: from :func:`cifar_data`.
        indices: NAD indices (default: ``profile.cifar.poison_indices``).
        epsilon: carrier size (default: ``profile.cifar.epsilon``).
        checkpoint: optional ``.npz`` path; finished runs are stored there and skipped when resumed.

    Returns:
        ``(arrays, settings)`` ready for :func:`nadlib.save_artifact`.
    """
    from .training import evaluate

    cfg = (profile or get_profile()).cifar
    indices = [int(i) for i in (cfg.poison_indices if indices is None else indices)]
    epochs = cfg.epochs if epochs is None else epochs
    epsilon = cfg.epsilon if epsilon is None else epsilon
    hp = hp or cifar_hyperparams(profile)
    device = get_device(device)
    u = as_nad_basis(nads)
    for i in indices:
        poison_assignment(i, len(u))  # validates every index before any training
    runs = ([-1] if baseline else []) + indices
    settings = _settings(arch, data, epochs, seed, hp, epsilon=float(epsilon), indices=runs,
                         nads_sha1=hashlib.sha1(u.numpy().tobytes()).hexdigest())
    ckpt = None
    done: dict = {}
    if checkpoint is not None:
        from .results import Checkpoint

        ckpt = Checkpoint(checkpoint, settings)
        done = {k: v for k, v in ckpt.arrays.items()}
    x_tr, y_tr = data["x_train"].to(device), data["y_train"].to(device)
    x_te, y_te = data["x_test"].to(device), data["y_test"].to(device)
    y_other = (y_te + 1) % 10
    bar = tqdm(runs, desc=f"{arch} poisoning", unit="run", disable=not progress)
    for i in bar:
        key = f"run_{i}" if i >= 0 else "run_clean"
        if f"{key}_test_acc" in done:
            continue
        bar.set_postfix(index=i if i >= 0 else "clean")
        start = time.perf_counter()
        if i >= 0:
            x_p, _ = poison_with_nads(x_tr, y_tr, u, i, epsilon)
            x_tp, _ = poison_with_nads(x_te, y_te, u, i, epsilon)
            x_tc, _ = poison_with_nads(x_te, y_other, u, i, epsilon)
        else:
            x_p, x_tp, x_tc = x_tr, x_te, x_te
        norm = _normaliser(x_p)  # statistics of the training set actually used, applied to every test set
        result = _train_one(arch, norm(x_p), y_tr, norm(x_te), y_te, epochs=epochs, seed=seed, device=device,
                            hp=hp, progress=progress)
        model = result.model
        record = {
            "train_acc": evaluate(model, norm(x_p), y_tr),
            "test_acc": result.final_test_acc,
            "poisoned_test_acc": evaluate(model, norm(x_tp), y_te),
            "carrier_acc": evaluate(model, norm(x_tc), y_other) if i >= 0 else float("nan"),
            "test_curve": np.array(result.test_acc),
            "wall_time": time.perf_counter() - start,
        }
        done.update({f"{key}_{k}": np.asarray(v) for k, v in record.items()})
        if ckpt is not None:
            ckpt.save(**{f"{key}_{k}": v for k, v in record.items()})
    bar.close()
    keys = [f"run_{i}" if i >= 0 else "run_clean" for i in runs]
    arrays = {"indices": np.array(indices, dtype=np.int64)}
    for name in ("train_acc", "test_acc", "poisoned_test_acc", "carrier_acc", "wall_time"):
        arrays[name] = np.array([float(done[f"{k}_{name}"]) for k in keys if k != "run_clean"])
    arrays["test_curve"] = np.stack([done[f"{k}_test_curve"] for k in keys if k != "run_clean"])
    if baseline:
        for name in ("train_acc", "test_acc", "wall_time"):
            arrays[f"clean_{name}"] = np.array(float(done[f"run_clean_{name}"]))
        arrays["clean_test_curve"] = done["run_clean_test_curve"]
    # the class table for index 0: columns class, NAD offset (0: NAD i, 1: NAD i+1 -- i-1 at the end of
    # the basis), channel, sign; see poison_assignment
    arrays["assignment"] = np.array([[r["class"], r["nad"], r["channel"], r["sign"]]
                                     for r in poison_assignment(0, len(u))], dtype=np.int64)
    return arrays, settings


def run_flip(arch: str, U, data: dict, *, epochs: int | None = None, seed: int = 0, device=None,
             hp: CIFARHyperParams | None = None, checkpoint=None, progress: bool = True,
             profile=None) -> tuple[dict, dict]:
    """Train ``arch`` on CIFAR-10 and on its NAD-flipped version (:func:`change_basis`), same recipe and seed.

    Returns ``(arrays, settings)`` with ``variants = ["original", "flipped"]`` and, per variant,
    ``train_acc`` (eval mode, after training), ``test_acc`` and ``test_curve`` (per epoch) and ``wall_time``.
    The flipped test set is the flip of the clean test set (same ``U``).
    """
    from .training import evaluate

    cfg = (profile or get_profile()).cifar
    epochs = cfg.epochs if epochs is None else epochs
    hp = hp or cifar_hyperparams(profile)
    device = get_device(device)
    u = flip_basis(U)
    settings = _settings(arch, data, epochs, seed, hp, basis_sha1=hashlib.sha1(u.numpy().tobytes()).hexdigest())
    ckpt = None
    done: dict = {}
    if checkpoint is not None:
        from .results import Checkpoint

        ckpt = Checkpoint(checkpoint, settings)
        done = dict(ckpt.arrays)
    x_tr, y_tr = data["x_train"].to(device), data["y_train"].to(device)
    x_te, y_te = data["x_test"].to(device), data["y_test"].to(device)
    variants = ("original", "flipped")
    bar = tqdm(variants, desc=f"{arch} flip", unit="run", disable=not progress)
    for name in bar:
        if f"{name}_test_acc" in done:
            continue
        start = time.perf_counter()
        a, b = (x_tr, x_te) if name == "original" else (change_basis(x_tr, u), change_basis(x_te, u))
        norm = _normaliser(a)
        result = _train_one(arch, norm(a), y_tr, norm(b), y_te, epochs=epochs, seed=seed, device=device,
                            hp=hp, progress=progress)
        record = {"train_acc": evaluate(result.model, norm(a), y_tr), "test_acc": result.final_test_acc,
                  "test_curve": np.array(result.test_acc), "wall_time": time.perf_counter() - start}
        done.update({f"{name}_{k}": np.asarray(v) for k, v in record.items()})
        if ckpt is not None:
            ckpt.save(**{f"{name}_{k}": v for k, v in record.items()})
    bar.close()
    arrays = {"variants": np.array(variants),
              "train_acc": np.array([float(done[f"{v}_train_acc"]) for v in variants]),
              "test_acc": np.array([float(done[f"{v}_test_acc"]) for v in variants]),
              "test_curve": np.stack([done[f"{v}_test_curve"] for v in variants]),
              "wall_time": np.array([float(done[f"{v}_wall_time"]) for v in variants])}
    return arrays, settings


# --------------------------------------------------------------------------------------------------
# Command line: python -m nadlib poison | flip
# --------------------------------------------------------------------------------------------------

def load_basis(spec, device=None) -> torch.Tensor:
    """A basis for the experiments from a file or a name.

    ``spec`` is a path to NADs written by :func:`nadlib.save_nads` / an artifact with an array ``nads``
    (or ``directions``/``basis``), or ``"fourier"``: the real Fourier basis sorted from low to high
    frequency (a NAD-like basis for an isotropic, low-frequency-first model), or a tensor (returned
    validated).
    """
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        return as_nad_basis(spec)
    if str(spec) == "fourier":
        from .directions import fourier_basis

        k = torch.arange(IMAGE_SIZE, dtype=torch.float64)
        k = torch.minimum(k, IMAGE_SIZE - k)
        radius = (k[:, None] ** 2 + k[None, :] ** 2).flatten()
        return fourier_basis(IMAGE_SIZE)[torch.argsort(radius, stable=True)]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no NAD file at {str(path)!r} (write one with `python -m nadlib nads ...`, "
                                "or pass 'fourier')")
    try:
        from .nads import load_nads
    except ImportError:
        load_nads = None
    if load_nads is not None:
        try:
            return as_nad_basis(load_nads(path))
        except (KeyError, ValueError, TypeError):
            pass
    with np.load(path, allow_pickle=False) as data:
        for key in ("nads", "directions", "basis"):
            if key in data.files:
                return as_nad_basis(data[key])
        raise ValueError(f"{str(path)!r} has no array 'nads', 'directions' or 'basis' (found {data.files})")


def _cli_data(args, profile):
    return cifar_data(profile, n_train=args.n_train, n_test=args.n_test, npz=args.npz, root=args.root,
                      download=not args.no_download, synthetic=args.synthetic or None, seed=args.seed,
                      device=args.device)


def _cli_finish(args, profile, arrays, settings, wall, extra) -> Path:
    from .results import provenance, save_artifact

    out = Path(args.out)
    device = get_device(args.device)
    meta = provenance(device=device, profile=profile.name, wall_time=wall, settings=settings, **extra)
    save_artifact(out, arrays, meta)
    return out


def _ckpt_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".ckpt.npz")


def _cli_setup(args):
    """What both CIFAR commands start with: profile, start time, NAD basis, data, checkpoint path."""
    profile = get_profile(args.profile)
    start = time.perf_counter()
    u = load_basis(args.nads)
    data = _cli_data(args, profile)
    print(f"data: {data['source']}, {data['n_train']} train / {data['n_test']} test images")
    return profile, start, u, data, _ckpt_path(args.out)


def run_poison_cli(args) -> None:
    """``python -m nadlib poison``: the NAD-poisoning sweep; resumable; writes an artifact."""
    profile, start, u, data, ckpt = _cli_setup(args)
    arrays, settings = run_poison_sweep(args.arch, u, data, indices=args.indices, epsilon=args.epsilon,
                                        epochs=args.epochs, seed=args.seed, device=args.device,
                                        checkpoint=ckpt, profile=profile)
    wall = float(arrays["wall_time"].sum() + arrays.get("clean_wall_time", 0.0))
    out = _cli_finish(args, profile, arrays, settings, wall,
                      {"nads_file": str(args.nads), "data_source": data["source"],
                       "elapsed_this_session": time.perf_counter() - start})
    ckpt.unlink(missing_ok=True)
    print(f"wrote {out} ({wall:.0f} s of training)")
    print(" index | train acc (poisoned) | clean test acc | carrier-following")
    if "clean_test_acc" in arrays:
        print(f" clean | {float(arrays['clean_train_acc']):20.3f} | {float(arrays['clean_test_acc']):14.3f} |")
    for i, a, b, c in zip(arrays["indices"], arrays["train_acc"], arrays["test_acc"], arrays["carrier_acc"]):
        print(f" {i:5d} | {a:20.3f} | {b:14.3f} | {c:.3f}")


def run_flip_cli(args) -> None:
    """``python -m nadlib flip``: train on CIFAR-10 and on its NAD-flipped version; writes an artifact."""
    profile, start, u, data, ckpt = _cli_setup(args)
    arrays, settings = run_flip(args.arch, u, data, epochs=args.epochs, seed=args.seed, device=args.device,
                                checkpoint=ckpt, profile=profile)
    wall = float(arrays["wall_time"].sum())
    out = _cli_finish(args, profile, arrays, settings, wall,
                      {"nads_file": str(args.nads), "data_source": data["source"],
                       "elapsed_this_session": time.perf_counter() - start})
    ckpt.unlink(missing_ok=True)
    print(f"wrote {out} ({wall:.0f} s of training)")
    for v, a, b in zip(arrays["variants"], arrays["train_acc"], arrays["test_acc"]):
        print(f" {v:9s} train {a:.3f}  test {b:.3f}")


def _common_args(p) -> None:
    from .models import ARCHITECTURES

    p.add_argument("--arch", required=True, choices=ARCHITECTURES)
    p.add_argument("--nads", required=True, help="NAD file (.npz) of this architecture, or 'fourier'")
    p.add_argument("--profile", default=None, help="smoke | default | paper (default: $NADLIB_PROFILE or default)")
    p.add_argument("--out", required=True, help="output .npz (a .ckpt.npz beside it allows resuming)")
    p.add_argument("--npz", default=None, help=f"local CIFAR-10 .npz (default: ${NPZ_ENV}, else torchvision)")
    p.add_argument("--root", default=None, help="torchvision cache folder (default: $NADLIB_DATA/cifar10 "
                                                "or ~/.cache/nadlib/cifar10)")
    p.add_argument("--no-download", action="store_true", help="never download CIFAR-10")
    p.add_argument("--synthetic", action="store_true", help="use synthetic stand-in images (tests only)")
    p.add_argument("--n-train", type=int, default=None, help="training images (default: the profile's)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: the profile's)")
    p.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA if available)")


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("poison", help="CIFAR-10 poisoned on a NAD carrier: accuracy vs NAD index")
    _common_args(p)
    p.add_argument("--indices", type=int, nargs="+", default=None, help="NAD indices (default: the profile's)")
    p.add_argument("--epsilon", type=float, default=None,
                   help="carrier size (pixel units, images in [0, 1]; default: the profile's)")
    p.set_defaults(func=run_poison_cli)
    p = subparsers.add_parser("flip", help="train on CIFAR-10 and on its NAD-flipped version")
    _common_args(p)
    p.set_defaults(func=run_flip_cli)
