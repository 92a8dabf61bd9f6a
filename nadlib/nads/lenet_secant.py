"""The exact fast secant path for nadlib LeNets (conv-relu-pool, conv-relu-pool, three linear layers).

Central differences ``(f(x + h e_j) - f(x - h e_j)) / 2h`` for every pixel ``j`` and a batch of LeNets,
computed exactly but without running the whole network ``2 x 1024`` times: a pixel reaches only a
small window of the first feature maps (see :class:`LeNetSecant`).  Used by
:func:`nadlib.estimate_nads` whenever the model has exactly this structure (:func:`lenet_layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import LeNet


def lenet_layers(net: nn.Module):
    """The layers of a pooling nadlib LeNet, or None when ``net`` does not have exactly that structure."""
    if type(net) is not LeNet:
        return None
    f, c = list(net.features), list(net.classifier)
    kinds = [type(m) for m in f]
    if kinds != [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d]:
        return None
    for conv in (f[0], f[3]):
        if conv.stride != (1, 1) or conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.groups != 1 \
                or conv.bias is None:
            return None
    for pool in (f[2], f[5]):
        if pool.kernel_size not in (2, (2, 2)) or pool.stride not in (2, (2, 2)) or pool.padding not in (0, (0, 0)):
            return None
    lin = [m for m in c if isinstance(m, nn.Linear)]
    if [type(m) for m in c] != [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]:
        return None
    return f[0], f[3], lin


def _pool2(t: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool with stride 2 over the last two dims (even sizes), any leading dims."""
    return torch.maximum(torch.maximum(t[..., 0::2, 0::2], t[..., 0::2, 1::2]),
                         torch.maximum(t[..., 1::2, 0::2], t[..., 1::2, 1::2]))


