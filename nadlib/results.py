"""Artifacts with provenance, checkpoints for resumable long runs, and results loaded by catalogue key.

An *artifact* is a ``.npz`` file of numeric arrays plus a JSON string ``meta`` that records how it
was produced (command, seed, device, versions, date, wall time).  Everything is loaded with
``allow_pickle=False``.

Results by key (:func:`load`, also ``nadlib.load_result``): every result the book shows is an entry of
:mod:`nadlib.catalogue`.  ``load("lenet/grid")`` looks first in *your* results folder (:func:`yours_dir`:
the folder given to :func:`set_results_dir`, else ``$NADLIB_RESULTS``) for the entry's canonical file of the
best profile there (``paper``, then ``default``, then ``smoke``; e.g. ``lenet__grid__paper.npz``, as
``python -m nadlib paper`` writes it), or for a file under the bundled name; then at the file bundled with
the book (:func:`bundled_path`: ``results/`` of a checkout, the package data of a wheel, or a download of a
large file).  The loaded object carries an :class:`Origin` (``.origin``: yours or bundled, path, profile,
device, date, sizes), :func:`loaded` lists every load of this process, and :func:`caption` gives the
one-line "whose result is this" for a figure.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from ._checks import damaged, read_npz
from .control import CHECKPOINT_EVERY_S, check_deadline, past  # noqa: F401  (re-exported)
from .catalogue import RANKING, canonical_name, entry as catalogue_entry, make_command

_META_KEY = "__meta__"

#: Environment variable naming the folder of precomputed results (default: the repository's ``results/``).
RESULTS_ENV = "NADLIB_RESULTS"
#: Environment variable overriding the base URL the large artifacts are fetched from (a mirror, a test server).
RESULTS_URL_ENV = "NADLIB_RESULTS_URL"
#: Environment variable naming the cache folder of downloads (shared with CIFAR-10: ``$NADLIB_DATA``).
CACHE_ENV = "NADLIB_DATA"
#: The small artifacts shipped inside the wheel (package data ``nadlib/_results``, mapped from ``results/``).
PACKAGED_RESULTS = Path(__file__).resolve().with_name("_results")
#: Large artifacts that are *not* in the wheel: base URL and SHA-256 of each, written by
#: ``tools/results_registry.py`` from ``_config.yml`` (``repository.url``) and ``results/``.
REGISTRY_FILE = Path(__file__).resolve().with_name("results_registry.txt")


class ResultNotAvailableError(FileNotFoundError):
    """A precomputed artifact is neither on disk nor downloadable right now (offline, wrong URL, bad hash)."""


def _checkout_results() -> Path | None:
    """``results/`` of the source checkout this package lives in (editable install), else None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "results").is_dir():
        return root / "results"
    return None


#: Set by :func:`set_results_dir`: your results folder for this process (takes precedence over the variable).
_yours_override: Path | None = None


def set_results_dir(path: str | os.PathLike | None) -> Path | None:
    """Make ``path`` your results folder in this process (None: back to ``$NADLIB_RESULTS``); returns the
    previous setting.  :func:`load` looks there before the bundled results."""
    global _yours_override
    previous = _yours_override
    _yours_override = None if path is None else Path(path).expanduser()
    return previous


def yours_dir() -> Path | None:
    """Your results folder: the one given to :func:`set_results_dir`, else ``$NADLIB_RESULTS``, else None.

    It may not exist yet (``python -m nadlib paper`` creates it).  Raises ``ValueError`` when it names a
    file."""
    path = _yours_override
    if path is None:
        env = os.environ.get(RESULTS_ENV, "").strip()
        path = Path(env).expanduser() if env else None
    if path is not None and path.exists() and not path.is_dir():
        raise ValueError(f"your results folder {str(path)!r} is a file, not a folder (set ${RESULTS_ENV} or "
                         "nadlib.set_results_dir() to a folder)")
    return path


