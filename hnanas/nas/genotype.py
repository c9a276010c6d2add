"""Genotypes: a found architecture as a small, frozen, JSON-serialisable record.

A genotype names its space (name and hash) and, for every node the network keeps, the inputs it keeps and its
op. :func:`prune` drops nodes the output cannot reach (backward search from the output node), so a genotype
always describes exactly the network that :func:`hnanas.nas.network.derive` builds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hnanas.errors import ConfigError
from hnanas.fileio import read_json, write_json
from hnanas.nas.space import INPUT, SearchSpace

FORMAT = "hnanas-genotype/1"


@dataclass(frozen=True)
class Genotype:
    """Kept edges and op per node. ``nodes`` is ((node id, (inputs...), op), ...) in the space's order."""

    space: str
    space_hash: str
    nodes: tuple[tuple[str, tuple[str, ...], str], ...]
    name: str = field(default="", compare=False)

    @property
    def inputs(self) -> dict[str, tuple[str, ...]]:
        return {n: ins for n, ins, _ in self.nodes}

    @property
    def ops(self) -> dict[str, str]:
        return {n: op for n, _, op in self.nodes}

    def to_dict(self, info: Mapping[str, Any] | None = None) -> dict:
        data: dict[str, Any] = {"format": FORMAT, "name": self.name, "space": self.space,
                                "space_hash": self.space_hash,
                                "nodes": {n: {"inputs": list(ins), "op": op} for n, ins, op in self.nodes}}
        if info:
            data["info"] = dict(info)
        return data

    def save(self, path: str | Path, info: Mapping[str, Any] | None = None) -> Path:
        return write_json(path, self.to_dict(info))

    def describe(self) -> str:
        """One line per node: ``1_2  res3  <- 0_1, 2_1``."""
        return "\n".join(f"{n:>5}  {op:<8} <- {', '.join(ins)}" for n, ins, op in self.nodes)


def make_genotype(space: SearchSpace, inputs: Mapping[str, list[str] | tuple[str, ...]],
                  ops: Mapping[str, str] | str, name: str = "") -> Genotype:
    """Build a genotype from kept inputs per node and ops (a mapping, or one op name for every node), validate
    it against ``space`` and prune what the output cannot reach."""
    op_of = (lambda n: ops) if isinstance(ops, str) else (lambda n: ops.get(n))
    kept = prune(space, {n: tuple(v) for n, v in inputs.items()})
    nodes = []
    for spec in space.nodes:
        if spec.id not in kept:
            continue
        op = op_of(spec.id)
        if op is None:
            raise ConfigError(f"genotype {name or '(unnamed)'}: node {spec.id} has no op")
        nodes.append((spec.id, kept[spec.id], op))
    g = Genotype(space.name, space.hash, tuple(nodes), name)
    validate(g, space)
    return g


