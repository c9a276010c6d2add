"""Multi-process search with the standard launcher: ``torchrun --nproc_per_node N -m hnanas search ...``.

Every process holds the whole supernet and samples the same gates/paths (same seeded generator), sees its own
shard of each batch, and averages gradients (weights and architecture) before each optimizer step; BN buffers
are broadcast from rank 0 at epoch ends. gloo on CPU, nccl on GPUs. Without torchrun nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes (env RANK/WORLD_SIZE/...), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(params, d: Dist) -> None:
    if not d.active:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= d.world


class AveragingOptimizer:
    """An optimizer whose ``step`` first averages its parameters' gradients over the processes."""

    def __init__(self, optimizer: torch.optim.Optimizer, d: Dist):
        self.optimizer, self.d = optimizer, d
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def step(self, closure=None):
        average_gradients(self.params, self.d)
        return self.optimizer.step(closure)

    def __getattr__(self, name):  # zero_grad, state_dict, param_groups, ...
        return getattr(self.optimizer, name)


def broadcast_buffers(module: torch.nn.Module, d: Dist) -> None:
    if d.active:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def all_equal(value: float, d: Dist) -> bool:
    """True when every process has the same ``value`` (a check that processes agree on the architecture)."""
    if not d.active:
        return True
    t = torch.tensor([value], dtype=torch.float64)
    lo, hi = t.clone(), t.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return bool(lo.item() == hi.item())
