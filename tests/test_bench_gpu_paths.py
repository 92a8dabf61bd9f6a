"""benchmarks/bench_gpu_paths.py runs end to end at a tiny size and prints every column (no timings checked)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_paths", ROOT / "benchmarks" / "bench_gpu_paths.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_prints_the_table(tmp_path, capsys):
    out = tmp_path / "b.json"
    rows = _bench().main(["--tiny", "--device", "cpu", "--json", str(out)])
    text = capsys.readouterr().out
    assert "| workload | path | units/s | TFLOP/s | % of peak | × sequential | note |" in text
    workloads = {r["workload"] for r in rows}
    assert {"secant NADs, LeNet", "secant NADs, lenet"} <= workloads and any("D(v) training" in w for w in workloads)
    for r in rows:
        assert r["rate"] > 0 and r["tflops"] > 0 and r["pct_of_peak"] is None  # no peak known for a CPU
    batched = [r for r in rows if r["speedup"] is not None]
    assert len(batched) == 3  # one batched path per workload, each against its sequential path
    assert [r for r in rows if "model stack" in r["path"]][0]["max_accuracy_difference"] <= 1 / 32
    saved = json.loads(out.read_text())
    assert saved["meta"]["card"] == "cpu" and len(saved["rows"]) == len(rows)


def test_bad_spec_is_refused_before_any_work():
    with pytest.raises(SystemExit, match="spec"):
        _bench().main(["--tiny", "--device", "cpu", "--secant", "vgg11:0:2"])
    with pytest.raises(SystemExit, match="unknown architecture"):
        _bench().main(["--tiny", "--device", "cpu", "--train", "alexnet:2:32:1"])
