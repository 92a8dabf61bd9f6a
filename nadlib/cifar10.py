"""CIFAR-10: loading, class-balanced subsets, and stand-in images for tests.

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
same layout.  :func:`cifar_data` gives the class-balanced subsets an experiment trains and tests on.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from ._checks import fits_in_memory, is_int, positive_int, read_npz, seed as _check_seed
from .config import CIFAR10_CLASSES, get_device, get_profile

__all__ = ["CIFAR10_CLASSES", "CIFAR10NotFoundError", "DATA_ENV", "NPZ_ENV", "NPZ_KEYS", "default_cifar10_root",
           "load_cifar10", "clear_cifar10_cache", "balanced_subset", "synthetic_cifar10", "cifar_data",
           "check_cifar10_arrays"]

#: Environment variable naming the cache folder of data sets (CIFAR-10 goes to ``$NADLIB_DATA/cifar10``).
DATA_ENV = "NADLIB_DATA"
#: Environment variable naming a local ``.npz`` copy of CIFAR-10 (``x_train, y_train, x_test, y_test``).
NPZ_ENV = "NADLIB_CIFAR10_NPZ"

_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: Folder of the official python archive (torchvision's layout).
BATCHES = "cifar-10-batches-py"
#: Arrays of a CIFAR-10 ``.npz``.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SIZE = 32


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
        f"  looked in : {root / BATCHES} (torchvision layout: data_batch_1..5, test_batch, batches.meta)\n"
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
    return all((root / BATCHES / f).is_file() for f in files)


_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def clear_cifar10_cache() -> None:
    """Forget the tensors kept in memory by :func:`load_cifar10`."""
    _CACHE.clear()


def check_cifar10_arrays(arrays: dict, source: str) -> None:
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing arrays {missing}; a CIFAR-10 .npz needs {list(NPZ_KEYS)}")
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
    arrays = read_npz(path, NPZ_KEYS)  # an unreadable file: one ValueError naming it
    check_cifar10_arrays(arrays, str(path))
    split = "train" if train else "test"
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def _read_torchvision(root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    try:
        from torchvision.datasets import CIFAR10
    except ImportError:  # torchvision is installed with the book's requirements, but nadlib runs without it
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
    _CACHE[key] = _as_tensors(images, labels, device)
    return _CACHE[key]


def _as_tensors(images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``N x 32 x 32 x 3`` images and labels -> float ``N x 3 x 32 x 32`` in [0, 1] and int64 labels."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    return x.contiguous(), y


def balanced_subset(y, n: int, num_classes: int = 10, seed: int | None = None) -> torch.Tensor:
    """Indices of a class-balanced subset of ``n`` samples (``n // num_classes`` per class, the remainder
    going to the first classes).

    With ``seed=None`` it takes the *first* samples of each class in data-set order (deterministic, what the
    profiles use); with a seed it draws them at random with that seed.  The indices are returned sorted.

    Raises:
        ValueError: if ``n`` is not a positive int or a class has too few samples.
    """
    y = torch.as_tensor(y).cpu()
    n = positive_int(n, "n")
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(y.shape)}")
    if n >= len(y):
        return torch.arange(len(y))
    gen = torch.Generator().manual_seed(_check_seed(seed)) if seed is not None else None
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
        if not is_int(value) or value < 10:
            raise ValueError(f"{name} must be an int >= 10 (one image per class), got {value!r}")
    n = max(n_train, n_test)  # float32 fields of one split and their FFT work space: ~4 copies
    fits_in_memory(n * 3 * 32 * 32 * 4 * 4, f"synthetic_cifar10 with n_train={n_train:,}, n_test={n_test:,}",
                   "ask for fewer images")
    gen = torch.Generator().manual_seed(_check_seed(seed))
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



def cifar_data(profile=None, *, n_train: int | None = None, n_test: int | None = None, npz=None,
               root=None, download: bool = True, synthetic: bool | None = None, seed: int = 0,
               device=None) -> dict:
    """The CIFAR-10 data of an experiment: class-balanced subsets of the sizes of ``profile.cifar``.

    ``synthetic=None`` (default) uses the real CIFAR-10 (``npz``/``$NADLIB_CIFAR10_NPZ``, else torchvision
    in ``root``) and raises :class:`CIFAR10NotFoundError` when it is missing; ``synthetic=True`` uses
    :func:`synthetic_cifar10` (structured stand-in images, *not* CIFAR-10) -- for tests and the smoke
    profile; ``synthetic="auto"`` uses the real data when it can be had and the stand-in images
    otherwise (what the chapters do; ``source`` says which).  Training images are the first
    ``n_train / 10`` of each class, test images likewise.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test", "source", "n_train", "n_test"}`` (tensors on ``device``,
        images in ``[0, 1]``); ``source`` says where the images came from.
    """
    if synthetic not in (None, False, True, "auto"):
        raise ValueError(f"synthetic must be None, True, False or 'auto', got {synthetic!r}")
    cfg = (profile or get_profile()).cifar
    n_train = positive_int(cfg.n_train if n_train is None else n_train, "n_train", maximum=50_000)
    n_test = positive_int(cfg.n_test if n_test is None else n_test, "n_test", maximum=10_000)
    device = get_device(device)
    if synthetic == "auto":
        try:
            return cifar_data(profile, n_train=n_train, n_test=n_test, npz=npz, root=root, download=download,
                              synthetic=None, seed=seed, device=device)
        except CIFAR10NotFoundError:
            synthetic = True
    if synthetic:
        arrays = synthetic_cifar10(n_train, n_test, seed=seed)
        x_tr, y_tr = _as_tensors(arrays["x_train"], arrays["y_train"], device)
        x_te, y_te = _as_tensors(arrays["x_test"], arrays["y_test"], device)
        source = f"synthetic stand-in images (nadlib.synthetic_cifar10, seed {seed}), NOT CIFAR-10"
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
