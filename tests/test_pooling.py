"""The pooling ablation of Chapter 1 (nadlib.pooling) and the flip to equal training accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nadlib
from nadlib import experiments
from nadlib import pooling as P
from nadlib import RunControl


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pa, pb = list(a.parameters()), list(b.parameters())
    return len(pa) == len(pb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(pa, pb))


@pytest.mark.parametrize("compensation, registry_name", [("pool", "lenet"), ("fc", "lenet_nopool")])
def test_the_two_reference_rows_are_the_book_models(compensation, registry_name):
    """The ablation's LeNet and its pooling-free twin are exactly the networks of the rest of the book:
    same layers, and the same parameters from the same seed (so the rows differ only where stated)."""
    ours = nadlib.seeded_model(lambda: P.PoolFreeLeNet(compensation), 7)
    book = nadlib.seeded_model(registry_name, 7)
    assert _same_parameters(ours, book)
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(x), book(x))


@pytest.mark.parametrize("compensation, side", [("pool", 5), ("fc", 24), ("stride", 5), ("dilation", 20)])
def test_feature_map_sides(compensation, side):
    """32 -> conv5 (28) -> [pool 14] -> conv5 (10) -> [pool 5]; stride 2: (32-5)//2+1 = 14, (14-5)//2+1 = 5;
    a 5x5 kernel dilated by 2 spans 9 pixels: 28 - 8 = 20."""
    net = P.PoolFreeLeNet(compensation, hidden=17)
    assert net.feature_side == side
    assert net.classifier[1].in_features == 16 * side * side
    assert net.classifier[1].out_features == 17
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == (compensation == "pool")


def test_kaiming_init_has_he_scale_and_zero_bias():
    """He's normal init draws weights with std sqrt(2 / fan_in); the sample std of the 9,216 x 120 first
    linear layer (about 1.1 M draws) has a relative standard error of 1/sqrt(2N) < 0.1 %, so 2 % is
    a 20-sigma margin; PyTorch's default (uniform with bound 1/sqrt(fan_in), std 1/sqrt(3 fan_in)) is
    2.45x smaller and fails it."""
    torch.manual_seed(0)
    he, default = P.PoolFreeLeNet("fc", init="kaiming"), P.PoolFreeLeNet("fc", init="default")
    for net, expected in ((he, math.sqrt(2 / 9216)), (default, 1 / math.sqrt(3 * 9216))):
        w = net.classifier[1].weight.detach()
        assert float(w.std()) == pytest.approx(expected, rel=0.02)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in he.modules() if isinstance(m, torch.nn.Linear))
    assert float(default.classifier[1].bias.detach().abs().max()) > 0


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="compensation"):
        P.PoolFreeLeNet("average")
    with pytest.raises(ValueError, match="init"):
        P.PoolFreeLeNet("fc", init="xavier")
    with pytest.raises(ValueError, match="hidden"):
        P.PoolFreeLeNet("fc", hidden=0)


def test_chance_margin_is_three_binomial_standard_errors():
    assert P.chance_margin(10_000) == pytest.approx(0.015)
    assert P.chance_margin(2_500) == pytest.approx(0.03)
    assert P.chance_margin(100, z=2) == pytest.approx(0.1)


def test_every_ablation_row_changes_one_thing():
    """Each setting differs from the pooling-free row at the paper's recipe in exactly one field (the
    LeNet row only in its compensation), so the table reads as a controlled ablation."""
    base = next(s for s in P.ABLATION if s.name == "nopool")
    fields = ("compensation", "hidden", "init", "n_train", "epochs", "lr", "clip", "weight_decay")
    names = [s.name for s in P.ABLATION]
    assert len(set(names)) == len(names)
    for s in P.ABLATION:
        changed = [f for f in fields if getattr(s, f) != getattr(base, f)]
        if s.name == "nopool":
            assert changed == []
        elif s.name == "lr0.02_noclip":
            assert changed == ["lr", "clip"]
        else:
            assert len(changed) == 1, (s.name, changed)


def test_run_passes_each_setting_to_training_and_resumes(monkeypatch, tmp_path):
    """Every (setting, direction) is trained once, with the setting's network, recipe and scaled sizes; the
    arrays are laid out settings x directions; a repeated call reads the checkpoint and trains nothing."""
    calls = []

    def fake(arch, v, *, recipe, return_history, run):
        net = arch()
        assert run.seed == 4 and recipe.momentum == 0.0 and (recipe.sigma, recipe.epsilon) == (3.0, 1.0)
        calls.append((type(net).__name__, net.feature_side, v, recipe.n_train, recipe.n_test,
                      {k: getattr(recipe, k) for k in ("epochs", "lr", "clip", "weight_decay")}))
        acc = 0.5 + 0.01 * len(calls)  # a distinct, known value per call
        return nadlib.TrainResult(epochs=[recipe.epochs], train_acc=[acc + 0.3], test_acc=[acc], wall_time=1.0)

    monkeypatch.setattr(P, "direction_accuracy", fake)
    settings = [P.AblationSetting("lenet", "LeNet", compensation="pool"),
                P.AblationSetting("big", "big", n_train=4000, epochs=10, lr=0.1, clip=None, weight_decay=1e-3,
                                  compensation="dilation")]
    freqs = [(0, 8), (3, 1), (16, 16)]
    ckpt = tmp_path / "abl.ckpt.npz"
    arrays, record = P.run_pooling_ablation(settings, freqs, n_test=300, scale=0.5,
                                            run=RunControl(seed=4, checkpoint=ckpt, progress=False))
    assert len(calls) == 6
    for k, freq in enumerate(freqs * 2):  # the direction trained on is the Fourier direction asked for
        torch.testing.assert_close(calls[k][2], nadlib.fourier_direction(*freq))
    assert calls[0][:2] == ("PoolFreeLeNet", 5) and calls[0][3:5] == (5000, 300)
    assert calls[0][5] == {"epochs": 10, "lr": 0.5, "clip": 0.5, "weight_decay": 0.0}
    assert calls[3][:2] == ("PoolFreeLeNet", 20) and calls[3][3:5] == (2000, 300)
    assert calls[3][5] == {"epochs": 5, "lr": 0.1, "clip": None, "weight_decay": 1e-3}
    np.testing.assert_allclose(arrays["test_acc"], 0.5 + 0.01 * np.arange(1, 7).reshape(2, 3))
    np.testing.assert_allclose(arrays["train_acc"], arrays["test_acc"] + 0.3)
    np.testing.assert_array_equal(arrays["freqs"], freqs)
    assert list(arrays["names"]) == ["lenet", "big"]
    np.testing.assert_allclose(arrays["wall_time"], [3.0, 3.0])
    np.testing.assert_allclose(arrays["best_test_acc"], arrays["test_acc"])  # one epoch each: the final one
    np.testing.assert_array_equal(arrays["best_epoch"], [[10, 10, 10], [5, 5, 5]])
    assert record["scale"] == 0.5 and record["seed"] == 4
    again, _ = P.run_pooling_ablation(settings, freqs, n_test=300, scale=0.5,
                                      run=RunControl(seed=4, checkpoint=ckpt, progress=False))
    assert len(calls) == 6
    np.testing.assert_array_equal(again["test_acc"], arrays["test_acc"])


def test_run_refuses_bad_input_before_training(monkeypatch):
    monkeypatch.setattr(P, "direction_accuracy", lambda *a, **k: pytest.fail("trained despite bad input"))
    with pytest.raises(ValueError, match="unique"):
        P.run_pooling_ablation([P.ABLATION[0], P.ABLATION[0]], run=RunControl(progress=False))
    with pytest.raises(ValueError, match="scale"):
        P.run_pooling_ablation(P.ABLATION[:1], scale=0, run=RunControl(progress=False))
    with pytest.raises(ValueError):
        P.run_pooling_ablation(P.ABLATION[:1], [(40, 0)], run=RunControl(progress=False))
    with pytest.raises(ValueError, match="freqs is empty"):
        P.run_pooling_ablation(P.ABLATION[:1], [], run=RunControl(progress=False))


def test_ablation_table_marks_hard_directions_and_counts_learned_ones():
    """Hand-made results: LeNet at 0.505 (inside the 0.015 chance band for 10,000 samples) on the first
    direction, 0.52 (outside it) on the second, so only the first is 'hard'; the second row learns it."""
    arrays = {"names": np.array(["lenet", "x", "y"]), "labels": np.array(["LeNet", "X", "Y"]),
              "freqs": np.array([[0, 8], [1, 0]]),
              "test_acc": np.array([[0.505, 0.52], [0.95, 0.51], [0.89, 0.99]]),
              "train_acc": np.array([[0.6, 0.7], [1.0, 1.0], [1.0, 1.0]])}
    table = str(P.ablation_table(arrays))
    lines = table.splitlines()
    assert "(0, 8) (hard)" in lines[0] and "(1, 0) (hard)" not in lines[0]
    assert lines[2].endswith("| 0 / 1 |") and lines[3].endswith("| 1 / 1 |") and lines[4].endswith("| 0 / 1 |")
    assert "0.950 (1.00)" in lines[3]
    with pytest.raises(ValueError, match="lenet"):
        P.ablation_table(dict(arrays, names=np.array(["a", "x", "y"])))


def test_flip_until_train_acc_doubles_epochs_per_variant(monkeypatch):
    """A variant that ends below the target is rerun with twice the epochs (each run the whole recipe),
    until it reaches the target or the next run would pass ``max_epochs``; the original here fits at
    once, the flipped one only from 8 epochs on."""
    runs = []

    def fake_train(arch, x_tr, y_tr, x_te, y_te, *, epochs, **kw):
        flipped = len(runs) > 0
        runs.append(epochs)
        model = torch.nn.Linear(1, 1)
        model.fits = (not flipped) or epochs >= 8
        return nadlib.TrainResult(epochs=list(range(1, epochs + 1)), train_acc=[1.0] * epochs,
                                  test_acc=[0.3] * epochs, model=model)

    monkeypatch.setattr(experiments, "_train_cifar", fake_train)
    monkeypatch.setattr(experiments, "evaluate", lambda model, x, y: 1.0 if model.fits else 0.6)
    monkeypatch.setattr(experiments, "change_basis", lambda x, u: x)
    data = {"x_train": torch.zeros(4, 3, 32, 32), "y_train": torch.arange(4), "x_test": torch.zeros(2, 3, 32, 32),
            "y_test": torch.arange(2), "n_train": 4, "n_test": 2, "source": "test"}
    u = torch.eye(1024)
    arrays, settings = nadlib.run_flip("lenet", u, data, epochs=2, until_train_acc=0.99, max_epochs=16,
                                       run=RunControl(device="cpu", progress=False))
    assert runs == [2, 2, 4, 8]
    np.testing.assert_array_equal(arrays["epochs"], [2, 8])
    np.testing.assert_array_equal(arrays["train_acc"], [1.0, 1.0])
    assert arrays["test_curve"].shape == (2, 8) and np.isnan(arrays["test_curve"][0, 2:]).all()
    assert settings["until_train_acc"] == 0.99 and settings["max_epochs"] == 16

    runs.clear()
    arrays, _ = nadlib.run_flip("lenet", u, data, epochs=2, until_train_acc=0.99, max_epochs=6,
                                run=RunControl(device="cpu", progress=False))
    assert runs == [2, 2, 4]  # 8 would pass max_epochs: the 4-epoch run below the target is kept
    np.testing.assert_array_equal(arrays["train_acc"], [1.0, 0.6])
    np.testing.assert_array_equal(arrays["epochs"], [2, 4])


def test_flip_without_target_trains_once(monkeypatch):
    runs = []

    def fake_train(arch, x_tr, y_tr, x_te, y_te, *, epochs, **kw):
        runs.append(epochs)
        return nadlib.TrainResult(epochs=[1], train_acc=[0.5], test_acc=[0.3], model=torch.nn.Linear(1, 1))

    monkeypatch.setattr(experiments, "_train_cifar", fake_train)
    monkeypatch.setattr(experiments, "evaluate", lambda model, x, y: 0.5)
    monkeypatch.setattr(experiments, "change_basis", lambda x, u: x)
    data = {"x_train": torch.zeros(4, 3, 32, 32), "y_train": torch.arange(4), "x_test": torch.zeros(2, 3, 32, 32),
            "y_test": torch.arange(2), "n_train": 4, "n_test": 2, "source": "test"}
    arrays, settings = nadlib.run_flip("lenet", torch.eye(1024), data, epochs=3,
                                       run=RunControl(device="cpu", progress=False))
    assert runs == [3, 3] and "until_train_acc" not in settings
    np.testing.assert_array_equal(arrays["epochs"], [3, 3])
    with pytest.raises(ValueError, match="max_epochs needs until_train_acc"):
        nadlib.run_flip("lenet", torch.eye(1024), data, epochs=3, max_epochs=8, run=RunControl(progress=False))
    with pytest.raises(ValueError, match="smaller than epochs"):
        nadlib.run_flip("lenet", torch.eye(1024), data, epochs=3, until_train_acc=0.9, max_epochs=2,
                        run=RunControl(progress=False))


def test_a_deadline_leaves_the_runs_not_done_as_nan_and_resume_finishes(monkeypatch, tmp_path):
    """With a deadline already passed, exactly one run is done (runs stop after the one that passes it);
    the others are NaN and 'not run' in the table; the same call without a deadline finishes from the
    checkpoint, training only the missing runs."""
    import time

    trained = []

    def fake(arch, v, *, recipe, return_history, run):
        trained.append(1)
        return nadlib.TrainResult(epochs=[1], train_acc=[1.0], test_acc=[0.5], wall_time=2.0)

    monkeypatch.setattr(P, "direction_accuracy", fake)
    settings = [P.AblationSetting("lenet", "LeNet", compensation="pool"), P.AblationSetting("nopool", "no pool")]
    ckpt = tmp_path / "c.ckpt.npz"
    arrays, record = P.run_pooling_ablation(settings, [(0, 8), (16, 16)],
                                            run=RunControl(checkpoint=ckpt, deadline=time.monotonic() - 1,
                                                           progress=False))
    assert len(trained) == 1 and record["complete"] is False
    assert np.isfinite(arrays["test_acc"]).sum() == 1 and arrays["test_acc"][0, 0] == 0.5
    assert "not run" in str(P.ablation_table(arrays))
    arrays, record = P.run_pooling_ablation(settings, [(0, 8), (16, 16)],
                                            run=RunControl(checkpoint=ckpt, progress=False))
    assert len(trained) == 4 and record["complete"] is True and np.isfinite(arrays["test_acc"]).all()


def test_best_epoch_is_the_epoch_of_the_highest_test_accuracy(monkeypatch):
    """A run whose test accuracy peaks at epoch 2 (0.8) and ends at 0.6 reports 0.6 as final, 0.8 at epoch 2
    as its best; the table shows both."""
    def fake(arch, v, *, recipe, return_history, run):
        return nadlib.TrainResult(epochs=[1, 2, 3], train_acc=[0.6, 0.9, 1.0], test_acc=[0.55, 0.8, 0.6])

    monkeypatch.setattr(P, "direction_accuracy", fake)
    arrays, _ = P.run_pooling_ablation([P.AblationSetting("lenet", "LeNet", compensation="pool")], [(0, 8)],
                                       run=RunControl(progress=False))
    assert arrays["test_acc"][0, 0] == 0.6 and arrays["best_test_acc"][0, 0] == 0.8
    assert arrays["best_epoch"][0, 0] == 2
    assert "0.800 (epoch 2)" in str(P.ablation_table(arrays))


def test_flip_table_reports_both_variants_and_the_epochs_each_needed():
    from nadlib.book.plotting import flip_table

    fixed = ({"train_acc": np.array([1.0, 0.715]), "test_acc": np.array([0.4751, 0.375])},
             {"settings": {"n_train": 5000, "n_test": 2000, "epochs": 60}, "profile": "default", "device": "cpu",
              "wall_time": 748.5, "data_source": "CIFAR-10"})
    fitted = ({"train_acc": np.array([0.995, 0.991]), "test_acc": np.array([0.36, 0.21]),
               "epochs": np.array([100, 400])},
              {"settings": {"n_train": 1000, "n_test": 2000, "epochs": 50, "until_train_acc": 0.99},
               "profile": "default", "device": "cpu", "wall_time": 10.0, "data_source": "CIFAR-10"})
    lines = str(flip_table({"a": fixed, "b": fitted, "c": None})).splitlines()
    assert lines[2] == ("| a | CIFAR-10 | 1.000 | 0.715 | 0.475 | 0.375 | default, 5000/2000 images, 60 epochs, cpu, "
                        "748 s |")
    assert "| 0.995 | 0.991 | 0.360 | 0.210 |" in lines[3]
    assert "100/400 epochs (original/flipped, trained to train acc. 0.99)" in lines[3]
    assert lines[4].startswith("| c | – | not yet measured |")


def test_the_control_differs_from_lenet_only_in_the_training_set_size():
    lenet = next(s for s in P.ABLATION if s.name == "lenet")
    (control,) = P.CONTROLS
    fields = ("compensation", "hidden", "init", "n_train", "epochs", "lr", "clip", "weight_decay")
    assert [f for f in fields if getattr(control, f) != getattr(lenet, f)] == ["n_train"]
    assert control.n_train == next(s for s in P.ABLATION if s.name == "n40k").n_train


def test_combine_ablations_stacks_rows_of_the_same_directions():
    a = {"names": np.array(["lenet"]), "labels": np.array(["L"]), "freqs": np.array([[0, 8]]),
         "test_acc": np.array([[0.5]]), "train_acc": np.array([[0.7]])}
    b = dict(a, names=np.array(["c"]), labels=np.array(["C"]), test_acc=np.array([[0.9]]))
    both = P.combine_ablations(a, b)
    assert list(both["names"]) == ["lenet", "c"]
    np.testing.assert_array_equal(both["test_acc"], [[0.5], [0.9]])
    with pytest.raises(ValueError, match="different directions"):
        P.combine_ablations(a, dict(b, freqs=np.array([[16, 16]])))


def test_cli_control_run_without_a_lenet_row_writes_and_prints(tmp_path, monkeypatch, capsys):
    """A control run has no 'lenet' row (no hard directions to mark): the CLI still writes the artifact and
    prints each row's test accuracy."""
    from nadlib.cli import main

    def fake(arch, v, *, recipe, return_history, run):
        return nadlib.TrainResult(epochs=[1], train_acc=[0.7], test_acc=[0.499])

    monkeypatch.setattr(P, "direction_accuracy", fake)
    out = tmp_path / "c.npz"
    assert main(["pooling", "--settings", "lenet_n40k", "--freqs", "0,8", "--out", str(out)]) == 0
    arrays, meta = nadlib.load_artifact(out)
    assert list(arrays["names"]) == ["lenet_n40k"] and meta["complete"] is True
    assert "LeNet (with pooling), 40,000 training samples: test accuracy 0.499" in capsys.readouterr().out
