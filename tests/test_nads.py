"""Tests of the NAD estimation engine (nadlib.nads)."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import nadlib
from nadlib.nads import lenet_secant as LS
from nadlib.nads import estimate as N
from nadlib import RunControl, Stability

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
    res = nadlib.estimate_nads(lambda: Linear(L), 4000, method=method, input_shape=(1, 4, 4), batch_size=500,
                               run=RunControl(progress=False))
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
    a = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), batch_size=7,
                             run=RunControl(progress=False))
    b = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), batch_size=7,
                             run=RunControl(progress=False))
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
    c = nadlib.estimate_nads(fn, 300, method="gradient", input_shape=(1, 4, 4), batch_size=64,
                             run=RunControl(progress=False))
    assert torch.allclose(a.eigenvalues, c.eigenvalues, rtol=1e-6, atol=1e-12)


def test_lenet_fast_secant_matches_plain_reference():
    # The windowed LeNet path must equal plain central differences; with the same networks and point the
    # NADs must coincide (overlap 1 up to float rounding, checked on well-separated leading directions).
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    n = 24
    ref = _plain_secant(lambda: nadlib.get_model("lenet", 1, 1), n, x)
    res = nadlib.estimate_nads("lenet", n, method="secant", batch_size=5, run=RunControl(progress=False))
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


def test_windowed_lenet_secant_split_over_threads_gives_each_network_its_row():
    # With 2 torch threads, the windowed path runs consecutive groups of networks in 2 threads, torch
    # single-threaded in each: the rows are those of the unsplit batch, in the networks' order, torch's thread
    # count comes back, an error in a group reaches the caller, and the estimate agrees with 1 thread.
    import threading
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    nets = []
    for i in range(5):
        torch.manual_seed(N.network_seed(0, i))
        nets.append(nadlib.get_model("lenet", 1, 1).eval())
    fast = LS.LeNetSecant(nets[0].features[0], nets[0].features[3], (1, 32, 32), torch.device("cpu"))
    seen = []

    def spy(group, *args):
        seen.append((threading.current_thread().name, len(group), torch.get_num_threads()))
        if args[1] < 0:
            raise ValueError("a failing group")
        return fast(group, *args)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows = N._on_threads(spy, nets, x, 100.0)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="a failing group"):
            N._on_threads(spy, nets, x, -1.0)
        assert torch.get_num_threads() == 2
        two = nadlib.estimate_nads("lenet", 6, batch_size=6, run=RunControl(progress=False))
    finally:
        torch.set_num_threads(before)
    assert sorted(n for _, n, _ in seen[:2]) == [2, 3]
    assert all(name.startswith("nadlib-secant") and threads == 1 for name, _, threads in seen)
    with torch.inference_mode():
        whole = fast(nets, x, 100.0)
    assert torch.allclose(rows, whole, rtol=1e-6, atol=1e-6 * float(whole.abs().max()))
    torch.set_num_threads(1)
    try:
        one = nadlib.estimate_nads("lenet", 6, batch_size=6, run=RunControl(progress=False))
    finally:
        torch.set_num_threads(before)
    assert torch.allclose(one.eigenvalues, two.eigenvalues, rtol=1e-5, atol=1e-9 * float(one.eigenvalues.max()))


def test_generic_secant_path_and_three_channels():
    # a custom module (not a nadlib LeNet) goes through the plain batched path; 3 input channels
    def make():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 1))
    res = nadlib.estimate_nads(make, 6, method="secant", input_shape=(3, 8, 8), k=10, run=RunControl(progress=False))
    assert res.directions.shape == (10, 3, 8, 8) and res.meta["path"] == "batched"
    u = res.directions.reshape(10, -1).double()
    assert torch.allclose(u @ u.T, torch.eye(10, dtype=torch.float64), atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    res = nadlib.estimate_nads("logreg", 8, method="gradient", k=20, run=RunControl(progress=False))
    path = res.save(tmp_path / "n.npz")
    back = nadlib.NADs.load(path)
    assert torch.equal(back.directions, res.directions) and torch.equal(back.eigenvalues, res.eigenvalues)
    assert back.method == "gradient" and back.n_networks == 8 and back.meta["arch"] == "logreg"
    assert back.stability == res.stability


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    ck = tmp_path / "ck.npz"
    full = nadlib.estimate_nads("lenet", 12, method="gradient", batch_size=4, run=RunControl(progress=False))
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
        nadlib.estimate_nads("lenet", 12, method="gradient", batch_size=4,
                             run=RunControl(progress=False, checkpoint=ck))
    monkeypatch.setattr(N._Stats, "add", real)
    assert ck.exists()
    resumed = nadlib.estimate_nads("lenet", 12, method="gradient", batch_size=4,
                                   run=RunControl(progress=False, checkpoint=ck))
    assert resumed.meta["resumed_from"] == 8
    assert torch.equal(resumed.eigenvalues, full.eigenvalues)
    assert torch.equal(resumed.directions, full.directions)
    # other settings refuse to resume from that checkpoint
    with pytest.raises(ValueError):
        nadlib.estimate_nads("lenet", 12, method="gradient", batch_size=4,
                             run=RunControl(progress=False, checkpoint=ck, seed=1))


def test_stop_at_stability():
    # LogReg gradients are i.i.d. isotropic weights: the split-half overlap stays near k/d, so a target
    # of 0.99 is never met and all networks are used; for a rank-one model it is met immediately.
    class RankOne(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.randn(1))

        def forward(self, x):
            return self.a * x[:, 0, 0, :1]
    res = nadlib.estimate_nads(RankOne, 1000, method="gradient", input_shape=(1, 2, 2), batch_size=32,
                               stability=Stability(stop_at=0.99, k=1, check_every=64), run=RunControl(progress=False))
    assert res.n_networks < 1000 and res.meta["stopped_early"]
    assert res.stability[1] > 0.99


def test_bad_inputs():
    with pytest.raises(ValueError, match="ONE scalar output"):
        nadlib.estimate_nads(lambda: nadlib.get_model("lenet", 1, 2), 4, run=RunControl(progress=False))
    with pytest.raises(ValueError, match="n_networks"):
        nadlib.estimate_nads("lenet", 1, run=RunControl(progress=False))
    with pytest.raises(ValueError, match="does not accept inputs"):
        nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(10, 1)), 4, run=RunControl(progress=False))
    with pytest.raises(ValueError, match="input_shape"):
        nadlib.estimate_nads("lenet", 4, input_shape=(32, 32), run=RunControl(progress=False))
    with pytest.raises(ValueError, match="method"):
        nadlib.estimate_nads("lenet", 4, method="adjoint", run=RunControl(progress=False))
    with pytest.raises(ValueError, match="eval_point"):
        nadlib.estimate_nads("lenet", 4, eval_point=torch.zeros(1, 8, 8), run=RunControl(progress=False))
    with pytest.raises(TypeError):
        nadlib.estimate_nads(nadlib.get_model("lenet", 1, 1), 4, run=RunControl(progress=False))
    with pytest.raises(ValueError, match="unknown architecture"):
        nadlib.estimate_nads("alexnet", 4, run=RunControl(progress=False))

    class NaNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(float("nan")))

        def forward(self, x):
            return x.flatten(1)[:, :1] * self.w
    with pytest.raises(ValueError, match="network 0"):
        nadlib.estimate_nads(NaNNet, 4, method="gradient", input_shape=(1, 2, 2), run=RunControl(progress=False))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            nadlib.estimate_nads("lenet", 4, run=RunControl(device="cuda", progress=False))


# end to end (~16 s, so not in `make test-fast`): two `python -m nadlib nads` subprocesses; resuming in-process is
# also checked by test_resume_of_a_tiny_estimate
@pytest.mark.slow
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
    part = nadlib.estimate_nads("logreg", 16, method="gradient", batch_size=8,
                                run=RunControl(progress=False, checkpoint=ck))
    assert part.n_networks == 16
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    again = nadlib.load_nads(out)
    assert again.meta["resumed_from"] == 16
    assert torch.equal(again.eigenvalues, first.eigenvalues)


# ---- closed forms from hand-made models ---------------------------------------------------------------

class _ScaledReLU(nn.Module):
    """f(x) = a * sum(relu(x)), a ~ N(0, 1) drawn at construction.  Its central difference with step h at x is
    g_j = a (relu(x_j + h) - relu(x_j - h)) / (2h) -- not its derivative a [x_j > 0] -- so both estimators
    have a closed form, and both are a * (a fixed vector): the gradient covariance has rank one."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a * torch.relu(x).flatten(1).sum(1, keepdim=True)


