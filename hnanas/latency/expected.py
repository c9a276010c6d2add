"""Expected latency of a supernet's architecture distribution, as a differentiable torch expression.

It prices the same things :meth:`LatencyTable.predict` prices for one network -- entries, layout conversions,
head, fixed overhead -- in expectation over the architecture distribution, and equals ``predict`` when the
probabilities are 0/1 (tested).

Stage 2 (ops, fixed topology): each node's op cost is ``sum_o p(o) cost(node, o)``; a tensor's layout depends
on its producer's op and its consumers' requirements on theirs, so a conversion of tensor ``t`` to layout ``L``
is paid with probability ``P(t not in L) * (1 - prod_c (1 - P(c needs t in L)))`` (nodes choose independently).
A layout-following entry (a bilinear resample or a concat, see ``entries.py``) runs blocked with the probability
that all its inputs are blocked, else as its ``@nchw`` row; a concat that runs plain needs its blocked parts in
NCHW.

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

from hnanas.latency.entries import concat_entry, head_entry, op_entry, resample_entry
from hnanas.latency.table import LatencyTable
from hnanas.nas.genotype import Genotype
from hnanas.nas.network import node_in_channels
from hnanas.nas.space import INPUT, SearchSpace

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


class _Glue:
    """A resample or concat entry as numbers, so that one set of formulas serves one entry (floats) and a stack of
    entries (tensors, :meth:`stack`). A layout-following entry (``follows`` 1) runs as its blocked row with
    probability ``b`` = P(all its inputs blocked) and as its ``@nchw`` row otherwise; any other entry has one row
    and a fixed requirement on its inputs (``lin_*``). ``inherit_*``: the row's output layout is "" (it keeps its
    first input's)."""

    FIELDS = ("follows", "ms_b", "ms_p", "out_b", "inherit_b", "out_p", "inherit_p", "lin_nchw", "lin_nchwc")

    def __init__(self, values: dict):
        for f in self.FIELDS:
            setattr(self, f, values[f])

    @classmethod
    def of(cls, table: LatencyTable, entry) -> "_Glue":
        lin, lout = table.layouts(entry)
        variant = table.follow(entry, ["nchw"])
        pout = table.layouts(variant)[1]
        return cls({"follows": float(variant != entry), "ms_b": table.ms(entry), "ms_p": table.ms(variant),
                    "out_b": float(lout == "nchwc"), "inherit_b": float(not lout),
                    "out_p": float(pout == "nchwc"), "inherit_p": float(not pout),
                    "lin_nchw": float(lin == "nchw"), "lin_nchwc": float(lin == "nchwc")})

    @classmethod
    def stack(cls, glues: list["_Glue"]) -> "_Glue":
        return cls({f: torch.tensor([getattr(g, f) for g in glues]) for f in cls.FIELDS})

    def column(self) -> "_Glue":
        """A stack as a column (subset x 1), to broadcast against subset x input tensors."""
        return _Glue({f: getattr(self, f)[:, None] for f in self.FIELDS})

    @property
    def convertible(self):
        """1 if the output has a layout of its own (a consumer needing another one pays a conversion)."""
        return 1 - self.inherit_b * self.inherit_p

    def cost(self, b):
        f = self.follows
        return f * (b * self.ms_b + (1 - b) * self.ms_p) + (1 - f) * self.ms_b

    def out_blocked(self, b, first_in):
        """P(output blocked), given P(all inputs blocked) and P(first input blocked)."""
        out_b = self.inherit_b * first_in + (1 - self.inherit_b) * self.out_b
        out_p = self.inherit_p * first_in + (1 - self.inherit_p) * self.out_p
        return self.follows * (b * out_b + (1 - b) * out_p) + (1 - self.follows) * out_b

    def needs(self, others_blocked) -> dict:
        """What it needs of one input, given P(all its other inputs blocked): its fixed layout, or (following)
        NCHW when another input is plain."""
        f = self.follows
        return {"nchw": f * (1 - others_blocked) + (1 - f) * self.lin_nchw, "nchwc": (1 - f) * self.lin_nchwc}


def _prod(xs) -> torch.Tensor:
    out = torch.ones(())
    for x in xs:
        out = out * x
    return out


def _concat_stack(glues: list, masks: list, r_to: list) -> dict:
    """A node's concatenating subsets (see ``EdgeLatencyModel._node``): their glue stacked, each one's first part
    (one-hot over the candidates), and the cost of converting its output to each layout."""
    rows = [(g, m, r) for g, m, r in zip(glues, masks, r_to) if g is not None]
    k = len(masks[0])
    return {"glue": _Glue.stack([g for g, _, _ in rows]),
            "first": torch.tensor([[1.0 if i == m.index(1.0) else 0.0 for i in range(k)] for _, m, _ in rows])
            .reshape(len(rows), k),
            "r_nchw": torch.tensor([r["nchw"] for _, _, r in rows]),
            "r_nchwc": torch.tensor([r["nchwc"] for _, _, r in rows])}


