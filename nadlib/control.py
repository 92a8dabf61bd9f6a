"""How a long computation runs, as one object: :class:`RunControl`.

Every long computation of nadlib (estimating NADs, training, a Fourier grid, a poisoning sweep, a collapse
run, ...) takes the same five settings that change *how* it runs but never *what* it computes: the seed, the
device, the progress report, the checkpoint file and the deadline.  They travel together as ``run=``::

    nadlib.estimate_nads("lenet", 1000, run=nadlib.RunControl(seed=1, device="cuda", checkpoint="ck.npz"))
    nadlib.train(model, X, Y, run=nadlib.RunControl(progress=False))

A function passes its ``run`` on to the work it calls (``run.replace(progress=False)`` for an inner loop), so
no function threads the five by hand.  ``run=None`` means ``RunControl()``: seed 0, CUDA when available, the
function's own progress default, no checkpoint, no deadline.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import _checks
from .config import get_device

#: The precisions a :class:`RunControl` may ask for.
PRECISIONS = ("fp32", "bf16")

#: Seconds between two checkpoint saves of a long computation (also saved on an interruption and at the end).
CHECKPOINT_EVERY_S = 30.0


def _nearest(start: Path) -> Path:
    """The nearest existing path at or above ``start``."""
    parent = start
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _writable(path: Path, start: Path, what: str, verb: str) -> None:
    """``path`` can be created: the nearest existing folder at or above ``start`` is a writable folder, not a
    file (``verb``: what cannot be done to ``path`` when that folder is a file: "written", "made")."""
    parent = _nearest(start)
    if not parent.is_dir():
        raise ValueError(f"{what} {str(path)!r} cannot be {verb}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r} cannot be written: the folder {str(parent)!r} is not writable")


def check_output(path, what: str = "output") -> Path:
    """A ``.npz`` path a run will write, checked before any work: the suffix, not a folder, and a folder to
    write it in (the nearest existing parent must be a writable folder, not a file).  Returns it as a Path."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what} must be a path, got {path!r}")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{what} must be a .npz file, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; give a .npz file name")
    _writable(path, path.parent, what, "written")
    return path


def check_space(path, nbytes: float, what: str) -> None:
    """Enough free disk where ``path`` will be written (its nearest existing folder) for ``nbytes``, the
    estimate of what the run writes there, checked before any work."""
    folder = _nearest(Path(path).parent)
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise ValueError(f"{what} {str(path)!r} needs about {nbytes / 2**20:,.1f} MiB of disk, but "
                         f"{str(folder)!r} has {free / 2**20:,.1f} MiB free; free some space or write elsewhere")


class RunStopped(RuntimeError):
    """A run stopped by something outside the code (a worker process killed, an output that cannot be written);
    the message says what was kept and how to go on.  The command line reports it in one line."""


def check_folder(path, what: str = "output folder") -> Path:
    """A folder a run will write into, checked before any work: not a file, and creatable and writable (the
    nearest existing parent must be a writable folder).  Returns it as a Path."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what} must be a path, got {path!r}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file, not a folder")
    _writable(path, path, what, "made")
    return path


def check_deadline(deadline) -> float | None:
    """Validate a ``deadline`` argument: None or a finite ``time.monotonic()`` value."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not np.isfinite(deadline):
        raise ValueError(f"deadline must be None or a time.monotonic() value (float), got {deadline!r}")
    return float(deadline)


def past(deadline: float | None) -> bool:
    """True when ``deadline`` (a ``time.monotonic()`` value, or None for no deadline) has passed."""
    return deadline is not None and time.monotonic() >= deadline


@dataclass(frozen=True)
class RunControl:
    """How a computation runs (never what it computes).  Every field is checked when the object is made.

    Attributes:
        seed: the seed of everything random in the run (networks, data, mini-batch order); a fixed seed gives
            the same result on the same device.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or None for CUDA when available, else CPU.  A device
            asked for explicitly is never replaced: CUDA on a machine without it raises ``RuntimeError``.
        progress: True/False for a ``tqdm`` bar, a callable for streamed reports (where the function documents
            one), or None for the function's own default.
        checkpoint: a ``.npz`` path for a resumable run: state is saved there every ``checkpoint_every``
            seconds, on an interruption and at the end; calling again with the same settings continues from it.
        deadline: a ``time.monotonic()`` value: once it has passed, the run saves its checkpoint after the
            current unit of work and raises :class:`nadlib.results.DeadlineReached`.
        checkpoint_every: seconds between checkpoint saves.
        tf32: allow TF32 matmuls/convolutions on CUDA (faster, about 1e-3 relative error); ignored on the CPU.
        precision: ``"fp32"`` (default) or ``"bf16"``: BF16 autocast where a computation offers it behind an
            accuracy guard -- today the secant NADs of :func:`nadlib.estimate_nads`, which refuse it unless
            the guard passes (see there); training (:func:`nadlib.train` and what calls it) and
            :func:`nadlib.nad_statistics` refuse ``"bf16"`` with a ``ValueError``; elsewhere it is ignored.
    """

    seed: int = 0
    device: str | torch.device | None = None
    progress: bool | Callable | None = None
    checkpoint: str | os.PathLike | None = None
    deadline: float | None = None
    checkpoint_every: float = CHECKPOINT_EVERY_S
    tf32: bool = field(default=False, kw_only=True)
    precision: str = field(default="fp32", kw_only=True)

    def __post_init__(self):
        _checks.seed(self.seed)
        check_deadline(self.deadline)
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"device must be None, a string like 'cpu'/'cuda' or a torch.device, got {self.device!r}")
        if self.progress is not None and not isinstance(self.progress, bool) and not callable(self.progress):
            raise ValueError(f"progress must be None, True/False or a callable, got {self.progress!r}")
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, (str, os.PathLike)):
                raise ValueError(f"checkpoint must be None or a path, got {self.checkpoint!r}")
            check_output(self.checkpoint, "checkpoint")
        _checks.positive_float(self.checkpoint_every, "checkpoint_every")
        if not isinstance(self.tf32, bool):
            raise ValueError(f"tf32 must be True or False, got {self.tf32!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def replace(self, **changes) -> "RunControl":
        """A copy with some fields changed (e.g. ``run.replace(progress=False)`` for an inner loop)."""
        return replace(self, **changes)

    def torch_device(self) -> torch.device:
        """The resolved device (:func:`nadlib.get_device`)."""
        return get_device(self.device)

    def shows_progress(self, default: bool) -> bool | Callable:
        """``progress``, or the function's ``default`` when it is None."""
        return default if self.progress is None else self.progress

    def checkpoint_path(self) -> Path | None:
        """``checkpoint`` as a :class:`~pathlib.Path` (None without one)."""
        return None if self.checkpoint is None else Path(self.checkpoint)

    def require_fp32(self, what: str) -> None:
        """Raise ``ValueError`` when ``precision`` is not ``"fp32"``: ``what`` has no guarded reduced-precision
        path."""
        if self.precision != "fp32":
            raise ValueError(f"{what} runs in float32 only (no accuracy-guarded {self.precision} path); "
                             "use RunControl(precision='fp32')")

    def past_deadline(self) -> bool:
        """True once the deadline has passed."""
        return past(self.deadline)


def as_run(run: RunControl | None) -> RunControl:
    """``run`` itself, or ``RunControl()`` for None; anything else is a clear ``TypeError``."""
    if run is None:
        return RunControl()
    if not isinstance(run, RunControl):
        raise TypeError(f"run must be a nadlib.RunControl (seed, device, progress, checkpoint, deadline), got "
                        f"{type(run).__name__}: {run!r}")
    return run