def bundled_dir() -> Path | None:
    """The results bundled with the book: ``results/`` of the source checkout this package lives in, else the
    small results installed with the package (a wheel); None when neither exists."""
    for candidate in (_checkout_results(), PACKAGED_RESULTS):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def results_dir() -> Path:
    """The folder of precomputed artifacts (kept for existing callers; chapters load by key with :func:`load`).

    In this order: ``$NADLIB_RESULTS`` when set; the ``results/`` folder of the source checkout this
    package lives in (``pip install -e .``); the small artifacts installed with the package (a wheel,
    ``pip install nadlib``), whatever the current folder is.  The large NAD files are not in the wheel:
    get their path with :func:`result_path`, which downloads them once (SHA-256 checked) when missing.

    Raises:
        FileNotFoundError: when none exists (the message says how to point at one).
    """
    env = os.environ.get(RESULTS_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${RESULTS_ENV}={env!r} is not a folder")
        return path
    bundled = bundled_dir()
    if bundled is not None:
        return bundled
    raise FileNotFoundError(f"no results/ folder next to nadlib ({str(Path(__file__).resolve().parent)!r}) and "
                            f"no packaged results in {str(PACKAGED_RESULTS)!r}; reinstall nadlib or set "
                            f"${RESULTS_ENV} to the folder of precomputed artifacts")


def results_registry(path: str | os.PathLike | None = None) -> tuple[str, dict[str, tuple[str, int]]]:
    """Read the registry of downloadable artifacts: ``(url_template, {name: (sha256, size)})``.

    The file (``nadlib/results_registry.txt`` by default) has one ``url <template>`` line, where
    ``{version}`` stands for the package version, and one ``<name> <sha256> <size>`` line per file.
    """
    path = Path(path) if path is not None else REGISTRY_FILE
    url, files = None, {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0] == "url" and len(parts) == 2:
            url = parts[1]
        elif len(parts) == 3 and len(parts[1]) == 64:
            files[parts[0]] = (parts[1].lower(), int(parts[2]))
        else:
            raise ValueError(f"{str(path)!r} line {n} is neither `url <template>` nor `<name> <sha256> <size>`: "
                             f"{line!r}")
    if url is None:
        raise ValueError(f"{str(path)!r} has no `url <template>` line")
    return url, files


def results_url() -> str:
    """Base URL of the downloadable artifacts: ``$NADLIB_RESULTS_URL``, else the registry's template with
    this version (``<repository.url>/raw/v<version>/results/``)."""
    env = os.environ.get(RESULTS_URL_ENV, "").strip()
    url = env or results_registry()[0].format(version=__version__)
    return url if url.endswith("/") else url + "/"


def results_cache_dir() -> Path:
    """Where downloaded artifacts are kept: ``$NADLIB_DATA/results-v<version>``, else
    ``~/.cache/nadlib/results-v<version>``."""
    base = os.environ.get(CACHE_ENV, "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "nadlib"
    return root / f"results-v{__version__}"


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_name(name) -> None:
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ValueError(f"name must be a plain file name such as 'nads_lenet_secant.npz', got {name!r}")


def result_path(name: str, *, download: bool = True) -> Path:
    """The path of the precomputed artifact ``name`` (e.g. ``"nads_lenet_secant.npz"``), from any folder.

    Looks in your results folder (:func:`yours_dir`) first, then at the bundled file (:func:`bundled_path`:
    ``results/`` of a checkout, the package data of a wheel, or a download of a large artifact).

    Raises:
        ValueError: ``name`` is not a plain file name.
        FileNotFoundError: an unknown artifact (not on disk, not in the registry); the message lists
            where it was looked for.
        ResultNotAvailableError: a registered artifact that could not be downloaded (offline, wrong URL,
            hash mismatch) or ``download=False``; the message names the file, its URL and what to do.
    """
    _check_name(name)
    yours = yours_dir()
    if yours is not None and (yours / name).is_file():
        return yours / name
    return bundled_path(name, download=download)


def bundled_path(name: str, *, download: bool = True) -> Path:
    """The path of the artifact ``name`` bundled with the book: in :func:`bundled_dir`, else (a large artifact
    listed in the registry, not shipped in the wheel) from the cache (:func:`results_cache_dir`) or downloaded
    there once from :func:`results_url` with ``pooch``, its SHA-256 checked against the registry.

    Raises: as :func:`result_path`.
    """
    _check_name(name)
    local = bundled_dir()
    if local is not None and (local / name).is_file():
        return local / name
    _, files = results_registry()
    if name not in files:
        looked = [str(p) for p in (yours_dir(), local) if p is not None]
        raise FileNotFoundError(f"no precomputed artifact {name!r} in {' or '.join(map(repr, looked)) or 'no folder'}"
                                f", and it is not one of the downloadable ones ({', '.join(sorted(files))}); the "
                                "chapter that reads it shows the `python -m nadlib ...` command that writes it")
    sha, size = files[name]
    cache = results_cache_dir()
    target = cache / name
    if target.is_file() and file_sha256(target) == sha:
        return target
    url = results_url() + name
    advice = (f"Download {url} ({size / 2**20:.1f} MiB, SHA-256 {sha}) on a machine with internet access and "
              f"put it into {str(cache)!r} (or into a folder named by ${RESULTS_ENV}), or compute it again "
              f"with the `python -m nadlib ...` command the chapter shows.")
    if not download:
        raise ResultNotAvailableError(f"{name!r} is not on this machine (download=False). {advice}")
    try:
        import pooch
    except ImportError as err:
        raise ResultNotAvailableError(f"{name!r} must be downloaded, which needs pooch (pip install pooch). "
                                      f"{advice}") from err
    try:
        fetched = pooch.retrieve(url, known_hash=f"sha256:{sha}", fname=name, path=cache, progressbar=False)
    except Exception as err:  # requests' connection errors, HTTP errors, pooch's hash mismatch
        raise ResultNotAvailableError(f"could not download {name!r} from {url}: {type(err).__name__}: {err}. "
                                      f"{advice}") from err
    return Path(fetched)


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The checkpoint that belongs to an output artifact: ``<dir>/<stem>.ckpt.npz`` beside ``out``."""
    out = Path(out)
    return out.with_name(out.stem + ".ckpt.npz")


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


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the repository this package lives in (``+dirty`` when it has changes), or None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (what an artifact's checksums cover)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


@contextmanager
def _uninterrupted(what: str):
    """Hold Ctrl-C and SIGTERM until the block has finished (the write of a result or checkpoint), then deliver
    them to the handlers that were there before: a second Ctrl-C while the progress of the first is being saved
    no longer loses that progress.  Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame):
        if not received:
            print(f"\nnadlib: finishing the write of {what} before stopping ...", file=sys.stderr, flush=True)
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for sig in dict.fromkeys(received):  # each held signal once, in order, now that the write is complete
        os.kill(os.getpid(), sig)


def _atomic_savez(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _uninterrupted(str(path)):
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)


def _as_array(name: str, value) -> np.ndarray:
    try:
        a = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    except ValueError:  # ragged nested lists
        a = np.empty(0, dtype=object)
    if a.dtype.hasobject:
        raise TypeError(f"array {name!r} has dtype object (ragged lists, None or mixed types?); artifacts "
                        "hold numeric or string arrays only, which load without pickle")
    return a


#: The metadata entry holding the checksum of the metadata itself (every other entry, ``sha256`` included).
_META_SUM = "meta_sha256"


def _meta_digest(meta: dict) -> str:
    """SHA-256 of ``meta`` without :data:`_META_SUM`, as canonical JSON (sorted keys) of its JSON form."""
    body = {k: v for k, v in meta.items() if k != _META_SUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_artifact(path: str | os.PathLike, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` (name -> array-like) and ``meta`` (JSON-serialisable) to ``path`` (.npz), atomically.

    ``meta`` gains ``sha256``: the checksum of every array (:func:`array_sha256`), ``git_commit`` when run
    inside the repository, and ``meta_sha256``: the checksum of the metadata itself (settings, sizes,
    provenance and the array checksums), all of which :func:`load_artifact` checks.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"artifact path must end in .npz, got {str(path)!r}")
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved")
    out = {k: _as_array(k, v) for k, v in arrays.items()}
    meta = dict(meta, sha256={k: array_sha256(a) for k, a in out.items()})
    meta.setdefault("git_commit", git_commit())
    meta = json.loads(json.dumps({k: v for k, v in meta.items() if k != _META_SUM}, default=str))
    meta[_META_SUM] = _meta_digest(meta)
    out[_META_KEY] = np.array(json.dumps(meta))
    _atomic_savez(path, out)
    return path


def load_artifact(path: str | os.PathLike, *, unchecked: bool = False) -> tuple[dict, dict]:
    """Read an artifact written by :func:`save_artifact`; returns ``(arrays, meta)``.

    The arrays and the metadata are checked against the checksums stored with them.  A file without them
    (written by another tool or an older nadlib, or with its checksums removed) is refused unless
    ``unchecked=True``: then whatever checksums it has are still checked, and the rest is taken on trust.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable ``.npz`` (truncated, not a zip, a ``.npy`` renamed), its
            metadata is not valid JSON, an array or the metadata does not match its checksum (bit-flipped or
            edited files), or it has no checksums and ``unchecked`` is false.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no artifact at {str(path)!r}")
    arrays = read_npz(path)
    raw = str(arrays.pop(_META_KEY)) if _META_KEY in arrays else None
    meta = {}
    if raw is not None:
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as err:
            raise damaged(path, f"its {_META_KEY} is not valid JSON: {err}") from None
        if not isinstance(meta, dict):
            raise damaged(path, f"its {_META_KEY} is not a JSON object")
    sums, meta_sum = meta.get("sha256"), meta.get(_META_SUM)
    if (sums is None or meta_sum is None) and not unchecked:
        missing = " and ".join(n for n, v in (("array", sums), ("metadata", meta_sum)) if v is None)
        raise ValueError(f"{str(path)!r} has no {missing} checksums (written by another tool or an older nadlib, "
                         "or its checksums were removed), so an edit could not be detected; rewrite it with the "
                         "command that made it, or read it with load_artifact(path, unchecked=True) if you trust it")
    if meta_sum is not None and meta_sum != _meta_digest(meta):
        raise damaged(path, "its metadata does not match its checksum")
    if sums is not None:
        if not isinstance(sums, dict) or set(sums) != set(arrays):
            raise damaged(path, "its arrays are not the ones it was written with")
        bad = [k for k, a in arrays.items() if array_sha256(a) != sums[k]]
        if bad:
            raise damaged(path, f"checksum mismatch in {', '.join(bad)}")
    return arrays, meta


@contextmanager
def interruptible():
    """Inside this block SIGTERM (a cluster pre-empting a job) raises ``KeyboardInterrupt`` as Ctrl-C does,
    so long runs checkpoint and stop the same way.  Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


class DeadlineReached(Exception):
    """A long run stopped at its ``deadline`` (a ``time.monotonic()`` value) after finishing its current unit
    of work; what was done is in its checkpoint, and the same call continues from there.

    Attributes: ``done`` and ``total`` (units: networks, directions, runs), ``checkpoint`` (path or None).
    """

    def __init__(self, what: str, done: int, total: int, checkpoint=None):
        self.what, self.done, self.total = what, int(done), int(total)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        where = (f"progress saved in {str(self.checkpoint)!r}; the same call continues from there"
                 if self.checkpoint is not None else "no checkpoint was given, so the partial work is lost")
        super().__init__(f"deadline reached: {what} {self.done:,} of {self.total:,} done; {where}")


# --------------------------------------------------------------------------------------------------
# results by catalogue key

#: Environment variable naming a file to which every :func:`load` of this process appends a JSON line (its
#: :class:`Origin`): how a test learns what an executed chapter loaded.
LOAD_LOG_ENV = "NADLIB_LOAD_LOG"


class ResultMissingError(FileNotFoundError):
    """A catalogue entry has no result anywhere: not in your results folder and not bundled with the book.
    The message names the key and the command that makes it."""


def _count(n) -> str:
    return f"{int(n):,}"


def _device(meta: dict) -> str:
    return meta.get("device_name") or str(meta.get("device", "?")).upper()


def describe_artifact(arrays: dict, meta: dict) -> str:
    """A short description of an artifact's sizes and device from its provenance, e.g. ``"568 networks,
    NVIDIA H200"`` or ``"130 directions, 10,000/10,000 samples, 20 epochs, CPU"``."""
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    parts = []
    if "n_networks" in meta:
        parts.append(f"{_count(meta['n_networks'])} networks")
    elif "freqs" in arrays and "accuracy" in arrays:
        parts.append(f"{len(arrays['freqs'])} directions")
    elif "names" in arrays and "test_acc" in arrays:  # the pooling ablation
        acc = np.asarray(arrays["test_acc"], float)
        parts.append(f"{len(arrays['names'])} settings x {acc.shape[1]} directions")
        if not np.isfinite(acc).all():
            parts.append(f"{int(np.isfinite(acc).sum())} of {acc.size} runs done")
    elif "archs" in meta:
        parts.append(f"one run of {len(meta['archs'])} networks")
    elif "indices" in arrays:
        parts.append(f"{len(arrays['indices'])} NAD indices")
    sizes = {k: meta.get(k, settings.get(k)) for k in ("n_train", "n_test", "epochs")}
    if sizes["n_train"] is not None:
        parts.append(f"{_count(sizes['n_train'])}/{_count(sizes['n_test'])} samples")
    if "until_train_acc" in settings and "epochs" in arrays:
        parts.append("trained to train acc. " + str(settings["until_train_acc"]) + " ("
                     + "/".join(str(int(e)) for e in arrays["epochs"]) + " epochs)")
    elif sizes["epochs"] is not None:
        parts.append(f"{sizes['epochs']} epochs")
    source = str(meta.get("data_source", ""))
    if "CIFAR-10" in source:  # the synthetic stand-in's source says "..., NOT CIFAR-10"
        parts.append("synthetic stand-in images" if "synthetic" in source else "real CIFAR-10")
    parts.append(_device(meta))
    return ", ".join(parts)


@dataclass(frozen=True)
class Origin:
    """Where a loaded result came from: ``source`` is ``"yours"`` (your results folder) or ``"bundled"`` (the
    results of the book); ``profile`` is the profile it was made in (from its canonical name; None for a
    bundled file or one under the bundled name); ``device``, ``date`` and ``sizes`` come from its provenance."""

    key: str
    source: str
    path: str
    profile: str | None
    device: str
    date: str
    sizes: str
    command: str

    def caption(self) -> str:
        """One line for a figure caption: whose result this is, its sizes, device and date."""
        made = f"{self.sizes}, {self.date}" if self.date else self.sizes
        if self.source == "yours":
            profile = f", {self.profile} profile" if self.profile else ""
            return f"your result ({self.key}{profile}: {made})"
        return f"the book's bundled result ({self.key}: {made})"

    def as_dict(self) -> dict:
        return asdict(self)


#: kind -> function(path) -> object; the modules that define the objects register theirs (:func:`register_loader`).
_LOADERS: dict = {}
#: Every load of this process, in order.
_LOADED: list[Origin] = []


class Artifact(tuple):
    """``(arrays, meta)`` (or ``(signatures, meta)``) as :func:`load_artifact` returns it, plus ``origin``."""

    origin: Origin


def register_loader(kind: str, loader) -> None:
    """Register how entries of ``kind`` (see :data:`nadlib.catalogue.KINDS`) are loaded from a path."""
    _LOADERS[kind] = loader


register_loader("artifact", load_artifact)


def locate(key: str, *, download: bool = True) -> tuple[Path, str, str | None] | None:
    """Where :func:`load` finds ``key``: ``(path, source, profile)`` or None.

    Your folder first: the canonical file of the best profile present (``paper``, ``default``, ``smoke``),
    else a file there under the bundled name; then the bundled file (downloaded when large and missing).

    Raises:
        KeyError: ``key`` is not in the catalogue.
        ResultNotAvailableError: the bundled file must be downloaded and cannot be.
    """
    e = catalogue_entry(key)
    yours = yours_dir()
    if yours is not None and yours.is_dir():
        for profile in RANKING:
            path = yours / canonical_name(key, profile)
            if path.is_file():
                return path, "yours", profile
        if e.bundled and (yours / e.bundled).is_file():
            return yours / e.bundled, "yours", None
    if e.bundled:
        try:
            return bundled_path(e.bundled, download=download), "bundled", None
        except ResultNotAvailableError:
            raise
        except FileNotFoundError:  # not part of this installation's bundled results
            return None
    return None


def _origin(key: str, path: Path, source: str, profile: str | None, arrays: dict, meta: dict) -> Origin:
    return Origin(key=key, source=source, path=str(path), profile=profile, device=_device(meta),
                  date=str(meta.get("date", ""))[:10], sizes=describe_artifact(arrays, meta),
                  command=str(meta.get("command", "")))


def _missing(key: str) -> ResultMissingError:
    e = catalogue_entry(key)
    yours = yours_dir()
    where = f"not in your results folder ({str(yours)!r})" if yours is not None else \
        f"no results folder of yours is set (${RESULTS_ENV} or nadlib.set_results_dir())"
    how = make_command(key)
    make = f"; make it with `{how}`" if how else ""
    return ResultMissingError(f"no result for {key!r} ({e.what}): {where} and none bundled with the book{make}, "
                              f"with ${RESULTS_ENV} (or nadlib.set_results_dir()) naming the folder it writes to")


def _record(origin: Origin) -> None:
    _LOADED.append(origin)
    log = os.environ.get(LOAD_LOG_ENV, "").strip()
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(origin.as_dict()) + "\n")


def load(key: str, *, missing_ok: bool = False):
    """The result of catalogue entry ``key`` (e.g. ``"lenet/grid"``), from your results folder if it is there,
    else the one bundled with the book (see :func:`locate`).

    Returns what the entry's kind loads to, with its :class:`Origin` as ``.origin``: :class:`nadlib.NADs`
    (``nads``), :class:`nadlib.GridResult` (``grid``), :class:`nadlib.CollapseRun` (``collapse``), or a tuple
    ``(arrays, meta)`` (``artifact``; ``(signatures, meta)`` for ``signatures``).  Every load is recorded
    (:func:`loaded`).  With ``missing_ok=True`` an entry that has no result anywhere gives None.

    Raises:
        KeyError: ``key`` is not in the catalogue.
        ResultMissingError: no result anywhere (the message names the command that makes it).
        ResultNotAvailableError: the bundled file must be downloaded and cannot be.
    """
    e = catalogue_entry(key)
    found = locate(key)
    if found is None:
        if missing_ok:
            return None
        raise _missing(key)
    path, source, profile = found
    arrays, meta = load_artifact(path)
    origin = _origin(key, path, source, profile, arrays, meta)
    obj = (arrays, meta) if e.kind == "artifact" else _LOADERS[e.kind](path)
    if isinstance(obj, tuple):
        obj = Artifact(obj)
    obj.origin = origin
    _record(origin)
    return obj


def origin_of(key: str) -> Origin | None:
    """Where ``key`` would be loaded from now, without recording a load (None: nowhere)."""
    found = locate(key)
    if found is None:
        return None
    path, source, profile = found
    arrays, meta = load_artifact(path)
    return _origin(key, path, source, profile, arrays, meta)


def loaded() -> list[dict]:
    """Every :func:`load` of this process, in order, as dictionaries (:class:`Origin` fields)."""
    return [o.as_dict() for o in _LOADED]


def caption(key: str) -> str:
    """One line for a figure caption: whose result ``key`` is (yours or the book's), its sizes, device and
    date; the last load of ``key`` in this process, else where it would be loaded from now."""
    for origin in reversed(_LOADED):
        if origin.key == key:
            return origin.caption()
    origin = origin_of(key)
    return origin.caption() if origin is not None else f"{key}: not computed yet"


describe = caption
