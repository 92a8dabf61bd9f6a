"""Gaps that the mutation run of the science modules `grid.py`, `nads/lenet_secant.py` and `cifar10.py` showed
(issue 20, `tests/MUTANTS.md`).

Every test here checks a value derived by hand or from the documented definition at a small, non-degenerate
point (one SGD step of a linear model written out, the frequencies of a 4 x 4 spectrum listed by hand, a
uint8 image converted by hand, ...), never a value copied from a run of the code.  All are fast (well under
a second or two each on one CPU thread) and run in `make test-fast` and in `make mutants`.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

import nadlib.affinity as A
import nadlib.cifar10 as C
import nadlib.grid as G
from nadlib import Recipe, RunControl
from nadlib.directions import fourier_direction
from nadlib.models import LeNet, LogReg, describe_model
from nadlib.nads import stats as S
from nadlib.nads.lenet_secant import LeNetSecant, lenet_layers
from nadlib.results import DeadlineReached, load_artifact, save_artifact
from nadlib.training import direction_accuracy

CPU = dict(device="cpu", progress=False)

# --------------------------------------------------------------------------------------------------
# grid.py: accuracy_grid, GridResult, train_stacked
# --------------------------------------------------------------------------------------------------

#: a 4 x 4 logistic regression (picklable: a partial of a module-level class) and a tiny recipe
LOGREG4 = functools.partial(LogReg, 1, 2, 4)
TINY = Recipe(n_train=40, n_test=50, epochs=1, batch_size=16)

#: one member of each symmetric pair of the 4 x 4 spectrum, in row-major order (first member kept), by hand:
#: (kx, ky) and (-kx mod 4, -ky mod 4) are one pair; (0,0), (2,0), (0,2), (2,2) are their own mirrors.
FREQS4 = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (3, 1), (0, 2), (1, 2), (2, 2)]
#: band=1 keeps signed frequencies in [-1, 0], i.e. k in {0, 3} at size 4: (0,0), (3,0), (0,3), (3,3)
BAND1 = [(0, 0), (3, 0), (0, 3), (3, 3)]


def _alone(f, size=4, seed=5, recipe=TINY):
    return direction_accuracy(LOGREG4, fourier_direction(*f, size=size), recipe=recipe,
                              run=RunControl(seed=seed, **CPU))


def test_grid_default_frequencies_seed_size_and_result_fields():
    """`freqs=None`: the whole half spectrum of the grid's size (stride 1 by default), each direction trained as
    `direction_accuracy` trains it alone with the grid's recipe and `run.seed` (here 5, not the default 0), at
    the grid's size (4, not the default 32); the result carries name, size and settings."""
    grid = G.accuracy_grid(LOGREG4, size=4, recipe=TINY, workers=1, run=RunControl(seed=5, **CPU))
    assert list(grid.accuracy) == FREQS4
    assert all(grid.accuracy[f] == _alone(f) for f in [(1, 0), (2, 1), (3, 1)])
    assert grid.arch == "partial(LogReg)" and grid.size == 4 and 0 < grid.wall_time < 600
    assert grid.settings == {"arch": "partial(LogReg)", "size": 4, **asdict(TINY), "seed": 5}
    arrays = grid.to_arrays()
    assert arrays["freqs"].dtype == np.int64 and arrays["freqs"].shape == (10, 2)
    assert arrays["freqs"].tolist() == [list(f) for f in sorted(FREQS4)]
    assert arrays["accuracy"].tolist() == [grid.accuracy[f] for f in sorted(FREQS4)]
    assert arrays["map"].shape == (4, 4) and arrays["map"][3, 3] == grid.accuracy[(1, 1)]  # the mirror (3, 3) of (1, 1)


def test_grid_band_and_stride():
    band = G.accuracy_grid(LOGREG4, size=4, band=1, recipe=TINY, workers=1, run=RunControl(seed=5, **CPU))
    assert list(band.accuracy) == BAND1 and band.accuracy[(3, 3)] == _alone((3, 3))
    coarse = G.accuracy_grid(LOGREG4, size=4, stride=2, recipe=TINY, workers=1, run=RunControl(seed=5, **CPU))
    assert list(coarse.accuracy) == [(0, 0), (2, 0), (0, 2), (2, 2)]


def test_an_empty_grid_and_bad_counts_are_refused():
    with pytest.raises(ValueError, match=r"^no frequencies to train on$"):
        G.accuracy_grid(LOGREG4, [], size=4, recipe=TINY, run=RunControl(**CPU))
    with pytest.raises(TypeError, match=r"^recipe must be a nadlib.Recipe, got dict: \{\}$"):
        G.accuracy_grid(LOGREG4, [(1, 0)], size=4, recipe={}, run=RunControl(**CPU))
    for name, maximum in (("workers", 1024), ("stack", 4096)):
        with pytest.raises(ValueError, match=rf"^{name} must be at most {maximum:,}, got {maximum + 1:,}$"):
            G.accuracy_grid(LOGREG4, [(1, 0)], size=4, recipe=TINY, run=RunControl(**CPU), **{name: maximum + 1})
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            G.accuracy_grid(LOGREG4, [(1, 0)], size=4, recipe=TINY, run=RunControl(**CPU), **{name: 0})
    with pytest.raises(ValueError, match=r"^training runs in float32 only"):
        G.accuracy_grid(LOGREG4, [(1, 0)], size=4, recipe=TINY, run=RunControl(precision="bf16", **CPU))


def test_grid_checkpoint_identity_and_deadline(tmp_path):
    """The checkpoint is written for the grid's settings (the model described at the grid's input shape);
    past the deadline the grid stops after the direction it finished, naming 1 of 3 done and the checkpoint."""
    ckpt = tmp_path / "g.ckpt.npz"
    freqs = [(1, 0), (0, 1), (1, 1)]
    with pytest.raises(DeadlineReached) as stop:
        G.accuracy_grid(LOGREG4, freqs, size=4, recipe=TINY, workers=1,
                        run=RunControl(seed=5, checkpoint=ckpt, deadline=0.0, **CPU))
    assert (stop.value.done, stop.value.total, stop.value.checkpoint) == (1, 3, ckpt)
    assert str(stop.value) == (f"deadline reached: grid partial(LogReg): directions 1 of 3 done; progress saved "
                               f"in {str(ckpt)!r}; the same call continues from there")
    arrays, meta = load_artifact(ckpt)
    assert meta["settings"] == {"arch": describe_model(LOGREG4, (1, 4, 4)), "size": 4, **asdict(TINY), "seed": 5}
    assert arrays["freqs"].dtype == np.int64 and arrays["freqs"].tolist() == [[1, 0]]
    assert arrays["accuracy"].tolist() == [_alone((1, 0))]
    rest = G.accuracy_grid(LOGREG4, freqs, size=4, recipe=TINY, workers=1,
                           run=RunControl(seed=5, checkpoint=ckpt, **CPU))
    assert rest.accuracy == {f: _alone(f) for f in freqs}


