"""The grid runner: one architecture trained on D(v) for many Fourier directions ``v``.

:func:`accuracy_grid` picks one of three runners that give the same accuracies:

* in this process, one direction after another (``workers=1``);
* worker processes, one direction each (the CPU default: one thread per worker uses small
  convolutions better than intra-op threads);
* a model stack (the CUDA default, ``stack=`` on any device): several models trained at once with
  ``torch.func.vmap`` (:func:`train_stacked`; batch norm included, with per-model batch and running
  statistics), the same optimiser and batch order as :func:`nadlib.train`
  (:func:`nadlib.training.sgd_recipe`, :func:`nadlib.training.minibatches`), batched.

Finished directions go to an optional checkpoint, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import signal
import time
from dataclasses import asdict, dataclass, field
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from tqdm.auto import tqdm

from ._checks import positive_int
from .config import PAPER_RECIPE, Recipe, get_profile
from .control import RunControl, RunStopped, as_run
from .data import as_direction, linear_separable
from .directions import fill_symmetric, fourier_direction, fourier_grid
from .models import describe_model, model_name, seeded_model
from .results import (Checkpoint, DeadlineReached, interruptible, load_artifact, past,
                      register_loader)
from .training import (TEST_SEED_OFFSET, class_indices, direction_accuracy, evaluate, minibatches,
                       sgd_recipe)


@dataclass
class GridResult:
    """Test accuracies of one architecture over a set of Fourier frequencies."""

    arch: str
    accuracy: dict  # {(kx, ky): test accuracy}
    size: int = 32
    settings: dict = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def map(self) -> np.ndarray:
        """``size x size`` accuracy map (rows ``ky``, columns ``kx``, unshifted), NaN where not trained."""
        return fill_symmetric(self.accuracy, self.size)

    def to_arrays(self) -> dict:
        freqs = np.array(sorted(self.accuracy), dtype=np.int64).reshape(-1, 2)
        return {"freqs": freqs, "accuracy": np.array([self.accuracy[tuple(f)] for f in freqs]),
                "map": self.map}

    @classmethod
    def from_artifact(cls, path) -> "GridResult":
        """Load a grid written by ``python -m nadlib grid``."""
        arrays, meta = load_artifact(path)
        if "freqs" not in arrays or "accuracy" not in arrays:
            raise ValueError(f"{str(path)!r} is not a Fourier grid (it has {sorted(arrays)}, not 'freqs' and "
                             "'accuracy')")
        accuracy = np.asarray(arrays["accuracy"], float)
        if not ((accuracy >= 0) & (accuracy <= 1)).all():
            raise ValueError(f"{str(path)!r} holds accuracies outside [0, 1] (damaged or edited)")
        acc = {(int(kx), int(ky)): float(a) for (kx, ky), a in zip(arrays["freqs"], accuracy)}
        return cls(meta.get("arch", "?"), acc, int(meta.get("size", 32)), meta, float(meta.get("wall_time", 0.0)))


register_loader("grid", GridResult.from_artifact)  # nadlib.results.load of the catalogue's Fourier maps


def _grid_task(arch: str, freq: tuple[int, int], size: int, settings: dict, device: str) -> float:
    """One direction of a grid (top-level so worker processes can run it)."""
    recipe = dict(settings)
    seed = recipe.pop("seed")
    return direction_accuracy(arch, fourier_direction(*freq, size=size), recipe=Recipe(**recipe),
                              run=RunControl(seed=seed, device=device, progress=False))


def _picklable(obj) -> bool:
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _init_worker(threads: int) -> None:
    # Ctrl-C reaches the whole process group: workers leave it to the main process, which terminates them
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _grid_job(job: tuple) -> tuple[tuple[int, int], float]:
    arch, freq, size, settings, device = job
    return freq, _grid_task(arch, freq, size, settings, device)


#: How grid worker processes start: ``spawn`` (a fresh Python), since forking after torch's thread pools started
#: is unsafe.  Tests whose workers run no torch use ``fork`` to start them in milliseconds.
POOL_START = "spawn"

#: Directions per model stack on CUDA (:func:`default_stack`).
CUDA_STACK = 16


def default_stack(device) -> int:
    """How many directions the grid and the trainability curve train at once by default: ``CUDA_STACK``
    on CUDA (one stacked launch keeps the card busy), 1 on the CPU (one model per direction is faster
    there: see ``benchmarks/bench_gpu_paths.py``)."""
    return CUDA_STACK if torch.device(device).type == "cuda" else 1


def train_stacked(models: Sequence[nn.Module], x_train, y_train, *, recipe: Recipe = PAPER_RECIPE,
                  run: RunControl | None = None) -> list[nn.Module]:
    """Train several models *at once* (one ``vmap``-ed step over stacked parameters), each on its own data.

    Model ``j`` is trained on ``(x_train[j], y_train[j])`` exactly as :func:`nadlib.train` would train it
    alone (same optimiser :func:`nadlib.training.sgd_recipe`, same batch order
    :func:`nadlib.training.minibatches` from ``run.seed``, gradient clipping per model), so the trained
    parameters agree with sequential training up to floating-point rounding.  Batch norm is supported:
    in training mode every model normalises with the statistics of *its own* mini-batch, and its running
    mean, variance and batch count (stacked buffers, one row per model) are updated in place as
    ``nn.BatchNorm2d`` updates them.  The models are updated in place and returned (in training mode).

    Args:
        models: at least one model, all of the same architecture (same parameter and buffer names and
            shapes), e.g. :func:`nadlib.seeded_model` called once per direction.
        x_train: ``(M, N, C, H, W)`` floating-point inputs, one data set per model (``M == len(models)``).
        y_train: ``(M, N)`` labels (``+-1`` or class indices).
        recipe: the SGD recipe (only its training fields are used, as in :func:`nadlib.train`).
        run: :class:`nadlib.RunControl` (``seed``: the batch order; ``device``).

    Raises:
        ValueError: no models, models of different structure, data of the wrong shape or non-finite, all
            before training; ``FloatingPointError`` when a model's loss becomes non-finite.
    """
    run = as_run(run)
    run.require_fp32("training")
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError("models must be a non-empty sequence of nn.Module")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("all models must have the same architecture (parameter and buffer names and shapes)")
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
    if x_train.dim() != 5 or len(x_train) != len(models):
        raise ValueError(f"x_train must have shape (models={len(models)}, N, C, H, W), got {tuple(x_train.shape)}")
    if tuple(y_train.shape) != tuple(x_train.shape[:2]):
        raise ValueError(f"y_train must have shape {tuple(x_train.shape[:2])}, got {tuple(y_train.shape)}")
    if not x_train.is_floating_point() or not torch.isfinite(x_train).all():
        raise ValueError("x_train must be finite floating-point inputs")
    if x_train.shape[1] == 0:
        raise ValueError("the training sets are empty")
    device = run.torch_device()
    x_train = x_train.to(device)
    y_train = torch.stack([class_indices(y, "y_train") for y in y_train.to(device)])
    models = [m.to(device).train() for m in models]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta").train()

    def loss_fn(p, b, xb, yb):
        return nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    step = vmap(grad_and_value(loss_fn))  # BN buffers (stacked, batched) are updated in place per model
    n, batch_size, clip = x_train.shape[1], recipe.batch_size, recipe.clip
    opt, sched = sgd_recipe(list(params.values()), recipe.epochs * math.ceil(n / batch_size), lr=recipe.lr,
                            momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    for epoch in range(1, recipe.epochs + 1):
        total = torch.zeros(len(models), device=device)
        for idx in minibatches(n, batch_size, gen):
            grads, loss = step(params, buffers, x_train[:, idx], y_train[:, idx])
            total += loss.detach() * len(idx)
            if clip is not None:  # per-model clipping, as clip_grad_norm_ does for one model
                norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
                scale = (clip / (norms + 1e-6)).clamp(max=1.0)
                grads = {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
            for k, p in params.items():
                p.grad = grads[k]
            opt.step()
            sched.step()
        bad = (~torch.isfinite(total)).nonzero().flatten().tolist()
        if bad:
            raise FloatingPointError(f"training diverged at epoch {epoch} for model(s) {bad}; lower lr or set clip")
    with torch.no_grad():
        for j, m in enumerate(models):
            for k, v in m.named_parameters():
                v.copy_(params[k][j])
            for k, v in m.named_buffers():
                v.copy_(buffers[k][j])
    return models


def stacked_direction_accuracies(arch, directions, *, recipe: Recipe = PAPER_RECIPE,
                                 run: RunControl | None = None) -> list[float]:
    """Test accuracies of ``arch`` trained on D(v) for several directions ``v`` at once (:func:`train_stacked`).

    The same data, initialisation and batch order as ``[direction_accuracy(arch, v, recipe=recipe, run=run)
    for v in directions]`` (:func:`nadlib.direction_accuracy`), so the accuracies agree up to floating-point
    rounding (a test sample near the boundary may flip); models with batch norm included.  One model stack
    holds all the directions: pass a few (e.g. 16) at a time.
    """
    run = as_run(run)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    vs = [as_direction(v) for v in directions]
    if not vs:
        raise ValueError("directions is empty")
    if any(v.shape != vs[0].shape for v in vs):
        raise ValueError(f"all directions must have the same shape, got {sorted({tuple(v.shape) for v in vs})}")
    device, seed = run.torch_device(), run.seed
    data = [linear_separable(v, recipe.n_train, recipe.sigma, recipe.epsilon, seed=seed, device=device) for v in vs]
    models = [seeded_model(arch, seed, in_channels=vs[0].shape[0]) for _ in vs]
    train_stacked(models, torch.stack([x for x, _ in data]), torch.stack([y for _, y in data]), recipe=recipe,
                  run=run.replace(device=device))
    accs = []
    for v, m in zip(vs, models):
        x_te, y_te = linear_separable(v, recipe.n_test, recipe.sigma, recipe.epsilon, seed=seed + TEST_SEED_OFFSET,
                                      device=device)
        accs.append(evaluate(m, x_te, y_te))
    return accs


def stacked_accuracies(arch: str, freqs: Sequence[tuple[int, int]], size: int, settings: dict,
                       device: torch.device) -> list[float]:
    """:func:`stacked_direction_accuracies` of Fourier directions ``freqs``, with the grid's ``settings``
    (a :class:`nadlib.Recipe` as a dict plus ``seed``)."""
    s = dict(settings)
    seed = s.pop("seed")
    try:
        recipe = Recipe(**s)
    except TypeError as err:
        raise ValueError(f"settings not supported by the stacked runner: {err}") from None
    return stacked_direction_accuracies(arch, [fourier_direction(*f, size=size) for f in freqs], recipe=recipe,
                                        run=RunControl(seed=seed, device=device, progress=False))


Record = Callable[[Sequence[tuple[int, int]], Sequence[float]], None]


def _run_stacked(arch, todo, size, settings, device, record: Record, bar, chunk: int) -> None:
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        record(part, stacked_accuracies(arch, part, size, settings, device))
        bar.update(len(part))


def _run_serial(arch, todo, size, settings, device, record: Record, bar) -> None:
    for f in todo:
        record([f], [_grid_task(arch, f, size, settings, str(device))])
        bar.update(1)


class WorkerDied(RunStopped):
    """A grid worker process ended without finishing its direction (killed, or out of memory).  The directions
    finished before are kept (in the checkpoint, when there is one); ``lost`` are the ones that were not."""

    def __init__(self, lost: Sequence[tuple[int, int]], checkpoint=None):
        self.lost = sorted(lost)
        where = (f"the finished directions are in {str(checkpoint)!r}: run the same call again to train the rest"
                 if checkpoint is not None else "pass a checkpoint to keep finished directions across such a failure")
        super().__init__(f"a grid worker process died (killed, or out of memory?) before finishing "
                         f"{len(self.lost)} direction(s) {self.lost[:6]}{' ...' if len(self.lost) > 6 else ''}; {where}")


def _stop_workers(ex: ProcessPoolExecutor) -> None:
    """Terminate the executor's worker processes now (an interruption must not wait for their directions)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        p.terminate()
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(5)


