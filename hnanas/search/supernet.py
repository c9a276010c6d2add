"""Supernets of a nested search space: one per search stage, both built from the space file.

- :class:`TopologySupernet` (stage 1): every candidate edge is present behind a learnable gate; each edge is an
  independent Bernoulli "keep" decision with probability ``sigmoid(beta)``, relaxed during training as a
  binary-concrete (Gumbel-sigmoid) sample with an annealed temperature. Every node runs the space's stage-1 op on
  the concatenation of all its gated candidates.
- :class:`OpSupernet` (stage 2): the topology stage 1 kept; each node chooses one of the space's ops with
  probabilities ``softmax(alpha)``. Paths are sampled (ProxylessNAS): one path for weight steps, two for
  architecture steps with a straight-through binary gate, so memory stays that of one or two networks. A DARTS
  mixture (every op, weighted) is available as ``mode="mixture"``.

Architecture parameters (``arch_parameters()``) and weights (``weight_parameters()``) are separate lists, and
the latency model reads the probabilities (``edge_probs()``, ``op_probs()``) so expected latency is a
differentiable function of them.
"""

from __future__ import annotations

from typing import Callable, Iterator, Literal, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hnanas.nas.genotype import Genotype, make_genotype, prune, validate
from hnanas.nas.network import FeatureCache, NodeCell, node_in_channels
from hnanas.nas.space import SearchSpace
from hnanas.ops import op_info


def edge_gates(space: SearchSpace, inputs: Mapping[str, Sequence[str]]) -> dict[str, torch.Tensor]:
    """Kept inputs per node (a genotype's ``inputs``; absent nodes keep none) -> a 0/1 gate per candidate edge of
    every node, as :class:`TopologySupernet` and the stage-1 latency model take them."""
    return {n.id: torch.tensor([1.0 if c in inputs.get(n.id, ()) else 0.0 for c in n.candidates])
            for n in space.nodes}


class _Supernet(nn.Module):
    space: SearchSpace

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.arch.parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.arch.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("arch."))

    def output_convs(self) -> list[nn.Conv2d]:
        """The layer whose output is the logits (hnanas.nas.models.set_output_prior)."""
        return [self.head]


