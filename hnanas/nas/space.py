"""Search spaces: nested (UNet++/DNANet-style) grids described by YAML files in ``search_spaces/``.

A space is data. It lists every node of the grid (``"i_j"`` = level ``i`` at 1/2^i resolution, column ``j``)
with its candidate inputs, the width of each level, how many op blocks each node stacks, the candidate ops of
stage 2 and the op stage 1 trains with, the output node, and the deployment input size that latency is priced at.
:func:`load_space` validates all of it and names the file and key of any mistake.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hnanas.config import from_dict, to_dict
from hnanas.errors import ConfigError
from hnanas.fileio import read_yaml, stable_hash
from hnanas.shipped import shipped_dir

INPUT = "input"  # the name of the image as a node input
SPACES_DIR = shipped_dir("search_spaces")


@dataclass
class SpaceFile:
    """The schema of a ``search_spaces/*.yaml`` file (unknown keys are errors)."""

    name: str  # short identifier, recorded in genotypes and latency tables
    widths: list[int]  # channels of each level, level 0 first (full resolution)
    nodes: dict[str, list[str]]  # node id "i_j" -> candidate inputs ("input" or earlier node ids), in order
    output: str  # node whose features the head turns into the logit map
    ops: list[str]  # stage-2 candidate ops (names in the op registry)
    description: str = ""  # free text, not part of the hash
    input_channels: int = 1  # channels of the input image
    deploy_size: list[int] = field(default_factory=lambda: [256, 256])  # H, W that latency is priced at
    blocks: dict[str, int] = field(default_factory=dict)  # node id -> op blocks stacked (default 1)
    stage1_op: str = "res3"  # the op every node uses while stage 1 searches the topology
    downsample: Literal["maxpool", "avgpool"] = "maxpool"  # how a feature moves to a coarser level
    upsample: Literal["bilinear", "nearest"] = "bilinear"  # how a feature moves to a finer level


@dataclass(frozen=True)
class NodeSpec:
    """One node of the grid."""

    id: str
    level: int
    column: int
    width: int
    blocks: int
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space. ``nodes`` is in file order, which is a topological order."""

    name: str
    description: str
    input_channels: int
    deploy_size: tuple[int, int]
    widths: tuple[int, ...]
    nodes: tuple[NodeSpec, ...]
    output: str
    ops: tuple[str, ...]
    stage1_op: str
    downsample: str
    upsample: str
    hash: str
    source: str = ""

    @functools.cached_property
    def node_map(self) -> dict[str, NodeSpec]:
        return {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> NodeSpec:
        return self.node_map[node_id]

    def level_of(self, name: str) -> int:
        return 0 if name == INPUT else self.node_map[name].level

    def channels_of(self, name: str) -> int:
        return self.input_channels if name == INPUT else self.node_map[name].width

    def resolution(self, level: int, size: tuple[int, int] | None = None) -> tuple[int, int]:
        h, w = size or self.deploy_size
        return h >> level, w >> level

    @property
    def searchable_nodes(self) -> list[NodeSpec]:
        """Nodes with more than one candidate input (stage 1 has something to choose)."""
        return [n for n in self.nodes if len(n.candidates) > 1]

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "input_channels": self.input_channels,
            "deploy_size": list(self.deploy_size), "widths": list(self.widths),
            "blocks": {n.id: n.blocks for n in self.nodes if n.blocks != 1},
            "stage1_op": self.stage1_op, "downsample": self.downsample, "upsample": self.upsample,
            "ops": list(self.ops), "output": self.output,
            "nodes": {n.id: list(n.candidates) for n in self.nodes},
        }


def _parse_node_id(node_id: str, where: str) -> tuple[int, int]:
    try:
        level, column = (int(p) for p in node_id.split("_"))
    except ValueError:
        raise ConfigError(f"{where}: node id {node_id!r} is not of the form LEVEL_COLUMN (e.g. '1_2')") from None
    return level, column


def space_from_dict(data: dict, source: str = "space") -> SearchSpace:
    """Validate a space mapping (as read from YAML) and build the :class:`SearchSpace`."""
    from hnanas.ops import list_ops  # the op registry imports torch: imported here so that reading a space or
    # genotype file (report, data check, the CLI's start) does not start torch

    spec = from_dict(SpaceFile, data, source=source)
    known_ops = set(list_ops())
    for key, names in (("ops", spec.ops), ("stage1_op", [spec.stage1_op])):
        for op in names:
            if op not in known_ops:
                raise ConfigError(f"{source}: {key}: unknown op {op!r} (known: {', '.join(sorted(known_ops))})")
    if not spec.ops or len(set(spec.ops)) != len(spec.ops):
        raise ConfigError(f"{source}: ops: must be a non-empty list without duplicates")
    if not spec.widths or any(w <= 0 for w in spec.widths):
        raise ConfigError(f"{source}: widths: must be a non-empty list of positive integers")
    if len(spec.deploy_size) != 2 or any(s % (1 << (len(spec.widths) - 1)) for s in spec.deploy_size):
        raise ConfigError(f"{source}: deploy_size: must be [H, W], each divisible by 2^(levels-1) = "
                          f"{1 << (len(spec.widths) - 1)}")
    if spec.input_channels <= 0:
        raise ConfigError(f"{source}: input_channels: must be positive")
    seen: set[str] = set()
    nodes = []
    for node_id, candidates in spec.nodes.items():
        where = f"{source}: nodes.{node_id}"
        level, column = _parse_node_id(node_id, where)
        if not 0 <= level < len(spec.widths):
            raise ConfigError(f"{where}: level {level} has no width (widths has {len(spec.widths)} levels)")
        if not candidates or len(set(candidates)) != len(candidates):
            raise ConfigError(f"{where}: candidate inputs must be a non-empty list without duplicates")
        for c in candidates:
            if c != INPUT and c not in seen:
                raise ConfigError(f"{where}: input {c!r} is not an earlier node (list nodes in topological order)")
        blocks = spec.blocks.get(node_id, 1)
        if blocks < 1:
            raise ConfigError(f"{source}: blocks.{node_id}: must be at least 1")
        nodes.append(NodeSpec(node_id, level, column, spec.widths[level], blocks, tuple(candidates)))
        seen.add(node_id)
    for node_id in spec.blocks:
        if node_id not in seen:
            raise ConfigError(f"{source}: blocks.{node_id}: no such node")
    if spec.output not in seen:
        raise ConfigError(f"{source}: output: {spec.output!r} is not a node")
    hashed = {k: v for k, v in to_dict(spec).items() if k != "description"}
    return SearchSpace(
        name=spec.name, description=spec.description, input_channels=spec.input_channels,
        deploy_size=(spec.deploy_size[0], spec.deploy_size[1]), widths=tuple(spec.widths), nodes=tuple(nodes),
        output=spec.output, ops=tuple(spec.ops), stage1_op=spec.stage1_op, downsample=spec.downsample,
        upsample=spec.upsample, hash=stable_hash(hashed), source=source,
    )


def available_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a space by file path or by name (a file ``search_spaces/<name>.yaml`` shipped with hnanas)."""
    path = Path(name_or_path)
    if not path.suffix and not path.is_file():  # a bare name (a folder of that name in the cwd does not count)
        path = SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"{name_or_path}: no such search-space file (shipped spaces: "
                          f"{', '.join(available_spaces())})")
    return space_from_dict(read_yaml(path), source=str(path))
