"""benchmarks/authors_oracle.py on a tiny stand-in of the authors' interface (their code is not needed in CI):
the checkout is checked before any work, their functions are called as their repository defines them, and
the artifact holds both codes' numbers beside the published ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import nadlib

ROOT = Path(__file__).resolve().parents[1]

#: The stand-in: the authors' module names and signatures; a "network" whose test accuracy is 0.25 + the first
#: value of the direction (so the test knows which direction reached their training), and a PCA that returns
#: the first k coordinate axes.
STAND_IN = {
    "utils.py": '''
import torch
DEVICE = "cuda"
def train(model, trans, trainloader, testloader, epochs, max_lr, momentum, weight_decay):
    print("their log")
    model.seen = (epochs, max_lr, momentum, weight_decay, DEVICE)
    return model
def test(model, trans, testloader):
    v = testloader.dataset.v
    return 100 * (0.25 + float(abs(v.flatten()[0]))), 0.0
''',
    "models.py": '''
import torch
class TransformLayer(torch.nn.Module):
    def __init__(self, mean, std):
        super().__init__()
class LeNet(torch.nn.Module):
    def __init__(self, num_channels=3, num_classes=10):
        super().__init__()
        self.lin = torch.nn.Linear(1, num_classes)
''',
    "directional_bias.py": '''
import numpy as np
from utils import train
class _Set:
    def __init__(self, v):
        self.v = v
class _Loader:
    def __init__(self, v):
        self.dataset = _Set(v)
def generate_synthetic_data(v, num_train=10000, num_test=10000, sigma=3, epsilon=1, shape=(1, 32, 32),
                            batch_size=128):
    assert v.shape == (1, 32, 32) and (sigma, epsilon, batch_size) == (3.0, 1.0, 128)
    np.long  # the alias their code uses
    return _Loader(v), _Loader(v), None, None
''',
    "nad_computation.py": '''
import numpy as np
class GradientCovarianceAnisotropyFinder:
    def __init__(self, model_gen_fun, num_networks, eval_point=None, k=None, scale=1, device="cpu",
                 batch_size=None):
        self.k, self.scale = k, scale
        model_gen_fun()
    def estimate_NADs(self):
        return np.ones(self.k), np.eye(1024)[: self.k]
''',
}


def _oracle():
    spec = importlib.util.spec_from_file_location("authors_oracle", ROOT / "benchmarks" / "authors_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def checkout(tmp_path):
    for name, text in STAND_IN.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "NADs").mkdir()
    nads = np.zeros((500, 1024), np.float32)
    nads[np.arange(500), np.arange(500)] = 1.0  # u_i = e_i: u_0 starts with 1, the others with 0
    np.save(tmp_path / "NADs" / "LeNet_NADs.npy", nads)
    return tmp_path


def test_an_incomplete_checkout_is_refused_before_any_work(tmp_path):
    oracle = _oracle()
    (tmp_path / "utils.py").write_text("")
    with pytest.raises(oracle.AuthorsCodeError, match=r"missing: directional_bias.py, models.py, nad_computation.py, "
                                                        r"NADs/LeNet_NADs.npy\); get it with: git clone"):
        oracle.load_authors_code(tmp_path)
    with pytest.raises(SystemExit):
        oracle.main(["--authors-code", str(tmp_path), "--out", str(tmp_path / "o.npz")])
    assert not (tmp_path / "o.npz").exists()


def test_their_modules_do_not_stay_in_sys_modules(checkout):
    import sys
    oracle = _oracle()
    code = oracle.load_authors_code(checkout, "cpu")
    assert code.utils.DEVICE == "cpu" and code.commit.startswith("unknown")
    assert not {"utils", "models", "directional_bias", "nad_computation"} & set(sys.modules)


def test_the_tasks_reach_their_training_and_the_artifact_holds_both_codes(checkout, tmp_path, monkeypatch):
    oracle = _oracle()
    ours = []
    monkeypatch.setattr(oracle, "nadlib_accuracy",
                        lambda v, seed, n_train, epochs, device: ours.append((float(v.flatten()[0]), seed)) or 0.5)
    code = oracle.load_authors_code(checkout, "cpu")
    arrays = oracle.trainability(code, [3], n_train=64, epochs=2, echo=lambda _: None)
    names = list(arrays["names"])
    assert names[:len(oracle.FOURIER)] == [f"Fourier {f}" for f in oracle.FOURIER]
    assert names[len(oracle.FOURIER):] == [f"authors' NAD u_{i}" for i in oracle.NAD_INDICES]
    # their test accuracy is 0.25 + |v[0]|: the direction handed to their data generator is the task's own
    want = [0.25 + abs(float(nadlib.fourier_direction(*f).flatten()[0])) for f in oracle.FOURIER] + \
        [1.25, 0.25, 0.25, 0.25]
    np.testing.assert_allclose(arrays["authors_acc"][0], want, atol=1e-6)
    assert arrays["nadlib_acc"].tolist() == [[0.5] * len(names)] and {s for _, s in ours} == {3}
    # the published values: the map for the Fourier rows, the NAD-index curve for the NAD rows
    pub = nadlib.paper.published_trainability("lenet")
    assert arrays["published_acc"][-1] == pytest.approx(pub["test_acc"][list(pub["indices"]).index(400)])
    assert arrays["published_acc"][0] == pytest.approx(nadlib.paper.paper_fourier_accuracy("lenet")[(2, 0)])


def test_secant_nads_compare_their_estimate_with_two_of_ours(checkout):
    oracle = _oracle()
    code = oracle.load_authors_code(checkout, "cpu")
    out = oracle.secant_nads(code, networks=8, ks=(1, 2))
    # their stand-in returns the first coordinate axes; ours are LeNet's NADs: a small, exactly computed overlap
    ours = nadlib.estimate_nads("lenet", 8, k=2, run=nadlib.RunControl(seed=1, device="cpu", progress=False))
    axes = torch.eye(1024, dtype=torch.float64)[:2]
    assert out["overlap_authors_nadlib"].tolist() == pytest.approx(
        [nadlib.subspace_overlap(axes, ours.directions, k) for k in (1, 2)], abs=1e-9)
    assert out["overlap_nadlib_nadlib"].shape == (2,) and (out["networks_per_s"] > 0).all()


def test_oracle_rows_average_the_seeds_and_give_binomial_errors():
    from nadlib.paper import oracle_rows, oracle_table
    arrays = dict(names=np.array(["Fourier (2, 0)", "authors' NAD u_0"]), kinds=np.array(["fourier", "nad"]),
                  seeds=np.array([0, 1]), authors_acc=np.array([[0.6, 0.9], [0.7, 0.9]]),
                  nadlib_acc=np.array([[0.62, 0.95], [0.68, 0.97]]), published_acc=np.array([0.81, 1.0]))
    meta = dict(n_train=400, n_test=400, epochs=20, authors_commit="45df872", accommodations=["x"])
    fourier, nad = oracle_rows(arrays, meta)
    assert fourier["authors"] == pytest.approx(0.65) and fourier["nadlib"] == pytest.approx(0.65)
    assert fourier["difference"] == pytest.approx(0.0, abs=1e-12)
    # sqrt(p (1 - p) / (n_test * seeds)) for each side, combined in quadrature
    assert fourier["se"] == pytest.approx(np.sqrt(2 * 0.65 * 0.35 / 800))
    assert nad["difference"] == pytest.approx(0.06) and nad["published"] == 1.0
    assert [r["name"] for r in oracle_rows(arrays, meta, "nad")] == ["authors' NAD u_0"]
    table = str(oracle_table(arrays, meta, "fourier"))
    assert "| Fourier (2, 0) | 0.650 | 0.650 | 0.810 | +0.000 ± 0.048 |" in table and "commit 45df872" in table


def test_more_seeds_are_added_to_an_artifact(checkout, tmp_path, monkeypatch):
    oracle = _oracle()
    monkeypatch.setattr(oracle, "nadlib_accuracy", lambda v, seed, n_train, epochs, device: 0.5 + seed / 100)
    monkeypatch.setattr(oracle, "secant_nads", lambda code, networks: {
        "overlap_k": np.array([1]), "overlap_authors_nadlib": np.array([0.5]), "overlap_nadlib_nadlib": np.array([0.4]),
        "networks": np.array(networks), "networks_per_s": np.array([1.0, 2.0])})
    out = tmp_path / "o.npz"
    args = ["--authors-code", str(checkout), "--n-train", "64", "--epochs", "1", "--out", str(out)]
    assert oracle.main([*args, "--seeds", "0"]) == 0
    assert oracle.main([*args, "--seeds", "1", "--add-seeds"]) == 0
    arrays, meta = nadlib.load_artifact(out)
    assert arrays["seeds"].tolist() == [0, 1] and meta["seeds"] == [0, 1]
    assert arrays["nadlib_acc"][:, 0].tolist() == [0.5, 0.51] and arrays["authors_acc"].shape[0] == 2
    with pytest.raises(SystemExit):  # a seed it already holds
        oracle.main([*args, "--seeds", "1", "--add-seeds"])
