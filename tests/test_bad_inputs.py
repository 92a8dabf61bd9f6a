"""Every bad input gets a clear error before any work starts: one row per case (call, exception, message).

The rows come from probing the public API and the command line from outside (the restructure issue
lists the cases that used to pass silently, fail late or fail deep inside torch/numpy).  A row fails
when the error is not raised, has another type, or does not name what was wrong.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import nadlib
from nadlib import cli, grid, paper_run, results, training
from nadlib import Recipe, RunControl, Stability

V = nadlib.fourier_direction(1, 0)
U8 = torch.eye(1024)[:8]
IMAGES = torch.rand(4, 3, 32, 32)
LABELS = torch.arange(4)


def _nan_images():
    x = IMAGES.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _train(**kw):
    """nadlib.train of one epoch on CPU, with ``kw`` sorted into the Recipe, the RunControl and train's own
    arguments (each object is made inside the caller's ``pytest.raises``)."""
    x, y = nadlib.linear_separable(V, 8, seed=0, device="cpu")
    model = nadlib.seeded_model("logreg", 0)
    recipe = {k: kw.pop(k) for k in list(kw) if k in Recipe.__dataclass_fields__}
    control = {k: kw.pop(k) for k in list(kw) if k in RunControl.__dataclass_fields__}
    return nadlib.train(model, x, y, recipe=Recipe(**{"epochs": 1, **recipe}),
                        run=RunControl(**{"progress": False, "device": "cpu", **control}), **kw)


def _train_xy(x, y, arch="logreg", in_channels=1, num_classes=2):
    return nadlib.train(nadlib.seeded_model(arch, 0, in_channels, num_classes), x, y, recipe=Recipe(epochs=1),
                        run=RunControl(progress=False, device="cpu"))


CASES = [
    # --- cases that used to give a silently wrong result
    ("overlap of non-orthonormal rows", lambda: nadlib.subspace_overlap(4 * torch.eye(4), torch.eye(4)),
     ValueError, "orthonormal"),
    ("overlap with NaN", lambda: nadlib.subspace_overlap(torch.full((2, 4), float("nan")), torch.eye(4)[:2]),
     ValueError, "NaN"),
    ("flip of NaN images", lambda: nadlib.change_basis(_nan_images(), torch.eye(1024)), ValueError, "NaN"),
    ("poisoning NaN images", lambda: nadlib.poison_with_nads(_nan_images(), LABELS, U8, 0, 1.0), ValueError, "NaN"),
    ("NAD coefficients of NaN images", lambda: nadlib.nad_coefficients(_nan_images(), U8), ValueError, "NaN"),
    ("stability_k above the dimension", lambda: nadlib.estimate_nads(
        "logreg", 4, input_shape=(1, 2, 2), stability=Stability(stop_at=0.9, k=10), run=RunControl(progress=False)),
     ValueError, "Stability.k"),
    ("object array in an artifact", lambda: results.save_artifact("/tmp/probe/o.npz", {"a": [[1], [1, 2]]}, {}),
     (TypeError, ValueError), "object"),
    # --- cases that used to fail deep inside torch / numpy
    ("label outside the classes", lambda: _train_xy(torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 5])),
     ValueError, "label 5"),
    ("input channels do not match the model", lambda: _train_xy(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])),
     ValueError, "does not accept"),
    ("input size does not match the model", lambda: _train_xy(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 0, 1]),
                                                              arch="lenet"), ValueError, "does not accept"),
    ("frequency with three numbers", lambda: nadlib.accuracy_grid("logreg", [(1, 0, 3)],
                                                                  run=RunControl(progress=False)),
     ValueError, "pair"),
    ("frequency out of range", lambda: nadlib.accuracy_grid("logreg", [(40, 0)],
                                                            run=RunControl(progress=False)), ValueError, "kx"),
    ("NaN learning rate", lambda: _train(lr=float("nan")), ValueError, "lr"),
    ("infinite learning rate", lambda: _train(lr=float("inf")), ValueError, "lr"),
    ("absurd learning rate", lambda: _train(lr=1e9), ValueError, "lr"),
    ("negative learning rate", lambda: _train(lr=-0.1), ValueError, "lr"),
    ("zero clip", lambda: _train(clip=0.0), ValueError, "clip"),
    ("momentum 1", lambda: _train(momentum=1.0), ValueError, "momentum"),
    ("negative weight decay", lambda: _train(weight_decay=-1e-4), ValueError, "weight_decay"),
    ("zero epochs", lambda: _train(epochs=0), ValueError, "epochs"),
    ("float epochs", lambda: _train(epochs=2.5), ValueError, "epochs"),
    ("bool batch size", lambda: _train(batch_size=True), ValueError, "batch_size"),
    ("negative eval_every", lambda: _train(eval_every=-1), ValueError, "eval_every"),
    ("callback not callable", lambda: _train(on_epoch_end=3), TypeError, "on_epoch_end"),
    ("NaN secant step", lambda: nadlib.estimate_nads("logreg", 4, step=float("nan"), run=RunControl(progress=False)),
     ValueError, "step"),
    ("zero secant step", lambda: nadlib.estimate_nads("logreg", 4, step=0.0,
                                                      run=RunControl(progress=False)), ValueError, "step"),
    # 10**12 samples: a size check that lets it through fails at once on the allocation (10**9 would
    # first shuffle a billion labels, for minutes)
    ("huge n", lambda: nadlib.linear_separable(V, 10 ** 12), ValueError, "exceed"),
    ("huge network count", lambda: nadlib.estimate_nads("logreg", 10 ** 12, run=RunControl(progress=False)),
     ValueError, "n_networks"),
    ("negative seed", lambda: nadlib.linear_separable(V, 10, seed=-1), ValueError, "seed"),
    ("seed above 2**63", lambda: nadlib.linear_separable(V, 10, seed=2 ** 64), ValueError, "seed"),
    ("float seed", lambda: nadlib.linear_separable(V, 10, seed=1.5), TypeError, "seed"),
    ("negative model seed", lambda: nadlib.seeded_model("lenet", -3), ValueError, "seed"),
    ("negative NAD seed", lambda: nadlib.estimate_nads("logreg", 4,
                                                       run=RunControl(seed=-1, progress=False)), ValueError, "seed"),
    ("negative training seed", lambda: _train(seed=-1), ValueError, "seed"),
    # --- D(v), directions, models
    ("zero direction", lambda: nadlib.linear_separable(torch.zeros(32, 32), 10), ValueError, "zero"),
    ("NaN direction", lambda: nadlib.linear_separable(torch.full((32, 32), float("nan")), 10), ValueError, "NaN"),
    ("1-D direction", lambda: nadlib.linear_separable(torch.ones(1024), 10), ValueError, "shape"),
    ("zero samples", lambda: nadlib.linear_separable(V, 0), ValueError, "n must"),
    ("negative sigma", lambda: nadlib.linear_separable(V, 10, sigma=-1.0), ValueError, "sigma"),
    ("NaN epsilon", lambda: nadlib.linear_separable(V, 10, epsilon=float("nan")), ValueError, "epsilon"),
    ("string sigma", lambda: nadlib.linear_separable(V, 10, sigma="3"), TypeError, "sigma"),
    ("frequency too large", lambda: nadlib.fourier_direction(32, 0), ValueError, "kx"),
    ("float frequency", lambda: nadlib.fourier_direction(1.5, 0), TypeError, "kx"),
    ("bool frequency", lambda: nadlib.fourier_direction(True, 0), TypeError, "kx"),
    ("zero grid stride", lambda: nadlib.fourier_grid(32, 0), ValueError, "stride"),
    ("band too wide", lambda: nadlib.fourier_grid(32, 1, band=17), ValueError, "band"),
    ("unknown architecture", lambda: nadlib.get_model("alexnet"), ValueError, "known"),
    ("architecture not a string", lambda: nadlib.get_model(3), TypeError, "str"),
    ("zero input channels", lambda: nadlib.get_model("lenet", in_channels=0), ValueError, "in_channels"),
    ("bool classes", lambda: nadlib.get_model("lenet", num_classes=True), ValueError, "num_classes"),
    ("absurd classes", lambda: nadlib.get_model("logreg", num_classes=10 ** 9), ValueError, "num_classes"),
    ("unknown profile", lambda: nadlib.get_profile("huge"), ValueError, "profile"),
    ("unknown device", lambda: nadlib.get_device("tpu"), ValueError, "device"),
    # --- NADs
    ("one network", lambda: nadlib.estimate_nads("logreg", 1,
                                                 run=RunControl(progress=False)), ValueError, "n_networks"),
    ("keep zero directions", lambda: nadlib.estimate_nads("logreg", 4, k=0,
                                                          run=RunControl(progress=False)), ValueError, "k must"),
    ("unknown method", lambda: nadlib.estimate_nads("logreg", 4, method="adjoint", run=RunControl(progress=False)),
     ValueError, "method"),
    ("stability above 1", lambda: nadlib.estimate_nads("logreg", 4, stability=Stability(stop_at=1.5),
                                                       run=RunControl(progress=False)),
     ValueError, "Stability.stop_at"),
    ("zero batch", lambda: nadlib.estimate_nads("logreg", 4, batch_size=0,
                                                run=RunControl(progress=False)), ValueError, "batch_size"),
    ("NaN eval point", lambda: nadlib.estimate_nads("logreg", 4, eval_point=torch.full((1, 32, 32), float("nan")),
                                                    run=RunControl(progress=False)), ValueError, "eval_point"),
    ("two-number input shape", lambda: nadlib.estimate_nads("logreg", 4, input_shape=(32, 32),
                                                            run=RunControl(progress=False)),
     ValueError, "input_shape"),
    ("model instance instead of a factory", lambda: nadlib.estimate_nads(nn.Linear(4, 1), 4,
                                                                         run=RunControl(progress=False)),
     TypeError, "callable"),
    ("model with two outputs", lambda: nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(1024, 2)),
                                                            4, run=RunControl(progress=False)), ValueError, "ONE"),
    ("overlap with k too large", lambda: nadlib.subspace_overlap(torch.eye(4), torch.eye(4), k=5), ValueError, "k=5"),
    ("overlap in different dimensions", lambda: nadlib.subspace_overlap(torch.eye(4), torch.eye(5)[:4]),
     ValueError, "dimensions"),
    ("trainability index out of range", lambda: nadlib.nad_trainability(U8, [8]), ValueError, "NAD index"),
    ("trainability with no index", lambda: nadlib.nad_trainability(U8, []), ValueError, "empty"),
    # --- NAD bases, poisoning, flip
    ("non-orthonormal basis", lambda: nadlib.as_nad_basis(2 * U8), ValueError, "orthonormal"),
    ("basis of the wrong size", lambda: nadlib.as_nad_basis(torch.eye(16)), ValueError, "shape"),
    ("integer basis", lambda: nadlib.as_nad_basis(torch.eye(1024, dtype=torch.int64)), TypeError, "floating"),
    ("flip with a partial basis", lambda: nadlib.change_basis(IMAGES, U8), ValueError, "full basis"),
    ("flip order not a permutation", lambda: nadlib.change_basis(IMAGES, torch.eye(1024), order=[0] * 1024),
     ValueError, "permutation"),
    ("images of the wrong size", lambda: nadlib.change_basis(torch.rand(2, 3, 16, 16), torch.eye(1024)),
     ValueError, "shape"),
    ("images as a list", lambda: nadlib.nad_coefficients([[0.0]], U8), TypeError, "torch.Tensor"),
    ("poison index beyond the basis", lambda: nadlib.poison_with_nads(IMAGES, LABELS, U8, 8, 1.0),
     ValueError, "out of range"),
    ("poison index a bool", lambda: nadlib.poison_assignment(True), TypeError, "index"),
    ("poison label above the classes", lambda: nadlib.poison_with_nads(IMAGES, torch.tensor([0, 1, 2, 10]), U8, 0, 1.0),
     ValueError, "labels"),
    ("zero carrier", lambda: nadlib.poison_with_nads(IMAGES, LABELS, U8, 0, 0.0), ValueError, "epsilon"),
    ("NaN carrier", lambda: nadlib.poison_with_nads(IMAGES, LABELS, U8, 0, float("nan")), ValueError, "epsilon"),
    ("one class", lambda: nadlib.poison_assignment(0, num_classes=1), ValueError, "num_classes"),
    # --- CIFAR-10 data
    ("balanced subset of zero", lambda: nadlib.balanced_subset(torch.arange(10) % 10, 0), ValueError, "n must"),
    ("subset seed negative", lambda: nadlib.balanced_subset(torch.arange(100) % 10, 10, seed=-1), ValueError, "seed"),
    ("synthetic flag a string", lambda: nadlib.cifar_data(synthetic="yes"), ValueError, "synthetic"),
    ("zero training images", lambda: nadlib.cifar_data(n_train=0, synthetic=True), ValueError, "n_train"),
    ("more test images than CIFAR-10 has", lambda: nadlib.cifar_data(n_test=20_000, synthetic=True),
     ValueError, "n_test"),
    ("tiny synthetic set", lambda: nadlib.synthetic_cifar10(5, 20), ValueError, "n_train"),
    # --- deadlines, chunked NAD statistics, the paper run
    ("NAD deadline a string", lambda: nadlib.estimate_nads("lenet", 4, run=RunControl(progress=False, deadline="soon")),
     ValueError, "deadline"),
    ("grid deadline NaN", lambda: nadlib.accuracy_grid("logreg", [(1, 0)],
                                                       run=RunControl(deadline=float("nan"))), ValueError,
     "deadline"),
    ("NAD chunk empty", lambda: nadlib.nad_statistics("lenet", 5, 5), ValueError, "start < stop"),
    ("merge nothing", lambda: nadlib.NADStatistics.merge([]), ValueError, "non-empty"),
    ("budget in days", lambda: paper_run.parse_budget("1d"), ValueError, "unit s, m or h"),
    ("unknown paper step", lambda: paper_run.parse_only("nads,plots"), ValueError, "--only takes"),
    ("paper engine", lambda: paper_run.run_paper("smoke", engine="dask", out_dir="/nonexistent"), ValueError,
     "engine"),
    # --- tables
    ("table row too short", lambda: nadlib.markdown_table(["a", "b"], [[1]]), ValueError, "row 0"),
]


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


