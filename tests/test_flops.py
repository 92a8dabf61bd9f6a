"""FLOP accounting (nadlib.flops) against exact counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nadlib.flops import achieved, card_of, forward_flops, peak_tflops


def test_linear_flops_are_two_in_out_batch():
    assert forward_flops(nn.Linear(30, 7), (30,), batch=5) == 2 * 30 * 7 * 5


def test_conv_flops_exact_and_mode_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 2)).train()
    conv = 2 * 3 * 3 * 3 * 4 * 8 * 8  # 2 * Cin * k * k * Cout * Hout * Wout per sample
    assert forward_flops(net, (3, 8, 8), batch=2) == 2 * (conv + 2 * 256 * 2)
    assert net.training


def test_achieved_and_peaks():
    r = achieved(2e12, 2.0, card="h100", precision="tf32")
    assert r["tflops"] == pytest.approx(1.0) and r["peak_tflops"] == 495.0
    assert r["pct_of_peak"] == pytest.approx(100 / 495)
    cpu = achieved(1e9, 1.0)
    assert cpu["tflops"] == pytest.approx(1e-3) and cpu["pct_of_peak"] is None
    assert peak_tflops("h200", "bf16") == 990.0 and peak_tflops("H100") == 67.0 and peak_tflops("cpu") is None
    assert card_of("cpu") == "cpu"


@pytest.mark.parametrize("call, match", [
    (lambda: forward_flops(nn.Linear(2, 2), (0,)), "input_shape"),
    (lambda: forward_flops(nn.Linear(2, 2), (2,), batch=0), "batch"),
    (lambda: forward_flops("lenet", (1, 32, 32)), "nn.Module"),
    (lambda: achieved(1.0, 0.0), "positive"),
    (lambda: achieved(float("nan"), 1.0), "flops"),
    (lambda: peak_tflops("h100", "fp8"), "precision"),
])
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