def test_grid_stack_option_trains_in_chunks_of_stack(monkeypatch):
    """`stack=2` on the CPU: the stacked runner gets the directions two at a time with the grid's size, settings and
    device; no direction goes through the one-at-a-time runner."""
    calls, serial = [], []
    real = G.stacked_accuracies
    monkeypatch.setattr(G, "stacked_accuracies", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(G, "_grid_task", lambda *a: serial.append(a) or 0.5)
    freqs = [(1, 0), (0, 1), (1, 1)]
    grid = G.accuracy_grid(LOGREG4, freqs, size=4, recipe=TINY, stack=2, run=RunControl(seed=5, **CPU))
    assert serial == []
    assert [c[1] for c in calls] == [[(1, 0), (0, 1)], [(1, 1)]]
    settings = dict(asdict(TINY), seed=5)
    assert all(c[0] is LOGREG4 and c[2] == 4 and c[3] == settings and c[4] == torch.device("cpu") for c in calls)
    want = real(LOGREG4, [(1, 0), (0, 1)], 4, settings, torch.device("cpu")) + \
        real(LOGREG4, [(1, 1)], 4, settings, torch.device("cpu"))
    assert list(grid.accuracy.values()) == want


def test_default_stack_is_one_on_the_cpu_and_sixteen_on_cuda():
    assert G.default_stack("cpu") == 1 and G.default_stack(torch.device("cpu")) == 1
    assert G.default_stack("cuda") == G.CUDA_STACK == 16 and G.default_stack("cuda:1") == 16


def test_grid_result_round_trip_through_an_artifact(tmp_path):
    """`GridResult.from_artifact` reads back what `to_arrays` wrote: frequencies, accuracies (0 and 1 allowed),
    arch, size, settings and wall time; a file with only one of the two arrays is refused."""
    grid = G.GridResult("lenet", {(1, 0): 0.0, (3, 2): 1.0, (2, 5): 0.625}, size=8,
                        settings={"arch": "lenet", "size": 8, "seed": 3}, wall_time=2.5)
    meta = dict(grid.settings, wall_time=grid.wall_time)
    back = G.GridResult.from_artifact(save_artifact(tmp_path / "g.npz", grid.to_arrays(), meta))
    assert back.arch == "lenet" and back.size == 8 and back.wall_time == 2.5
    assert back.accuracy == {(1, 0): 0.0, (2, 5): 0.625, (3, 2): 1.0}
    assert all(type(k[0]) is int and type(k[1]) is int and type(a) is float for k, a in back.accuracy.items())
    assert back.settings["seed"] == 3 and back.settings["size"] == 8
    assert np.array_equal(back.map, grid.map, equal_nan=True)
    bare = G.GridResult.from_artifact(save_artifact(tmp_path / "b.npz", {"freqs": np.array([[1, 0]]),
                                                                          "accuracy": np.array([0.75])}, {}))
    assert (bare.arch, bare.size, bare.wall_time, bare.accuracy) == ("?", 32, 0.0, {(1, 0): 0.75})
    for arrays in ({"freqs": np.array([[1, 0]])}, {"accuracy": np.array([0.5])}):
        path = save_artifact(tmp_path / "h.npz", arrays, {})
        with pytest.raises(ValueError, match=rf"^{str(path)!r} is not a Fourier grid \(it has \[.*\], not 'freqs' "
                                             r"and 'accuracy'\)$"):
            G.GridResult.from_artifact(path)
    for bad in (-0.25, 1.25):
        path = save_artifact(tmp_path / "o.npz", {"freqs": np.array([[1, 0], [2, 0]]),
                                                   "accuracy": np.array([0.5, bad])}, {})
        with pytest.raises(ValueError, match=rf"^{str(path)!r} holds accuracies outside \[0, 1\] \(damaged or edited\)$"):
            G.GridResult.from_artifact(path)


# ---- train_stacked: one SGD step of a linear model written out by hand --------------------------

#: two data sets of 3 samples in 4 dimensions (as 1 x 2 x 2 images), labels +-1
_XS = torch.tensor([[[1., 2., 0., -1.], [0., 1., 3., 1.], [2., -1., 1., 0.]],
                    [[-2., 0., 1., 1.], [1., 1., -1., 2.], [0., 3., 0., -2.]]]).view(2, 3, 1, 2, 2)
_YS = torch.tensor([[1, -1, 1], [-1, -1, 1]])
#: the mean cross-entropy gradient of a zero-initialised Flatten-Linear(4, 2) model: logits 0, softmax (1/2, 1/2),
#: so dL/dW[c] = mean_i (1/2 - [y_i = c]) x_i and dL/db[c] = mean_i (1/2 - [y_i = c]); class 1 is label +1.
#: Model 0 (classes 1, 0, 1): dW[0] = (1/2 x0 - 1/2 x1 + 1/2 x2) / 3 = (1/2, 0, -1/3, -1/3), db[0] = 1/6;
#: model 1 (classes 0, 0, 1): dW[0] = (-1/2 x0 - 1/2 x1 + 1/2 x2) / 3 = (1/6, 1/3, 0, -5/6), db[0] = -1/6;
#: row 1 is minus row 0 (the two softmax outputs sum to 1).  Gradient norms: model 0 sqrt(2 (1/4 + 2/9) + 2/36)
#: = 1 exactly, model 1 sqrt(2 (1/36 + 1/9 + 25/36) + 2/36) = sqrt(62) / 6.
_GW = torch.tensor([[0.5, 0.0, -1 / 3, -1 / 3], [1 / 6, 1 / 3, 0.0, -5 / 6]], dtype=torch.float64)
_GB = torch.tensor([1 / 6, -1 / 6], dtype=torch.float64)
_NORMS = torch.tensor([1.0, math.sqrt(62) / 6], dtype=torch.float64)


def _zero_linear():
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    return m


def _stacked(recipe, x=_XS, y=_YS, seed=0):
    return G.train_stacked([_zero_linear(), _zero_linear()], x, y, recipe=recipe, run=RunControl(seed=seed, **CPU))


@pytest.mark.parametrize("clip", [None, 1.2])
def test_train_stacked_one_step_by_hand(clip):
    """One full-batch step at lr 0.5: W = -lr * scale * dW, with scale = min(1, clip / (|g| + 1e-6)) per model --
    with clip 1.2 model 0 (|g| = 1) is not clipped and model 1 (|g| = 1.31) is."""
    lr = 0.5
    models = _stacked(Recipe(epochs=1, batch_size=8, lr=lr, clip=clip))
    for j, m in enumerate(models):
        scale = 1.0 if clip is None else min(1.0, clip / (float(_NORMS[j]) + 1e-6))
        w0 = -lr * scale * _GW[j]
        b0 = -lr * scale * _GB[j]
        want_w = torch.stack([w0, -w0]).float()
        want_b = torch.stack([b0, -b0]).float()
        torch.testing.assert_close(m[1].weight.detach(), want_w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(m[1].bias.detach(), want_b, rtol=1e-6, atol=1e-7)
        assert m.training


def test_train_stacked_clips_a_tiny_gradient_with_the_1e_6_guard():
    """Two samples, one per class, scaled by 1e-5: dW[0] = (x0 - x1) / 4 = (2.5e-6, -2.5e-6, 0, 0), db = 0, so
    |g| = 5e-6; clip 1e-6 gives scale 1e-6 / (5e-6 + 1e-6) = 1/6 (the 1e-6 guard matters here)."""
    x = (1e-5 * torch.tensor([[1., 0., 0., 0.], [0., 1., 0., 0.]])).view(1, 2, 1, 2, 2).repeat(2, 1, 1, 1, 1)
    y = torch.tensor([[1, -1], [1, -1]])
    models = _stacked(Recipe(epochs=1, batch_size=8, lr=0.5, clip=1e-6), x=x, y=y)
    w0 = -0.5 / 6 * torch.tensor([2.5e-6, -2.5e-6, 0.0, 0.0], dtype=torch.float64)
    for m in models:
        torch.testing.assert_close(m[1].weight.detach().double(), torch.stack([w0, -w0]), rtol=1e-5, atol=1e-14)
        assert float(m[1].bias.detach().abs().max()) == 0.0


def _softmax_sgd_reference(x, y, lr, steps, momentum=0.0, weight_decay=0.0):
    """Full-batch SGD on the mean softmax cross-entropy of a zero-initialised linear model, in float64, with the
    learning rate decayed linearly to 0 over `steps` (step t uses lr * (1 - t / steps)), and torch's SGD momentum
    and weight decay: d = g + wd * p; buf = d (first step), then momentum * buf + d; p -= lr_t * buf."""
    x = x.reshape(len(x), -1).double()
    cls = (y > 0).long()
    w, b = torch.zeros(2, x.shape[1], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    bw = bb = None
    for t in range(steps):
        p = torch.softmax(x @ w.T + b, dim=1)
        r = (p - torch.nn.functional.one_hot(cls, 2).double()) / len(x)
        dw, db = r.T @ x + weight_decay * w, r.sum(0) + weight_decay * b
        bw, bb = (dw, db) if bw is None else (momentum * bw + dw, momentum * bb + db)
        w, b = w - lr * (1 - t / steps) * bw, b - lr * (1 - t / steps) * bb
    return w, b


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.5, 0.1)])
def test_train_stacked_three_epochs_follow_the_linear_decay(momentum, weight_decay):
    """Three full-batch epochs: the steps use lr, 2/3 lr and 1/3 lr (the schedule over epochs * ceil(n / batch)
    steps), each model on its own data, against SGD on the softmax cross-entropy written out in float64 (with
    momentum and weight decay in the second case)."""
    models = _stacked(Recipe(epochs=3, batch_size=3, lr=0.8, clip=None, momentum=momentum, weight_decay=weight_decay))
    for j, m in enumerate(models):
        w, b = _softmax_sgd_reference(_XS[j], _YS[j], 0.8, 3, momentum, weight_decay)
        torch.testing.assert_close(m[1].weight.detach().double(), w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m[1].bias.detach().double(), b, rtol=1e-5, atol=1e-6)


