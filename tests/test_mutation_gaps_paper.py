"""Gaps that the first mutation pass of `nadlib/paper.py` showed (issue 20, `tests/MUTANTS.md`): the text of the
book's tables and labels (`_describe_grid`, `fourier_map_entries`, `fourier_map_table`, `oracle_table`,
`_percent`) and the merging of grids (`_merge_grids`), none of which a fast test read before.

Every expected string and number below is written out by hand from small hand-made grids (at most four
directions, test sets of 100 samples: at chance below 0.65 with 3 standard deviations, 0.6 with 2), never
copied from a run of the code.  All tests take milliseconds (the published maps are passed in, except where
the bundled one is the point).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from nadlib import paper
from nadlib.grid import GridResult
from nadlib.paper import PAPER_SOURCE, PUBLISHED_LABEL

SMOKE = {"stride": 2, "profile": "smoke", "n_train": 1000, "n_test": 100, "epochs": 5, "device_name": "cpu"}


# --------------------------------------------------------------------------------------------------
# _percent, _describe_grid
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x, text", [(0.0, "0%"), (1 / 3, "33%"), (2 / 3, "67%"), (0.25, "25%"), (1.0, "100%"),
                                     (float("nan"), "–")])
def test_percent_by_hand(x, text):
    assert paper._percent(x) == text


def test_describe_grid_of_one_grid():
    """lattice: n directions, profile, sizes, device; short: lattice, profile, device."""
    grid = GridResult("lenet", {(2, 0): 0.9, (0, 2): 0.6, (4, 4): 0.5}, settings=SMOKE)
    assert paper._describe_grid(grid) == "stride 2: 3 directions, smoke profile, 1,000 / 100 samples, 5 ep., cpu"
    assert paper._describe_grid(grid, short=True) == "stride 2, smoke profile, cpu"


@pytest.mark.parametrize("settings, long, short", [
    ({}, "1 directions", ""),                                                    # nothing known: only the count
    ({"band": 3, "stride": 2}, "band 3: 1 directions", "band 3"),               # a band is named before a stride
    ({"stride": 0, "band": 0, "profile": "", "device": ""}, "1 directions", ""),  # empty values say nothing
    ({"n_train": 50_000, "n_test": 10_000}, "1 directions, 50,000 / 10,000 samples, ? ep.", ""),  # epochs unknown
    ({"device": "cuda:0"}, "1 directions, cuda:0", "cuda:0"),                   # the device when no device name
    ({"device": "cuda:0", "device_name": "NVIDIA H100"}, "1 directions, NVIDIA H100", "NVIDIA H100"),
    ({"profile": "paper", "n_test": 200}, "1 directions, paper profile", "paper profile"),  # sizes need n_train
])
def test_describe_grid_words(settings, long, short):
    grid = GridResult("lenet", {(2, 0): 0.9}, settings=settings)
    assert paper._describe_grid(grid) == long
    assert paper._describe_grid(grid, short=True) == short


def test_describe_grid_of_merged_parts_names_each_distinct_value_once():
    parts = [dict(SMOKE), dict(SMOKE, stride=None, band=3, device_name="NVIDIA H100"), dict(SMOKE)]
    grid = GridResult("lenet", {(2, 0): 0.9, (4, 4): 0.5}, settings={"n_test": 100, "parts": parts})
    assert paper._describe_grid(grid) == ("stride 2 + band 3: 2 directions, smoke profile, 1,000 / 100 samples, "
                                          "5 ep., cpu + NVIDIA H100")
    assert paper._describe_grid(grid, short=True) == "stride 2 + band 3, smoke profile, cpu + NVIDIA H100"


# --------------------------------------------------------------------------------------------------
# _merge_grids
# --------------------------------------------------------------------------------------------------

def test_merge_grids_of_one_grid_keeps_it():
    grid = GridResult("lenet", {(2, 0): 0.9, (30, 0): 0.7}, size=32, settings=dict(SMOKE), wall_time=4.5)
    merged = paper._merge_grids("lenet", grid)
    # (30, 0) is the mirror of (2, 0): one direction, the mean of the two runs
    assert merged.arch == "lenet" and merged.size == 32 and merged.wall_time == 4.5
    assert merged.accuracy == {(2, 0): pytest.approx(0.8, abs=1e-15)}
    assert merged.settings == SMOKE and merged.settings is not grid.settings
    assert paper._merge_grids("lenet", [None, grid, None]).accuracy == merged.accuracy


def test_merge_grids_of_two_grids_averages_and_lists_the_parts():
    first = GridResult("lenet", {(2, 0): 0.9, (4, 4): 0.6}, size=8, settings={"n_test": 100, "stride": 2},
                       wall_time=1.0)
    second = GridResult("lenet", {(6, 0): 0.5, (4, 4): 0.8, (2, 2): 0.7}, size=8, settings={"n_test": 100, "band": 1},
                        wall_time=2.5)
    merged = paper._merge_grids("lenet", [first, second])
    # at size 8, (6, 0) is the mirror of (2, 0); (4, 4) is its own mirror
    assert merged.accuracy == pytest.approx({(2, 0): 0.7, (4, 4): 0.7, (2, 2): 0.7}, abs=1e-15)
    assert list(merged.accuracy) == [(2, 0), (4, 4), (2, 2)]
    assert merged.size == 8 and merged.wall_time == 3.5
    assert merged.settings == {"n_test": 100, "parts": [{"n_test": 100, "stride": 2}, {"n_test": 100, "band": 1}]}
    # a mirror met first is kept as the key
    merged = paper._merge_grids("lenet", [GridResult("lenet", {(6, 0): 0.5}, size=8, settings={"n_test": 1}),
                                          GridResult("lenet", {(2, 0): 0.9}, size=8, settings={"n_test": 1})])
    assert merged.accuracy == pytest.approx({(6, 0): 0.7}, abs=1e-15)


@pytest.mark.parametrize("grids, message", [
    ([], r"^no grid given for 'lenet'$"),
    ([None], r"^no grid given for 'lenet'$"),
    ([GridResult("vgg11", {}, settings={"n_test": 1})], r"^a grid of 'vgg11' was given for 'lenet'$"),
    ([GridResult("lenet", {}, size=32, settings={"n_test": 1}), GridResult("lenet", {}, size=16, settings={"n_test": 1})],
     r"^the grids of 'lenet' have different sizes: \[32, 16\]$"),
    ([GridResult("lenet", {}, settings={"n_test": 0})],
     r"^a grid of 'lenet' lacks settings\['n_test'\] \(needed for the chance margin\)$"),
    ([GridResult("lenet", {}, settings={"stride": 2})],
     r"^a grid of 'lenet' lacks settings\['n_test'\] \(needed for the chance margin\)$"),
    ([GridResult("lenet", {}, settings={"n_test": 300}), GridResult("lenet", {}, settings={"n_test": 100})],
     r"^the grids of 'lenet' have different test-set sizes: \[100, 300\]$"),
])
def test_merge_grids_refusals(grids, message):
    with pytest.raises(ValueError, match=message):
        paper._merge_grids("lenet", grids)


# --------------------------------------------------------------------------------------------------
# fourier_map_entries, fourier_map_table
# --------------------------------------------------------------------------------------------------

#: hand-made published maps (10,000 test samples: at chance below 0.515 with 3 standard deviations)
PUBLISHED = {"logreg": {(2, 0): 1.0, (0, 2): 1.0},
             "lenet": {(2, 0): 0.8, (0, 2): 0.6, (2, 2): 0.7, (4, 4): 0.5},
             "vgg11": {(2, 0): 0.9},
             "resnet18": {(2, 0): 0.51, (0, 2): 0.9, (2, 2): 0.52},
             "densenet121": {(0, 2): 0.55}}


def _book_lenet():
    # shared with the published LeNet map: (2, 0) 0.9 / 0.8, (0, 2) (as its mirror (0, 30)) 0.8 / 0.6,
    # (2, 2) 0.7 / 0.7; (6, 6) is not published.  Deviations from the means 0.8 and 0.7: (0.1, 0, -0.1) and
    # (0.1, -0.1, 0): Pearson r = 0.01 / 0.02 = 0.5, mean |difference| = (0.1 + 0.2 + 0) / 3 = 0.1
    return GridResult("lenet", {(2, 0): 0.9, (0, 30): 0.8, (2, 2): 0.7, (6, 6): 0.6}, settings=dict(SMOKE))


def test_fourier_map_entries_fields_order_and_agreement():
    nopool = GridResult("lenet_nopool", {(2, 0): 0.7, (4, 0): 0.5, (6, 0): 0.64}, settings=dict(SMOKE))
    entries = paper.fourier_map_entries({"lenet_nopool": [None, nopool], "vgg11": None, "resnet18": [],
                                         "lenet": _book_lenet()}, published=PUBLISHED)
    assert [(e["arch"], e["source"]) for e in entries] == [
        ("logreg", "published"), ("lenet", "published"), ("lenet", "this book"), ("vgg11", "published"),
        ("resnet18", "published"), ("densenet121", "published"), ("lenet_nopool", "this book")]
    assert [e["network"] for e in entries] == ["LogReg", "LeNet", "LeNet", "VGG-11", "ResNet-18", "DenseNet-121",
                                               "LeNet without pooling"]
    pub = entries[1]
    assert pub["label"] == pub["short_label"] == PUBLISHED_LABEL == "published (Ortiz-Jimenez et al.)"
    assert pub["details"] == "their measurements: 4 directions, 10,000 test samples each"
    assert pub["accuracy"] == PUBLISHED["lenet"] and pub["accuracy"] is not PUBLISHED["lenet"]
    assert pub["grid"] is None and pub["n_test"] == 10_000
    assert pub["threshold"] == pytest.approx(0.515, abs=1e-15) and pub["failing"] == 0.25   # only 0.5
    book = entries[2]
    assert book["label"] == "this book (stride 2: 4 directions, smoke profile, 1,000 / 100 samples, 5 ep., cpu)"
    assert book["short_label"] == "this book (stride 2, smoke profile, cpu)"
    assert book["details"] == "stride 2: 4 directions, smoke profile, 1,000 / 100 samples, 5 ep., cpu"
    assert book["accuracy"] == {(2, 0): 0.9, (0, 30): 0.8, (2, 2): 0.7, (6, 6): 0.6}
    assert book["grid"].accuracy == book["accuracy"] and book["n_test"] == 100
    assert book["threshold"] == pytest.approx(0.65, abs=1e-15) and book["failing"] == 0.25  # only 0.6
    ag = book["agreement"]
    assert pub["agreement"] is ag and set(ag) == {"shared", "pearson", "mean_abs", "failing_ours",
                                                  "failing_published", "threshold_ours", "threshold_published"}
    assert ag["shared"] == 3
    assert ag["pearson"] == pytest.approx(0.5, abs=1e-12) and ag["mean_abs"] == pytest.approx(0.1, abs=1e-12)
    assert ag["failing_ours"] == 0.0 and ag["failing_published"] == 0.0      # 0.5 and 0.6 are not shared
    assert ag["threshold_ours"] == pytest.approx(0.65, abs=1e-15)
    assert ag["threshold_published"] == pytest.approx(0.515, abs=1e-15)
    for e in entries[3:6] + entries[:1]:
        assert e["agreement"] is None and e["source"] == "published" and e["accuracy"] == PUBLISHED[e["arch"]]
    assert entries[4]["failing"] == pytest.approx(1 / 3)   # ResNet-18: 0.51 < 0.515 < 0.52
    last = entries[6]
    assert last["label"] == "this book (stride 2: 3 directions, smoke profile, 1,000 / 100 samples, 5 ep., cpu)"
    assert last["short_label"] == "this book (stride 2, smoke profile, cpu)" and last["details"] == \
        "stride 2: 3 directions, smoke profile, 1,000 / 100 samples, 5 ep., cpu"
    assert last["accuracy"] == nopool.accuracy and last["grid"].arch == "lenet_nopool" and last["n_test"] == 100
    assert last["threshold"] == pytest.approx(0.65, abs=1e-15) and last["failing"] == pytest.approx(2 / 3)
    assert last["agreement"] is None


def test_fourier_map_entries_sigmas_and_no_shared_direction():
    """sigmas=2: at chance below 0.5 + 2 x 0.5 / 10 = 0.6 (book) and 0.51 (published); a book map sharing no
    direction with the published one: 0 shared, NaN correlation and mean difference, shares of nothing NaN."""
    grid = GridResult("lenet", {(6, 6): 0.55, (8, 8): 0.61}, settings={"n_test": 100})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the NaNs are returned on purpose, not met as "mean of empty slice"
        entries = paper.fourier_map_entries({"lenet": grid}, published=PUBLISHED, sigmas=2)
    pub, book = entries[1], entries[2]
    assert pub["threshold"] == pytest.approx(0.51, abs=1e-15) and pub["failing"] == 0.25
    assert entries[4]["failing"] == 0.0                      # ResNet-18's 0.51 is not below 0.51
    assert book["threshold"] == pytest.approx(0.6, abs=1e-15) and book["failing"] == 0.5
    assert book["label"] == "this book (2 directions)" and book["short_label"] == "this book ()"
    ag = book["agreement"]
    assert ag["shared"] == 0 and math.isnan(ag["pearson"]) and math.isnan(ag["mean_abs"])
    assert math.isnan(ag["failing_ours"]) and math.isnan(ag["failing_published"])
    assert ag["threshold_ours"] == pytest.approx(0.6, abs=1e-15)
    assert ag["threshold_published"] == pytest.approx(0.51, abs=1e-15)


def test_fourier_map_entries_reads_the_bundled_maps_by_default():
    """Without `published` (or without an architecture in it) the bundled map of each network is used: the
    130 directions of the whole even spectrum (tests/test_paper.py), 10,000 test samples each."""
    entries = paper.fourier_map_entries(published={"lenet": PUBLISHED["lenet"]})
    assert [e["arch"] for e in entries] == ["logreg", "lenet", "vgg11", "resnet18", "densenet121"]
    assert entries[1]["accuracy"] == PUBLISHED["lenet"]
    for e in entries[:1] + entries[2:]:
        assert e["accuracy"] == paper.paper_fourier_accuracy(e["arch"])
        assert e["details"] == "their measurements: 130 directions, 10,000 test samples each"
    assert entries[0]["failing"] == 0.0   # LogReg's published map is 1.0 everywhere
    assert [e["arch"] for e in paper.fourier_map_entries()] == list(paper.FOURIER_MAP_ARCHS)


def test_fourier_map_entries_refuses_unknown_architectures():
    message = (r"^unknown architecture\(s\) \['alexnet', 'zz'\] \(neither published by the authors, logreg, lenet, "
               r"vgg11, resnet18, densenet121, nor registered: logreg, lenet, lenet_nopool, vgg11, vgg11_nopool, "
               r"resnet18, resnet18_nopool, densenet121, densenet121_nopool\)$")
    grid = GridResult("lenet", {(2, 0): 0.9}, settings={"n_test": 100})
    with pytest.raises(ValueError, match=message):
        paper.fourier_map_entries({"zz": grid, "lenet": grid, "alexnet": [grid]}, published=PUBLISHED)


def test_fourier_map_table_by_hand():
    """One row per map: the published ones with their size and failing share, the book's LeNet with the shared
    directions, r and both failing shares, a map the authors did not publish without them (sigmas=2: at chance
    below 0.6 for 100 test samples, 0.51 for 10,000)."""
    nopool = GridResult("lenet_nopool", {(2, 0): 0.7, (4, 0): 0.5, (6, 0): 0.55}, settings=dict(SMOKE))
    book = GridResult("lenet", {(2, 0): 0.9, (0, 30): 0.8, (2, 2): 0.5, (6, 6): 0.55}, settings=dict(SMOKE))
    # shared: (2, 0) 0.9 / 0.8, (0, 2) 0.8 / 0.6, (2, 2) 0.5 / 0.7; book at chance: 0.5, 0.55 of 4 (50 %),
    # on the shared ones 0.5 of 3 (33 %); published LeNet at chance: 0.5 of 4 (25 %), on the shared: none (0 %).
    # deviations from the means 0.7333 and 0.7: (1/6, 1/15, -7/30) and (0.1, -0.1, 0):
    # r = (1/60 - 1/150) / sqrt((1/36 + 1/225 + 49/900) * 0.02) = 0.01 / sqrt(0.0866667 * 0.02) = 0.24
    table = paper.fourier_map_table({"lenet_nopool": nopool, "lenet": book}, published=PUBLISHED, sigmas=2)
    caption = ("*Failing: test accuracy at chance, below 0.5 + 2 × 0.5 / √n_test (0.600 for 100 test samples; "
               "0.510 for 10,000 test samples).  r: Pearson correlation with the published map over the directions "
               f"both maps hold (– where undefined: one map is constant).  Source of the published maps: {PAPER_SOURCE}.*")
    assert isinstance(table, paper.MarkdownTable)
    assert table.splitlines() == [
        caption, "",
        "| network | source | directions | r with published | failing share | "
        "failing share on shared directions: this book / published |",
        "|---|---|---|---|---|---|",
        "| LogReg | published (Ortiz-Jimenez et al.) | 2 |  | 0% |  |",
        "| LeNet | published (Ortiz-Jimenez et al.) | 4 |  | 25% |  |",
        "| LeNet | this book (stride 2, smoke profile, cpu) | 4 (3 shared) | 0.24 | 50% | 33% / 0% |",
        "| VGG-11 | published (Ortiz-Jimenez et al.) | 1 |  | 0% |  |",
        "| ResNet-18 | published (Ortiz-Jimenez et al.) | 3 |  | 0% |  |",
        "| DenseNet-121 | published (Ortiz-Jimenez et al.) | 1 |  | 0% |  |",
        "| LeNet without pooling | this book (stride 2, smoke profile, cpu) | 3 |  | 67% |  |",
    ]


def test_fourier_map_table_of_published_maps_only_and_undefined_r():
    """Default sigmas 3 (thresholds 0.515 and 0.650); a constant book map has r "–"."""
    flat = GridResult("lenet", {(2, 0): 0.7, (0, 2): 0.7, (2, 2): 0.7}, settings={"n_test": 100})
    lines = paper.fourier_map_table({"lenet": flat}, published=PUBLISHED).splitlines()
    assert lines[0].startswith("*Failing: test accuracy at chance, below 0.5 + 3 × 0.5 / √n_test "
                               "(0.650 for 100 test samples; 0.515 for 10,000 test samples).  r: ")
    assert lines[6] == "| LeNet | this book () | 3 (3 shared) | – | 0% | 0% / 0% |"
    lines = paper.fourier_map_table(published=PUBLISHED).splitlines()
    assert "(0.515 for 10,000 test samples).  r: " in lines[0] and len(lines) == 4 + 5
    assert lines[8] == "| DenseNet-121 | published (Ortiz-Jimenez et al.) | 1 |  | 0% |  |"


# --------------------------------------------------------------------------------------------------
# oracle_table
# --------------------------------------------------------------------------------------------------

ORACLE = {"authors_acc": np.array([[0.8, 0.5], [0.9, 0.6]]), "nadlib_acc": np.array([[0.7, 0.55], [0.75, 0.65]]),
          "names": np.array(["Fourier (2, 0)", "NAD 3"]), "kinds": np.array(["fourier", "nad"]),
          "published_acc": np.array([0.88, 0.52]), "seeds": np.array([0, 7])}


def test_oracle_table_by_hand():
    """Two directions, two seeds, 400 test samples.  Row 1: authors 0.85, nadlib 0.725, difference -0.125,
    2 s.e. = 2 sqrt((0.85 x 0.15 + 0.725 x 0.275) / 800) = 0.0404; row 2: 0.55, 0.6, +0.05,
    2 sqrt((0.55 x 0.45 + 0.6 x 0.4) / 800) = 0.0494."""
    meta = {"n_train": 2000, "n_test": 400, "epochs": 3, "authors_commit": "0123456789abcdef",
            "accommodations": ["CPU instead of CUDA", "no data loader workers"]}
    table = paper.oracle_table(ORACLE, meta)
    assert table.splitlines() == [
        "*Both codes on the same D(v) recipe (σ 3, ε 1, 2,000 training and 400 test samples, 3 epochs, seed(s) 0, 7); "
        "the authors' code is theirs, unchanged (commit 0123456; run with: CPU instead of CUDA; no data loader "
        f"workers).  s.e.: binomial, test sampling only.  Published: {PAPER_SOURCE}.*",
        "",
        "| LeNet trained on | authors' released code | nadlib | published | nadlib − authors' (± 2 s.e.) |",
        "|---|---|---|---|---|",
        "| Fourier (2, 0) | 0.850 | 0.725 | 0.880 | -0.125 ± 0.040 |",
        "| NAD 3 | 0.550 | 0.600 | 0.520 | +0.050 ± 0.049 |",
    ]


def test_oracle_table_of_one_kind_and_without_a_commit():
    table = paper.oracle_table(ORACLE, {"n_train": 100, "n_test": 400, "epochs": 1}, kind="nad")
    lines = table.splitlines()
    assert lines[0].startswith("*Both codes on the same D(v) recipe (σ 3, ε 1, 100 training and 400 test samples, "
                               "1 epochs, seed(s) 0, 7); the authors' code is theirs, unchanged (commit ?; run with: ).")
    assert lines[4:] == ["| NAD 3 | 0.550 | 0.600 | 0.520 | +0.050 ± 0.049 |"]


def test_fourier_map_entries_shares_at_chance_use_sigmas():
    """sigmas=5: at chance below 0.5 + 5 x 0.05 = 0.75 (book, 100 test samples) and 0.5 + 5 x 0.005 = 0.525
    (published): over the three shared directions the book's 0.7 and the published 0.52 are at chance (1/3 each;
    with the default 3 sigmas neither is), and the book-only LeNet without pooling (0.7, 0.5, 0.64) all of it."""
    published = {"lenet": {(2, 0): 0.52, (0, 2): 0.6, (2, 2): 0.7}}
    nopool = GridResult("lenet_nopool", {(2, 0): 0.7, (4, 0): 0.5, (6, 0): 0.64}, settings=dict(SMOKE))
    for sigmas, share, nopool_share in ((5, 1 / 3, 1.0), (3, 0.0, 2 / 3)):
        entries = paper.fourier_map_entries({"lenet": _book_lenet(), "lenet_nopool": nopool},
                                            published=published, sigmas=sigmas)
        ag = entries[2]["agreement"]
        assert ag["shared"] == 3
        assert ag["failing_ours"] == pytest.approx(share) and ag["failing_published"] == pytest.approx(share)
        assert entries[-1]["arch"] == "lenet_nopool" and entries[-1]["failing"] == pytest.approx(nopool_share)


# --------------------------------------------------------------------------------------------------
# the bundled published data, read exactly (second pass of paper.py)
# --------------------------------------------------------------------------------------------------

def _bundled(name):
    from importlib import resources
    return resources.files("nadlib.published").joinpath(name)


def test_the_bundled_tables_name_the_five_networks_and_logreg():
    """Which networks the bundled files hold, read again (the module constants are computed at import, before a
    test could change anything): Fourier maps of LogReg and the five networks' four CNNs (their column names in
    the authors' CSV), NAD curves of the four CNNs, NADs of all five."""
    assert paper._published_columns("dft_accuracies.csv") == {
        "logreg": "acc_lr", "lenet": "acc_ln", "vgg11": "acc_vgg", "resnet18": "acc_rn", "densenet121": "acc_dn"}
    assert paper._published_columns("nads.csv") == {
        "lenet": "acc_ln", "vgg11": "acc_vgg", "resnet18": "acc_rn", "densenet121": "acc_dn"}
    assert paper._published_nad_archs() == ("logreg", "lenet", "vgg11", "resnet18", "densenet121")
    with pytest.raises(ValueError, match=r"^no published data for 'lenet_nopool'; available: lenet, vgg11, "
                                         r"resnet18, densenet121$"):
        paper.published_trainability("lenet_nopool")


