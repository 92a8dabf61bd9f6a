import math

import pytest
import torch

import nadlib
from nadlib.directions import fourier_basis, fourier_direction, fourier_energy, fourier_grid, is_self_conjugate, mirror


def test_fourier_direction_is_real_unit_norm_sine():
    v = fourier_direction(3, 5, size=32)
    assert v.shape == (32, 32) and v.dtype == torch.float32
    assert abs(v.norm().item() - 1) < 1e-6
    r, c = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    expected = torch.sin(2 * math.pi * (5 * r + 3 * c) / 32)
    assert torch.allclose(v, expected / expected.norm(), atol=1e-6)


def test_single_dft_coefficient_pair():
    v = fourier_direction(3, 5)
    spec = torch.fft.fft2(v.double())
    big = (spec.abs() > 1e-6).nonzero().tolist()
    assert sorted(big) == sorted([[5, 3], [32 - 5, 32 - 3]])  # (row=ky, col=kx) and its mirror
    assert spec[5, 3].real.abs() < 1e-6  # purely imaginary coefficient


def test_mirror_gives_opposite_direction():
    v = fourier_direction(3, 5)
    assert torch.allclose(fourier_direction(*mirror(3, 5)), -v, atol=1e-6)


@pytest.mark.parametrize("freq", [(0, 0), (16, 0), (0, 16), (16, 16)])
def test_self_conjugate_frequencies_use_cosine(freq):
    assert is_self_conjugate(*freq)
    v = fourier_direction(*freq)
    assert abs(v.norm().item() - 1) < 1e-6 and torch.isfinite(v).all()


@pytest.mark.parametrize("size", [8, 9, 32])
def test_fourier_basis_orthonormal(size):
    basis = fourier_basis(size, dtype=torch.float64)
    assert basis.shape == (size * size, size * size)
    assert torch.allclose(basis @ basis.T, torch.eye(size * size, dtype=torch.float64), atol=1e-10)


def test_fourier_grid_one_per_symmetric_pair():
    grid = fourier_grid(32)
    assert len(grid) == (32 * 32 - 4) // 2 + 4  # pairs plus the four self-conjugate frequencies
    assert all(mirror(*f) not in set(grid) or mirror(*f) == f for f in grid)
    assert len(fourier_grid(32, stride=4, half=False)) == 64


def test_fourier_energy_of_direction_is_concentrated():
    e = fourier_energy(fourier_direction(3, 5), shift=False)
    assert abs(e.sum().item() - 1) < 1e-9
    assert abs(e[5, 3].item() - 0.5) < 1e-9 and abs(e[32 - 5, 32 - 3].item() - 0.5) < 1e-9
    assert fourier_energy(torch.randn(4, 3, 8, 8)).shape == (4, 8, 8)


@pytest.mark.parametrize("kx, ky, err", [(32, 0, ValueError), (-1, 0, ValueError), (1.5, 0, TypeError)])
def test_bad_frequencies(kx, ky, err):
    with pytest.raises(err, match="kx"):
        fourier_direction(kx, ky)


def test_bad_size_and_stride():
    with pytest.raises(ValueError, match="size"):
        fourier_direction(0, 0, size=0)
    with pytest.raises(ValueError, match="stride"):
        fourier_grid(32, stride=0)
    with pytest.raises(ValueError, match="at least 2 dims"):
        fourier_energy(torch.ones(5))


def test_fill_symmetric():
    grid = nadlib.fill_symmetric({(3, 5): 0.7}, size=32)
    assert grid[5, 3] == 0.7 and grid[32 - 5, 32 - 3] == 0.7
    assert torch.isnan(torch.tensor(grid)).sum() == 32 * 32 - 2


def test_band_keeps_the_central_block():
    from nadlib.directions import signed_frequency

    grid = fourier_grid(32, band=8, half=False)
    assert len(grid) == 16 * 16
    assert all(-8 <= signed_frequency(k) < 8 for f in grid for k in f)
    assert len(fourier_grid(32, band=8)) < 16 * 16  # one per symmetric pair
    with pytest.raises(ValueError, match="band"):
        fourier_grid(32, band=17)