def test_train_stacked_updates_batch_norm_running_statistics():
    """BatchNorm1d(4) in front of the zero linear layer: after one full batch of 3, running_mean = 0.1 * batch
    mean, running_var = 0.9 + 0.1 * unbiased batch variance, num_batches_tracked = 1, per model."""
    def make():
        return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    models = G.train_stacked([make(), make()], _XS, _YS, recipe=Recipe(epochs=1, batch_size=8, lr=0.1, clip=None),
                             run=RunControl(**CPU))
    for j, m in enumerate(models):
        x = _XS[j].reshape(3, 4).double()
        bn = m[1]
        torch.testing.assert_close(bn.running_mean.double(), 0.1 * x.mean(0), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(bn.running_var.double(), 0.9 + 0.1 * x.var(0, unbiased=True), rtol=1e-6, atol=1e-7)
        assert int(bn.num_batches_tracked) == 1


def test_train_stacked_names_the_diverging_model():
    bad = _zero_linear()
    with torch.no_grad():
        bad[1].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"^training diverged at epoch 1 for model\(s\) \[1\]; lower lr or set clip$"):
        G.train_stacked([_zero_linear(), bad], _XS, _YS, recipe=Recipe(epochs=2, batch_size=8, clip=None),
                        run=RunControl(**CPU))


# --------------------------------------------------------------------------------------------------
# cifar10.py: subsets, array checks, the in-memory cache, the stand-in images
# --------------------------------------------------------------------------------------------------

def _cifar_arrays(n_train=20, n_test=10, fill=0):
    """Arrays in the CIFAR-10 .npz layout: labels 0..9 in turn, every pixel `fill`."""
    return {"x_train": np.full((n_train, 32, 32, 3), fill, np.uint8), "y_train": np.arange(n_train) % 10,
            "x_test": np.full((n_test, 32, 32, 3), fill, np.uint8), "y_test": np.arange(n_test) % 10}


def test_balanced_subset_gives_the_remainder_to_the_first_classes():
    """n = 23 over 10 classes: 3 for classes 0..2, 2 for the others, the first samples of each class in data-set
    order.  Labels: class c at positions c, c + 10, c + 20, c + 30 (4 each)."""
    y = torch.arange(40) % 10
    idx = C.balanced_subset(y, 23)
    want = sorted([c + 10 * i for c in range(3) for i in range(3)] + [c + 10 * i for c in range(3, 10) for i in range(2)])
    assert idx.tolist() == want
    # a class with exactly the samples asked for is enough; n = len(y) is every sample, in order
    assert C.balanced_subset(y, 39).tolist() == [i for i in range(40) if i != 39]
    uneven = torch.tensor([0, 0, 0, 1])
    assert C.balanced_subset(uneven, 4).tolist() == [0, 1, 2, 3]
    assert C.balanced_subset(torch.tensor([0, 1, 1, 0, 2, 2]), 3, num_classes=3).tolist() == [0, 1, 4]
    with pytest.raises(ValueError, match=r"^labels must be 1-D, got shape \(2, 3\)$"):
        C.balanced_subset(torch.zeros(2, 3, dtype=torch.long), 2)


@pytest.mark.parametrize("change, message", [
    (dict(y_train=np.arange(19) % 10), r"^src: y_train must be integer labels of shape \(20,\), got int64 \(19,\)$"),
    (dict(y_test=np.zeros((10, 1), np.int64)), r"^src: y_test must be integer labels of shape \(10,\)"),
    (dict(y_test=np.full(10, 10)), r"^src: y_test must hold class indices 0..9, got values in \[10, 10\]$"),
    (dict(y_train=np.full(20, -1)), r"^src: y_train must hold class indices 0..9, got values in \[-1, -1\]$"),
], ids=["short labels", "2-D labels", "label 10", "label -1"])  # no backslash in an id: mutmut could not select it
def test_cifar10_label_checks(change, message):
    arrays = dict(_cifar_arrays(), **change)
    with pytest.raises(ValueError, match=message):
        C.check_cifar10_arrays(arrays, "src")


def test_cifar10_label_nine_and_integer_dtypes_pass():
    C.check_cifar10_arrays(dict(_cifar_arrays(), y_train=np.full(20, 9, np.uint8)), "src")