def _max4(t: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Max over ``dim`` of size 4 (the 2x2 pooling candidates in a pool-major layout)."""
    return torch.maximum(torch.maximum(t.select(dim, 0), t.select(dim, 1)),
                         torch.maximum(t.select(dim, 2), t.select(dim, 3)))


class LeNetSecant:
    """Exact central differences for a batch of LeNets, exploiting that pixel ``j`` only reaches a
    window of the first feature maps.

    For pixel ``j`` the first pre-activation is ``conv1(x) ± h·K_j`` (the kernel placed at ``j``);
    ReLU and the 2×2 max-pool change only a 3×3 window of the pooled map, whose change ``δ`` (54
    numbers) maps linearly to a 7×7 window of the second convolution (a precomputed 54×784 matrix
    per network).  Only the dense tail (ReLU, pool, 3 linear layers) runs on every perturbed input.
    """

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, input_shape, device):
        C, H, W = input_shape
        k1, k2 = conv1.kernel_size[0], conv2.kernel_size[0]
        self.k1, self.k2, self.c1, self.c2 = k1, k2, conv1.out_channels, conv2.out_channels
        self.H1, self.W1 = H - k1 + 1, W - k1 + 1           # conv1 output
        if self.H1 % 2 or self.W1 % 2:
            raise ValueError("odd conv1 output")
        self.P1h, self.P1w = self.H1 // 2, self.W1 // 2      # pool1 output
        self.wp = k1 // 2 + 1                                # pooled window (3 for k1=5)
        self.H2, self.W2 = self.P1h - k2 + 1, self.P1w - k2 + 1  # conv2 output
        if self.wp > min(self.P1h, self.P1w) or self.H2 < 1 or self.W2 < 1 or self.H2 % 2 or self.W2 % 2:
            raise ValueError("input too small for the windowed path")
        self.wo = self.wp + k2 - 1                           # conv2 output window (7)
        self.device = device
        self.shape = (C, H, W)
        dev = device
        ch, r, s = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
        ch, r, s = ch.reshape(-1), r.reshape(-1), s.reshape(-1)

        def start(pos, lim):  # first pooled row/col of the window reached by input row/col `pos`
            return ((pos - (k1 - 1)).clamp_min(0) // 2).clamp_max(lim - self.wp)
        # pixels are processed sorted by window position (memory locality); gradients are unsorted at the end
        order = torch.argsort(start(r, self.P1h) * (self.P1w + 1) + start(s, self.P1w), stable=True)
        ch, r, s = ch[order], r[order], s[order]
        self.order = order.to(device)
        self.pr0, self.pc0 = start(r, self.P1h), start(s, self.P1w)
        # flat[(sign, pixel, c, y, x)] = where conv2 output (y, x) of that perturbed input reads its change
        # in the flattened (sign, pixel, c, 7*7 + zero slot) window tensor
        wo, n2 = self.wp + k2 - 1, (self.P1h - k2 + 1) * (self.P1w - k2 + 1)
        # conv2 outputs are laid out pool-major: (dy, dx, qy, qx) with y = 2 qy + dy, x = 2 qx + dx, so that
        # the 2x2 max-pool is a max over 4 contiguous blocks
        qy = torch.arange((self.P1h - k2 + 1) // 2)
        qx = torch.arange((self.P1w - k2 + 1) // 2)
        Y = (2 * qy[None, None, :, None] + torch.arange(2)[:, None, None, None]).expand(2, 2, len(qy), len(qx))
        X = (2 * qx[None, None, None, :] + torch.arange(2)[None, :, None, None]).expand(2, 2, len(qy), len(qx))
        yy = Y.reshape(1, -1) - (self.pr0[:, None] - (k2 - 1))
        xx = X.reshape(1, -1) - (self.pc0[:, None] - (k2 - 1))
        inside = (yy >= 0) & (yy < wo) & (xx >= 0) & (xx < wo)
        local = torch.where(inside, yy.clamp(0, wo - 1) * wo + xx.clamp(0, wo - 1), torch.full_like(yy, wo * wo))
        local = local.reshape(-1, 1, n2)                                     # (D, 1, n2)
        n_img = 2 * local.shape[0]
        base_off = (torch.arange(n_img)[:, None, None] * self.c2 + torch.arange(self.c2)[None, :, None]) * (wo * wo + 1)
        self.flat = (base_off + local.repeat(2, 1, 1)).reshape(-1).to(device)
        # the 6x6 conv1 window is gathered pool-major: (dy, dx, py, px), row 2 pr0 + 2 py + dy
        ar = torch.arange(self.wp)
        rows = (2 * self.pr0[:, None, None, None, None] + 2 * ar[None, None, None, :, None]
                + torch.arange(2)[None, :, None, None, None])                  # (D, 2, 1, 3, 1)
        cols = (2 * self.pc0[:, None, None, None, None] + 2 * ar[None, None, None, None, :]
                + torch.arange(2)[None, None, :, None, None])                  # (D, 1, 2, 1, 3)
        ky = r[:, None, None, None, None] - rows
        kx = s[:, None, None, None, None] - cols
        valid = (ky >= 0) & (ky < k1) & (kx >= 0) & (kx < k1)
        kidx = ch[:, None, None, None, None] * k1 * k1 + ky.clamp(0, k1 - 1) * k1 + kx.clamp(0, k1 - 1)
        self.kidx = torch.where(valid, kidx, torch.full_like(kidx, C * k1 * k1)).to(dev)  # (D, 2, 2, 3, 3)
        self.rows, self.cols = rows.to(dev), cols.to(dev)
        prow = self.pr0[:, None] + torch.arange(self.wp)
        pcol = self.pc0[:, None] + torch.arange(self.wp)
        self.prow, self.pcol = prow.to(dev), pcol.to(dev)
        # ridx[(ci, py, px), co-independent, (oy, ox)]: flat index into conv2's kernel (ci, ky, kx) of the
        # weight linking pooled-window entry (ci, py, px) to conv2-window output (oy, ox); sentinel -> 0
        ci, py, px = torch.meshgrid(torch.arange(self.c1), torch.arange(self.wp), torch.arange(self.wp), indexing="ij")
        oy, ox = torch.meshgrid(torch.arange(self.wo), torch.arange(self.wo), indexing="ij")
        ky = py.reshape(-1, 1) + (k2 - 1) - oy.reshape(1, -1)
        kx = px.reshape(-1, 1) + (k2 - 1) - ox.reshape(1, -1)
        okk = (ky >= 0) & (ky < k2) & (kx >= 0) & (kx < k2)
        ridx = ci.reshape(-1, 1) * k2 * k2 + ky.clamp(0, k2 - 1) * k2 + kx.clamp(0, k2 - 1)
        ridx = torch.where(okk, ridx, torch.full_like(ridx, self.c1 * k2 * k2))
        sentinel = torch.full((ridx.shape[0], 1), self.c1 * k2 * k2)
        self.ridx = torch.cat([ridx, sentinel], dim=1).to(dev)             # (54, 50): 49 + a zero slot
        self.D = C * H * W

    def __call__(self, nets: list[nn.Module], x: torch.Tensor, step: float) -> torch.Tensor:
        B, D = len(nets), self.D
        layers = [lenet_layers(n) for n in nets]
        w1 = torch.stack([l[0].weight for l in layers])      # (B, c1, C, k, k)
        b1 = torch.stack([l[0].bias for l in layers])
        w2 = torch.stack([l[1].weight for l in layers])      # (B, c2, c1, k, k)
        b2 = torch.stack([l[1].bias for l in layers])
        c1, c2, wp, wo, k2 = self.c1, self.c2, self.wp, self.wo, self.k2
        # base pass, all networks at once (grouped by stacking output channels)
        base1 = torch.nn.functional.conv2d(x[None], w1.reshape(B * c1, *w1.shape[2:]), b1.reshape(-1))
        base1 = base1.view(B, c1, self.H1, self.W1)
        pool1 = torch.relu_(_pool2(base1))                                      # (B, c1, P, P)
        base2 = torch.nn.functional.conv2d(pool1.reshape(1, B * c1, self.P1h, self.P1w),
                                           w2.reshape(B * c2, c1, k2, k2), b2.reshape(-1), groups=B)
        base2 = base2.view(B, c2, self.H2 // 2, 2, self.W2 // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 1, 1, c2, 4, -1)
        # windows of the first stage, both signs (max-pool and ReLU commute: pool first)
        bw = base1[:, :, self.rows, self.cols]                                  # (B, c1, D, 2, 2, 3, 3)
        kpad = torch.cat([w1.reshape(B, c1, -1), w1.new_zeros(B, c1, 1)], dim=2)
        kw = kpad[:, :, self.kidx].mul_(step)                                   # (B, c1, D, 2, 2, 3, 3)
        pre = torch.stack([bw + kw, bw.sub_(kw)], dim=2).view(B, c1, 2, D, 4, wp, wp)
        pw = torch.relu_(_max4(pre))                                            # (B, c1, 2, D, 3, 3)
        pbase = pool1[:, :, self.prow[:, :, None], self.pcol[:, None, :]]       # (B, c1, D, 3, 3)
        delta = pw.sub_(pbase[:, :, None]).permute(0, 2, 3, 1, 4, 5).reshape(B, 2 * D, c1 * wp * wp)
        # response of the 7x7 conv2 window to a unit change of each of the 54 pooled-window entries,
        # read straight from the kernel: (B, 54, c2 * 49)
        w2pad = torch.cat([w2.reshape(B, c2, -1), w2.new_zeros(B, c2, 1)], dim=2)
        resp = w2pad[:, :, self.ridx].permute(0, 2, 1, 3).reshape(B, c1 * wp * wp, c2 * (wo * wo + 1))
        d2 = torch.bmm(delta, resp).view(B, -1)   # zero slot per (image, channel) comes from the sentinel
        out2 = torch.index_select(d2, 1, self.flat).view(B, 2, D, c2, 4, -1).add_(base2)
        h = torch.relu_(_max4(out2, -2)).reshape(B, 2 * D, -1)
        for j, lin in enumerate(zip(*[l[2] for l in layers])):
            w = torch.stack([m.weight for m in lin])
            b = torch.stack([m.bias for m in lin])
            h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            if j < 2:
                h = torch.relu_(h)
        out = h.view(B, 2, D)
        g = torch.empty(B, D, device=out.device, dtype=out.dtype)
        g[:, self.order] = (out[:, 0] - out[:, 1]) / (2 * step)
        return g