# --- damaged files: one message that names the file and what to do

def _artifact(tmp_path, name="a.npz"):
    return results.save_artifact(tmp_path / name, {"x": np.arange(10.0), "n": np.array(3)}, {"k": 1})


def _rewrite(path, arrays: dict, meta_text: str):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, __meta__=np.array(meta_text))


def test_truncated_artifact(tmp_path):
    path = _artifact(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged or was edited.*delete it"):
        results.load_artifact(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "b.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="b.npz.*not a readable .npz"):
        results.load_artifact(path)


def test_bad_meta(tmp_path):
    path = tmp_path / "c.npz"
    _rewrite(path, {"x": np.arange(3)}, "{not json")
    with pytest.raises(ValueError, match="c.npz.*not valid JSON"):
        results.load_artifact(path)


def test_bit_flip_is_detected(tmp_path):
    path = _artifact(tmp_path)
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = str(arrays.pop("__meta__"))
    arrays["x"] = arrays["x"].copy()
    arrays["x"][3] += 1e-9  # one changed value, checksum kept
    _rewrite(path, arrays, meta)
    with pytest.raises(ValueError, match="checksum mismatch in x"):
        results.load_artifact(path)


def test_an_edit_of_the_metadata_is_detected(tmp_path):
    """Issue 20: __meta__ was not covered (n_networks 4 -> 10000 loaded silently)."""
    path = results.save_artifact(tmp_path / "m.npz", {"x": np.arange(4.0)}, {"n_networks": 4, "method": "secant"})
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    for edit in ({"n_networks": 10000}, {"method": "gradient"}, {"meta_sha256": "0" * 64}):
        _rewrite(path, arrays, json.dumps({**meta, **edit}))
        with pytest.raises(ValueError, match="m.npz.*damaged or was edited .*metadata does not match its checksum"):
            results.load_artifact(path)


def test_an_artifact_without_checksums_is_refused_unless_trusted(tmp_path):
    path = results.save_artifact(tmp_path / "s.npz", {"x": np.arange(4.0)}, {"k": 1})
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    for removed, what in (("sha256", "array"), ("meta_sha256", "metadata")):
        _rewrite(path, arrays, json.dumps({k: v for k, v in meta.items() if k != removed}))
        with pytest.raises(ValueError, match=f"has no {what} checksums .*unchecked=True"):
            results.load_artifact(path)
    _rewrite(path, {"x": np.arange(4.0) + 1}, json.dumps({"k": 2}))  # no checksums at all: on trust only
    got, got_meta = results.load_artifact(path, unchecked=True)
    assert got["x"].tolist() == [1.0, 2.0, 3.0, 4.0] and got_meta == {"k": 2}
    _rewrite(path, {"x": np.arange(4.0) + 1}, json.dumps({k: v for k, v in meta.items() if k != "meta_sha256"}))
    with pytest.raises(ValueError, match="checksum mismatch in x"):  # the checksums it has are still checked
        results.load_artifact(path, unchecked=True)


def test_a_renamed_npy_and_a_damaged_stream_get_the_one_message(tmp_path):
    npy = tmp_path / "a.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.arange(3))
    with pytest.raises(ValueError, match="a.npz.*damaged or was edited .*single .npy array"):
        results.load_artifact(npy)
    path = results.save_artifact(tmp_path / "z.npz", {"x": np.zeros(20000)}, {})
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte inside the compressed stream
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="z.npz.*damaged or was edited"):
        results.load_artifact(path)


def test_a_damaged_cifar10_npz_or_basis_file_gets_the_one_message(tmp_path, monkeypatch):
    """Issue 20: a truncated CIFAR-10 .npz gave a raw BadZipFile (load_cifar10, poison --npz, the environment
    variable), a .npy renamed .npz a context-manager TypeError."""
    path = tmp_path / "cifar.npz"
    np.savez(path, x_train=np.zeros((10, 32, 32, 3), np.uint8), y_train=np.zeros(10, np.int64))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cifar.npz.*damaged or was edited .*BadZipFile"):
        nadlib.load_cifar10(npz=path)
    monkeypatch.setenv("NADLIB_CIFAR10_NPZ", str(path))
    with pytest.raises(ValueError, match="cifar.npz.*damaged or was edited"):
        nadlib.load_cifar10()
    basis = tmp_path / "basis.npz"
    with open(basis, "wb") as fh:
        np.save(fh, np.eye(4))
    from nadlib.experiments import load_basis
    with pytest.raises(ValueError, match="basis.npz.*single .npy array"):
        load_basis(basis)


def TINY():
    """A small scalar network on 1 x 4 x 4 inputs (a factory, as estimate_nads wants)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))


def test_checkpoint_edited_to_claim_more_networks(tmp_path):
    """The issue's case: a NAD checkpoint edited to claim more networks than its statistics hold."""
    ckpt = tmp_path / "n.ckpt.npz"
    nadlib.estimate_nads(TINY, 6, input_shape=(1, 4, 4), run=RunControl(progress=False, checkpoint=ckpt))
    with np.load(ckpt, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    arrays["next_index"] = np.array(100)
    meta.pop("sha256")  # an edit that also removes the checksums: refused, it could hide anything
    _rewrite(ckpt, arrays, json.dumps(meta))
    with pytest.raises(ValueError, match="has no array checksums .* unchecked=True"):
        nadlib.estimate_nads(TINY, 200, input_shape=(1, 4, 4), run=RunControl(progress=False, checkpoint=ckpt))
    # the same edit re-checksummed (valid checksums): caught by the consistency of the statistics
    results.save_artifact(ckpt, arrays, {"settings": meta["settings"]})
    with pytest.raises(ValueError, match="claims 100 networks"):
        nadlib.estimate_nads(TINY, 200, input_shape=(1, 4, 4), run=RunControl(progress=False, checkpoint=ckpt))


def test_resume_with_fewer_networks_than_the_checkpoint(tmp_path):
    ckpt = tmp_path / "m.ckpt.npz"
    nadlib.estimate_nads(TINY, 10, input_shape=(1, 4, 4), run=RunControl(progress=False, checkpoint=ckpt))
    with pytest.raises(ValueError, match="already holds 10 networks"):
        nadlib.estimate_nads(TINY, 6, input_shape=(1, 4, 4), run=RunControl(progress=False, checkpoint=ckpt))


def test_edited_grid_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "g.ckpt.npz"
    kw = dict(recipe=Recipe(n_train=64, n_test=32, epochs=1), workers=1,
              run=RunControl(progress=False, device="cpu", checkpoint=ckpt))
    nadlib.accuracy_grid("logreg", [(1, 0)], **kw)
    with np.load(ckpt, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = str(arrays.pop("__meta__"))
    arrays["accuracy"] = np.array([0.99])
    _rewrite(ckpt, arrays, meta)
    with pytest.raises(ValueError, match="checksum mismatch in accuracy"):
        nadlib.accuracy_grid("logreg", [(1, 0), (2, 0)], **kw)


def test_load_nads_refuses_flat_directions(tmp_path):
    path = results.save_artifact(tmp_path / "flat.npz", {"directions": np.ones(1024, np.float32),
                                                         "eigenvalues": np.ones(1024)}, {})
    with pytest.raises(ValueError, match="k x C x H x W"):
        nadlib.load_nads(path)


# --- the command line: one line naming the command, exit code 2, nothing computed

CLI_CASES = [
    ("grid stride 0", ["grid", "--arch", "logreg", "--stride", "0", "--out", "{o}"], "--stride"),
    ("grid output without .npz", ["grid", "--arch", "logreg", "--out", "{d}/x.txt"], ".npz"),
    ("grid three-number frequency", ["grid", "--arch", "logreg", "--freqs", "1,2,3", "--out", "{o}"], "--freqs"),
    ("grid epsilon 0", ["grid", "--arch", "logreg", "--epsilon", "0", "--out", "{o}"], "--epsilon"),
    ("grid epsilon nan", ["grid", "--arch", "logreg", "--epsilon", "nan", "--out", "{o}"], "--epsilon"),
    ("grid negative seed", ["grid", "--arch", "logreg", "--seed", "-2", "--out", "{o}"], "--seed"),
    ("grid unknown profile", ["grid", "--arch", "logreg", "--profile", "huge", "--out", "{o}"], "--profile"),
    ("nads keep 0", ["nads", "--arch", "lenet", "--keep", "0", "--out", "{o}"], "--keep"),
    ("nads keep -1", ["nads", "--arch", "lenet", "--keep", "-1", "--out", "{o}"], "--keep"),
    ("nads keep above the dimension", ["nads", "--arch", "logreg", "--size", "4", "--keep", "17", "--networks", "4",
                                       "--out", "{o}"], "nadlib nads: error: --keep 17"),
    ("nads one network", ["nads", "--arch", "logreg", "--networks", "1", "--out", "{o}"],
     "nadlib nads: error: n_networks"),
    ("nads stability 2", ["nads", "--arch", "logreg", "--stop-at-stability", "2", "--out", "{o}"],
     "--stop-at-stability"),
    ("trainability indices a,b", ["trainability", "--nads", "{d}/n.npz", "--indices", "a,b", "--out", "{o}"],
     "--indices"),
    ("trainability missing NAD file", ["trainability", "--nads", "{d}/none.npz", "--out", "{o}"],
     "nadlib trainability: error: no artifact"),
    ("poison epsilon 0", ["poison", "--arch", "lenet", "--nads", "fourier", "--epsilon", "0", "--out", "{o}"],
     "--epsilon"),
    ("poison missing NAD file", ["poison", "--arch", "lenet", "--nads", "{d}/none.npz", "--synthetic",
                                 "--out", "{o}"], "nadlib poison: error: no NAD file"),
    ("poison model that cannot be imported", ["poison", "--arch", "no_such_module:Net", "--nads", "fourier",
                                              "--synthetic", "--out", "{o}"], "nadlib poison: error: cannot import"),
    ("flip model without that class", ["flip", "--arch", "nadlib.models:NoSuchNet", "--nads", "fourier",
                                       "--synthetic", "--out", "{o}"], "nadlib flip: error: 'nadlib.models' has no"),
    ("collapse model that cannot be imported", ["collapse", "--arch", "no_such_module:Net", "--synthetic",
                                                "--out", "{o}"], "nadlib collapse: error: cannot import"),
    ("collapse D(v) model of an unknown name", ["collapse", "--arch", "lenet5x", "--freq", "1", "0", "--out", "{o}"],
     "nadlib collapse: error:"),
    ("flip output without .npz", ["flip", "--arch", "lenet", "--nads", "fourier", "--out", "{d}/f"], ".npz"),
    ("flip max epochs alone", ["flip", "--arch", "lenet", "--nads", "fourier", "--max-epochs", "8",
                               "--out", "{o}"], "nadlib flip: error: --max-epochs needs --until-train-acc"),
    ("flip target above 1", ["flip", "--arch", "lenet", "--nads", "fourier", "--until-train-acc", "1.5",
                             "--out", "{o}"], "--until-train-acc"),
    ("pooling unknown setting", ["pooling", "--settings", "lenet,bogus", "--out", "{o}"], "--settings"),
    ("pooling scale 0", ["pooling", "--scale", "0", "--out", "{o}"], "--scale"),
    ("pooling bad freqs", ["pooling", "--freqs", "1;2", "--out", "{o}"], "--freqs"),
    ("pooling frequency out of range", ["pooling", "--freqs", "40,0", "--out", "{o}"], "nadlib pooling: error:"),
    ("paper budget 12x", ["paper", "--budget", "12x", "--out-dir", "{d}"], "--budget"),
    ("paper budget 0", ["paper", "--budget", "0m", "--out-dir", "{d}"], "--budget"),
    ("paper unknown step", ["paper", "--only", "nads,plots", "--out-dir", "{d}"], "--only"),
    ("paper device type without dry run", ["paper", "--device-type", "cuda", "--out-dir", "{d}"],
     "nadlib paper: error: --device-type only changes"),
    ("paper address without ray", ["paper", "--address", "auto", "--out-dir", "{d}"],
     "nadlib paper: error: --address is for the Ray engine"),
    ("paper out-dir that is a file", ["paper", "--profile", "smoke", "--out-dir", "{d}/bad.npy"],
     "nadlib paper: error: argument --out-dir: the output folder"),
    ("paper out-dir under a file", ["paper", "--out-dir", "{d}/bad.npy/results"], "is a file, not a folder"),
    ("card out-dir that is a file", ["card", "lenet", "--out-dir", "{d}/bad.npy"], "is a file, not a folder"),
    ("paper trainability without NADs", ["paper", "--only", "trainability", "--out-dir", "{d}"],
     "nadlib paper: error: trainability for lenet needs"),
    ("recipe-sweep unknown recipe key", ["recipe-sweep", "--settings", "momentum=0.9", "--out", "{o}"],
     "--settings"),
    ("recipe-sweep setting not a number", ["recipe-sweep", "--settings", "epsilon=big", "--out", "{o}"],
     "--settings"),
    ("recipe-sweep fractional n_train", ["recipe-sweep", "--settings", "n_train=2.5", "--out", "{o}"], "n_train"),
    ("recipe-sweep setting twice", ["recipe-sweep", "--settings", "base;epsilon=1", "--out", "{o}"], "twice"),
    ("recipe-sweep NAD index beyond the bundled 64", ["recipe-sweep", "--indices", "0,100", "--out", "{o}"],
     "nadlib recipe-sweep: error: NAD index 100 out of range"),
    ("recipe-sweep missing NAD file", ["recipe-sweep", "--nads", "{d}/none.npy", "--out", "{o}"],
     "nadlib recipe-sweep: error: no NAD file"),
    ("recipe-sweep NAD file of the wrong shape", ["recipe-sweep", "--nads", "{d}/bad.npy", "--out", "{o}"],
     "rows of 1024"),
]


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_user_error_is_one_line(argv, fragment, tmp_path, capsys, monkeypatch):
    def no_work(*a, **k):
        raise AssertionError("work started despite a bad argument")

    for module, name in ((training, "train"), (grid, "profile_grid")):
        monkeypatch.setattr(module, name, no_work)
    monkeypatch.setattr(cli, "profile_grid", no_work)
    monkeypatch.setattr(cli, "run_poison_sweep", no_work)
    monkeypatch.setattr(cli, "cifar_data", no_work)  # a bad --arch is reported before the data are loaded
    monkeypatch.setattr(cli, "separable_data", no_work)
    np.save(tmp_path / "bad.npy", np.zeros((3, 100), np.float32))  # NADs must be rows of 32 x 32 numbers
    argv = [a.format(o=tmp_path / "out.npz", d=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.npz")), "a bad argument must not leave an artifact or checkpoint"


def _tiny_nads():
    return nadlib.estimate_nads(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1)), 4,
                                method="gradient", input_shape=(1, 2, 2), run=RunControl(progress=False))


# issue 20: results that were silent or came late, now refused before any work
SILENT = [
    ("evaluate of NaN images", lambda: nadlib.evaluate(nadlib.seeded_model("logreg", 0), _nan_images()[:4],
                                                       torch.tensor([0, 1, 0, 1])), ValueError, "NaN"),
    ("evaluate of no samples", lambda: nadlib.evaluate(nadlib.seeded_model("logreg", 0), torch.zeros(0, 1, 32, 32),
                                                        torch.zeros(0, dtype=torch.long)), ValueError, "at least one"),
    ("evaluate with more labels than images", lambda: nadlib.evaluate(
        nadlib.seeded_model("logreg", 0), torch.zeros(2, 1, 32, 32), torch.tensor([0, 1, 0, 1])),
     ValueError, "2 samples but y has 4 labels"),
    ("save no directions", lambda: _tiny_nads().save("/tmp/never.npz", k=0), ValueError, "k must be an int in"),
    ("save k=-1", lambda: _tiny_nads().save("/tmp/never.npz", k=-1), ValueError, "k must be an int in"),
    ("map with an accuracy of 7.5", lambda: nadlib.book.plotting.plot_accuracy_map({(1, 0): 7.5, (2, 0): 0.6}),
     ValueError, r"accuracies must lie in \[0, 1\].*7\.5"),
    ("map with a negative accuracy", lambda: nadlib.book.plotting.plot_accuracy_map({(1, 0): -3.0}),
     ValueError, r"accuracies must lie in \[0, 1\]"),
    ("map with a frequency outside the grid", lambda: nadlib.book.plotting.plot_accuracy_map({(40, 0): 0.9}),
     ValueError, r"0 <= kx, ky < 32 .*\(40, 0\)"),
    ("fill_symmetric outside the grid", lambda: nadlib.fill_symmetric({(1, -2): 1.0}, 8), ValueError, r"< 8"),
    # energies of images that carry none: 0/0
    ("NAD energy of identical images", lambda: nadlib.nad_energy(torch.ones(4, 1, 32, 32), U8),
     ValueError, "carry no energy .* all the same"),
    ("Fourier energy of zero images", lambda: nadlib.fourier_energy_by_radius(torch.zeros(3, 1, 32, 32), centre=False),
     ValueError, "carry no energy .* are 0"),
    # degenerate statistics: an error instead of a plausible number
    ("affinity of a constant input and a varying output", lambda: nadlib.affinity_score(
        torch.zeros(50, 3), torch.randn(50, 3, generator=torch.Generator().manual_seed(0))),
     ValueError, "x is constant but y varies"),
    ("signature of identical inputs", lambda: nadlib.nonlinearity_signature(
        nadlib.get_model("lenet", 1, 10), torch.zeros(200, 1, 32, 32), run=RunControl(progress=False)),
     ValueError, "all 200 inputs are the same"),
    # inputs a model cannot take, named before the first forward; sizes refused before allocation
    ("signature of uint8 images", lambda: nadlib.nonlinearity_signature(
        nadlib.get_model("lenet", 3, 10), torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8),
        run=RunControl(progress=False)),
     ValueError, "inputs are torch.uint8 but the model's parameters are torch.float32"),
    ("signature of 28x28 images", lambda: nadlib.nonlinearity_signature(
        nadlib.get_model("lenet", 3, 10), torch.rand(200, 3, 28, 28), run=RunControl(progress=False)),
     ValueError, r"does not accept inputs of shape \(N, 3, 28, 28\)"),
    ("signature of 1-channel images into a 3-channel model", lambda: nadlib.nonlinearity_signature(
        nadlib.get_model("lenet", 3, 10), torch.rand(200, 1, 32, 32), run=RunControl(progress=False)),
     ValueError, r"does not accept inputs of shape \(N, 1, 32, 32\)"),
    ("affinity of 10 million samples", lambda: nadlib.affinity_score(torch.randn(10**7, 2), torch.randn(10**7, 2)),
     ValueError, r"10,000,000 x 10,000,000 optimal-transport cost matrix .* GB"),
    ("a signature on 10 million samples", lambda: nadlib.nonlinearity_signature(
        nadlib.get_model("lenet", 1, 10), torch.zeros(1, 1, 32, 32).expand(10**7, 1, 32, 32), n_samples=10**7,
        run=RunControl(progress=False)), ValueError, r"cost matrix of n_samples=10,000,000 would need"),
    ("NADs of a 3 x 512 x 512 input", lambda: nadlib.estimate_nads(
        lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1)), 2, input_shape=(3, 512, 512),
        run=RunControl(progress=False)), ValueError, r"786,432 x 786,432 gradient statistics .* GB"),
    ("a billion synthetic images", lambda: nadlib.synthetic_cifar10(10**9), ValueError,
     r"n_train=1,000,000,000.* GB, more than this machine"),
    # figures of NaN, negative variances or missing directions
    ("NADs figure of NaN directions", lambda: nadlib.book.plotting.plot_nads(np.full((8, 32, 32), np.nan)),
     ValueError, "NaN or infinite values in the NADs"),
    ("NADs figure of an index past the last", lambda: nadlib.book.plotting.plot_nads(U8, indices=[5000]),
     ValueError, r"NAD indices in 0\.\.7"),
    ("spectrum with NaN", lambda: nadlib.book.plotting.plot_eigenvalues({"bad": [np.nan, 1.0, 2.0]}),
     ValueError, "NaN or infinite values in the eigenvalues of 'bad'"),
    ("spectrum with a negative variance", lambda: nadlib.book.plotting.plot_eigenvalues({"bad": [3.0, -1.0, 2.0]}),
     ValueError, "must be >= 0"),
    ("poisoned examples with NaN", lambda: nadlib.book.plotting.plot_poisoned_examples(
        _nan_images(), IMAGES, LABELS), ValueError, "NaN or infinite values in x"),
    ("energy figure with NaN", lambda: nadlib.book.plotting.plot_energy_nads_vs_fourier(
        [np.nan, 0.5], [0.5, 0.5]), ValueError, "NaN or infinite values in nad_energy"),
]