def test_npz_loads_the_training_split_by_default_and_converts_pixels(tmp_path, monkeypatch):
    """uint8 255 * k / 255 -> k exactly; (N, 32, 32, 3) -> (N, 3, 32, 32); labels int64."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    arrays = _cifar_arrays()
    arrays["x_train"][3, 2, 5, 1] = 51   # image 3, row 2, column 5, green
    arrays["x_test"][:] = 255
    path = tmp_path / "c.npz"
    np.savez(path, **arrays)
    C.clear_cifar10_cache()
    x, y = C.load_cifar10(npz=path, device="cpu")
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert float(x[3, 1, 2, 5]) == pytest.approx(0.2, abs=1e-7) and float(x.sum()) == pytest.approx(0.2, abs=1e-6)
    assert y.dtype == torch.int64 and y.tolist() == arrays["y_train"].tolist()
    assert float(C.load_cifar10(npz=path, train=False, device="cpu")[0].min()) == 1.0


def test_the_cache_tells_files_and_versions_of_a_file_apart(tmp_path, monkeypatch):
    """Two .npz files give their own images; a file rewritten at the same path is read again (its mtime is part
    of the cache key), an unchanged one is not."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, **_cifar_arrays(fill=10))
    np.savez(b, **_cifar_arrays(fill=20))
    same = os.stat(a).st_mtime_ns
    os.utime(b, ns=(same, same))  # the same modification time: only the path tells the two files apart
    xa = C.load_cifar10(npz=a, device="cpu")[0]
    assert round(float(xa.max()) * 255) == 10 and round(float(C.load_cifar10(npz=b, device="cpu")[0].max()) * 255) == 20
    assert C.load_cifar10(npz=a, device="cpu")[0] is xa
    np.savez(a, **_cifar_arrays(fill=30))
    os.utime(a, ns=(os.stat(a).st_atime_ns, os.stat(a).st_mtime_ns + 10**9))
    assert round(float(C.load_cifar10(npz=a, device="cpu")[0].max()) * 255) == 30
    C.clear_cifar10_cache()


def test_torchvision_source_arguments_and_cache(tmp_path, monkeypatch):
    """The torchvision branch gets the resolved root, the split and download=True by default; two roots are two
    cache entries, a second call with the same root is served from memory."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    calls = []

    def fake(root, train, download):
        calls.append((root, train, download))
        fill = 40 if root.name == "one" else 50
        return np.full((2, 32, 32, 3), fill, np.uint8), np.array([0, 1])

    monkeypatch.setattr(C, "_read_torchvision", fake)
    one = C.load_cifar10(tmp_path / "one", device="cpu")[0]
    two = C.load_cifar10(tmp_path / "two", device="cpu")[0]
    assert C.load_cifar10(tmp_path / "one", device="cpu")[0] is one
    C.load_cifar10(tmp_path / "two", train=False, device="cpu")
    assert calls == [((tmp_path / "one").resolve(), True, True), ((tmp_path / "two").resolve(), True, True),
                     ((tmp_path / "two").resolve(), False, True)]
    assert round(float(one.max()) * 255) == 40 and round(float(two.max()) * 255) == 50
    monkeypatch.setenv(C.DATA_ENV, str(tmp_path / "data"))  # root=None: the default cache folder
    C.load_cifar10(device="cpu")
    assert calls[-1] == (tmp_path / "data" / "cifar10", True, True)
    with pytest.raises(TypeError, match=r"^train must be a bool, got str$"):
        C.load_cifar10(tmp_path / "one", train="yes", device="cpu")
    C.clear_cifar10_cache()


def test_torchvision_messages_name_the_reason_and_the_host(tmp_path, monkeypatch):
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    with pytest.raises(C.CIFAR10NotFoundError) as info:
        C.load_cifar10(tmp_path, download=False, device="cpu")
    assert str(info.value).startswith("CIFAR-10 is not available: the files are not there and download=False\n"
                                      f"  looked in : {tmp_path / C.BATCHES} ")
    asked = []
    monkeypatch.setattr(C, "_reachable", lambda url, timeout=3.0: asked.append(url) or False)
    with pytest.raises(C.CIFAR10NotFoundError) as info:
        C.load_cifar10(tmp_path, download=True, device="cpu")
    assert asked == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert str(info.value).startswith("CIFAR-10 is not available: the files are not there and www.cs.toronto.edu "
                                      "cannot be reached (offline?)\n")


def test_missing_npz_and_bad_npz_name_the_file(tmp_path):
    absent = tmp_path / "absent.npz"
    with pytest.raises(C.CIFAR10NotFoundError, match=rf"^CIFAR-10 .npz not found at {str(absent.resolve())!r} "):
        C.load_cifar10(npz=absent, device="cpu")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **dict(_cifar_arrays(), y_train=np.full(20, 11)))
    with pytest.raises(ValueError, match=rf"^{str(bad.resolve())}: y_train must hold class indices"):
        C.load_cifar10(npz=bad, device="cpu")


def test_batches_present_needs_every_file(tmp_path):
    folder = tmp_path / C.BATCHES
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    for name in names:
        (folder / name).write_bytes(b"x")
    assert C._batches_present(tmp_path)
    for name in names:
        (folder / name).unlink()
        assert not C._batches_present(tmp_path), name
        (folder / name).write_bytes(b"x")


def test_reachable_opens_a_tcp_connection_to_the_host(monkeypatch):
    seen = []

    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def connect(address, timeout):
        seen.append((address, timeout))
        if address[0] == "down.example":
            raise OSError("unreachable")
        return Conn()

    monkeypatch.setattr(C.socket, "create_connection", connect)
    assert C._reachable("https://www.cs.toronto.edu/~kriz/x.tar.gz") is True
    assert C._reachable("http://down.example:8080/x", timeout=0.5) is False
    assert seen == [(("www.cs.toronto.edu", 443), 3.0), (("down.example", 8080), 0.5)]


def _high_frequency_share(images: np.ndarray, radius: float) -> float:
    """Share of the (mean-free) spectral energy of uint8 NHWC images at integer frequencies of radius > `radius`."""
    x = images.astype(np.float64).transpose(0, 3, 1, 2)
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(x)) ** 2
    f = np.fft.fftfreq(32, d=1 / 32)
    far = (f[:, None] ** 2 + f[None, :] ** 2) > radius ** 2
    return float(power[..., far].sum() / power.sum())


def test_synthetic_templates_are_unit_std_low_pass_fields_around_one_half():
    """noise = 0: an image is clip(0.5 + signal T_k) * 255 rounded, the same for every image of class k, train and
    test.  T_k has mean 0 per channel and standard deviation 1 over the image, so each channel of an image
    averages 127.5 (+-0.5 of rounding) and its pixels spread 0.1 * 255 = 25.5 (+-0.5); its spectrum is Gaussian
    of width 2 (power exp(-r^2 / 4)): beyond radius 6 lies exp(-9) = 1.2e-4 of the energy, plus the rounding
    (1/12 against 650 per pixel)."""
    d = C.synthetic_cifar10(n_train=30, n_test=20, seed=4, signal=0.1, noise=0.0)
    for split in ("train", "test"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        for k in range(10):
            assert (x[y == k] == x[y == k][0]).all()
    one = np.stack([d["x_train"][d["y_train"] == k][0] for k in range(10)])
    assert all((d["x_test"][d["y_test"] == k][0] == one[k]).all() for k in range(10))
    assert len({one[k].tobytes() for k in range(10)}) == 10
    means = one.astype(np.float64).mean(axis=(1, 2))          # per image and channel
    assert np.abs(means - 127.5).max() <= 0.5
    stds = one.astype(np.float64).std(axis=(1, 2, 3))           # over the whole image
    assert np.abs(stds - 25.5).max() <= 0.5
    assert _high_frequency_share(one, 6) < 1e-3


def test_synthetic_backgrounds_are_wider_low_pass_fields():
    """signal = 0: only the backgrounds, Gaussian spectrum of width 4: beyond radius 12 lies exp(-9) of the energy;
    pixels spread noise * 255 = 25.5 around 127.5; images differ from one another."""
    d = C.synthetic_cifar10(n_train=20, n_test=10, seed=1, signal=0.0, noise=0.1)
    x = d["x_train"]
    assert len({img.tobytes() for img in x}) == 20
    assert np.abs(x.astype(np.float64).mean(axis=(1, 2)) - 127.5).max() <= 0.5
    assert np.abs(x.astype(np.float64).std(axis=(1, 2, 3)) - 25.5).max() <= 0.5
    assert _high_frequency_share(x, 12) < 1e-3 and _high_frequency_share(x, 4) > 0.1


def test_synthetic_labels_are_balanced_shuffled_and_seeded():
    d = C.synthetic_cifar10(n_train=40, n_test=20, seed=2)
    assert d["x_train"].shape == (40, 32, 32, 3) and d["x_train"].dtype == np.uint8
    assert d["y_train"].dtype == np.uint8 and np.bincount(d["y_train"]).tolist() == [4] * 10
    assert np.bincount(d["y_test"]).tolist() == [2] * 10 and d["x_test"].shape == (20, 32, 32, 3)
    assert d["y_train"].tolist() != (np.arange(40) % 10).tolist()
    again, other = C.synthetic_cifar10(n_train=40, n_test=20, seed=2), C.synthetic_cifar10(n_train=40, n_test=20, seed=3)
    assert all((again[k] == d[k]).all() for k in d) and not (other["x_train"] == d["x_train"]).all()
    # the defaults: signal 0.06 below noise 0.16, so the class is a faint part of each image
    default = C.synthetic_cifar10(n_train=10, n_test=10, seed=2)
    spread = default["x_train"].astype(np.float64).std(axis=(1, 2, 3))
    assert np.abs(spread - 255 * math.hypot(0.06, 0.16)).max() < 0.15 * 255 * math.hypot(0.06, 0.16)
    with pytest.raises(ValueError, match=r"^n_test must be an int >= 10 \(one image per class\), got 9$"):
        C.synthetic_cifar10(n_train=10, n_test=9)


def test_cifar_data_synthetic_source_and_sizes():
    data = C.cifar_data(n_train=20, n_test=10, synthetic=True, seed=6, device="cpu")
    arrays = C.synthetic_cifar10(20, 10, seed=6)
    assert data["source"] == "synthetic stand-in images (nadlib.synthetic_cifar10, seed 6), NOT CIFAR-10"
    assert (data["n_train"], data["n_test"]) == (20, 10)
    assert torch.equal(data["x_train"], C._as_tensors(arrays["x_train"], arrays["y_train"], "cpu")[0])
    assert torch.equal(data["y_test"], torch.from_numpy(arrays["y_test"].astype(np.int64)))


def test_cifar_data_real_npz_takes_the_first_images_of_each_class(tmp_path, monkeypatch):
    """A local .npz: n_train = 20 of 40 training images (labels 0..9 in turn) are the first 2 of each class, i.e.
    images 0..19; the source names the file.  'auto' uses the real data when it is there and the stand-in images
    when it is not."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    arrays = _cifar_arrays(n_train=40, n_test=30)
    arrays["x_train"][:, 0, 0, 0] = np.arange(40)
    path = tmp_path / "real.npz"
    np.savez(path, **arrays)
    data = C.cifar_data(n_train=20, n_test=10, npz=path, device="cpu")
    assert data["source"] == "CIFAR-10 from a local .npz (real.npz)" and (data["n_train"], data["n_test"]) == (20, 10)
    assert [round(float(v) * 255) for v in data["x_train"][:, 0, 0, 0]] == list(range(20))
    assert data["y_test"].tolist() == list(range(10))
    auto = C.cifar_data(n_train=20, n_test=10, npz=path, synthetic="auto", device="cpu")
    assert auto["source"] == data["source"] and (auto["n_train"], auto["n_test"]) == (20, 10)
    def absent(root, train, download):  # what _read_torchvision raises without the files (tested above)
        raise C.CIFAR10NotFoundError("not there")

    monkeypatch.setattr(C, "_read_torchvision", absent)
    fallback = C.cifar_data(n_train=20, n_test=10, root=tmp_path / "none", download=False, synthetic="auto", seed=1,
                            device="cpu")
    assert fallback["source"].startswith("synthetic stand-in images") and fallback["n_train"] == 20
    C.clear_cifar10_cache()


