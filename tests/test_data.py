import math

import pytest
import torch

from nadlib import data as D
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


@pytest.mark.parametrize("n, plus", [(10, 5), (11, 5)])
def test_labels_balanced_and_signed(n, plus):
    _, y = linear_separable(fourier_direction(1, 1), n, device="cpu")
    assert set(y.tolist()) == {-1, 1}
    assert int((y > 0).sum()) == plus and int((y < 0).sum()) == n - plus  # an odd n has the extra -1


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


# ---------------------------------------------------------------------------------------------- exact values

def test_as_direction_by_hand():
    """(3, 4) / 5 = (0.6, 0.8); integer input is accepted; a 2-D direction gets one channel."""
    for dtype in (torch.int32, torch.int64, torch.float64):
        u = D.as_direction(torch.tensor([[3, 4]], dtype=dtype))
        assert u.dtype == torch.float32 and u.shape == (1, 1, 2)
        torch.testing.assert_close(u, torch.tensor([[[0.6, 0.8]]]), atol=1e-7, rtol=0)
    # the norm is taken in float64: in float32 the squares of 1e-30 underflow to 0
    u = D.as_direction(torch.full((2, 1, 1), 1e-30, dtype=torch.float32))
    torch.testing.assert_close(u, torch.full((2, 1, 1), 0.5 ** 0.5), atol=1e-7, rtol=0)
    assert D.as_direction([[0.0, -2.0]]).tolist() == [[[0.0, -1.0]]]


@pytest.mark.parametrize("v, err, message", [
    (torch.tensor([[True, False]]), TypeError, "v must be a real tensor, got dtype torch.bool"),
    (torch.ones(2, 2, dtype=torch.complex64), TypeError, "v must be a real tensor, got dtype torch.complex64"),
    (torch.ones(4), ValueError, "v must have shape (H, W) or (C, H, W), got (4,)"),
    (torch.ones(1, 1, 2, 2), ValueError, "v must have shape (H, W) or (C, H, W), got (1, 1, 2, 2)"),
    (torch.tensor([[1.0, float("inf")]]), ValueError, "v contains NaN or infinite values"),
    (torch.zeros(2, 2, dtype=torch.int64), ValueError, "v is the zero vector; a direction needs a non-zero norm"),
])
def test_as_direction_messages(v, err, message):
    with pytest.raises(err) as info:
        D.as_direction(v)
    assert str(info.value) == message
    with pytest.raises(err, match="^u "):
        D.as_direction(v, name="u")


@pytest.mark.parametrize("n, plus", [(1, 0), (2, 1), (10, 5), (11, 5)])
def test_balanced_signs_counts(n, plus):
    """n // 2 labels +1 and the rest -1 (an odd n has the extra -1), in a seeded random order."""
    y = D.balanced_signs(n, torch.Generator().manual_seed(0), "cpu")
    assert y.dtype == torch.float32 and len(y) == n
    assert int((y == 1).sum()) == plus and int((y == -1).sum()) == n - plus
    big = D.balanced_signs(1000, torch.Generator().manual_seed(0), "cpu")
    assert not torch.equal(big, big.sort(descending=True).values)  # shuffled, not sorted


def test_linear_separable_defaults_are_sigma_3_epsilon_1_seed_0():
    v = fourier_direction(2, 5)
    x, y = linear_separable(v, 64, device="cpu")
    x2, y2 = linear_separable(v, 64, sigma=3.0, epsilon=1.0, seed=0, device="cpu")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (64, 1, 32, 32)
    # the labels are the +-1 of balanced_signs drawn first from the seeded generator
    assert torch.equal(y, D.balanced_signs(64, torch.Generator().manual_seed(0), "cpu").long())


def test_linear_separable_size_limit(monkeypatch):
    monkeypatch.setattr(D, "MAX_ELEMENTS", 64)
    v = torch.ones(4, 4)  # 16 numbers per sample
    assert linear_separable(v, 4, device="cpu")[0].shape == (4, 1, 4, 4)  # exactly 64: allowed
    with pytest.raises(ValueError) as info:
        linear_separable(v, 5, device="cpu")
    assert str(info.value) == ("n=5 samples of 16 numbers each exceed 64 numbers (8 GiB); draw the data in "
                               "smaller parts")


def test_linear_separable_bounds_on_sigma_and_epsilon():
    v = torch.ones(2, 2)
    x, y = linear_separable(v, 4, sigma=1e6, epsilon=1e6, device="cpu")  # the largest allowed
    torch.testing.assert_close(x.flatten(1) @ torch.full((4,), 0.5), y * 5e5, rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="^sigma must be at most 1e\\+06"):
        linear_separable(v, 4, sigma=2e6, device="cpu")
    with pytest.raises(ValueError, match="^epsilon must be at most 1e\\+06"):
        linear_separable(v, 4, epsilon=2e6, device="cpu")
    for name in ("sigma", "epsilon"):
        with pytest.raises(ValueError, match=f"^{name} must be at most 1e\\+06, got 1000000.5$"):
            linear_separable(v, 4, device="cpu", **{name: 1e6 + 0.5})
    with pytest.raises(ValueError, match="^n must be a positive int"):
        linear_separable(v, 0, device="cpu")
    with pytest.raises(ValueError, match="^seed must be in"):
        linear_separable(v, 4, seed=-1, device="cpu")
