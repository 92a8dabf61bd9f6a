"""What the experiment runners promise beyond their numbers: the settings they return (which are also the
checkpoint's identity, so a renamed or missing key would orphan every saved run), their default progress
bars, their deadlines, and the dtypes of a saved NAD artifact."""

import re
import time

import numpy as np
import pytest
import torch

import nadlib
from nadlib import experiments as E
from nadlib.results import DeadlineReached, load_artifact

from cifar_fixtures import tiny_cifar_data
from nadlib import Recipe, RunControl, Stability

TINY = dict(recipe=Recipe(n_train=2, n_test=2, epochs=1))


def _basis(k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(1024, k, generator=g, dtype=torch.float64))
    return q.T.float()


def _data():
    return tiny_cifar_data(n_train=20, n_test=10)


HP = E.CIFARHyperParams(batch_size=8)
HP_SETTINGS = {"lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 8, "clip": None}


# ------------------------------------------------------------------------------------------------ settings


def test_trainability_checkpoint_settings_are_exactly_the_run_description(tmp_path):
    u = _basis(4).reshape(4, 32, 32)
    ckpt = tmp_path / "t.ckpt.npz"
    nadlib.nad_trainability(u, [2, 0], arch="logreg", run=RunControl(seed=5, progress=False, checkpoint=ckpt), **TINY)
    _, meta = load_artifact(ckpt)
    assert meta["settings"] == {"arch": "logreg", "indices": [2, 0], "n_train": 2, "n_test": 2, "epochs": 1,
                                "seed": 5, "nads_sha256": E._digest(u)}


def test_poison_sweep_settings_are_exactly_the_run_description(tmp_path):
    u = _basis(4)
    ckpt = tmp_path / "p.ckpt.npz"
    _, settings = E.run_poison_sweep("logreg", u, _data(), indices=[1], epsilon=0.5, epochs=1, hp=HP,
                                     run=RunControl(seed=3, device="cpu", progress=False, checkpoint=ckpt))
    want = {"arch": "logreg", "n_train": 20, "n_test": 10, "source": "hand-made", "epochs": 1, "seed": 3,
            **HP_SETTINGS, "epsilon": 0.5, "indices": [1], "baseline": True, "nads_sha256": E._digest(u)}
    assert settings == want
    assert load_artifact(ckpt)[1]["settings"] == want  # the checkpoint is keyed by the same description


def test_flip_settings_are_exactly_the_run_description(tmp_path):
    u = _basis(1024)
    kw = dict(epochs=1, hp=HP)
    _, settings = E.run_flip("logreg", u, _data(), run=RunControl(seed=2, device="cpu", progress=False), **kw)
    base = {"arch": "logreg", "n_train": 20, "n_test": 10, "source": "hand-made", "epochs": 1, "seed": 2,
            **HP_SETTINGS, "basis_sha256": E._digest(u)}
    assert settings == base
    ckpt = tmp_path / "f.ckpt.npz"
    _, settings = E.run_flip("logreg", u, _data(),
                             run=RunControl(seed=2, device="cpu", progress=False, checkpoint=ckpt),
                             **kw, until_train_acc=0.5, max_epochs=2)
    assert settings == {**base, "until_train_acc": 0.5, "max_epochs": 2}
    assert load_artifact(ckpt)[1]["settings"] == settings


# ------------------------------------------------------------------------------------ default progress bars


def test_trainability_shows_a_bar_by_default(capsys):
    nadlib.nad_trainability(_basis(2).reshape(2, 32, 32), [1], arch="logreg", **TINY)
    assert "train logreg on D(u_i)" in capsys.readouterr().err
    nadlib.nad_trainability(_basis(2).reshape(2, 32, 32), [1], arch="logreg", run=RunControl(progress=False), **TINY)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("runner, title", [
    (lambda **kw: E.run_poison_sweep("logreg", _basis(4), _data(), indices=[1], epsilon=0.5, **kw), "logreg poisoning"),
    (lambda **kw: E.run_flip("logreg", _basis(1024), _data(), **kw), "logreg flip"),
])
def test_cifar_runners_show_a_bar_by_default(capsys, runner, title):
    runner(epochs=1, hp=HP, run=RunControl(device="cpu"))
    assert title in capsys.readouterr().err
    runner(epochs=1, hp=HP, run=RunControl(device="cpu", progress=False))
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("runner, what", [
    (lambda **kw: E.run_poison_sweep("logreg", _basis(4), _data(), indices=[1, 2], epsilon=0.5, **kw),
     "logreg poisoning: runs"),
    (lambda **kw: E.run_flip("logreg", _basis(1024), _data(), **kw), "logreg flip: runs"),
])
def test_cifar_runners_stop_at_their_deadline(tmp_path, runner, what):
    ckpt = tmp_path / "d.ckpt.npz"
    with pytest.raises(DeadlineReached) as err:
        runner(epochs=1, hp=HP, run=RunControl(device="cpu", progress=False, checkpoint=ckpt,
                                               deadline=time.monotonic() - 1))
    # one run (the clean baseline, or the original images) finished and was saved before the stop
    assert (err.value.what, err.value.done) == (what, 1) and err.value.checkpoint == ckpt
    assert err.value.total == (3 if "poison" in what else 2)


# ------------------------------------------------------------------------------------- NAD artifact dtypes


def test_saved_nads_have_fixed_dtypes_whatever_they_were_computed_in(tmp_path):
    g = torch.Generator().manual_seed(0)
    d = torch.linalg.qr(torch.randn(16, 3, generator=g, dtype=torch.float64))[0].T.reshape(3, 1, 4, 4)
    nads = nadlib.NADs(directions=d, eigenvalues=torch.tensor([3.0, 2.0, 1.0], dtype=torch.float32),
                       n_networks=7, method="secant", stability={10: 0.5, 2: 0.25},
                       eval_point=torch.zeros(1, 4, 4, dtype=torch.float64))
    path = nads.save(tmp_path / "n.npz", k=2)
    arrays, _ = load_artifact(path)
    assert arrays["directions"].dtype == np.float32 and arrays["directions"].shape == (2, 1, 4, 4)
    # the whole spectrum is kept with the top-k directions
    assert arrays["eigenvalues"].dtype == np.float64 and arrays["eigenvalues"].tolist() == [3.0, 2.0, 1.0]
    assert arrays["stability_k"].dtype == np.int64 and arrays["stability_k"].tolist() == [2, 10]
    assert arrays["stability"].dtype == np.float64 and arrays["stability"].tolist() == [0.25, 0.5]
    assert arrays["eval_point"].dtype == np.float32
    np.testing.assert_allclose(arrays["directions"], d[:2].numpy(), atol=1e-7)


def test_load_nads_names_the_file_that_is_not_a_nad_artifact(tmp_path):
    path = nadlib.save_artifact(tmp_path / "x.npz", {"directions": np.zeros((2, 4)), "eigenvalues": np.ones(2)},
                                {"what": "not NADs"})
    with pytest.raises(ValueError, match=f"^{re.escape(repr(str(path)))} is not a NAD artifact: directions must"):
        nadlib.load_nads(path)


# ------------------------------------------------------------------------------------------- NAD bars


def test_nad_bars_name_the_architecture_and_method_and_are_off_in_chunks(capsys):
    kw = dict(input_shape=(1, 32, 32), step=1.0)
    nadlib.nad_statistics("LogReg", 0, 2, **kw)  # a chunk (e.g. a Ray task): quiet by default
    assert capsys.readouterr().err == ""
    nadlib.nad_statistics("LogReg", 0, 2, run=RunControl(progress=True), **kw)
    err = capsys.readouterr().err
    assert "NADs logreg (secant)" in err and "2/2" in err and "net/s" in err

    def tiny_net():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 1))

    nadlib.nad_statistics(tiny_net, 0, 2, method="gradient", run=RunControl(progress=True), **kw)
    assert f"NADs {tiny_net.__qualname__} (gradient)" in capsys.readouterr().err