class TopologySupernet(_Supernet):
    """Stage 1: all candidate edges behind gates, ``space.stage1_op`` at every node."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.cells = nn.ModuleDict({
            n.id: NodeCell(space.stage1_op, node_in_channels(space, n.candidates), n.width, n.blocks)
            for n in space.nodes
        })
        self.head = nn.Conv2d(space.node(space.output).width, 1, kernel_size=1)
        # One logit per candidate edge of every node that has a choice; 0 = keep with probability 1/2.
        self.arch = nn.ParameterDict({n.id: nn.Parameter(torch.zeros(len(n.candidates)))
                                      for n in space.searchable_nodes})

    def edge_probs(self) -> dict[str, torch.Tensor]:
        """Keep-probability of every candidate edge (1 for nodes without a choice)."""
        out = {}
        for n in self.space.nodes:
            out[n.id] = torch.sigmoid(self.arch[n.id]) if n.id in self.arch else torch.ones(1)
        return out

    def sample_gates(self, temperature: float, generator: torch.Generator | None = None,
                     hard: bool = False) -> dict[str, torch.Tensor]:
        """Binary-concrete samples of every gate: ``sigmoid((beta + logistic noise) / T)``; ``hard`` rounds them
        to {0, 1} in the forward pass with straight-through gradients."""
        gates = {}
        for node, beta in self.arch.items():
            u = torch.rand(beta.shape, generator=generator).clamp_(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((beta + torch.log(u) - torch.log1p(-u)) / temperature)
            gates[node] = (soft > 0.5).float() - soft.detach() + soft if hard else soft
        return gates

    def forward(self, x: torch.Tensor, gates: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``gates``: per searchable node, one weight per candidate (default: the keep-probabilities)."""
        gates = gates if gates is not None else {k: torch.sigmoid(v) for k, v in self.arch.items()}
        cache = FeatureCache(self.space, x)
        for n in self.space.nodes:
            parts = [cache.at_level(src, n.level) for src in n.candidates]
            if n.id in gates:
                g = gates[n.id]
                parts = [p * g[i] for i, p in enumerate(parts)]
            h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            cache[n.id] = self.cells[n.id](h)
        return self.head(cache[self.space.output])

    def derive_topology(self, threshold: float = 0.5, op: str | None = None, name: str = "stage1",
                        budget: Callable[[dict[str, torch.Tensor]], float] | None = None,
                        budget_ms: float | None = None) -> Genotype:
        """Keep edges with probability above ``threshold`` (at least the most probable one per node), prune what
        the output cannot reach, and use ``op`` (default: the stage-1 op) everywhere.

        With a latency budget (``budget``: 0/1 gates of every node -> ms, e.g. the stage-1 latency model, and
        ``budget_ms``), the other edges are then added in order of probability, each one kept if the network
        still fits the budget. Near the start of a short search the probabilities sit close to 1/2 and the
        threshold alone decides on noise: a push of the latency term just below 1/2 removes every edge."""
        probs = {k: v.detach() for k, v in self.edge_probs().items()}
        inputs = {}
        for n in self.space.nodes:
            p = probs[n.id]
            kept = [c for c, pi in zip(n.candidates, p.tolist()) if pi > threshold]
            inputs[n.id] = kept or [n.candidates[int(p.argmax())]]
        if budget is not None and budget_ms is not None:
            inputs = self._fill_budget(inputs, probs, budget, budget_ms)
        return make_genotype(self.space, inputs, op or self.space.stage1_op, name=name)

    def _fill_budget(self, inputs: dict[str, list[str]], probs: dict[str, torch.Tensor],
                     budget: Callable[[dict[str, torch.Tensor]], float], budget_ms: float) -> dict[str, list[str]]:
        """Grow from the output: of the edges into nodes the output reaches, add the most probable one that keeps
        the network within ``budget_ms``, until none does. (Edges into unreachable nodes cost nothing until their
        node is connected, so they are not candidates before.) Each edge is priced at most once: adding edges
        only adds cost, so one that does not fit never will."""
        gates = edge_gates(self.space, inputs)
        if float(budget(gates)) > budget_ms:
            return inputs
        rejected: set[tuple[str, int]] = set()
        while True:
            alive = prune(self.space, self._kept(gates))
            order = sorted(((float(probs[n.id][i]), n.id, i) for n in self.space.nodes
                            if n.id in self.arch and n.id in alive for i in range(len(n.candidates))
                            if gates[n.id][i] == 0 and (n.id, i) not in rejected), reverse=True)
            for _, node, i in order:
                gates[node][i] = 1.0
                if float(budget(gates)) <= budget_ms:
                    break
                gates[node][i] = 0.0
                rejected.add((node, i))
            else:
                break
        return self._kept(gates)

    def _kept(self, gates: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        """0/1 gates of every node -> the inputs each node keeps."""
        return {n.id: [c for c, g in zip(n.candidates, gates[n.id].tolist()) if g] for n in self.space.nodes}


class OpSupernet(_Supernet):
    """Stage 2: the kept topology of ``topology``; each node a choice among ``ops`` (default: the space's)."""

    def __init__(self, space: SearchSpace, topology: Genotype, ops: list[str] | None = None,
                 mode: Literal["proxyless", "mixture"] = "proxyless"):
        super().__init__()
        validate(topology, space)
        self.space, self.topology, self.mode = space, topology, mode
        self.node_ops: dict[str, list[str]] = {}
        cells = {}
        for node, ins, _ in topology.nodes:
            spec = space.node(node)
            c_in = node_in_channels(space, ins)
            # Ops that only exist for equal shapes (identity) are offered only where every block keeps the shape.
            names = [o for o in (ops or space.ops) if not (op_info(o).same_shape_only and c_in != spec.width)]
            self.node_ops[node] = names
            cells[node] = nn.ModuleList([NodeCell(o, c_in, spec.width, spec.blocks) for o in names])
        self.cells = nn.ModuleDict(cells)
        self.head = nn.Conv2d(space.node(space.output).width, 1, kernel_size=1)
        self.arch = nn.ParameterDict({n: nn.Parameter(torch.zeros(len(v))) for n, v in self.node_ops.items()})

    def op_probs(self) -> dict[str, torch.Tensor]:
        return {n: F.softmax(a, dim=0) for n, a in self.arch.items()}

    def sample_paths(self, k: int, generator: torch.Generator | None = None,
                     uniform: bool = False) -> dict[str, list[int]]:
        """``k`` distinct op indices per node, drawn by the op probabilities (or uniformly)."""
        paths = {}
        for node, a in self.arch.items():
            p = torch.ones_like(a) if uniform else F.softmax(a.detach(), dim=0)
            k_eff = min(k, p.numel())
            paths[node] = torch.multinomial(p, k_eff, replacement=False, generator=generator).tolist()
        return paths

    def _node_forward(self, node: str, h: torch.Tensor, paths: dict[str, list[int]] | None,
                      generator: torch.Generator | None) -> torch.Tensor:
        cells, alpha = self.cells[node], self.arch[node]
        if self.mode == "mixture" and paths is None:
            w = F.softmax(alpha, dim=0)
            return sum(w[i] * cell(h) for i, cell in enumerate(cells))
        idx = paths[node] if paths is not None else [int(alpha.argmax())]
        if len(idx) == 1:
            return cells[idx[0]](h)
        # Binary gate over the sampled candidates (ProxylessNAS): the forward value is the active path's output,
        # and d(loss)/d(alpha) flows through the straight-through one-hot over the renormalised probabilities.
        p = F.softmax(alpha[idx], dim=0)
        active = int(torch.multinomial(p.detach(), 1, generator=generator))
        gate = F.one_hot(torch.tensor(active), len(idx)).to(p) - p.detach() + p
        return sum(gate[j] * cells[i](h) for j, i in enumerate(idx))

    def forward(self, x: torch.Tensor, paths: dict[str, list[int]] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``paths``: op indices per node (1 = single path, 2+ = binary gate); ``None`` = mixture in
        ``mixture`` mode, else the most probable op."""
        cache = FeatureCache(self.space, x)
        for node, ins, _ in self.topology.nodes:
            h = cache.gather(ins, self.space.node(node).level)
            cache[node] = self._node_forward(node, h, paths, generator)
        return self.head(cache[self.space.output])

    def derive(self, name: str = "searched") -> Genotype:
        """The most probable op of every node on the stage-1 topology."""
        ops = {n: self.node_ops[n][int(a.argmax())] for n, a in self.arch.items()}
        return make_genotype(self.space, self.topology.inputs, ops, name=name)


class OneShotSupernet(OpSupernet):
    """Every network of the space in one set of shared weights (single-path one-shot, as SPOS): the densest
    topology, each node holding every op at its full input width. A genotype runs as a sub-network: its kept
    nodes in order, each on its op's weights, the inputs it drops given as zeros (so every node sees the channel
    layout its weights were trained on). Used to score architectures with inherited weights, not by the search."""

    def __init__(self, space: SearchSpace, ops: list[str] | None = None):
        dense = make_genotype(space, {n.id: n.candidates for n in space.nodes}, space.stage1_op, name="dense")
        super().__init__(space, dense, ops)

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:  # type: ignore[override]
        cache = FeatureCache(self.space, x)
        for node, kept, op in genotype.nodes:
            n = self.space.node(node)
            parts = [cache.at_level(src, n.level) if src in kept else None for src in n.candidates]
            shape = next(p for p in parts if p is not None).shape
            parts = [p if p is not None else x.new_zeros(shape[0], self.space.channels_of(src), *shape[2:])
                     for p, src in zip(parts, n.candidates)]
            h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            cache[node] = self.cells[node][self.node_ops[node].index(op)](h)
        return self.head(cache[self.space.output])
