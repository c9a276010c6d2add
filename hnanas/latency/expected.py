"""Expected latency of a supernet's architecture distribution, as a differentiable torch expression.

Stage 2 (ops, fixed topology): ``E[lat] = const + sum_nodes sum_ops p(op) * cost(node, op)``, where ``const`` is
the topology's concatenations, resamples, head and fixed overhead.

Stage 1 (edges, independent keep-probabilities ``q``): a node's cost depends on which inputs it keeps, so every
subset ``S`` of its candidates is enumerated (at most 2^6 here): ``P(S) = prod_{e in S} q_e prod_{e not in S}
(1 - q_e)``, ``cost(S) = op(c_sum(S)) + concat(S)``; the empty subset falls back to single inputs, as
``derive_topology`` keeps the most probable edge. The op is not chosen yet in stage 1, so by default ``op(c)`` is
the mean over the space's candidate ops (or one named op). A node counts only if the output reaches it:
``alive(v) = 1 - prod_{u uses v} (1 - alive(u) q_uv)``, computed backwards from the output; a shared resample
counts with the probability that any alive node at its level keeps that edge. With 0/1 probabilities both
expressions equal :meth:`LatencyTable.predict` of the derived network.
"""

from __future__ import annotations

from itertools import combinations

import torch

from hnanas.genotype import Genotype
from hnanas.latency.table import LatencyTable
from hnanas.network import node_in_channels
from hnanas.space import SearchSpace


class OpLatencyModel:
    """Stage 2: ``__call__(op_probs) -> E[latency] (ms)``, ``op_probs`` as returned by ``OpSupernet.op_probs``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, topology: Genotype, node_ops: dict[str, list[str]]):
        self.table = table
        self.costs: dict[str, torch.Tensor] = {}
        const, resampled = 0.0, set()
        for node, ins, _ in topology.nodes:
            c_in = node_in_channels(space, ins)
            self.costs[node] = torch.tensor([table.op_ms(space, op, c_in, node) for op in node_ops[node]])
            const += table.concat_ms(space, ins, node)
            level = space.node(node).level
            resampled |= {(s, level) for s in ins if space.level_of(s) != level}
        const += sum(table.resample_ms(space, s, lv) for s, lv in resampled)
        self.const = const + table.head_ms(space) + table.overhead_ms

    def __call__(self, op_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        raw = self.const + sum((op_probs[n] * c).sum() for n, c in self.costs.items())
        return self.table.corrected(raw)

    def node_costs(self) -> dict[str, torch.Tensor]:
        return dict(self.costs)


class EdgeLatencyModel:
    """Stage 1: ``__call__(edge_probs) -> E[latency] (ms)``, ``edge_probs`` as ``TopologySupernet.edge_probs``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, op: str = "mean"):
        self.table, self.space = table, space
        ops = list(space.ops) if op == "mean" else [op]
        self.subsets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.users: dict[str, list[tuple[str, int]]] = {n.id: [] for n in space.nodes}
        groups: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for n in space.nodes:
            k = len(n.candidates)
            masks, costs = [], []
            for r in range(1, k + 1):
                for comb in combinations(range(k), r):
                    ins = tuple(n.candidates[i] for i in comb)
                    c_in = node_in_channels(space, ins)
                    op_cost = sum(table.op_ms(space, o, c_in, n.id) for o in ops) / len(ops)
                    masks.append([1.0 if i in comb else 0.0 for i in range(k)])
                    costs.append(op_cost + table.concat_ms(space, ins, n.id))
            self.subsets[n.id] = (torch.tensor(masks), torch.tensor(costs))
            for i, src in enumerate(n.candidates):
                if src in self.users:
                    self.users[src].append((n.id, i))
                if space.level_of(src) != n.level:
                    groups.setdefault((src, n.level), []).append((n.id, i))
        self.resample = [(users, table.resample_ms(space, src, lv)) for (src, lv), users in groups.items()]
        self.const = table.head_ms(space) + table.overhead_ms

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

    def node_expected_cost(self, node: str, q: torch.Tensor) -> torch.Tensor:
        masks, costs = self.subsets[node]
        p_subset = (masks * q + (1 - masks) * (1 - q)).prod(dim=1)
        p_empty = (1 - q).prod()
        single = costs[: len(q)]  # subsets are listed by size, the k singletons first
        fallback = (q / q.sum().clamp_min(1e-12) * single).sum()
        return (p_subset * costs).sum() + p_empty * fallback

    def __call__(self, edge_probs: dict[str, torch.Tensor]) -> torch.Tensor:
        q = {n.id: edge_probs[n.id].reshape(-1) for n in self.space.nodes}
        a = self.alive(q)
        total = torch.as_tensor(self.const, dtype=torch.float32)
        for n in self.space.nodes:
            total = total + a[n.id] * self.node_expected_cost(n.id, q[n.id])
        for users, cost in self.resample:
            miss = torch.ones(())
            for user, i in users:
                miss = miss * (1 - a[user] * q[user][i])
            total = total + (1 - miss) * cost
        return self.table.corrected(total)
