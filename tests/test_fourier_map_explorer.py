"""Chapter 1's Fourier-map explorer (:func:`nadlib.book.interactive.fourier_map_explorer`) and the table behind
it (:func:`nadlib.paper.fourier_map_table`): one menu entry per existing map, the authors' maps labelled
as theirs, agreement numbers equal to an independent computation, no book entry where there is no grid."""

from __future__ import annotations

import numpy as np
import pytest

import nadlib
from nadlib import GridResult
from nadlib.paper import (FOURIER_MAP_ARCHS, NETWORK_NAMES, PUBLISHED_LABEL, chance_threshold, failing_share,
                          fourier_map_entries, fourier_map_table, paper_fourier_accuracy)

pytest.importorskip("plotly", reason="plotly is not installed (pip install -r requirements.txt)")

from nadlib.book.interactive import fourier_map_explorer  # noqa: E402  (after the plotly check)

SETTINGS = dict(n_train=1000, n_test=2500, epochs=3, profile="smoke", device="cpu", stride=1)
# hand-computed: 0.5 + 3 * 0.5 / sqrt(2500) = 0.53; 0.5 + 3 * 0.5 / sqrt(10000) = 0.515
OUR_THRESHOLD, PAPER_THRESHOLD = 0.53, 0.515


def _pair(r=0.6, n=20, seed=2):
    """A hand-made published map and a book map on the same ``n`` directions whose Pearson correlation is
    exactly ``r``, plus 3 book directions the published map lacks."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    a -= a.mean()
    a /= np.linalg.norm(a)
    b -= b.mean()
    b -= (b @ a) * a
    b /= np.linalg.norm(b)  # a, b: centred, orthonormal
    freqs = [(kx, ky) for kx in range(1, 6) for ky in range(0, 4)][:n]
    paper = {f: float(v) for f, v in zip(freqs, 0.62 + 0.5 * a)}
    ours = {f: float(v) for f, v in zip(freqs, 0.6 + 0.4 * (r * a + np.sqrt(1 - r * r) * b))}
    extra = {(16, 16): 0.5, (12, 20): 0.7, (20, 4): 0.51}  # outside the hand-made published map
    return paper, GridResult("lenet", {**ours, **extra}, 32, dict(SETTINGS)), freqs


def _labels(fig):
    return [b.label for b in fig.layout.updatemenus[0].buttons]


def test_chance_threshold_and_failing_share():
    assert chance_threshold(10_000) == pytest.approx(PAPER_THRESHOLD)
    assert chance_threshold(2500) == pytest.approx(OUR_THRESHOLD)
    assert chance_threshold(2500, sigmas=2) == pytest.approx(0.52)
    assert failing_share([0.49, 0.514, 0.516, 0.9], 10_000) == 0.5
    assert np.isnan(failing_share([], 10_000))
    with pytest.raises(ValueError, match="n_test"):
        chance_threshold(0)


def test_menu_has_one_entry_per_existing_map():
    paper, grid, _ = _pair()
    fig = fourier_map_explorer({"lenet": grid})
    expected = []
    for arch in FOURIER_MAP_ARCHS:
        expected.append(f"{NETWORK_NAMES[arch]}: {PUBLISHED_LABEL}")
        if arch == "lenet":
            expected.append("LeNet: this book (stride 1, smoke profile, cpu)")
    assert _labels(fig) == expected
    maps, image = fig.data[:-1], fig.data[-1]
    assert [t.name for t in maps] == expected and all(t.type == "heatmap" for t in fig.data)
    assert image.name == "direction" and fig.layout.meta["image_trace"] == len(expected)
    # each entry shows its own heatmap only (and the direction image); the figure opens on the LeNet book map
    for i, b in enumerate(fig.layout.updatemenus[0].buttons):
        assert list(b.args[0]["visible"]) == [j == i for j in range(len(expected))] + [True]
    assert [t.visible for t in maps] == [lab.startswith("LeNet: this") for lab in expected]
    assert fig.layout.updatemenus[0].active == 2
    # one colour scale for all maps: chance (0.5) to 1
    assert {(t.zmin, t.zmax) for t in maps} == {(0.5, 1.0)}
    # the direction panel starts on (1, 0), and the hover script redraws it in the static page
    np.testing.assert_allclose(np.array(image.z), nadlib.fourier_direction(1, 0).numpy(), atol=1e-7)
    assert "plotly_hover" in fig.layout.meta["nadbook_post_script"]


def test_published_traces_are_labelled_as_the_authors_and_hold_their_values():
    _, grid, _ = _pair()
    fig = fourier_map_explorer({"lenet": grid})
    buttons = fig.layout.updatemenus[0].buttons
    for trace, button in zip(fig.data[:-1], buttons):
        title = button.args[1]["title.text"]
        if "published" in trace.name:
            assert PUBLISHED_LABEL in trace.name and "published</b> (Ortiz-Jimenez et al.)" in trace.hovertemplate
            assert "published (Ortiz-Jimenez et al., NeurIPS 2020)" in title and "their measurements" in title
            assert list(trace.x) == list(range(-16, 16, 2)) and list(trace.y) == list(range(-16, 16, 2))
        else:
            assert "this book" in trace.name and "this book" in trace.hovertemplate
            assert "published (" not in trace.name and "Ortiz" not in trace.hovertemplate
    # the LeNet published heatmap holds the published values, mirrored to both members of a pair
    lenet = fig.data[_labels(fig).index(f"LeNet: {PUBLISHED_LABEL}")]
    z, pub = np.array(lenet.z, dtype=float), paper_fourier_accuracy("lenet")
    at = lambda kx, ky: z[list(lenet.y).index(ky), list(lenet.x).index(kx)]  # noqa: E731
    assert at(2, 0) == pytest.approx(pub[(2, 0)], abs=1e-4) and at(-2, 0) == pytest.approx(pub[(2, 0)], abs=1e-4)
    value = pub.get((6, 22), pub.get((26, 10)))  # (6, -10) or its partner (-6, 10), whichever is stored
    assert at(6, -10) == pytest.approx(value, abs=1e-4) and at(-6, 10) == at(6, -10)
    # the published grid covers every even frequency (with its mirror, which is even too)
    assert np.isfinite(z).sum() == 16 * 16


def test_agreement_equals_an_independent_computation():
    paper, grid, freqs = _pair(r=0.6)
    ours = np.array([grid.accuracy[f] for f in freqs])
    pub = np.array([paper[f] for f in freqs])
    # independent: the correlation from its definition, the failing shares by counting against hand-computed limits
    dx, dy = ours - ours.mean(), pub - pub.mean()
    r = float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    assert r == pytest.approx(0.6, abs=1e-12)  # the pair was built with this correlation
    fail_ours, fail_pub = np.mean(ours < OUR_THRESHOLD), np.mean(pub < PAPER_THRESHOLD)
    assert 0 < fail_ours < 1 and 0 < fail_pub < 1  # the pair tests both shares ...
    # ... and that each side is judged with its own test-set size (a value between the two limits on each side)
    assert any(PAPER_THRESHOLD <= v < OUR_THRESHOLD for v in ours) and any(PAPER_THRESHOLD <= v < OUR_THRESHOLD
                                                                          for v in pub)

    fig = fourier_map_explorer({"lenet": grid}, published={"lenet": paper})
    meta = {(m["arch"], m["source"]): m for m in fig.layout.meta["entries"]}
    for source in ("published", "this book"):
        m = meta[("lenet", source)]
        assert m["pearson"] == pytest.approx(r, abs=1e-12)
        assert m["failing_ours"] == pytest.approx(fail_ours) and m["failing_published"] == pytest.approx(fail_pub)
    title = fig.layout.title.text  # the figure opens on the LeNet book map
    assert (f"on {len(freqs)} shared directions: Pearson r = 0.60" in title
            and f"at chance (test acc. < 0.530 / 0.515): {fail_ours:.0%} in this book, {fail_pub:.0%} published"
            in title), title
    assert meta[("vgg11", "published")]["pearson"] is None  # no book map of VGG-11
    # the entries behind it: failing share of all the book's directions (3 extra, one of them at chance)
    book = [e for e in fourier_map_entries({"lenet": grid}, published={"lenet": paper}) if e["source"] == "this book"]
    all_ours = np.array(list(grid.accuracy.values()))
    assert book[0]["failing"] == pytest.approx(np.mean(all_ours < OUR_THRESHOLD))
    assert book[0]["agreement"]["mean_abs"] == pytest.approx(np.abs(ours - pub).mean())


def test_constant_published_map_gives_no_correlation():
    grid = GridResult("logreg", {(1, 0): 1.0, (2, 0): 0.99, (0, 3): 0.98, (5, 5): 1.0}, 32, dict(SETTINGS))
    fig = fourier_map_explorer({"logreg": grid}, start="logreg")
    assert "Pearson r undefined" in fig.layout.title.text
    assert fig.layout.meta["entries"][1]["pearson"] is None


def test_no_book_entry_for_networks_without_a_grid():
    _, grid, _ = _pair()
    fig = fourier_map_explorer({"lenet": grid, "vgg11": None, "resnet18": [], "densenet121": [None]})
    labels = _labels(fig)
    assert [lab for lab in labels if "this book" in lab] == ["LeNet: this book (stride 1, smoke profile, cpu)"]
    titles = {lab: b.args[1]["title.text"] for lab, b in zip(labels, fig.layout.updatemenus[0].buttons)}
    assert "no map of ResNet-18 in this book" in titles[f"ResNet-18: {PUBLISHED_LABEL}"]
    fig0 = fourier_map_explorer()  # nothing of our own: the five published maps only
    assert _labels(fig0) == [f"{NETWORK_NAMES[a]}: {PUBLISHED_LABEL}" for a in FOURIER_MAP_ARCHS]
    with pytest.raises(ValueError, match="unknown architecture"):
        fourier_map_explorer({"alexnet": grid})


def test_a_book_map_the_authors_did_not_publish_is_an_entry_of_its_own():
    """LeNet without pooling has no published map: its book map follows the five networks, without agreement
    numbers, and its title says the authors published none."""
    _, grid, _ = _pair()
    nopool = GridResult("lenet_nopool", {(16, 15): 0.9, (1, 0): 0.8}, 32, dict(SETTINGS))
    fig = fourier_map_explorer({"lenet": grid, "lenet_nopool": nopool})
    labels = _labels(fig)
    assert labels[-1] == "LeNet without pooling: this book (stride 1, smoke profile, cpu)", labels
    assert "the authors published no map of LeNet without pooling" in fig.layout.updatemenus[0].buttons[-1].args[1][
        "title.text"]
    assert fig.layout.meta["entries"][-1] == dict(arch="lenet_nopool", source="this book", n_test=2500,
                                                   pearson=None, failing_ours=None, failing_published=None)
    table = fourier_map_table({"lenet_nopool": nopool})
    assert "| LeNet without pooling | this book (stride 1, smoke profile, cpu) | 2 |" in table


def test_several_grids_of_one_network_are_merged_over_symmetric_pairs():
    coarse = GridResult("lenet", {(0, 4): 0.6, (8, 0): 0.5}, 32, dict(SETTINGS, stride=4))
    band = GridResult("lenet", {(0, 28): 0.7, (1, 0): 0.8}, 32, dict(SETTINGS, stride=1, band=4))
    book = [e for e in fourier_map_entries({"lenet": [coarse, band]}) if e["source"] == "this book"][0]
    # (0, 28) is the mirror of (0, 4): one direction, the mean of both runs
    assert book["accuracy"] == {(0, 4): pytest.approx(0.65), (8, 0): 0.5, (1, 0): 0.8}
    assert book["short_label"] == "this book (stride 4 + band 4, smoke profile, cpu)"
    with pytest.raises(ValueError, match="test-set sizes"):
        fourier_map_entries({"lenet": [coarse, GridResult("lenet", {(1, 1): 0.5}, 32, dict(SETTINGS, n_test=99))]})
    with pytest.raises(ValueError, match="n_test"):
        fourier_map_entries({"lenet": GridResult("lenet", {(1, 1): 0.5})})


def test_table_rows_and_numbers():
    paper, grid, freqs = _pair(r=0.6)
    table = fourier_map_table({"lenet": grid}, published={"lenet": paper})
    rows = [line for line in table.splitlines() if line.startswith("| ") and "network" not in line]
    assert len(rows) == 6 and table._repr_markdown_() == str(table)
    lenet_book = next(r for r in rows if r.startswith("| LeNet | this book"))
    cells = [c.strip() for c in lenet_book.strip("|").split("|")]
    assert cells[1] == "this book (stride 1, smoke profile, cpu)"
    assert cells[2] == f"{len(grid.accuracy)} ({len(freqs)} shared)" and cells[3] == "0.60"
    assert all(PUBLISHED_LABEL in r for r in rows if "this book" not in r)
    assert "0.530 for 2,500 test samples; 0.515 for 10,000 test samples" in table


def test_real_maps_figure_is_small():
    """With the book's artifacts: a few traces and a small page."""
    load = lambda f: GridResult.from_artifact(nadlib.result_path(f))  # noqa: E731
    try:
        ours = {"logreg": load("grid_logreg_paper_s2.npz"),
                "lenet": [load("grid_lenet_paper_s4.npz"), load("grid_lenet_paper_band4.npz")]}
    except Exception as err:  # pragma: no cover - the artifacts ship with the repository
        pytest.skip(f"artifacts not available: {err}")
    fig = fourier_map_explorer(ours)
    assert len(fig.data) == 8 and len(fig.to_json()) < 110_000  # 7 maps and the direction image