def _small_net():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))


def _logreg_nads(**kw):
    return nadlib.estimate_nads("logreg", **{"n_networks": 4, "input_shape": (1, 32, 32), "step": 1.0, **kw})


def test_estimate_nads_shows_a_bar_by_default(capsys):
    _logreg_nads()
    assert "NADs logreg (secant)" in capsys.readouterr().err
    _logreg_nads(run=RunControl(progress=False))
    assert capsys.readouterr().err == ""


def test_estimate_nads_stops_at_its_deadline_and_resumes(tmp_path):
    ckpt = tmp_path / "n.ckpt.npz"
    kw = dict(n_networks=4, input_shape=(1, 4, 4), batch_size=1)
    control = RunControl(progress=False, checkpoint=ckpt)
    with pytest.raises(DeadlineReached) as err:
        nadlib.estimate_nads(_small_net, run=control.replace(deadline=time.monotonic() - 1), **kw)
    # one batch (one network) finished before the stop, and was saved
    assert (err.value.what, err.value.done, err.value.total) == ("NADs _small_net: networks", 1, 4)
    assert err.value.checkpoint == ckpt
    resumed = nadlib.estimate_nads(_small_net, run=control, **kw)
    assert resumed.meta["resumed"] is True and resumed.meta["resumed_from"] == 1 and resumed.n_networks == 4


