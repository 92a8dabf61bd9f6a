"""The catalogue of results (nadlib.catalogue) and loading by key (nadlib.results.load): fast unit tests.

The end-to-end counterpart (``python -m nadlib paper --profile smoke`` into an empty folder, then every chapter
executed against it) is tests/test_catalogue_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nadlib
from nadlib import catalogue as C
from nadlib import paper_run, results
from nadlib.book import coverage
from nadlib.cli import main
from nadlib.results import ResultMissingError, load_artifact, save_artifact
from nadlib import RunControl

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p.name for p in (ROOT / "results").glob("*.npz") if not p.name.endswith(".ckpt.npz"))


@pytest.fixture
def yours(tmp_path, monkeypatch):
    """An empty results folder of yours (set in-process), and a clean record of loads."""
    folder = tmp_path / "mine"
    folder.mkdir()
    monkeypatch.delenv("NADLIB_RESULTS", raising=False)
    monkeypatch.delenv(results.LOAD_LOG_ENV, raising=False)
    previous = nadlib.set_results_dir(folder)
    monkeypatch.setattr(results, "_LOADED", [])
    yield folder
    nadlib.set_results_dir(previous)


def _copy_as(key: str, profile: str, folder: Path, **meta_changes) -> Path:
    """Write the bundled artifact of ``key`` into ``folder`` under its canonical name for ``profile``."""
    arrays, meta = load_artifact(results.bundled_path(C.entry(key).bundled))
    return save_artifact(folder / C.canonical_name(key, profile), arrays, dict(meta, **meta_changes))


# --------------------------------------------------------------------------------------------------
# the table


def test_every_bundled_result_is_a_catalogue_entry_and_exists():
    bundled = [e.bundled for e in C.ENTRIES if e.bundled]
    assert len(bundled) == len(set(bundled))
    assert sorted(bundled) == BUNDLED  # each file of results/ stands for exactly one entry
    _, registry = results.results_registry()
    for name in bundled:
        assert (ROOT / "results" / name).is_file() or name in registry, name


def test_keys_and_canonical_names_are_unique_and_round_trip():
    assert len(C.CATALOGUE) == len(C.ENTRIES)
    names = [C.canonical_name(e.key, p) for e in C.ENTRIES for p in nadlib.PROFILE_NAMES]
    assert len(names) == len(set(names))
    assert not set(names) & set(BUNDLED)  # a planner file never masquerades as a bundled one
    for e in C.ENTRIES:
        for p in nadlib.PROFILE_NAMES:
            assert C.parse_canonical_name(C.canonical_name(e.key, p)) == (e.key, p)
    assert C.canonical_name("lenet/nads/secant", "paper") == "lenet__nads__secant__paper.npz"
    assert C.parse_canonical_name("grid_lenet_paper_s4.npz") is None
    for bad in ("Lenet/grid", "lenet//grid", "lenet__grid", "", "/lenet", None):
        with pytest.raises(ValueError, match="catalogue key"):
            C.canonical_name(bad, "paper")
    with pytest.raises(ValueError, match="unknown profile"):
        C.canonical_name("lenet/grid", "huge")


def test_entries_are_consistent():
    kinds_loaded = set(results._LOADERS)
    for e in C.ENTRIES:
        assert e.kind in C.KINDS and e.kind in kinds_loaded, e.key
        assert e.what and "\n" not in e.what, e.key
        assert e.chapters or e.make, f"{e.key}: neither shown nor made"
        assert e.make or e.command, f"{e.key}: no profile makes it and no command says how it was made"
        assert set(e.archs) <= set(nadlib.ARCHITECTURES), e.key
        for profile, make in e.make.items():
            assert make.producer in C.PRODUCERS and make.producer in paper_run.PRODUCERS, e.key
            for need in make.needs.values():  # what an entry reads is made first, by the same profile
                assert profile in C.entry(need).make and C.entry(need).priority < e.priority, (e.key, need)
            units, unit = C.entry_units(e, profile)
            assert units >= 1 and unit in ("network", "direction", "run"), e.key
            for dev in C.DEVICE_TYPES:
                sec, src = C.entry_cost(e, profile, dev)
                assert sec > 0 and src, (e.key, profile, dev)


def test_the_planner_makes_what_the_chapters_show():
    """Every entry a chapter shows that the smoke profile can make, the paper profile can make too; the
    default (CPU) profile makes every bundled CPU result."""
    for e in C.ENTRIES:
        if e.chapters and "smoke" in e.make:
            assert "paper" in e.make, e.key
        if e.bundled and "default" in e.make:
            meta = load_artifact(results.bundled_path(e.bundled))[1]
            assert meta.get("device") == "cpu", e.key
    gpu = [e.key for e in C.ENTRIES if e.bundled and "default" not in e.make and e.make]  # bundled, made on a GPU
    assert all(load_artifact(results.bundled_path(C.entry(k).bundled))[1]["device"] == "cuda" for k in gpu)
    assert set(gpu) == {"vgg11/nads/secant", "resnet18/nads/secant", "densenet121/nads/secant",
            "resnet18/trainability/secant", "resnet18/trainability/published"}


def test_select_by_key_pattern_and_step_in_priority_order():
    keys = [e.key for e in C.select("lenet/grid,flip,*/nads/gradient", "smoke")]
    assert keys[:3] == ["lenet/nads/gradient", "logreg/nads/gradient", "vgg11/nads/gradient"]
    assert "lenet/grid" in keys and "lenet/cifar/flip" in keys and "lenet/grid/band4" not in keys
    prio = [C.entry(k).priority for k in keys]
    assert prio == sorted(prio)
    with pytest.raises(ValueError, match="--only takes.*'resnet18/collapse'"):
        C.select("resnet18/collapse", "smoke")  # only the paper profile makes it
    with pytest.raises(KeyError, match="did you mean lenet/grid"):
        C.entry("lenet/gird")


def test_make_command_names_the_smallest_real_profile():
    assert C.make_command("lenet/grid") == "python -m nadlib paper --only lenet/grid --profile default"
    assert C.make_command("resnet18/grid") == "python -m nadlib paper --only resnet18/grid --profile paper"
    assert "recipe-sweep" in C.make_command("lenet/recipe-sweep")


# --------------------------------------------------------------------------------------------------
# loading by key


def test_bundled_when_you_have_nothing(yours):
    grid = nadlib.results.load("lenet/grid")
    assert isinstance(grid, nadlib.GridResult) and len(grid.accuracy) == 34
    o = grid.origin
    assert (o.source, o.profile, Path(o.path).name) == ("bundled", None, "grid_lenet_paper_s4.npz")
    assert o.device == "CPU" and o.date == "2026-11-24" and o.sizes.startswith("34 directions, 10,000/10,000")
    assert nadlib.results.caption("lenet/grid").startswith("the book's bundled result (lenet/grid: 34 directions")
    assert [r["key"] for r in nadlib.results.loaded()] == ["lenet/grid"]


def test_yours_takes_precedence_entry_by_entry_and_the_best_profile_wins(yours):
    _copy_as("lenet/grid", "smoke", yours, device_name="ToyGPU 9000", date="2030-01-02T00:00:00+00:00")
    grid = nadlib.load_result("lenet/grid")
    assert grid.origin.source == "yours" and grid.origin.profile == "smoke"
    _copy_as("lenet/grid", "paper", yours, device_name="ToyGPU 9000", date="2030-01-02T00:00:00+00:00")
    _copy_as("lenet/grid", "default", yours)
    grid = nadlib.results.load("lenet/grid")
    o = grid.origin
    assert (o.source, o.profile, Path(o.path).name) == ("yours", "paper", "lenet__grid__paper.npz")
    assert o.device == "ToyGPU 9000" and o.date == "2030-01-02"
    assert nadlib.results.caption("lenet/grid") == (
        "your result (lenet/grid, paper profile: 34 directions, 10,000/10,000 samples, 20 epochs, ToyGPU 9000, "
        "2030-01-02)")
    # another entry still comes from the bundled results
    assert nadlib.results.load("logreg/grid").origin.source == "bundled"
    # a file under the bundled name in your folder counts as yours (written by a single command)
    arrays, meta = load_artifact(results.bundled_path("grid_logreg_paper_s2.npz"))
    save_artifact(yours / "grid_logreg_paper_s2.npz", arrays, meta)
    assert nadlib.results.load("logreg/grid").origin.source == "yours"
    sources = [(r["key"], r["source"]) for r in nadlib.results.loaded()]
    assert sources == [("lenet/grid", "yours"), ("lenet/grid", "yours"), ("logreg/grid", "bundled"),
                       ("logreg/grid", "yours")]


def test_the_environment_variable_names_your_folder_and_loads_are_logged(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "_LOADED", [])
    previous = nadlib.set_results_dir(None)
    try:
        monkeypatch.setenv("NADLIB_RESULTS", str(tmp_path))
        log = tmp_path / "loads.jsonl"
        monkeypatch.setenv(results.LOAD_LOG_ENV, str(log))
        _copy_as("lenet/trainability/secant", "default", tmp_path)
        arrays, meta = nadlib.results.load("lenet/trainability/secant")
        assert arrays["test_acc"].shape == (11,) and meta["arch"] == "lenet"
        sweep = nadlib.results.load("lenet/recipe-sweep")
        assert sweep.origin.source == "bundled" and isinstance(sweep[0], dict)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(r["key"], r["source"], r["profile"]) for r in lines] == [
            ("lenet/trainability/secant", "yours", "default"), ("lenet/recipe-sweep", "bundled", None)]
    finally:
        nadlib.set_results_dir(previous)


def test_each_kind_loads_to_what_the_chapters_use(yours):
    assert isinstance(nadlib.results.load("lenet/nads/secant"), nadlib.NADs)
    sigs, meta = nadlib.results.load("cnns/signatures")
    assert "lenet" in sigs and meta["n_samples"] == 1152
    ablation = nadlib.results.load("lenet/pooling/ablation")
    assert ablation[1]["n_test"] == 10_000 and ablation.origin.key == "lenet/pooling/ablation"


def test_missing_entries_name_the_command_or_give_none(yours):
    with pytest.raises(ResultMissingError, match=r"'resnet18/grid'.*python -m nadlib paper --only resnet18/grid "
                                                 r"--profile paper"):
        nadlib.results.load("resnet18/grid")
    assert nadlib.results.load("resnet18/grid", missing_ok=True) is None
    assert nadlib.results.loaded() == []  # nothing was loaded
    assert nadlib.results.caption("resnet18/grid") == "resnet18/grid: not computed yet"
    with pytest.raises(KeyError, match="no catalogue entry"):
        nadlib.results.load("resnet18/grids", missing_ok=True)


def test_your_folder_may_not_exist_yet_but_must_not_be_a_file(tmp_path):
    previous = nadlib.set_results_dir(tmp_path / "later")
    try:
        assert nadlib.results.load("lenet/grid").origin.source == "bundled"
        (tmp_path / "file").write_text("x")
        nadlib.set_results_dir(tmp_path / "file")
        with pytest.raises(ValueError, match="is a file, not a folder"):
            nadlib.results.load("lenet/grid")
    finally:
        nadlib.set_results_dir(previous)


def test_result_path_prefers_your_file_over_the_bundled_one(yours):
    name = "grid_lenet_paper_s4.npz"
    assert nadlib.result_path(name) == ROOT / "results" / name
    (yours / name).write_bytes((ROOT / "results" / name).read_bytes())
    assert nadlib.result_path(name) == yours / name
    assert nadlib.results_dir() == ROOT / "results"  # unchanged for existing callers


# --------------------------------------------------------------------------------------------------
# coverage and the planner follow the catalogue


def test_coverage_is_derived_from_the_catalogue(yours):
    table = str(coverage.coverage_table(1))
    assert "| ResNet-18 | Fourier accuracy map: not computed: needs a GPU (`python -m nadlib paper --only " \
           "resnet18/grid --profile paper`)" in table
    _copy_as("lenet/grid", "paper", yours, device_name="ToyGPU 9000")
    table = str(coverage.coverage_table(1))
    assert "Fourier accuracy map: 34 directions, 10,000/10,000 samples, 20 epochs, ToyGPU 9000; your result " \
           "(paper profile)" in table
    for chapter in (1, 2, 3, 4, 5):  # every labelled entry appears in the table of its first chapter
        text = str(coverage.coverage_table(chapter))
        for e in C.ENTRIES:
            if e.label and e.chapters[0] == chapter:
                assert e.label in text, (chapter, e.key)
    assert nadlib.results.loaded() == []  # the tables do not count as loads


@pytest.fixture
def toy_network():
    """A sixth network of the paper, added the way CONTRIBUTING.md says: one register_architecture call and
    nothing else (no catalogue entry, no cost, no coverage row written for it)."""
    from torch import nn

    from nadlib.models import Architecture, register_architecture, unregister_architecture

    class ToyNet(nn.Module):
        def __init__(self, in_channels=1, num_classes=2):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 32 * 32, num_classes)

        def forward(self, x):
            return self.fc(nn.functional.relu(self.conv(x)).flatten(1))

    register_architecture(Architecture("toynet", "ToyNet", ToyNet, in_paper=True, colour="#17becf"))
    try:
        yield "toynet"
    finally:
        unregister_architecture("toynet")


def test_a_network_added_to_the_registry_appears_in_every_coverage_table_and_the_plan(toy_network, yours,
                                                                                      tmp_path, capsys):
    for chapter, label in ((1, "Fourier accuracy map"), (2, "secant NADs"), (2, "accuracy vs NAD index"),
                           (3, "NAD poisoning on CIFAR-10")):
        table = str(coverage.coverage_table(chapter))
        assert "| ToyNet |" in table, chapter
        assert f"{label}: not computed: needs a GPU (`python -m nadlib paper --only toynet/" in table, (chapter, label)
    for chapter in (4, 5):  # the chapters without a paper-size experiment of their own still list it
        assert "| ToyNet |" in str(coverage.coverage_table(chapter)), chapter
    assert main(["paper", "--dry-run", "--device-type", "cuda", "--out-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for key in ("toynet/nads/secant", "toynet/trainability/secant", "toynet/grid", "toynet/cifar/poison"):
        assert f"| {key} |" in out and C.canonical_name(key, "paper") in out, key
    assert "| toynet/grid | grid | toynet | 130 directions |" in out
    assert C.unit_cost("direction", "toynet", "cuda") == (C.unit_cost("direction", "resnet18", "cuda")[0],
                                                          "guess: no cost measured for toynet, resnet18's "
                                                          "(measured (H200))")
    assert not (tmp_path / "out").exists()
    # and it is gone with the registration
    C.entry("toynet/grid")


def test_an_unregistered_network_leaves_the_catalogue(yours):
    assert "| ToyNet |" not in str(coverage.coverage_table(1))
    with pytest.raises(KeyError, match="no catalogue entry 'toynet/grid'"):
        C.entry("toynet/grid")


def test_the_default_output_folder_is_yours_else_nadlib_results(yours, monkeypatch, tmp_path):
    assert paper_run.default_out_dir() == yours
    nadlib.set_results_dir(None)
    assert paper_run.default_out_dir() == Path("nadlib-results")
    monkeypatch.setenv("NADLIB_RESULTS", str(tmp_path / "env"))
    assert paper_run.default_out_dir() == tmp_path / "env"


def test_what_the_planner_writes_is_what_load_finds(yours):
    """One smoke entry end to end: made under its canonical name into your folder, then loaded from there."""
    assert paper_run.run_paper("smoke", only="logreg/grid", out_dir=yours, echo=lambda s: None,
                               run=RunControl(device="cpu", progress=False))
    grid = nadlib.results.load("logreg/grid")
    o = grid.origin
    assert (o.source, o.profile, Path(o.path).name) == ("yours", "smoke", "logreg__grid__smoke.npz")
    assert len(grid.accuracy) == 4 and o.sizes.startswith("4 directions, 256/128 samples, 1 epochs")
    meta = grid.settings
    assert meta["catalogue_key"] == "logreg/grid" and meta["profile"] == "smoke" and meta["producer"] == "grid"
    assert np.isfinite(list(grid.accuracy.values())).all()


# --------------------------------------------------------------------------------------------------
# the chapters load through the catalogue only

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def _chapter_strings(path: Path):
    """Every string literal of a chapter's code cells: plain ones, and f-strings as glob patterns."""
    import ast

    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.value
            elif isinstance(node, ast.JoinedStr):
                yield "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_key_a_chapter_uses_exists_and_no_file_name_remains(path):
    import fnmatch
    import re

    text = path.read_text(encoding="utf-8")
    files = set(BUNDLED) | {"grid_resnet18_paper.npz", "collapse_resnet18_paper.npz", "cifar_flip_resnet18_default.npz"}
    assert not [f for f in files if f in text], f"{path.name} names result files instead of catalogue keys"
    assert not re.search(r"\w__\w+__(smoke|default|paper)\.npz", text), f"{path.name} names a planner file"
    keyish = re.compile(r"[a-z0-9*][a-z0-9_.*-]*(/[a-z0-9*][a-z0-9_.*-]*)+")
    literal, matched = set(), set()
    for s in _chapter_strings(path):
        assert ".npz" not in s, f"{path.name}: a code cell names an .npz file: {s!r}"
        if keyish.fullmatch(s) and not s.startswith(("tests/", "book/", "results/")):
            hits = {k for k in C.CATALOGUE if fnmatch.fnmatchcase(k, s)}
            assert hits, f"{path.name} uses {s!r}, which is no catalogue key"
            matched |= hits
            if "*" not in s:
                literal.add(s)
    if "signature_card" in text:  # the card reads its references itself (nadlib.book.card.READS)
        from nadlib.book.card import READS
        literal |= set(READS)
        matched |= set(READS)
    chapter = int(path.name[:2])
    listed = {e.key for e in C.entries(chapter)}
    assert literal and literal <= listed, f"{path.name} uses {sorted(literal - listed)}, not listed for it"
    assert listed <= matched, f"the catalogue lists {sorted(listed - matched)} for {path.name}, which never names it"