def _a(seed, n):
    """The a of networks 0..n-1 of a run with ``seed`` (network i is built after torch.manual_seed(network_seed))."""
    out = []
    for i in range(n):
        torch.manual_seed(N.network_seed(seed, i))
        out.append(float(_ScaledReLU().a.detach()))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("method, step", [("secant", None), ("secant", 0.5), ("gradient", None)])
def test_two_networks_give_the_closed_form(method, step):
    """Two networks with gradients a_0 v and a_1 v: covariance (a_0 - a_1)^2 v v^T / 2, so the first NAD is
    +-v / |v| with eigenvalue (a_0 - a_1)^2 |v|^2 / 2 and the other three eigenvalues are 0."""
    x = torch.tensor([[[0.3, -0.2], [1.5, -0.7]]])
    kwargs = {} if step is None else {"step": step}
    res = nadlib.estimate_nads(_ScaledReLU, 2, method=method, input_shape=(1, 2, 2), eval_point=x,
                               run=RunControl(seed=4, progress=False), **kwargs)
    x64 = x.double().flatten()
    if method == "gradient":
        v = (x64 > 0).double()
    else:
        h = 100.0 if step is None else step
        v = (torch.relu(x64 + h) - torch.relu(x64 - h)) / (2 * h)
    a = _a(4, 2)
    expected = torch.tensor([float((a[0] - a[1]) ** 2 * v.dot(v) / 2), 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(res.eigenvalues, expected, atol=1e-6 * float(expected[0]), rtol=1e-5)
    cos = float(res.directions[0].flatten().double().dot(v / v.norm()))
    assert abs(cos) == pytest.approx(1.0, abs=1e-6)
    assert res.n_networks == 2 and res.method == method and len(res) == 4 and res.input_shape == (1, 2, 2)
    assert res.meta["step"] == (None if method == "gradient" else (100.0 if step is None else step))
    assert res.meta["eval_point"] == "given" and torch.equal(res.eval_point, x)
    assert res.meta["input_shape"] == [1, 2, 2] and res.meta["seed"] == 4 and res.meta["requested_networks"] == 2
    assert res.meta["resumed"] is False and res.meta["resumed_from"] == 0 and res.meta["stopped_early"] is False
    assert res.meta["path"] == ("vmap" if method == "gradient" else "batched")
    assert res.stability == {}  # one network per half: no split-half covariance


def test_default_eval_point_and_k_and_stability_ks():
    """The default point is randn(input_shape) from Generator().manual_seed(seed); k keeps the top k directions
    (all eigenvalues are still reported); a rank-one covariance has split-half overlap 1 for k = 1 and for
    the whole space (k = 4), and k larger than the dimension is left out."""
    res = nadlib.estimate_nads(_ScaledReLU, 6, method="gradient", input_shape=(1, 2, 2), k=2,
                               batch_size=4, stability=Stability(ks=(1, 4, 9)), run=RunControl(seed=9, progress=False))
    point = torch.randn((1, 2, 2), generator=torch.Generator().manual_seed(9))
    assert torch.equal(res.eval_point, point)
    assert res.meta["eval_point"] == "randn(input_shape) from torch.Generator().manual_seed(seed)"
    assert res.directions.shape == (2, 1, 2, 2) and res.eigenvalues.shape == (4,) and len(res) == 2
    assert res.stability == {1: pytest.approx(1.0), 4: pytest.approx(1.0)}
    v = (point.flatten() > 0).double()
    a = _a(9, 6)
    top = float(a.var() * v.dot(v))  # sample variance (n - 1) of a, times |v|^2
    assert float(res.eigenvalues[0]) == pytest.approx(top, rel=1e-5)
    assert torch.equal(res[1], res.directions[1])
    default = nadlib.estimate_nads(_ScaledReLU, 6, method="gradient", input_shape=(1, 2, 2), batch_size=4,
                                   run=RunControl(seed=9, progress=False))
    assert set(default.stability) == {1}  # the default ks (1, 5, 10, 50) that fit in 4 dimensions
    assert default.overlap(res, 1) == pytest.approx(1.0) and default.overlap(res.directions, 2) == pytest.approx(1.0)


def test_network_seed_uses_all_bits_of_the_seed():
    seeds = {N.network_seed(s, i) for s in (0, 1, 2 ** 32, 2 ** 33, 2 ** 62 + 5) for i in (0, 1, 7)}
    assert len(seeds) == 15 and all(0 <= s < 2 ** 63 for s in seeds)
    assert N.network_seed(3, 5) == N.network_seed(3, 5)


@pytest.mark.parametrize("kwargs, err, message", [
    (dict(n_networks=1), ValueError, "n_networks must be an int >= 2 (a covariance needs two samples), got 1"),
    (dict(n_networks=2.0), ValueError, "n_networks must be an int >= 2 (a covariance needs two samples), got 2.0"),
    (dict(n_networks=10_000_001), ValueError, "n_networks must be at most 10,000,000, got 10,000,001"),
    (dict(k=5), ValueError, "k must be an int in [1, 4] (the input dimension) or None, got 5"),
    (dict(k=0), ValueError, "k must be an int in [1, 4] (the input dimension) or None, got 0"),
    (dict(batch_size=1_000_001), ValueError, "batch_size must be at most 1,000,000, got 1,000,001"),
    (dict(stability=dict(stop_at=0.0)), ValueError, "Stability.stop_at must be in (0, 1], got 0.0"),
    (dict(stability=dict(stop_at=0.5, k=5)), ValueError,
     "Stability.k=5 exceeds the input dimension 4: early stopping could never trigger"),
    (dict(stability=dict(k=0)), ValueError, "Stability.k must be a positive int, got 0"),
    (dict(stability=dict(check_every=0)), ValueError, "Stability.check_every must be a positive int, got 0"),
    (dict(stability=dict(ks=(1, 0))), ValueError, "Stability.ks entry must be a positive int, got 0"),
    (dict(step=2e12), ValueError, "step must be at most 1e+12, got 2000000000000.0"),
    (dict(run=dict(checkpoint_every=0)), ValueError, "checkpoint_every must be a positive finite number, got 0"),
    (dict(input_shape=5), TypeError, "input_shape must be a tuple (C, H, W), got 5"),
    (dict(input_shape=(1, 0, 2)), ValueError, "input_shape must be three positive ints (C, H, W), got (1, 0, 2)"),
    (dict(input_shape=(True, 2, 2)), ValueError, "input_shape must be three positive ints (C, H, W), got (True, 2, 2)"),
    (dict(eval_point=torch.zeros(1, 3, 3)), ValueError, "eval_point must have shape (1, 2, 2) (input_shape), got (1, 3, 3)"),
    (dict(eval_point=torch.full((1, 1, 2, 2), float("inf"))), ValueError, "eval_point contains NaN or infinite values"),
])
def test_estimate_nads_messages(kwargs, err, message):
    """Each bad value is refused with its message: arguments of estimate_nads, fields of its Stability
    (``stop_at``, ``k``, ``check_every``, ``ks``) and of its RunControl (``checkpoint_every``)."""
    args = {**dict(model=_ScaledReLU, n_networks=4, method="gradient", input_shape=(1, 2, 2)), **kwargs}
    stability, control = args.pop("stability", None), dict(progress=False, **args.pop("run", {}))
    with pytest.raises(err) as info:
        nadlib.estimate_nads(**args, stability=None if stability is None else nadlib.Stability(**stability),
                             run=nadlib.RunControl(**control))
    assert str(info.value) == message


def test_model_messages():
    with pytest.raises(TypeError, match="^model must be an architecture name or a zero-argument callable returning"):
        nadlib.estimate_nads(_ScaledReLU(), 2, run=RunControl(progress=False))
    with pytest.raises(TypeError, match=r"^model must be an architecture name \(str\) or a zero-argument callable, "
                                        r"got int$"):
        nadlib.estimate_nads(5, 2, run=RunControl(progress=False))
    with pytest.raises(TypeError, match="^the model callable must return an nn.Module, got int$"):
        nadlib.estimate_nads(lambda: 3, 2, run=RunControl(progress=False))
    with pytest.raises(ValueError, match=r"^NADs need a model with ONE scalar output per input, got output shape "
                                         r"\(1, 2\); build it with num_classes=1$"):
        nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 2, input_shape=(1, 2, 2),
                             run=RunControl(progress=False))
    with pytest.raises(ValueError, match=r"^NADs need a model with ONE scalar output per input, got output shape "
                                         r"tuple"):
        nadlib.estimate_nads(lambda: _Tuple(), 2, input_shape=(1, 2, 2), run=RunControl(progress=False))
    with pytest.raises(ValueError, match=r"^the model does not accept inputs of shape \(1, 1, 2, 2\) "
                                         r"\(input_shape=\(1, 2, 2\)\): "):
        nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(5, 1)), 2, input_shape=(1, 2, 2),
                             run=RunControl(progress=False))
    assert nadlib.estimate_nads("LogReg", 2, method="gradient", run=RunControl(progress=False)).meta["arch"] == "logreg"
    assert nadlib.estimate_nads(_ScaledReLU, 2, method="gradient", input_shape=(1, 2, 2),
                                run=RunControl(progress=False)).meta["arch"] == "_ScaledReLU"