class OpLatencyModel:
    """Stage 2: ``__call__(op_probs) -> E[latency] (ms)``, ``op_probs`` as returned by ``OpSupernet.op_probs``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, topology: Genotype, node_ops: dict[str, list[str]]):
        self.table, self.space, self.topology, self.node_ops = table, space, topology, node_ops
        self.costs: dict[str, torch.Tensor] = {}
        self.p_out_blocked: dict[str, torch.Tensor] = {}  # per op: 1 if its output is blocked (NCHWc)
        self.needs_in: dict[str, dict[str, torch.Tensor]] = {}  # per op: requirement of its first block
        self.parts: dict[str, list] = {}
        self.concat: dict[str, _Glue] = {}
        self.resampled: dict = {}  # ("resampled", src, level) -> (src, glue), in first-use order
        for node, ins, _ in topology.nodes:
            n = space.node(node)
            h, w = space.resolution(n.level)
            profiles = [_op_profile(table, space, o, node_in_channels(space, ins), node) for o in node_ops[node]]
            parts = []
            for src in ins:
                key = src if space.level_of(src) == n.level else ("resampled", src, n.level)
                if key != src and key not in self.resampled:
                    e = resample_entry(space, space.channels_of(src), space.level_of(src), n.level)
                    self.resampled[key] = (src, _Glue.of(table, e))
                parts.append(key)
            self.parts[node] = parts
            if len(ins) > 1:
                self.concat[node] = _Glue.of(table, concat_entry([space.channels_of(i) for i in ins], h, w))
            self.costs[node] = torch.tensor([p["cost"] for p in profiles])
            self.p_out_blocked[node] = torch.tensor([float(p["out"] == "nchwc") for p in profiles])
            self.needs_in[node] = {lay: torch.tensor([float(p["in"] == lay) for p in profiles]) for lay in LAYOUTS}
        e = head_entry(space)
        self.head_layouts = table.layouts(e)
        hh, hw = space.resolution(0)
        logits = self.head_layouts[1]
        self.const = table.ms(e) + (table.reorder_ms("nchw", 1, hh, hw) if logits and logits != "nchw" else 0.0)

    def __call__(self, op_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        space = self.space
        conv = _Conversions(self.table, space)
        blocked: dict = {INPUT: torch.zeros(())}  # tensor -> P(blocked)

        def tensor(key, channels: int, level: int, b) -> None:
            blocked[key] = b
            conv.tensor(key, channels, level, {"nchwc": b, "nchw": 1 - b})

        tensor(INPUT, space.input_channels, 0, blocked[INPUT])
        for node, _, _ in self.topology.nodes:
            n = space.node(node)
            tensor(node, n.width, n.level, (op_probs[node] * self.p_out_blocked[node]).sum())
        total = torch.as_tensor(self.const, dtype=torch.float32)
        for key, (src, glue) in self.resampled.items():
            b = blocked[src]
            total = total + glue.cost(b)
            conv.consume(src, glue.needs(1.0))  # one input: no other input that could be plain
            tensor(key, space.channels_of(src), key[2], glue.out_blocked(b, b))
        for node, ins, _ in self.topology.nodes:
            n = space.node(node)
            p = op_probs[node]
            total = total + (p * self.costs[node]).sum()
            need = {lay: (p * self.needs_in[node][lay]).sum() for lay in LAYOUTS}
            parts = self.parts[node]
            if node not in self.concat:  # a single input, consumed by the op directly
                conv.consume(parts[0], need)
                continue
            glue, bs = self.concat[node], [blocked[t] for t in parts]
            b_all = _prod(bs)
            total = total + glue.cost(b_all)
            for i, t in enumerate(parts):
                conv.consume(t, glue.needs(_prod(bs[:i] + bs[i + 1:])))
            key = ("concat", node)
            if glue.convertible:  # the concat's output, consumed by the op
                tensor(key, node_in_channels(space, ins), n.level, glue.out_blocked(b_all, bs[0]))
                conv.consume(key, need)
        conv.consume(space.output, _onehot(self.head_layouts[0]))
        return self.table.corrected(self.table.network_ms(total + conv.expected()))


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
            masks, costs, out_blocked, glues, r_to = [], [], [], [], []
            needs = {lay: [] for lay in LAYOUTS}  # per subset: P(its op needs its input in lay), mean over ops
            for r in range(1, k + 1):
                for comb in combinations(range(k), r):
                    ins = tuple(n.candidates[i] for i in comb)
                    c_in = node_in_channels(space, ins)
                    profiles = [_op_profile(table, space, o, c_in, n.id) for o in ops]
                    glue = _Glue.of(table, concat_entry([space.channels_of(i) for i in ins], h, w)) if r > 1 else None
                    glues.append(glue)
                    costs.append(sum(p["cost"] for p in profiles) / len(ops))
                    for lay in LAYOUTS:
                        needs[lay].append(sum(p["in"] == lay for p in profiles) / len(ops))
                    convertible = glue is not None and glue.convertible
                    r_to.append({lay: table.reorder_ms(lay, c_in, h, w) if convertible else 0.0 for lay in LAYOUTS})
                    masks.append([1.0 if i in comb else 0.0 for i in range(k)])
                    out_blocked.append(sum(p["out"] == "nchwc" for p in profiles) / len(ops))
            self.subsets[n.id] = {"masks": torch.tensor(masks), "costs": torch.tensor(costs),
                                  "out_blocked": torch.tensor(out_blocked),
                                  "concat": _concat_stack(glues, masks, r_to),
                                  "needs": {lay: torch.tensor(v) for lay, v in needs.items()}}
            for i, src in enumerate(n.candidates):
                if src in self.users:
                    self.users[src].append((n.id, i))
                if space.level_of(src) != n.level:
                    key = (src, n.level)
                    if key not in self.resample:
                        e = resample_entry(space, space.channels_of(src), space.level_of(src), n.level)
                        self.resample[key] = {"glue": _Glue.of(table, e), "users": []}
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

    def _node(self, n, p: torch.Tensor, b: torch.Tensor, conv: "_Conversions", a, keys: list) -> torch.Tensor:
        """Expected cost of node ``n`` (its subsets' ops, concats and concat-to-op conversions), registering what
        its subsets need of its candidate tensors ``keys`` (``b``: their P(blocked)). Vectorised over subsets:
        the first ``k`` subsets are the single inputs, the others concatenate."""
        sub, k = self.subsets[n.id], len(keys)
        total = (p * sub["costs"]).sum()
        need = {lay: p[:k] * sub["needs"][lay][:k] for lay in LAYOUTS}  # single inputs: the op's requirement
        if len(p) > k:
            c, pc, m = sub["concat"], p[k:], sub["masks"][k:]
            x = m * b + (1 - m)
            b_all = x.prod(dim=1)
            cat = c["glue"].out_blocked(b_all, (c["first"] * b).sum(dim=1))  # P(concat output blocked)
            needs = {lay: sub["needs"][lay][k:] for lay in LAYOUTS}  # what the op needs of the concat
            cost = c["glue"].cost(b_all) + c["r_nchwc"] * needs["nchwc"] * (1 - cat) + c["r_nchw"] * needs["nchw"] * cat
            total = total + (pc * cost).sum()
            others = torch.stack([torch.cat([x[:, :i], x[:, i + 1:]], dim=1).prod(dim=1) for i in range(k)], dim=1)
            part = c["glue"].column().needs(others)  # subset x candidate
            w = pc[:, None] * m
            for lay in LAYOUTS:
                need[lay] = need[lay] + (w * part[lay]).sum(0)
        for i, key in enumerate(keys):
            conv.consume(key, {lay: a * need[lay][i] for lay in LAYOUTS})
        return a * total

    def __call__(self, edge_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        space = self.space
        q = {n.id: edge_probs[n.id].reshape(-1) for n in space.nodes}
        a = self.alive(q)
        total = torch.as_tensor(self.const, dtype=torch.float32)
        conv = _Conversions(self.table, space)
        blocked: dict = {INPUT: torch.zeros(())}
        conv.tensor(INPUT, space.input_channels, 0, _onehot("nchw"))
        ps = {}
        for n in space.nodes:
            ps[n.id] = p = self.subset_probs(n.id, q[n.id])
            blocked[n.id] = b = (p * self.subsets[n.id]["out_blocked"]).sum()
            conv.tensor(n.id, n.width, n.level, {"nchwc": b, "nchw": 1 - b})
        for (src, level), rs in self.resample.items():
            miss = torch.ones(())
            for user, i in rs["users"]:
                miss = miss * (1 - a[user] * q[user][i])
            used, glue, b = 1 - miss, rs["glue"], blocked[src]
            total = total + used * glue.cost(b)
            conv.consume(src, {lay: used * v for lay, v in glue.needs(1.0).items()})
            blocked[(src, level)] = rb = torch.as_tensor(glue.out_blocked(b, b), dtype=torch.float32)
            conv.tensor(("resampled", src, level), space.channels_of(src), level, {"nchwc": rb, "nchw": 1 - rb})
        for n in space.nodes:
            keys = [src if space.level_of(src) == n.level else ("resampled", src, n.level) for src in n.candidates]
            b = torch.stack([blocked[src if space.level_of(src) == n.level else (src, n.level)]
                             for src in n.candidates])
            total = total + self._node(n, ps[n.id], b, conv, a[n.id], keys)
        conv.consume(space.output, _onehot(self.head_layouts[0]))
        return self.table.corrected(self.table.network_ms(total + conv.expected()))
