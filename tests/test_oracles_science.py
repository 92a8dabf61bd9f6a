"""Exact oracles for the science measures, at non-degenerate points (issue 20, "tests that reach every module").

Each oracle recomputes the documented definition independently with numpy/scipy on a small hand-made input
(loops, ``np.linalg.pinv``, ``scipy.linalg.sqrtm``, a brute force over all matchings, ...), never through
the module's own helpers, at a point where every term matters: features that are *not* collapsed, unequal
class sizes, a classifier that disagrees with the nearest class mean on some samples, an activation that is
neither affine nor constant, two halves whose NAD subspaces differ by known angles.  All run in well under a
second each.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import nadlib
from nadlib.affinity import REGULARISATION, affinity_score
from nadlib.collapse import CollapseRun, collapse_metrics
from nadlib.grid import GridResult
from nadlib.models import LeNet
from nadlib.nads.lenet_secant import LeNetSecant, lenet_layers
from nadlib.nads.stats import NADStatistics, eig_desc, split_half_stability, subspace_overlap
from nadlib import paper

# --------------------------------------------------------------------------------------------------
# neural collapse: NC1-NC4 by the textbook formulas
# --------------------------------------------------------------------------------------------------

#: 3 classes of 3, 4 and 5 samples in 3 dimensions: not collapsed, classes of different sizes (so the global
#: mean is not the mean of the class means and the centred means span all 3 dimensions).
_H = np.array([[2.0, 0.5, -1.0], [3.0, 1.0, 0.0], [2.5, -0.5, 0.5],
               [-1.0, 2.0, 1.0], [0.0, 3.0, 0.5], [-0.5, 1.5, 2.0], [-1.5, 2.5, 0.0],
               [0.5, -1.0, 3.0], [1.0, -2.0, 2.5], [-1.0, 0.0, 3.5], [0.0, -1.5, 2.0], [2.0, 1.0, 1.0]])
_Y = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
#: a classifier that is not aligned with the means and, with its bias, disagrees with the nearest class
#: mean on a few samples
_W = np.array([[1.0, 0.2, -0.3], [-0.4, 1.0, 0.1], [0.3, -0.5, 1.2]])
_B = np.array([0.0, 2.0, -2.0])


def _collapse_by_hand(h, y, w, b):
    n, d = h.shape
    c = w.shape[0]
    means = np.array([h[y == k].mean(0) for k in range(c)])
    mu_g = h.mean(0)  # of all N samples (Papyan et al.)
    m = (means - mu_g).T  # D x C
    sigma_w = sum(np.outer(h[i] - means[y[i]], h[i] - means[y[i]]) for i in range(n)) / n
    sigma_b = m @ m.T / c
    nc1 = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / c
    norms = np.array([np.sqrt(np.sum(m[:, k] ** 2)) for k in range(c)])
    equinorm = np.std(norms) / np.mean(norms)
    gram = np.array([[m[:, i] @ m[:, j] / (norms[i] * norms[j]) for j in range(c)] for i in range(c)])
    etf = np.full((c, c), -1.0 / (c - 1))
    np.fill_diagonal(etf, 1.0)
    equiangular = np.sqrt(np.sum((gram - etf) ** 2)) / np.sqrt(np.sum(etf ** 2))
    nc3 = np.sum((w / np.sqrt(np.sum(w ** 2)) - m.T / np.sqrt(np.sum(m ** 2))) ** 2)
    net, ncc = [], []
    for i in range(n):
        scores = [w[k] @ h[i] + (0.0 if b is None else b[k]) for k in range(c)]
        net.append(max(range(c), key=lambda k: (scores[k], -k)))  # ties: lowest index
        dist = [np.sum((h[i] - means[k]) ** 2) for k in range(c)]
        ncc.append(min(range(c), key=lambda k: (dist[k], k)))
    nc4 = np.mean(np.array(net) != np.array(ncc))
    accuracy = np.mean(np.array(net) == y)
    return dict(nc1=nc1, nc2_equinorm=equinorm, nc2_equiangular=equiangular, nc3=nc3, nc4=nc4, accuracy=accuracy)


def _assert_metrics(got, expected):
    for key, value in expected.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-10, abs=1e-14), key


def test_collapse_oracle_unequal_classes_full_rank():
    expected = _collapse_by_hand(_H, _Y, _W, _B)
    # a non-degenerate point: nothing is 0, and the classifier disagrees with the nearest mean sometimes
    assert all(expected[k] > 1e-3 for k in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3"))
    # counted by hand from the logits: samples 9 and 11 go to class 1, nearest to the means of 2 and 0
    assert expected["nc4"] == 2 / 12 and expected["accuracy"] == 10 / 12
    got = collapse_metrics(torch.from_numpy(_H), torch.from_numpy(_Y), torch.from_numpy(_W), torch.from_numpy(_B))
    _assert_metrics(got, expected)
    assert (got.n_samples, got.num_classes, got.dim) == (12, 3, 3)
    # numpy float32 inputs: the same definitions, computed in float64 from the float32 values
    h32, w32, b32 = _H.astype(np.float32), _W.astype(np.float32), _B.astype(np.float32)
    _assert_metrics(collapse_metrics(h32, _Y, w32, b32),
                    _collapse_by_hand(h32.astype(float), _Y, w32.astype(float), b32.astype(float)))


def test_collapse_oracle_without_bias_and_balanced_classes():
    """4 classes x 3 samples in 5 dimensions, no bias: the centred means sum to zero (rank C - 1 = 3), so
    NC1 uses the pseudo-inverse on a rank-deficient Sigma_B."""
    rng = np.random.default_rng(7)
    centres = np.array([[3.0, 0, 0, 1, 0], [0, 3.0, 0, 0, 1], [0, 0, 3.0, 1, 1], [-1, -1, -1, 0, 2.0]])
    y = np.repeat(np.arange(4), 3)
    h = centres[y] + rng.normal(0, 1.0, (12, 5))
    w = centres + rng.normal(0, 0.8, (4, 5))
    expected = _collapse_by_hand(h, y, w, None)
    assert np.linalg.matrix_rank(np.array([h[y == k].mean(0) for k in range(4)]) - h.mean(0)) == 3
    assert all(expected[k] > 1e-3 for k in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3"))
    _assert_metrics(collapse_metrics(h, y, w), expected)


def test_collapse_oracle_nc4_counts_disagreements_with_ties():
    """NC4 and accuracy on a case counted by hand: 1-D features, 2 classes with means -1 and 2.

    Samples ``h = [-2, -1, 0, 0.5, 1, 2, 3]``, labels ``[0, 0, 0, 0, 1, 1, 1]``: class means -0.75 and 2.
    The nearest class mean is class 0 for h < 0.625 and class 1 above.  The classifier ``W = [[-1], [1]]``,
    ``b = [0, -1]`` decides class 1 where ``h - 1 > -h``, i.e. h > 0.5 (at h = 0.5 a tie, lowest index 0).
    Decisions: [0, 0, 0, 0, 1, 1, 1]; nearest means: [0, 0, 0, 0, 1, 1, 1] -> NC4 = 0 and accuracy 1.
    With ``b = [0, 0]`` the boundary is h > 0: decisions [0, 0, 0, 1, 1, 1, 1] (h = 0 is a tie -> 0):
    one disagreement (h = 0.5) -> NC4 = 1/7, and accuracy 6/7 (h = 0.5 is labelled 0).
    """
    h = np.array([[-2.0], [-1.0], [0.0], [0.5], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    w = np.array([[-1.0], [1.0]])
    m = collapse_metrics(h, y, w, np.array([0.0, -1.0]))
    assert (m.nc4, m.accuracy) == (0.0, 1.0)
    m = collapse_metrics(h, y, w, np.array([0.0, 0.0]))
    assert m.nc4 == pytest.approx(1 / 7, abs=1e-15) and m.accuracy == pytest.approx(6 / 7, abs=1e-15)
    assert m.nc4 == _collapse_by_hand(h, y, w, np.zeros(2))["nc4"]


def test_collapse_oracle_nc2_by_hand_on_two_dimensions():
    """Class means at distances 1, 1 and 2 from the global mean (centred at the origin, 2-D), by hand:

    means (1, 0), (0, 1), (-2/sqrt(2) ... ) are awkward, so take centred means m1 = (1, 0), m2 = (0, 1),
    m3 = (-1, -1) with one sample each plus a symmetric pair per class, so every class mean is exact and
    the global mean is 0.  Norms 1, 1, sqrt(2): mean (2 + sqrt 2)/3, population std sqrt(2) (sqrt 2 - 1)/3
    ... computed below from the numbers only; cosines: m1.m2 = 0, m1.m3 = m2.m3 = -1/sqrt(2).
    ||G - G_ETF||_F^2 = 2 (0 + 1/2)^2 + 4 (-1/sqrt 2 + 1/2)^2, ||G_ETF||_F = 3 / sqrt 2.
    """
    means = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    offsets = np.array([[0.0, 0.0], [0.3, -0.2], [-0.3, 0.2]])
    h = np.concatenate([mu + offsets for mu in means])
    y = np.repeat(np.arange(3), 3)
    m = collapse_metrics(h, y, means)
    norms = np.array([1.0, 1.0, math.sqrt(2)])
    mean = (2 + math.sqrt(2)) / 3
    std = math.sqrt(((1 - mean) ** 2 * 2 + (math.sqrt(2) - mean) ** 2) / 3)
    assert m.nc2_equinorm == pytest.approx(std / mean, rel=1e-12)
    assert np.std(norms) / np.mean(norms) == pytest.approx(std / mean, rel=1e-12)
    off = 2 * 0.5 ** 2 + 4 * (-1 / math.sqrt(2) + 0.5) ** 2
    assert m.nc2_equiangular == pytest.approx(math.sqrt(off) / (3 / math.sqrt(2)), rel=1e-12)
    # W equal to the centred means: NC3 = 0; NC1 by hand: Sigma_W = (2/9) diag(0.09, 0.04) per the offsets
    # (each class contributes 2 offsets), Sigma_B = M M^T / 3 with M M^T = [[2, 1], [1, 2]]
    assert m.nc3 == pytest.approx(0.0, abs=1e-15)
    sigma_w = 3 * (offsets.T @ offsets) / 9
    sigma_b = np.array([[2.0, 1.0], [1.0, 2.0]]) / 3
    assert m.nc1 == pytest.approx(np.trace(sigma_w @ np.linalg.inv(sigma_b)) / 3, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# affinity score: the Gaussian OT map and the exact OT cost by brute force over all matchings
# --------------------------------------------------------------------------------------------------

def _affinity_by_hand(x, y):
    n, d = x.shape
    sx = np.cov(x.T, ddof=1).reshape(d, d) + REGULARISATION * np.eye(d)
    sy = np.cov(y.T, ddof=1).reshape(d, d) + REGULARISATION * np.eye(d)
    root = np.real(scipy.linalg.sqrtm(sy))
    a = root @ np.linalg.inv(np.real(scipy.linalg.sqrtm(root @ sx @ root))) @ root
    tx = (x - x.mean(0)) @ a.T + y.mean(0)
    # the exact OT cost between two uniform clouds of equal size is attained at a permutation (Birkhoff)
    cost = min(np.mean(np.sum((tx - y[list(p)]) ** 2, axis=1)) for p in itertools.permutations(range(n)))
    return 1 - math.sqrt(cost / (2 * np.trace(sy)))


def test_affinity_oracle_two_dimensions_brute_force():
    """A 2-D layer on 6 samples (720 matchings): a leaky, shifted, mixing non-linearity, neither affine
    nor constant, so 0 < rho < 1 and the multi-dimensional OT path (POT's emd2) is used."""
    x = np.array([[-1.2, 0.4], [0.3, -0.8], [1.5, 1.1], [-0.4, -1.6], [0.9, 0.2], [-2.0, 1.3]])
    y = np.where(x > 0, x, 0.1 * x) @ np.array([[1.0, 0.5], [-0.3, 1.0]]) + np.array([0.2, -0.1])
    expected = _affinity_by_hand(x, y)
    assert 0.05 < expected < 0.95
    assert affinity_score(x, y) == pytest.approx(expected, abs=1e-9)
    assert affinity_score(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(
        _affinity_by_hand(x.astype(np.float32).astype(float), y.astype(np.float32).astype(float)), abs=1e-6)


def test_affinity_oracle_one_dimension_closed_form():
    """1-D, by hand: x = [0, 1, 2, 3], y = relu(x - 1) = [0, 0, 1, 2].

    var x = 5/3, var y = (sum y^2 - 4 mean^2) / 3 = (5 - 2.25) / 3 = 11/12 (each + 1e-6).  T(x) = a (x - 1.5)
    + 0.75 with a = sqrt(var y / var x); the sorted matching pairs T(x_i) with y_i; rho = 1 - sqrt(W /
    (2 var y))."""
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 0.0, 1.0, 2.0])
    vx, vy = 5 / 3 + REGULARISATION, 11 / 12 + REGULARISATION
    tx = math.sqrt(vy / vx) * (x - 1.5) + 0.75
    w = np.mean((tx - y) ** 2)
    assert affinity_score(x, y) == pytest.approx(1 - math.sqrt(w / (2 * vy)), abs=1e-12)
    # the same on a shuffled order (OT is over the clouds, not the pairs given)
    perm = [2, 0, 3, 1]
    assert affinity_score(x[perm], y[perm]) == pytest.approx(1 - math.sqrt(w / (2 * vy)), abs=1e-12)


