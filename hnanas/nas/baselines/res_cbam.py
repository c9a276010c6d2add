"""DNANet's Res-CBAM block: a residual conv block with CBAM channel and spatial attention (Li et al., TIP 2023).

``ReLU(SA(CA(y)) + shortcut(x))`` with ``y = BN(conv3×3(ReLU(BN(conv3×3(x)))))``, where

- CA (channel attention) scales each channel by ``σ(MLP(avgpool(y)) + MLP(maxpool(y)))``, the MLP being
  1×1 conv (C → C/16, no bias), ReLU, 1×1 conv (C/16 → C, no bias), shared by both pooled vectors;
- SA (spatial attention) scales each pixel by ``σ(conv7×7([mean_c(y), max_c(y)]))`` (no bias);
- the shortcut is a 1×1 conv + BN when the widths differ, else the identity.

As in the published code the 3×3 and 1×1 convs carry a bias before their BN (redundant in training, kept so the
parameter count is the published one; the BN fold keeps it too). The attention MLP's hidden width is
``max(1, C // 16)``: the published ``C // 16`` is 0 for the narrow variants ([8..128] and [4..64] at level 0),
which current PyTorch refuses to run.
"""

from __future__ import annotations

import torch
from torch import nn

from hnanas.ops import ConvBN

ATTENTION_RATIO = 16
SPATIAL_KERNEL = 7


class ChannelAttention(nn.Module):
    """Per-channel weights in (0, 1): ``σ(MLP(avg over H, W) + MLP(max over H, W))``, shape N×C×1×1."""

    def __init__(self, channels: int, ratio: int = ATTENTION_RATIO):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        peak = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(peak))


class SpatialAttention(nn.Module):
    """Per-pixel weights in (0, 1): ``σ(conv7×7([mean over C, max over C]))``, shape N×1×H×W."""

    def __init__(self, kernel_size: int = SPATIAL_KERNEL):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class ResCBAMBlock(nn.Module):
    """One Res-CBAM block ``c_in → c_out`` (stride 1); ``deploy=True`` builds the BN-folded form directly."""

    def __init__(self, c_in: int, c_out: int, *, deploy: bool = False):
        super().__init__()
        self.conv1 = ConvBN(c_in, c_out, 3, conv_bias=True, deploy=deploy)
        self.act = nn.ReLU()
        self.conv2 = ConvBN(c_out, c_out, 3, conv_bias=True, deploy=deploy)
        self.channel_attention = ChannelAttention(c_out)
        self.spatial_attention = SpatialAttention()
        self.shortcut = nn.Identity() if c_in == c_out else ConvBN(c_in, c_out, 1, conv_bias=True, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))
        y = self.channel_attention(y) * y
        y = self.spatial_attention(y) * y
        return self.act(y + self.shortcut(x))


def res_cbam_stage(c_in: int, c_out: int, blocks: int, *, deploy: bool = False) -> nn.Sequential:
    """``blocks`` Res-CBAM blocks in a row: ``c_in → c_out``, then ``c_out → c_out``."""
    layers = [ResCBAMBlock(c_in, c_out, deploy=deploy)]
    layers += [ResCBAMBlock(c_out, c_out, deploy=deploy) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)
