"""Artifacts with provenance, and checkpoints for resumable long runs.

An *artifact* is a ``.npz`` file of numeric arrays plus a JSON string ``meta`` that records how it
was produced (command, seed, device, versions, date, wall time).  Everything is loaded with
``allow_pickle=False``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from ._version import __version__

_META_KEY = "__meta__"


def provenance(**extra) -> dict:
    """A dictionary describing where and how a result was produced, merged with ``extra``."""
    device = extra.pop("device", None)
    dev_name = None
    if device is not None and torch.device(device).type == "cuda":
        dev_name = torch.cuda.get_device_name(torch.device(device))
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "nadlib": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device is not None else None,
        "device_name": dev_name,
    }
    meta.update(extra)
    return meta


def _atomic_savez(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def save_artifact(path: str | os.PathLike, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` (name -> array-like) and ``meta`` (JSON-serialisable) to ``path`` (.npz), atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"artifact path must end in .npz, got {str(path)!r}")
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    out = {k: np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in arrays.items()}
    out[_META_KEY] = np.array(json.dumps(meta, default=str))
    _atomic_savez(path, out)
    return path


def load_artifact(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read an artifact written by :func:`save_artifact`; returns ``(arrays, meta)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no artifact at {str(path)!r}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != _META_KEY}
        meta = json.loads(str(data[_META_KEY])) if _META_KEY in data.files else {}
    return arrays, meta


class Checkpoint:
    """A small resumable store for long loops: the arrays done so far plus the settings they belong to.

    ``Checkpoint(path, settings)`` loads previous progress when the file exists *and* was written with
    the same ``settings``; with different settings it raises, so a resumed run never mixes results.
    """

    def __init__(self, path: str | os.PathLike, settings: dict):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.arrays: dict[str, np.ndarray] = {}
        if self.path.exists():
            arrays, meta = load_artifact(self.path)
            if meta.get("settings") != self.settings:
                raise ValueError(
                    f"checkpoint {str(self.path)!r} was written with other settings "
                    f"({meta.get('settings')}); delete it or use the same settings to resume")
            self.arrays = arrays

    @property
    def resumed(self) -> bool:
        return bool(self.arrays)

    def save(self, **arrays) -> None:
        self.arrays.update({k: np.asarray(v) for k, v in arrays.items()})
        save_artifact(self.path, self.arrays, {"settings": self.settings})

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
