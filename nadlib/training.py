"""Training with the paper's recipe, and a fast grid runner over many directions.

The recipe (Ortiz-Jimenez et al., 2020, linearly separable experiments): plain SGD (no momentum),
learning rate decayed linearly to 0 over all steps, gradient-norm clipping, cross-entropy loss,
mini-batches of 128.  Defaults: ``lr=0.5``, ``clip=0.5``, 20 epochs.

Speed.  :func:`train` keeps the whole data set as tensors on the device and slices mini-batches from a
seeded permutation (no ``DataLoader``, no per-sample Python), uses channels-last memory for conv nets
on CPU, and evaluates only when asked.  :func:`accuracy_grid` trains one architecture on many
directions: on CPU it spreads directions over worker processes (one thread each, which uses small
convolutions better than intra-op threads), on CUDA it trains several models at once with
``torch.func.vmap`` (models without batch norm) -- the same arithmetic, batched.
"""

from __future__ import annotations

import copy
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import get_device, get_profile
from .data import as_direction, linear_separable
from .directions import fill_symmetric, fourier_direction, fourier_grid
from .models import get_model

#: Offset between the seed of the training set and that of the test set drawn from the same D(v).
TEST_SEED_OFFSET = 1_000_003


@dataclass
class TrainResult:
    """History of one training run (accuracies in [0, 1], one entry per evaluated epoch)."""

    epochs: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    wall_time: float = 0.0
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def final_test_acc(self) -> float:
        """Test accuracy after the last epoch (NaN when no test set was given)."""
        return self.test_acc[-1] if self.test_acc else float("nan")

    @property
    def final_train_acc(self) -> float:
        return self.train_acc[-1] if self.train_acc else float("nan")


def _class_indices(y: torch.Tensor, name: str) -> torch.Tensor:
    """Labels as class indices: ``{-1, +1}`` become ``{0, 1}``; class indices pass unchanged."""
    y = torch.as_tensor(y)
    if y.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of labels, got shape {tuple(y.shape)}")
    if y.is_floating_point():
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            raise ValueError(f"{name} must hold integer labels (class indices or +-1)")
    y = y.long()
    if y.numel() and y.min() < 0:
        if not bool(((y == -1) | (y == 1)).all()):
            raise ValueError(f"{name} with negative values must be +-1 labels, got values {torch.unique(y).tolist()[:10]}")
        y = (y > 0).long()
    return y


