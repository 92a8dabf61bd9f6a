"""The top-m (Lanczos) eigen path of large inputs against the full ``eigh`` (issue 21).

Colour inputs (3 x 32 x 32, d = 3072) keep only the top ``m`` eigenpairs of the gradient covariance when
``k`` directions are kept; these tests check that they are the full path's first ``m`` (values and
directions, sign convention included), that the total variance stays exact for plots, and that
1 x 32 x 32 inputs (d = 1024) keep the full ``eigh``.  No timings are asserted (see
``benchmarks/bench_eigen.py`` for those).
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import nadlib  # noqa: E402
from nadlib.book import plotting  # noqa: E402
from nadlib.nads import stats as S  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def _low_rank_cov(d: int, rank: int, seed: int = 0) -> torch.Tensor:
    """``A^T A`` for ``rank`` random rows of ``R^d`` scaled by ``0.97^i``: a rank-``rank`` covariance with a
    decaying, well separated spectrum (like a NAD spectrum from fewer networks than pixels)."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.97 ** torch.arange(rank, dtype=torch.float64)
    a = torch.randn(rank, d, generator=g, dtype=torch.float64) * scale[:, None]
    return a.T @ a / rank


def test_top_m_path_equals_the_full_eig_desc_on_a_low_rank_covariance():
    cov = _low_rank_cov(1536, 300)
    vals, vecs = S.eig_desc(cov)
    top_vals, top_vecs, path = S.eig_leading(cov, 50, n_samples=301)
    assert path == "eigsh" and top_vals.shape == (50,) and top_vecs.shape == (50, 1536)
    assert top_vals.dtype == top_vecs.dtype == torch.float64
    rel = ((top_vals - vals[:50]).abs() / vals[:50]).max().item()
    assert rel < 1e-10, rel
    # same sign convention, so the directions agree without flipping signs
    dots = (top_vecs * vecs[:50]).sum(1)
    assert dots.min().item() > 1 - 1e-8, dots.min().item()
    assert nadlib.subspace_overlap(top_vecs, vecs[:50]) > 1 - 1e-8


def test_top_m_path_order_and_sign_convention():
    """Known eigenvectors whose entry of largest magnitude is NEGATIVE, eigenvalues given in a scrambled
    order: the top-m path returns them in descending order with that entry made positive, orthonormal."""
    d, m = 2048, 12
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(d, m, generator=g, dtype=torch.float64))
    q = q.T.contiguous()  # rows
    peak = q.abs().argmax(dim=1)
    q = q * -torch.sign(q[torch.arange(m), peak])[:, None]  # largest entry of every row negative
    lam = torch.tensor([5.0, 9.0, 1.0, 7.0, 3.0, 8.0, 2.0, 6.0, 4.0, 10.0, 0.5, 11.0], dtype=torch.float64)
    cov = q.T @ torch.diag(lam) @ q
    vals, vecs = S.eig_top_desc(cov, 6)
    order = torch.argsort(lam, descending=True)[:6]
    torch.testing.assert_close(vals, lam[order], rtol=1e-12, atol=0)
    torch.testing.assert_close(vecs, -q[order], rtol=0, atol=1e-10)
    assert bool((vecs[torch.arange(6), vecs.abs().argmax(dim=1)] > 0).all())
    torch.testing.assert_close(vecs @ vecs.T, torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_eigen_path_rules_and_bad_inputs():
    assert S.eigen_path(1024, 10, 5000) == "eigh"  # 1 x 32 x 32 keeps the full eigh
    assert S.eigen_path(3072, 50, 5000) == "eigsh"
    assert S.eigen_path(3072, 50) == "eigsh"
    assert S.eigen_path(3072, None, 5000) == "eigh"  # every direction kept
    assert S.eigen_path(3072, 64, 5000) == "eigsh"
    assert S.eigen_path(3072, 65, 5000) == "eigh"  # too many pairs: Lanczos slows down past a few dozen
    assert S.eigen_path(3072, 50, 50) == "eigh"  # rank <= 49 < m: the top 50 reach into the null space
    cov = torch.eye(1100, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"m must be an int in \[1, 1099\]"):
        S.eig_top_desc(cov, 1100)
    with pytest.raises(ValueError, match=r"m must be an int in \[1, 1099\]"):
        S.eig_top_desc(cov, 0)
    with pytest.raises(ValueError, match="cov must be a square 2-D torch.Tensor"):
        S.eig_top_desc(torch.zeros(3, 4), 1)
    with pytest.raises(ValueError, match="m must be a positive int"):
        S.eig_leading(cov, 2.5)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        S.eigen_path(0, 3)


def _colour_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 20 * 20, 1))