@pytest.mark.parametrize("call, error, message", [
    (lambda: G.train_stacked([], _XS, _YS), ValueError, r"^models must be a non-empty sequence of nn.Module$"),
    (lambda: G.train_stacked([_zero_linear(), "net"], _XS, _YS), ValueError, r"^models must be a non-empty sequence"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS, _YS, recipe={}), TypeError,
     r"^recipe must be a nadlib.Recipe, got dict: \{\}$"),
    (lambda: G.train_stacked([_zero_linear(), nn.Sequential(nn.Flatten(), nn.Linear(4, 3))], _XS, _YS), ValueError,
     r"^all models must have the same architecture \(parameter and buffer names and shapes\)$"),
    (lambda: G.train_stacked([_zero_linear()], _XS, _YS), ValueError,
     r"^x_train must have shape \(models=1, N, C, H, W\), got \(2, 3, 1, 2, 2\)$"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS[0], _YS), ValueError,
     r"^x_train must have shape \(models=2, N, C, H, W\), got \(3, 1, 2, 2\)$"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS, _YS[:, :2]), ValueError,
     r"^y_train must have shape \(2, 3\), got \(2, 2\)$"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS.long(), _YS), ValueError,
     r"^x_train must be finite floating-point inputs$"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS[:, :0], _YS[:, :0]), ValueError,
     r"^the training sets are empty$"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS, _YS * 2), ValueError,
     r"^y_train with negative values must be \+-1 labels"),
    (lambda: G.train_stacked([_zero_linear(), _zero_linear()], _XS, _YS, run=RunControl(precision="bf16", **CPU)),
     ValueError, r"^training runs in float32 only"),
], ids=["none", "not a module", "recipe", "architectures", "models", "dims", "labels", "integer", "empty",
        "label values", "precision"])
def test_train_stacked_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_single_training_sample_trains():
    """N = 1 is a training set (one step per epoch): the update is -lr (softmax - onehot) x."""
    x = torch.tensor([1.0, -2.0, 0.5, 0.0]).view(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1)
    models = _stacked(Recipe(epochs=1, batch_size=4, lr=0.5, clip=None), x=x, y=torch.tensor([[1], [-1]]))
    # model 0 (class 1): dW[0] = (1/2 - 0) x, model 1 (class 0): dW[0] = (1/2 - 1) x; W = -0.5 dW
    torch.testing.assert_close(models[0][1].weight[0].detach(), -0.25 * x[0].flatten())
    torch.testing.assert_close(models[1][1].weight[0].detach(), 0.25 * x[0].flatten())


