"""Training with the paper's recipe: one SGD recipe for every experiment of the book.

The recipe (Ortiz-Jimenez et al., 2020, linearly separable experiments): plain SGD (no momentum),
learning rate decayed linearly to 0 over all steps, gradient-norm clipping, cross-entropy loss,
mini-batches of 128.  Defaults: ``lr=0.5``, ``clip=0.5``, 20 epochs.

Speed.  :func:`train` keeps the whole data set as tensors on the device and slices mini-batches from a
seeded permutation (no ``DataLoader``, no per-sample Python), uses channels-last memory for conv nets
on CPU, and evaluates only when asked.  The optimiser and schedule (:func:`sgd_recipe`) and the batch order
(:func:`minibatches`) are shared with the batched grid runner (:mod:`nadlib.grid`), so both train with
the same arithmetic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import nonneg_int
from .config import PAPER_RECIPE, Recipe
from .control import RunControl, as_run
from .data import as_direction, linear_separable
from .models import seeded_model

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


def class_indices(y, name: str = "y") -> torch.Tensor:
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


def check_dataset(x, y, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(f"x_{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x_{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"x_{name} contains NaN or infinite values")
    y = class_indices(y, f"y_{name}")
    if len(y) != len(x):
        raise ValueError(f"x_{name} has {len(x)} samples but y_{name} has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"the {name} set is empty")
    return x, y


def _prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    return device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Accuracy of ``model`` on ``(x, y)`` (labels +-1 or class indices), in eval mode.

    Raises ``ValueError`` before any forward pass for no samples, NaN or infinite inputs, or as many labels
    as samples missing (an accuracy of such data would be meaningless, not 0.5)."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.dim() == 0 or len(x) == 0:
        raise ValueError("evaluate needs at least one sample")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    y = class_indices(y, "y")
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)} labels")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(x)


def sgd_recipe(params, total_steps: int, *, lr: float = PAPER_RECIPE.lr, momentum: float = PAPER_RECIPE.momentum,
               weight_decay: float = PAPER_RECIPE.weight_decay) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """The book's optimiser: SGD whose learning rate decays linearly from ``lr`` to 0 over ``total_steps``.

    Call ``scheduler.step()`` after every ``optimizer.step()``.  ``params`` is anything
    ``torch.optim.SGD`` takes (the parameters of one model, or stacked parameters of many).
    """
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total_steps)
    return opt, sched


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Indices of the mini-batches of one epoch: a permutation of ``range(n)`` drawn from ``generator``,
    cut into slices of ``batch_size`` (the last may be shorter)."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def check_recipe(*, epochs: int = PAPER_RECIPE.epochs, batch_size: int = PAPER_RECIPE.batch_size,
                 lr: float = PAPER_RECIPE.lr, clip: float | None = PAPER_RECIPE.clip,
                 momentum: float = PAPER_RECIPE.momentum, weight_decay: float = PAPER_RECIPE.weight_decay,
                 eval_every: int = 1) -> None:
    """Validate SGD settings (the training fields of :class:`nadlib.Recipe`, which checks them) and
    ``eval_every``; the defaults are the paper's recipe."""
    Recipe(epochs=epochs, batch_size=batch_size, lr=lr, clip=clip, momentum=momentum, weight_decay=weight_decay)
    nonneg_int(eval_every, "eval_every")


