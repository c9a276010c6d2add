"""Expected latency of a supernet's architecture distribution, as a differentiable torch expression.

It prices the same things :meth:`LatencyTable.predict` prices for one network -- entries, layout conversions,
head, fixed overhead -- in expectation over the architecture distribution, and equals ``predict`` when the
probabilities are 0/1 (tested).

Stage 2 (ops, fixed topology): each node's op cost is ``sum_o p(o) cost(node, o)``; a tensor's layout depends
on its producer's op and its consumers' requirements on theirs, so a conversion of tensor ``t`` to layout ``L``
is paid with probability ``P(t not in L) * (1 - prod_c (1 - P(c needs t in L)))`` (nodes choose independently).

Stage 1 (edges, independent keep-probabilities ``q``): a node's cost depends on which inputs it keeps, so every
subset ``S`` of its candidates is enumerated (at most 2^6 here) with ``P(S) = prod_{e in S} q_e prod_{e not in S}
(1 - q_e)``; the empty subset falls back to single inputs, as ``derive_topology`` keeps the most probable edge.
The op is not chosen yet, so an op-dependent quantity is the mean over the space's ops (or one named op). A node
counts only if the output reaches it: ``alive(v) = 1 - prod_{u uses v} (1 - alive(u) q_uv)``, computed
backwards from the output; a shared resample counts with the probability that any alive node keeps its edge.
"""

from __future__ import annotations

from itertools import combinations

import torch

from hnanas.genotype import Genotype
from hnanas.latency.entries import concat_entry, head_entry, op_entry, resample_entry
from hnanas.latency.table import LatencyTable
from hnanas.network import node_in_channels
from hnanas.space import INPUT, SearchSpace

LAYOUTS = ("nchw", "nchwc")


def _onehot(layout: str) -> dict[str, float]:
    """A requirement or layout as probabilities; "" (indifferent) requires nothing."""
    return {lay: float(layout == lay) for lay in LAYOUTS}


class _Conversions:
    """Expected cost of layout conversions over tensors with a layout distribution and possible consumers."""

    def __init__(self, table: LatencyTable, space: SearchSpace):
        self.table, self.space = table, space
        self.tensors: dict = {}

    def tensor(self, key, channels: int, level: int, p_layout: dict) -> None:
        h, w = self.space.resolution(level)
        cost = {lay: self.table.reorder_ms(lay, channels, h, w) for lay in LAYOUTS}
        self.tensors[key] = {"cost": cost, "p": p_layout, "consumers": []}

    def consume(self, key, need: dict) -> None:
        self.tensors[key]["consumers"].append(need)

    def expected(self) -> torch.Tensor:
        total = torch.zeros(())
        for t in self.tensors.values():
            for lay in LAYOUTS:
                if not t["consumers"] or t["cost"][lay] == 0:
                    continue
                miss = torch.ones(())
                for need in t["consumers"]:
                    miss = miss * (1 - need.get(lay, 0.0))
                total = total + t["cost"][lay] * (1 - t["p"][lay]) * (1 - miss)
        return total


def _op_profile(table: LatencyTable, space: SearchSpace, op: str, c_in: int, node_id: str) -> dict:
    """An op at a node: total cost of its blocks (with conversions between blocks), the layout its first block
    needs and the layout its last block produces ("" = indifferent; then the output keeps the input's layout,
    taken here as blocked)."""
    n = space.node(node_id)
    h, w = space.resolution(n.level)
    cost, first_in, prev_out = 0.0, "", ""
    for b in range(n.blocks):
        e = op_entry(op, c_in if b == 0 else n.width, n.width, h, w)
        lin, lout = table.layouts(e)
        cost += table.ms(e)
        if b == 0:
            first_in = lin
        elif lin and prev_out and lin != prev_out:
            cost += table.reorder_ms(lin, n.width, h, w)
        prev_out = lout or prev_out
    return {"cost": cost, "in": first_in, "out": prev_out or "nchwc"}


