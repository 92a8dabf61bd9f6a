"""The Ray engine: grid directions and chunks of NAD networks as Ray tasks, on many GPUs or nodes.

Ray is optional (``pip install 'nadlib[ray]'``) and imported only when this engine is used.  The serial
engine (:func:`nadlib.accuracy_grid`, :func:`nadlib.estimate_nads`) stays the default; the two give the same
numbers:

* a grid is split into one task per direction (:func:`ray_accuracy_grid`); each task runs
  :func:`nadlib.direction_accuracy` exactly as the serial runner does, so the accuracies are identical;
* a NAD estimate is split into chunks of networks (:func:`ray_estimate_nads`); each task returns the float64
  statistics of its chunk (:func:`nadlib.nads.nad_statistics`), merged in index order
  (:meth:`nadlib.nads.stats.NADStatistics.merge`).  A network depends only on ``(seed, index)`` and chunk
  bounds are multiples of the batch size, so only the float64 summation order differs from the serial
  estimate (eigenvalues agree to ~1e-12 relative).

Both take a :class:`nadlib.RunControl` (``run=``; ``run.device`` is the workers' device type) and keep a checkpoint
(``run.checkpoint``): finished directions, or the merged statistics of the finished
prefix of chunks, so a rerun skips what is done.  A failed task is retried once (``max_retries``, also on
exceptions) without stopping the others; directions that still fail are reported at the end and retried
by the next call.  With CUDA every task asks for a fraction of a GPU (``num_gpus=0.25`` by default), so
several small trainings share one device.  ``run.deadline`` (a ``time.monotonic()`` value) stops submitting
tasks, waits for those in flight, saves the checkpoint and raises :class:`nadlib.results.DeadlineReached`.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import positive_int
from .config import PAPER_RECIPE, Recipe
from .control import RunControl, as_run
from .directions import fourier_grid
from .grid import GridResult, _grid_task
from .nads import NADStatistics, nad_run_settings, nad_statistics, nads_from_statistics
from .results import Checkpoint, DeadlineReached, past, provenance

__all__ = ["require_ray", "init_ray", "ray_accuracy_grid", "ray_estimate_nads", "RAY_HINT"]

RAY_HINT = "pip install 'nadlib[ray]'"
#: Fraction of a GPU one task asks for (several small trainings share a device).
GPU_FRACTION = 0.25


def require_ray():
    """Import Ray, or raise ``ImportError`` saying how to install it."""
    try:
        import ray  # noqa: PLC0415 -- optional dependency, imported lazily
    except ImportError:
        raise ImportError(f"the Ray engine needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to a Ray cluster (``address="auto"``: the one ``ray start`` runs on this node; ``"host:6379"``)
    or start a local instance (``address=None``); does nothing when Ray is already initialised."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = positive_int(num_cpus, "num_cpus")
        ray.init(address=address, **kwargs)
    return ray


def _task_options(device_type: str, num_gpus: float | None, max_retries: int) -> dict:
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")
    gpus = (GPU_FRACTION if num_gpus is None else float(num_gpus)) if device_type == "cuda" else 0.0
    if not 0 <= gpus <= 1 or (device_type == "cuda" and gpus == 0):
        raise ValueError(f"num_gpus must be in (0, 1] for CUDA tasks, got {num_gpus!r}")
    return {"num_cpus": 1, "num_gpus": gpus, "max_retries": int(max_retries), "retry_exceptions": True}


def _window(ray, device_type: str, opts: dict) -> int:
    """How many tasks to keep in flight: twice what the cluster can run at once."""
    res = ray.cluster_resources()
    slots = res.get("GPU", 0) / opts["num_gpus"] if device_type == "cuda" else res.get("CPU", 1)
    return max(1, int(2 * slots))


def _grid_unit(arch: str, freq: tuple, size: int, settings: dict, device_type: str) -> float:
    """One direction (a Ray task): the serial runner's own function, on the worker's device."""
    torch.set_num_threads(1)
    return _grid_task(arch, tuple(freq), size, settings, device_type)


def _nad_chunk(arch: str, start: int, stop: int, kwargs: dict) -> dict:
    """The statistics of networks ``start..stop-1`` (a Ray task), as arrays."""
    torch.set_num_threads(1)
    return nad_statistics(arch, start, stop, **kwargs).arrays()


class _Pump:
    """Submit tasks through a bounded window, collect results as they finish, stop submitting once the deadline
    has passed -- checked only after the first result, so every call makes progress."""

    def __init__(self, ray, remote, jobs: list, window: int, deadline):
        self.ray, self.remote, self.jobs, self.window, self.deadline = ray, remote, list(jobs), window, deadline
        self.running: dict = {}
        self.finished = 0

    def __iter__(self):
        """Yields ``(job, result, error)`` for each finished task."""
        while self.jobs or self.running:
            while self.jobs and len(self.running) < self.window and not (self.finished and past(self.deadline)):
                job = self.jobs.pop(0)
                self.running[self.remote.remote(*job)] = job
            if not self.running:
                return
            ready, _ = self.ray.wait(list(self.running), num_returns=1)
            job = self.running.pop(ready[0])
            self.finished += 1
            try:
                yield job, self.ray.get(ready[0]), None
            except self.ray.exceptions.RayError as err:  # failed even after its retries
                yield job, None, err

    def cancel(self):
        for ref in self.running:
            self.ray.cancel(ref, force=True)


def _device_type(run: RunControl) -> str:
    """The device type of the workers' tasks: ``run.device``'s type, CPU when None (the driver may have no
    GPU while its workers do, so it is not resolved here)."""
    return "cpu" if run.device is None else torch.device(run.device).type


def ray_accuracy_grid(arch: str, *, size: int = 32, stride: int = 1, band: int | None = None, freqs=None,
                      recipe: Recipe = PAPER_RECIPE, num_gpus: float | None = None, max_retries: int = 1,
                      run: RunControl | None = None) -> GridResult:
    """:func:`nadlib.accuracy_grid` with one Ray task per direction (same arguments, same accuracies, the
    same checkpoint format; ``freqs``: explicit frequencies instead of the grid).  ``run.device`` is the
    workers' device type (``"cpu"``, the default, or ``"cuda"``).  Call :func:`init_ray` first (else a local
    instance is started)."""
    run = as_run(run)
    checkpoint, deadline, progress, device_type = run.checkpoint, run.deadline, run.shows_progress(True), \
        _device_type(run)
    freqs = list(fourier_grid(size, stride, band=band)) if freqs is None else [(int(a), int(b)) for a, b in freqs]
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    opts = _task_options(device_type, num_gpus, max_retries)
    ray = init_ray()
    settings = dict(asdict(recipe), seed=run.seed)
    ckpt = Checkpoint(checkpoint, {"arch": arch, "size": size, **settings}) if checkpoint is not None else None
    done = {}
    if ckpt is not None and ckpt.resumed:
        done = {(int(a), int(b)): float(c) for (a, b), c in zip(ckpt.arrays["freqs"], ckpt.arrays["accuracy"])}
    start = time.perf_counter()
    remote = ray.remote(_grid_unit).options(**opts)
    pump = _Pump(ray, remote, [(arch, f, size, settings, device_type) for f in freqs if f not in done],
                 _window(ray, device_type, opts), deadline)
    failed = []
    with tqdm(total=len(freqs), initial=len(done), desc=f"{arch} grid (ray)", unit="dir", disable=not progress) as bar:
        try:
            for job, acc, err in pump:
                if err is not None:
                    failed.append((job[1], err))
                    continue
                done[tuple(job[1])] = float(acc)
                bar.update(1)
                if ckpt is not None:
                    keys = list(done)
                    ckpt.save(freqs=np.array(keys, dtype=np.int64).reshape(-1, 2),
                              accuracy=np.array([done[k] for k in keys]))
        except BaseException:
            pump.cancel()
            raise
    if failed:
        raise RuntimeError(f"{len(failed)} direction(s) of the {arch} grid failed twice, e.g. {failed[0][0]}: "
                           f"{failed[0][1]}; the others are saved, run again to retry them")
    if len(done) < len(freqs):
        raise DeadlineReached(f"grid {arch} (ray): directions", len(done), len(freqs), checkpoint)
    return GridResult(arch, {f: done[f] for f in freqs}, size, {"arch": arch, "size": size, **settings},
                      time.perf_counter() - start)


def ray_estimate_nads(arch: str, n_networks: int, *, method: str = "secant", input_shape=(1, 32, 32),
                      step: float = 100.0, chunk: int | None = None, num_gpus: float | None = None,
                      max_retries: int = 1, stability_ks=(1, 5, 10, 50), run: RunControl | None = None):
    """:func:`nadlib.estimate_nads` over Ray tasks, each the statistics of ``chunk`` networks (default: about
    32 chunks, a multiple of the batch size), merged exactly in index order.  ``run``: as in
    :func:`ray_accuracy_grid`.  Returns :class:`nadlib.NADs`."""
    t0 = time.perf_counter()
    run = as_run(run)
    seed, checkpoint, deadline, progress = run.seed, run.checkpoint, run.deadline, run.shows_progress(True)
    device_type = _device_type(run)
    if not isinstance(n_networks, int) or n_networks < 2:
        raise ValueError(f"n_networks must be an int >= 2, got {n_networks!r}")
    opts = _task_options(device_type, num_gpus, max_retries)
    base = nad_run_settings(arch, method, input_shape, seed, "cpu", step=step)
    batch = base["batch_size"] if device_type == "cpu" else 64
    if chunk is None:
        chunk = max(1, n_networks // (32 * batch)) * batch
    elif positive_int(chunk, "chunk") % batch:
        raise ValueError(f"chunk must be a multiple of the batch size {batch} (so chunks batch networks as the "
                         f"serial estimate does), got {chunk}")
    kwargs = {"method": method, "input_shape": tuple(input_shape), "step": step,
              "batch_size": batch if device_type == "cpu" else None,
              "run": RunControl(seed=seed, device=device_type, progress=False)}
    settings = {**base, "engine": "ray", "device_type": device_type, "chunk": chunk, "n_networks": n_networks}
    ckpt = Checkpoint(checkpoint, settings) if checkpoint is not None else None
    prefix, next_index = None, 0
    if ckpt is not None and ckpt.resumed:
        prefix, next_index = NADStatistics.from_arrays(ckpt.arrays), int(ckpt.arrays["next_index"])
    ray = init_ray()
    remote = ray.remote(_nad_chunk).options(**opts)
    bounds = [(a, min(a + chunk, n_networks)) for a in range(next_index, n_networks, chunk)]
    pump = _Pump(ray, remote, [(arch, a, b, kwargs) for a, b in bounds], _window(ray, device_type, opts), deadline)
    waiting: dict[int, tuple[int, NADStatistics]] = {}
    failed = []
    with tqdm(total=n_networks, initial=next_index, desc=f"NADs {arch} (ray)", unit="net",
              disable=not progress) as bar:
        try:
            for (_, a, b, _), arrays, err in pump:
                if err is not None:
                    failed.append(((a, b), err))
                    continue
                waiting[a] = (b, NADStatistics.from_arrays(arrays))
                bar.update(b - a)
                advanced = False
                while next_index in waiting:  # merge the finished prefix, in index order
                    stop, part = waiting.pop(next_index)
                    prefix = part if prefix is None else NADStatistics.merge([prefix, part])
                    next_index, advanced = stop, True
                if advanced and ckpt is not None:
                    ckpt.save(**prefix.arrays(), next_index=np.array(next_index))
        except BaseException:
            pump.cancel()
            raise
    if failed:
        raise RuntimeError(f"{len(failed)} chunk(s) of the {arch} NADs failed twice, e.g. networks "
                           f"{failed[0][0]}: {failed[0][1]}; finished chunks are saved, run again to retry")
    if next_index < n_networks:
        raise DeadlineReached(f"NADs {arch} (ray): networks", next_index, n_networks, checkpoint)
    meta = provenance(device=None, arch=arch, method=method, seed=seed, input_shape=list(input_shape),
                      step=step, engine="ray", chunk=chunk, device_type=device_type, batch_size=batch,
                      requested_networks=n_networks, wall_time_s=round(time.perf_counter() - t0, 3),
                      precision="float32")
    return nads_from_statistics(prefix, input_shape, method, stability_ks=stability_ks, meta=meta,
                                eval_point=torch.randn(tuple(input_shape),
                                                       generator=torch.Generator().manual_seed(seed)))