def test_stacked_direction_accuracies_train_and_test_on_the_recipes_data(monkeypatch):
    """The stacked runner draws D(v) with the recipe's sizes, sigma and epsilon (not the defaults) from run.seed
    (training) and run.seed + TEST_SEED_OFFSET (test), for models with the directions' channels (3 here); one
    direction alone is a stack of one."""
    from nadlib.data import linear_separable
    from nadlib.training import TEST_SEED_OFFSET
    seen = {}
    real_train, real_eval = G.train_stacked, G.evaluate
    monkeypatch.setattr(G, "train_stacked", lambda models, x, y, **k: seen.update(models=models, x=x, y=y, k=k)
                        or real_train(models, x, y, **k))
    tests = []
    monkeypatch.setattr(G, "evaluate", lambda m, x, y: tests.append((x, y)) or real_eval(m, x, y))
    recipe = Recipe(n_train=12, n_test=8, epochs=1, batch_size=4, sigma=0.5, epsilon=2.0)
    v = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    v = v / v.norm()
    accs = G.stacked_direction_accuracies(functools.partial(LogReg, 3, 2, 4), [v], recipe=recipe,
                                          run=RunControl(seed=7, **CPU))
    x, y = linear_separable(v, 12, 0.5, 2.0, seed=7, device="cpu")
    xt, yt = linear_separable(v, 8, 0.5, 2.0, seed=7 + TEST_SEED_OFFSET, device="cpu")
    assert torch.equal(seen["x"][0], x) and torch.equal(seen["y"][0], y)
    assert torch.equal(tests[0][0], xt) and torch.equal(tests[0][1], yt)
    assert seen["models"][0].linear.in_features == 48 and len(accs) == 1 and 0 <= accs[0] <= 1
    G.stacked_direction_accuracies("logreg", [torch.ones(3, 32, 32) / math.sqrt(3 * 1024)], recipe=recipe,
                                   run=RunControl(seed=7, **CPU))
    assert seen["models"][0].linear.in_features == 3 * 1024  # a registered name is built with the channels of v
    with pytest.raises(ValueError, match=r"^directions is empty$"):
        G.stacked_direction_accuracies(LOGREG4, [], recipe=recipe, run=RunControl(**CPU))
    with pytest.raises(ValueError, match=r"^all directions must have the same shape, got \[\(1, 4, 4\), \(1, 8, 8\)\]$"):
        G.stacked_direction_accuracies(LOGREG4, [fourier_direction(1, 0, size=4), fourier_direction(1, 0, size=8)],
                                       recipe=recipe, run=RunControl(**CPU))
    with pytest.raises(TypeError, match=r"^recipe must be a nadlib.Recipe, got dict: \{\}$"):
        G.stacked_direction_accuracies(LOGREG4, [v], recipe={}, run=RunControl(**CPU))


# --------------------------------------------------------------------------------------------------
# nads/lenet_secant.py: the windowed secant on other shapes than 32 x 32 with equal kernels
# --------------------------------------------------------------------------------------------------

def _lenet(channels, k1, k2, side_h, side_w, seed):
    """A nadlib LeNet (one output) with kernels k1, k2 and the first linear layer sized for a side_h x side_w
    second pooled map: the same structure the windowed path recognises."""
    torch.manual_seed(seed)
    net = LeNet(channels, 1)
    net.features[0] = nn.Conv2d(channels, 6, k1)
    net.features[3] = nn.Conv2d(6, 16, k2)
    net.classifier[1] = nn.Linear(16 * side_h * side_w, 120)
    for m in net.modules():  # biases away from 0 so that ReLUs and max-pools switch inside the windows
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(m.bias, -0.3, 0.3)
    return net.eval()


@pytest.mark.parametrize("channels, k1, k2, shape, side, step", [
    (2, 3, 5, (14, 18), (1, 2), 0.7),   # conv1 12 x 16 -> pooled 6 x 8 -> conv2 2 x 4 -> pooled 1 x 2
    (1, 5, 3, (16, 20), (2, 3), 2.0),   # conv1 12 x 16 -> pooled 6 x 8 -> conv2 4 x 6 -> pooled 2 x 3
    (1, 5, 2, (10, 14), (1, 2), 1.5),   # pooled 3 x 5: the 3-row window is the whole height (the size-check boundary)
], ids=["k3-k5", "k5-k3", "k5-k2"])
def test_lenet_secant_on_rectangular_inputs_and_unequal_kernels(channels, k1, k2, shape, side, step):
    """Every pixel of a non-square input, kernels 3 and 5 (or 5 and 3), two networks: the windowed path equals
    (f(x + h e_j) - f(x - h e_j)) / 2h computed by whole forward passes (rows and columns, k1 and k2 cannot be
    swapped without changing the answer here, as they can at 32 x 32 with two 5 x 5 kernels)."""
    H, W = shape
    nets = [_lenet(channels, k1, k2, *side, seed=s) for s in (3, 4)]
    assert lenet_layers(nets[0]) is not None
    x = torch.randn(channels, H, W, generator=torch.Generator().manual_seed(5))
    fast = LeNetSecant(nets[0].features[0], nets[0].features[3], (channels, H, W), torch.device("cpu"))
    assert fast.wp == k1 // 2 + 1 and fast.wo == fast.wp + k2 - 1
    with torch.no_grad():
        got = fast(nets, x, step)
        d = channels * H * W
        eye = torch.eye(d) * step
        for net, g in zip(nets, got):
            plus = net((x.reshape(1, -1) + eye).view(d, channels, H, W))[:, 0]
            minus = net((x.reshape(1, -1) - eye).view(d, channels, H, W))[:, 0]
            ref = (plus - minus) / (2 * step)
            assert float((ref != 0).float().mean()) > 0.3
            torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


# _region_start(first, size, extent) by its docstring: the even row at or below max(first, 0), moved up to
# extent - size when the region would leave the map (the windowed path's only pure helper)
@pytest.mark.parametrize("first, size, extent, start", [
    (-3, 8, 10, 0), (0, 8, 10, 0), (1, 8, 10, 0),      # clipped at 0, then rounded down to even
    (2, 8, 10, 2), (3, 8, 10, 2),                      # 3 -> 2; extent - size = 2 is no bound yet
    (5, 8, 10, 2), (9, 8, 10, 2),                      # 4 and 8 would leave the 10-row map: extent - size
    (4, 6, 14, 4), (7, 6, 14, 6), (11, 6, 14, 8), (13, 6, 14, 8),
    (5, 4, 4, 0),                                      # the region is the whole map
])
def test_region_start_by_hand(first, size, extent, start):
    from nadlib.nads.lenet_secant import _region_start
    got = _region_start(first, size, extent)
    assert type(got) is int and got == start


@pytest.mark.parametrize("k1, k2, shape, side", [
    (3, 3, (22, 26), (4, 5)),   # conv1 20 x 24 -> pooled 10 x 12 -> conv2 8 x 10 (window 4, region 6) -> 4 x 5
    (5, 5, (36, 44), (6, 8)),   # conv1 32 x 40 -> pooled 16 x 20 -> conv2 12 x 16 (window 7, region 8) -> 6 x 8
], ids=["k3-k3", "k5-k5-large"])
def test_lenet_secant_regions_smaller_than_the_map(k1, k2, shape, side):
    """Second feature maps larger than the region of whole pooling cells the secant updates: the region (an even
    number of rows that holds the window, 6 for an even 4-row window, 8 for a 7-row one) moves over the map, and
    every pixel still equals the central difference by whole forward passes.  The oracles above have the region
    cover the map (or 8 of 10 rows at 32 x 32 with an odd window), where a wrong region size does not show."""
    H, W = shape
    nets = [_lenet(1, k1, k2, *side, seed=s) for s in (7, 8)]
    assert lenet_layers(nets[0]) is not None
    x = torch.randn(1, H, W, generator=torch.Generator().manual_seed(9))
    fast = LeNetSecant(nets[0].features[0], nets[0].features[3], (1, H, W), torch.device("cpu"))
    wo = k1 // 2 + k2                  # the conv2 window: a 3 x 3 (k1 = 5) or 2 x 2 (k1 = 3) pooled window, widened by k2 - 1
    region = wo + 2 if wo % 2 == 0 else wo + 1
    assert fast.wo == wo and (fast.Rh, fast.Rw) == (region, region) and region < fast.H2 < fast.W2
    step = 0.8
    with torch.no_grad():
        got = fast(nets, x, step)
        d = H * W
        eye = torch.eye(d) * step
        for net, g in zip(nets, got):
            ref = (net((x.reshape(1, -1) + eye).view(d, 1, H, W))[:, 0]
                   - net((x.reshape(1, -1) - eye).view(d, 1, H, W))[:, 0]) / (2 * step)
            assert float((ref != 0).float().mean()) > 0.3
            torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_lenet_secant_keeps_float64_networks_in_float64():
    """float64 networks and input: the differences come back in float64 and agree with whole forward passes to
    1e-10 (float32 rounding would leave ~1e-7)."""
    nets = [_lenet(1, 5, 3, 2, 3, seed=s).double() for s in (1, 2)]
    x = torch.randn(1, 16, 20, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    fast = LeNetSecant(nets[0].features[0], nets[0].features[3], (1, 16, 20), torch.device("cpu"))
    with torch.no_grad():
        got = fast(nets, x, 0.5)
        assert got.dtype == torch.float64
        eye = torch.eye(320, dtype=torch.float64) * 0.5
        for net, g in zip(nets, got):
            ref = (net((x.reshape(1, -1) + eye).view(320, 1, 16, 20))[:, 0]
                   - net((x.reshape(1, -1) - eye).view(320, 1, 16, 20))[:, 0]) / 1.0
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))


