import numpy as np
import pytest

from nadlib.directions import fourier_grid, mirror
from nadlib.paper import paper_fourier_accuracy


@pytest.mark.parametrize("arch", ["logreg", "lenet", "resnet18"])
def test_published_block_matches_our_grid_keys(arch):
    acc = paper_fourier_accuracy(arch)
    ours = set(fourier_grid(32, band=8))
    # 16 x 9 published runs, 7 of them the mirror of another (kx = 0, ky = +-1..7): 137 directions, each on
    # our band-8 grid (itself or its mirror) but the corner (kx, ky) = (8, -8), whose mirror is (-8, 8)
    assert len(acc) == 16 * 9 - 7
    outside = [k for k in acc if k not in ours and mirror(*k) not in ours]
    assert outside == [(24, 8)]
    assert all(0.45 < a <= 1.0 for a in acc.values())


def test_published_lenet_values_and_pattern():
    lenet, resnet = paper_fourier_accuracy("lenet"), paper_fourier_accuracy("resnet18")
    assert lenet[(1, 0)] == pytest.approx(0.804)
    assert lenet[(0, 1)] == pytest.approx((0.816 + 0.812) / 2)  # both members of the pair were run
    assert max(lenet.values()) < 0.85 and sorted(lenet.values())[len(lenet) // 2] < 0.52  # mostly chance
    # ResNet-18 fails exactly where both frequencies are odd (the paper's aliasing lattice)
    assert all((a < 0.55) == (kx % 2 == 1 and ky % 2 == 1) for (kx, ky), a in resnet.items())
    with pytest.raises(ValueError, match="available"):
        paper_fourier_accuracy("vgg11")


def test_compare_with_paper_matches_mirrors():
    from nadlib import GridResult
    from nadlib.paper import compare_with_paper

    published = paper_fourier_accuracy("lenet")
    grid = GridResult("lenet", {(1, 0): 0.8, (31, 0): 0.8, (0, 31): 0.81, (5, 5): 0.5, (20, 20): 0.5})
    out = compare_with_paper(grid)
    # (31, 0) is the mirror of (1, 0); (20, 20) (signed -12, -12) lies outside the published block
    assert out["freqs"] == [(1, 0), (31, 0), (0, 31), (5, 5)]
    assert out["paper"][1] == published[(1, 0)] and out["paper"][2] == published[(0, 1)]
    assert -1 <= out["pearson"] <= 1
    assert np.isnan(compare_with_paper(GridResult("lenet", {(1, 0): 0.8}))["pearson"])
