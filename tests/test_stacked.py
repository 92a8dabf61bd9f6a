"""Many models at once (issue 26): the stacked (``vmap``) trainer equals sequential training with
:func:`nadlib.train`, batch norm included; the trainability curve and the grid use it on request."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import nadlib
from nadlib import Recipe, RunControl, direction_accuracy, seeded_model, train
from nadlib.bases import fourier_low_to_high
from nadlib.data import linear_separable
from nadlib.directions import fourier_direction
from nadlib.experiments import nad_trainability
from nadlib.grid import accuracy_grid, default_stack, stacked_direction_accuracies, train_stacked

CPU = RunControl(seed=3, device="cpu", progress=False)


class TinyBN(nn.Module):
    """A small conv net with batch norm in both a conv and a linear block (8x8 inputs)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                  nn.Linear(8, 2))

    def forward(self, x):
        return self.head(self.features(x))


def _data(freqs, n, seed=3, size=8):
    xs, ys = zip(*[linear_separable(fourier_direction(*f, size=size), n, seed=seed, device="cpu") for f in freqs])
    return torch.stack(xs), torch.stack(ys)


@pytest.mark.parametrize("recipe", [Recipe(epochs=2, batch_size=16, lr=0.3, clip=0.5),
                                    Recipe(epochs=1, batch_size=20, lr=0.05, clip=None, momentum=0.9,
                                           weight_decay=5e-4)])
def test_stacked_training_equals_sequential_with_batch_norm(recipe):
    """Parameters, running means/variances and batch counts of every model agree with train() run once per
    model (same initialisation, data and batch order); a last mini-batch shorter than the others included."""
    freqs = [(1, 0), (2, 3), (4, 4)]
    x, y = _data(freqs, 70)
    inits = [seeded_model(TinyBN, 7) for _ in freqs]
    stacked = train_stacked([copy.deepcopy(m) for m in inits], x, y, recipe=recipe, run=CPU)
    for j, m in enumerate(inits):
        train(m, x[j], y[j], recipe=recipe, run=CPU)
        got, want = stacked[j].state_dict(), m.state_dict()
        assert got.keys() == want.keys()
        for k in want:
            if want[k].dtype == torch.long:  # num_batches_tracked
                assert torch.equal(got[k], want[k]), k
            else:
                torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=k)
    moved = [k for k in inits[0].state_dict() if "running_mean" in k]
    assert moved and all(stacked[0].state_dict()[k].abs().sum() > 0 for k in moved)  # BN statistics did move


def test_models_keep_their_own_batch_statistics():
    """Different data per model gives different running statistics (none is shared across the stack)."""
    x, y = _data([(1, 0), (3, 1)], 32)
    x[1] *= 5
    a, b = train_stacked([seeded_model(TinyBN, 0) for _ in range(2)], x, y,
                         recipe=Recipe(epochs=1, batch_size=16), run=CPU)
    assert not torch.allclose(a.features[1].running_var, b.features[1].running_var, rtol=0.1)


@pytest.mark.slow  # ~20 s on a 2-core CPU (VGG-11 needs 32x32 inputs)
def test_stacked_accuracies_equal_direction_accuracy_for_vgg11():
    """A registry network with batch norm (VGG-11, 32x32) at a tiny size: the accuracies agree."""
    recipe = Recipe(n_train=16, n_test=40, epochs=1, batch_size=8)
    vs = [fourier_direction(0, 1), fourier_direction(9, 2)]
    stacked = stacked_direction_accuracies("vgg11", vs, recipe=recipe, run=CPU)
    sequential = [direction_accuracy("vgg11", v, recipe=recipe, run=CPU) for v in vs]
    assert np.allclose(stacked, sequential, atol=1 / 40)


def test_trainability_stacked_equals_sequential():
    """nad_trainability with stack > 1 gives the sequential curve (a batch-norm model; a stack that does not
    divide the indices)."""
    nads = torch.stack([fourier_direction(*f, size=8) for f in [(0, 1), (1, 1), (2, 3), (3, 3), (4, 1)]])
    recipe = Recipe(n_train=64, n_test=200, epochs=2, batch_size=32)
    seq = nad_trainability(nads, [0, 2, 4], TinyBN, recipe=recipe, stack=1, run=CPU)
    stk = nad_trainability(nads, [0, 2, 4], TinyBN, recipe=recipe, stack=2, run=CPU)
    assert np.array_equal(seq["indices"], stk["indices"]) and seq["nads_sha256"] == stk["nads_sha256"]
    assert np.allclose(seq["test_acc"], stk["test_acc"], atol=2 / 200)
    assert len(set(seq["test_acc"].tolist())) > 1  # the directions are not all equally (un)learnable


def test_trainability_stack_checks_its_argument():
    with pytest.raises(ValueError, match="stack"):
        nad_trainability(torch.randn(2, 1, 8, 8), [0], TinyBN, stack=0, run=CPU)


def test_grid_stack_option_on_cpu_matches_one_at_a_time():
    recipe = Recipe(n_train=64, n_test=200, epochs=1, batch_size=32)
    freqs = [(1, 0), (2, 3), (4, 4)]
    a = accuracy_grid(TinyBN, freqs, size=8, recipe=recipe, stack=3, run=CPU)
    b = accuracy_grid(TinyBN, freqs, size=8, recipe=recipe, workers=1, run=CPU)
    assert np.allclose([a.accuracy[f] for f in freqs], [b.accuracy[f] for f in freqs], atol=2 / 200)


def test_default_stack():
    assert default_stack("cpu") == 1 and default_stack(torch.device("cuda")) > 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(models=[]), "non-empty"),
    (dict(x=torch.zeros(3, 4, 1, 8, 8)), "shape"),
    (dict(y=torch.zeros(2, 5)), "y_train"),
    (dict(x=torch.full((2, 4, 1, 8, 8), float("nan"))), "finite"),
    (dict(models=[TinyBN(), nn.Linear(2, 2)]), "same architecture"),
])
def test_train_stacked_bad_input(kwargs, match):
    args = dict(models=[TinyBN(), TinyBN()], x=torch.zeros(2, 4, 1, 8, 8), y=torch.ones(2, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train_stacked(args["models"], args["x"], args["y"], recipe=Recipe(epochs=1), run=CPU)