class OpLatencyModel:
    """Stage 2: ``__call__(op_probs) -> E[latency] (ms)``, ``op_probs`` as returned by ``OpSupernet.op_probs``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, topology: Genotype, node_ops: dict[str, list[str]]):
        self.table, self.space, self.topology, self.node_ops = table, space, topology, node_ops
        self.costs: dict[str, torch.Tensor] = {}
        self.p_out_blocked: dict[str, torch.Tensor] = {}  # per op: 1 if its output is blocked (NCHWc)
        self.needs_in: dict[str, dict[str, torch.Tensor]] = {}  # per op: requirement of its first block
        self.parts: dict[str, list] = {}
        const, self.resampled = 0.0, {}
        for node, ins, _ in topology.nodes:
            n = space.node(node)
            h, w = space.resolution(n.level)
            c_in = node_in_channels(space, ins)
            profiles = [_op_profile(table, space, o, c_in, node) for o in node_ops[node]]
            costs = [p["cost"] for p in profiles]
            parts = []
            for src in ins:
                if space.level_of(src) == n.level:
                    parts.append(src)
                else:
                    key = ("resampled", src, n.level)
                    if key not in self.resampled:
                        e = resample_entry(space, space.channels_of(src), space.level_of(src), n.level)
                        self.resampled[key] = (src, table.layouts(e))
                        const += table.ms(e)
                    parts.append(key)
            self.parts[node] = parts
            if len(ins) > 1:  # the concat output's only consumer is this node's op
                e = concat_entry([space.channels_of(i) for i in ins], h, w)
                const += table.ms(e)
                cat_out = table.layouts(e)[1]
                costs = [c + (table.reorder_ms(p["in"], c_in, h, w) if p["in"] and cat_out and p["in"] != cat_out
                              else 0.0) for c, p in zip(costs, profiles)]
                self.parts[node] = ("concat", table.layouts(e)[0], parts)
            self.costs[node] = torch.tensor(costs)
            self.p_out_blocked[node] = torch.tensor([float(p["out"] == "nchwc") for p in profiles])
            self.needs_in[node] = {lay: torch.tensor([float(p["in"] == lay) for p in profiles]) for lay in LAYOUTS}
        e = head_entry(space)
        self.head_layouts = table.layouts(e)
        hh, hw = space.resolution(0)
        logits = self.head_layouts[1]
        const += table.ms(e) + (table.reorder_ms("nchw", 1, hh, hw) if logits and logits != "nchw" else 0.0)
        self.const = const

    def _conversions(self, op_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        conv = _Conversions(self.table, self.space)
        conv.tensor(INPUT, self.space.input_channels, 0, _onehot("nchw"))
        for node, _, _ in self.topology.nodes:
            b = (op_probs[node] * self.p_out_blocked[node]).sum()
            conv.tensor(node, self.space.node(node).width, self.space.node(node).level, {"nchwc": b, "nchw": 1 - b})
        for key, (src, (lin, lout)) in self.resampled.items():
            conv.tensor(key, self.space.channels_of(src), key[2], _onehot(lout or "nchwc"))
            conv.consume(src, _onehot(lin))
        for node, _, _ in self.topology.nodes:
            parts = self.parts[node]
            if isinstance(parts, tuple):  # concat: a fixed requirement on every part
                for t in parts[2]:
                    conv.consume(t, _onehot(parts[1]))
            else:  # a single input, consumed by the op directly
                conv.consume(parts[0], {lay: (op_probs[node] * self.needs_in[node][lay]).sum() for lay in LAYOUTS})
        conv.consume(self.space.output, _onehot(self.head_layouts[0]))
        return conv.expected()

    def __call__(self, op_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        entries = self.const + sum((op_probs[n] * c).sum() for n, c in self.costs.items())
        return self.table.corrected(self.table.network_ms(entries + self._conversions(op_probs)))


class EdgeLatencyModel:
    """Stage 1: ``__call__(edge_probs) -> E[latency] (ms)``, ``edge_probs`` as ``TopologySupernet.edge_probs``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, op: str = "mean"):
        self.table, self.space = table, space
        ops = list(space.ops) if op == "mean" else [op]
        self.subsets: dict[str, dict] = {}
        self.users: dict[str, list[tuple[str, int]]] = {n.id: [] for n in space.nodes}
        self.resample: dict[tuple[str, int], dict] = {}
        for n in space.nodes:
            h, w = space.resolution(n.level)
            k = len(n.candidates)
            masks, costs, out_blocked = [], [], []
            needs = {lay: [] for lay in LAYOUTS}  # per subset: probability the subset's consumer needs lay
            for r in range(1, k + 1):
                for comb in combinations(range(k), r):
                    ins = tuple(n.candidates[i] for i in comb)
                    c_in = node_in_channels(space, ins)
                    profiles = [_op_profile(table, space, o, c_in, n.id) for o in ops]
                    cost = sum(p["cost"] for p in profiles) / len(ops)
                    if r > 1:
                        e = concat_entry([space.channels_of(i) for i in ins], h, w)
                        cat_in, cat_out = table.layouts(e)
                        cost += table.ms(e) + sum(table.reorder_ms(p["in"], c_in, h, w) for p in profiles
                                                  if p["in"] and cat_out and p["in"] != cat_out) / len(ops)
                        for lay in LAYOUTS:
                            needs[lay].append(float(cat_in == lay))
                    else:
                        for lay in LAYOUTS:
                            needs[lay].append(sum(p["in"] == lay for p in profiles) / len(ops))
                    masks.append([1.0 if i in comb else 0.0 for i in range(k)])
                    costs.append(cost)
                    out_blocked.append(sum(p["out"] == "nchwc" for p in profiles) / len(ops))
            self.subsets[n.id] = {"masks": torch.tensor(masks), "costs": torch.tensor(costs),
                                  "out_blocked": torch.tensor(out_blocked),
                                  "needs": {lay: torch.tensor(v) for lay, v in needs.items()}}
            for i, src in enumerate(n.candidates):
                if src in self.users:
                    self.users[src].append((n.id, i))
                if space.level_of(src) != n.level:
                    key = (src, n.level)
                    if key not in self.resample:
                        e = resample_entry(space, space.channels_of(src), space.level_of(src), n.level)
                        self.resample[key] = {"ms": table.ms(e), "layouts": table.layouts(e), "users": []}
                    self.resample[key]["users"].append((n.id, i))
        e = head_entry(space)
        self.head_layouts = table.layouts(e)
        hh, hw = space.resolution(0)
        logits = self.head_layouts[1]
        self.const = table.ms(e) + (
            table.reorder_ms("nchw", 1, hh, hw) if logits and logits != "nchw" else 0.0)

    def alive(self, q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Probability that the output reaches each node."""
        a: dict[str, torch.Tensor] = {}
        for n in reversed(self.space.nodes):
            if n.id == self.space.output:
                a[n.id] = torch.ones(())
                continue
            miss = torch.ones(())
            for user, i in self.users[n.id]:
                miss = miss * (1 - a[user] * q[user][i])
            a[n.id] = 1 - miss
        return a

    def subset_probs(self, node: str, q: torch.Tensor) -> torch.Tensor:
        """P(S) of every non-empty subset, with the empty subset's mass moved to single inputs (in proportion
        to their keep-probabilities), as derive_topology keeps the most probable edge of a node without any."""
        masks = self.subsets[node]["masks"]
        p = (masks * q + (1 - masks) * (1 - q)).prod(dim=1)
        k = len(q)
        p_empty = (1 - q).prod()
        return torch.cat([p[:k] + p_empty * q / q.sum().clamp_min(1e-12), p[k:]])

    def __call__(self, edge_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        space = self.space
        q = {n.id: edge_probs[n.id].reshape(-1) for n in space.nodes}
        a = self.alive(q)
        total = torch.as_tensor(self.const, dtype=torch.float32)
        conv = _Conversions(self.table, space)
        conv.tensor(INPUT, space.input_channels, 0, _onehot("nchw"))
        ps = {}
        for n in space.nodes:
            sub = self.subsets[n.id]
            ps[n.id] = p = self.subset_probs(n.id, q[n.id])
            total = total + a[n.id] * (p * sub["costs"]).sum()
            b = (p * sub["out_blocked"]).sum()
            conv.tensor(n.id, n.width, n.level, {"nchwc": b, "nchw": 1 - b})
        for (src, level), rs in self.resample.items():
            miss = torch.ones(())
            for user, i in rs["users"]:
                miss = miss * (1 - a[user] * q[user][i])
            used = 1 - miss
            total = total + used * rs["ms"]
            lin, lout = rs["layouts"]
            conv.tensor(("resampled", src, level), space.channels_of(src), level, _onehot(lout or "nchwc"))
            conv.consume(src, {lay: used * v for lay, v in _onehot(lin).items()})
        for n in space.nodes:
            sub, p = self.subsets[n.id], ps[n.id]
            for i, src in enumerate(n.candidates):
                member = sub["masks"][:, i]
                need = {lay: a[n.id] * (p * member * sub["needs"][lay]).sum() for lay in LAYOUTS}
                key = src if space.level_of(src) == n.level else ("resampled", src, n.level)
                conv.consume(key, need)
        conv.consume(space.output, _onehot(self.head_layouts[0]))
        return self.table.corrected(self.table.network_ms(total + conv.expected()))
