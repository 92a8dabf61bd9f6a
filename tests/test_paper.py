import numpy as np
import pytest
import torch

from nadlib.directions import fourier_grid, mirror
from nadlib.paper import paper_fourier_accuracy


@pytest.mark.parametrize("arch", ["logreg", "lenet", "resnet18", "densenet121", "vgg11"])
def test_published_grid_covers_the_even_frequencies_of_the_whole_spectrum(arch):
    acc = paper_fourier_accuracy(arch)
    step2 = set(fourier_grid(32, stride=2))
    # 16 x 9 published runs (rows x = 0..8); on the rows ky = 0 and ky = -16 the cells (kx, ky) and (-kx, ky)
    # are one symmetric pair (7 pairs each, averaged): 144 - 14 = 130 directions, every one even
    assert len(acc) == 16 * 9 - 14
    assert all(kx % 2 == 0 and ky % 2 == 0 for kx, ky in acc)
    assert all(k in step2 or mirror(*k) in step2 for k in acc)
    assert len({k for k in step2 if k in acc or mirror(*k) in acc}) == len(acc)
    assert all(0.45 < a <= 1.0 for a in acc.values())


def test_published_cell_frequencies_are_the_authors_images():
    """The authors' page shows each cell's direction (docs/images/fourier_<x>_<y>.png); read back, cell
    (8, 9) has two vertical periods, (8, 10) four, (9, 9) the diagonal (2, 2), (10, 9) the frequency (2, 4),
    (0, 0) is the checkerboard.  The old convention (step 1, central block) put (8, 9) at (0, 1)."""
    from nadlib.paper import published_cell_frequency

    assert published_cell_frequency(8, 8) == (0, 0)
    assert published_cell_frequency(8, 9) == (2, 0)
    assert published_cell_frequency(8, 10) == (4, 0)
    assert published_cell_frequency(9, 8) == (0, 2)
    assert published_cell_frequency(9, 9) == (2, 2)
    assert published_cell_frequency(10, 9) == (2, 4)
    assert published_cell_frequency(0, 0) == (16, 16)
    assert published_cell_frequency(5, 11) == (6, 26)  # signed (6, -6)


def test_published_lenet_values_and_pattern():
    lenet, resnet = paper_fourier_accuracy("lenet"), paper_fourier_accuracy("resnet18")
    # the values of the paper's figure (rounded to 0.1 % there)
    assert lenet[(0, 2)] == pytest.approx(0.804, abs=5e-4)
    assert lenet[(2, 0)] == pytest.approx((0.816 + 0.812) / 2, abs=5e-4)  # both members of the pair were run
    assert max(lenet.values()) < 0.85 and sorted(lenet.values())[len(lenet) // 2] < 0.52  # mostly chance
    # LeNet (two 2 x 2 poolings) is at chance on every direction with kx or ky = 8 or 16 (multiples of 32 / 4)
    assert all(a < 0.53 for (kx, ky), a in lenet.items() if kx in (8, 16, 24) or ky in (8, 16, 24))
    # ResNet-18 fails exactly where both frequencies are 2 mod 4 (its aliasing lattice); with the old
    # step-1 convention this was "both odd"
    assert all((a < 0.55) == (kx % 4 == 2 and ky % 4 == 2) for (kx, ky), a in resnet.items())
    with pytest.raises(ValueError, match="available"):
        paper_fourier_accuracy("alexnet")


def test_compare_with_paper_matches_mirrors():
    from nadlib import GridResult
    from nadlib.paper import compare_with_paper

    published = paper_fourier_accuracy("lenet")
    grid = GridResult("lenet", {(2, 0): 0.8, (30, 0): 0.8, (0, 30): 0.81, (6, 6): 0.5, (5, 5): 0.5})
    # (30, 0) is the mirror of (2, 0); (5, 5) is odd: no published run
    out = compare_with_paper(grid)
    assert out["freqs"] == [(2, 0), (30, 0), (0, 30), (6, 6)]
    assert out["paper"][1] == published[(2, 0)] and out["paper"][2] == published[(0, 2)]
    assert -1 <= out["pearson"] <= 1
    assert np.isnan(compare_with_paper(GridResult("lenet", {(2, 0): 0.8}))["pearson"])


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