def test_affinity_oracle_four_d_is_averaged_over_space():
    """N x C x H x W inputs: the score of the spatial means, checked against the brute-force oracle."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2, 2, 3))
    y = np.tanh(2 * x) + 0.3 * x ** 2
    expected = _affinity_by_hand(x.mean(axis=(2, 3)), y.mean(axis=(2, 3)))
    assert 0.02 < expected < 0.98
    assert affinity_score(x, y) == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------------------------------
# NAD statistics: covariance per half, eigenvectors, split-half stability at known angles
# --------------------------------------------------------------------------------------------------

def _rotations(theta, phi):
    """Orthonormal rows b1..b4 of R^4: e1 turned towards e3 by theta, e2 towards e4 by phi."""
    c, s, cp, sp = math.cos(theta), math.sin(theta), math.cos(phi), math.sin(phi)
    return np.array([[c, 0, s, 0], [0, cp, 0, sp], [-s, 0, c, 0], [0, -sp, 0, cp]])


def _gradients(basis, scales, offset):
    """Gradients +-scale_j * basis_j (+ offset): mean offset, covariance sum_j 2 scale_j^2 / (n - 1) b_j b_j^T."""
    rows = []
    for b, a in zip(basis, scales):
        rows += [offset + a * b, offset - a * b]
    return np.array(rows)


def test_split_half_stability_oracle_at_known_angles():
    """Even networks: eigenvectors e1..e4; odd networks: e1, e2 turned by theta = 0.5, phi = 0.9 towards e3,
    e4 (eigenvalues 9 : 4 : 1 : 0.25 on both halves).  The top-k overlaps are then, by hand,
    k=1: cos^2 theta; k=2: (cos^2 theta + cos^2 phi) / 2; k=3: A_3 B_3^T = [[c, 0, -s], [0, c_phi, 0],
    [s, 0, c]] with squared singular values 1, 1, cos^2 phi -> (2 + cos^2 phi) / 3; k=4: 1."""
    theta, phi = 0.5, 0.9
    scales = np.array([3.0, 2.0, 1.0, 0.5])
    even = _gradients(np.eye(4), scales, offset=np.array([1.0, -2.0, 0.5, 3.0]))
    odd = _gradients(_rotations(theta, phi), scales, offset=np.array([-1.0, 0.0, 2.0, 1.0]))
    grads = np.empty((16, 4))
    grads[0::2], grads[1::2] = even, odd
    stats = NADStatistics(4)
    stats.add(torch.from_numpy(grads[:5]), first_index=0)
    stats.add(torch.from_numpy(grads[5:]), first_index=5)  # a chunk starting at an odd network index
    assert stats.count.tolist() == [8, 8] and stats.n_networks == 16
    np.testing.assert_allclose(stats.covariance(0).numpy(), np.cov(even.T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.covariance(1).numpy(), np.cov(odd.T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.covariance().numpy(), np.cov(grads.T), rtol=0, atol=1e-12)
    c2, p2 = math.cos(theta) ** 2, math.cos(phi) ** 2
    expected = {1: c2, 2: (c2 + p2) / 2, 3: (2 + p2) / 3, 4: 1.0}
    got = split_half_stability(stats, ks=(1, 2, 3, 4, 5))
    assert set(got) == {1, 2, 3, 4}  # k = 5 exceeds the dimension
    for k, value in expected.items():
        assert got[k] == pytest.approx(value, abs=1e-12), k
    # merging two partial statistics gives the same numbers
    part_a, part_b = NADStatistics(4), NADStatistics(4)
    part_a.add(torch.from_numpy(grads[:7]), 0)
    part_b.add(torch.from_numpy(grads[7:]), 7)
    merged = NADStatistics.merge([part_a, part_b])
    assert merged.count.tolist() == [8, 8]
    assert split_half_stability(merged, ks=(1, 2, 3)) == pytest.approx({k: expected[k] for k in (1, 2, 3)}, abs=1e-12)
    # fewer than 2 networks in a half: no stability
    small = NADStatistics(4)
    small.add(torch.from_numpy(grads[:3]), 0)
    assert split_half_stability(small) == {}


def test_eig_desc_oracle_order_and_sign():
    """A 3 x 3 covariance with eigenvalues 5, 2, 0.5 on known eigenvectors, the largest entry of each made
    negative: eig_desc returns them in descending order, each with its largest-magnitude entry positive."""
    q = np.array([[2.0, -1.0, 2.0], [-1.0, 2.0, 2.0], [2.0, 2.0, -1.0]]) / 3  # orthogonal, symmetric
    vals = np.array([2.0, 0.5, 5.0])
    cov = q @ np.diag(vals) @ q.T
    got_vals, got_vecs = eig_desc(torch.from_numpy(cov))
    np.testing.assert_allclose(got_vals.numpy(), [5.0, 2.0, 0.5], rtol=1e-12)
    expected = np.array([q[:, 2], q[:, 0], q[:, 1]])
    for row in expected:
        row *= np.sign(row[np.argmax(np.abs(row))])
    np.testing.assert_allclose(got_vecs.numpy(), expected, atol=1e-12)
    # a slightly negative eigenvalue (rounding) is reported as 0
    neg = q @ np.diag([-1e-14, 1.0, 3.0]) @ q.T
    assert float(eig_desc(torch.from_numpy(neg))[0][-1]) == 0.0


def test_subspace_overlap_oracle_principal_angles():
    """Two 2-dim subspaces of R^3 with principal angles 0 and alpha: overlap (1 + cos^2 alpha) / 2."""
    alpha = 0.7
    a = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    b = np.array([[1.0, 0, 0], [0, math.cos(alpha), math.sin(alpha)]])
    rot = np.array([[math.cos(0.3), math.sin(0.3)], [-math.sin(0.3), math.cos(0.3)]])  # another basis of B
    assert subspace_overlap(a, rot @ b) == pytest.approx((1 + math.cos(alpha) ** 2) / 2, abs=1e-12)
    assert subspace_overlap(a, b, k=1) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# the LeNet fast secant path: every pixel against central differences of the whole network
# --------------------------------------------------------------------------------------------------

def _central_differences(net, x, step, pixels):
    eye = torch.zeros(len(pixels), x.numel())
    eye[torch.arange(len(pixels)), pixels] = step
    with torch.no_grad():
        plus = net((x.reshape(1, -1) + eye).view(len(pixels), *x.shape))[:, 0]
        minus = net((x.reshape(1, -1) - eye).view(len(pixels), *x.shape))[:, 0]
    return (plus - minus) / (2 * step)


@pytest.mark.parametrize("channels, step", [(1, 100.0), (3, 0.5)])
def test_lenet_secant_oracle_every_pixel(channels, step):
    """Two LeNets (different weights): the windowed path gives (f(x + h e_j) - f(x - h e_j)) / 2h for pixel j,
    checked here by plain forward passes on 300 pixels drawn at random plus the four corners and edges of
    every channel (float32: agreement to 1e-4 of the largest entry, as in tests/test_nads.py)."""
    x = torch.randn(channels, 32, 32, generator=torch.Generator().manual_seed(1))
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(LeNet(channels, 1).eval())
    fast = LeNetSecant(nets[0].features[0], nets[0].features[3], (channels, 32, 32), torch.device("cpu"))
    with torch.no_grad():
        got = fast(nets, x, step)
    assert got.shape == (2, channels * 1024)
    edges = [c * 1024 + r * 32 + q for c in range(channels) for r in (0, 1, 15, 30, 31) for q in (0, 1, 16, 30, 31)]
    drawn = torch.randperm(channels * 1024, generator=torch.Generator().manual_seed(2))[:300].tolist()
    pixels = torch.tensor(sorted(set(edges + drawn)))
    for net, g in zip(nets, got):
        ref = _central_differences(net, x, step, pixels)
        assert float(ref.abs().max()) > 0 and float((ref != 0).float().mean()) > 0.5
        torch.testing.assert_close(g[pixels], ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_lenet_layers_recognises_only_the_pooling_lenet():
    net = LeNet(1, 2)
    conv1, conv2, lin = lenet_layers(net)
    assert conv1 is net.features[0] and conv2 is net.features[3]
    assert lin == [net.classifier[1], net.classifier[3], net.classifier[5]]
    assert lenet_layers(LeNet(1, 2, pool=False)) is None
    assert lenet_layers(nn.Sequential(*net.features, *net.classifier)) is None
    for change in (lambda n: setattr(n.features[0], "stride", (2, 2)), lambda n: setattr(n.features[3], "padding", (1, 1)),
                   lambda n: setattr(n.features[0], "bias", None), lambda n: setattr(n.features[2], "kernel_size", 3),
                   lambda n: setattr(n.features[5], "stride", 1), lambda n: n.classifier.__setitem__(2, nn.Tanh()),
                   lambda n: n.features.__setitem__(1, nn.Tanh()), lambda n: n.features.__setitem__(5, nn.AvgPool2d(2)),
                   lambda n: n.features.__setitem__(2, nn.AvgPool2d(2)), lambda n: setattr(n.features[3], "dilation", (2, 2)),
                   lambda n: setattr(n.features[0], "groups", 2), lambda n: setattr(n.features[2], "padding", 1),
                   lambda n: n.classifier.__setitem__(5, nn.Identity())):
        other = LeNet(1, 2)
        change(other)
        assert lenet_layers(other) is None


def test_a_lenet_with_a_non_square_kernel_takes_the_generic_secant_path():
    """The windowed path assumes square kernels; a LeNet whose first kernel is 5 x 1 used to be accepted by
    lenet_layers and then broke the windowed path (a reshape error) instead of falling back.  It now takes the
    generic path, whose differences equal whole forward passes."""
    def make():
        net = LeNet(1, 1)
        net.features[0] = nn.Conv2d(1, 6, (5, 1))
        net.classifier[1] = nn.Linear(16 * 5 * 6, 120)
        return net

    assert lenet_layers(make()) is None
    res = nadlib.estimate_nads(make, 2, method="secant", k=4, run=nadlib.RunControl(progress=False, device="cpu"))
    assert res.meta["path"] != "lenet-windowed" and res.directions.shape == (4, 1, 32, 32)


# --------------------------------------------------------------------------------------------------
# grid results: the accuracy map, mirrored
# --------------------------------------------------------------------------------------------------

def test_grid_result_map_oracle():
    """size 4: (1, 0) and its mirror (3, 0); (1, 2) and its mirror (3, 2); (0, 0) is its own mirror; (2, 3)
    with (2, 1).  Rows are ky, columns kx."""
    grid = GridResult("lenet", {(1, 0): 0.7, (1, 2): 0.6, (0, 0): 0.9, (2, 3): 0.55}, size=4)
    nan = np.nan
    expected = np.array([[0.9, 0.7, nan, 0.7],
                         [nan, nan, 0.55, nan],
                         [nan, 0.6, nan, 0.6],
                         [nan, nan, 0.55, nan]])
    np.testing.assert_array_equal(grid.map, expected)
    arrays = grid.to_arrays()
    assert arrays["freqs"].tolist() == [[0, 0], [1, 0], [1, 2], [2, 3]]
    assert arrays["accuracy"].tolist() == [0.9, 0.7, 0.6, 0.55]
    np.testing.assert_array_equal(arrays["map"], expected)


# --------------------------------------------------------------------------------------------------
# published-data comparisons
# --------------------------------------------------------------------------------------------------

def test_chance_threshold_and_failing_share_oracle():
    assert paper.chance_threshold(10_000) == pytest.approx(0.515, abs=1e-15)
    assert paper.chance_threshold(400, sigmas=2) == pytest.approx(0.5 + 2 * 0.5 / 20, abs=1e-15)
    # at 100 test samples the threshold is 0.65: 0.6 and 0.649 fail, 0.65 and 0.9 do not
    assert paper.failing_share([0.6, 0.649, 0.65, 0.9], 100) == 0.5
    assert math.isnan(paper.failing_share([], 100))


def test_compare_with_paper_oracle_pearson():
    """Four directions, one matched through its mirror, one with no published value: Pearson by hand."""
    published = {(2, 0): 0.9, (0, 2): 0.6, (4, 4): 0.5, (2, 2): 0.8}
    grid = GridResult("lenet", {(2, 0): 0.95, (0, 30): 0.7, (4, 4): 0.52, (6, 6): 0.99, (2, 2): 0.7}, size=32)
    out = paper.compare_with_paper(grid, published=published)
    assert out["freqs"] == [(2, 0), (0, 30), (4, 4), (2, 2)]
    ours, pub = np.array([0.95, 0.7, 0.52, 0.7]), np.array([0.9, 0.6, 0.5, 0.8])
    np.testing.assert_array_equal(out["ours"], ours)
    np.testing.assert_array_equal(out["paper"], pub)
    do, dp = ours - ours.mean(), pub - pub.mean()
    assert out["pearson"] == pytest.approx((do @ dp) / math.sqrt((do @ do) * (dp @ dp)), abs=1e-12)
    # a constant side: NaN
    flat = GridResult("lenet", {(2, 0): 0.7, (0, 2): 0.7, (4, 4): 0.7}, size=32)
    assert math.isnan(paper.compare_with_paper(flat, published=published)["pearson"])


def test_fourier_map_entries_agreement_oracle():
    """The agreement numbers of one book map against a hand-made published one (n_test 100: threshold 0.65)."""
    pub = {(2, 0): 0.9, (0, 2): 0.6, (4, 4): 0.5, (2, 2): 0.8}
    published = {a: pub for a in paper.FOURIER_MAP_ARCHS}
    part1 = GridResult("lenet", {(2, 0): 0.95, (4, 4): 0.6}, settings={"n_test": 100, "stride": 2})
    part2 = GridResult("lenet", {(30, 0): 0.85, (2, 2): 0.7, (8, 8): 0.5}, settings={"n_test": 100, "band": 3})
    entries = paper.fourier_map_entries({"lenet": [part1, part2]}, published=published)
    book = next(e for e in entries if e["arch"] == "lenet" and e["source"] == "this book")
    # (30, 0) is the mirror of (2, 0): the two runs are averaged under (2, 0)
    assert book["accuracy"] == pytest.approx({(2, 0): 0.9, (4, 4): 0.6, (2, 2): 0.7, (8, 8): 0.5}, abs=1e-15)
    ag = book["agreement"]
    assert ag["shared"] == 3
    ours, theirs = np.array([0.9, 0.6, 0.7]), np.array([0.9, 0.5, 0.8])
    assert ag["mean_abs"] == pytest.approx(np.mean(np.abs(ours - theirs)), abs=1e-12)
    assert ag["pearson"] == pytest.approx(np.corrcoef(ours, theirs)[0, 1], abs=1e-12)
    assert ag["failing_ours"] == pytest.approx(1 / 3) and ag["failing_published"] == pytest.approx(1 / 3)
    assert ag["threshold_ours"] == pytest.approx(0.65) and ag["threshold_published"] == pytest.approx(0.515)
    assert book["failing"] == pytest.approx(2 / 4)  # 0.6 and 0.5 of the four book directions
    pub_entry = next(e for e in entries if e["arch"] == "lenet" and e["source"] == "published")
    assert pub_entry["agreement"] is ag and pub_entry["failing"] == pytest.approx(1 / 4)  # only 0.5 < 0.515


def test_oracle_rows_standard_errors():
    """Two seeds, 400 test samples: mean accuracies and the binomial standard error of their difference."""
    arrays = {"authors_acc": np.array([[0.8, 0.5], [0.9, 0.6]]), "nadlib_acc": np.array([[0.7, 0.55], [0.75, 0.65]]),
              "names": np.array(["a", "b"]), "kinds": np.array(["fourier", "nad"]),
              "published_acc": np.array([0.88, 0.52]), "seeds": np.array([0, 1])}
    rows = paper.oracle_rows(arrays, {"n_test": 400})
    a, b = 0.85, 0.725
    se_a, se_b = math.sqrt(a * (1 - a) / 400 / 2), math.sqrt(b * (1 - b) / 400 / 2)
    assert rows[0]["authors"] == pytest.approx(a) and rows[0]["nadlib"] == pytest.approx(b)
    assert rows[0]["difference"] == pytest.approx(b - a)
    assert rows[0]["se"] == pytest.approx(math.sqrt(se_a ** 2 + se_b ** 2), rel=1e-12)
    assert rows[0]["se_authors"] == pytest.approx(se_a, rel=1e-12)
    assert rows[0]["published"] == 0.88
    assert [r["name"] for r in paper.oracle_rows(arrays, {"n_test": 400}, kind="nad")] == ["b"]


# --------------------------------------------------------------------------------------------------
# collapse runs: what run_collapse measures and records (gaps shown by surviving mutants)
# --------------------------------------------------------------------------------------------------

def _collapse_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 3, 32, 32, generator=g) * torch.tensor([2.0, 0.5, 1.0]).view(1, 3, 1, 1) + 1.5
    xt = torch.randn(12, 3, 32, 32, generator=g) + 1.0
    return {"x_train": x, "y_train": torch.arange(24) % 3, "x_test": xt, "y_test": torch.arange(12) % 3,
            "source": "hand-made"}


def test_run_collapse_measures_the_seeded_network_on_standardised_inputs(tmp_path):
    """LogReg's last-layer features are the flattened (standardised) image, so epoch 0 is known exactly: the
    measures of seeded_model("logreg", seed, 3 channels, 3 classes) on the inputs standardised per channel
    with the *training* mean and standard deviation (the test set too)."""
    from nadlib.collapse import run_collapse
    from nadlib.experiments import CIFARHyperParams
    from nadlib.models import seeded_model
    from nadlib import RunControl

    data = _collapse_data()
    hp = CIFARHyperParams(lr=0.05, momentum=0.5, weight_decay=0.0, batch_size=8)
    calls = []
    res = run_collapse("logreg", data, 2, hp=hp, on_epoch_end=lambda e, net, tr: calls.append((e, net, tr)),
                       out=tmp_path / "c.npz", profile="oracle", run=RunControl(seed=5, progress=False, device="cpu"))
    assert [c[0] for c in calls] == [0, 1, 2] and all(c[2].rows is calls[0][2].rows for c in calls)
    x, xt = data["x_train"], data["x_test"]
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
    net0 = seeded_model("logreg", 5, in_channels=3, num_classes=3)
    head = [m for m in net0.modules() if isinstance(m, nn.Linear)][-1]
    w, b = head.weight.detach(), head.bias.detach()
    train0 = collapse_metrics(((x - mean) / std).flatten(1), data["y_train"], w, b)
    test0 = collapse_metrics(((xt - mean) / std).flatten(1), data["y_test"], w, b)
    for key in ("nc1", "nc2_equinorm", "nc3", "nc4", "accuracy"):
        assert res.history[key][0] == pytest.approx(getattr(train0, key), rel=1e-5, abs=1e-6), key
        assert res.history[f"test_{key}"][0] == pytest.approx(getattr(test0, key), rel=1e-5, abs=1e-6), key
    assert list(res.history["epoch"]) == [0, 1, 2] and res.history["num_classes"][0] == 3
    assert res.arch == "logreg" and 0 <= res.wall_time < 60
    # training is nadlib.train of that network with hp's recipe and run.seed (initialisation and batch order)
    from nadlib.training import train as plain_train
    plain = plain_train(seeded_model("logreg", 5, in_channels=3, num_classes=3), (x - mean) / std, data["y_train"],
                        recipe=hp.recipe(2), run=RunControl(seed=5, progress=False, device="cpu"))
    np.testing.assert_allclose(res.train_result.loss, plain.loss, rtol=1e-6)
    assert math.isnan(res.history["loss"][0])
    np.testing.assert_array_equal(res.history["loss"][1:], res.train_result.loss)
    assert res.settings["profile"] == "oracle" and res.settings["wall_time"] == pytest.approx(res.wall_time)
    expected = {"arch": "logreg", "epochs": 2, **hp.train_kwargs(), "seed": 5, "standardise": True, "n_train": 24,
                "n_test": 12, "num_classes": 3, "source": "hand-made"}
    assert {k: res.settings[k] for k in expected} == expected
    assert res.settings["zero_error_epoch"] == res.zero_error_epoch
    loaded = CollapseRun.from_artifact(tmp_path / "c.npz")
    assert loaded.arch == "logreg" and loaded.wall_time == pytest.approx(res.wall_time)
    assert loaded.at(1, "nc3") == pytest.approx(float(res.history["nc3"][1])) and loaded.final("loss") == res.history["loss"][-1]
    with pytest.raises(KeyError, match="epoch 7 was not recorded"):
        loaded.at(7, "nc1")

    # without standardisation and without a test set: the raw images, no test_ columns, n_test 0
    raw = run_collapse("logreg", {k: data[k] for k in ("x_train", "y_train")}, 1, standardise=False,
                       run=RunControl(seed=5, progress=False, device="cpu"))
    assert raw.history["nc1"][0] == pytest.approx(collapse_metrics(x.flatten(1), data["y_train"], w, b).nc1, rel=1e-5)
    assert not [k for k in raw.history if k.startswith("test_")]
    assert raw.settings["n_test"] == 0 and raw.settings["standardise"] is False and raw.settings["source"] == "?"
    # standardised without a test set
    alone = run_collapse("logreg", {k: data[k] for k in ("x_train", "y_train")}, 1,
                         run=RunControl(seed=5, progress=False, device="cpu"))
    assert alone.history["nc1"][0] == pytest.approx(train0.nc1, rel=1e-5) and alone.settings["n_test"] == 0
    # the default recipe is the book's CIFAR one
    assert {k: raw.settings[k] for k in CIFARHyperParams().train_kwargs()} == CIFARHyperParams().train_kwargs()


def test_run_collapse_messages():
    from nadlib.collapse import run_collapse
    from nadlib import RunControl

    data = _collapse_data()
    run = RunControl(progress=False, device="cpu")
    cases = [((data["x_train"], data["y_train"]), 1, {}, TypeError, r"data must be a dict with at least 'x_train' and 'y_train'"),
             ({"x_train": data["x_train"]}, 1, {}, TypeError, r"data must be a dict with at least 'x_train' and 'y_train'"),
             ({"y_train": data["y_train"]}, 1, {}, TypeError, r"data must be a dict with at least 'x_train' and 'y_train'"),
             (data, 0, {}, ValueError, "epochs"),
             (data, 1, {"hp": {"lr": 0.1}}, TypeError, r"hp must be a nadlib.CIFARHyperParams, got dict: \{'lr': 0.1\}"),
             (data, 1, {"on_epoch_end": 3}, TypeError, r"on_epoch_end must be callable as f\(epoch, model, tracker\)"),
             (dict(data, x_train=data["x_train"].flatten(1)), 1, {}, ValueError,
              r"x_train must have shape \(N, C, H, W\), got \(24, 3072\)"),
             (dict(data, y_train=data["y_train"].float()), 1, {}, TypeError, "y_train must hold integer class indices"),
             (dict(data, x_train=[[1.0]]), 1, {}, TypeError, "x_train must be a torch.Tensor or numpy array"),
             (dict(data, x_test=[[1.0]]), 1, {}, TypeError, "x_test must be a torch.Tensor or numpy array"),
             (dict(data, y_test=data["y_test"].float()), 1, {}, TypeError, "y_test must hold integer class indices")]
    for d, epochs, kwargs, err, message in cases:
        with pytest.raises(err, match=message):
            run_collapse("logreg", d, epochs, run=run, **kwargs)


def test_separable_data_is_two_draws_of_d_v():
    from nadlib.collapse import separable_data
    from nadlib.config import PAPER_RECIPE
    from nadlib.data import linear_separable
    from nadlib.directions import fourier_direction
    from nadlib.training import TEST_SEED_OFFSET

    v = fourier_direction(2, 1)
    d = separable_data(v, 10, 6, sigma=2.0, epsilon=0.5, seed=3, device="cpu")
    x, y = linear_separable(v, 10, 2.0, 0.5, seed=3, device="cpu")
    xt, yt = linear_separable(v, 6, 2.0, 0.5, seed=3 + TEST_SEED_OFFSET, device="cpu")
    assert torch.equal(d["x_train"], x) and torch.equal(d["x_test"], xt)
    assert d["y_train"].tolist() == [int(t > 0) for t in y] and d["y_test"].tolist() == [int(t > 0) for t in yt]
    assert set(d["y_train"].tolist()) == {0, 1} and d["y_train"].dtype == torch.long
    assert (d["n_train"], d["n_test"], d["source"]) == (10, 6, "D(v), sigma 2.0, epsilon 0.5, seed 3")
    default = separable_data(v, 4, 4)
    x0, _ = linear_separable(v, 4, PAPER_RECIPE.sigma, PAPER_RECIPE.epsilon, seed=0)
    assert torch.equal(default["x_train"], x0)
    assert default["source"] == f"D(v), sigma {PAPER_RECIPE.sigma}, epsilon {PAPER_RECIPE.epsilon}, seed 0"


def test_collapse_run_loading_and_zero_error_epoch(tmp_path):
    from nadlib.collapse import first_zero_error_epoch
    from nadlib.results import save_artifact

    save_artifact(tmp_path / "bare.npz", {"epoch": np.arange(3), "nc1": np.ones(3)}, {})
    bare = CollapseRun.from_artifact(tmp_path / "bare.npz")
    assert (bare.arch, bare.wall_time) == ("?", 0.0) and bare.zero_error_epoch is None
    for arrays in ({"epoch": np.arange(3)}, {"nc1": np.ones(3)}):
        save_artifact(tmp_path / "other.npz", arrays, {})
        with pytest.raises(ValueError, match=r"other.npz' is not a collapse artifact \(missing 'nc1' or 'epoch'\)"):
            CollapseRun.from_artifact(tmp_path / "other.npz")
    hist = {"epoch": np.array([0, 2, 4, 6]), "accuracy": np.array([0.5, 0.99, 1.0, 1.0])}
    assert first_zero_error_epoch(hist) == 4
    assert first_zero_error_epoch({"epoch": np.array([0])}) is None and first_zero_error_epoch({}) is None
    assert first_zero_error_epoch({"epoch": np.array([1, 2]), "accuracy": np.array([0.5, 0.9])}) is None


# --------------------------------------------------------------------------------------------------
# non-linearity signatures: token activations, functional keyword arguments, settings, messages
# --------------------------------------------------------------------------------------------------

class _Tokens(nn.Module):
    """N x T x D tokens (T = 3, D = 2) through a linear map and a GELU, then a leaky ReLU with a keyword slope."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.act = nn.GELU()

    def forward(self, x):
        return nn.functional.leaky_relu(self.act(self.lin(x)), negative_slope=0.3)


