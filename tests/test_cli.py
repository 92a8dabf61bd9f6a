"""The command line end to end at tiny sizes: what each sub-command writes, with which provenance."""

from __future__ import annotations

import hashlib

import pytest
import torch

import nadlib
from nadlib import cli
from nadlib.results import load_artifact
from nadlib import Recipe, RunControl


def test_grid_with_explicit_frequencies(tmp_path):
    out = tmp_path / "g.npz"
    assert cli.main(["grid", "--arch", "logreg", "--freqs", "1,0;0,2", "--n-train", "64", "--n-test", "32",
                     "--epochs", "1", "--workers", "1", "--device", "cpu", "--out", str(out)]) == 0
    arrays, meta = load_artifact(out)
    assert sorted(map(tuple, arrays["freqs"].tolist())) == [(0, 2), (1, 0)]
    assert meta["n_train"] == 64 and meta["epochs"] == 1 and meta["resumed"] is False
    assert set(meta["sha256"]) == {"freqs", "accuracy", "map"}


def test_grid_band_is_the_low_frequency_block(tmp_path):
    out = tmp_path / "b.npz"
    assert cli.main(["grid", "--arch", "logreg", "--stride", "1", "--band", "1", "--n-train", "64", "--n-test",
                     "32", "--epochs", "1", "--workers", "1", "--device", "cpu", "--out", str(out)]) == 0
    arrays, meta = load_artifact(out)
    # signed frequencies in [-1, 0] along both axes, one member per symmetric pair
    assert sorted(map(tuple, arrays["freqs"].tolist())) == sorted(nadlib.fourier_grid(32, 1, band=1))
    assert len(arrays["freqs"]) == 4 and meta["band"] == 1 and meta["stride"] == 1


def test_trainability_command_records_the_nad_file(tmp_path):
    nads_file = tmp_path / "n.npz"
    nadlib.estimate_nads("logreg", 4, method="gradient", k=4, run=RunControl(progress=False)).save(nads_file)
    out = tmp_path / "t.npz"
    assert cli.main(["trainability", "--nads", str(nads_file), "--indices", "0,3", "--n-train", "64",
                     "--n-test", "32", "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 0
    arrays, meta = load_artifact(out)
    assert arrays["indices"].tolist() == [0, 3] and arrays["test_acc"].shape == (2,)
    assert meta["nads_file_sha256"] == hashlib.sha256(nads_file.read_bytes()).hexdigest()
    assert (meta["n_train"], meta["n_test"], meta["epochs"]) == (64, 32, 1)
    assert meta["arch"] == "logreg"  # the architecture the NADs were estimated for, not a default LeNet
    assert not (tmp_path / "t.ckpt.npz").exists()


def test_trainability_of_a_user_models_nads_asks_for_the_network(tmp_path, capsys):
    """NADs of a model nadlib does not know: `trainability` does not silently train LeNet on them."""
    nads_file = tmp_path / "n.npz"
    nadlib.estimate_nads(lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 1)), 4,
                         method="gradient", k=4, run=RunControl(progress=False)).save(nads_file)
    out = tmp_path / "t.npz"
    assert cli.main(["trainability", "--nads", str(nads_file), "--indices", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "which is not a registered architecture: name the network to train with --arch" in err
    assert not out.exists()


def test_training_divergence_is_reported():
    x = torch.randn(64, 1, 32, 32) * 1e30
    y = torch.arange(64) % 2
    with pytest.raises(FloatingPointError, match="diverged"):
        nadlib.train(nadlib.seeded_model("logreg", 0), x, y,
                     recipe=Recipe(lr=900.0, clip=None, epochs=1, batch_size=16),
                     run=RunControl(progress=False, device="cpu"))


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("grid", "nads", "trainability", "poison", "flip", "collapse"):
        assert command in text