def prune(space: SearchSpace, inputs: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Keep only nodes reachable backwards from the output; inputs keep the space's candidate order."""
    if space.output not in inputs:
        raise ConfigError(f"genotype: the output node {space.output} keeps no inputs")
    alive: set[str] = set()
    stack = [space.output]
    while stack:
        node = stack.pop()
        if node in alive or node == INPUT:
            continue
        if node not in inputs or not inputs[node]:
            raise ConfigError(f"genotype: node {node} is used but keeps no inputs")
        alive.add(node)
        stack.extend(inputs[node])
    return {n.id: tuple(c for c in n.candidates if c in inputs[n.id]) for n in space.nodes if n.id in alive}


def validate(g: Genotype, space: SearchSpace, source: str | None = None) -> None:
    """Check that ``g`` belongs to ``space`` (name, hash, edges among candidates, ops among the space's ops or
    the stage-1 op) and is pruned. ``source`` (the file) leads every error message."""
    from hnanas.ops import list_ops  # the op registry imports torch: imported here so that reading a space or
    # genotype file (report, data check, the CLI's start) does not start torch

    where = f"{source} (genotype {g.name or '(unnamed)'})" if source else f"genotype {g.name or '(unnamed)'}"
    if g.space != space.name or g.space_hash != space.hash:
        raise ConfigError(f"{where}: made for space {g.space} ({g.space_hash}), not {space.name} ({space.hash}); "
                          f"use the space file it was searched in")
    known = set(list_ops())
    for node, ins, op in g.nodes:
        if node not in space.node_map:
            raise ConfigError(f"{where}: unknown node {node!r}")
        bad = [i for i in ins if i not in space.node(node).candidates]
        if bad or not ins:
            raise ConfigError(f"{where}: node {node} keeps {list(ins)}; candidates are "
                              f"{list(space.node(node).candidates)} in space {space.name} (edges only go forward, so no cycle "
                              f"is possible); fix the file or use the genotype.json a search wrote")
        if op not in known:
            raise ConfigError(f"{where}: node {node}: unknown op {op!r}; known ops: {', '.join(sorted(known))} "
                              f"(`hnanas ops list`)")
    if prune(space, g.inputs).keys() != g.inputs.keys():
        raise ConfigError(f"{where}: has nodes the output cannot reach; build it with make_genotype()")


def genotype_from_dict(data: Mapping, space: SearchSpace, source: str = "genotype") -> Genotype:
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ConfigError(f"{source}: not an hnanas genotype (expected \"format\": \"{FORMAT}\")")
    try:
        nodes = data["nodes"]
        g = Genotype(str(data["space"]), str(data["space_hash"]),
                     tuple((n, tuple(v["inputs"]), str(v["op"])) for n, v in nodes.items()),
                     str(data.get("name", "")))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{source}: malformed genotype ({exc})") from None
    order = [n.id for n in space.nodes]
    if [n for n, _, _ in g.nodes] != [n for n in order if n in g.inputs]:
        g = Genotype(g.space, g.space_hash, tuple(sorted(g.nodes, key=lambda t: order.index(t[0])
                                                         if t[0] in order else -1)), g.name)
    validate(g, space, source if source != "genotype" else None)
    return g


def load_genotype(name_or_path: str | Path, space: SearchSpace) -> Genotype:
    """A genotype by file path (``genotype.json``) or by name (see :func:`named_genotypes`)."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.is_file():
        return genotype_from_dict(read_json(path), space, source=str(path))
    named = named_genotypes(space)
    if str(name_or_path) in named:
        return named[str(name_or_path)]
    if str(name_or_path).startswith("random"):
        seed = str(name_or_path)[6:].lstrip("_-:") or "0"
        if seed.isdigit():
            return sample_genotype(space, int(seed))
    raise ConfigError(f"{name_or_path}: no such genotype file or name (names: {', '.join(named)}, random:SEED)")


def named_genotypes(space: SearchSpace) -> dict[str, Genotype]:
    """Fixed architectures for comparison, defined on any nested space:

    - ``dense_res3``: every candidate edge kept, ``res3`` everywhere (the densest DNANet-style topology).
    - ``dnanet_res3``: DNANet's own connectivity as far as the space allows — node (i, j) takes the previous
      column's node of its level, the node below it in the previous column (upsampled), the node above it in its
      own column (pooled) and the column-0 feature of its level — with ``res3`` everywhere.
    - ``chain_res3``: the plain encoder-decoder path of UNet (previous column at the same level + the one below).
    """
    dense = {n.id: n.candidates for n in space.nodes}
    dnanet, chain = {}, {}
    for n in space.nodes:
        if len(n.candidates) == 1:
            dnanet[n.id] = chain[n.id] = n.candidates
            continue
        prev = [f"{n.level}_{n.column - 1}", f"{n.level + 1}_{n.column - 1}"]
        chain[n.id] = tuple(c for c in n.candidates if c in prev)
        extra = [f"{n.level - 1}_{n.column}", f"{n.level}_0"]
        dnanet[n.id] = tuple(c for c in n.candidates if c in prev + extra)
    out = {}
    for name, inputs in (("dense_res3", dense), ("dnanet_res3", dnanet), ("chain_res3", chain)):
        if all(inputs[n.id] for n in space.nodes):
            out[name] = make_genotype(space, inputs, "res3", name=name)
    return out


def sample_genotype(space: SearchSpace, seed: int, ops: list[str] | None = None, keep_prob: float = 0.5) -> Genotype:
    """A random architecture: each candidate edge kept with ``keep_prob`` (at least one per node), one op per node
    drawn uniformly from ``ops`` (default: the space's ops). Deterministic per seed."""
    rng = random.Random(seed)
    ops = list(ops or space.ops)
    inputs = {}
    for n in space.nodes:
        kept = tuple(c for c in n.candidates if rng.random() < keep_prob)
        inputs[n.id] = kept or (rng.choice(n.candidates),)
    choice = {n.id: rng.choice(ops) for n in space.nodes}
    return make_genotype(space, inputs, choice, name=f"random_{seed}")
