"""The optimizer of architecture parameters.

Adam normalises each coordinate by its own gradient history, so under a consistent gradient every coordinate
moves by about the learning rate per step whatever the gradient's size. For architecture parameters that loses
what the latency term says: an edge that keeps a whole expensive node alive and one that adds a cheap resample
are pushed down equally fast, and among cheaper-than-average ops the cheapest gains no faster than the rest, so
under a strong latency weight the choice ends up among near-ties decided by noise.

:class:`NodeAdam` is Adam with one second-moment scalar per parameter tensor (one tensor = one node's edges or
ops): steps stay normalised across nodes, but within a node each coordinate moves in proportion to its gradient.
"""

from __future__ import annotations

import torch


class NodeAdam(torch.optim.Optimizer):
    """Adam with a per-tensor (not per-coordinate) second moment; ``betas=(0, 0.999)`` by default (HNA-NAS)."""

    def __init__(self, params, lr: float = 5e-3, betas: tuple[float, float] = (0.0, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros((), dtype=p.dtype)
                state["step"] += 1
                t = state["step"]
                state["m"].mul_(b1).add_(g, alpha=1 - b1)
                state["v"].mul_(b2).add_((g * g).mean(), alpha=1 - b2)
                m_hat = state["m"] / (1 - b1 ** t) if b1 > 0 else state["m"]
                v_hat = state["v"] / (1 - b2 ** t)
                p.add_(m_hat / (v_hat.sqrt() + group["eps"]), alpha=-group["lr"])
        return loss
