"""Tests of the paper run (``python -m nadlib paper``) and of the deadlines and chunked NAD statistics it uses."""

import time

import numpy as np
import pytest
import torch

from nadlib import accuracy_grid, estimate_nads
from nadlib.nads import input_gradients as IG
from nadlib.nads import estimate as N
from nadlib.cli import main
from nadlib.experiments import ResumableRuns
from nadlib.nads.stats import NADStatistics
from nadlib.catalogue import PROFILE_NAMES, canonical_name, select
from nadlib.paper_run import COSTS, format_plan, paper_plan, parse_budget, parse_only, run_paper
from nadlib.results import DeadlineReached, load_artifact
from nadlib import Recipe, RunControl

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------------
# plan and parsing

def test_dry_run_prints_the_plan_with_costs_for_cpu_and_cuda(tmp_path, capsys):
    assert main(["paper", "--dry-run", "--out-dir", str(tmp_path), "--device-type", "cpu"]) == 0
    cpu = capsys.readouterr().out
    assert main(["paper", "--dry-run", "--out-dir", str(tmp_path), "--device-type", "cuda"]) == 0
    cuda = capsys.readouterr().out
    for text in (cpu, cuda):
        assert "| key | step | arch | units | est. cost | status | artifact |" in text
        assert "| resnet18/nads/secant | nads | resnet18 | 10,000 networks |" in text
        assert "densenet121_nopool__grid__paper.npz" in text and "vgg11__cifar__flip__paper.npz" in text
        assert text.count("| todo |") == len(select(None, "paper")) >= 4 + 4 + 9 + 4 + 4
    # ResNet-18 secant: 30 s per network on the CPU -> 3.5 days; 4.0 networks/s on an H200 -> 2,500 s
    assert "| nads | resnet18 | 10,000 networks | 3.5 d | todo |" in cpu
    assert "| nads | resnet18 | 10,000 networks | 41.7 min | todo |" in cuda
    assert "measured on one H200" in cuda and "H200" not in cpu
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_plan_status_reads_artifacts_and_checkpoints(tmp_path):
    rows = paper_plan("smoke", None, tmp_path)
    assert [r.status for r in rows] == ["todo"] * len(rows)
    by_key = {r.key: r for r in rows}
    nads, train = by_key["lenet/nads/secant"], by_key["lenet/trainability/secant"]
    assert nads.out == tmp_path / canonical_name("lenet/nads/secant", "smoke") and train.needs["nads"] == nads.out
    nads.out.write_bytes(b"")  # an artifact counts as done
    ResumableRuns(train.ckpt, {"x": 1}).run(["nad_0"], lambda k: {"test_acc": 0.5}, progress=False)
    by_key = {r.key: r for r in paper_plan("smoke", None, tmp_path)}
    nads, train = by_key["lenet/nads/secant"], by_key["lenet/trainability/secant"]
    assert (nads.status, train.status, train.done_units) == ("done", "partial", 1)
    text = format_plan(list(by_key.values()), "smoke", "cpu")
    assert "| lenet/trainability/secant | trainability | lenet | 4 directions |" in text and "partial (1/4)" in text


def test_every_planned_arch_has_a_cost():
    for profile in PROFILE_NAMES:
        for r in paper_plan(profile, None, "/nonexistent-nadlib-results"):
            for dev in ("cpu", "cuda"):
                sec, src = r.cost(dev)
                assert sec > 0 and src
    measured = {(kind, arch) for (kind, arch, dev), (_, src) in COSTS.items() if dev == "cuda" and src != "estimate"}
    assert measured == {("nads", "vgg11"), ("nads", "resnet18"), ("nads", "densenet121"), ("direction", "resnet18")}


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("12m", 720), ("2h", 7200), ("1.5h", 5400),
                                           (" 0.5s ", 0.5)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "m", "-5m", "0s", "1d", "1.h", "12 m", "1e3s", "2h30m", None])
def test_parse_budget_refuses(text):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