class _Tuple(nn.Module):
    def forward(self, x):
        return (x.sum(),)


class _NaNWhenPositive(nn.Module):
    """w ~ N(0, I_4); the output is NaN when w_0 > 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4))

    def forward(self, x):
        out = (x.flatten(1) @ self.w)[:, None]
        return out * torch.where(self.w[0] > 0, float("nan"), 1.0)


def test_non_finite_gradient_names_the_network():
    first = None
    for j in range(100):
        torch.manual_seed(N.network_seed(0, j))
        if float(_NaNWhenPositive().w[0].detach()) > 0:
            first = j
            break
    s = N.network_seed(0, first)
    with pytest.raises(ValueError, match=rf"^non-finite input gradient for network {first} \(initialised with "
                                         rf"torch.manual_seed\({s}\), i.e. network_seed\(0, {first}\)\)$"):
        nadlib.estimate_nads(_NaNWhenPositive, 100, method="gradient", input_shape=(1, 2, 2), batch_size=3,
                             run=RunControl(progress=False))


def test_chunks_hold_the_sums_of_their_networks():
    """nad_statistics(start, stop): network i's gradient a_i v goes to half i % 2; merged chunks are the whole."""
    x = torch.tensor([[[0.5, -1.0], [2.0, 0.1]]])
    parts = [nadlib.nad_statistics(_ScaledReLU, 0, 3, method="gradient", input_shape=(1, 2, 2), eval_point=x,
                                   batch_size=2, run=RunControl(seed=2)),
             nadlib.nad_statistics(_ScaledReLU, 3, 5, method="gradient", input_shape=(1, 2, 2), eval_point=x,
                                   run=RunControl(seed=2))]
    st = N.NADStatistics.merge(parts)
    a, v = _a(2, 5), torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    assert st.count.tolist() == [3, 2] and parts[1].count.tolist() == [1, 1]
    for half in (0, 1):
        torch.testing.assert_close(st.s1[half], a[half::2].sum() * v)
        torch.testing.assert_close(st.s2[half], (a[half::2] ** 2).sum() * torch.outer(v, v))
    one = nadlib.nad_statistics(_ScaledReLU, 4, 5, method="secant", input_shape=(1, 2, 2), eval_point=x,
                                step=3.0, run=RunControl(seed=2))
    g = a[4] * (torch.relu(x.double().flatten() + 3) - torch.relu(x.double().flatten() - 3)) / 6
    assert one.count.tolist() == [1, 0]
    torch.testing.assert_close(one.s1[0], g)
    # a chunk of one network holds that network only
    assert nadlib.nad_statistics(_ScaledReLU, 0, 1, method="gradient", input_shape=(1, 2, 2), eval_point=x,
                                 run=RunControl(seed=2)).count.tolist() == [1, 0]
    # defaults: secant with step 100 at randn(1, 32, 32) seeded 0, networks of seed 0
    d = nadlib.nad_statistics(_ScaledReLU, 1, 2)
    p = torch.randn((1, 32, 32), generator=torch.Generator().manual_seed(0)).double().flatten()
    torch.testing.assert_close(d.s1[1], _a(0, 2)[1] * (torch.relu(p + 100) - torch.relu(p - 100)) / 200,
                               rtol=1e-5, atol=1e-6)  # float32 forward passes
    with pytest.raises(ValueError, match="start=1.5"):
        nadlib.nad_statistics(_ScaledReLU, 1.5, 3, input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match=r"^need ints 0 <= start < stop <= 10,000,000, got start=3, stop=3$"):
        nadlib.nad_statistics(_ScaledReLU, 3, 3, input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="start=-1"):
        nadlib.nad_statistics(_ScaledReLU, -1, 3, input_shape=(1, 2, 2))