def test_menu_switches_maps_in_a_browser(tmp_path):
    """The static page: choosing a menu entry shows that map alone and its title."""
    from browser import chromium_or_skip, headless_chromium, open_plotly_page

    pio = pytest.importorskip("plotly.io")
    chromium, sync_api = chromium_or_skip("the Fourier-map explorer's menu")
    _, grid, _ = _pair()
    fig = fourier_map_explorer({"lenet": grid})
    page_path = tmp_path / "explorer.html"
    page_path.write_text(pio.to_html(fig, include_plotlyjs=True, full_html=True))
    state = ("(() => { const g = document.querySelector('.plotly-graph-div');"
             " return {visible: g.data.map(t => t.visible), title: g.layout.title.text}; })()")
    with headless_chromium(sync_api, chromium) as browser:
        page, errors = open_plotly_page(browser, page_path, width=1100, height=750)
        before = page.evaluate(state)
        page.locator(".updatemenu-header-group").first.click()
        page.locator(".updatemenu-item-text", has_text="DenseNet-121").first.click()
        page.wait_for_timeout(300)
        after = page.evaluate(state)
    assert not errors, errors
    assert before["visible"] == [False, False, True, False, False, False, True]
    assert after["visible"] == [False] * 5 + [True, True]
    assert "DenseNet-121" in after["title"] and "their measurements" in after["title"]


