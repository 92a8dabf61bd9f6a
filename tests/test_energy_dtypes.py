"""Return dtypes of the energy helpers of ``nadlib.bases`` (as documented), with exact values on hand-made images.

``nad_energy`` and ``fourier_energy_by_radius`` compute in float64 and return float32 (energies and radii),
while ``nadlib.directions.frequency_radius`` returns float64.  The inputs below are chosen so that every
intermediate value is a small dyadic rational or an integer, hence exact in both precisions: the expected
values are compared exactly (``torch.equal``), not with a tolerance, and the dtype separately (``torch.equal``
does not compare dtypes).
"""

from __future__ import annotations

import pytest
import torch

import nadlib
from nadlib.directions import fourier_basis, frequency_radius, low_to_high_order


def _two_images(dtype):
    """Image A has 1 on pixels 0 and 1, image B has 1 on pixels 2 and 3 (one channel)."""
    x = torch.zeros(2, 1, 32, 32, dtype=dtype)
    x.view(2, -1)[0, :2] = 1.0
    x.view(2, -1)[1, 2:4] = 1.0
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("centre", [False, True])
def test_nad_energy_is_float32_with_exact_values(dtype, centre):
    """On the first four pixel directions (rows of the identity): not centred, every pixel has energy
    mean(1, 0) = 1/2, i.e. 1/4 each after normalising; centred (mean image 1/2 on the four pixels), every
    pixel deviates by +-1/2, energy 1/4 each, again 1/4 after normalising.  Float64 images give float32 too."""
    u = torch.eye(1024, dtype=dtype)[:4]
    e = nadlib.nad_energy(_two_images(dtype), u, centre=centre)
    assert e.dtype == torch.float32
    assert torch.equal(e, torch.full((4,), 0.25, dtype=torch.float32)), (e, e.dtype)


def test_nad_energy_puts_zero_on_directions_without_energy():
    """A fifth pixel direction that neither image touches gets exactly 0 (not centred: 0 * 0)."""
    e = nadlib.nad_energy(_two_images(torch.float32), torch.eye(1024)[:5], centre=False)
    assert e.dtype == torch.float32
    assert torch.equal(e, torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0], dtype=torch.float32))


def test_fourier_energy_by_radius_is_float32_and_its_radius_is_the_rounded_float64_radius():
    """A single real Fourier direction of frequency (kx, ky) = (3, 4) (three equal channels): all of its
    energy is on that direction, at the one position of the low-to-high order that holds it, whose radius
    is exactly 5; the radius vector is ``frequency_radius`` (float64) in the low-to-high order, rounded
    to float32."""
    row = 4 * 32 + 3  # fourier_basis row of (kx, ky) = (3, 4)
    x = fourier_basis(32)[row].view(1, 1, 32, 32).repeat(1, 3, 1, 1)
    energy, radius = nadlib.fourier_energy_by_radius(x, centre=False)
    assert energy.dtype == torch.float32 and radius.dtype == torch.float32
    assert energy.shape == radius.shape == (1024,)
    order = low_to_high_order(32)
    position = int((order == row).nonzero())
    assert int(energy.argmax()) == position
    assert float(energy[position]) == 1.0  # float64 1 - O(1e-16) rounds to exactly 1 in float32
    assert float(energy.sum(dtype=torch.float64)) == pytest.approx(1.0, abs=1e-6)
    assert float(radius[position]) == 5.0
    r64 = frequency_radius(32)
    assert r64.dtype == torch.float64 and float(r64[row]) == 5.0
    assert torch.equal(radius, r64[order].to(torch.float32))
    # the order runs from low to high frequency: radius 0 first, non-decreasing, sqrt(16^2 + 16^2) last
    assert float(radius[0]) == 0.0 and bool((radius[1:] >= radius[:-1]).all())
    assert float(radius[-1]) == pytest.approx(16 * 2 ** 0.5)