def test_estimate_nads_provenance_describes_the_run():
    start = time.perf_counter()
    meta = nadlib.estimate_nads(_small_net, n_networks=3, input_shape=(1, 4, 4), step=2.0, batch_size=2,
                                run=RunControl(seed=4, progress=False)).meta
    elapsed = time.perf_counter() - start
    assert {k: meta[k] for k in ("device", "arch", "method", "seed", "input_shape", "step", "batch_size", "path",
                                 "eval_point", "stopped_early", "requested_networks", "resumed", "resumed_from",
                                 "bn_mode", "precision")} == {
        "device": "cpu", "arch": "_small_net", "method": "secant", "seed": 4, "input_shape": [1, 4, 4],
        "step": 2.0, "batch_size": 2, "path": "batched",
        "eval_point": "randn(input_shape) from torch.Generator().manual_seed(seed)", "stopped_early": False,
        "requested_networks": 3, "resumed": False, "resumed_from": 0, "bn_mode": "eval", "precision": "float32"}
    # times in seconds, to the millisecond; the gradients are part of the whole run
    for key in ("gradient_time_s", "wall_time_s"):
        assert isinstance(meta[key], float) and meta[key] == round(meta[key], 3)
    assert 0 <= meta["gradient_time_s"] <= meta["wall_time_s"] <= round(elapsed, 3) + 0.001


def test_early_stopping_on_the_stability_of_the_whole_space():
    """In a 10-dimensional input space the top-10 NADs (the default ``stability_k``) span everything, so
    their split-half overlap is exactly 1 and the run stops at the first check."""
    nads = nadlib.estimate_nads(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1)),
                                n_networks=200, input_shape=(1, 2, 5), method="gradient", batch_size=4,
                                stability=Stability(check_every=20, stop_at=0.999), run=RunControl(progress=False))
    assert nads.meta["stopped_early"] and nads.n_networks == 20