@pytest.fixture(scope="module")
def colour_pair():
    """NADs of a small colour model (3 x 20 x 20, d = 1200 > 1024), 120 networks, kept k = 20 (top-m path,
    m = max(20, 50)) and all (full eigh), from the same networks."""
    kw = dict(n_networks=120, method="gradient", input_shape=(3, 20, 20), run=nadlib.RunControl(progress=False))
    return nadlib.estimate_nads(_colour_net, k=20, **kw), nadlib.estimate_nads(_colour_net, **kw)


def test_estimate_nads_on_a_colour_model_with_k_matches_the_full_path(colour_pair):
    top, full = colour_pair
    assert top.meta["eigen_path"] == "eigsh" and top.meta["eigen_m"] == 50
    assert full.meta["eigen_path"] == "eigh" and full.meta["eigen_m"] == 1200 and full.total_variance is None
    assert top.directions.shape == (20, 3, 20, 20) and top.eigenvalues.shape == (50,)
    rel = ((top.eigenvalues - full.eigenvalues[:50]).abs() / full.eigenvalues[:50]).max().item()
    assert rel < 1e-10, rel
    dots = (top.directions.double().reshape(20, -1) * full.directions[:20].double().reshape(20, -1)).sum(1)
    assert dots.min().item() > 1 - 1e-6, dots.min().item()  # float32 directions, same signs
    assert top.stability == full.stability and set(top.stability) == {1, 5, 10, 50}
    # the total variance is exact: fractions of it agree with the full spectrum's
    assert top.total_variance == pytest.approx(float(full.eigenvalues.sum()), rel=1e-10)
    torch.testing.assert_close(top.variance_fractions(), full.variance_fractions()[:50], rtol=1e-10, atol=0)


def test_top_m_nads_round_trip_and_plot_exact_fractions(colour_pair, tmp_path):
    top, full = colour_pair
    back = nadlib.load_nads(top.save(tmp_path / "top.npz"))
    assert back == top and back.total_variance == top.total_variance and back.meta["eigen_path"] == "eigsh"
    assert nadlib.load_nads(full.save(tmp_path / "full.npz")).total_variance is None
    assert back != nadlib.NADs(directions=top.directions, eigenvalues=top.eigenvalues, n_networks=top.n_networks,
                               method=top.method, stability=top.stability, eval_point=top.eval_point)
    ax = plotting.plot_eigenvalues({"top": top, "full": full})
    y_top, y_full = (line.get_ydata() for line in ax.get_lines())
    assert len(y_top) == 50 and len(y_full) == 1200
    np.testing.assert_allclose(y_top, y_full[:50], rtol=1e-10)
    with pytest.raises(ValueError, match="must be finite and at least the sum of its eigenvalues"):
        plotting.plot_eigenvalues({"bad": nadlib.NADs(directions=top.directions, eigenvalues=top.eigenvalues,
                                                      n_networks=2, method="gradient", total_variance=1e-30)})


def test_grey_inputs_keep_the_full_eigh_with_k():
    """d = 1024 (LeNet's 1 x 32 x 32): the full eigh even with k, all 1024 eigenvalues, no total_variance."""
    g = torch.Generator().manual_seed(2)
    stats = nadlib.NADStatistics(1024)
    stats.add(torch.randn(200, 1024, generator=g, dtype=torch.float64), 0)
    res = nadlib.nads_from_statistics(stats, (1, 32, 32), "secant", k=5)
    assert res.meta["eigen_path"] == "eigh" and res.meta["eigen_m"] == 1024
    assert res.eigenvalues.shape == (1024,) and res.total_variance is None and len(res) == 5
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 1024\]"):
        nadlib.nads_from_statistics(stats, (1, 32, 32), "secant", k=0)
