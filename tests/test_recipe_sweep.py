"""The recipe sweep (nadlib.recipe_sweep, `python -m nadlib recipe-sweep`) at tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nadlib
from nadlib import cli, recipe_sweep as rs
from nadlib.paper import paper_fourier_accuracy, published_nads, published_trainability
from nadlib.results import load_artifact
from nadlib import RunControl


def test_parse_settings_fills_the_paper_recipe():
    s = rs.parse_settings("base; epsilon=2 ;n_train=200,epochs=3")
    assert s[0] == rs.PAPER_RECIPE
    assert s[1] == {**rs.PAPER_RECIPE, "epsilon": 2.0}
    assert s[2] == {**rs.PAPER_RECIPE, "n_train": 200, "epochs": 3}
    assert isinstance(s[2]["n_train"], int) and isinstance(s[2]["epochs"], int)
    assert rs.setting_label(s[0]) == "paper recipe" and rs.setting_label(s[2]) == "n_train=200, epochs=3"
    assert rs.parse_settings([{}, {"lr": 0.1}])[1]["lr"] == 0.1


@pytest.mark.parametrize("spec, fragment", [
    ("momentum=0.9", "unknown recipe parameter"), ("epsilon=", "key=value"), ("epsilon=big", "number"),
    ("epsilon=0", "epsilon"), ("n_train=2.5", "n_train"), ("epochs=-1", "epochs"), ("lr=nan", "lr"),
    ("base;epsilon=1", "twice"), (" ; ", "no settings"),
])
def test_parse_settings_refuses(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        rs.parse_settings(spec)


def test_probes_are_the_published_directions_and_targets():
    nads = published_nads("lenet")
    probes = rs.sweep_probes(nads, [0, 5], [(2, 0), (3, 1)])
    assert probes["names"].tolist() == ["NAD 0", "NAD 5", "Fourier (2, 0)", "Fourier (3, 1)"]
    np.testing.assert_allclose(probes["directions"][1], nads.directions[5].numpy(), atol=1e-6)
    np.testing.assert_allclose(probes["directions"][2, 0], nadlib.fourier_direction(2, 0).numpy())
    pub = published_trainability("lenet")["test_acc"]
    assert probes["published"][:2].tolist() == [pub[0], pub[5]]
    assert probes["published"][2] == pytest.approx(paper_fourier_accuracy("lenet")[(2, 0)])
    assert np.isnan(probes["published"][3])  # odd frequencies were not published
    # flat rows (the authors' .npy layout) work the same
    flat = rs.sweep_probes(nads.directions.reshape(64, 1024), [5], [])
    np.testing.assert_allclose(flat["directions"][0], probes["directions"][1])
    with pytest.raises(ValueError, match="NAD index 64 out of range"):
        rs.sweep_probes(nads, [64])
    with pytest.raises(ValueError, match="kx"):
        rs.sweep_probes(nads, [0], [(40, 0)])


def _tiny_probes():
    # logistic regression on a Fourier direction: learnable with a large margin, chance with a tiny one
    return {"names": np.array(["Fourier (1, 0)"]), "directions": nadlib.fourier_direction(1, 0)[None, None].numpy(),
            "published": np.array([0.8])}


TINY = "epsilon=20,n_train=256,epochs=2;epsilon=0.001,n_train=256,epochs=2"


def test_sweep_applies_each_setting_and_resumes(tmp_path, monkeypatch):
    ckpt = tmp_path / "s.ckpt.npz"
    out = rs.recipe_sweep(_tiny_probes(), TINY, arch="logreg", n_test=256,
                          run=RunControl(device="cpu", progress=False, checkpoint=ckpt))
    acc = out["accuracy"][:, 0]
    assert acc[0] > 0.9 and abs(acc[1] - 0.5) < 0.1, acc  # the margin really changes between settings
    np.testing.assert_allclose(out["distance"], np.abs(acc - 0.8))
    assert out["epsilon"].tolist() == [20.0, 0.001] and out["n_train"].tolist() == [256, 256]
    assert out["labels"].tolist() == ["epsilon=20, n_train=256, epochs=2", "epsilon=0.001, n_train=256, epochs=2"]
    # the same call again reads every run from the checkpoint
    monkeypatch.setattr(rs, "_run_one", lambda job: (_ for _ in ()).throw(AssertionError("ran again")))
    again = rs.recipe_sweep(_tiny_probes(), TINY, arch="logreg", n_test=256,
                            run=RunControl(device="cpu", progress=False, checkpoint=ckpt))
    np.testing.assert_array_equal(again["accuracy"], out["accuracy"])
    with pytest.raises(ValueError, match="other settings"):
        rs.recipe_sweep(_tiny_probes(), "epsilon=5,n_train=256,epochs=2", arch="logreg", n_test=256,
                        run=RunControl(device="cpu", progress=False, checkpoint=ckpt))


def test_sweep_in_worker_processes_gives_the_same_accuracies():
    kw = dict(arch="logreg", n_test=128, run=RunControl(device="cpu", progress=False))
    settings = "n_train=128,epochs=1,epsilon=5;n_train=128,epochs=1,epsilon=2"
    serial = rs.recipe_sweep(_tiny_probes(), settings, **kw)
    pooled = rs.recipe_sweep(_tiny_probes(), settings, workers=2, **kw)
    np.testing.assert_array_equal(serial["accuracy"], pooled["accuracy"])


def test_table_and_summary():
    arrays = {"names": np.array(["NAD 0", "NAD 100"]), "labels": np.array(["paper recipe", "epsilon=2"]),
              "accuracy": np.array([[0.9, 0.5], [1.0, 0.55]]), "published": np.array([1.0, 0.82]),
              "distance": np.array([0.21, 0.135]), "n_train": np.array([10_000, 10_000]),
              "epochs": np.array([20, 20])}
    table = rs.sweep_table(arrays)
    lines = str(table).splitlines()
    assert lines[0] == "| setting | n_train | epochs | NAD 0 | NAD 100 | mean abs. diff. |"
    assert lines[3] == "| epsilon=2 | 10,000 | 20 | 1.00 | 0.55 | 0.14 |"
    assert lines[4].startswith("| published (authors) |  |  | 1.00 | 0.82 |")
    best = rs.sweep_summary(arrays)
    assert best["label"] == "epsilon=2" and best["base_distance"] == pytest.approx(0.21)


def test_cli_writes_the_sweep_with_provenance(tmp_path):
    rows = tmp_path / "nads.npy"
    np.save(rows, published_nads("lenet").directions.reshape(64, 1024).numpy())
    out = tmp_path / "sweep.npz"
    assert cli.main(["recipe-sweep", "--nads", str(rows), "--indices", "0,3", "--freqs", "2,0", "--settings",
                     "n_train=64,epochs=1;epsilon=2,n_train=64,epochs=1", "--n-test", "32", "--device", "cpu",
                     "--out", str(out)]) == 0
    arrays, meta = load_artifact(out)
    assert arrays["accuracy"].shape == (2, 3) and arrays["names"].tolist() == ["NAD 0", "NAD 3", "Fourier (2, 0)"]
    assert arrays["directions"].shape == (3, 1, 32, 32)
    assert meta["nads"] == "nads.npy" and len(meta["nads_file_sha256"]) == 64 and meta["n_test"] == 32
    assert "accuracy" in meta["sha256"] and not (tmp_path / "sweep.ckpt.npz").exists()
    torch.testing.assert_close(torch.from_numpy(arrays["directions"][1]), published_nads("lenet").directions[3])