@pytest.mark.parametrize("call, err, message", [
    (lambda: nadlib.nads_from_statistics("stats", (1, 2, 2), "secant"), TypeError,
     "stats must be NADStatistics, got str"),
    (lambda: nadlib.nads_from_statistics(nadlib.NADStatistics(4), (1, 2, 3), "secant"), ValueError,
     "input_shape (1, 2, 3) does not match statistics of dimension 4"),
    (lambda: nadlib.nads_from_statistics(nadlib.NADStatistics(4), (1, 2, 2), "finite"), ValueError,
     "method must be one of"),
])
def test_nads_from_statistics_messages(call, err, message):
    with pytest.raises(err) as info:
        call()
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("method, fast, n_params, device, batch", [
    # autograd gradients stack one batch of parameters: ~5e7 numbers on a CPU, ~1e9 on a GPU, capped
    ("gradient", False, 1_000, "cpu", 128), ("gradient", False, 1_000_000, "cpu", 50),
    ("gradient", False, 10**9, "cpu", 1), ("gradient", False, 0, "cpu", 128),
    ("gradient", False, 1_000, "cuda", 1024), ("gradient", False, 10_000_000, "cuda", 100),
    ("gradient", False, 10**10, "cuda", 1),
    # secants: the windowed LeNet path batches networks, the generic path one (CPU) or four (GPU)
    ("secant", True, 10**6, "cpu", 16), ("secant", True, 10**6, "cuda", 64),
    ("secant", False, 10**6, "cpu", 1), ("secant", False, 10**6, "cuda", 4),
])
def test_default_batch_policy(method, fast, n_params, device, batch):
    from nadlib.nads.estimate import _default_batch
    assert _default_batch(method, fast, n_params, torch.device(device)) == batch