def test_chunk_may_end_at_the_largest_network_count(monkeypatch):
    monkeypatch.setattr(N, "MAX_NETWORKS", 3)
    assert nadlib.nad_statistics(_ScaledReLU, 1, 3, method="gradient", input_shape=(1, 2, 2)).n_networks == 2
    with pytest.raises(ValueError, match="stop=4"):
        nadlib.nad_statistics(_ScaledReLU, 1, 4, method="gradient", input_shape=(1, 2, 2))


def test_run_settings_by_hand():
    x = torch.tensor([[[0.5, -1.0], [2.0, 0.1]]])
    s = N.nad_run_settings(_ScaledReLU, method="secant", input_shape=(1, 2, 2), seed=3, eval_point=x,
                                step=7.0, batch_size=5)
    from nadlib.results import array_sha256
    assert s == {"arch": "_ScaledReLU", "method": "secant", "input_shape": [1, 2, 2], "seed": 3, "step": 7.0,
                 "eval_point_sha256": array_sha256(x.numpy()), "device_type": "cpu", "batch_size": 5,
                 "path": "batched", "model": nadlib.models.describe_model(_ScaledReLU, (1, 2, 2))}
    g = N.nad_run_settings("logreg", method="gradient", seed=1)
    point = torch.randn((1, 32, 32), generator=torch.Generator().manual_seed(1))
    assert g["step"] is None and g["path"] == "vmap" and g["arch"] == "logreg"
    assert g["eval_point_sha256"] == array_sha256(point.numpy())
    lenet = N.nad_run_settings("lenet")
    assert lenet["path"] == "lenet-windowed" and lenet["method"] == "secant" and lenet["step"] == 100.0


