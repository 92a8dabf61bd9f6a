"""scripts/gpu_issue26.py: the GPU session's script, checked on a CPU (budget, resume, summary)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_issue26", ROOT / "scripts" / "gpu_issue26.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_steps_that_do_not_fit_the_budget_are_skipped(tmp_path):
    log = _script().main(["--out", str(tmp_path), "--device", "cpu", "--tiny", "--budget", "1"])
    assert all(v["status"].startswith("skipped") for v in log.values()) and len(log) == 3
    assert (tmp_path / "summary.md").read_text() == "no step finished\n"
    assert json.loads((tmp_path / "log.json").read_text()) == log


def test_out_is_required(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    with pytest.raises(SystemExit):
        _script().main(["--tiny"])


@pytest.mark.slow  # three benchmark processes: about a minute on 2 cores
def test_tiny_end_to_end_and_resume(tmp_path):
    script = _script()
    log = script.main(["--out", str(tmp_path), "--device", "cpu", "--tiny", "--budget", "400"])
    assert all(v["status"] == "done" for v in log.values()), log
    summary = (tmp_path / "summary.md").read_text()
    assert "| workload | path | units/s | TFLOP/s | % of peak | × sequential | note |" in summary
    assert "BF16 autocast" in summary and "windowed LeNet path" in summary and "model stack" in summary
    again = script.main(["--out", str(tmp_path), "--device", "cpu", "--tiny", "--budget", "400"])
    assert all(v["status"] == "done (earlier run)" for v in again.values())