@pytest.mark.parametrize("arch", ["lenet", "densenet121"])
def test_published_nads_are_the_bundled_arrays_with_variances(arch):
    """The first 64 directions as float32 images, and every singular value s turned into the variance
    s^2 / (10,000 - 1) in float64; 10,000 networks, the secant method, labelled as the authors'."""
    with _bundled("nads_top64.npz").open("rb") as fh, np.load(fh) as data:
        raw_dirs, raw_s = data[f"{arch}_nads"], data[f"{arch}_singular_values"]
    nads = paper.published_nads(arch)
    assert nads.directions.dtype == torch.float32 and nads.directions.shape == (64, 1, 32, 32)
    assert np.array_equal(nads.directions.reshape(64, -1).numpy(), raw_dirs.reshape(64, -1).astype(np.float32))
    assert nads.eigenvalues.dtype == torch.float64 and len(nads.eigenvalues) == len(raw_s) == 1023
    assert np.array_equal(nads.eigenvalues.numpy(), raw_s.astype(np.float64) ** 2 / 9999)
    assert nads.n_networks == 10_000 and nads.method == "secant (published)"
    assert nads.meta == {"arch": arch, "source": PAPER_SOURCE}


def test_published_fourier_keys_are_the_librarys_members_of_each_pair():
    """One member per symmetric pair, the one `fourier_grid` keeps (the first in row-major order), so a grid's
    keys and the published ones meet without mirroring."""
    from nadlib.directions import fourier_grid
    keys = set(paper.paper_fourier_accuracy("lenet"))
    assert len(keys) == 130 and keys <= set(fourier_grid(32))