def test_lenet_secant_gradient_is_a_central_difference():
    """The windowed LeNet path against central differences written out here, for a few pixels of two networks."""
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    st = nadlib.nad_statistics("lenet", 0, 2, method="secant", batch_size=2, run=RunControl(seed=0))
    for i in (0, 1):
        torch.manual_seed(N.network_seed(0, i))
        net = nadlib.get_model("lenet", 1, 1).eval()
        for j in (0, 33, 517, 1023):
            e = torch.zeros(1, 1024)
            e[0, j] = 100.0
            with torch.no_grad():
                g = (net((x.view(1, -1) + e).view(1, 1, 32, 32)) - net((x.view(1, -1) - e).view(1, 1, 32, 32))) / 200
            assert float(st.s1[i, j]) == pytest.approx(float(g), rel=1e-3, abs=1e-6)


def test_save_load_by_hand(tmp_path):
    x = torch.tensor([[[0.5, -1.0], [2.0, 0.1]]])
    res = nadlib.estimate_nads(_ScaledReLU, 8, method="gradient", input_shape=(1, 2, 2), eval_point=x,
                               stability=Stability(ks=(4, 1)), run=RunControl(progress=False))
    back = nadlib.load_nads(res.save(tmp_path / "a.npz", k=2))
    assert back.directions.shape == (2, 1, 2, 2) and back.directions.dtype == torch.float32
    assert torch.equal(back.directions, res.directions[:2]) and back.eigenvalues.dtype == torch.float64
    assert torch.equal(back.eigenvalues, res.eigenvalues) and torch.equal(back.eval_point, x)
    assert back.stability == res.stability and list(back.stability) == [1, 4]
    assert all(type(k) is int and type(v) is float for k, v in back.stability.items())
    assert back.n_networks == 8 and back.method == "gradient" and back.meta["arch"] == "_ScaledReLU"
    full = nadlib.load_nads(res.save(tmp_path / "b.npz"))
    assert torch.equal(full.directions, res.directions)
    assert repr(full) == ("NADs(method='gradient', n_networks=8, directions=(4, 1, 2, 2), arch='_ScaledReLU', "
                          f"split-half stability: top-1: {res.stability[1]:.3f}, top-4: {res.stability[4]:.3f})")
    bare = N.NADs(directions=torch.eye(4).view(4, 1, 2, 2), eigenvalues=torch.ones(4, dtype=torch.float64),
                  n_networks=3, method="secant")
    assert repr(bare) == ("NADs(method='secant', n_networks=3, directions=(4, 1, 2, 2), arch=None, "
                          "split-half stability: n/a)")
    loaded = N.NADs.load(bare.save(tmp_path / "c.npz"))
    assert loaded.eval_point is None and loaded.stability == {} and loaded.meta["method"] == "secant"
    # an artifact without NAD metadata: defaults
    nadlib.save_artifact(tmp_path / "d.npz", {"directions": np.zeros((1, 1, 2, 2), np.float32),
                                              "eigenvalues": np.zeros(4)}, {})
    d = nadlib.load_nads(tmp_path / "d.npz")
    assert d.n_networks == 0 and d.method == "" and d.stability == {} and d.eval_point is None
    nadlib.save_artifact(tmp_path / "g.npz", {"directions": np.zeros((1, 1, 2, 2)),
                                              "eigenvalues": np.zeros(4, np.float32)}, {})
    g = nadlib.load_nads(tmp_path / "g.npz")  # written by someone else in other dtypes
    assert g.directions.dtype == torch.float32 and g.eigenvalues.dtype == torch.float64
    nadlib.save_artifact(tmp_path / "e.npz", {"eigenvalues": np.zeros(4)}, {})
    with pytest.raises(ValueError, match="^" + re.escape(f"{str(tmp_path / 'e.npz')!r} is not a NAD artifact "
                                                         "(missing 'directions')") + "$"):
        nadlib.load_nads(tmp_path / "e.npz")
    nadlib.save_artifact(tmp_path / "f.npz", {"directions": np.zeros((1, 4), np.float32), "eigenvalues": np.zeros(4)},
                         {})
    with pytest.raises(ValueError, match=r"is not a NAD artifact: directions must be k x C x H x W and eigenvalues "
                                         r"1-D, got shapes \(1, 4\) and \(4,\)$"):
        nadlib.load_nads(tmp_path / "f.npz")


