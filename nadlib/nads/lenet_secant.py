"""The exact fast secant path for nadlib LeNets (conv-relu-pool, conv-relu-pool, three linear layers).

Central differences ``(f(x + h e_j) - f(x - h e_j)) / 2h`` for every pixel ``j`` and a batch of LeNets,
computed exactly but without running the whole network ``2 x 1024`` times: a pixel reaches only a
small window of the first feature maps, and through it a small region of the second (see
:class:`LeNetSecant`).  Used by :func:`nadlib.estimate_nads` whenever the model has exactly this structure
(:func:`lenet_layers`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
                or conv.bias is None or conv.kernel_size[0] != conv.kernel_size[1]:  # square kernels only
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


def _region_start(first: int, size: int, extent: int) -> int:
    """Even first row of the ``size`` rows of a map of ``extent`` rows that hold the rows from ``first``
    (clipped at 0) on: whole 2x2 pooling cells, inside the map."""
    return min(max(first, 0) // 2 * 2, extent - size)


class LeNetSecant:
    """Exact central differences for a batch of LeNets, exploiting that pixel ``j`` only reaches a
    window of the first feature maps and a region of the second.

    For pixel ``j`` the first pre-activation is ``conv1(x) ± h·K_j`` (the kernel placed at ``j``); ReLU and
    the 2×2 max-pool change only a 3×3 window of the pooled map (``wp`` rows), whose change ``δ`` (54
    numbers) maps linearly to a 7×7 window of the second convolution (``wo`` rows; a 54×784 matrix read from
    the kernel).  That window lies in an 8×8 region of whole pooling cells (one of four on a 10×10 map), so
    only the region's 4×4 pooled cells change: each perturbed input is the base region plus its window,
    pooled, and the first linear layer adds the region's change to the base pre-activation.  Only the dense
    tail (two linear layers) runs on every perturbed input in full.

    Pixels are processed grouped by region, then by window position (``runs``: contiguous pixels that share
    both), which keeps each run's region in cache; gradients are put back in pixel order at the end.
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
        region = self.wo + 1 + (self.wo + 1) % 2             # even rows that hold a window at any parity (8)
        self.Rh, self.Rw = min(region, self.H2), min(region, self.W2)
        self.npr, self.npc = self.P1h - self.wp + 1, self.P1w - self.wp + 1   # window positions per axis
        self.device, self.shape, self.D = device, (C, H, W), C * H * W
        wp, wo = self.wp, self.wo

        ch, r, s = torch.meshgrid(torch.arange(C), torch.arange(H), torch.arange(W), indexing="ij")
        ch, r, s = ch.reshape(-1), r.reshape(-1), s.reshape(-1)
        # first pooled row/col of the window reached by input row/col `pos`
        pr0 = ((r - (k1 - 1)).clamp_min(0) // 2).clamp_max(self.npr - 1)
        pc0 = ((s - (k1 - 1)).clamp_min(0) // 2).clamp_max(self.npc - 1)
        # the conv2 region of each window: rows from ry (even), columns from rx
        ry = torch.tensor([_region_start(int(p) - (k2 - 1), self.Rh, self.H2) for p in range(self.npr)])[pr0]
        rx = torch.tensor([_region_start(int(p) - (k2 - 1), self.Rw, self.W2) for p in range(self.npc)])[pc0]
        pos = pr0 * self.npc + pc0
        order = torch.argsort((ry * (self.W2 + 1) + rx) * (self.npr * self.npc) + pos, stable=True)
        ch, r, s, pr0, pc0, ry, rx, pos = (t[order] for t in (ch, r, s, pr0, pc0, ry, rx, pos))
        self.order, self.pos = order.to(device), pos.to(device)

        # kernel placement of each pixel in its 6x6 conv1 window, pool-major (dy, dx, py, px) with conv1
        # row 2 pr0 + 2 py + dy; index C k1 k1 is a zero slot.  Pixels share few placements: `kuniq` holds
        # them, `kinv` says which one a pixel has.
        ar = torch.arange(wp)
        rows = (2 * pr0[:, None, None, None, None] + 2 * ar[None, None, None, :, None]
                + torch.arange(2)[None, :, None, None, None])                  # (D, 2, 1, 3, 1)
        cols = (2 * pc0[:, None, None, None, None] + 2 * ar[None, None, None, None, :]
                + torch.arange(2)[None, None, :, None, None])                  # (D, 1, 2, 1, 3)
        ky, kx = r[:, None, None, None, None] - rows, s[:, None, None, None, None] - cols
        valid = (ky >= 0) & (ky < k1) & (kx >= 0) & (kx < k1)
        kidx = ch[:, None, None, None, None] * k1 * k1 + ky.clamp(0, k1 - 1) * k1 + kx.clamp(0, k1 - 1)
        kidx = torch.where(valid, kidx, torch.full_like(kidx, C * k1 * k1)).reshape(self.D, -1)
        kuniq, kinv = torch.unique(kidx, dim=0, return_inverse=True)
        self.kuniq, self.kinv = kuniq.to(device), kinv.to(device)

        # ridx[(ci, py, px), (oy, ox)]: flat index into conv2's kernel (ci, ky, kx) of the weight linking
        # pooled-window entry (ci, py, px) to conv2-window output (oy, ox); index c1 k2 k2 is a zero slot
        ci, py, px = torch.meshgrid(torch.arange(self.c1), ar, ar, indexing="ij")
        oy, ox = torch.meshgrid(torch.arange(wo), torch.arange(wo), indexing="ij")
        ky = py.reshape(-1, 1) + (k2 - 1) - oy.reshape(1, -1)
        kx = px.reshape(-1, 1) + (k2 - 1) - ox.reshape(1, -1)
        inside = (ky >= 0) & (ky < k2) & (kx >= 0) & (kx < k2)
        ridx = ci.reshape(-1, 1) * k2 * k2 + ky.clamp(0, k2 - 1) * k2 + kx.clamp(0, k2 - 1)
        self.ridx = torch.where(inside, ridx, torch.full_like(ridx, self.c1 * k2 * k2)).to(device)  # (54, 49)

        # runs of pixels with one window position: (first, end, region start, the window's rows and
        # columns in region and in window coordinates); regions: (first, end, region start) of each region
        self.runs, self.regions = [], []
        bounds = torch.nonzero(torch.diff(pos, prepend=pos[:1] - 1)).reshape(-1).tolist() + [self.D]
        for a, b in zip(bounds[:-1], bounds[1:]):
            r0, c0, oy0, ox0 = int(pr0[a]) - (k2 - 1), int(pc0[a]) - (k2 - 1), int(ry[a]), int(rx[a])
            y0, y1, x0, x1 = max(r0, 0), min(r0 + wo, self.H2), max(c0, 0), min(c0 + wo, self.W2)
            self.runs.append((a, b, oy0, ox0, slice(y0 - oy0, y1 - oy0), slice(x0 - ox0, x1 - ox0),
                              slice(y0 - r0, y1 - r0), slice(x0 - c0, x1 - c0)))
            if self.regions and self.regions[-1][2:] == [oy0, ox0]:
                self.regions[-1][1] = b
            else:
                self.regions.append([a, b, oy0, ox0])

    def __call__(self, nets: list[nn.Module], x: torch.Tensor, step: float) -> torch.Tensor:
        B, D = len(nets), self.D
        layers = [lenet_layers(n) for n in nets]
        w1 = torch.stack([l[0].weight for l in layers])      # (B, c1, C, k, k)
        b1 = torch.stack([l[0].bias for l in layers])
        w2 = torch.stack([l[1].weight for l in layers])      # (B, c2, c1, k, k)
        b2 = torch.stack([l[1].bias for l in layers])
        fc = [(torch.stack([m.weight for m in lin]), torch.stack([m.bias for m in lin]))
              for lin in zip(*[l[2] for l in layers])]
        c1, c2, wp, wo, k2, Rh, Rw = self.c1, self.c2, self.wp, self.wo, self.k2, self.Rh, self.Rw
        npos = self.npr * self.npc
        # base pass, all networks at once (grouped by stacking output channels)
        base1 = F.conv2d(x[None], w1.reshape(B * c1, *w1.shape[2:]), b1.reshape(-1)).view(B, c1, self.H1, self.W1)
        pool1 = torch.relu(_pool2(base1))                                       # (B, c1, P, P)
        base2 = F.conv2d(pool1.reshape(1, B * c1, self.P1h, self.P1w), w2.reshape(B * c2, c1, k2, k2),
                         b2.reshape(-1), groups=B).view(B, c2, self.H2, self.W2)
        # the 6x6 conv1 window (pool-major) and 3x3 pooled window of every window position, per pixel
        win = base1.unfold(2, 2 * wp, 2).unfold(3, 2 * wp, 2)                  # (B, c1, npr, npc, 6, 6)
        win = win.reshape(B, c1, self.npr, self.npc, wp, 2, wp, 2).permute(0, 1, 2, 3, 5, 7, 4, 6)
        bw = torch.index_select(win.reshape(B, c1, npos, 4 * wp * wp), 2, self.pos)          # (B, c1, D, 36)
        kpad = torch.cat([w1.reshape(B, c1, -1), w1.new_zeros(B, c1, 1)], dim=2)
        kw = torch.index_select(kpad[:, :, self.kuniq].mul_(step), 2, self.kinv)             # (B, c1, D, 36)
        pbase = torch.index_select(pool1.unfold(2, wp, 1).unfold(3, wp, 1).reshape(B, c1, npos, wp, wp), 2,
                                   self.pos)                                                 # (B, c1, D, 3, 3)
        # both signs (max-pool and ReLU commute: pool first); the change of the pooled window
        pre = torch.stack([bw + kw, bw.sub_(kw)], dim=3).view(B, c1, D, 2, 4, wp, wp)
        delta = torch.relu_(_max4(pre)).sub_(pbase[:, :, :, None])                           # (B, c1, D, 2, 3, 3)
        delta = delta.permute(0, 2, 3, 1, 4, 5).reshape(B, 2 * D, c1 * wp * wp)
        # its 7x7 window of the second convolution: (B, D, 2, c2, 7, 7)
        w2pad = torch.cat([w2.reshape(B, c2, -1), w2.new_zeros(B, c2, 1)], dim=2)
        resp = w2pad[:, :, self.ridx].permute(0, 2, 1, 3).reshape(B, c1 * wp * wp, c2 * wo * wo)
        d2 = torch.bmm(delta, resp).view(B, D, 2, c2, wo, wo)
        # the pooled region of every perturbed input: base region + window, ReLU, pooled (one run at a time)
        pooled = torch.empty(B, D, 2, c2, Rh // 2, Rw // 2, dtype=d2.dtype, device=d2.device)
        for a, b, oy, ox, ys, xs, wys, wxs in self.runs:
            chunk = base2[:, None, None, :, oy:oy + Rh, ox:ox + Rw].expand(B, b - a, 2, c2, Rh, Rw).clone()
            chunk[..., ys, xs] += d2[:, a:b, :, :, wys, wxs]
            pooled[:, a:b] = _pool2(chunk)
        pooled.relu_()
        # first linear layer: the base pre-activation with the region's part replaced
        (v1, c), hp, wq = fc[0], self.H2 // 2, self.W2 // 2
        base_pooled = torch.relu(_pool2(base2))                                              # (B, c2, hp, wq)
        base_h = torch.baddbmm(c[:, None, :], base_pooled.reshape(B, 1, -1), v1.transpose(1, 2))
        v1 = v1.view(B, -1, c2, hp, wq)
        h = torch.empty(B, D, 2, v1.shape[1], dtype=d2.dtype, device=d2.device)
        for a, b, oy, ox in self.regions:
            qy, qx = slice(oy // 2, (oy + Rh) // 2), slice(ox // 2, (ox + Rw) // 2)
            part = v1[:, :, :, qy, qx].reshape(B, v1.shape[1], -1).transpose(1, 2)          # (B, c2 16, 120)
            rest = base_h - torch.bmm(base_pooled[:, :, qy, qx].reshape(B, 1, -1), part)
            h[:, a:b] = torch.baddbmm(rest, pooled[:, a:b].reshape(B, 2 * (b - a), -1), part).view(B, b - a, 2, -1)
        h = torch.relu_(h.view(B, 2 * D, -1))
        for j, (w, c) in enumerate(fc[1:]):
            h = torch.baddbmm(c[:, None, :], h, w.transpose(1, 2))
            if j == 0:
                h = torch.relu_(h)
        out = h.view(B, D, 2)
        g = torch.empty(B, D, device=out.device, dtype=out.dtype)
        g[:, self.order] = (out[..., 0] - out[..., 1]) / (2 * step)
        return g
