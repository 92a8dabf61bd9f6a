"""Tests of the NAD estimation engine (nadlib.nads)."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import nadlib
from nadlib import lenet_secant as LS
from nadlib import nads as N

torch.set_num_threads(min(2, torch.get_num_threads()))


def _plain_secant(model_fn, n, x, step=100.0, seed=0):
    """The authors' algorithm, written plainly: one network at a time, central differences over every
    pixel, stacked gradients, centred PCA (covariance eigenvectors)."""
    d = x.numel()
    eye = torch.eye(d).view(d, *x.shape)
    grads = []
    with torch.no_grad():
        for i in range(n):
            torch.manual_seed(N.network_seed(seed, i))
            net = model_fn().eval()
            grads.append(((net(x[None] + step * eye) - net(x[None] - step * eye)) / (2 * step)).reshape(-1))
    g = torch.stack(grads).double()
    g = g - g.mean(0)
    _, vecs = torch.linalg.eigh(g.T @ g / (n - 1))
    return vecs.flip(1).T


class Linear(nn.Module):
    """f(x) = wᵀx with w = L z, z ~ N(0, I): gradient covariance Σ = L Lᵀ exactly."""

    def __init__(self, L):
        super().__init__()
        self.w = nn.Parameter(L @ torch.randn(L.shape[1]))

    def forward(self, x):
        return (x.flatten(1) @ self.w)[:, None]


def _sigma(d=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    eig = 2.0 ** -torch.arange(d, dtype=torch.float64)  # well separated eigenvalues 1, 1/2, 1/4, ...
    return q, eig


def test_subspace_overlap_basics():
    q, _ = torch.linalg.qr(torch.randn(50, 50, dtype=torch.float64))
    assert N.subspace_overlap(q, q, 10) == pytest.approx(1.0)
    assert N.subspace_overlap(q[:10], q[10:20], 10) == pytest.approx(0.0, abs=1e-12)
    # a rotation inside the subspace does not change it
    r, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))
    assert N.subspace_overlap(r @ q[:10], q[:10]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        N.subspace_overlap(q[:3], q[:4])


@pytest.mark.parametrize("method", ["secant", "gradient"])
def test_linear_model_recovers_sigma(method):
    # For f(x) = wᵀx both estimators give g = w exactly, so the estimate is the sample covariance of w.
    # With eigenvalue ratio 2 between neighbours and n = 4000 samples, the relative error of each sample
    # eigenvalue is ~ sqrt(2/n) ≈ 0.022, and an eigenvector tilts towards its neighbour by
    # ~ sqrt(λ_i λ_j / n) / |λ_i - λ_j| ≈ 0.022 (λ ratio 2), i.e. overlap loss ~ 5e-4 per direction;
    # tolerances are ~5 standard deviations of those.
    d = 16
    q, eig = _sigma(d)
    L = (q * eig.sqrt()).float()
    res = nadlib.estimate_nads(lambda: Linear(L), 4000, method=method, input_shape=(1, 4, 4), progress=False,
                               batch_size=500)
    assert res.directions.shape == (d, 1, 4, 4)
    assert torch.allclose(res.eigenvalues[:4] / eig[:4], torch.ones(4, dtype=torch.float64), rtol=0.12)
    for i in range(4):
        cos = float(res.directions[i].reshape(-1).double() @ q[:, i])
        assert abs(cos) > 0.99, (i, cos)
    # the full basis is orthonormal and ordered by decreasing variance
    u = res.directions.reshape(d, -1).double()
    assert torch.allclose(u @ u.T, torch.eye(d, dtype=torch.float64), atol=1e-5)
    assert (res.eigenvalues[:-1] >= res.eigenvalues[1:]).all()


def test_streaming_equals_one_shot_and_determinism():
    q, eig = _sigma(16, seed=1)
    L = (q * eig.sqrt()).float()
    fn = lambda: Linear(L)  # noqa: E731
    a = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), progress=False, batch_size=7)
    b = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), progress=False, batch_size=7)
    assert torch.equal(a.directions, b.directions) and torch.equal(a.eigenvalues, b.eigenvalues)
    # one shot: stack all gradients (= w of each seeded network) and take the centred covariance at once
    ws = []
    for i in range(300):
        torch.manual_seed(N.network_seed(0, i))
        ws.append(fn().w.detach().double())
    w = torch.stack(ws)
    cov = torch.cov(w.T)
    vals, vecs = torch.linalg.eigh(cov)
    assert torch.allclose(a.eigenvalues, vals.flip(0).clamp_min(0), rtol=1e-9, atol=1e-12)
    assert N.subspace_overlap(a.directions, vecs.flip(1).T, 5) == pytest.approx(1.0, abs=1e-6)  # float32 directions
    # another batch size: same networks, same answer up to float rounding
    c = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), progress=False, batch_size=64)
    assert torch.allclose(a.eigenvalues, c.eigenvalues, rtol=1e-6, atol=1e-12)


def test_lenet_fast_secant_matches_plain_reference():
    # The windowed LeNet path must equal plain central differences; with the same networks and point the
    # NADs must coincide (overlap 1 up to float rounding, checked on well-separated leading directions).
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    n = 24
    ref = _plain_secant(lambda: nadlib.get_model("lenet", 1, 1), n, x)
    res = nadlib.estimate_nads("lenet", n, method="secant", progress=False, batch_size=5)
    assert res.meta["path"] == "lenet-windowed"
    assert torch.equal(res.eval_point, x)
    for k in (1, 5, 10):
        assert res.overlap(ref, k) > 0.999
    # gradient-level equality against a plain forward, on one network
    torch.manual_seed(N.network_seed(0, 3))
    net = nadlib.get_model("lenet", 1, 1).eval()
    fast = LS.LeNetSecant(net.features[0], net.features[3], (1, 32, 32), torch.device("cpu"))
    with torch.inference_mode():
        g_fast = fast([net], x, 100.0)[0]
        g_plain = N._secant_plain(net, x, 100.0, 1024)
    assert torch.allclose(g_fast, g_plain, rtol=1e-4, atol=1e-4 * float(g_plain.abs().max()))


def test_generic_secant_path_and_three_channels():
    # a custom module (not a nadlib LeNet) goes through the plain batched path; 3 input channels
    def make():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 1))
    res = nadlib.estimate_nads(make, 6, method="secant", input_shape=(3, 8, 8), progress=False, k=10)
    assert res.directions.shape == (10, 3, 8, 8) and res.meta["path"] == "batched"
    u = res.directions.reshape(10, -1).double()
    assert torch.allclose(u @ u.T, torch.eye(10, dtype=torch.float64), atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    res = nadlib.estimate_nads("logreg", 8, method="gradient", progress=False, k=20)
    path = res.save(tmp_path / "n.npz")
    back = nadlib.NADs.load(path)
    assert torch.equal(back.directions, res.directions) and torch.equal(back.eigenvalues, res.eigenvalues)
    assert back.method == "gradient" and back.n_networks == 8 and back.meta["arch"] == "logreg"
    assert back.stability == res.stability


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    ck = tmp_path / "ck.npz"
    full = nadlib.estimate_nads("lenet", 12, method="gradient", progress=False, batch_size=4)
    # interrupt after the second batch
    calls = {"n": 0}
    real = N._Stats.add

    def add(self, g, i):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(self, g, i)
    monkeypatch.setattr(N._Stats, "add", add)
    with pytest.raises(KeyboardInterrupt):
        nadlib.estimate_nads("lenet", 12, method="gradient", progress=False, batch_size=4, checkpoint=ck)
    monkeypatch.setattr(N._Stats, "add", real)
    assert ck.exists()
    resumed = nadlib.estimate_nads("lenet", 12, method="gradient", progress=False, batch_size=4, checkpoint=ck)
    assert resumed.meta["resumed_from"] == 8
    assert torch.equal(resumed.eigenvalues, full.eigenvalues)
    assert torch.equal(resumed.directions, full.directions)
    # other settings refuse to resume from that checkpoint
    with pytest.raises(ValueError):
        nadlib.estimate_nads("lenet", 12, method="gradient", progress=False, batch_size=4, checkpoint=ck, seed=1)


def test_stop_at_stability():
    # LogReg gradients are i.i.d. isotropic weights: the split-half overlap stays near k/d, so a target
    # of 0.99 is never met and all networks are used; for a rank-one model it is met immediately.
    class RankOne(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.randn(1))

        def forward(self, x):
            return self.a * x[:, 0, 0, :1]
    res = nadlib.estimate_nads(RankOne, 1000, method="gradient", input_shape=(1, 2, 2), progress=False,
                               stop_at_stability=0.99, stability_k=1, check_every=64, batch_size=32)
    assert res.n_networks < 1000 and res.meta["stopped_early"]
    assert res.stability[1] > 0.99


def test_bad_inputs():
    with pytest.raises(ValueError, match="ONE scalar output"):
        nadlib.estimate_nads(lambda: nadlib.get_model("lenet", 1, 2), 4, progress=False)
    with pytest.raises(ValueError, match="n_networks"):
        nadlib.estimate_nads("lenet", 1, progress=False)
    with pytest.raises(ValueError, match="does not accept inputs"):
        nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(10, 1)), 4, progress=False)
    with pytest.raises(ValueError, match="input_shape"):
        nadlib.estimate_nads("lenet", 4, input_shape=(32, 32), progress=False)
    with pytest.raises(ValueError, match="method"):
        nadlib.estimate_nads("lenet", 4, method="adjoint", progress=False)
    with pytest.raises(ValueError, match="eval_point"):
        nadlib.estimate_nads("lenet", 4, eval_point=torch.zeros(1, 8, 8), progress=False)
    with pytest.raises(TypeError):
        nadlib.estimate_nads(nadlib.get_model("lenet", 1, 1), 4, progress=False)
    with pytest.raises(ValueError, match="unknown architecture"):
        nadlib.estimate_nads("alexnet", 4, progress=False)

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(float("nan")))

        def forward(self, x):
            return x.flatten(1)[:, :1] * self.w
    with pytest.raises(ValueError, match="network 0"):
        nadlib.estimate_nads(NaNNet, 4, method="gradient", input_shape=(1, 2, 2), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            nadlib.estimate_nads("lenet", 4, device="cuda", progress=False)


def test_cli_resume(tmp_path):
    out = tmp_path / "n.npz"
    cmd = [sys.executable, "-m", "nadlib", "nads", "--arch", "logreg", "--method", "gradient", "--networks", "40",
           "--batch-size", "8", "--out", str(out), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    first = nadlib.load_nads(out)
    assert first.n_networks == 40 and first.meta["method"] == "gradient"
    assert not (tmp_path / "n.ckpt.npz").exists()
    # a checkpoint left by an interrupted run (first 16 networks) is resumed to the same final answer
    ck = tmp_path / "n.ckpt.npz"
    part = nadlib.estimate_nads("logreg", 16, method="gradient", progress=False, batch_size=8, checkpoint=ck)
    assert part.n_networks == 16
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    again = nadlib.load_nads(out)
    assert again.meta["resumed_from"] == 16
    assert torch.equal(again.eigenvalues, first.eigenvalues)
