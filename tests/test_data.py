import math

import pytest
import torch

from nadlib import fourier_direction, linear_separable


def test_projection_is_exactly_half_margin():
    v = fourier_direction(7, 2)
    x, y = linear_separable(v, 2000, sigma=3.0, epsilon=1.0, seed=1, device="cpu")
    proj = x.flatten(1).double() @ v.flatten().double()
    # exact up to float32 rounding of x (|x_i| ~ 3, 1024 terms): far below 1e-4
    assert torch.allclose(proj, y.double() * 0.5, atol=1e-4)


def test_orthogonal_noise_has_variance_sigma_squared():
    sigma, n, d = 2.5, 1000, 32 * 32
    v = fourier_direction(1, 9)
    x, y = linear_separable(v, n, sigma=sigma, epsilon=2.0, seed=3, device="cpu")
    flat = x.flatten(1).double()
    resid = flat - (flat @ v.flatten().double())[:, None] * v.flatten().double()
    # ||resid||^2 / sigma^2 ~ chi^2 with n (d - 1) degrees of freedom: relative std sqrt(2 / (n (d - 1)))
    est = resid.pow(2).sum() / (n * (d - 1))
    rel_std = math.sqrt(2 / (n * (d - 1)))
    assert abs(est / sigma**2 - 1) < 6 * rel_std
    # along one fixed orthogonal direction the variance is sigma^2 (chi^2_n: relative std sqrt(2 / n))
    u = fourier_direction(4, 4).flatten().double()
    var_u = (flat @ u).pow(2).mean()
    assert abs(var_u / sigma**2 - 1) < 6 * math.sqrt(2 / n)
    # the noise does not depend on the label: class means along u agree within 6 standard errors
    pos, neg = (flat @ u)[y > 0], (flat @ u)[y < 0]
    assert abs(pos.mean() - neg.mean()) < 6 * sigma * math.sqrt(1 / len(pos) + 1 / len(neg))


@pytest.mark.parametrize("n", [10, 11])
def test_labels_balanced_and_signed(n):
    _, y = linear_separable(fourier_direction(1, 1), n, device="cpu")
    assert set(y.tolist()) == {-1, 1}
    assert abs(int((y > 0).sum()) - int((y < 0).sum())) <= 1


def test_same_seed_same_data_other_seed_other_data():
    v = fourier_direction(2, 3)
    a = linear_separable(v, 64, seed=5, device="cpu")
    b = linear_separable(v, 64, seed=5, device="cpu")
    c = linear_separable(v, 64, seed=6, device="cpu")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_direction_is_normalised_and_multichannel_works():
    v = torch.randn(3, 8, 8)
    x, y = linear_separable(5 * v, 100, device="cpu")
    assert x.shape == (100, 3, 8, 8)
    proj = x.flatten(1).double() @ (v / v.norm()).flatten().double()
    assert torch.allclose(proj, y.double() * 0.5, atol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(v=torch.zeros(32, 32), n=10), "zero vector"),
    (dict(v=torch.full((32, 32), float("nan")), n=10), "NaN"),
    (dict(v=torch.ones(32), n=10), "shape"),
    (dict(v=torch.ones(2, 1, 32, 32), n=10), "shape"),
    (dict(v=torch.ones(32, 32), n=0), "positive int"),
    (dict(v=torch.ones(32, 32), n=10, sigma=-1.0), "sigma"),
    (dict(v=torch.ones(32, 32), n=10, epsilon=0.0), "epsilon"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        linear_separable(**kwargs, device="cpu")


def test_cuda_request_without_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        linear_separable(torch.ones(4, 4), 4, device="cuda")
