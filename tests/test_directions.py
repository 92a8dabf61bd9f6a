import math

import numpy as np
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
    # the sine vanishes on the grid; the cosine of (kx, ky) in {0, 16}^2 is (-1)^(kx c / 16 + ky r / 16):
    # every pixel +-1/32 (unit norm over 1024 pixels)
    assert is_self_conjugate(*freq)
    v = fourier_direction(*freq)
    r, c = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    sign = 1 - 2 * ((freq[0] // 16 * c + freq[1] // 16 * r) % 2)
    torch.testing.assert_close(v, sign.float() / 32, atol=1e-7, rtol=0)


@pytest.mark.parametrize("kx, ky, size, expected", [(0, 0, 32, True), (16, 0, 32, True), (16, 16, 32, True),
                                                     (8, 0, 32, False), (0, 1, 32, False), (0, 4, 8, True),
                                                     (2, 0, 8, False), (3, 0, 6, True), (3, 0, 7, False)])
def test_self_conjugate_means_each_index_is_0_or_half_the_size(kx, ky, size, expected):
    assert is_self_conjugate(kx, ky, size) is expected


def test_fourier_direction_size_and_dtype_arguments():
    v = fourier_direction(1, 2, size=6, dtype=torch.float64)
    r, c = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(6.0, dtype=torch.float64),
                          indexing="ij")
    wave = torch.sin(2 * math.pi * (2 * r + c) / 6)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, wave / wave.norm(), atol=1e-12, rtol=0)
    assert is_self_conjugate(4, 0) is False  # default size 32: 2*4 = 8 is not a multiple of 32


def test_mirror_by_hand():
    assert mirror(3, 5) == (29, 27) and mirror(0, 7) == (0, 25) and mirror(3, 0, size=8) == (5, 0)


def test_signed_frequency_is_the_fftshift_position():
    """k -> k or k - size as numpy's fftfreq(size, 1/size) gives it (even size: size/2 -> -size/2)."""
    from nadlib.directions import signed_frequency

    for size in (5, 8, 32):
        expected = np.fft.fftfreq(size, 1 / size).round().astype(int).tolist()
        assert [signed_frequency(k, size) for k in range(size)] == expected
    assert signed_frequency(16) == -16 and signed_frequency(15) == 15  # default size 32
    with pytest.raises(ValueError, match=r"^frequency=8 out of range \[0, 7\]$"):
        signed_frequency(8, 8)


def test_fourier_grid_defaults_and_bounds():
    assert fourier_grid() == fourier_grid(32, 1, True, None) and len(fourier_grid()) == 514
    # stride 3 on size 8: kx, ky in {0, 3, 6}, whose mirrors (0, 5, 2) are off the grid, so all 9 stay;
    # stride = size keeps only (0, 0)
    assert fourier_grid(8, stride=3) == [(kx, ky) for ky in (0, 3, 6) for kx in (0, 3, 6)]
    assert fourier_grid(8, stride=8) == [(0, 0)]
    # size 8, half: one frequency of each of the (64 - 4) / 2 pairs plus the 4 self-conjugate ones
    half = fourier_grid(8)
    assert len(half) == 34 and {f for f in half} | {mirror(*f, size=8) for f in half} == \
        {(kx, ky) for kx in range(8) for ky in range(8)}
    with pytest.raises(ValueError, match="^stride must be at most 8, got 9$"):
        fourier_grid(8, stride=9)
    with pytest.raises(ValueError, match=r"^band must be an int in \[1, 4\], got 0$"):
        fourier_grid(8, band=0)
    assert fourier_grid(8, band=1, half=False) == [(0, 0), (7, 0), (0, 7), (7, 7)]


