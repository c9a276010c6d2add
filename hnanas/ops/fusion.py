"""Kernel arithmetic of structural re-parameterisation, and the model-level conversion.

The re-param contract (one method name, no aliases):

- A module that can collapse into fewer convolutions implements ``reparameterize()``: it replaces its
  train-form branches by the fused deploy form, in place. Calling it again is a no-op (idempotent).
- A module that collapses into exactly one convolution also implements ``get_equivalent_kernel_bias()``,
  returning the ``(kernel, bias)`` of that convolution computed from its current parameters with torch ops,
  so gradients flow through it (differentiable). In deploy form it returns the fused conv's tensors.
- Equivalence holds in eval mode: BatchNorm layers fold with their *running* statistics.

:func:`reparameterize_model` converts a whole network by calling ``reparameterize()`` top-down on every module
that has it, so a deployed network contains no BatchNorm layers and no dead branches.

All functions here are pure tensor arithmetic (formulas in ``/work/shared/reference/irst.md``):
BN folding Ŵ = (γ/σ)W, b̂ = β − γμ/σ + (γ/σ)b, σ = √(var+ε); 1×1 kernels are zero-padded to the centre of
the k×k kernel (with padding k//2 both sample the same input pixel, for stride 1 and 2).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def fuse_bn(kernel: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold eval-mode ``bn`` into a preceding conv with ``kernel`` and optional ``bias`` (differentiable)."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    conv_bias = bias if bias is not None else torch.zeros_like(std)
    fused_kernel = kernel * scale.reshape(-1, *([1] * (kernel.dim() - 1)))
    fused_bias = beta + (conv_bias - bn.running_mean) * scale
    return fused_kernel, fused_bias


def pad_kernel(kernel: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Zero-pad a (kh, kw) kernel symmetrically to ``size`` (odd sizes, centre kept in the centre)."""
    th, tw = (size, size) if isinstance(size, int) else size
    kh, kw = kernel.shape[-2:]
    dh, dw = th - kh, tw - kw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {th}x{tw}")
    if dh == 0 and dw == 0:
        return kernel
    return F.pad(kernel, [dw // 2, dw // 2, dh // 2, dh // 2])


def identity_kernel(channels: int, groups: int = 1, size: int = 1, *, dtype=None, device=None) -> torch.Tensor:
    """The k×k kernel of a grouped conv (``channels`` in = out) that copies its input: 1 at the centre tap of
    output channel i, input channel i within its group."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, size, size, dtype=dtype, device=device)
    centre = size // 2
    for i in range(channels):
        kernel[i, i % per_group, centre, centre] = 1.0
    return kernel


def central_difference_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel of a central-difference conv with θ = 1: y = conv(x, W) − x·ΣW, i.e. W with its centre
    tap reduced by the sum over the kernel window (per output/input channel pair); differentiable."""
    kh, kw = kernel.shape[-2:]
    total = kernel.sum(dim=(2, 3), keepdim=True)
    return kernel - pad_kernel(total, (kh, kw))


def has_batchnorm(module: nn.Module) -> bool:
    """True when any BatchNorm layer is left in ``module`` (a deployed network has none)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def reparameterize_tree(module: nn.Module) -> None:
    """Call ``reparameterize()`` on ``module`` if it has one, else on each child (recursively), top-down.

    A module that re-parameterises handles its own children, so the walk does not descend into it."""
    fn = getattr(module, "reparameterize", None)
    if callable(fn):
        fn()
        return
    for child in list(module.children()):
        reparameterize_tree(child)


def reparameterize_children(module: nn.Module) -> None:
    """Re-parameterise every child of ``module`` (used by composite modules in their own ``reparameterize``)."""
    for child in list(module.children()):
        reparameterize_tree(child)


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Convert ``model`` to its deploy form: every module with ``reparameterize()`` is fused.

    With ``inplace=False`` (default) the model is deep-copied first and the original stays untouched. The
    training flag is kept; the deploy form computes what the train form computes in eval mode."""
    target = model if inplace else copy.deepcopy(model)
    with torch.no_grad():
        reparameterize_tree(target)
    return target
