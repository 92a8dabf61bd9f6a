import numpy as np
import pytest
import torch

from nadlib.directions import fourier_grid, mirror
from nadlib.paper import paper_fourier_accuracy


@pytest.mark.parametrize("arch", ["logreg", "lenet", "resnet18", "densenet121", "vgg11"])
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
    # the values of the paper's figure (rounded to 0.1 % there)
    assert lenet[(1, 0)] == pytest.approx(0.804, abs=5e-4)
    assert lenet[(0, 1)] == pytest.approx((0.816 + 0.812) / 2, abs=5e-4)  # both members of the pair were run
    assert max(lenet.values()) < 0.85 and sorted(lenet.values())[len(lenet) // 2] < 0.52  # mostly chance
    # ResNet-18 fails exactly where both frequencies are odd (the paper's aliasing lattice)
    assert all((a < 0.55) == (kx % 2 == 1 and ky % 2 == 1) for (kx, ky), a in resnet.items())
    with pytest.raises(ValueError, match="available"):
        paper_fourier_accuracy("alexnet")


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


def test_published_nads_are_the_authors_basis():
    from nadlib.paper import PUBLISHED_NAD_ARCHS, nads_agreement, published_nads

    for arch in PUBLISHED_NAD_ARCHS:
        nads = published_nads(arch)
        assert nads.directions.shape == (64, 1, 32, 32)
        gram = nads.directions.flatten(1).double() @ nads.directions.flatten(1).double().T
        assert torch.allclose(gram, torch.eye(64, dtype=torch.float64), atol=1e-5)
        assert len(nads.eigenvalues) == 1023 and bool((nads.eigenvalues.diff() <= 0).all())
        assert nads_agreement(nads, arch, ks=(1, 10, 64)) == pytest.approx({1: 1.0, 10: 1.0, 64: 1.0}, abs=1e-5)  # float32 rows
    # the networks have different NADs: LeNet's first 10 are not VGG's
    assert nads_agreement(published_nads("lenet"), "vgg11", ks=(10,))[10] < 0.5


def test_nads_agreement_of_a_random_basis_is_near_k_over_d():
    """For a uniformly random 10-dim subspace of R^1024 the overlap has mean k/d = 0.0098 and standard
    deviation about sqrt(2/d^2 * (1 - ...)) < 0.005; 0.05 is more than 8 standard deviations away."""
    from nadlib.paper import nads_agreement

    q, _ = torch.linalg.qr(torch.randn(1024, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert nads_agreement(q.T, "lenet", ks=(10,))[10] < 0.05


def test_published_trainability_and_agreement():
    from nadlib.paper import published_trainability, trainability_agreement

    pub = published_trainability("lenet")
    assert len(pub["indices"]) == 1023 and list(pub["indices"][:3]) == [0, 1, 2]
    # the numbers the issue quotes from the published curve: 1.00, 0.82, 0.57 at NAD 0, 100, 400
    acc = dict(zip(pub["indices"].tolist(), pub["test_acc"].tolist()))
    assert (round(acc[0], 2), round(acc[100], 2), round(acc[400], 2)) == (1.0, 0.82, 0.57)
    out = trainability_agreement({"indices": np.array([0, 100, 5000]), "test_acc": np.array([0.9, 0.5, 0.5])},
                                 "lenet")
    assert list(out["indices"]) == [0, 100]  # 5000 is not a published index
    np.testing.assert_allclose(out["difference"], [0.9 - acc[0], 0.5 - acc[100]])
    assert out["mean_abs"] == pytest.approx((abs(0.9 - acc[0]) + abs(0.5 - acc[100])) / 2)
    with pytest.raises(ValueError, match="available"):
        published_trainability("logreg")