def test_fourier_energy_of_a_cosine_plus_constant():
    """v = 1 + cos(2 pi (ky r + kx c) / N): DFT N^2 at (0, 0) and N^2 / 2 at (ky, kx) and its mirror, so the
    energy fractions are 2/3, 1/6 and 1/6 (1 : 1/4 : 1/4).  On an 8 x 6 image with (kx, ky) = (1, 2)."""
    h, w = 8, 6
    r, c = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                          indexing="ij")
    v = 1 + torch.cos(2 * math.pi * (2 * r / h + c / w))
    expected = torch.zeros(h, w, dtype=torch.float64)
    expected[0, 0], expected[2, 1], expected[h - 2, w - 1] = 2 / 3, 1 / 6, 1 / 6
    torch.testing.assert_close(fourier_energy(v, shift=False), expected, atol=1e-12, rtol=0)
    # shifted: index k moves to (k + N // 2) % N along each axis
    shifted = torch.roll(expected, shifts=(h // 2, w // 2), dims=(0, 1))
    torch.testing.assert_close(fourier_energy(v), shifted, atol=1e-12, rtol=0)
    # channels are summed (a 3 x H x W image gives one map); N x C x H x W gives one map per item, and the
    # items are not mixed: a constant image has all its energy at the zero frequency
    two = torch.stack([v, 2 * v])  # 2 channels, same shape of spectrum
    torch.testing.assert_close(fourier_energy(two, shift=False), expected, atol=1e-12, rtol=0)
    batch = torch.stack([v[None], torch.ones(1, h, w, dtype=torch.float64)])
    dc = torch.zeros(h, w, dtype=torch.float64)
    dc[h // 2, w // 2] = 1.0
    torch.testing.assert_close(fourier_energy(batch), torch.stack([shifted, dc]), atol=1e-12, rtol=0)


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
    # another size and an int fill: the map stays float, the mirror is that of the given size
    small = nadlib.fill_symmetric({(1, 2): 0.5, (0, 0): 0.25}, size=4, fill=-1)
    expected = np.full((4, 4), -1.0)
    expected[2, 1] = expected[2, 3] = 0.5
    expected[0, 0] = 0.25
    np.testing.assert_array_equal(small, expected)


def test_band_keeps_the_central_block():
    from nadlib.directions import signed_frequency

    grid = fourier_grid(32, band=8, half=False)
    assert len(grid) == 16 * 16
    assert all(-8 <= signed_frequency(k) < 8 for f in grid for k in f)
    assert len(fourier_grid(32, band=8)) < 16 * 16  # one per symmetric pair
    with pytest.raises(ValueError, match="band"):
        fourier_grid(32, band=17)


def test_basis_rows_are_the_documented_directions():
    """Row ky * size + kx of fourier_basis is fourier_direction(kx, ky) for the first member of a pair (the
    sine) and the cosine for the second; low_to_high_order is a stable sort by folded radius."""
    basis = fourier_basis(8, dtype=torch.float64)
    torch.testing.assert_close(basis[2 * 8 + 1], fourier_direction(1, 2, size=8, dtype=torch.float64).flatten(),
                               atol=1e-12, rtol=0)
    r, c = torch.meshgrid(torch.arange(8.0, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64),
                          indexing="ij")
    cos = torch.cos(2 * math.pi * (6 * r + 7 * c) / 8)  # (7, 6) is the mirror of (1, 2): the cosine row
    torch.testing.assert_close(basis[6 * 8 + 7], (cos / cos.norm()).flatten(), atol=1e-12, rtol=0)
    from nadlib.directions import frequency_radius, low_to_high_order

    fold = [min(k, 4 - k) for k in range(4)]
    radius = [(fold[i % 4] ** 2 + fold[i // 4] ** 2) ** 0.5 for i in range(16)]
    assert frequency_radius(4).tolist() == pytest.approx(radius) and frequency_radius(4).dtype == torch.float64
    assert low_to_high_order(4).tolist() == sorted(range(16), key=lambda i: radius[i])  # Python's sort is stable


@pytest.mark.parametrize("kx, ky, err, message", [
    (32, 0, ValueError, "kx=32 out of range: frequencies are integers in [0, 31] for size=32"),
    (0, 40, ValueError, "ky=40 out of range: frequencies are integers in [0, 31] for size=32"),
    (None, 0, TypeError, "kx must be an int, got NoneType"),
    (0, 2.0, TypeError, "ky must be an int, got float"),
])
def test_frequency_messages(kx, ky, err, message):
    with pytest.raises(err) as info:
        fourier_direction(kx, ky)
    assert str(info.value) == message


@pytest.mark.parametrize("size", [32, 8])
def test_every_fourier_direction_matches_the_documented_waveform(size):
    """Independent oracle over the whole spectrum: ``cos`` where the frequency is its own mirror
    (``2k = 0 mod size`` in both coordinates), ``sin`` elsewhere, of the phase ``2 pi (ky r + kx c) / size``."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    for kx in range(size):
        for ky in range(size):
            phase = 2 * np.pi * (ky * rows + kx * cols) / size
            real = kx in (0, size // 2) and ky in (0, size // 2)
            wave = np.cos(phase) if real else np.sin(phase)
            want = wave / np.linalg.norm(wave)
            got = nadlib.fourier_direction(kx, ky, size=size).double().numpy()
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"({kx}, {ky})")


def test_the_default_size_is_the_papers_32_by_32():
    from nadlib.directions import fill_symmetric, frequency_radius, low_to_high_order
    assert fourier_basis().shape == (1024, 1024)  # one flattened 32 x 32 direction per row
    assert frequency_radius().shape == (1024,)
    assert low_to_high_order().shape == (1024,)
    assert fill_symmetric({}).shape == (32, 32)


def test_image_sizes_are_capped_at_4096():
    assert nadlib.fourier_direction(0, 1, size=4096, dtype=torch.float64).shape == (4096, 4096)
    with pytest.raises(ValueError) as info:
        nadlib.fourier_direction(0, 1, size=4097)
    assert str(info.value) == "size must be at most 4,096, got 4,097"