def test_degenerate_statistics_are_nan_with_a_warning_never_a_plausible_number():
    """Constant inputs and outputs of a layer, and classes whose means coincide, have no affinity score and no
    nearest class mean: ``nan`` and a RuntimeWarning (it used to be 1.0 and a tie-broken NC4 = 1.0).  A constant
    output of varying inputs is a constant, hence affine, function: 1."""
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(nadlib.affinity_score(torch.ones(50, 3), torch.ones(50, 3)))
    assert nadlib.affinity_score(torch.randn(50, 3, generator=torch.Generator().manual_seed(0)),
                                 torch.ones(50, 3)) == 1.0
    from nadlib.collapse import collapse_metrics
    labels = torch.arange(20) % 2
    with pytest.warns(RuntimeWarning, match="class means coincide"):
        m = collapse_metrics(torch.ones(20, 5), labels, torch.randn(2, 5))
    assert np.isnan([m.nc1, m.nc2_equinorm, m.nc2_equiangular, m.nc3, m.nc4]).all()
    # two of three class means coincide: NC1-NC3 are defined, NC4 is not
    h = torch.cat([torch.zeros(10, 2), torch.ones(5, 2)])
    y = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    with pytest.warns(RuntimeWarning, match="class means coincide"):
        m = collapse_metrics(h, y, torch.randn(3, 2))
    assert np.isnan(m.nc4) and np.isfinite(m.nc1)


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in SILENT], ids=[c[0] for c in SILENT])
def test_formerly_silent_input_is_refused(call, error, fragment):
    import nadlib.book.plotting  # noqa: F401  (the plotting rows)
    with pytest.raises(error, match=fragment):
        call()


def test_a_nad_artifact_is_not_read_as_a_grid(tmp_path):
    path = _tiny_nads().save(tmp_path / "n.npz")
    with pytest.raises(ValueError, match=r"is not a Fourier grid \(it has \[.*'directions'"):
        nadlib.GridResult.from_artifact(path)
    bad = results.save_artifact(tmp_path / "g.npz", {"freqs": np.array([[1, 0]]), "accuracy": np.array([7.5])}, {})
    with pytest.raises(ValueError, match=r"accuracies outside \[0, 1\]"):
        nadlib.GridResult.from_artifact(bad)