def test_hover_draws_the_direction_in_a_browser(tmp_path):
    """The static page: hovering a cell of the shown map draws the image of that Fourier direction (computed
    by the post-script in the browser) and names it; switching maps keeps the direction panel."""
    from browser import chromium_or_skip, headless_chromium, open_plotly_page

    pio = pytest.importorskip("plotly.io")
    chromium, sync_api = chromium_or_skip("the hover script")
    grid = GridResult("logreg", {(4, 0): 1.0, (1, 0): 0.99, (0, 3): 0.98}, 32, dict(SETTINGS))
    fig = fourier_map_explorer({"logreg": grid}, start="logreg")
    page_path = tmp_path / "fig.html"
    page_path.write_text(pio.to_html(fig, include_plotlyjs=True, full_html=True,
                                     post_script=fig.layout.meta["nadbook_post_script"]))
    state = ("(() => { const g = document.querySelector('.plotly-graph-div'); const d = g.data;"
             " return {z: d[d.length - 1].z, title: g.layout.xaxis2.title.text,"
             " visible: d.map(t => t.visible)}; })()")
    with headless_chromium(sync_api, chromium) as browser:
        page, errors = open_plotly_page(browser, page_path, width=1100, height=750)
        before = page.evaluate(state)
        # hover the cell (kx, ky) = (4, 0) of the LogReg map: find its pixel from the axes
        x, y = page.evaluate("(() => { const g = document.querySelector('.plotly-graph-div');"
                             " const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;"
                             " const r = g.getBoundingClientRect();"
                             " return [r.left + xa._offset + xa.d2p(4), r.top + ya._offset + ya.d2p(0)]; })()")
        page.mouse.move(x, y)
        page.wait_for_timeout(500)
        after = page.evaluate(state)
        hover_text = page.evaluate("document.querySelector('.hoverlayer').textContent")
        page.locator(".updatemenu-header-group").first.click()
        page.locator(".updatemenu-item-text", has_text="VGG-11").first.click()
        page.wait_for_timeout(300)
        switched = page.evaluate(state)
    assert not errors, errors
    np.testing.assert_allclose(before["z"], nadlib.fourier_direction(1, 0).numpy(), atol=1e-6)
    assert after["title"] == "direction (kx, ky) = (4, 0)"
    np.testing.assert_allclose(after["z"], nadlib.fourier_direction(4, 0).numpy(), atol=1e-6)
    assert "(4, 0)" in hover_text and "1.000" in hover_text
    assert switched["visible"][-1] is True and sum(switched["visible"]) == 2
