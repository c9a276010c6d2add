"""The search objective: segmentation loss combined with expected latency.

- ``add-linear`` (default, HNA-NAS / ProxylessNAS ``add#linear``): ``seg + lambda * (E - T) / T``.
- ``mul-log`` (ProxylessNAS ``mul#log``): ``seg * alpha * (log E / log T) ** beta``, with latencies in ms
  (needs T > 1 ms).
- ``hinge``: ``seg + lambda * max(0, E - T) / T``: a latency budget. Below T only accuracy counts; above it
  each 1 % over T costs lambda / 100. For "the most accurate network within T ms" (needs an explicit T).

``lambda = 0`` switches the latency term off in every form. In ``add-linear`` T only scales the term (its
gradient is lambda / T whatever E is), so a target moves the search only through that scale; ``hinge`` is the
form where T is a budget.
"""

from __future__ import annotations

import math

import torch

from hnanas.errors import HnanasError


def search_loss(seg: torch.Tensor, expected_ms: torch.Tensor, target_ms: float, *, kind: str = "add-linear",
                weight: float = 0.1, alpha: float = 0.2, beta: float = 0.3) -> torch.Tensor:
    """Total architecture loss for one step (differentiable in ``seg`` and ``expected_ms``)."""
    if weight == 0:
        return seg
    if kind == "add-linear":
        return seg + weight * (expected_ms - target_ms) / target_ms
    if kind == "mul-log":
        if target_ms <= 1.0:
            raise HnanasError(f"mul-log needs a target latency above 1 ms (got {target_ms:.3g} ms); use add-linear")
        ratio = torch.log(expected_ms.clamp_min(1.0 + 1e-6)) / math.log(target_ms)
        return seg * alpha * ratio.clamp_min(1e-6) ** beta
    if kind == "hinge":
        return seg + weight * torch.relu(expected_ms - target_ms) / target_ms
    raise HnanasError(f"unknown latency loss {kind!r} (add-linear | mul-log | hinge)")
