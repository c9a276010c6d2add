"""Multi-branch blocks that fuse into one convolution, and the branches they are made of.

A :class:`RepBlock` sums parallel branches (train form) and applies an activation; its deploy form is one
k×k conv with bias followed by the same activation. Each branch implements ``get_equivalent_kernel_bias()``
returning a kernel of odd size ≤ k (centre-aligned; the block zero-pads it to k×k) and a bias, computed from
its parameters with torch ops so the fused kernel is differentiable. All branches share the block's stride and
"same" padding, so with stride 2 a 1×1 or identity branch samples the 3×3 kernel's centre pixel.

Branches: :class:`ConvBN` (from ``blocks``), :class:`CDCConvBN` (central-difference conv, θ = 1),
:class:`BNIdentity` (RepVGG's BN on the input), :class:`IdentityBranch` (plain skip), :class:`PlainConv`
(conv with bias, no BN), :class:`Conv1x1Conv` (ECBSR 1×1 → k×k) and :class:`Conv1x1Mask` (ECBSR 1×1 → scaled
fixed Sobel/Laplacian mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hnanas.ops.fusion import central_difference_kernel, fuse_bn, identity_kernel, pad_kernel


class RepBlock(nn.Module):
    """``act(Σ branches(x))``; deploy form ``act(fused(x))`` with ``fused`` one k×k conv (``groups``-grouped).

    ``branches`` is only used in train form; in deploy form (built with ``deploy=True`` or after
    ``reparameterize()``) the block holds ``fused`` and ``act`` and nothing else."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, branches: dict[str, nn.Module] | None,
                 *, groups: int = 1, act: bool = True, deploy: bool = False):
        super().__init__()
        self.c_in, self.c_out, self.kernel_size, self.stride, self.groups = c_in, c_out, kernel_size, stride, groups
        self.deploy = deploy
        self.act = nn.ReLU() if act else nn.Identity()  # registered first, so both forms list modules alike
        if deploy:
            self.fused = self._new_fused_conv()
        else:
            if not branches:
                raise ValueError("a train-form RepBlock needs at least one branch")
            self.branches = nn.ModuleDict(branches)

    def _new_fused_conv(self, **factory) -> nn.Conv2d:
        return nn.Conv2d(self.c_in, self.c_out, self.kernel_size, self.stride, self.kernel_size // 2,
                         groups=self.groups, bias=True, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.act(self.fused(x))
        branches = iter(self.branches.values())
        y = next(branches)(x)
        for branch in branches:
            y = y + branch(x)
        return self.act(y)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(kernel, bias) of the one conv equal to the branch sum in eval mode (differentiable)."""
        if self.deploy:
            return self.fused.weight, self.fused.bias
        kernel = bias = None
        for branch in self.branches.values():
            k, b = branch.get_equivalent_kernel_bias()
            k = pad_kernel(k, self.kernel_size)
            kernel = k if kernel is None else kernel + k
            bias = b if bias is None else bias + b
        return kernel, bias

    def reparameterize(self) -> None:
        """Replace the branches by the fused conv (idempotent)."""
        if self.deploy:
            return
        with torch.no_grad():
            kernel, bias = self.get_equivalent_kernel_bias()
        fused = self._new_fused_conv(device=kernel.device, dtype=kernel.dtype)
        with torch.no_grad():
            fused.weight.copy_(kernel)
            fused.bias.copy_(bias)
        self.fused = fused
        del self.branches
        self.deploy = True


class PlainConv(nn.Conv2d):
    """A conv with bias and no BN ("same" padding); its own equivalent kernel."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, self.bias


class CDCConvBN(nn.Module):
    """Central-difference conv (θ = 1) then BN: ``BN(conv(x, W) − x·ΣW)``; equals a conv with kernel
    :func:`central_difference_kernel` (W), which the fusion uses."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        centre = F.conv2d(x, w.sum(dim=(2, 3), keepdim=True), stride=self.conv.stride)
        return self.bn(self.conv(x) - centre)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        return fuse_bn(central_difference_kernel(self.conv.weight), None, self.bn)


class IdentityBranch(nn.Module):
    """The skip connection ``x`` (only valid where c_in == c_out and stride 1)."""

    def __init__(self, channels: int, groups: int = 1):
        super().__init__()
        self.register_buffer("kernel", identity_kernel(channels, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kernel, self.kernel.new_zeros(self.kernel.shape[0])


class BNIdentity(nn.Module):
    """RepVGG's identity branch: ``BN(x)`` (only valid where c_in == c_out and stride 1)."""

    def __init__(self, channels: int, groups: int = 1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.register_buffer("kernel", identity_kernel(channels, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        return fuse_bn(self.kernel, None, self.bn)


def pad_with_bias(y: torch.Tensor, bias: torch.Tensor, width: int) -> torch.Tensor:
    """Pad ``y`` by ``width`` pixels on each side with the per-channel value ``bias`` (exactly, not zero).

    A 1×1 conv with bias applied to a zero-padded input yields ``bias`` on the border, so padding its output
    with ``bias`` is what makes a 1×1 → k×k sequence equal to one k×k conv on the zero-padded input."""
    pad = [width] * 4
    border = 1.0 - F.pad(y.new_ones((1, 1) + tuple(y.shape[2:])), pad)
    return F.pad(y, pad) + bias.reshape(1, -1, 1, 1) * border


class Conv1x1Conv(nn.Module):
    """ECBSR's 1×1 → k×k branch: 1×1 conv (bias) to ``mid`` channels, output padded with its bias, k×k conv
    (bias, the block's stride, no padding). Fused kernel K = Σ_m W2[:, m] · W1[m, :], bias W2·b1 + b2."""

    def __init__(self, c_in: int, c_out: int, mid: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.expand = nn.Conv2d(c_in, mid, 1, bias=True)
        self.conv = nn.Conv2d(mid, c_out, kernel_size, stride, 0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pad_with_bias(self.expand(x), self.expand.bias, self.conv.kernel_size[0] // 2)
        return self.conv(y)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        w1 = self.expand.weight[:, :, 0, 0]  # (mid, c_in)
        kernel = torch.einsum("omhw,mi->oihw", self.conv.weight, w1)
        bias = torch.einsum("omhw,m->o", self.conv.weight, self.expand.bias) + self.conv.bias
        return kernel, bias


#: ECBSR's fixed 3×3 masks (scaled per channel by a learnable factor).
MASKS = {
    "sobel_x": [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
    "sobel_y": [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
    "laplacian": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
}


class Conv1x1Mask(nn.Module):
    """ECBSR's 1×1 → scaled mask branch: 1×1 conv (bias) to c_out channels, padded with its bias, then a
    depthwise 3×3 conv with kernel ``scale[c]·mask`` and bias ``bias[c]`` (both learnable, ECBSR's 1e-3 init)."""

    def __init__(self, c_in: int, c_out: int, mask: str, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.expand = nn.Conv2d(c_in, c_out, 1, bias=True)
        self.scale = nn.Parameter(torch.randn(c_out, 1, 1, 1) * 1e-3)
        self.bias = nn.Parameter(torch.randn(c_out) * 1e-3)
        template = torch.tensor(MASKS[mask]).reshape(1, 1, 3, 3)
        self.register_buffer("mask", template.repeat(c_out, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pad_with_bias(self.expand(x), self.expand.bias, 1)
        return F.conv2d(y, self.scale * self.mask, self.bias, stride=self.stride, groups=y.shape[1])

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        depthwise = self.scale * self.mask  # (c_out, 1, 3, 3)
        kernel = depthwise * self.expand.weight  # (c_out, 1, 3, 3) * (c_out, c_in, 1, 1) -> (c_out, c_in, 3, 3)
        bias = depthwise.sum(dim=(1, 2, 3)) * self.expand.bias + self.bias
        return kernel, bias
