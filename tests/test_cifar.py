"""CIFAR-10 loading, NAD poisoning and the flip (nadlib.cifar10, nadlib.bases, nadlib.experiments).  Offline: all data is made here."""

from __future__ import annotations

import dataclasses
import urllib.error

import numpy as np
import pytest
import torch

import nadlib
from nadlib import bases as B
from nadlib import cifar10 as C
from nadlib import experiments as E

import cifar_fixtures as F
from nadlib import RunControl


@pytest.fixture(scope="module")
def arrays():
    return C.synthetic_cifar10(n_train=60, n_test=30, seed=3)


@pytest.fixture()
def batches(tmp_path, arrays, monkeypatch):
    """The synthetic images written in the official ``cifar-10-batches-py`` pickle layout.

    torchvision's ``CIFAR10`` verifies the MD5 of each official file (``train_list``, ``test_list``,
    ``meta``); our files have other checksums, so -- in this fixture only -- the class attributes are
    patched to the checksums of the files we wrote.  Everything else (integrity check, unpickling,
    reshaping) is torchvision's own code path.
    """
    from torchvision.datasets import CIFAR10

    md5 = F.write_cifar10_batches(tmp_path, arrays)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5["batches.meta"]})
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    C.clear_cifar10_cache()
    yield tmp_path
    C.clear_cifar10_cache()


def _as_uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------------------------------- loader

