"""BF16 secant NADs behind the accuracy guard of issue 26 (CPUs support BF16 autocast, so it runs here)."""

from __future__ import annotations

import pytest
import torch

import nadlib
import nadlib.nads.estimate as est
from nadlib import RunControl

BF16 = RunControl(device="cpu", progress=False, precision="bf16")


@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_secant_passes_its_guard_and_says_so(threads):
    """At 1 and 2 torch threads: with 2 the windowed LeNet path runs in two Python threads (`_on_threads`), which
    must enter the caller's BF16 autocast again (it is thread-local); it once silently computed float32 there."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        nads = nadlib.estimate_nads("lenet", 16, k=10, run=BF16)
        fp32 = nadlib.estimate_nads("lenet", 16, k=10, run=BF16.replace(precision="fp32"))
    finally:
        torch.set_num_threads(before)
    guard = nads.meta["precision_guard"]
    assert guard["passed"] and guard["overlap"] >= 0.99 and guard["networks"] == est.GUARD_NETWORKS
    assert nads.meta["precision"] == "bf16 autocast" and fp32.meta["precision"] == "float32"
    assert nads.overlap(fp32, 10) >= 0.95  # the whole estimate agrees with float32 too
    assert not torch.equal(nads.directions, fp32.directions)  # and BF16 was really used


def test_guard_refuses_before_the_estimate(monkeypatch):
    monkeypatch.setattr(est, "GUARD_NETWORKS", 12)
    monkeypatch.setattr(est, "GUARD_MIN_OVERLAP", 1.01)  # an unreachable bar: the guard must refuse
    ran = []
    monkeypatch.setattr(est._Run, "execute", lambda *a, **k: ran.append(1))
    with pytest.raises(ValueError, match="refused by its accuracy guard"):
        nadlib.estimate_nads("lenet", 16, run=BF16)
    assert not ran


def test_guard_detects_a_bad_low_precision_path(monkeypatch):
    """A path whose BF16 result is noise fails the guard (the guard is not vacuous)."""
    real = est._Run.gradients

    def noisy(self, nets):
        g = real(self, nets)
        return torch.randn_like(g) if torch.is_autocast_enabled("cpu") else g
    monkeypatch.setattr(est._Run, "gradients", noisy)
    monkeypatch.setattr(est, "GUARD_NETWORKS", 12)
    with pytest.raises(ValueError, match="refused"):
        nadlib.estimate_nads("lenet", 16, run=BF16)


@pytest.mark.parametrize("call, match", [
    (lambda: nadlib.estimate_nads("lenet", 4, method="gradient", run=BF16), "method='secant' only"),
    (lambda: nadlib.nad_statistics("lenet", 0, 2, run=BF16), "float32 only"),
    (lambda: nadlib.direction_accuracy("lenet", torch.randn(1, 32, 32), run=BF16), "float32 only"),
    (lambda: RunControl(precision="fp16"), "precision"),
])
def test_bf16_refused_where_there_is_no_guard(call, match):
    with pytest.raises(ValueError, match=match):
        call()