def test_bad_paper_arguments_are_one_line_errors(tmp_path, capsys):
    for argv, message in ([(["--budget", "12x"], "a budget is a number"), (["--only", "nads,foo"], "--only takes"),
                          (["--device-type", "cuda"], "--device-type only changes"),
                          (["--address", "auto"], "--address is for the Ray engine"),
                          (["--only", "trainability"], "include 'lenet/nads/secant' (or the step 'nads') in --only"),
                          (["--profile", "huge"], "invalid choice"), (["--engine", "spark"], "invalid choice")]
                         + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "CUDA is not available")])):
        code = _exit_code(["paper", "--out-dir", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (argv, err)
    assert not any(tmp_path.iterdir())
    assert parse_only("grid, nads") == ("grid", "nads")
    steps = [e.step for e in select("grid,nads", "smoke")]  # in priority order: the NADs first
    assert set(steps) == {"nads", "grid"} and steps == sorted(steps, key=["nads", "grid"].index)


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse errors
        return stop.code


# --------------------------------------------------------------------------------------------------
# deadlines

def test_estimate_nads_deadline_stops_after_one_batch_and_resumes(tmp_path):
    ckpt = tmp_path / "n.ckpt.npz"
    with pytest.raises(DeadlineReached, match="networks 8 of 24") as stop:
        estimate_nads("lenet", 24, batch_size=8,
                      run=RunControl(seed=2, progress=False, checkpoint=ckpt, deadline=time.monotonic()))
    assert (stop.value.done, stop.value.total) == (8, 24) and ckpt.exists()
    resumed = estimate_nads("lenet", 24, batch_size=8, run=RunControl(seed=2, progress=False, checkpoint=ckpt))
    whole = estimate_nads("lenet", 24, batch_size=8, run=RunControl(seed=2, progress=False))
    assert torch.equal(resumed.eigenvalues, whole.eigenvalues) and resumed.n_networks == 24


def test_grid_and_runs_deadlines(tmp_path):
    kw = dict(freqs=[(1, 0), (0, 1), (5, 3)], recipe=Recipe(n_train=200, n_test=100, epochs=1), workers=1)
    ckpt = tmp_path / "g.ckpt.npz"
    quiet = RunControl(progress=False)
    with pytest.raises(DeadlineReached, match="directions 1 of 3"):
        accuracy_grid("logreg", run=quiet.replace(checkpoint=ckpt, deadline=time.monotonic()), **kw)
    assert accuracy_grid("logreg", run=quiet.replace(checkpoint=ckpt), **kw).accuracy == \
        accuracy_grid("logreg", run=quiet, **kw).accuracy
    calls = []
    runs = ResumableRuns(tmp_path / "r.ckpt.npz", {"s": 1})
    with pytest.raises(DeadlineReached, match="runs 1 of 3"):
        runs.run("abc", lambda k: calls.append(k) or {"v": len(k)}, progress=False, deadline=time.monotonic())
    ResumableRuns(tmp_path / "r.ckpt.npz", {"s": 1}).run("abc", lambda k: calls.append(k) or {"v": 1}, progress=False)
    assert calls == ["a", "b", "c"]
    with pytest.raises(ValueError, match="deadline"):
        runs.run("abc", lambda k: {}, deadline="soon")


# --------------------------------------------------------------------------------------------------
# chunked NAD statistics (what the Ray engine merges)

def test_chunked_statistics_merge_to_the_serial_estimate():
    whole = estimate_nads("lenet", 40, run=RunControl(seed=5, progress=False))
    batch = N.nad_run_settings("lenet", seed=5)["batch_size"]
    assert batch == 16  # chunks of 16 below are whole batches
    parts = [N.nad_statistics("lenet", a, min(a + 16, 40), run=RunControl(seed=5)) for a in range(0, 40, 16)]
    merged = NADStatistics.merge(parts)
    assert merged.count.tolist() == [20, 20] and merged.n_networks == 40
    est = N.nads_from_statistics(merged, (1, 32, 32), "secant")
    rel = ((est.eigenvalues - whole.eigenvalues).abs().max() / whole.eigenvalues.max()).item()
    assert rel < 1e-10
    assert abs(abs(float(est.directions[0].flatten() @ whole.directions[0].flatten())) - 1) < 1e-6
    with pytest.raises(ValueError, match="start < stop"):
        N.nad_statistics("lenet", 8, 8)
    with pytest.raises(ValueError, match="different dimensions"):
        NADStatistics.merge([NADStatistics(4), NADStatistics(5)])


# --------------------------------------------------------------------------------------------------
# the whole smoke-sized run: budgeted calls resume and equal one uninterrupted run

def _arrays(path):
    arrays, meta = load_artifact(path)
    return {k: v for k, v in arrays.items() if "wall_time" not in k}, meta


#: NADs, trainability, two Fourier maps, the CIFAR-10 poisoning and flip (and the NADs these read)
_SOME = "lenet/nads/secant,lenet/nads/cifar-basis,lenet/trainability/secant,logreg/grid,lenet/grid,lenet/cifar/*"


@pytest.mark.slow  # ~70 s: dozens of budgeted calls of the smoke paper run (make test runs it, test-fast not)
def test_budgeted_paper_run_resumes_and_equals_an_uninterrupted_run(tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_paper("smoke", only=_SOME, out_dir=whole, echo=lambda s: None,
                     run=RunControl(device="cpu", progress=False)) is True
    outputs = []
    for _ in range(100):  # about 55 units (LeNet's CIFAR-10 basis: 256 networks, 32 batches)
        code = main(["paper", "--profile", "smoke", "--only", _SOME, "--budget", "0.05s", "--quiet", "--out-dir",
                     str(split), "--device", "cpu"])
        assert code == 0
        outputs.append(capsys.readouterr().out)
        if "complete:" in outputs[-1]:
            break
    assert "complete:" in outputs[-1], outputs[-1]
    assert sum("budget reached: run again to continue" in o for o in outputs) >= 2
    assert "partial" in "".join(outputs)  # some call resumed a checkpoint
    names = sorted(p.name for p in whole.iterdir())
    assert names == sorted(p.name for p in split.iterdir()) and len(names) == 7  # no checkpoints left
    assert names == sorted(canonical_name(e.key, "smoke") for e in select(_SOME, "smoke"))
    for name in names:
        a, meta_a = _arrays(whole / name)
        b, meta_b = _arrays(split / name)
        assert a.keys() == b.keys(), name
        for k in a:
            assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), (name, k)
        assert meta_b["device"] == "cpu" and meta_b["precision"] == "float32" and "wall_time_s" in meta_b
        assert meta_b["device_name"].startswith("CPU")


def test_batched_generic_secant_equals_the_per_network_path():
    # the CUDA path for non-LeNet models: several networks per vmapped forward; checked here on the CPU with a
    # small conv + batch-norm network (VGG-11 with 2 networks gave a max relative difference of 3e-6)
    def make():
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                   torch.nn.MaxPool2d(4), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 1))
    x = torch.randn(1, 32, 32, generator=torch.Generator().manual_seed(0))
    nets = []
    for j in range(2):
        torch.manual_seed(N.network_seed(0, j))
        nets.append(make().eval())
    with torch.inference_mode():
        batched = IG.secant_batched(nets, x, 100.0, 128)
        single = torch.stack([IG.secant_plain(n, x, 100.0, 256) for n in nets])
    assert batched.shape == (2, 1024) and not torch.equal(batched[0], batched[1])
    assert (batched - single).abs().max() <= 1e-5 * single.abs().max()