@pytest.mark.parametrize("train", [True, False])
def test_torchvision_path_reads_official_layout(batches, arrays, train):
    x, y = C.load_cifar10(batches, train=train, download=False, device="cpu")
    split = "train" if train else "test"
    assert x.shape == (len(arrays[f"x_{split}"]), 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(_as_uint8_nhwc(x), arrays[f"x_{split}"])
    np.testing.assert_array_equal(y.numpy(), arrays[f"y_{split}"])
    assert C.load_cifar10(batches, train=train, download=False, device="cpu")[0] is x  # cached


def test_npz_path_by_argument_and_env(tmp_path, arrays, monkeypatch):
    path = F.write_cifar10_npz(tmp_path / "c.npz", arrays)
    C.clear_cifar10_cache()
    x, y = C.load_cifar10(npz=path, train=False, device="cpu")
    np.testing.assert_array_equal(_as_uint8_nhwc(x), arrays["x_test"])
    monkeypatch.setenv(C.NPZ_ENV, str(path))
    x2, y2 = C.load_cifar10(root=tmp_path / "nowhere", train=True, download=False, device="cpu")
    np.testing.assert_array_equal(y2.numpy(), arrays["y_train"])


@pytest.mark.parametrize("bad, message", [
    ({"x_test": None}, "missing arrays"),
    ({"x_train": np.zeros((4, 3, 32, 32), np.uint8)}, "x_train must be uint8 of shape"),
    ({"x_train": np.zeros((60, 32, 32, 3), np.float32)}, "x_train must be uint8"),
    ({"y_train": np.full(60, 12, np.uint8)}, "class indices 0..9"),
])
def test_npz_validation(tmp_path, arrays, bad, message):
    data = {k: v for k, v in arrays.items()}
    for k, v in bad.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(tmp_path / "bad.npz", **data)
    C.clear_cifar10_cache()
    with pytest.raises(ValueError, match=message):
        C.load_cifar10(npz=tmp_path / "bad.npz", device="cpu")


def test_missing_npz_names_the_variable(tmp_path):
    with pytest.raises(C.CIFAR10NotFoundError, match=C.NPZ_ENV):
        C.load_cifar10(npz=tmp_path / "absent.npz", device="cpu")


def _check_message(err: Exception, root) -> None:
    text = str(err)
    assert str(root) in text                      # where it looked
    assert "cifar-10-python.tar.gz" in text       # what to download
    assert C.DATA_ENV in text and C.NPZ_ENV in text  # which variables to set
    assert err.__suppress_context__ or err.__cause__ is None  # no chained urllib stack trace


def test_missing_data_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    with pytest.raises(C.CIFAR10NotFoundError) as info:
        C.load_cifar10(tmp_path / "empty", download=False, device="cpu")
    _check_message(info.value, tmp_path / "empty")
    assert isinstance(info.value, FileNotFoundError)


def test_missing_data_offline_fails_fast(tmp_path, monkeypatch):
    """Offline: the quick reachability check fails -> clear error, torchvision's download never starts."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    monkeypatch.setattr(C, "_reachable", lambda url, timeout=3.0: False)

    def no_download(*a, **k):
        raise AssertionError("download must not be attempted")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", no_download)
    with pytest.raises(C.CIFAR10NotFoundError, match="cannot be reached") as info:
        C.load_cifar10(tmp_path, download=True, device="cpu")
    _check_message(info.value, tmp_path)


def test_download_error_is_translated(tmp_path, monkeypatch):
    """The host looks reachable but the download raises URLError deep in torchvision: one clear error."""
    monkeypatch.delenv(C.NPZ_ENV, raising=False)
    monkeypatch.setattr(C, "_reachable", lambda url, timeout=3.0: True)

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(C.CIFAR10NotFoundError, match="URLError") as info:
        C.load_cifar10(tmp_path, download=True, device="cpu")
    _check_message(info.value, tmp_path)


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv(C.DATA_ENV, str(tmp_path))
    assert C.default_cifar10_root() == tmp_path / "cifar10"
    monkeypatch.delenv(C.DATA_ENV)
    assert C.default_cifar10_root().parts[-3:] == (".cache", "nadlib", "cifar10")


def test_balanced_subset():
    y = torch.arange(100) % 10
    idx = C.balanced_subset(y, 30)
    assert torch.bincount(y[idx], minlength=10).tolist() == [3] * 10
    assert idx.tolist() == sorted(idx.tolist()) and idx[:3].tolist() == [0, 1, 2]
    assert torch.equal(C.balanced_subset(y, 30, seed=1), C.balanced_subset(y, 30, seed=1))
    with pytest.raises(ValueError, match="class"):
        C.balanced_subset(torch.zeros(50, dtype=torch.long), 20)


# ---------------------------------------------------------------------------------------------- poisoning

def _random_basis(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(1024, 1024, generator=g, dtype=torch.float64))
    return q.T.to(torch.float32)  # rows orthonormal


def test_assignment_table_separable():
    table = B.poison_assignment(0)
    slots = {(r["nad"], r["channel"]) for r in table}
    assert len(table) == 10 and len(slots) == 5
    codes = {(r["slot"], r["sign"]) for r in table}
    assert len(codes) == 10  # every class has its own (slot, sign): the points +-eps e_slot are distinct
    end = B.poison_assignment(1023)
    assert {r["nad"] for r in end} == {1023, 1022}
    with pytest.raises(ValueError, match="out of range"):
        B.poison_assignment(1024)


@pytest.mark.parametrize("index", [0, 500, 1023])
def test_poisoned_coefficients_exact(arrays, index):
    u = _random_basis()
    x = torch.from_numpy(arrays["x_train"]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(arrays["y_train"]).long()
    eps = 0.7
    xp, carriers = B.poison_with_nads(x, y, u, index, eps)
    before, after = B.nad_coefficients(x, u), B.nad_coefficients(xp, u)
    table = B.poison_assignment(index)
    touched = torch.zeros(3, 1024, dtype=torch.bool)
    for r in table:
        touched[r["channel"], r["nad"]] = True
    expected = torch.zeros(len(x), 3, 1024)
    for r in table:
        expected[:, r["channel"], r["nad"]] += torch.where(y == r["class"], r["sign"] * eps, 0.0)
    # float32 images of norm ~20: coefficients carry ~1e-5 rounding
    assert torch.allclose(after[:, touched], expected[:, touched], atol=1e-4)
    assert torch.allclose(after[:, ~touched], before[:, ~touched], atol=1e-4)
    # the carriers alone separate the classes: class = argmax of W z with W = the signed slot codes
    z = after[:, touched]
    order = [(c, n) for c in range(3) for n in range(1024) if touched[c, n]]
    W = torch.zeros(10, len(order))
    for r in table:
        W[r["class"], order.index((r["channel"], r["nad"]))] = r["sign"]
    assert torch.equal((z @ W.T).argmax(1), y)
    assert carriers.shape == (10, 3, 32, 32)
    assert torch.allclose(carriers.flatten(1).norm(dim=1), torch.full((10,), eps), atol=1e-5)


def test_poison_validation(arrays):
    u = _random_basis()
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="epsilon"):
        B.poison_with_nads(x, y, u, 0, 0.0)
    with pytest.raises(ValueError, match="labels"):
        B.poison_with_nads(x, torch.tensor([0, 1, 2, 10]), u, 0, 1.0)
    with pytest.raises(ValueError, match="orthonormal"):
        B.poison_with_nads(x, y, torch.rand(8, 1024), 0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        B.poison_with_nads(x, y, torch.rand(8, 100), 0, 1.0)
    with pytest.raises(TypeError):
        B.poison_with_nads(x.numpy(), y, u, 0, 1.0)


# ---------------------------------------------------------------------------------------------- flip

def test_flip_is_orthogonal_and_an_involution():
    u = _random_basis(1)
    x = torch.rand(20, 3, 32, 32)
    f = B.change_basis(x, u)
    assert torch.allclose(f.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.allclose(B.change_basis(f, u), x, atol=1e-5)
    # inner products preserved (orthogonality), and coefficient i moved to 1023 - i
    assert torch.allclose(f.flatten(1) @ f.flatten(1).T, x.flatten(1) @ x.flatten(1).T, rtol=1e-4, atol=1e-3)
    assert torch.allclose(B.nad_coefficients(f, u), B.nad_coefficients(x, u).flip(-1), atol=1e-4)
    with pytest.raises(ValueError, match="full basis"):
        B.change_basis(x, u[:100])
    with pytest.raises(ValueError, match="orthonormal"):
        B.change_basis(x, u * 1.1)


def test_energy_profiles_sum_to_one(arrays):
    x = torch.from_numpy(arrays["x_train"]).permute(0, 3, 1, 2).float() / 255
    u = _random_basis()
    e = B.nad_energy(x, u)
    ef, radius = B.fourier_energy_by_radius(x)
    # Parseval: for a full orthonormal basis the energies add up to the mean squared norm of the centred
    # images, so E_i = mean_n sum_c <x - m, u_i>^2 / mean_n ||x - m||^2, written out here for a few i
    xc = (x - x.mean(0, keepdim=True)).double()
    total = xc.pow(2).sum() / len(x)
    for i in (0, 7, 1023):
        by_hand = (xc.flatten(2) @ u[i].double()).pow(2).sum() / len(x) / total
        assert float(e[i]) == pytest.approx(float(by_hand), rel=1e-4, abs=1e-9)
    assert bool((radius[1:] >= radius[:-1]).all())
    # the synthetic backgrounds have a Gaussian power spectrum exp(-r^2/16): the 100 lowest of the 1024
    # frequencies (radius <~ 5.6) hold ~1 - exp(-31/16) ~ 0.86 of the energy; white noise would give ~0.1
    assert ef[:100].sum() > 0.6
    white = B.fourier_energy_by_radius(torch.rand(200, 3, 32, 32))[0]
    assert white[:100].sum() < 0.2


# ---------------------------------------------------------------------------------------------- science

@pytest.mark.slow
def test_poisoning_first_vs_last_direction():
    """A LeNet follows a carrier on an easy (first) direction and ignores one on a hard (last) direction.

    Basis: the Fourier basis ordered from low to high frequency (``load_basis("fourier")``), a stand-in
    for LeNet's NADs with the same ends: LeNet's first NAD is a smooth blob (close to the constant image,
    Fourier index 0) and its last NADs are high-frequency patterns.  Real NADs take minutes to estimate;
    Chapter 3 uses them.  Data: the synthetic structured images (the class signal is weaker than the
    background, so the network needs several epochs to learn it), 1000 train / 500 test, 12 epochs,
    epsilon = 3.

    Margins: chance is 0.10 and on these data a clean LeNet reaches ~0.5 in 12 epochs.  In development
    (2 data seeds) the first-direction run reached train accuracy 0.99 and clean test accuracy 0.10,
    the last-direction run clean test accuracy 0.46-0.52.  The binomial standard error of one test
    accuracy with 500 images is <= 0.022, of a difference <= 0.032; the thresholds (train >= 0.95,
    difference >= 0.2) sit > 6 standard errors away from chance-level differences and leave room for
    seed-to-seed variation of the training itself (observed spread ~0.06).
    """
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    u = E.load_basis("fourier")
    data = C.cifar_data(nadlib.get_profile("smoke"), n_train=1000, n_test=500, synthetic=True, device="cpu")
    arrays, settings = E.run_poison_sweep("lenet", u, data, indices=[0, 1023], epsilon=3.0, epochs=12,
                                          baseline=False, run=RunControl(device="cpu", progress=False))
    train0, test0 = arrays["train_acc"][0], arrays["test_acc"][0]
    test_last = arrays["test_acc"][1]
    assert train0 >= 0.95, arrays
    assert test_last - test0 >= 0.2, arrays
    assert arrays["carrier_acc"][0] > arrays["carrier_acc"][1]  # the first carrier is what it follows


def test_cli_poison_and_flip_smoke(tmp_path):
    """The CLI end to end on synthetic data (tiny): artifacts with provenance, checkpoint removed."""
    from nadlib.cli import main

    common = ["--arch", "logreg", "--nads", "fourier", "--profile", "smoke", "--synthetic",
              "--n-train", "100", "--n-test", "50", "--epochs", "1", "--device", "cpu"]
    out = tmp_path / "poison.npz"
    assert main(["poison", *common, "--indices", "0", "1023", "--out", str(out)]) == 0
    arrays, meta = nadlib.load_artifact(out)
    assert arrays["test_acc"].shape == (2,) and meta["profile"] == "smoke"
    assert meta["settings"]["n_train"] == 100 and "synthetic" in meta["data_source"]
    assert not (tmp_path / "poison.ckpt.npz").exists()
    out = tmp_path / "flip.npz"
    assert main(["flip", *common, "--out", str(out)]) == 0
    arrays, meta = nadlib.load_artifact(out)
    assert list(arrays["variants"]) == ["original", "flipped"] and meta["wall_time"] > 0


# ---------------------------------------------------------------------------------------------- sweep runner
# run_poison_sweep with training replaced by a hand-made "carrier reader" (below): every accuracy it reports
# for a poisoned run then has an exact value that follows from the definitions, not from the code.

#: The documented CIFAR-10 carrier table (poison_assignment's docstring): class -> (NAD offset, channel, sign).
CARRIER_TABLE = [(0, 0, +1), (0, 0, -1), (0, 1, +1), (0, 1, -1), (0, 2, +1), (0, 2, -1),
                 (1, 0, +1), (1, 0, -1), (1, 1, +1), (1, 1, -1)]


def _zero_sum_basis(k: int = 8, seed: int = 0) -> torch.Tensor:
    """``k`` orthonormal directions whose row 0 is the constant image, so every other row sums to 0: the
    carriers on rows >= 1 survive the per-channel standardisation (x - m_c) / s_c with only their scale changed."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(1024, k, generator=g, dtype=torch.float64)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    return q.T.float()


class _CarrierReader(torch.nn.Module):
    """Scores class k by sign_k * <x[channel_k], u[index + offset_k]> (CARRIER_TABLE); records its predictions.
    On an image poisoned for class k the own score is +epsilon / s_c, the partner's -epsilon / s_c, all others 0."""

    def __init__(self, u, index):
        super().__init__()
        self.rows = torch.stack([u[index + off] * sign for off, _, sign in CARRIER_TABLE])  # 10 x 1024
        self.channels = [c for _, c, _ in CARRIER_TABLE]
        self.predictions = []

    def forward(self, x):
        scores = torch.stack([x[:, c].flatten(1) @ self.rows[k] for k, c in enumerate(self.channels)], dim=1)
        self.predictions.append(scores.argmax(1))
        return scores


def _fake_training(monkeypatch, reader, calls):
    def fake_train(model, x_tr, y_tr, x_te, y_te, *, recipe, run, **kw):
        calls.append({"model": model, "x_tr": x_tr, "y_tr": y_tr, "x_te": x_te, **recipe.training(), "seed": run.seed,
                      "progress": run.progress, "device": run.device, **kw})
        return nadlib.TrainResult(epochs=[1, 2], test_acc=[0.25, 0.5], model=reader)
    monkeypatch.setattr(E, "train", fake_train)


def test_poison_sweep_reports_exact_accuracies_of_a_carrier_reader(monkeypatch):
    u, index, eps = _zero_sum_basis(), 5, 0.8
    reader, calls = _CarrierReader(u, index), []
    _fake_training(monkeypatch, reader, calls)
    data = F.tiny_cifar_data()
    arrays, settings = E.run_poison_sweep("logreg", u, data, indices=[index], epsilon=eps, epochs=3,
                                          run=RunControl(seed=7, device="cpu", progress=False))
    # the reader reads the carrier the training set was given: train accuracy 1; poisoned test set (carrier =
    # label) 1; test images carrying the carrier of class (y + 1) mod 10 are all read as that class
    assert arrays["train_acc"].tolist() == [1.0] and arrays["poisoned_test_acc"].tolist() == [1.0]
    assert arrays["carrier_acc"].tolist() == [1.0]
    train_pred, poisoned_pred, carrier_pred = reader.predictions[-3:]
    assert torch.equal(train_pred, data["y_train"]) and torch.equal(poisoned_pred, data["y_test"])
    assert torch.equal(carrier_pred, (data["y_test"] + 1) % 10)
    # the clean test accuracy and the curve are the training run's own
    assert arrays["test_acc"].tolist() == [0.5] and arrays["test_curve"].tolist() == [[0.25, 0.5]]
    assert arrays["clean_test_acc"] == 0.5 and arrays["clean_test_curve"].tolist() == [0.25, 0.5]
    assert arrays["indices"].tolist() == [index] and arrays["indices"].dtype == np.int64
    assert set(arrays) == {"indices", "train_acc", "test_acc", "poisoned_test_acc", "carrier_acc", "wall_time",
                           "test_curve", "clean_train_acc", "clean_test_acc", "clean_wall_time",
                           "clean_test_curve", "assignment"}
    assert np.all(arrays["wall_time"] >= 0) and arrays["clean_wall_time"] >= 0
    # the class table of index 0 as documented: class, NAD, channel, sign
    assert arrays["assignment"].tolist() == [[k, off, c, s] for k, (off, c, s) in enumerate(CARRIER_TABLE)]
    # two runs (clean first, then NAD 5), each trained with the book's CIFAR recipe on one seeded model
    assert len(calls) == 2
    for call in calls:
        assert {k: call[k] for k in ("epochs", "seed", "lr", "momentum", "weight_decay", "batch_size", "clip")} \
            == {"epochs": 3, "seed": 7, "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
                "clip": None}
        assert call["progress"] is False and str(call["device"]) == "cpu"
        fresh = nadlib.seeded_model("logreg", 7, in_channels=3, num_classes=10)
        assert all(torch.equal(a, b) for a, b in zip(call["model"].state_dict().values(),
                                                       fresh.state_dict().values()))
        assert torch.equal(call["y_tr"], data["y_train"])
        # the training images are standardised per channel with their own statistics
        torch.testing.assert_close(call["x_tr"].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(call["x_tr"].std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)
    # the clean run trains on the clean images, the poisoned run on images with the carrier on NAD 5
    clean_tr, poisoned_tr = calls[0]["x_tr"], calls[1]["x_tr"]
    k_own = torch.stack([clean_tr[:, c].flatten(1) @ reader.rows[k] for k, c in enumerate(reader.channels)], 1)
    assert not torch.equal(k_own.argmax(1), data["y_train"])
    coef = poisoned_tr[:, 0].flatten(1) @ u[index]  # class 0 carries +eps, class 1 -eps, the rest 0 (red, NAD 5)
    scale = float(coef[data["y_train"] == 0][0]) / eps
    expected = torch.tensor([{0: eps, 1: -eps}.get(int(k), 0.0) for k in data["y_train"]]) * scale
    torch.testing.assert_close(coef, expected, atol=1e-4, rtol=0)
    assert settings == {"arch": "logreg", "n_train": 40, "n_test": 20, "source": "hand-made", "epochs": 3, "seed": 7,
                        "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128, "clip": None,
                        "epsilon": eps, "indices": [index], "baseline": True, "nads_sha256": settings["nads_sha256"]}
    assert settings["nads_sha256"] == nadlib.results.array_sha256(u.numpy())


def test_poison_sweep_defaults_come_from_the_profile(monkeypatch):
    """indices, epochs, epsilon and the batch size default to the profile's CIFAR settings; no baseline run
    when baseline=False."""
    u = _zero_sum_basis()
    calls = []
    _fake_training(monkeypatch, _CarrierReader(u, 0), calls)
    smoke = nadlib.get_profile("smoke")
    profile = dataclasses.replace(smoke, cifar=dataclasses.replace(smoke.cifar, poison_indices=(1, 3), epochs=4,
                                                                   epsilon=0.3, batch_size=16))
    arrays, settings = E.run_poison_sweep("logreg", u, F.tiny_cifar_data(), baseline=False, profile=profile,
                                          run=RunControl(device="cpu", progress=False))
    assert arrays["indices"].tolist() == [1, 3] and settings["indices"] == [1, 3]
    assert settings["epochs"] == 4 and settings["epsilon"] == 0.3
    assert settings["batch_size"] == 16 and settings["baseline"] is False
    assert len(calls) == 2 and all(c["epochs"] == 4 and c["batch_size"] == 16 for c in calls)
    assert not any(k.startswith("clean") for k in arrays)
    assert arrays["test_curve"].shape == (2, 2)


def test_normaliser_uses_the_training_statistics():
    """Channel 0 of the training set holds the values 1 and 3 (mean 2, unbiased std sqrt(2048/2047)), channel 1
    is constant (std clamped to 1e-6); another image is mapped with the same affine map."""
    x = torch.zeros(2, 2, 32, 32)
    x[0, 0], x[1, 0], x[:, 1] = 1.0, 3.0, 5.0
    norm = E.Normaliser(x)
    std0 = (2048 / 2047) ** 0.5
    z = torch.full((1, 2, 32, 32), 4.0)
    out = norm(z)
    torch.testing.assert_close(out[0, 0], torch.full((32, 32), 2 / std0))
    torch.testing.assert_close(out[0, 1], torch.full((32, 32), -1 / 1e-6))


# ---------------------------------------------------------------------------------------------- basis algebra by hand

def _orthonormal_rows(k: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(1024, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q.T.float()


def test_as_nad_basis_accepts_the_documented_containers():
    from types import SimpleNamespace

    u = _orthonormal_rows(3)
    for wrapped in (u, u.view(3, 32, 32), u.view(3, 1, 32, 32), u.double(), u.numpy(),
                    SimpleNamespace(nads=u), SimpleNamespace(directions=u.view(3, 1, 32, 32)),
                    SimpleNamespace(basis=u), {"nads": u}, {"directions": u}, {"basis": u}):
        out = B.as_nad_basis(wrapped)
        assert out.dtype == torch.float32 and torch.equal(out, u)
    # the first of the three names wins
    assert torch.equal(B.as_nad_basis({"basis": u[:1], "nads": u[1:]}), u[1:])


@pytest.mark.parametrize("bad, err, message", [
    ("abc", TypeError, "nads must be a tensor or array of directions, got str"),
    (torch.zeros(2, 1024, dtype=torch.int64), TypeError, "nads must be floating point, got torch.int64"),
    (torch.zeros(2, 2, 32, 32), ValueError, "nads must have shape (k, 1024), (k, 32, 32) or (k, 1, 32, 32), "
                                            "got (2, 2, 32, 32)"),
    (torch.zeros(2, 1000), ValueError, "nads must have shape (k, 1024), (k, 32, 32) or (k, 1, 32, 32), "
                                       "got (2, 1000)"),
    (torch.full((2, 1024), float("nan")), ValueError, "nads contains NaN or infinite values"),
    (1.1 * torch.eye(1024)[:2], ValueError, "the rows of nads must be orthonormal; max |U U^T - I| = 2.10e-01 > 1e-3"),
])
def test_as_nad_basis_messages(bad, err, message):
    with pytest.raises(err) as info:
        B.as_nad_basis(bad)
    assert str(info.value) == message


def test_orthonormality_tolerance_is_1e_3():
    e = torch.eye(1024)[:2]
    B.as_nad_basis(e * (1 + 4.9e-4))  # |U U^T - I| = 9.8e-4: accepted
    with pytest.raises(ValueError, match="1.00e-03 > 1e-3"):
        B.as_nad_basis(e * (1 + 5.0e-4))  # 1.00025e-3: refused


@pytest.mark.parametrize("bad, err, message", [
    (np.zeros((1, 3, 32, 32)), TypeError, "x must be a torch.Tensor of images N x C x 32 x 32, got ndarray"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "x must be floating point (images in [0, 1]), "
                                                              "got torch.uint8"),
    (torch.zeros(3, 32, 32), ValueError, "x must have shape (N, C, 32, 32), got (3, 32, 32)"),
    (torch.zeros(1, 3, 32, 16), ValueError, "x must have shape (N, C, 32, 32), got (1, 3, 32, 16)"),
    (torch.full((1, 1, 32, 32), float("inf")), ValueError, "x contains NaN or infinite values"),
])
def test_check_images_messages(bad, err, message):
    with pytest.raises(err) as info:
        B.check_images(bad)
    assert str(info.value) == message


def test_nad_coefficients_by_hand():
    """Channel c of image n is (n + 1) (c + 1) u_2 - u_0: coefficients (n+1)(c+1) on NAD 2, -1 on NAD 0, 0 on NAD 1."""
    u = _orthonormal_rows(3)
    x = torch.stack([torch.stack([((n + 1) * (c + 1) * u[2] - u[0]).view(32, 32) for c in range(3)])
                     for n in range(2)])
    coef = B.nad_coefficients(x, u)
    expected = torch.tensor([[[-1.0, 0.0, (n + 1) * (c + 1)] for c in range(3)] for n in range(2)])
    assert coef.shape == (2, 3, 3)
    torch.testing.assert_close(coef, expected, atol=1e-5, rtol=0)
    assert B.nad_coefficients(x.double(), u).dtype == torch.float64


def test_poison_assignment_tables_by_hand():
    table = B.poison_assignment(7)
    assert [(r["class"], r["nad"] - 7, r["channel"], r["sign"], r["slot"]) for r in table] == \
        [(k, off, c, s, k // 2) for k, (off, c, s) in enumerate(CARRIER_TABLE)]
    assert [r["name"] for r in table] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                         "ship", "truck"]
    # at the end of the basis the second NAD is taken below the index
    assert {r["nad"] for r in B.poison_assignment(1023)} == {1023, 1022}
    assert {r["nad"] for r in B.poison_assignment(3, n_nads=4)} == {3, 2}
    assert {r["nad"] for r in B.poison_assignment(0, n_nads=2)} == {0, 1}  # the smallest basis that fits
    assert len(B.poison_assignment(0, n_nads=1, num_classes=6)) == 6  # 3 groups: one NAD, three channels
    assert {r["nad"] for r in B.poison_assignment(2, n_nads=4)} == {2, 3}
    # 3 classes: 2 groups, one NAD; 14 classes: 7 groups, three NADs (group 6 on NAD index + 2, red)
    three = B.poison_assignment(0, n_nads=1, num_classes=3)
    assert [(r["name"], r["nad"], r["channel"], r["sign"]) for r in three] == [("0", 0, 0, 1), ("1", 0, 0, -1),
                                                                              ("2", 0, 1, 1)]
    fourteen = B.poison_assignment(5, n_nads=8, num_classes=14)
    assert [(r["nad"], r["channel"]) for r in fourteen[::2]] == [(5, 0), (5, 1), (5, 2), (6, 0), (6, 1), (6, 2),
                                                                  (7, 0)]
    assert [r["name"] for r in fourteen][-1] == "13"


@pytest.mark.parametrize("kwargs, err, message", [
    (dict(index=True), TypeError, "index must be an int, got bool"),
    (dict(index=1.0), TypeError, "index must be an int, got float"),
    (dict(index=-1), ValueError, "index=-1 out of range: NAD indices are 0 .. 1023"),
    (dict(index=4, n_nads=4), ValueError, "index=4 out of range: NAD indices are 0 .. 3"),
    (dict(index=0, n_nads=1), ValueError, "10 classes need at least 2 NADs, the basis has 1"),
    (dict(index=0, n_nads=True), ValueError, "10 classes need at least 2 NADs, the basis has True"),
    (dict(index=0, num_classes=1), ValueError, "num_classes must be an int in [2, 10000], got 1"),
])
def test_poison_assignment_messages(kwargs, err, message):
    with pytest.raises(err) as info:
        B.poison_assignment(**kwargs)
    assert str(info.value) == message


def test_poison_carriers_and_other_classes_by_hand():
    """Carrier of class k = sign_k * epsilon * u[nad_k] in channel c_k, zero in the two other channels; with
    4 classes (2 slots on one NAD, red and green) the blue channel is left as it was."""
    u = _orthonormal_rows(4, seed=3)
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    xp, carriers = B.poison_with_nads(x, y, u, 2, 0.5, num_classes=4)
    assert xp.dtype == torch.float64 and carriers.dtype == torch.float64 and carriers.shape == (4, 3, 32, 32)
    for k, (c, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1)]):
        expected = torch.zeros(3, 32, 32, dtype=torch.float64)
        expected[c] = sign * 0.5 * u[2].double().view(32, 32)
        torch.testing.assert_close(carriers[k], expected, atol=1e-7, rtol=0)
    assert torch.equal(xp[:, 2], x[:, 2])
    coef = B.nad_coefficients(xp, u)
    red = torch.tensor([0.5, -0.5, 0.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    green = torch.tensor([0.0, 0.0, 0.5, -0.5, 0.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(coef[:, 0, 2], red, atol=1e-6, rtol=0)
    torch.testing.assert_close(coef[:, 1, 2], green, atol=1e-6, rtol=0)
    torch.testing.assert_close(coef[:, :2, [0, 1, 3]], B.nad_coefficients(x, u)[:, :2, [0, 1, 3]], atol=1e-6, rtol=0)
    assert torch.equal(B.poison_with_nads(x, y, u, 2, 0.5, num_classes=4)[0], xp)  # x is not modified
    for bad_x, bad_y, message in [
            (x[:, :1], y, "poisoning uses the three colour channels; x has 1 channels"),
            (x, y.float(), "y must be integer labels of shape (6,), got torch.float32 (6,)"),
            (x, y[:5], "y must be integer labels of shape (6,), got torch.int64 (5,)"),
            (x, y - 1, "labels must lie in 0 .. 3"), (x, y + 1, "labels must lie in 0 .. 3")]:
        with pytest.raises(ValueError) as info:
            B.poison_with_nads(bad_x, bad_y, u, 2, 0.5, num_classes=4)
        assert str(info.value) == message


def test_change_basis_with_an_order():
    """order = the identity gives x back; swapping 0 and 1 swaps those two coefficients only."""
    u = _random_basis(2)
    x = torch.rand(3, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(B.change_basis(x, u, order=list(range(1024))), x, atol=1e-5, rtol=0)
    order = [1, 0] + list(range(2, 1024))
    before, after = B.nad_coefficients(x, u), B.nad_coefficients(B.change_basis(x, u, order=order), u)
    torch.testing.assert_close(after, before[..., order], atol=1e-4, rtol=0)
    for bad in ([0] * 1024, list(range(1023)), [[0]] * 1024):
        with pytest.raises(ValueError, match=r"^order must be a permutation of 0..1023$"):
            B.change_basis(x, u, order=bad)
    with pytest.raises(ValueError, match="^the flip needs a full basis of 1024 directions, got 100$"):
        B.flip_basis(u[:100])
    with pytest.raises(ValueError, match="^the rows of U must be orthonormal"):
        B.flip_basis(u * 1.1)
    assert B.change_basis(x.double(), u).dtype == torch.float64


def test_nad_energy_centres_by_default():
    """Images m + 2 u_1 and m - 2 u_1 (m = 5 u_0 + 1 u_2): centred, all energy is on u_1; not centred, the
    mean image adds 25 on u_0 and 1 on u_2 per image: (25, 4, 1) / 30."""
    u = _orthonormal_rows(4, seed=1)
    m = 5 * u[0] + u[2]
    x = torch.stack([m + 2 * u[1], m - 2 * u[1]]).view(2, 1, 32, 32)
    torch.testing.assert_close(B.nad_energy(x, u), torch.tensor([0.0, 1.0, 0.0, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(B.nad_energy(x, u, centre=False), torch.tensor([25.0, 4.0, 1.0, 0.0]) / 30,
                               atol=1e-5, rtol=0)
    e, _ = B.fourier_energy_by_radius(torch.stack([torch.zeros(1, 32, 32), torch.ones(1, 32, 32)]))
    assert float(e[0]) == pytest.approx(1.0, abs=1e-5)  # the two images differ by a constant: frequency 0


def test_fourier_low_to_high_by_hand():
    """Row 0 is the constant image 1/32; each row's dominant DFT frequency has a folded radius that never
    decreases down the rows."""
    basis = B.fourier_low_to_high()
    assert basis.shape == (1024, 1024) and basis.dtype == torch.float32
    torch.testing.assert_close(basis[0], torch.full((1024,), 1 / 32), atol=1e-6, rtol=0)
    spec = torch.fft.fft2(basis.view(1024, 32, 32).double()).abs()
    peak = spec.flatten(1).argmax(1)
    ky, kx = peak // 32, peak % 32
    fold = lambda k: torch.minimum(k, 32 - k).double()  # noqa: E731
    radius = (fold(kx) ** 2 + fold(ky) ** 2).sqrt()
    assert bool((radius[1:] >= radius[:-1] - 1e-9).all()) and float(radius[-1]) == pytest.approx(16 * 2 ** 0.5)


def test_poison_sweep_checks_before_training(monkeypatch):
    """Bad indices, epochs and epsilon are refused before the first (clean) run trains; the seed defaults to 0."""
    u, calls = _zero_sum_basis(), []
    _fake_training(monkeypatch, _CarrierReader(u, 1), calls)
    data = F.tiny_cifar_data()
    for kwargs, err, message in [
            (dict(indices=[8]), ValueError, "index=8 out of range: NAD indices are 0 .. 7"),
            (dict(indices=[1], epochs=0), ValueError, "epochs must be a positive int, got 0"),
            (dict(indices=[1], epsilon=0.0), ValueError, "epsilon must be a positive finite number, got 0.0"),
            (dict(indices=[1], epsilon=2e6), ValueError, "epsilon must be at most 1e+06, got 2000000.0"),
            (dict(indices=[1], epsilon=1e6 + 0.5), ValueError, "epsilon must be at most 1e+06, got 1000000.5")]:
        with pytest.raises(err) as info:
            E.run_poison_sweep("logreg", u, data, run=RunControl(device="cpu", progress=False), **kwargs)
        assert str(info.value) == message
    assert calls == []
    E.run_poison_sweep("logreg", u, data, indices=[1], epsilon=1e6, epochs=1, baseline=False,
                       run=RunControl(device="cpu", progress=False))
    assert [c["seed"] for c in calls] == [0]


def test_load_basis_from_every_kind_of_source(tmp_path):
    u = _orthonormal_rows(3, seed=5)
    assert torch.equal(E.load_basis(u.double()), u) and torch.equal(E.load_basis(u.numpy()), u)
    nads = nadlib.NADs(directions=u.view(3, 1, 32, 32), eigenvalues=torch.ones(3, dtype=torch.float64),
                       n_networks=2, method="gradient")
    assert torch.equal(E.load_basis(nads), u)
    assert torch.equal(E.load_basis(nads.save(tmp_path / "n.npz")), u)
    assert torch.equal(E.load_basis(str(tmp_path / "n.npz")), u)
    for key in ("nads", "directions", "basis"):
        np.savez(tmp_path / f"{key}.npz", **{key: u.numpy(), "other": np.zeros(2)})
        assert torch.equal(E.load_basis(tmp_path / f"{key}.npz"), u)
    fourier = E.load_basis("fourier")
    torch.testing.assert_close(fourier[0], torch.full((1024,), 1 / 32), atol=1e-6, rtol=0)
    missing = tmp_path / "none.npz"
    with pytest.raises(FileNotFoundError) as info:
        E.load_basis(missing)
    assert str(info.value) == (f"no NAD file at {str(missing)!r} (write one with `python -m nadlib nads ...`, "
                               "or pass 'fourier')")
    np.savez(tmp_path / "x.npz", weights=np.zeros(2))
    with pytest.raises(ValueError) as info:
        E.load_basis(tmp_path / "x.npz")
    assert str(info.value) == f"{str(tmp_path / 'x.npz')!r} has no array 'nads', 'directions' or 'basis' (found ['weights'])"


def test_poison_sweep_resumes_from_its_checkpoint_and_times_its_runs(monkeypatch, tmp_path):
    import time

    u, calls = _zero_sum_basis(), []
    _fake_training(monkeypatch, _CarrierReader(u, 1), calls)
    data, ck = F.tiny_cifar_data(), tmp_path / "p.npz"
    kw = dict(indices=[1, 3], epsilon=0.5, epochs=2, run=RunControl(device="cpu", progress=False, checkpoint=ck))
    start = time.perf_counter()
    first, _ = E.run_poison_sweep("logreg", u, data, **kw)
    elapsed = time.perf_counter() - start
    assert len(calls) == 3 and all(0 <= t <= elapsed for t in [*first["wall_time"], first["clean_wall_time"]])
    again, _ = E.run_poison_sweep("logreg", u, data, **kw)
    assert len(calls) == 3 and again["train_acc"].tolist() == first["train_acc"].tolist()
    with pytest.raises(ValueError):
        E.run_poison_sweep("logreg", u, data, **{**kw, "epsilon": 0.6})  # other settings: refused
    # no index at all: only the clean run, and an empty (0 x epochs) curve
    none, _ = E.run_poison_sweep("logreg", u, data, indices=[], epochs=2, run=RunControl(device="cpu", progress=False))
    assert none["test_curve"].shape == (0, 2) and none["indices"].tolist() == []


def test_load_basis_refuses_pickled_arrays(tmp_path):
    np.savez(tmp_path / "p.npz", nads=np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        E.load_basis(tmp_path / "p.npz")


def test_poison_with_nads_bounds_and_exact_float64_carriers():
    u = _orthonormal_rows(2, seed=4)
    x = torch.zeros(2, 3, 32, 32, dtype=torch.float64)
    xp, carriers = B.poison_with_nads(x, torch.tensor([0, 1]), u, 0, 0.1)
    # in float64 the carrier is 0.1 * u to the last bit (a float32 target would be off by ~1e-9)
    torch.testing.assert_close(carriers[0, 0], 0.1 * u[0].double().view(32, 32), atol=1e-15, rtol=0)
    torch.testing.assert_close(xp[1, 0], -0.1 * u[0].double().view(32, 32), atol=1e-10, rtol=0)
    for eps, message in [(1e6 + 0.5, "epsilon must be at most 1e+06, got 1000000.5"),
                         (-1.0, "epsilon must be a positive finite number, got -1.0")]:
        with pytest.raises(ValueError) as info:
            B.poison_with_nads(x, torch.tensor([0, 1]), u, 0, eps)
        assert str(info.value) == message
    B.poison_with_nads(x, torch.tensor([0, 1]), u, 0, 1e6)  # the largest allowed
    with pytest.raises(ValueError, match="^10 classes need at least 2 NADs, the basis has 2.5$"):
        B.poison_assignment(0, n_nads=2.5)


def test_run_flip_defaults_settings_and_resume(monkeypatch, tmp_path):
    """Profile defaults (epochs, batch size), seed 0, the documented settings, per-variant results from the
    training runs, and a checkpoint that skips finished variants and refuses other settings."""
    import time

    from nadlib.results import array_sha256

    u, calls = _random_basis(3), []
    reader = _CarrierReader(_zero_sum_basis(), 1)
    _fake_training(monkeypatch, reader, calls)
    smoke = nadlib.get_profile("smoke")
    profile = dataclasses.replace(smoke, cifar=dataclasses.replace(smoke.cifar, epochs=3, batch_size=24))
    data, ck = F.tiny_cifar_data(), tmp_path / "f.npz"
    start = time.perf_counter()
    arrays, settings = E.run_flip("logreg", u, data, profile=profile,
                                  run=RunControl(device="cpu", progress=False, checkpoint=ck))
    elapsed = time.perf_counter() - start
    assert len(calls) == 2 and [c["epochs"] for c in calls] == [3, 3] and [c["seed"] for c in calls] == [0, 0]
    assert [c["batch_size"] for c in calls] == [24, 24] and all(str(c["device"]) == "cpu" for c in calls)
    assert arrays["variants"].tolist() == ["original", "flipped"] and arrays["test_acc"].tolist() == [0.5, 0.5]
    assert arrays["test_curve"].tolist() == [[0.25, 0.5], [0.25, 0.5]]
    assert all(0 <= t <= elapsed for t in arrays["wall_time"])
    # train accuracy: the reader on the (normalised) training images the run was given
    for k, call in enumerate(calls):
        pred = reader(call["x_tr"]).argmax(1)
        assert arrays["train_acc"][k] == pytest.approx(float((pred == data["y_train"]).float().mean()))
    assert settings == {"arch": "logreg", "n_train": 40, "n_test": 20, "source": "hand-made", "epochs": 3, "seed": 0,
                        "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 24, "clip": None,
                        "basis_sha256": array_sha256(u.numpy())}
    again, _ = E.run_flip("logreg", u, data, profile=profile,
                          run=RunControl(device="cpu", progress=False, checkpoint=ck))
    assert len(calls) == 2 and again["train_acc"].tolist() == arrays["train_acc"].tolist()
    control = RunControl(device="cpu", progress=False, checkpoint=ck)
    for other in (dict(run=control.replace(seed=1)), dict(epochs=2), dict(U=_random_basis(4))):
        kw = dict(U=u, data=data, profile=profile, run=control)
        kw.update(other)
        with pytest.raises(ValueError):
            E.run_flip("logreg", **kw)
    with pytest.raises(ValueError, match="^epochs must be a positive int, got 0$"):
        E.run_flip("logreg", u, data, epochs=0, run=RunControl(device="cpu", progress=False))
