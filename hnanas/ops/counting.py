"""Parameters and multiply-accumulates (MACs) of any module at a given input shape.

MACs count the multiply-accumulates of convolutions (``conv1d/2d/3d``, module or functional), linear layers and
matrix products — the convention of the field (BN, activations, additions and resizes are not counted), and
the same operations ``torch.utils.flop_counter.FlopCounterMode`` counts (its FLOPs = 2·MACs). Functional calls
are counted too (a central-difference conv's kernel-sum conv, ECBSR's mask convs), because counting happens at
the ``torch`` function level rather than with hooks on ``nn.Conv2d``.

The forward pass runs on a deep copy placed on the ``meta`` device (shapes only, no arithmetic, no memory), so
counting a 256-channel op at 256² is instant; a module that cannot run on ``meta`` (data-dependent Python
control flow) is counted with a real forward pass of zeros instead. The module itself is never modified.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from hnanas.errors import HnanasError

_CONVS = {F.conv1d, F.conv2d, F.conv3d}
_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm,
            torch.bmm, torch.Tensor.bmm}
_ADDMMS = {torch.addmm, torch.Tensor.addmm, torch.baddbmm, torch.Tensor.baddbmm}


class _MacCounter(TorchFunctionMode):
    """Adds up the MACs of every counted torch function called while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _CONVS:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            self.macs += out.numel() * math.prod(weight.shape[1:])
        elif func is F.linear:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            self.macs += out.numel() * weight.shape[-1]
        elif func in _MATMULS:  # (output elements) x (contracted length)
            self.macs += out.numel() * args[0].shape[-1]
        elif func in _ADDMMS:
            self.macs += out.numel() * args[1].shape[-1]
        return out


def _full_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise HnanasError(f"input shape must be (C, H, W) or (N, C, H, W) positive integers, got {input_shape!r}")
    return shape


def _count(module: nn.Module, shape: tuple[int, ...], device: torch.device | str | None) -> int:
    copy_ = copy.deepcopy(module).eval()
    if device is not None:
        copy_ = copy_.to(device)
    else:
        device = next((t.device for t in copy_.parameters()), torch.device("cpu"))
    param = next(copy_.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(shape, device=device, dtype=dtype)
    counter = _MacCounter()
    with torch.no_grad(), counter:
        copy_(x)
    return counter.macs


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``module`` (in eval mode) on an input of ``input_shape``:
    ``(C, H, W)`` means batch 1; ``(N, C, H, W)`` counts the whole batch."""
    shape = _full_shape(input_shape)
    try:
        return _count(module, shape, "meta")
    except (NotImplementedError, RuntimeError):  # data-dependent code: run it for real
        return _count(module, shape, None)


def count_params(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BN running statistics are not parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
