"""Argument validators shared by every module: one place for the rules, one wording for the errors.

Each function returns the normalised value or raises ``TypeError``/``ValueError`` whose message names
the argument, what was given and what is allowed, so that bad input fails before any work starts.
"""

from __future__ import annotations

import math
import operator
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

#: Seeds are non-negative integers below 2**63 (what ``torch.manual_seed`` and our seed hashing take).
MAX_SEED = 2 ** 63 - 1


def is_int(value) -> bool:
    """True for Python/numpy integers, False for ``bool`` (a ``bool`` is never a count or an index)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound optional)."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value}")
    return value


def positive_int(value, name: str, *, maximum: int | None = None) -> int:
    """A positive ``int`` (``>= 1``), optionally at most ``maximum``."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {int(value):,}")
    return int(value)


def nonneg_int(value, name: str) -> int:
    """An ``int >= 0``."""
    if not is_int(value) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def seed(value, name: str = "seed") -> int:
    """A seed: an ``int`` in ``[0, 2**63 - 1]``."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**63 - 1], got {value}")
    return int(value)


def real(value, name: str) -> float:
    """A finite real number (``bool`` and strings are refused)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def positive_float(value, name: str, *, maximum: float | None = None) -> float:
    """A finite number ``> 0``, optionally at most ``maximum``."""
    out = real(value, name)
    if out <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if maximum is not None and out > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}, got {value!r}")
    return out


def unit_interval(value, name: str, *, open_left: bool = True) -> float:
    """A number in ``(0, 1]`` (or ``[0, 1]`` with ``open_left=False``)."""
    out = real(value, name)
    if out > 1 or out < 0 or (open_left and out == 0):
        raise ValueError(f"{name} must be in {'(' if open_left else '['}0, 1], got {value!r}")
    return out


def index(value, name: str, size: int) -> int:
    """An index into a sequence of length ``size``: an int in ``[0, size - 1]``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not 0 <= value < size:
        raise ValueError(f"{name}={value} out of range [0, {size - 1}]")
    return value


def finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse a tensor with NaN or infinite entries."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def choice(value, name: str, options) -> str:
    """One of ``options`` (strings)."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")
    return value


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (Linux, macOS), or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def fits_in_memory(nbytes: float, what: str, hint: str) -> None:
    """Refuse, before allocating, an array of ``nbytes`` larger than the machine's memory (an allocator error
    deep inside torch would not say which argument asked for it).  ``what`` names the array and the arguments
    that size it; ``hint`` says what to do instead."""
    total = memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} would need {nbytes / 1e9:,.1f} GB, more than this machine's {total / 1e9:,.1f} GB "
                         f"of memory; {hint}")


def damaged(path, what: str) -> ValueError:
    """The one error for a file that cannot be trusted: it names the file and what was wrong."""
    return ValueError(f"{str(path)!r} is damaged or was edited ({what}); delete it and run the command "
                      "that wrote it again")


def read_npz(path: str | os.PathLike, keys=None) -> dict:
    """The arrays of an ``.npz`` file (only ``keys`` when given), read without pickles.  Any way the file can be
    unreadable (truncated, not a zip, a damaged compressed stream, a ``.npy`` renamed to ``.npz``, an entry
    that is not an array) is the one ``ValueError`` that names the file and says it is damaged or edited."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy renamed to .npz loads as one array
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with data:
            return {k: data[k] for k in data.files if keys is None or k in keys}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as err:
        raise damaged(path, f"not a readable .npz: {type(err).__name__}: {err}") from None
