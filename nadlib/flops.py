"""FLOP accounting for the GPU paths (issue 26): the FLOPs of one forward pass, and a measured time turned
into achieved TFLOP/s and the share of a card's dense peak.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions,
a multiply-add counted as 2 FLOPs; element-wise work such as ReLU or batch norm is not counted), so
"achieved TFLOP/s" is the rate of *useful* tensor-core work, the quantity a card's peak refers to::

    flops = forward_flops(nadlib.get_model("vgg11", num_classes=1), (1, 32, 32))   # ~0.30 GFLOP
    achieved(flops * 1025 * networks, seconds, card="h100", precision="tf32")
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PEAK_TFLOPS", "PRECISIONS", "forward_flops", "training_flops", "card_of", "peak_tflops", "achieved"]

PRECISIONS = ("fp32", "tf32", "bf16")

#: Dense (no sparsity) peak TFLOP/s of the cards this project may be lent, per precision (NVIDIA's data
#: sheets, SXM parts, rounded).  The H200 has the H100's compute (more and faster memory).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h100": {"fp32": 67.0, "tf32": 495.0, "bf16": 990.0},
    "h200": {"fp32": 67.0, "tf32": 495.0, "bf16": 990.0},
}


def _checked(model: nn.Module, input_shape, batch: int) -> tuple[tuple[int, ...], torch.Tensor | None, torch.device]:
    """The arguments of a FLOP count, checked: ``(input shape, the model's first parameter or None, its device)``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be positive integers, e.g. (1, 32, 32), got {input_shape!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    first = next(model.parameters(), None)
    return shape, first, first.device if first is not None else torch.device("cpu")


def forward_flops(model: nn.Module, input_shape, batch: int = 1) -> int:
    """FLOPs of one forward pass of ``model`` on a ``(batch, *input_shape)`` input (eval mode, no grad,
    on the model's device; the model's mode is restored).  Counted by ``FlopCounterMode``."""
    shape, first, device = _checked(model, input_shape, batch)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(batch, *shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def training_flops(model: nn.Module, input_shape, batch: int = 2) -> int:
    """FLOPs of one training step's forward and backward pass (cross-entropy on the model's outputs, gradients
    of every parameter; the input needs none) on a ``(batch, *input_shape)`` input, in training mode (the
    model's mode and its gradients and batch-norm statistics are restored).  The optimiser's update is not
    counted.  Divide by ``batch`` for the cost per training sample."""
    shape, _, device = _checked(model, input_shape, batch)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            out = model(torch.zeros(batch, *shape, device=device))
            target = torch.zeros(batch, dtype=torch.long, device=device)
            nn.functional.cross_entropy(out.reshape(batch, -1), target).backward()
    finally:
        model.train(was_training)
        model.load_state_dict(state)
        for n, p in model.named_parameters():
            p.grad = grads[n]
    return int(counter.get_total_flops())


def card_of(device) -> str:
    """A short name of the accelerator behind ``device``: ``"h100"``, ``"h200"``, another CUDA card's
    name in lower case, or ``"cpu"``."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    name = torch.cuda.get_device_name(device).lower()
    for key in PEAK_TFLOPS:
        if key in name:
            return key
    return name


def peak_tflops(card: str, precision: str = "fp32") -> float | None:
    """The dense peak TFLOP/s of ``card`` (see :data:`PEAK_TFLOPS`) at ``precision``; None when unknown
    (the CPU, or a card not in the table)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return PEAK_TFLOPS.get(str(card).lower(), {}).get(precision)


def achieved(flops: float, seconds: float, card: str = "cpu", precision: str = "fp32") -> dict:
    """``flops`` done in ``seconds`` as ``{"tflops", "peak_tflops", "pct_of_peak"}``: achieved TFLOP/s, the
    card's peak at ``precision`` and the achieved share of it in percent (both None when the peak is
    unknown, e.g. on the CPU)."""
    for value, name in ((flops, "flops"), (seconds, "seconds")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    if seconds == 0:
        raise ValueError("seconds must be positive")
    tflops = flops / seconds / 1e12
    peak = peak_tflops(card, precision)
    return {"tflops": tflops, "peak_tflops": peak, "pct_of_peak": None if peak is None else 100 * tflops / peak}
