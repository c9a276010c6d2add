"""The pyramid-pooling module (PSPNet's PPM) with adaptive average pooling that exports to any ONNX runtime.

``PPM(x) = [x, up(f_1(pool_1(x))), ..., up(f_n(pool_n(x)))]`` concatenated along channels, where ``pool_b`` is
adaptive average pooling to b×b bins, ``f_b`` a 1×1 conv-BN-ReLU to ``C // n`` channels and ``up`` a bilinear
resize back to the input size (``align_corners=True``, RepISD-Net's convention).

Adaptive pooling is computed as two matrix products, ``P_H · x · P_Wᵀ``, with the averaging matrices built from
the input size: row b of ``P_L`` averages positions [⌊b·L/n⌋, ⌈(b+1)·L/n⌉), exactly the windows of
``torch.nn.functional.adaptive_avg_pool2d`` (overlapping and of unequal size when L is not a multiple of n).
ONNX has no adaptive pooling; the exporter's own decomposition of a 6-bin pool over 256 pixels produced about
4,000 Gather/Add nodes, whereas this form exports to two MatMul nodes against constant matrices. The products
cost C·H·W·n + C·n²·W multiply-accumulates per bin size (counted by ``hnanas.ops.count_macs``; 25.6 M for
RepISD-Net's bins at 256², 0.4 % of its total).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from hnanas.nas.baselines.layers import ConvBNReLU, resize_bilinear


def adaptive_pool_matrix(length: int, bins: int, *, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """The ``bins × length`` matrix whose row b averages torch's adaptive-pooling window b of ``length``."""
    index = torch.arange(bins, device=device)
    start = (index * length) // bins
    end = ((index + 1) * length + bins - 1) // bins
    position = torch.arange(length, device=device)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return inside.to(dtype) / (end - start).to(dtype)[:, None]


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, bins)`` of an N×C×H×W tensor, as ``P_H · x · P_Wᵀ``."""
    h, w = x.shape[-2:]
    rows = adaptive_pool_matrix(h, bins, dtype=x.dtype, device=x.device)
    cols = adaptive_pool_matrix(w, bins, dtype=x.dtype, device=x.device)
    return torch.matmul(rows, torch.matmul(x, cols.transpose(0, 1)))


class PyramidPooling(nn.Module):
    """PPM over ``channels`` with one branch per bin count; output ``channels + len(bins)·(channels // len(bins))``
    channels at the input's size. Training needs more than one value per channel in each branch's BN, so a
    1×1 bin needs a batch of at least 2 (as in the published network)."""

    def __init__(self, channels: int, bins: Sequence[int], *, deploy: bool = False):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        reduced = max(1, channels // len(self.bins))
        self.branches = nn.ModuleList(ConvBNReLU(channels, reduced, 1, deploy=deploy) for _ in self.bins)
        self.out_channels = channels + reduced * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [resize_bilinear(branch(adaptive_avg_pool(x, b)), size) for b, branch in zip(self.bins, self.branches)]
        return torch.cat([x] + pooled, dim=1)