def _check_xy(x, y, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(f"x_{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x_{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"x_{name} contains NaN or infinite values")
    y = _class_indices(y, f"y_{name}")
    if len(y) != len(x):
        raise ValueError(f"x_{name} has {len(x)} samples but y_{name} has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"the {name} set is empty")
    return x, y


def _check_positive(value, name: str, kind=int):
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")
    return value


def _prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    return device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Accuracy of ``model`` on ``(x, y)`` (labels +-1 or class indices), in eval mode."""
    y = _class_indices(y, "y")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(x)


def train(model: nn.Module, x_train, y_train, x_test=None, y_test=None, *, epochs: int = 20,
          batch_size: int = 128, lr: float = 0.5, clip: float | None = 0.5, momentum: float = 0.0,
          weight_decay: float = 0.0, seed: int = 0, device=None, progress: bool = True,
          eval_every: int = 1, on_epoch_end: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Train ``model`` in place with SGD and a linear learning-rate decay to 0; return its history.

    Args:
        model: any ``nn.Module`` mapping ``(N, C, H, W)`` to class scores.
        x_train, y_train: training data; labels are ``+-1`` (mapped to classes 1/0) or class indices.
        x_test, y_test: optional test set, evaluated every ``eval_every`` epochs and after the last one.
        epochs, batch_size, lr, momentum, weight_decay: the SGD recipe (paper: 20, 128, 0.5, 0, 0).
        clip: maximum gradient norm (``None`` disables clipping).
        seed: seeds the order of the mini-batches (initialise the model yourself, e.g. with
            ``torch.manual_seed``); the same seed, model and data give the same run.
        device: where to train (default: CUDA if available, else CPU); data is moved there once.
        progress: show a ``tqdm`` bar over epochs.
        eval_every: evaluate the train/test accuracy every this many epochs (0: only after the last).
        on_epoch_end: optional ``callback(epoch, model)`` called once after every epoch (after that
            epoch's evaluation); the model is put back in training mode after it returns.

    Training accuracy is the accuracy on the training mini-batches seen during the epoch (free to
    compute); the test accuracy is measured in eval mode on the whole test set.
    """
    epochs = _check_positive(epochs, "epochs")
    batch_size = _check_positive(batch_size, "batch_size")
    lr = _check_positive(lr, "lr", float)
    if clip is not None:
        clip = _check_positive(clip, "clip", float)
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be an int >= 0, got {eval_every!r}")
    x_train, y_train = _check_xy(x_train, y_train, "train")
    has_test = x_test is not None
    if has_test != (y_test is not None):
        raise ValueError("give both x_test and y_test, or neither")
    if has_test:
        x_test, y_test = _check_xy(x_test, y_test, "test")

    device = get_device(device)
    model = model.to(device)
    fmt = torch.channels_last if _prefers_channels_last(model, device) else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x_train = x_train.to(device).contiguous(memory_format=fmt)
    y_train = y_train.to(device)
    if has_test:
        x_test, y_test = x_test.to(device).contiguous(memory_format=fmt), y_test.to(device)

    n = len(x_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total_steps)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    loss_fn = nn.CrossEntropyLoss()
    result = TrainResult(model=model)
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen, device=device)
        correct = torch.zeros((), device=device)
        total_loss = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            with torch.no_grad():
                correct += (out.argmax(1) == yb).sum()
                total_loss += loss.detach() * len(idx)
        if (eval_every and epoch % eval_every == 0) or epoch == epochs:
            result.epochs.append(epoch)
            result.train_acc.append(correct.item() / n)
            result.loss.append(total_loss.item() / n)
            if not math.isfinite(result.loss[-1]):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {result.loss[-1]})")
            if has_test:
                result.test_acc.append(evaluate(model, x_test, y_test))
            bar.set_postfix(train=f"{result.train_acc[-1]:.3f}",
                            test=f"{result.test_acc[-1]:.3f}" if has_test else "-")
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
            model.train()
    result.wall_time = time.perf_counter() - start
    return result


def _seeded_model(arch: str | Callable[[], nn.Module], seed: int, in_channels: int,
                  num_classes: int = 2) -> nn.Module:
    """A model initialised from ``seed`` without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(arch, str):
            return get_model(arch, in_channels=in_channels, num_classes=num_classes)
        return arch()


def direction_accuracy(arch: str, v, n_train: int = 10_000, n_test: int = 10_000, epochs: int = 20,
                       seed: int = 0, device=None, *, sigma: float = 3.0, epsilon: float = 1.0,
                       progress: bool = False, return_history: bool = False, **train_kwargs):
    """Test accuracy (a float in [0, 1]) of ``arch`` trained on D(v) with the paper's recipe.

    ``seed`` fixes the training data, the test data (seed + ``TEST_SEED_OFFSET``), the initialisation
    and the batch order.  Extra keyword arguments go to :func:`train` (``lr``, ``clip``, ``batch_size``).
    With ``return_history=True`` the whole :class:`TrainResult` is returned instead.
    """
    v = as_direction(v)
    device = get_device(device)
    x_tr, y_tr = linear_separable(v, n_train, sigma, epsilon, seed=seed, device=device)
    x_te, y_te = linear_separable(v, n_test, sigma, epsilon, seed=seed + TEST_SEED_OFFSET, device=device)
    model = _seeded_model(arch, seed, in_channels=v.shape[0])
    result = train(model, x_tr, y_tr, x_te, y_te, epochs=epochs, seed=seed, device=device,
                   progress=progress, **train_kwargs)
    return result if return_history else result.final_test_acc


# ----------------------------------------------------------------------------------------------
# Grid runner
# ----------------------------------------------------------------------------------------------

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
        """Load a grid written by ``python -m nadlib grid`` (see :func:`run_grid_cli`)."""
        from .results import load_artifact

        arrays, meta = load_artifact(path)
        acc = {(int(kx), int(ky)): float(a) for (kx, ky), a in zip(arrays["freqs"], arrays["accuracy"])}
        return cls(meta.get("arch", "?"), acc, int(meta.get("size", 32)), meta, float(meta.get("wall_time", 0.0)))


def _grid_task(arch: str, freq: tuple[int, int], size: int, settings: dict, device: str) -> float:
    """One direction of a grid (top-level so worker processes can run it)."""
    v = fourier_direction(*freq, size=size)
    return direction_accuracy(arch, v, device=device, **settings)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _stacked_accuracies(arch: str, freqs: Sequence[tuple[int, int]], size: int, settings: dict,
                        device: torch.device) -> list[float]:
    """Train one model per direction *at once* with ``torch.func.vmap``; same recipe as :func:`train`.

    Every model starts from the same initialisation and sees the same batch order as the sequential
    runs, so the results agree with :func:`direction_accuracy` up to floating-point rounding.
    """
    from torch.func import functional_call, grad, stack_module_state, vmap

    s = dict(settings)
    seed, epochs = s.pop("seed"), s.pop("epochs")
    n_train, n_test = s.pop("n_train"), s.pop("n_test")
    sigma, epsilon = s.pop("sigma", 3.0), s.pop("epsilon", 1.0)
    lr, clip, batch_size = s.pop("lr", 0.5), s.pop("clip", 0.5), s.pop("batch_size", 128)
    if s:
        raise ValueError(f"settings not supported by the stacked runner: {sorted(s)}")
    data = [linear_separable(fourier_direction(*f, size=size), n_train, sigma, epsilon, seed=seed, device=device)
            for f in freqs]
    xs = torch.stack([x for x, _ in data])
    ys = torch.stack([_class_indices(y, "y") for _, y in data])
    del data
    models = [_seeded_model(arch, seed, 1).to(device) for _ in freqs]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_fn(p, b, xb, yb):
        return nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    grad_fn = vmap(grad(loss_fn))
    gen = torch.Generator(device=device).manual_seed(int(seed))
    total_steps, step = epochs * math.ceil(n_train / batch_size), 0
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen, device=device)
        for i in range(0, n_train, batch_size):
            idx = perm[i:i + batch_size]
            grads = grad_fn(params, buffers, xs[:, idx], ys[:, idx])
            step_lr = lr * (1.0 - step / total_steps)
            scale = torch.full((len(freqs),), step_lr, device=device)
            if clip is not None:
                norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
                scale = scale * (clip / (norms + 1e-6)).clamp(max=1.0)
            with torch.no_grad():
                for k, g in grads.items():
                    params[k].sub_(scale.view(-1, *[1] * (g.dim() - 1)) * g)
            step += 1
    accs = []
    with torch.inference_mode():
        for j, f in enumerate(freqs):
            x_te, y_te = linear_separable(fourier_direction(*f, size=size), n_test, sigma, epsilon,
                                          seed=seed + TEST_SEED_OFFSET, device=device)
            p = {k: v[j] for k, v in params.items()}
            b = {k: v[j] for k, v in buffers.items()}
            out = torch.cat([functional_call(base, (p, b), (x_te[i:i + 1024],)) for i in range(0, n_test, 1024)])
            accs.append((out.argmax(1) == _class_indices(y_te, "y")).float().mean().item())
    return accs


def accuracy_grid(arch: str, freqs: Iterable[tuple[int, int]] | None = None, *, size: int = 32,
                  stride: int = 1, band: int | None = None, n_train: int = 10_000, n_test: int = 10_000, epochs: int = 20,
                  seed: int = 0, device=None, workers: int | None = None, stack: int | None = None,
                  progress: bool = True, checkpoint=None, **recipe) -> GridResult:
    """Train ``arch`` on D(v) for many Fourier directions ``v`` and return the test-accuracy map.

    Args:
        arch: architecture name (see :data:`nadlib.ARCHITECTURES`).
        freqs: frequencies ``(kx, ky)`` to train on; default: :func:`fourier_grid` with ``stride`` and
            ``band`` (one frequency per symmetric pair, since ``v`` and ``-v`` give the same task).
        n_train, n_test, epochs, seed: as in :func:`direction_accuracy` (every direction uses the same
            seed: same initial network and batch order, a common-random-numbers design that makes
            differences between directions stand out).
        device: default CUDA if available, else CPU.
        workers: CPU worker processes (default: one per core, at most one per direction); 1 runs in
            this process.
        stack: CUDA only: how many models to train at once with ``vmap`` (default 16; models with
            batch norm are trained one at a time).
        checkpoint: optional path of a ``.npz`` checkpoint; finished directions are saved there and
            skipped when the same call is made again (resume after an interruption).
        **recipe: ``lr``, ``clip``, ``batch_size``, ``sigma``, ``epsilon``.
    """
    if not isinstance(arch, str):
        raise TypeError("accuracy_grid needs an architecture name (str)")
    get_model(arch)  # validates the name early, with the list of known names
    freqs = list(fourier_grid(size, stride, band=band)) if freqs is None else [tuple(int(k) for k in f) for f in freqs]
    for kx, ky in freqs:
        fourier_direction(kx, ky, size)  # validates the range
    if not freqs:
        raise ValueError("no frequencies to train on")
    device = get_device(device)
    settings = dict(n_train=n_train, n_test=n_test, epochs=epochs, seed=seed, **recipe)
    done: dict = {}
    ckpt = None
    if checkpoint is not None:
        from .results import Checkpoint

        ckpt = Checkpoint(checkpoint, {"arch": arch, "size": size, **settings})
        if ckpt.resumed:
            done = {(int(a), int(b)): float(c) for (a, b), c in zip(ckpt.arrays["freqs"], ckpt.arrays["accuracy"])}
    todo = [f for f in freqs if f not in done]

    def record(batch_freqs, batch_accs):
        done.update(zip(batch_freqs, batch_accs))
        if ckpt is not None:
            keys = list(done)
            ckpt.save(freqs=np.array(keys, dtype=np.int64).reshape(-1, 2), accuracy=np.array([done[k] for k in keys]))

    start = time.perf_counter()
    bar = tqdm(total=len(freqs), initial=len(freqs) - len(todo), desc=f"{arch} grid", unit="dir",
               disable=not progress)
    uses_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in get_model(arch).modules())
    if device.type == "cuda" and not uses_bn and (stack or 16) > 1:
        chunk = stack or 16
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            record(part, _stacked_accuracies(arch, part, size, settings, device))
            bar.update(len(part))
    else:
        if workers is None:
            workers = (os.cpu_count() or 1) if device.type == "cpu" else 1
        workers = max(1, min(int(workers), len(todo)))
        if workers == 1:
            for f in todo:
                record([f], [_grid_task(arch, f, size, settings, str(device))])
                bar.update(1)
        else:
            ctx = get_context("spawn")  # fork after torch's thread pools started is unsafe
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(1,)) as pool:
                futures = {pool.submit(_grid_task, arch, f, size, settings, str(device)): f for f in todo}
                from concurrent.futures import as_completed

                for fut in as_completed(futures):
                    record([futures[fut]], [fut.result()])
                    bar.update(1)
    bar.close()
    result = GridResult(arch, {f: done[f] for f in freqs}, size, {"arch": arch, "size": size, **settings},
                        time.perf_counter() - start)
    return result


def profile_grid(arch: str, profile=None, **overrides) -> GridResult:
    """:func:`accuracy_grid` with the sizes of a run profile (``nadlib.get_profile()`` by default)."""
    cfg = (profile or get_profile()).separability
    kwargs = dict(stride=cfg.grid_stride, n_train=cfg.n_train, n_test=cfg.n_test, epochs=cfg.epochs,
                  lr=cfg.lr, clip=cfg.clip, batch_size=cfg.batch_size, sigma=cfg.sigma, epsilon=cfg.epsilon)
    kwargs.update(overrides)
    return accuracy_grid(arch, **kwargs)


# ----------------------------------------------------------------------------------------------
# Command line: python -m nadlib grid
# ----------------------------------------------------------------------------------------------

def run_grid_cli(args) -> None:
    """``python -m nadlib grid``: one architecture over a Fourier grid, resumable, artifact with provenance."""
    from pathlib import Path

    from .results import provenance, save_artifact

    profile = get_profile(args.profile)
    cfg = profile.separability
    stride = args.stride or cfg.grid_stride
    out = Path(args.out)
    ckpt = out.with_name(out.stem + ".ckpt.npz")
    overrides = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test), ("epochs", args.epochs))
                 if v is not None}
    freqs = _parse_freqs(args.freqs) if args.freqs else None
    result = profile_grid(args.arch, profile, freqs=freqs, stride=stride, band=args.band, seed=args.seed,
                          device=args.device, workers=args.workers, checkpoint=ckpt, **overrides)
    meta = provenance(device=get_device(args.device), profile=profile.name, stride=stride, band=args.band,
                      wall_time=result.wall_time, **result.settings)
    save_artifact(out, result.to_arrays(), meta)
    ckpt.unlink(missing_ok=True)
    acc = np.array(list(result.accuracy.values()))
    print(f"wrote {out}: {len(acc)} directions, accuracy min {acc.min():.3f} / median {np.median(acc):.3f} "
          f"/ max {acc.max():.3f}, {result.wall_time:.0f} s (this session)")


def _parse_freqs(text: str) -> list[tuple[int, int]]:
    """``"1,0;4,4"`` -> ``[(1, 0), (4, 4)]``."""
    try:
        return [tuple(int(k) for k in item.split(",")) for item in text.split(";") if item.strip()]
    except ValueError:
        raise ValueError(f"--freqs must look like 'kx,ky;kx,ky', got {text!r}") from None


def register_cli(subparsers) -> None:
    from .models import ARCHITECTURES

    p = subparsers.add_parser("grid", help="test accuracy of one architecture over a Fourier grid of D(v)")
    p.add_argument("--arch", required=True, choices=ARCHITECTURES)
    p.add_argument("--profile", default=None, help="smoke | default | paper (default: $NADLIB_PROFILE or default)")
    p.add_argument("--stride", type=int, default=None, help="grid step (default: the profile's)")
    p.add_argument("--band", type=int, default=None,
                   help="only the low-frequency block with signed frequencies in [-B, B-1] (8: the paper's maps)")
    p.add_argument("--freqs", default=None, help="explicit frequencies 'kx,ky;kx,ky;...' instead of a grid")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA if available)")
    p.add_argument("--workers", type=int, default=None, help="CPU worker processes (default: one per core)")
    p.add_argument("--out", required=True, help="output .npz (a .ckpt.npz beside it allows resuming)")
    p.set_defaults(func=run_grid_cli)
