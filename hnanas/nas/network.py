"""The discrete nested network a genotype describes, built from the same op code the search trains.

Each kept node concatenates its kept inputs, each resampled to the node's level, and runs its op ``blocks``
times (first block ``c_in -> width``, then ``width -> width``). A feature resampled to a level is computed once
and shared by every node that uses it (ONNX Runtime would merge the duplicates anyway, and the latency model
prices what really runs). The head is a 1x1 conv on the output node that gives one logit per pixel.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from hnanas.nas.genotype import Genotype, validate
from hnanas.nas.space import INPUT, SearchSpace
from hnanas.ops import build_op


def resample(x: torch.Tensor, src_level: int, dst_level: int, downsample: str = "maxpool",
             upsample: str = "bilinear") -> torch.Tensor:
    """Move a feature map from ``src_level`` to ``dst_level`` (a factor 2 per level)."""
    d = dst_level - src_level
    if d == 0:
        return x
    if d > 0:
        k = 1 << d
        return F.max_pool2d(x, k, k) if downsample == "maxpool" else F.avg_pool2d(x, k, k)
    scale = float(1 << -d)
    if upsample == "bilinear":
        return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=scale, mode="nearest")


class NodeCell(nn.Sequential):
    """``blocks`` ops in a row: ``op(c_in -> width)``, then ``op(width -> width)``."""

    def __init__(self, op: str, c_in: int, width: int, blocks: int = 1, deploy: bool = False):
        layers = [build_op(op, c_in, width, 1, deploy=deploy)]
        layers += [build_op(op, width, width, 1, deploy=deploy) for _ in range(blocks - 1)]
        super().__init__(*layers)


class FeatureCache:
    """Resampled features of one forward pass, keyed by (source, level), each computed once."""

    def __init__(self, space: SearchSpace, x: torch.Tensor):
        self.space = space
        self.feats: dict[str, torch.Tensor] = {INPUT: x}
        self._resampled: dict[tuple[str, int], torch.Tensor] = {}

    def __setitem__(self, node: str, value: torch.Tensor) -> None:
        self.feats[node] = value

    def __getitem__(self, node: str) -> torch.Tensor:
        return self.feats[node]

    def at_level(self, src: str, level: int) -> torch.Tensor:
        key = (src, level)
        if key not in self._resampled:
            s = self.space
            self._resampled[key] = resample(self.feats[src], s.level_of(src), level, s.downsample, s.upsample)
        return self._resampled[key]

    def gather(self, inputs: tuple[str, ...], level: int) -> torch.Tensor:
        parts = [self.at_level(src, level) for src in inputs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def node_in_channels(space: SearchSpace, inputs: tuple[str, ...]) -> int:
    return sum(space.channels_of(i) for i in inputs)


class NestedNet(nn.Module):
    """A derived network: ``cells[node]`` per kept node plus a 1x1 ``head`` (input normalisation, when wanted,
    is added around it by ``hnanas.nas.models.build_model``)."""

    def __init__(self, space: SearchSpace, genotype: Genotype, deploy: bool = False):
        super().__init__()
        validate(genotype, space)
        self.space = space
        self.genotype = genotype
        self.cells = nn.ModuleDict({
            node: NodeCell(op, node_in_channels(space, ins), space.node(node).width, space.node(node).blocks, deploy)
            for node, ins, op in genotype.nodes
        })
        self.head = nn.Conv2d(space.node(space.output).width, 1, kernel_size=1)

    def output_convs(self) -> list[nn.Conv2d]:
        """The layers whose outputs are logits (hnanas.nas.models.set_output_prior)."""
        return [self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cache = FeatureCache(self.space, x)
        for node, ins, _ in self.genotype.nodes:
            cache[node] = self.cells[node](cache.gather(ins, self.space.node(node).level))
        return self.head(cache[self.space.output])


def derive(space: SearchSpace, genotype: Genotype, *, deploy: bool = False) -> NestedNet:
    """Build the discrete network of ``genotype`` (training form, or directly in deploy form)."""
    return NestedNet(space, genotype, deploy=deploy)


def node_shapes(space: SearchSpace, genotype: Genotype, size: tuple[int, int] | None = None
                ) -> Mapping[str, tuple[int, int, int, int]]:
    """(c_in, c_out, H, W) of each kept node's first block at ``size`` (default: the deployment size)."""
    out = {}
    for node, ins, _ in genotype.nodes:
        h, w = space.resolution(space.node(node).level, size)
        out[node] = (node_in_channels(space, ins), space.node(node).width, h, w)
    return out