def test_signature_of_token_activations_by_hand():
    """tokens="mean": each layer's features are the token means (D = 2), so 5 samples suffice; "flatten": the
    T x D = 6 features of each sample, which need more than 6.  Each score equals affinity_score of the
    (input, output) pair computed here, the leaky ReLU with its keyword slope 0.3 (not the default 0.01)."""
    from nadlib.affinity import nonlinearity_signature
    from nadlib import RunControl

    torch.manual_seed(0)
    model = _Tokens()
    x = torch.randn(40, 3, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pre = model.lin(x)
        mid = nn.functional.gelu(pre)
        out = torch.where(mid > 0, mid, 0.3 * mid)
    sig = nonlinearity_signature(model, x[:5], n_samples=5, tokens="mean", run=RunControl(progress=False, seed=3))
    assert sig.names == ("act", "leaky_relu") and sig.dims == (2, 2) and sig.kinds == ("GELU", "leaky_relu")
    assert sig.meta["tokens"] == "mean" and sig.n_samples == 5
    assert sig.rho[0] == pytest.approx(affinity_score(pre[:5].double().mean(1), mid[:5].double().mean(1)), abs=1e-9)
    assert sig.rho[1] == pytest.approx(affinity_score(mid[:5].double().mean(1), out[:5].double().mean(1)), abs=1e-9)
    with pytest.raises(ValueError, match=r"layer 'act' has 6 features but only 5 samples"):
        nonlinearity_signature(model, x[:5], n_samples=5, run=RunControl(progress=False))
    flat = nonlinearity_signature(model, x, n_samples=40, run=RunControl(progress=False))
    assert flat.dims == (6, 6) and flat.meta["tokens"] == "flatten"
    assert flat.rho[1] == pytest.approx(affinity_score(mid.flatten(1).double(), out.flatten(1).double()), abs=1e-9)
    with pytest.raises(ValueError, match=r"tokens must be 'flatten' or 'mean', got 'MEAN'"):
        nonlinearity_signature(model, x, tokens="MEAN")


class _Narrow(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.lin(x))


def test_signature_settings_sampling_and_messages():
    from nadlib.affinity import nonlinearity_signature
    from nadlib import RunControl

    torch.manual_seed(0)
    model = _Narrow()
    x = torch.randn(3000, 3, generator=torch.Generator().manual_seed(2))
    run = RunControl(progress=False, seed=7)
    sig = nonlinearity_signature(model, x, run=run)  # default: 2,048 of the 3,000 inputs, drawn with run.seed
    assert sig.n_samples == 2048
    idx = torch.randperm(3000, generator=torch.Generator().manual_seed(7))[:2048].sort().values
    with torch.no_grad():
        pre = model.lin(x[idx])
    assert sig.rho[0] == pytest.approx(affinity_score(pre, torch.tanh(pre)), abs=1e-9)
    assert set(sig.meta) == {"seed", "device", "wall_time", "tokens"}
    assert (sig.meta["seed"], sig.meta["device"], sig.meta["tokens"]) == (7, "cpu", "flatten")
    assert 0 <= sig.meta["wall_time"] < 60
    # numpy inputs give the same signature; a width of 4 needs n_samples > 4 (5 is enough, 4 is not)
    assert nonlinearity_signature(model, x[:5].numpy(), n_samples=5, run=run).rho[0] == pytest.approx(
        nonlinearity_signature(model, x[:5], n_samples=5, run=run).rho[0], abs=1e-12)
    with pytest.raises(ValueError, match=r"layer 'act' has 4 features but only 4 samples are used; pass n_samples > 4"):
        nonlinearity_signature(model, x[:4], n_samples=4, run=run)
    # 1-D inputs (one number per sample) and the smallest sizes allowed: n_samples 2 of a 1-wide layer, batch 1
    one = nn.Sequential(nn.Unflatten(0, (-1, 1)), nn.ReLU())
    assert len(nonlinearity_signature(one, torch.tensor([-1.0, 2.0]), n_samples=2, batch_size=1, run=run)) == 1
    cases = [(dict(model=3), TypeError, "model must be a torch.nn.Module, got int"),
             (dict(inputs=[[1.0, 2.0, 3.0]]), TypeError, r"inputs must be a torch.Tensor \(or numpy array\), got list"),
             (dict(n_samples=2.0), TypeError, "n_samples must be an int, got float"),
             (dict(batch_size="8"), TypeError, "batch_size must be an int, got str"),
             (dict(n_samples=1), ValueError, "need n_samples >= 2 and batch_size >= 1, got 1 and 256"),
             (dict(batch_size=0), ValueError, "need n_samples >= 2 and batch_size >= 1, got 2048 and 0"),
             (dict(inputs=x[:1]), ValueError, r"inputs must hold at least 2 samples along dimension 0, got shape \(1, 3\)"),
             (dict(inputs=torch.tensor(1.0)), ValueError, r"inputs must hold at least 2 samples along dimension 0, got shape \(\)"),
             (dict(inputs=torch.full((10, 3), float("inf"))), ValueError, "^inputs contain NaN or infinite values$"),
             (dict(layers=[1]), TypeError, r"^layers must be a sequence of layer names \(str\), e.g. \['features.1'\]$"),
             (dict(model=nn.Linear(3, 3), inputs=x[:10]), ValueError,
              r"^Linear has no activation layers that nadlib can see \(activation modules or functional activations such as torch.relu\)$"),
             (dict(model=nn.Sequential(nn.Linear(3, 3), nn.Threshold(0.0, float("inf"))), inputs=x[:10]), ValueError,
              r"^layer '1' produced NaN or infinite values$")]
    for kwargs, err, message in cases:
        args = dict(model=model, inputs=x, run=run)
        args.update(kwargs)
        with pytest.raises(err, match=message):
            nonlinearity_signature(**args)
    # 1 < n_samples: with 2 samples and a 4-wide layer the message is about the width, not the count
    with pytest.raises(ValueError, match="too few samples"):
        nonlinearity_signature(model, x[:2], n_samples=2, run=run)


def test_signature_repr_by_hand():
    from nadlib.affinity import Signature

    names = tuple(f"layer{i}" for i in range(14))
    sig = Signature(names, np.linspace(0.2, 0.9, 14), 100, dims=tuple(range(1, 15)), kinds=("ReLU",) * 14,
                    meta={"arch": "toy"})
    lines = repr(sig).split("\n")
    assert lines[0] == "Signature(toy: 14 activation layers, n_samples=100, rho mean 0.550, min 0.200, max 0.900)"
    assert lines[1] == "    0 layer0                   ReLU     d=1     rho=0.2000"
    assert lines[7] == "  ... (4 more)" and len(lines) == 12
    assert lines[-1] == "   13 layer13                  ReLU     d=14    rho=0.9000"
    assert repr(Signature((), np.zeros(0), 10)) == "Signature(network: no activation layers)"
    short = Signature(("a", "b"), np.array([0.5, 0.25]), 10, dims=(3, 4), kinds=("Tanh", "relu"))
    assert repr(short).split("\n") == ["Signature(network: 2 activation layers, n_samples=10, rho mean 0.375, min 0.250, max 0.500)",
                                       "    0 a                        Tanh     d=3     rho=0.5000",
                                       "    1 b                        relu     d=4     rho=0.2500"]
    np.testing.assert_array_equal(short.depth, [0.5, 1.0])


def test_nad_statistics_round_trip_dtypes_and_merge_messages():
    """from_arrays restores float64 sums and int64 counts even from float32 / int32 arrays (a checkpoint
    written elsewhere); merge of a single part is that part; its messages name the problem."""
    g = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    st = NADStatistics(3)
    assert st.count.dtype == np.int64 and st.s1.shape == (2, 3) and st.s2.shape == (2, 3, 3)
    st.add(g, 0)
    assert st.arrays()["count"].dtype == np.int64 and st.arrays()["s1"].shape == (2, 3)
    arrays = {"count": st.count.astype(np.int32), "s1": st.s1.numpy().astype(np.float32),
              "s2": st.s2.numpy().astype(np.float32)}
    back = NADStatistics.from_arrays(arrays)
    assert back.count.dtype == np.int64 and back.s1.dtype == torch.float64 and back.s2.dtype == torch.float64
    assert back.count.tolist() == [3, 3] and back.dim == 3
    np.testing.assert_array_equal(back.s1.numpy(), arrays["s1"].astype(np.float64))
    back.add(g[:1], 6)  # float64 sums: adding a float64 gradient keeps full precision
    assert back.s1.dtype == torch.float64 and back.count.tolist() == [4, 3]
    one = NADStatistics.merge([st])
    assert torch.equal(one.s2, st.s2) and one.count.tolist() == [3, 3] and one is not st
    for parts, message in (([], r"^merge needs a non-empty list of NADStatistics$"),
                           ([st, "x"], r"^merge needs a non-empty list of NADStatistics$"),
                           ([st, NADStatistics(4)], r"^cannot merge statistics of different dimensions \[3, 4\]$")):
        with pytest.raises(ValueError, match=message):
            NADStatistics.merge(parts)
    with pytest.raises(ValueError, match="a covariance needs at least 2 networks"):
        NADStatistics(3).covariance(0)


class _HeadFirst(nn.Module):
    """The classifier is registered *before* the body, so only ``head="head"`` finds it."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.body = nn.Linear(5, 4)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_collapse_tracker_measures_the_named_head_on_train_and_test_sets():
    from nadlib.collapse import CollapseTracker

    torch.manual_seed(0)
    model = _HeadFirst()
    g = torch.Generator().manual_seed(1)
    x, xt = torch.randn(30, 5, generator=g), torch.randn(15, 5, generator=g)
    y, yt = torch.arange(30) % 3, torch.arange(15) % 3
    tracker = CollapseTracker(model, x, y, xt, yt, batch_size=7, head="head")
    tracker(4, model)
    with torch.no_grad():
        h, ht = torch.relu(model.body(x)), torch.relu(model.body(xt))
    w, b = model.head.weight.detach(), model.head.bias.detach()
    train_m, test_m = collapse_metrics(h, y, w, b), collapse_metrics(ht, yt, w, b)
    hist = tracker.history()
    assert hist["epoch"].tolist() == [4] and len(tracker.rows) == 1
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4", "accuracy"):
        assert hist[key][0] == pytest.approx(getattr(train_m, key), rel=1e-6, abs=1e-7), key
        assert hist[f"test_{key}"][0] == pytest.approx(getattr(test_m, key), rel=1e-6, abs=1e-7), key
    assert hist["test_n_samples"][0] == 15 and hist["n_samples"][0] == 30 and hist["dim"][0] == 4
    no_test = CollapseTracker(model, x, y, head="head")
    with pytest.raises(ValueError, match="^this tracker has no test set$"):
        no_test.measure(model, test=True)
    assert no_test.history() == {} and no_test.zero_error_epoch is None


def test_collapse_messages_in_full():
    """The exact messages of the collapse inputs (the bad-input tests of test_collapse.py match fragments)."""
    from nadlib.collapse import CollapseTracker, penultimate_layer

    h, y, w = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 3)
    cases = [(dict(features=[[1.0]]), TypeError, r"^features must be a torch.Tensor or numpy array, got list$"),
             (dict(weight=torch.ones(3, 3, dtype=torch.long)), TypeError, r"^weight must be floating-point, got dtype torch.int64$"),
             (dict(weight=torch.ones(3)), ValueError, r"^weight must have shape \(C, D\), got \(3,\)$"),
             (dict(features=torch.ones(0, 3), labels=torch.zeros(0, dtype=torch.long)), ValueError, r"^features is empty \(N = 0\)$"),
             (dict(weight=torch.randn(13, 3), labels=torch.tensor([0, 1, 0, 1, 0, 1])), ValueError,
              r"^class\(es\) \[2, 3, 4, 5, 6, 7, 8, 9, 10, 11\] have no samples; every class needs at least one "
              r"\(class means are undefined otherwise\)$"),
             (dict(bias=[0.0, 0.0, 0.0]), TypeError, r"^bias must be a torch.Tensor or numpy array, got list$"),
             (dict(bias=torch.tensor([0.0, float("inf"), 0.0])), ValueError, r"^bias contains NaN or infinite values$"),
             (dict(labels=torch.tensor([True, False] * 3)), TypeError, r"^labels must hold integer class indices, got dtype torch.bool$"),
             (dict(labels=torch.zeros(6, dtype=torch.complex64)), TypeError, "^labels must hold integer class indices"),
             (dict(labels=np.array([0, 1, 2, 0, 1, 2], dtype=object)), TypeError, "^labels must be a numeric array, got dtype object$")]
    for kwargs, err, message in cases:
        args = dict(features=h, labels=y, weight=w, bias=None)
        args.update(kwargs)
        with pytest.raises(err, match=message):
            collapse_metrics(**args)
    # +-1 labels are the classes 0 (for -1) and 1 (for +1)
    h2, w2 = torch.randn(6, 2, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    pm = torch.tensor([-1, 1, 1, -1, 1, -1])
    assert collapse_metrics(h2, pm, w2) == collapse_metrics(h2, (pm > 0).long(), w2)

    with pytest.raises(TypeError, match="^model must be an nn.Module, got int$"):
        penultimate_layer(3)
    with pytest.raises(ValueError, match=r"^_HeadFirst has no module named 'nope'; its linear layers: \['head', 'body'\]$"):
        penultimate_layer(_HeadFirst(), "nope")
    with pytest.raises(ValueError, match=r"^the head '1' of Sequential is a ReLU, not an nn.Linear classifier$"):
        penultimate_layer(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), "1")
    with pytest.raises(ValueError, match="^Sequential has no nn.Linear layer, so it has no last-layer features$"):
        penultimate_layer(nn.Sequential(nn.ReLU()))
    model = _HeadFirst()
    assert penultimate_layer(model) is model.body and penultimate_layer(model, "head") is model.head

    x = torch.randn(5, 5)
    tracker_cases = [(dict(x_test=x), ValueError, "^give both x_test and y_test, or neither$"),
                     (dict(x=x.long()), TypeError, "^x must be floating-point, got dtype torch.int64$"),
                     (dict(x=[[1.0]]), TypeError, "^x must be a torch.Tensor or numpy array, got list$"),
                     (dict(x_test=torch.randn(5), y_test=torch.arange(5)), ValueError,
                      r"^x_test must be a non-empty batch \(N, ...\), got shape \(5,\)$"),
                     (dict(x=torch.randn(0, 5), y=torch.zeros(0, dtype=torch.long)), ValueError,
                      r"^x must be a non-empty batch \(N, ...\), got shape \(0, 5\)$"),
                     (dict(x_test=x, y_test=torch.arange(4)), ValueError, "^x_test has 5 samples but y_test has 4$"),
                     (dict(x_test=x, y_test=torch.arange(5).float()), TypeError, "^y_test must hold integer class indices"),
                     (dict(y=torch.arange(5).float()), TypeError, "^y must hold integer class indices"),
                     (dict(batch_size=0), ValueError, "batch_size")]
    for kwargs, err, message in tracker_cases:
        args = dict(x=x, y=torch.arange(5) % 3)
        args.update(kwargs)
        with pytest.raises(err, match=message):
            CollapseTracker(model, **args)
    one = CollapseTracker(model, x[:1], torch.tensor([0]), head="head")  # a single sample is a batch
    assert one.layer is model.head and one.x.shape == (1, 5)


def test_signature_of_a_bare_activation_module_is_named_by_its_type():
    """A model that *is* one activation module has the empty path: its layer is named by the module's type."""
    from nadlib.affinity import nonlinearity_signature
    from nadlib import RunControl

    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = nonlinearity_signature(nn.Tanh(), x, n_samples=50, run=RunControl(progress=False))
    assert sig.names == ("Tanh",) and sig.kinds == ("Tanh",) and sig.dims == (2,)
    assert sig.rho[0] == pytest.approx(affinity_score(x, torch.tanh(x)), abs=1e-12)


def test_affinity_inputs_in_full():
    """Exact messages and the smallest sample that is allowed: N = d + 1 (2 samples in 1-D)."""
    assert 0 <= affinity_score(np.array([0.0, 1.0]), np.array([1.0, 3.0])) <= 1
    assert affinity_score(np.arange(5), np.arange(5) ** 2) == pytest.approx(
        affinity_score(np.arange(5.0), np.arange(5.0) ** 2), abs=1e-12)  # integer arrays are numbers too
    cases = [(np.ones(5, dtype=bool), np.ones(5), TypeError, "^x must hold real numbers, got dtype bool$"),
             (np.ones(5), np.array(["a"] * 5), TypeError, "^y must hold real numbers, got dtype <U1$"),
             ([1.0, 2.0], np.ones(2), TypeError, r"^x must be a torch.Tensor or numpy.ndarray, got list$"),
             (torch.ones(5, dtype=torch.bool), torch.ones(5), TypeError, "^x must hold real numbers, got dtype torch.bool$"),
             (torch.ones(5), torch.ones(5, dtype=torch.complex64), TypeError, "^y must hold real numbers, got dtype torch.complex64$"),
             (np.ones((5, 2)), np.ones((5, 3)), ValueError,
              r"^x and y must have the same shape \(inputs and outputs of one activation\), got \(5, 2\) and \(5, 3\)$"),
             (np.ones((3, 3)), np.ones((3, 3)), ValueError,
              r"^too few samples for the dimension: 3 samples of 3 features; the covariances need more samples than "
              r"features \(at least 4, better many more\)$"),
             (np.array([0.0, np.nan, 1.0]), np.ones(3), ValueError, "^x contains NaN or infinite values$"),
             (np.ones(3), np.array([0.0, np.inf, 1.0]), ValueError, "^y contains NaN or infinite values$")]
    for x, y, err, message in cases:
        with pytest.raises(err, match=message):
            affinity_score(x, y)


def test_affine_fit_1d_by_hand():
    """affine_fit_1d("ReLU", mean, std, n, seed): n draws of N(mean, std^2) (torch, float64, seeded), the slope
    sqrt(var y / var x) (unbiased, + 1e-6 each), the intercept, T(x), the Pearson r and the exact score."""
    from nadlib.affinity import affine_fit_1d

    fit = affine_fit_1d("ReLU", mean=0.5, std=2.0, n=300, seed=3)
    x = 0.5 + 2.0 * torch.randn(300, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    np.testing.assert_array_equal(fit.x, x.numpy())
    xn, yn = x.numpy(), np.maximum(x.numpy(), 0)
    np.testing.assert_array_equal(fit.y, yn)
    slope = math.sqrt((yn.var(ddof=1) + REGULARISATION) / (xn.var(ddof=1) + REGULARISATION))
    assert fit.slope == pytest.approx(slope, rel=1e-9)
    assert fit.intercept == pytest.approx(yn.mean() - slope * xn.mean(), rel=1e-9)
    np.testing.assert_allclose(fit.tx, slope * (xn - xn.mean()) + yn.mean(), rtol=1e-9)
    r = np.corrcoef(xn, yn)[0, 1]
    assert fit.r == pytest.approx(r, rel=1e-9) and fit.rho_from_r == pytest.approx(1 - math.sqrt(1 - r), rel=1e-9)
    assert fit.rho == pytest.approx(affinity_score(xn, yn), abs=1e-12)
    assert (fit.name, fit.mean, fit.std) == ("ReLU", 0.5, 2.0)
    # a callable is named by its __name__; a constant output has r = 0 and slope 0
    const = affine_fit_1d(lambda t: torch.zeros_like(t), n=50)
    assert const.name == "<lambda>" and const.r == 0.0 and const.slope == 0.0 and const.rho == 1.0
    assert affine_fit_1d(torch.tanh, n=50).name == "tanh"
    default = affine_fit_1d(n=40)
    np.testing.assert_array_equal(default.x, torch.randn(40, generator=torch.Generator().manual_seed(0),
                                                         dtype=torch.float64).numpy())
    assert default.name == "ReLU" and len(affine_fit_1d().x) == 2000
    with pytest.raises(ValueError, match="^unknown function 'relu'; choose one of ReLU, leaky ReLU"):
        affine_fit_1d("relu")
    with pytest.raises(TypeError, match="^f must be a function name or a callable, got int$"):
        affine_fit_1d(3)
    for kwargs in (dict(std=0.0), dict(std=-1.0), dict(mean=float("nan")), dict(std="1")):
        with pytest.raises(ValueError, match="^need a finite mean and std > 0, got mean="):
            affine_fit_1d("ReLU", n=50, **kwargs)


def test_functions_1d_by_hand():
    from nadlib.affinity import FUNCTIONS_1D

    t = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    torch.testing.assert_close(FUNCTIONS_1D["2x + 1"](t), torch.tensor([-3.0, 0.0, 1.0, 4.0]))
    torch.testing.assert_close(FUNCTIONS_1D["x^3"](t), torch.tensor([-8.0, -0.125, 0.0, 3.375]))
    torch.testing.assert_close(FUNCTIONS_1D["leaky ReLU (0.1)"](t), torch.tensor([-0.2, -0.05, 0.0, 1.5]))


def test_relative_depth_and_relu_reference_by_hand():
    from nadlib.affinity import gaussian_relu_reference, relative_depth

    np.testing.assert_array_equal(relative_depth(4), [0.25, 0.5, 0.75, 1.0])
    assert relative_depth(0).size == 0
    # exact at the grid widths: unique(round(geomspace(1, 10, 3))) = 1, 3, 10; linear in between
    n = 40
    gen = torch.Generator().manual_seed(5)
    exact = {}
    for d in (1, 3, 10):
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        exact[d] = affinity_score(x, torch.relu(x))
    got = gaussian_relu_reference(n, [1, 2, 3, 6.5, 10, 7, 8, 9, 4, 5], seed=5, max_points=3)
    expected = [exact[1], (exact[1] + exact[3]) / 2, exact[3], exact[3] + (exact[10] - exact[3]) * 3.5 / 7, exact[10],
                exact[3] + (exact[10] - exact[3]) * 4 / 7, exact[3] + (exact[10] - exact[3]) * 5 / 7,
                exact[3] + (exact[10] - exact[3]) * 6 / 7, exact[3] + (exact[10] - exact[3]) / 7,
                exact[3] + (exact[10] - exact[3]) * 2 / 7]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # few widths: every one exact (no interpolation), default max_points 8
    gen = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(n, d, generator=gen, dtype=torch.float64) for d in (2, 4))
    np.testing.assert_allclose(gaussian_relu_reference(n, [4, 2]),
                               [affinity_score(x2, torch.relu(x2)), affinity_score(x1, torch.relu(x1))], atol=1e-12)
    assert gaussian_relu_reference(n, []).size == 0


def test_nad_low_frequency_energy_by_hand():
    """Directions that are single Fourier waves: all their energy at radius |k|.  (1, 0) and (0, 3) lie within
    radius 4 of the zero frequency, (8, 0) and (3, 3) (radius 4.24) do not."""
    from types import SimpleNamespace

    from nadlib.affinity import nad_low_frequency_energy
    from nadlib.directions import fourier_direction

    d = torch.stack([fourier_direction(*k) for k in ((1, 0), (8, 0), (0, 3), (3, 3))])[:, None]
    assert nad_low_frequency_energy(d, k=1) == pytest.approx(1.0, abs=1e-6)
    assert nad_low_frequency_energy(d, k=2) == pytest.approx(0.5, abs=1e-6)
    assert nad_low_frequency_energy(SimpleNamespace(directions=d), k=4) == pytest.approx(0.5, abs=1e-6)
    assert nad_low_frequency_energy(d, k=4, radius=4.3) == pytest.approx(0.75, abs=1e-6)
    assert nad_low_frequency_energy(d, k=4, radius=0.5) == pytest.approx(0.0, abs=1e-6)
    assert nad_low_frequency_energy(d[[0, 2, 1, 3]]) == pytest.approx(0.5, abs=1e-6)  # default k = 10: all four


def test_subspace_overlap_inputs_in_full():
    a, b = np.eye(4)[:3], np.eye(4)[[0, 1, 3]]
    assert subspace_overlap(a.tolist(), torch.from_numpy(b)) == pytest.approx(2 / 3, abs=1e-12)  # lists and tensors
    tall = np.eye(10)[:3]  # 3 rows of length 10: k may not exceed the 3 rows
    cases = [(tall, tall, 5, r"^k=5 but A has only 3 rows$"),
             (tall, np.eye(10)[:2], 3, r"^k=3 but B has only 2 rows$"),
             (np.ones(4), np.ones(4), None, r"^A must hold one direction per row \(2-D or more\), got shape \(4,\)$"),
             (tall, np.ones(3), None, r"^B must hold one direction per row \(2-D or more\), got shape \(3,\)$"),
             (np.eye(4)[:2], np.eye(4)[:3], None, r"^A and B have different numbers of rows \(2 vs 3\); pass k$"),
             (np.eye(4)[:2], np.eye(5)[:2], None, r"^A and B live in different dimensions \(4 vs 5\)$"),
             (np.full((2, 2), np.nan), np.eye(2), None, "^A contains NaN or infinite values$"),
             (np.eye(2), np.full((2, 2), np.inf), None, "^B contains NaN or infinite values$"),
             (1.01 * np.eye(3), np.eye(3), None, r"^the rows of A must be orthonormal \(max \|A A\^T - I\| = 0.02\); "
                                                 r"orthonormalise them first, e.g. with torch.linalg.qr$"),
             (np.eye(3), 1.01 * np.eye(3), None, r"^the rows of B must be orthonormal")]
    for x, y, k, message in cases:
        with pytest.raises(ValueError, match=message):
            subspace_overlap(x, y, k)
    with pytest.raises((TypeError, ValueError), match="k"):
        subspace_overlap(tall, tall, 0)
    # within the 1e-3 tolerance, nearly orthonormal rows are accepted as they are
    assert subspace_overlap(1.0004 * np.eye(3), np.eye(3)) == pytest.approx(1.0004 ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="^a covariance needs at least 2 networks$"):
        NADStatistics(2).covariance()


def test_affinity_helpers_at_their_boundaries():
    """Boundaries the survivors of mutation testing showed: a small-scale sample (||x|| ||y|| < 1) still has its
    correlation; a callable without __name__; exactly max_points widths are all exact; the radius itself is
    inside; one layer is at depth 1; 12 rows are printed in full, 13 are shortened."""
    import functools

    from nadlib.affinity import Signature, affine_fit_1d, gaussian_relu_reference, nad_low_frequency_energy, relative_depth
    from nadlib.directions import fourier_direction

    small = affine_fit_1d("2x + 1", std=0.001, n=50)
    assert small.r == pytest.approx(1.0, abs=1e-9) and small.slope == pytest.approx(
        math.sqrt((small.y.var(ddof=1) + REGULARISATION) / (small.x.var(ddof=1) + REGULARISATION)), rel=1e-9)
    assert affine_fit_1d(functools.partial(torch.mul, other=2.0), n=50).name == "f"
    gen = torch.Generator().manual_seed(0)
    exact = {}
    for d in (1, 5, 6):
        x = torch.randn(30, d, generator=gen, dtype=torch.float64)
        exact[d] = affinity_score(x, torch.relu(x))
    np.testing.assert_allclose(gaussian_relu_reference(30, [6, 1, 5], max_points=3), [exact[6], exact[1], exact[5]],
                               atol=1e-12)
    wave = fourier_direction(0, 3)[None, None]
    assert nad_low_frequency_energy(wave, k=1, radius=3.0) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(relative_depth(1), [1.0])
    for n_layers, lines in ((12, 13), (13, 12)):
        sig = Signature(tuple(f"l{i}" for i in range(n_layers)), np.full(n_layers, 0.5), 100,
                        dims=(1,) * n_layers, kinds=("ReLU",) * n_layers)
        assert len(repr(sig).split("\n")) == lines