@pytest.mark.parametrize("shape, message", [
    ((1, 31, 32), r"^odd conv1 output$"), ((1, 32, 33), r"^odd conv1 output$"),
    ((1, 12, 32), r"^input too small for the windowed path$"),     # conv2 output 0 rows
    ((1, 32, 30), r"^input too small for the windowed path$"),     # conv2 output 9 columns: odd
    ((1, 30, 32), r"^input too small for the windowed path$"),
], ids=["odd rows", "odd columns", "no conv2 rows", "odd conv2 columns", "odd conv2 rows"])
def test_lenet_secant_refuses_shapes_it_cannot_window(shape, message):
    net = LeNet(1, 1)
    with pytest.raises(ValueError, match=message):
        LeNetSecant(net.features[0], net.features[3], shape, torch.device("cpu"))


def test_lenet_layers_accepts_pools_written_as_tuples():
    """MaxPool2d((2, 2), (2, 2), (0, 0)) is the same 2 x 2 pool as MaxPool2d(2): the windowed path is taken."""
    net = LeNet(1, 1)
    net.features[2] = nn.MaxPool2d((2, 2), stride=(2, 2), padding=(0, 0))
    net.features[5] = nn.MaxPool2d((2, 2), stride=(2, 2), padding=(0, 0))
    assert lenet_layers(net) is not None
    for pool in (nn.MaxPool2d((2, 2), stride=(2, 2), padding=(1, 0)), nn.MaxPool2d((2, 3), stride=2),
                 nn.MaxPool2d(2, stride=(2, 3))):
        other = LeNet(1, 1)
        other.features[5] = pool
        assert lenet_layers(other) is None


def test_profile_grid_takes_stride_and_recipe_from_the_profile(monkeypatch):
    """The profile's grid stride and recipe (smoke: every 8th frequency), keyword arguments overriding them."""
    import nadlib
    calls = []
    monkeypatch.setattr(G, "accuracy_grid", lambda arch, **kw: calls.append(dict(kw, arch=arch)) or "grid")
    smoke, paper = nadlib.get_profile("smoke"), nadlib.get_profile("paper")
    assert G.profile_grid("lenet", smoke) == "grid"
    assert calls[-1] == {"arch": "lenet", "stride": 8, "recipe": smoke.separability.recipe()}
    assert smoke.separability.recipe().n_test == 1_000 and smoke.separability.recipe().epochs == 5
    G.profile_grid("vgg11", paper, stride=3, workers=1)
    assert calls[-1] == {"arch": "vgg11", "stride": 3, "recipe": paper.separability.recipe(), "workers": 1}
    monkeypatch.setattr(G, "get_profile", lambda: smoke)
    G.profile_grid("logreg", recipe=TINY)
    assert calls[-1] == {"arch": "logreg", "stride": 8, "recipe": TINY}


def test_a_grid_that_finishes_after_its_deadline_returns(monkeypatch):
    """The deadline stops a grid only while directions are left: the last direction finished past it is a result,
    not a DeadlineReached; every frequency is validated against the grid's size before any training."""
    done = G.accuracy_grid(LOGREG4, [(1, 0)], size=4, recipe=TINY, workers=1,
                           run=RunControl(seed=5, deadline=0.0, **CPU))
    assert done.accuracy == {(1, 0): _alone((1, 0))}
    trained = []
    monkeypatch.setattr(G, "_grid_task", lambda *a: trained.append(a[1]) or 0.5)
    with pytest.raises(ValueError, match="out of range"):
        G.accuracy_grid(LOGREG4, [(1, 0), (5, 0)], size=4, recipe=TINY, workers=1, run=RunControl(**CPU))
    assert trained == []


