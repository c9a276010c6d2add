"""DNANet (Li et al., "Dense Nested Attention Network for Infrared Small Target Detection", TIP 2023) as
published, registered as model kind ``dnanet``.

A 5-level nested grid of Res-CBAM nodes X[i][j] (level i at resolution 1/2^i, column j, i + j ≤ 4):

- X[0][0] = block(input); X[i][0] = block(maxpool2(X[i−1][0]));
- X[0][j] = block([X[0][0..j−1], up(X[1][j−1])]);
- X[i][j] = block([X[i][0..j−1], up(X[i+1][j−1]), down(X[i−1][j])]),

where up and down are bilinear ×2 and ×0.5 resizes with ``align_corners=True`` (the authors' code resizes both
ways bilinearly; only the column-0 path max-pools). Level-0 nodes have one block, level-i nodes ``blocks[i−1]``.
Feature-pyramid fusion: X[4][0], X[3][1], X[2][2], X[1][3] each go through a 1×1 conv (with bias) to
``widths[0]`` channels and are resized to level 0; with X[0][4] they are concatenated and fused by one more
Res-CBAM block. Heads are 1×1 convs to one logit: with deep supervision, one on each of X[0][1], X[0][2],
X[0][3] and the final one on the fused feature; training mode returns the four logits (final last), eval mode
only the final logits (so the deployed and exported network computes one head). Input: one channel, height and
width multiples of 16.

Size at 256²: default widths 4.70 M parameters (the paper's 4.70 M) and 13.9 GMAC by ``hnanas.ops.count_macs``
(which counts convolutions, linear layers and matrix products only; the field's tables list about 14.3 G).
[8..128]: 1.18 M parameters, 3.52 GMAC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hnanas.nas.baselines.layers import check_input_size, resize_bilinear
from hnanas.nas.baselines.res_cbam import res_cbam_stage
from hnanas.nas.baselines.spec_options import flag, positive_ints, spec_options
from hnanas.nas.model_kinds import register_model

KIND = "dnanet"
LEVELS = 5
IN_CHANNELS = 1
#: The widths (``nb_filter``) of the published variants.
PUBLISHED_WIDTHS = {"16_256": (16, 32, 64, 128, 256), "8_128": (8, 16, 32, 64, 128), "4_64": (4, 8, 16, 32, 64)}


@dataclass(frozen=True)
class DNANetConfig:
    """The options of a ``dnanet`` spec."""

    widths: tuple[int, ...] = PUBLISHED_WIDTHS["16_256"]  # channels of levels 0..4 (nb_filter)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # Res-CBAM blocks per node at levels 1..4 ("resnet_18"); level 0 has 1
    deep_supervision: bool = True  # training returns logits of X[0][1..3] and the final head (final last)

    @classmethod
    def from_spec(cls, spec: dict) -> "DNANetConfig":
        """Read and check the spec's options (unknown keys and malformed values raise ``ConfigError``)."""
        defaults = cls()
        opts = spec_options(spec, {"widths": list(defaults.widths), "blocks": list(defaults.blocks),
                                   "deep_supervision": defaults.deep_supervision})
        return cls(positive_ints(KIND, "widths", opts["widths"], LEVELS),
                   positive_ints(KIND, "blocks", opts["blocks"], LEVELS - 1),
                   flag(KIND, "deep_supervision", opts["deep_supervision"]))

    def to_spec(self) -> dict:
        return {"kind": KIND, "widths": list(self.widths), "blocks": list(self.blocks),
                "deep_supervision": self.deep_supervision}


def grid_nodes() -> list[tuple[int, int]]:
    """Nodes (level, column) in an order that respects every dependency: by anti-diagonal d = i + j, deepest
    level first (X[i][j] reads X[i+1][j−1] of the same diagonal)."""
    return [(i, d - i) for d in range(LEVELS) for i in range(d, -1, -1)]


def node_in_channels(widths: tuple[int, ...], level: int, column: int) -> int:
    """Channels of the concatenation node X[level][column] reads."""
    if column == 0:
        return IN_CHANNELS if level == 0 else widths[level - 1]
    above = widths[level - 1] if level > 0 else 0
    return column * widths[level] + widths[level + 1] + above


def node_name(level: int, column: int) -> str:
    return f"x{level}_{column}"


class DNANet(nn.Module):
    """The network of a :class:`DNANetConfig`; ``deploy=True`` builds it with every Conv-BN folded."""

    def __init__(self, config: DNANetConfig = DNANetConfig(), *, deploy: bool = False):
        super().__init__()
        self.config = config
        w = config.widths
        self.nodes = nn.ModuleDict({
            node_name(i, j): res_cbam_stage(node_in_channels(w, i, j), w[i], 1 if i == 0 else config.blocks[i - 1],
                                            deploy=deploy)
            for i, j in grid_nodes()
        })
        # 1x1 convs of X[4][0], X[3][1], X[2][2], X[1][3] (deepest first) to level-0 width
        self.pyramid = nn.ModuleList(nn.Conv2d(w[i], w[0], 1) for i in range(LEVELS - 1, 0, -1))
        self.fuse = res_cbam_stage(LEVELS * w[0], w[0], 1, deploy=deploy)
        self.heads = nn.ModuleList(nn.Conv2d(w[0], 1, 1) for _ in range(LEVELS - 1 if config.deep_supervision else 1))

    def output_convs(self) -> list[nn.Conv2d]:
        """The layers whose outputs are logits: the main head and the deep-supervision heads."""
        return list(self.heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        check_input_size(x, 1 << (LEVELS - 1), KIND)
        h, w = x.shape[-2:]
        sizes = [(h // (1 << i), w // (1 << i)) for i in range(LEVELS)]
        feats: dict[tuple[int, int], torch.Tensor] = {}
        for i, j in grid_nodes():
            if j == 0:
                inp = x if i == 0 else F.max_pool2d(feats[i - 1, 0], 2, 2)
            else:
                parts = [feats[i, k] for k in range(j)] + [resize_bilinear(feats[i + 1, j - 1], sizes[i])]
                if i > 0:
                    parts.append(resize_bilinear(feats[i - 1, j], sizes[i]))
                inp = torch.cat(parts, dim=1)
            feats[i, j] = self.nodes[node_name(i, j)](inp)
        levels = range(LEVELS - 1, 0, -1)
        pyramid = [resize_bilinear(conv(feats[i, LEVELS - 1 - i]), sizes[0]) for conv, i in zip(self.pyramid, levels)]
        final = self.heads[-1](self.fuse(torch.cat(pyramid + [feats[0, LEVELS - 1]], dim=1)))
        if self.training and self.config.deep_supervision:
            return [head(feats[0, j]) for j, head in enumerate(self.heads[:-1], start=1)] + [final]
        return final


NAMED = {
    "dnanet": DNANetConfig().to_spec(),
    "dnanet_8_128": DNANetConfig(widths=PUBLISHED_WIDTHS["8_128"]).to_spec(),
}


@register_model(KIND, named=NAMED)
def build_dnanet(spec: dict, deploy: bool) -> DNANet:
    """Build a ``dnanet`` spec (options: ``widths`` [5 ints], ``blocks`` [4 ints], ``deep_supervision``)."""
    return DNANet(DNANetConfig.from_spec(spec), deploy=deploy)