def test_nads_agreement_takes_a_nads_object_or_its_directions():
    nads = paper.published_nads("lenet")
    assert paper.nads_agreement(nads, "lenet", ks=(1, 10)) == pytest.approx({1: 1.0, 10: 1.0}, abs=1e-5)  # float32
    assert paper.nads_agreement(nads.directions, "lenet", ks=(1, 10)) == paper.nads_agreement(nads, "lenet", ks=(1, 10))


def test_trainability_agreement_by_hand():
    """Indices the authors did not publish (2000) are left out, the order of the curve is kept; published LeNet
    accuracies at indices 0 and 2 are 1.0 and 0.9999 (their nads.csv)."""
    out = paper.trainability_agreement({"indices": [2, 2000, 0], "test_acc": [0.9, 0.1, 0.75]}, "lenet")
    assert set(out) == {"indices", "ours", "paper", "difference", "mean_abs"}
    assert out["indices"].tolist() == [2, 0] and out["ours"].tolist() == [0.9, 0.75]
    assert out["paper"] == pytest.approx([0.9999, 1.0], abs=1e-15)  # 99.99 / 100
    assert out["difference"] == pytest.approx([0.9 - 0.9999, -0.25])
    assert out["mean_abs"] == pytest.approx((0.0999 + 0.25) / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice": NaN is returned on purpose
        none = paper.trainability_agreement({"indices": [5000], "test_acc": [0.5]}, "lenet")
    assert math.isnan(none["mean_abs"]) and none["indices"].tolist() == []


def test_compare_with_paper_mirrors_at_the_grids_own_size():
    """A 8 x 8 grid: the published (7, 0) and (6, 5) are the mirrors of (1, 0) and (2, 3) at size 8 (not at 32)."""
    grid = GridResult("lenet", {(1, 0): 0.9, (2, 3): 0.7, (0, 1): 0.6, (4, 4): 0.8}, size=8)
    out = paper.compare_with_paper(grid, published={(7, 0): 0.8, (6, 5): 0.5, (0, 1): 0.6})
    assert out["freqs"] == [(1, 0), (2, 3), (0, 1)]
    assert out["ours"].tolist() == [0.9, 0.7, 0.6] and out["paper"].tolist() == [0.8, 0.5, 0.6]
    assert out["pearson"] == pytest.approx(np.corrcoef([0.9, 0.7, 0.6], [0.8, 0.5, 0.6])[0, 1])
    # either side constant: no correlation (NaN, on purpose: no "invalid value" warning), not 0 or an error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = paper.compare_with_paper(grid, published={(7, 0): 0.5, (6, 5): 0.5, (0, 1): 0.5})
    assert math.isnan(flat["pearson"])


def test_chance_threshold_at_one_test_sample_and_its_refusal():
    assert paper.chance_threshold(1) == 2.0 and paper.chance_threshold(4, sigmas=1) == 0.75
    with pytest.raises(ValueError, match=r"^n_test must be a positive number of test samples, got 0$"):
        paper.chance_threshold(0)


def test_failing_share_of_nothing_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(paper.failing_share([], 100))
    assert paper.failing_share([0.6, 0.7], 100, sigmas=5) == 1.0 and paper.failing_share([0.6, 0.7], 100) == 0.5


def test_oracle_rows_average_over_the_seeds_of_each_direction():
    """Three seeds (rows) of two directions (columns): the means are over the rows; the standard error uses 3
    seeds: sqrt(p (1 - p) / 400 / 3)."""
    arrays = dict(ORACLE, authors_acc=np.array([[0.8, 0.5], [0.9, 0.6], [0.7, 0.4]]),
                  nadlib_acc=np.array([[0.7, 0.55], [0.75, 0.65], [0.8, 0.45]]), seeds=np.array([0, 7, 9]))
    rows = paper.oracle_rows(arrays, {"n_test": 400})
    assert [(r["name"], r["kind"]) for r in rows] == [("Fourier (2, 0)", "fourier"), ("NAD 3", "nad")]
    assert rows[0]["authors"] == pytest.approx(0.8) and rows[0]["nadlib"] == pytest.approx(0.75)
    assert rows[1]["authors"] == pytest.approx(0.5) and rows[1]["nadlib"] == pytest.approx(0.55)
    assert rows[0]["published"] == 0.88 and rows[0]["difference"] == pytest.approx(-0.05)
    se_a, se_b = math.sqrt(0.8 * 0.2 / 400 / 3), math.sqrt(0.75 * 0.25 / 400 / 3)
    assert rows[0]["se_authors"] == pytest.approx(se_a) and rows[0]["se"] == pytest.approx(math.hypot(se_a, se_b))
    assert [r["kind"] for r in paper.oracle_rows(arrays, {"n_test": 400}, kind="nad")] == ["nad"]