def _run_pool(arch, todo, size, settings, device, record: Record, bar, workers: int, checkpoint=None) -> None:
    """One direction per worker process.  A worker that dies is noticed at once (its pool breaks) and stops the
    run with :class:`WorkerDied` naming the unfinished directions; on an interruption the workers are terminated
    at once.  Either way the directions finished so far are already recorded."""
    ex = ProcessPoolExecutor(workers, mp_context=get_context(POOL_START), initializer=_init_worker, initargs=(1,))
    futures = {ex.submit(_grid_job, (arch, f, size, settings, str(device))): f for f in todo}
    try:
        for fut in as_completed(futures):
            freq, acc = fut.result()
            record([freq], [acc])
            bar.update(1)
    except BrokenProcessPool:
        # as_completed hands out the directions that finished before the pool broke first: all are recorded
        _stop_workers(ex)
        lost = [f for fut, f in futures.items() if not fut.done() or fut.cancelled() or fut.exception() is not None]
        raise WorkerDied(lost, checkpoint) from None
    except BaseException:
        _stop_workers(ex)
        raise
    ex.shutdown(wait=True)


def accuracy_grid(arch: str, freqs: Iterable[tuple[int, int]] | None = None, *, size: int = 32,
                  stride: int = 1, band: int | None = None, recipe: Recipe = PAPER_RECIPE,
                  workers: int | None = None, stack: int | None = None,
                  run: RunControl | None = None) -> GridResult:
    """Train ``arch`` on D(v) for many Fourier directions ``v`` and return the test-accuracy map.

    Args:
        arch: architecture name (see :data:`nadlib.ARCHITECTURES`) or a zero-argument callable building a
            network with 2 outputs (worker processes need one they can import: a module-level class or
            function, or ``functools.partial`` of one; a lambda runs with ``workers=1``).
        freqs: frequencies ``(kx, ky)`` to train on; default: :func:`fourier_grid` with ``stride`` and
            ``band`` (one frequency per symmetric pair, since ``v`` and ``-v`` give the same task).
        recipe: data sizes and training of every direction (:class:`nadlib.Recipe`, default the paper's).
        workers: CPU worker processes (default: one per core, at most one per direction); 1 runs in
            this process.
        stack: how many directions to train at once in one model stack (:func:`train_stacked`, batch
            norm included); 1: one model per direction.  Default :func:`default_stack`: 16 on CUDA, 1 on
            the CPU (where worker processes are faster).
        run: :class:`nadlib.RunControl`.  ``run.seed`` as in :func:`direction_accuracy`, the same for every
            direction (same initial network and batch order: a common-random-numbers design that makes
            differences between directions stand out).  ``run.device``: default CUDA if available.
            ``run.checkpoint``: finished directions are saved there and skipped when the same call is made
            again.  ``run.deadline``: once it has passed, the grid stops after the direction (or stacked
            group) just finished and raises :class:`nadlib.results.DeadlineReached` (with worker processes,
            directions still in flight are dropped and redone by the next call).  ``run.progress``: a bar
            over directions (default on).
    """
    run = as_run(run)
    run.require_fp32("training")
    seeded_model(arch, 0)  # validates the name (or builds the user's model) early; global RNG untouched
    name = model_name(arch)
    if freqs is None:
        freqs = list(fourier_grid(size, stride, band=band))
    else:
        freqs = [tuple(f) for f in freqs]
        bad = [f for f in freqs if len(f) != 2]
        if bad:
            raise ValueError(f"a frequency is a pair (kx, ky), got {bad[0]!r}")
        for kx, ky in freqs:
            fourier_direction(kx, ky, size)  # validates types and range
        freqs = [(int(kx), int(ky)) for kx, ky in freqs]
    if not freqs:
        raise ValueError("no frequencies to train on")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    if workers is not None:
        positive_int(workers, "workers", maximum=1024)
    if stack is not None:
        positive_int(stack, "stack", maximum=4096)
    deadline, checkpoint, device = run.deadline, run.checkpoint, run.torch_device()
    settings = dict(asdict(recipe), seed=run.seed)
    done: dict = {}
    ckpt = None
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, {"arch": describe_model(arch, (1, size, size)), "size": size, **settings})
        if ckpt.resumed:
            done = {(int(a), int(b)): float(c) for (a, b), c in zip(ckpt.arrays["freqs"], ckpt.arrays["accuracy"])}
    todo = [f for f in freqs if f not in done]

    def record(batch_freqs, batch_accs):
        done.update(zip(batch_freqs, batch_accs))
        if ckpt is not None:
            keys = list(done)
            ckpt.save(freqs=np.array(keys, dtype=np.int64).reshape(-1, 2), accuracy=np.array([done[k] for k in keys]))
        if past(deadline) and len(done) < len(freqs):
            raise DeadlineReached(f"grid {name}: directions", sum(f in done for f in freqs), len(freqs), checkpoint)

    start = time.perf_counter()
    stack = default_stack(device) if stack is None else stack
    with tqdm(total=len(freqs), initial=len(freqs) - len(todo), desc=f"{name} grid", unit="dir",
              disable=not run.shows_progress(True)) as bar, interruptible(), torch.random.fork_rng(devices=[]):
        if stack > 1:
            _run_stacked(arch, todo, size, settings, device, record, bar, stack)
        else:
            if workers is None:  # one per core, when the model can be sent to worker processes
                workers = (os.cpu_count() or 1) if device.type == "cpu" and _picklable(arch) else 1
            workers = max(1, min(int(workers), len(todo)))
            if workers > 1 and not _picklable(arch):
                raise ValueError(f"{name} cannot be sent to worker processes (a lambda or a local function): "
                                 "define it at module level, or pass workers=1")
            if workers == 1:
                _run_serial(arch, todo, size, settings, device, record, bar)
            else:
                _run_pool(arch, todo, size, settings, device, record, bar, workers, run.checkpoint)
    return GridResult(name, {f: done[f] for f in freqs}, size, {"arch": name, "size": size, **settings},
                      time.perf_counter() - start)


def profile_grid(arch: str, profile=None, **kwargs) -> GridResult:
    """:func:`accuracy_grid` with the stride and recipe of a run profile (``nadlib.get_profile()`` by
    default); ``kwargs`` are :func:`accuracy_grid`'s keyword arguments and override the profile's."""
    cfg = (profile or get_profile()).separability
    kwargs.setdefault("stride", cfg.grid_stride)
    kwargs.setdefault("recipe", cfg.recipe())
    return accuracy_grid(arch, **kwargs)