def test_cifar_data_defaults_and_limits(tmp_path, monkeypatch):
    """Defaults: the real data (download allowed), seed 0 for the stand-in images; synthetic=False is the real data
    too; at most the 50,000 / 10,000 images CIFAR-10 has."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    calls = []

    def fake(root, train, download):
        calls.append((train, download))
        return np.zeros((20, 32, 32, 3), np.uint8), np.arange(20) % 10

    monkeypatch.setattr(C, "_read_torchvision", fake)
    for synthetic in (None, False):
        C.clear_cifar10_cache()
        data = C.cifar_data(n_train=10, n_test=10, root=tmp_path, synthetic=synthetic, device="cpu")
        assert data["source"] == f"CIFAR-10 via torchvision ({tmp_path})" and calls[-2:] == [(True, True), (False, True)]
    assert C.cifar_data(n_train=10, n_test=10, synthetic=True, device="cpu")["source"] == \
        "synthetic stand-in images (nadlib.synthetic_cifar10, seed 0), NOT CIFAR-10"
    import nadlib
    sizes = C.cifar_data(nadlib.get_profile("smoke"), n_train=10, synthetic=True, device="cpu")
    assert (sizes["n_train"], sizes["n_test"]) == (10, 200)  # the smoke profile's 200 test images
    for name, maximum in (("n_train", 50_000), ("n_test", 10_000)):
        with pytest.raises(ValueError, match=rf"^{name} must be at most {maximum:,}, got {maximum + 1:,}$"):
            C.cifar_data(synthetic=True, device="cpu", **{name: maximum + 1})
    C.clear_cifar10_cache()


# --------------------------------------------------------------------------------------------------
# affinity.py: the degenerate inputs and memory checks of issue 20 (complete pass of 2026-12-07)
# --------------------------------------------------------------------------------------------------

def test_affinity_of_a_constant_input_and_a_varying_output_is_refused_in_words():
    x, y = torch.ones(20, 3), torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^x is constant but y varies: no function maps these inputs to these "
                                         r"outputs \(were x and y taken from the same samples\?\)$"):
        A.affinity_score(x, y)


def test_affinity_of_two_constants_warns_at_the_callers_line_and_is_nan():
    with pytest.warns(RuntimeWarning) as seen:
        rho = A.affinity_score(torch.ones(10, 2), torch.full((10, 2), 3.0))
    assert math.isnan(rho)
    assert [str(w.message) for w in seen] == ["affinity score of a constant input and a constant output is undefined: nan"]
    # stacklevel: the warning names the caller's line (under mutmut a trampoline frame sits between this test and
    # affinity_score, and takes the caller's place)
    assert seen[0].filename == __file__ or os.path.basename(seen[0].filename) == "trampoline.py"


def test_constant_is_relative_to_the_scale_of_both_sides():
    """x varies by 1e-6 (trace ~3e-12 of its covariance) next to y of variance ~1e12 (trace ~3e12): the sum of the
    traces sets the scale, 1e-12 of it is ~3, so x counts as constant (and y varies); each side alone, or y of unit
    variance, is scored."""
    gen = torch.Generator().manual_seed(1)
    x = 1.0 + 1e-6 * torch.randn(200, 3, generator=gen, dtype=torch.float64)
    y = 1e6 * torch.randn(200, 3, generator=gen, dtype=torch.float64)
    with pytest.raises(ValueError, match="^x is constant but y varies"):
        A.affinity_score(x, y)
    assert 0.0 <= A.affinity_score(x, y / 1e6) <= 1.0  # both small: scale 1, threshold 1e-12 < 3e-12


def test_affinity_checks_the_size_of_its_cost_matrix_before_the_work(monkeypatch):
    """Two float64 n x n matrices (the cost and POT's copy): 2 x 8 x n^2 bytes, named with the sample count and
    what to do instead."""
    asked = []
    monkeypatch.setattr(A, "fits_in_memory", lambda *a: asked.append(a))
    x = torch.randn(1500, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    A.affinity_score(x[:30], 2 * x[:30])
    assert asked == [(2 * 8 * 30 * 30, "the 30 x 30 optimal-transport cost matrix of 30 samples",
                      "score a subset of the samples")]
    asked.clear()
    monkeypatch.setattr(A, "_affinity", lambda xs, ys: 1.0)  # only the check, not the 1,500-point transport
    A.affinity_score(x, 2 * x)
    assert asked == [(36_000_000, "the 1,500 x 1,500 optimal-transport cost matrix of 1,500 samples",
                      "score a subset of the samples")]


def test_affinity_takes_float32_and_integer_numpy_arrays():
    x = np.random.default_rng(3).normal(size=(40, 2))
    want = A.affinity_score(torch.from_numpy(x), torch.from_numpy(np.maximum(x, 0)))
    assert A.affinity_score(x.astype(np.float32), np.maximum(x, 0).astype(np.float32)) == pytest.approx(want, abs=1e-5)
    xi = np.random.default_rng(4).integers(0, 100, size=(30, 2))
    assert A.affinity_score(xi, 3 * xi + 1) == pytest.approx(1.0, abs=1e-6)  # an affine map of integers


# --------------------------------------------------------------------------------------------------
# nads/stats.py: the eigen paths, the checks and the stability of a NADs (complete pass of 2026-12-07)
# --------------------------------------------------------------------------------------------------

def test_statistics_bytes_by_hand():
    """Two halves, each a count, a sum (dim) and a sum of outer products (dim x dim), in float64."""
    assert S.NADStatistics.nbytes(1) == 8 * (2 + 2 + 2) == 48
    assert S.NADStatistics.nbytes(3) == 8 * (2 + 6 + 18) == 208
    with pytest.raises(ValueError, match=r"^dim must be a positive int, got 0$"):
        S.NADStatistics(0)


def test_eigen_path_boundaries_and_messages():
    assert S.eigen_path(3072, 50, 51) == "eigsh"   # 51 samples: rank 50 = m, just enough
    assert S.eigen_path(3072, 50, 50) == "eigh"
    assert S.eigen_path(3072, 5, 0) == "eigh"      # no samples yet is allowed, and too few for Lanczos
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match=rf"^n_samples must be an int >= 0 or None, got {bad}$"):
            S.eigen_path(3072, 5, bad)
    with pytest.raises(ValueError, match=r"^m must be a positive int, got 0$"):
        S.eigen_path(3072, 0)


def test_eig_leading_passes_the_sample_count_and_falls_back_in_words(monkeypatch):
    """A 1,100-dimensional covariance of 30 samples: the top 40 reach into its null space, so the full eigh (not
    Lanczos) is used; when Lanczos does not converge, the full eigh with one warning that says so."""
    from scipy.sparse.linalg import ArpackNoConvergence
    g = torch.randn(30, 1100, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    cov = g.T @ g / 29
    assert S.eig_leading(cov, 40, n_samples=30)[2] == "eigh"

    def no_convergence(cov, m):
        raise ArpackNoConvergence("no", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(S, "eig_top_desc", no_convergence)
    with pytest.warns(RuntimeWarning) as seen:
        vals, vecs, path = S.eig_leading(cov, 10, n_samples=500)
    assert path == "eigh" and vals.shape == (1100,)
    assert [str(w.message) for w in seen] == [
        "the Lanczos solver did not converge for the top 10 eigenpairs of a 1100-dimensional covariance; "
        "using the full eigh"]


def test_covariance_checks_by_hand():
    vals, vecs = S.eig_desc(torch.full((1, 1), 4.0, dtype=torch.float64))  # one dimension is a covariance too
    assert vals.tolist() == [4.0] and vecs.tolist() == [[1.0]]
    for bad, shape in ((torch.zeros(3, 4), r"\(3, 4\)"), (torch.zeros(0, 0), r"\(0, 0\)"),
                       (torch.zeros(4), r"\(4,\)"), ([[1.0]], "list")):
        with pytest.raises(ValueError, match=rf"^cov must be a square 2-D torch.Tensor \(a covariance\), got {shape}$"):
            S.eig_desc(bad)
    cov = torch.diag(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    top_vals, top_vecs = S.eig_top_desc(cov, 1)  # m = 1 is allowed
    assert top_vals.tolist() == pytest.approx([3.0]) and top_vecs[0].abs().tolist() == pytest.approx([1.0, 0.0, 0.0])
    for m in (0, 3):
        with pytest.raises(ValueError, match=rf"^m must be an int in \[1, 2\] \(fewer than the dimension 3\), got {m}$"):
            S.eig_top_desc(cov, m)


def test_split_half_stability_of_a_nads_returns_what_it_holds():
    """An object without statistics: its `stability` dict, for the ks asked (in their order); a k it does not hold
    is refused with what to do; an object without a stability dict is refused naming its type."""
    import types
    held = types.SimpleNamespace(stability={1: 0.9, 5: 0.7, 10: 0.5})
    assert S.split_half_stability(held, (5, 1)) == {5: 0.7, 1: 0.9}
    with pytest.raises(ValueError, match=r"^these NADs hold their split-half stability for k in \[1, 5, 10\] only, "
                                         r"not \[3, 50\]: the statistics"):
        S.split_half_stability(held, (3, 5, 50))
    for plain in (types.SimpleNamespace(stability=None), object()):
        with pytest.raises(TypeError, match=rf"takes NADStatistics \(nadlib.nad_statistics\) or NADs, got "
                                            rf"{type(plain).__name__}$"):
            S.split_half_stability(plain)


def test_lanczos_pairs_keep_the_covariances_dtype():
    cov = torch.diag(torch.tensor([3.0, 1.0, 2.0, 0.5]))
    vals, vecs = S.eig_top_desc(cov, 2)
    assert vals.dtype == vecs.dtype == torch.float32 and vals.tolist() == [3.0, 2.0]