def check_fits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    """One forward pass on one sample: the model must take ``x``'s shape and have an output per class."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(x[:1])
    except (RuntimeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"the model does not accept x_{name} of shape (N, {', '.join(map(str, x.shape[1:]))}): "
                         f"{first}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError(f"the model must return class scores of shape (N, classes), got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    top = int(y.max())
    if top >= out.shape[1]:
        raise ValueError(f"y_{name} has label {top} but the model has only {out.shape[1]} outputs "
                         f"(classes 0..{out.shape[1] - 1}): build it with {top + 1} outputs, e.g. "
                         f"num_classes={top + 1} (D(v) has 2 classes, CIFAR-10 10; NADs need 1)")


def train(model: nn.Module, x_train, y_train, x_test=None, y_test=None, *, recipe: Recipe = PAPER_RECIPE,
          eval_every: int = 1, on_epoch_end: Callable[[int, nn.Module], None] | None = None,
          run: RunControl | None = None) -> TrainResult:
    """Train ``model`` in place with SGD and a linear learning-rate decay to 0; return its history.

    Args:
        model: any ``nn.Module`` mapping ``(N, C, H, W)`` to class scores.
        x_train, y_train: training data; labels are ``+-1`` (mapped to classes 1/0) or class indices.
        x_test, y_test: optional test set, evaluated every ``eval_every`` epochs and after the last one.
        recipe: the SGD recipe (:class:`nadlib.Recipe`; only ``epochs``, ``batch_size``, ``lr``, ``clip``
            -- the maximum gradient norm, None for none --, ``momentum`` and ``weight_decay`` are used);
            default the paper's (20, 128, 0.5, 0.5, 0, 0).  E.g. ``recipe=PAPER_RECIPE.replace(epochs=5)``.
        run: :class:`nadlib.RunControl`.  ``run.seed`` seeds the order of the mini-batches (initialise the
            model yourself, e.g. with :func:`nadlib.seeded_model`); the same seed, model and data give the
            same run.  ``run.device``: where to train (default CUDA if available); data is moved there once.
            ``run.progress``: a ``tqdm`` bar over epochs (True, the default), nothing (False), or a callable
            ``f(result)`` called with the :class:`TrainResult` so far after every evaluated epoch (a live
            plot, a widget that shows the first reading after one epoch).
        eval_every: evaluate the train/test accuracy every this many epochs (0: only after the last).
        on_epoch_end: optional ``callback(epoch, model)`` called once after every epoch (after that
            epoch's evaluation); the model is put back in training mode after it returns.

    Training accuracy is the accuracy on the training mini-batches seen during the epoch (free to
    compute); the test accuracy is measured in eval mode on the whole test set.

    Raises:
        ValueError: bad recipe values, data that is empty, non-finite or of the wrong shape for the
            model, labels the model has no output for -- all before training starts; and
            ``FloatingPointError`` when the loss becomes non-finite.
    """
    run = as_run(run)
    run.require_fp32("training")
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    nonneg_int(eval_every, "eval_every")
    epochs, batch_size, clip = recipe.epochs, recipe.batch_size, recipe.clip
    progress = run.shows_progress(True)
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"on_epoch_end must be callable, got {type(on_epoch_end).__name__}")
    x_train, y_train = check_dataset(x_train, y_train, "train")
    has_test = x_test is not None
    if has_test != (y_test is not None):
        raise ValueError("give both x_test and y_test, or neither")
    if has_test:
        x_test, y_test = check_dataset(x_test, y_test, "test")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"x_test has samples of shape {tuple(x_test.shape[1:])}, x_train of "
                             f"{tuple(x_train.shape[1:])}")

    device = run.torch_device()
    model = model.to(device)
    fmt = torch.channels_last if _prefers_channels_last(model, device) else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x_train = x_train.to(device).contiguous(memory_format=fmt)
    y_train = y_train.to(device)
    check_fits(model, x_train, torch.cat([y_train, y_test.to(device)]) if has_test else y_train, "train")
    if has_test:
        x_test, y_test = x_test.to(device).contiguous(memory_format=fmt), y_test.to(device)

    n = len(x_train)
    opt, sched = sgd_recipe(model.parameters(), epochs * math.ceil(n / batch_size), lr=recipe.lr,
                            momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    loss_fn = nn.CrossEntropyLoss()
    result = TrainResult(model=model)
    start = time.perf_counter()
    model.train()
    report = progress if callable(progress) else None
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=report is not None or not progress,
               leave=False)
    for epoch in bar:
        correct = torch.zeros((), device=device)
        total_loss = torch.zeros((), device=device)
        for idx in minibatches(n, batch_size, gen):
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
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {result.loss[-1]}); "
                                         "lower lr or set clip")
            if has_test:
                result.test_acc.append(evaluate(model, x_test, y_test))
            bar.set_postfix(train=f"{result.train_acc[-1]:.3f}",
                            test=f"{result.test_acc[-1]:.3f}" if has_test else "-")
            if report is not None:
                result.wall_time = time.perf_counter() - start
                report(result)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
            model.train()
    result.wall_time = time.perf_counter() - start
    return result


def direction_accuracy(arch: str, v, *, recipe: Recipe = PAPER_RECIPE, return_history: bool = False,
                       run: RunControl | None = None):
    """Test accuracy (a float in [0, 1]) of ``arch`` trained on D(v) with ``recipe`` (default the paper's).

    ``recipe`` (:class:`nadlib.Recipe`) sets the data (``n_train``, ``n_test``, ``sigma``, ``epsilon``) and
    the training (:func:`train`).  ``run.seed`` fixes the training data, the test data (seed +
    ``TEST_SEED_OFFSET``), the initialisation and the batch order; ``run.progress`` as in :func:`train`
    (default off; a callable receives the history after every epoch).  With ``return_history=True`` the whole
    :class:`TrainResult` is returned instead.
    """
    run = as_run(run)
    v = as_direction(v)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a nadlib.Recipe, got {type(recipe).__name__}: {recipe!r}")
    device = run.torch_device()
    seed = run.seed
    x_tr, y_tr = linear_separable(v, recipe.n_train, recipe.sigma, recipe.epsilon, seed=seed, device=device)
    x_te, y_te = linear_separable(v, recipe.n_test, recipe.sigma, recipe.epsilon, seed=seed + TEST_SEED_OFFSET,
                                  device=device)
    model = seeded_model(arch, seed, in_channels=v.shape[0])
    result = train(model, x_tr, y_tr, x_te, y_te, recipe=recipe,
                   run=run.replace(device=device, progress=run.shows_progress(False)))
    return result if return_history else result.final_test_acc


