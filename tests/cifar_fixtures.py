"""Test fixtures: CIFAR-10-layout arrays written as ``.npz`` or in the official python pickle layout.

With them both loading paths of :func:`nadlib.load_cifar10` run without the real data set.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import torch

from nadlib.cifar10 import BATCHES, CIFAR10_CLASSES, NPZ_KEYS, check_cifar10_arrays


def write_cifar10_npz(path, arrays: dict) -> Path:
    """Write CIFAR-10-layout arrays (see :func:`synthetic_cifar10`) to ``path`` as an ``.npz``."""
    check_cifar10_arrays(arrays, "arrays")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(arrays[k]) for k in NPZ_KEYS})
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
    check_cifar10_arrays(arrays, "arrays")
    folder = Path(root) / BATCHES
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


def tiny_cifar_data(n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict:
    """A tiny hand-made data dict in the layout of :func:`nadlib.cifar_data` (uniform noise images, labels
    cycling through the 10 classes, the test labels in reverse order), for the CIFAR-10 runners."""
    g = torch.Generator().manual_seed(seed)
    return {"x_train": torch.rand(n_train, 3, 32, 32, generator=g), "y_train": torch.arange(n_train) % 10,
            "x_test": torch.rand(n_test, 3, 32, 32, generator=g), "y_test": torch.arange(n_test).flip(0) % 10,
            "n_train": n_train, "n_test": n_test, "source": "hand-made"}