class _DoubledLinear(torch.nn.Module):
    """A net whose constructor changes the initialisation, so ``reset_parameters()`` cannot reproduce it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 1)
        with torch.no_grad():
            self.fc.weight.mul_(2)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("factory, reused", [(_small_net, True), (_DoubledLinear, False)])
def test_network_pool_is_reused_only_when_reinitialising_gives_fresh_networks(factory, reused):
    """Networks come from a re-initialised pool only when ``reset_parameters()`` under network j's seed
    gives exactly what building network j gives; either way network j is that fresh network."""
    from nadlib.nads.estimate import _build, _NetworkMaker
    maker = _NetworkMaker(factory, seed=3, device=torch.device("cpu"), pool_size=2)
    assert maker.reuse is reused and len(maker.pool) == (2 if reused else 0)
    for j, net in zip([5, 6], maker([5, 6])):
        fresh = _build(factory, j, 3).state_dict()
        got = net.state_dict()
        assert got.keys() == fresh.keys() and all(torch.equal(got[k], fresh[k]) for k in got)


def test_stability_is_checked_every_check_every_networks_and_stops_at_the_threshold(monkeypatch):
    """A scripted stability (0.2, 0.4, then 0.5 = the threshold) stops the run at the third check: after
    networks 20, 40 and 60 (batches of 4, ``check_every=20``), never at the last batch."""
    import nadlib.nads.estimate as N
    script, seen = iter([0.2, 0.4, 0.5, 0.9]), []
    real = N.split_half_stability

    def scripted(stats, ks):
        if tuple(ks) != (10,):  # the stability reported with the result
            return real(stats, ks)
        seen.append(stats.n_networks)
        return {10: next(script)}

    monkeypatch.setattr(N, "split_half_stability", scripted)
    nads = nadlib.estimate_nads(_small_net, n_networks=100, input_shape=(1, 4, 4), batch_size=4,
                                stability=Stability(check_every=20, stop_at=0.5), run=RunControl(progress=False))
    assert seen == [20, 40, 60]
    assert nads.n_networks == 60 and nads.meta["stopped_early"]

    seen.clear()
    script = iter([0.0] * 10)
    nads = nadlib.estimate_nads(_small_net, n_networks=100, input_shape=(1, 4, 4), batch_size=4,
                                stability=Stability(check_every=20, stop_at=0.5), run=RunControl(progress=False))
    assert seen == [20, 40, 60, 80] and nads.n_networks == 100 and not nads.meta["stopped_early"]


def test_a_deadline_passed_during_the_last_batch_is_not_an_interruption():
    nads = nadlib.estimate_nads(_small_net, n_networks=2, input_shape=(1, 4, 4), batch_size=2,
                                run=RunControl(progress=False, deadline=time.monotonic() - 1))
    assert nads.n_networks == 2


@pytest.mark.parametrize("every, periodic", [(1e-9, 3), (1e9, 0)])
def test_checkpoints_are_saved_every_checkpoint_every_seconds(monkeypatch, tmp_path, every, periodic):
    """A tiny ``checkpoint_every`` saves after every batch (3 here) and once at the end; a long interval only at
    the end."""
    saved = []
    real = nadlib.results.Checkpoint.save

    def counting(self, **arrays):
        saved.append(int(arrays["next_index"]))
        return real(self, **arrays)

    monkeypatch.setattr(nadlib.results.Checkpoint, "save", counting)
    nadlib.estimate_nads(_small_net, n_networks=3, input_shape=(1, 4, 4), batch_size=1,
                         run=RunControl(progress=False, checkpoint=tmp_path / "c.ckpt.npz", checkpoint_every=every))
    assert saved == [1, 2, 3][:periodic] + [3]


# ------------------------------------------------------------------------------ estimate_nads: its inputs


def test_network_seed_is_the_documented_63_bit_hash():
    """``network_seed(seed, j)``: the first 64-bit word of ``SeedSequence([seed low, seed high, j])``,
    shifted right by one bit (so it fits ``torch.manual_seed``'s signed 64-bit range)."""
    from nadlib.nads import network_seed
    for seed, j in [(0, 0), (0, 1), (7, 123), (2**40 + 5, 9)]:
        words = np.random.SeedSequence([seed % 2**32, seed // 2**32, j]).generate_state(2, dtype=np.uint32)
        want = (int(words[0]) | int(words[1]) << 32) >> 1
        assert network_seed(seed, j) == want and 0 <= want < 2**63


def test_architectures_by_name_get_the_channels_of_the_input():
    stats = nadlib.nad_statistics("LeNet", 0, 2, method="gradient", input_shape=(3, 32, 32), batch_size=2)
    assert stats.dim == 3 * 32 * 32 and stats.n_networks == 2


def test_a_module_instance_is_refused_with_a_message_saying_what_to_pass():
    with pytest.raises(TypeError) as info:
        nadlib.estimate_nads(_small_net(), n_networks=2, input_shape=(1, 4, 4))
    assert str(info.value) == (
        "model must be an architecture name or a zero-argument callable returning a fresh nn.Module "
        "(e.g. `lambda: MyNet()`), not a module instance: NADs average over random initialisations")


def test_a_callable_without_a_qualname_is_named_by_what_it_wraps():
    import functools
    factory = functools.partial(torch.nn.Linear, 16)
    net = functools.partial(lambda f: torch.nn.Sequential(torch.nn.Flatten(), f(1)), factory)
    nads = nadlib.estimate_nads(net, n_networks=2, input_shape=(1, 4, 4), run=RunControl(progress=False))
    name = "partial(test_a_callable_without_a_qualname_is_named_by_what_it_wraps.<locals>.<lambda>)"
    assert nads.meta["arch"] == name and nads.meta["model"].startswith(name + " #")
    assert "0x" not in nads.meta["model"]  # never a memory address


@pytest.mark.parametrize("k", [1, 16])
def test_k_may_be_anything_from_one_to_the_dimension(k):
    nads = nadlib.estimate_nads(_small_net, n_networks=2, input_shape=(1, 4, 4), k=k, run=RunControl(progress=False))
    assert nads.directions.shape == (k, 1, 4, 4)


def test_stability_k_may_equal_the_dimension():
    nads = nadlib.estimate_nads(_small_net, n_networks=8, input_shape=(1, 4, 4), batch_size=4,
                                stability=Stability(check_every=4, stop_at=0.99, k=16), run=RunControl(progress=False))
    assert nads.meta["stopped_early"]  # the top-16 of a 16-dimensional space: overlap 1


def test_the_method_message_names_the_argument():
    with pytest.raises(ValueError, match=r"^method must be one of "):
        nadlib.estimate_nads(_small_net, n_networks=2, input_shape=(1, 4, 4), method="finite")


@pytest.mark.parametrize("shape", [(3, 4, 4), (1, 3, 4, 4)])
def test_a_given_eval_point_is_used_as_float32_with_or_without_a_batch_axis(shape):
    def net():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 1))

    x = torch.linspace(-1, 1, 48, dtype=torch.float64).reshape(shape)
    nads = nadlib.estimate_nads(net, n_networks=2, input_shape=(3, 4, 4), eval_point=x, run=RunControl(progress=False))
    assert nads.eval_point.dtype == torch.float32
    assert torch.equal(nads.eval_point, x.reshape(3, 4, 4).float())
    assert nads.meta["eval_point"] == "given"


@pytest.mark.parametrize("method, path, batch", [("secant", "lenet-windowed", 16), ("gradient", "vmap", 128)])
def test_lenet_paths_and_default_batches(method, path, batch):
    """The windowed secant path is for secants only; batches follow ``_default_batch`` (see its test)."""
    nads = nadlib.estimate_nads("lenet", n_networks=2, method=method, k=1, run=RunControl(progress=False))
    assert (nads.meta["path"], nads.meta["batch_size"]) == (path, batch)


class _NaNForNegativeWeight(torch.nn.Module):
    """Output ``sum(x) * sqrt(w)`` with ``w ~ N(0, 1)`` drawn at construction: NaN for networks with w < 0."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return x.flatten(1).sum(1, keepdim=True) * self.w.sqrt()


def test_a_non_finite_gradient_names_the_network_and_its_seed():
    from nadlib.nads import network_seed
    seed = 0
    signs = []
    for j in range(64):
        torch.manual_seed(network_seed(seed, j))
        signs.append(float(torch.randn(())) < 0)
    # the first bad network, in the middle of a batch of 4 (so its batch does not start at it)
    first_bad = signs.index(True)
    assert first_bad % 4 != 0, "pick another seed: the bad network must not open its batch"
    with pytest.raises(ValueError) as info:
        nadlib.estimate_nads(_NaNForNegativeWeight, n_networks=64, input_shape=(1, 2, 2), batch_size=4,
                             run=RunControl(seed=seed, progress=False))
    assert str(info.value) == (f"non-finite input gradient for network {first_bad} (initialised with "
                               f"torch.manual_seed({network_seed(seed, first_bad)}), i.e. "
                               f"network_seed({seed}, {first_bad}))")


# ------------------------------------------------------------------------------------ flip to a target


def test_flip_target_defaults_to_eight_times_the_epochs_and_allows_exactly_epochs():
    kw = dict(hp=HP, run=RunControl(device="cpu", progress=False))
    _, settings = E.run_flip("logreg", _basis(1024), _data(), epochs=1, until_train_acc=0.1, **kw)
    assert settings["max_epochs"] == 8 and settings["until_train_acc"] == 0.1
    arrays, settings = E.run_flip("logreg", _basis(1024), _data(), epochs=2, until_train_acc=1.0, max_epochs=2, **kw)
    assert settings["max_epochs"] == 2 and arrays["epochs"].tolist() == [2, 2]  # no room to double


@pytest.mark.parametrize("kwargs, message", [
    (dict(until_train_acc=1.5), "until_train_acc must be in (0, 1], got 1.5"),
    (dict(until_train_acc=0.9, max_epochs=0), "max_epochs must be a positive int, got 0"),
    (dict(until_train_acc=0.9, max_epochs=2), "max_epochs (2) is smaller than epochs (3)"),
    (dict(max_epochs=8), "max_epochs needs until_train_acc"),
])
def test_flip_target_messages(kwargs, message):
    with pytest.raises(ValueError) as info:
        E.run_flip("logreg", _basis(1024), _data(), epochs=3, hp=HP,
                   run=RunControl(device="cpu", progress=False), **kwargs)
    assert str(info.value) == message


def _flip_with_scripted_fits(monkeypatch, fits):
    """``run_flip`` with training replaced: the original images fit at once; a flipped run of ``e`` epochs
    reaches the training accuracy ``fits(e)``.  Returns the epochs of every training run."""
    runs = []

    def fake_train(arch, x_tr, y_tr, x_te, y_te, *, epochs, **kw):
        model = torch.nn.Linear(1, 1)
        model.acc = 1.0 if not runs else fits(epochs)
        runs.append(epochs)
        return nadlib.TrainResult(epochs=list(range(1, epochs + 1)), train_acc=[model.acc] * epochs,
                                  test_acc=[0.5] * epochs, model=model)

    monkeypatch.setattr(E, "_train_cifar", fake_train)
    monkeypatch.setattr(E, "evaluate", lambda model, x, y: model.acc)
    monkeypatch.setattr(E, "change_basis", lambda x, u: x)
    return runs


@pytest.mark.timeout(20)  # a doubling that does not double loops for ever: fail instead of hanging
def test_flip_doubles_up_to_max_epochs_and_stops_at_exactly_the_target(monkeypatch):
    kw = dict(epochs=2, hp=HP, run=RunControl(device="cpu", progress=False))
    runs = _flip_with_scripted_fits(monkeypatch, lambda e: 0.5)  # never fits
    arrays, _ = E.run_flip("logreg", _basis(1024), _data(), until_train_acc=0.9, max_epochs=8, **kw)
    assert runs == [2, 2, 4, 8]  # 2, 4 and 8 epochs all fit within max_epochs; 16 would not
    assert arrays["epochs"].tolist() == [2, 8] and arrays["train_acc"].tolist() == [1.0, 0.5]
    # NaN-padded curves: the original stopped after 2 epochs
    assert arrays["test_curve"].shape == (2, 8) and np.isnan(arrays["test_curve"][0, 2:]).all()

    runs = _flip_with_scripted_fits(monkeypatch, lambda e: 0.9 if e >= 4 else 0.5)  # the target, exactly
    arrays, _ = E.run_flip("logreg", _basis(1024), _data(), until_train_acc=0.9, max_epochs=64, **kw)
    assert runs == [2, 2, 4] and arrays["epochs"].tolist() == [2, 4]


def test_run_settings_default_to_seed_zero():
    from nadlib.nads import nad_run_settings
    assert nad_run_settings(_small_net, input_shape=(1, 4, 4))["seed"] == 0


# ------------------------------------------------------------------------------------------------ train


def _linear_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 4, 4, generator=g), torch.arange(n) % 2


def _linear_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))


def test_an_epochs_training_accuracy_and_loss_cover_every_batch():
    """With a learning rate too small to move the weights, an epoch's training accuracy and mean loss are
    those of the initial model on the whole training set, summed over its 5 mini-batches."""
    x, y = _linear_data()
    model = _linear_model()
    with torch.no_grad():
        out = model(x)
    want_acc = int((out.argmax(1) == y).sum()) / len(y)
    want_loss = float(torch.nn.functional.cross_entropy(out, y))
    result = nadlib.train(model, x, y, recipe=Recipe(epochs=1, batch_size=8, lr=1e-12, clip=None),
                          run=RunControl(progress=False))
    assert result.train_acc == [want_acc] and 0 < want_acc < 1
    assert result.loss[0] == pytest.approx(want_loss, rel=1e-6)


def test_train_defaults_to_batches_of_128_and_seed_0(monkeypatch):
    from nadlib import training
    sizes = []
    real = training.minibatches
    monkeypatch.setattr(training, "minibatches", lambda n, b, g: sizes.append(b) or real(n, b, g))
    x, y = _linear_data(n=130)
    default = nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1), run=RunControl(progress=False)).model
    assert sizes == [128]
    seed0 = nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1), run=RunControl(seed=0, progress=False)).model
    seed1 = nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1), run=RunControl(seed=1, progress=False)).model
    assert torch.equal(default[1].weight, seed0[1].weight)
    assert not torch.equal(seed0[1].weight, seed1[1].weight)  # the seed orders the batches
    assert nadlib.train(_linear_model(), x, y, run=RunControl(progress=False)).epochs[-1] == 20  # the paper's 20 epochs


@pytest.mark.parametrize("kwargs, err, message", [
    (dict(momentum="heavy"), TypeError, "momentum must be a number, got str 'heavy'"),
    (dict(weight_decay="some"), TypeError, "weight_decay must be a number, got str 'some'"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay must be >= 0, got -1.0"),
])
def test_train_recipe_messages(kwargs, err, message):
    x, y = _linear_data(n=8)
    with pytest.raises(err) as info:
        nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1, **kwargs), run=RunControl(progress=False))
    assert str(info.value) == message


def test_train_shows_a_transient_bar_by_default(capsys):
    x, y = _linear_data()
    nadlib.train(_linear_model(), x, y, x, y, recipe=Recipe(epochs=2))
    err = capsys.readouterr().err
    assert "train:" in err and "/2 [" in err and re.search(r"\bepoch/s\b|\bs/epoch\b", err), err
    assert re.search(r"test=\d\.\d{3}, train=\d\.\d{3}", err), err
    assert err.endswith("\r")  # leave=False: the bar erases itself when training ends
    nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1))
    assert "test=-" in capsys.readouterr().err  # no test set
    nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1), run=RunControl(progress=False))
    assert capsys.readouterr().err == ""


def test_train_wall_time_is_within_the_call():
    x, y = _linear_data()
    start = time.perf_counter()
    result = nadlib.train(_linear_model(), x, y, recipe=Recipe(epochs=1), run=RunControl(progress=False))
    assert 0 < result.wall_time <= time.perf_counter() - start


class _NaNNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


class _ScalarNet(torch.nn.Module):
    def forward(self, x):
        return x.sum()


class _SilentFailure(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError()


class _LoudFailure(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(a second line)")


class _TupleNet(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1), x.flatten(1)


@pytest.mark.parametrize("model, y_shift, err, message", [
    (_NaNNet, 0, FloatingPointError, "training diverged at epoch 1 (loss nan); lower lr or set clip"),
    (_ScalarNet, 0, ValueError, "the model must return class scores of shape (N, classes), got ()"),
    (_SilentFailure, 0, ValueError, "the model does not accept x_train of shape (N, 1, 4, 4): RuntimeError"),
    (_LoudFailure, 0, ValueError,
     "the model does not accept x_train of shape (N, 1, 4, 4): mat1 and mat2 shapes cannot be multiplied"),
    (_TupleNet, 0, ValueError, "the model must return class scores of shape (N, classes), got tuple"),
    (_linear_model, 1, ValueError, "y_train has label 2 but the model has only 2 outputs (classes 0..1): build it "
     "with 3 outputs, e.g. num_classes=3 (D(v) has 2 classes, CIFAR-10 10; NADs need 1)"),
])
def test_train_messages(model, y_shift, err, message):
    x, y = _linear_data(n=8)
    with pytest.raises(err) as info:
        nadlib.train(model(), x, y + y_shift, recipe=Recipe(epochs=1, clip=None), run=RunControl(progress=False))
    assert str(info.value) == message


@pytest.mark.parametrize("where, message", [
    ("train", "x_train contains NaN or infinite values"),
    ("test", "x_test contains NaN or infinite values"),
    ("labels", "y_train must be a 1-D tensor of labels, got shape (8, 1)"),
])
def test_train_names_the_bad_set(where, message):
    x, y = _linear_data(n=8)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    args = {"train": (bad, y, x, y), "test": (x, y, bad, y), "labels": (x, y[:, None], x, y)}[where]
    with pytest.raises(ValueError) as info:
        nadlib.train(_linear_model(), *args, recipe=Recipe(epochs=1), run=RunControl(progress=False))
    assert str(info.value) == message
