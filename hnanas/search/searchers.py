"""The architecture side of each stage: a small class with its own optimizer and one public ``step()``.

Weight steps are the shared training loop's; a searcher supplies how the supernet is run during them
(``weight_forward``: random gates / paths) and, every ``arch_every`` weight steps after the warm-up, one
architecture step on a validation batch: segmentation loss + latency term, gradients into the architecture
parameters only (first-order, as DARTS-1st / ProxylessNAS / HNA-NAS).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from hnanas.latency.expected import EdgeLatencyModel, OpLatencyModel
from hnanas.search.config import SearchConfig, StageConfig
from hnanas.search.distributed import Dist, average_gradients
from hnanas.search.objective import search_loss
from hnanas.search.optim import NodeAdam
from hnanas.search.supernet import OpSupernet, TopologySupernet


class Searcher:
    """Shared logic: the architecture optimizer, the target, the step and the bookkeeping."""

    stage: int = 0
    # the per-node distributions: independent Bernoulli gates over a node's candidate inputs (stage 1), or one
    # categorical over its ops (stage 2)
    distribution: Literal["bernoulli", "categorical"] = "categorical"

    def __init__(self, supernet, latency, cfg: SearchConfig, scfg: StageConfig, loss_fn, generator, d: Dist):
        self.supernet, self.latency, self.cfg, self.scfg = supernet, latency, cfg, scfg
        self.loss_fn, self.generator, self.d = loss_fn, generator, d
        self.optimizer = NodeAdam(supernet.arch_parameters(), lr=scfg.arch_lr)
        self.target_ms: float | None = cfg.target_latency_ms
        self.epoch = 0
        self.arch_losses: list[float] = []

    # ------------------------------------------------------------------------------------- to override
    def probs(self) -> dict[str, torch.Tensor]:
        """The distribution the latency model takes."""
        raise NotImplementedError

    def choices(self) -> dict[str, torch.Tensor]:
        """The per-node distributions the search actually chooses from (for logs and snapshots)."""
        return self.probs()

    def arch_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight_forward(self, model, x: torch.Tensor):
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ shared
    @property
    def searching(self) -> bool:
        """Architecture steps run from the end of the warm-up on."""
        return self.epoch >= self.scfg.warmup_epochs

    def expected_latency(self) -> torch.Tensor:
        return self.latency(self.probs())

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> float:
        """One architecture step on a validation batch; returns its total loss."""
        if self.target_ms is None:  # T defaults to the expected latency when the search starts
            self.target_ms = float(self.expected_latency().detach())
        self.supernet.zero_grad(set_to_none=True)
        seg = self.loss_fn(self.arch_forward(images), masks)
        total = search_loss(seg, self.expected_latency(), self.target_ms, kind=self.cfg.latency_loss,
                            weight=self.cfg.latency_weight, alpha=self.cfg.mul_log_alpha, beta=self.cfg.mul_log_beta)
        total.backward()
        arch = self.supernet.arch_parameters()
        average_gradients(arch, self.d)
        self.optimizer.step()
        for p in self.supernet.weight_parameters():  # architecture steps never move the weights
            p.grad = None
        self.arch_losses.append(float(total.detach()))
        return float(total.detach())

    def entropy(self) -> float:
        """Mean entropy (nats) of the per-node architecture distributions (collapse shows as a quick drop)."""
        choices = self.choices()
        return float(sum(_entropy(p, self.distribution) for p in choices.values()) / max(len(choices), 1))

    def labels(self, node: str) -> list[str]:
        raise NotImplementedError

    def snapshot(self) -> dict:
        """node -> {candidate input or op name: probability}."""
        return {node: dict(zip(self.labels(node), (round(float(v), 5) for v in p.detach())))
                for node, p in self.choices().items()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "target_ms": self.target_ms, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.target_ms, self.epoch = state["target_ms"], state["epoch"]


def _entropy(p: torch.Tensor, distribution: str) -> float:
    """Entropy in nats of one node's distribution: a categorical's, or the mean binary entropy of independent
    Bernoulli gates; 0 for a node with one choice or undefined (NaN) probabilities."""
    p = p.detach().clamp(1e-12, 1.0)
    if p.numel() == 1 or math.isnan(float(p.sum())):
        return 0.0
    if distribution == "categorical":
        return float(-(p * p.log()).sum())
    q = 1 - p
    return float(-(p * p.log() + q.clamp_min(1e-12) * q.clamp_min(1e-12).log()).mean())


class EdgeSearcher(Searcher):
    """Stage 1: which inputs each node keeps (independent gates, binary-concrete relaxation)."""

    stage = 1
    distribution = "bernoulli"

    def __init__(self, supernet: TopologySupernet, latency: EdgeLatencyModel, *args, **kwargs):
        super().__init__(supernet, latency, *args, **kwargs)

    def temperature(self) -> float:
        """Exponential annealing from tau_start (first search epoch) to tau_end (last epoch)."""
        s = self.scfg
        span = max(s.epochs - s.warmup_epochs - 1, 1)
        t = min(max(self.epoch - s.warmup_epochs, 0) / span, 1.0)
        return s.tau_start * (s.tau_end / s.tau_start) ** t

    def probs(self) -> dict[str, torch.Tensor]:
        return self.supernet.edge_probs()

    def choices(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.probs().items() if k in self.supernet.arch}

    def labels(self, node: str) -> list[str]:
        return list(self.supernet.space.node(node).candidates)

    def weight_forward(self, model, x):
        if not self.searching:  # warm-up: every edge on with probability 1/2, whatever beta says
            gates = {k: (torch.rand(v.shape, generator=self.generator) < 0.5).float()
                     for k, v in self.supernet.arch.items()}
        else:
            gates = {k: g.detach() for k, g in self.supernet.sample_gates(self.temperature(), self.generator).items()}
        return model(x, gates)

    def arch_forward(self, x):
        return self.supernet(x, self.supernet.sample_gates(self.temperature(), self.generator))

    def derive(self, name: str = "stage1"):
        """Edges above the threshold; under a ``hinge`` budget, filled with the next most probable edges that fit
        it (priced as the latency term prices stage 1)."""
        budget_ms = self.cfg.latency_budget_ms
        with torch.no_grad():
            return self.supernet.derive_topology(self.cfg.edge_threshold, name=name,
                                                 budget=self.latency if budget_ms is not None else None,
                                                 budget_ms=budget_ms)


class OpSearcher(Searcher):
    """Stage 2: one op per node of the stage-1 topology."""

    stage = 2

    def __init__(self, supernet: OpSupernet, latency: OpLatencyModel, *args, **kwargs):
        super().__init__(supernet, latency, *args, **kwargs)

    def probs(self) -> dict[str, torch.Tensor]:
        return self.supernet.op_probs()

    def labels(self, node: str) -> list[str]:
        return list(self.supernet.node_ops[node])

    def weight_forward(self, model, x):
        if self.scfg.mode == "mixture":
            return model(x)
        return model(x, self.supernet.sample_paths(1, self.generator, uniform=not self.searching))

    def arch_forward(self, x):
        if self.scfg.mode == "mixture":
            return self.supernet(x)
        return self.supernet(x, self.supernet.sample_paths(self.scfg.paths, self.generator), self.generator)

    def derive(self, name: str = "searched"):
        return self.supernet.derive(name=name)


