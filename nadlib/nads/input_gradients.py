"""Input gradients of scalar-output networks at one point, for :mod:`nadlib.nads`: the secant estimator
(central differences with a large step over every input coordinate; one network per call, or several
networks per ``vmap``-ed forward) and the autograd gradient (a loop, or ``vmap`` over stacked networks).
The exact fast LeNet secant path is :mod:`nadlib.nads.lenet_secant`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

__all__ = ["secant_plain", "secant_batched", "grad_loop", "grad_vmap"]


# ----------------------------------------------------------------------------------------------
# secant: plain batched path (any model)


def _perturbed(x: torch.Tensor, step: float, chunk: int):
    """Chunks of central-difference inputs: ``(start, n, xs)`` where ``xs`` holds ``x + step e_j`` for the
    ``n`` coordinates ``j = start .. start + n - 1``, then ``x - step e_j`` for the same ones."""
    d = x.numel()
    flat = x.reshape(-1)
    for start in range(0, d, chunk):
        idx = torch.arange(start, min(start + chunk, d), device=x.device)
        n = idx.numel()
        xs = flat.expand(2 * n, d).clone()
        xs[torch.arange(n), idx] += step
        xs[torch.arange(n, 2 * n), idx] -= step
        yield start, n, xs.view(2 * n, *x.shape)


def secant_plain(net: nn.Module, x: torch.Tensor, step: float, chunk: int) -> torch.Tensor:
    """Central differences with step ``step`` over every input coordinate of one network."""
    grad = torch.empty(x.numel(), device=x.device, dtype=torch.float32)
    for start, n, xs in _perturbed(x, step, chunk):
        out = net(xs).reshape(2 * n).float()
        grad[start:start + n] = (out[:n] - out[n:]) / (2 * step)
    return grad


def secant_batched(nets: list[nn.Module], x: torch.Tensor, step: float, chunk: int) -> torch.Tensor:
    """:func:`secant_plain` of several networks at once: every chunk of perturbed inputs goes through all the
    networks in one ``vmap``-ed forward (stacked parameters); on CUDA the inputs are channels-last.  One row
    per network; equal to the per-network path up to float rounding."""
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    forward = vmap(lambda p, b, xs: functional_call(base, (p, b), (xs,)), in_dims=(0, 0, None))
    n_nets = len(nets)
    grads = torch.empty(n_nets, x.numel(), device=x.device, dtype=torch.float32)
    fmt = torch.channels_last if x.device.type == "cuda" and x.dim() == 3 else torch.contiguous_format
    for start, n, xs in _perturbed(x, step, chunk):
        out = forward(params, buffers, xs.contiguous(memory_format=fmt))
        out = out.reshape(n_nets, 2 * n).float()
        grads[:, start:start + n] = (out[:, :n] - out[:, n:]) / (2 * step)
    return grads


# ----------------------------------------------------------------------------------------------
# gradient method


def grad_loop(nets: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    out = []
    for net in nets:
        xi = x[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xi).sum(), xi)
        out.append(g.reshape(-1))
    return torch.stack(out)


def grad_vmap(nets: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def f(p, b, xi):
        return functional_call(base, (p, b), (xi[None],)).sum()
    g = vmap(grad(f, argnums=2), in_dims=(0, 0, None), randomness="different")(params, buffers, x)
    return g.reshape(len(nets), -1)
