"""FLOP accounting (nadlib.flops) against exact counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nadlib.flops import achieved, card_of, forward_flops, peak_tflops, training_flops


def test_linear_flops_are_two_in_out_batch():
    assert forward_flops(nn.Linear(30, 7), (30,), batch=5) == 2 * 30 * 7 * 5


def test_conv_flops_exact_and_mode_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 2)).train()
    conv = 2 * 3 * 3 * 3 * 4 * 8 * 8  # 2 * Cin * k * k * Cout * Hout * Wout per sample
    assert forward_flops(net, (3, 8, 8), batch=2) == 2 * (conv + 2 * 256 * 2)
    assert net.training


def test_training_flops_exact():
    """Forward 2an·b + 2bn·c; backward: weight gradients of both layers, input gradient of the second only."""
    a, b, c, n = 5, 6, 3, 4
    net = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c)).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert training_flops(net, (a,), batch=n) == 2 * a * b * n * 2 + 2 * b * c * n * 3
    assert not net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


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
    (lambda: training_flops(nn.Linear(2, 2), (2,), batch=-1), "batch"),
    (lambda: achieved(1.0, 0.0), "positive"),
    (lambda: achieved(float("nan"), 1.0), "flops"),
    (lambda: peak_tflops("h100", "fp8"), "precision"),
])
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
