"""The architecture drawing's data: where each node of the nested grid sits, which edges the network keeps,
each kept node's op, and its share of the predicted latency (from the latency table's per-node prediction).

:func:`architecture_layout` is a pure function of a space, a genotype and a prediction breakdown
(``Prediction.to_dict()``); :func:`architecture_of_run` finds those for a run: the space and genotype from the
retrain's model spec or the search run, the breakdown from the search's ``genotype.json`` (the search table's
prediction) or else from the table under ``latency_tables/`` for one of the run's devices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from hnanas.errors import HnanasError
from hnanas.nas.genotype import Genotype, genotype_from_dict
from hnanas.nas.space import INPUT, SearchSpace, load_space
from hnanas.report.runs import RunRecord

log = logging.getLogger(__name__)
HEAD = "head"  # the name of the 1x1 head as an edge's destination


@dataclass(frozen=True)
class NodeBox:
    """A grid position: level (row, 0 = full resolution at the top) and column; ``op`` None = pruned node."""

    id: str
    level: int
    column: int
    x: float
    y: float
    op: str | None
    ms: float | None = None  # predicted latency of the node (its op blocks + its concat)
    share: float | None = None  # ms / the network's predicted total

    @property
    def kept(self) -> bool:
        return self.op is not None


@dataclass(frozen=True)
class EdgeLine:
    """A kept input edge ``src -> dst`` (the last one: output node -> ``head``); ``resample``: same (level), up
    (from a coarser level), down (from a finer one)."""

    src: str
    dst: str
    x0: float
    y0: float
    x1: float
    y1: float
    resample: str


@dataclass
class ArchLayout:
    """Everything the drawing shows; positions in grid units (x = column, y = -level)."""

    title: str
    nodes: list[NodeBox]
    edges: list[EdgeLine]
    input_xy: tuple[float, float]
    head_xy: tuple[float, float]
    total_ms: float | None = None  # the network's predicted latency
    other_ms: dict[str, float] = field(default_factory=dict)  # resample, reorder, head, overhead
    source: str = ""  # where the prediction came from (table, device, threads), or why there is none

    def node(self, node_id: str) -> NodeBox:
        return next(n for n in self.nodes if n.id == node_id)


def architecture_layout(space: SearchSpace, genotype: Genotype, breakdown: Mapping | None = None, *,
                        title: str = "", source: str = "") -> ArchLayout:
    """The grid of ``space`` with ``genotype``'s kept nodes, edges and ops; each kept node's predicted ms and
    share of ``breakdown["total_ms"]`` when a breakdown (``Prediction.to_dict()``) is given."""
    ops = genotype.ops
    nodes_ms = dict((breakdown or {}).get("nodes_ms") or {})
    total = float(breakdown["total_ms"]) if breakdown and breakdown.get("total_ms") else None
    pos = {n.id: (float(n.column), -float(n.level)) for n in space.nodes}
    pos[INPUT] = (-1.0, 0.0)
    boxes = []
    for n in space.nodes:
        ms = nodes_ms.get(n.id) if n.id in ops else None
        share = ms / total if ms is not None and total else None
        boxes.append(NodeBox(n.id, n.level, n.column, *pos[n.id], ops.get(n.id), ms, share))
    edges = []
    for node, inputs, _ in genotype.nodes:
        dst_level = space.node(node).level
        for src in inputs:
            src_level = space.level_of(src)
            kind = "same" if src_level == dst_level else ("up" if src_level > dst_level else "down")
            edges.append(EdgeLine(src, node, *pos[src], *pos[node], kind))
    out = space.node(space.output)
    head = (max(n.column for n in space.nodes) + 1.0, -float(out.level))
    edges.append(EdgeLine(out.id, HEAD, *pos[out.id], *head, "same"))
    other = {k: float(breakdown[k]) for k in ("resample_ms", "reorder_ms", "head_ms", "overhead_ms")
             if breakdown and breakdown.get(k) is not None}
    return ArchLayout(title or genotype.name or "genotype", boxes, edges, pos[INPUT], head, total, other, source)


def _space_and_genotype(run: RunRecord) -> tuple[SearchSpace, Genotype] | None:
    from hnanas.pipeline.sources import read_search_run, spec_space_genotype  # imports torch: here, so that
    # `hnanas report` on runs without an architecture to draw starts without it

    if run.model_spec is not None:
        if run.model_spec.get("kind") != "nested":
            return None  # a baseline network, not a genotype of a search space
        space, genotype = spec_space_genotype(run.model_spec)
        return space, genotype
    if run.genotype is not None and run.search_path is not None:
        space = load_space(read_search_run(run.search_path).space)
        return space, genotype_from_dict(run.genotype, space, source=str(run.search_path / "genotype.json"))
    return None


def _table_breakdown(run: RunRecord, space: SearchSpace, genotype: Genotype, devices: Sequence[str]
                     ) -> tuple[dict | None, str]:
    from hnanas.latency.table import LatencyTable  # these two import torch (see _space_and_genotype)
    from hnanas.pipeline.deploy import find_table

    spec = run.model_spec or {}
    for device in devices:
        threads = ((run.latency or {}).get(device) or {}).get("threads")
        path, threads = find_table(spec, device, threads) if spec else (None, threads)
        if path is None:
            continue
        table = LatencyTable.load(path, space=space, device=device)
        return table.predict(genotype, space).to_dict(), f"{path.name} ({device}, {threads} thread(s))"
    return None, "no latency table for this space on the report's devices"


def architecture_of_run(run: RunRecord, devices: Sequence[str] = ()) -> ArchLayout | None:
    """The layout of ``run``'s network, or None when it is not a nested-space network (or cannot be read)."""
    try:
        found = _space_and_genotype(run)
        if found is None:
            return None
        space, genotype = found
        info = run.info
        if info.get("latency_breakdown") and not run.baseline:
            table = info.get("table") or {}
            path = str(table.get("path") or "the search's table").rsplit("/", 1)[-1]
            breakdown, source = info["latency_breakdown"], f"{path} ({table.get('device')}, " \
                                                            f"{table.get('threads')} thread(s)), from the search"
        else:
            breakdown, source = _table_breakdown(run, space, genotype, devices or list(run.latency or {}))
    except HnanasError as exc:
        log.warning("%s: no architecture drawing (%s)", run.path, exc)
        return None
    return architecture_layout(space, genotype, breakdown, title=f"{run.name}: {run.genotype_name}", source=source)