def test_early_stop_checks_every_check_every_networks():
    """A rank-one model reaches split-half overlap 1 at the first check: after max(64, n // 20) networks by
    default, else after check_every (rounded up to whole batches)."""
    def run(n, batch_size, check_every=None):
        return nadlib.estimate_nads(_ScaledReLU, n, method="gradient", input_shape=(1, 2, 2), batch_size=batch_size,
                                    stability=Stability(stop_at=0.99, k=1, check_every=check_every),
                                    run=RunControl(progress=False))
    assert run(1000, batch_size=8).n_networks == 64
    assert run(4000, batch_size=8).n_networks == 200
    assert run(1000, batch_size=8, check_every=20).n_networks == 24
    r = run(1000, batch_size=8, check_every=16)
    assert r.n_networks == 16 and r.meta["stopped_early"] is True and r.meta["requested_networks"] == 1000
    assert run(16, batch_size=8, check_every=16).meta["stopped_early"] is False  # no check at the very end


def test_resume_of_a_tiny_estimate(tmp_path, monkeypatch):
    """test_resume_equals_uninterrupted on a 4-pixel model (fast enough for `make mutants`): interrupted after
    two batches of four, the checkpoint holds 8 networks, and the resumed estimate equals the uninterrupted one."""
    kw = dict(method="gradient", input_shape=(1, 2, 2), batch_size=4, stability=Stability(ks=(1, 4)))
    full = nadlib.estimate_nads(_ScaledReLU, 12, run=RunControl(progress=False), **kw)
    ck = tmp_path / "ck.npz"
    real, calls = N._Stats.add, []

    def add(self, g, i):
        calls.append(i)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, g, i)
    monkeypatch.setattr(N._Stats, "add", add)
    with pytest.raises(KeyboardInterrupt):
        nadlib.estimate_nads(_ScaledReLU, 12, run=RunControl(checkpoint=ck, progress=False), **kw)
    monkeypatch.setattr(N._Stats, "add", real)
    assert calls == [0, 4, 8]
    saved = N.NADStatistics.from_arrays(dict(np.load(ck)))
    assert saved.count.tolist() == [4, 4] and int(np.load(ck)["next_index"]) == 8
    resumed = nadlib.estimate_nads(_ScaledReLU, 12, run=RunControl(checkpoint=ck, progress=False), **kw)
    assert resumed.meta["resumed"] is True and resumed.meta["resumed_from"] == 8
    assert resumed.meta["method"] == "gradient" and resumed.meta["arch"] == "_ScaledReLU"
    with pytest.raises(ValueError):  # the checkpoint of seed 0 is not resumed by a run of seed 1
        nadlib.estimate_nads(_ScaledReLU, 12, run=RunControl(checkpoint=ck, seed=1, progress=False), **kw)
    assert torch.equal(resumed.eigenvalues, full.eigenvalues) and torch.equal(resumed.directions, full.directions)
    assert resumed.stability == full.stability
    # the finished checkpoint holds all 12: the same call again just reads it; asking for fewer is refused
    done = nadlib.estimate_nads(_ScaledReLU, 12, run=RunControl(checkpoint=ck), **kw)
    assert done.meta["resumed_from"] == 12 and torch.equal(done.eigenvalues, full.eigenvalues)
    with pytest.raises(ValueError, match="^the checkpoint already holds 12 networks but n_networks=10; ask for at "
                                         "least 12 or delete the checkpoint$"):
        nadlib.estimate_nads(_ScaledReLU, 10, run=RunControl(checkpoint=ck), **kw)
