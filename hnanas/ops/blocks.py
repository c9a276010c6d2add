"""Building blocks shared by the ops: the Conv-BN pair that folds on ``reparameterize()``, and the residual
wrapper the plain ops are made of.

Every block can be built directly in deploy form (``deploy=True``); a train-form block after
``reparameterize()`` has exactly the same structure (module tree, parameter names and shapes) as one built
in deploy form.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from hnanas.ops.fusion import fuse_bn, reparameterize_children


def conv_like(conv: nn.Conv2d, kernel: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A new ``nn.Conv2d`` with ``conv``'s geometry (stride, padding, dilation, groups) and bias, holding
    ``kernel`` and ``bias`` (copied, detached)."""
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True, device=kernel.device, dtype=kernel.dtype)
    with torch.no_grad():
        new.weight.copy_(kernel)
        new.bias.copy_(bias)
    return new


class ConvBN(nn.Module):
    """A conv followed by BatchNorm; deploy form: the same conv with the BN folded into its weight and bias.

    ``padding`` defaults to "same" for odd kernels (``dilation·(k−1)/2``), so with stride 2 every kernel size
    samples the same centre pixel. ``conv_bias`` keeps a bias on the train-form conv (ECB's 1×1 branch);
    the fusion keeps it too."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 *, dilation: int = 1, groups: int = 1, conv_bias: bool = False, deploy: bool = False):
        super().__init__()
        kh, kw = _pair(kernel_size)
        padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self.deploy = deploy
        self.conv = nn.Conv2d(c_in, c_out, (kh, kw), _pair(stride), padding, dilation, groups,
                              bias=deploy or conv_bias)
        self.bn = None if deploy else nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if self.bn is None else self.bn(y)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(kernel, bias) of the single conv this block equals in eval mode (differentiable)."""
        if self.bn is None:
            bias = self.conv.bias if self.conv.bias is not None else self.conv.weight.new_zeros(self.conv.out_channels)
            return self.conv.weight, bias
        return fuse_bn(self.conv.weight, self.conv.bias, self.bn)

    def reparameterize(self) -> None:
        """Fold the BN into the conv (idempotent)."""
        if self.deploy:
            return
        with torch.no_grad():
            kernel, bias = self.get_equivalent_kernel_bias()
        self.conv = conv_like(self.conv, kernel, bias)
        del self.bn
        self.bn = None
        self.deploy = True


class FoldableOp(nn.Module):
    """Base of composite ops: ``reparameterize()`` folds every re-parameterisable child (idempotent)."""

    def reparameterize(self) -> None:
        with torch.no_grad():
            reparameterize_children(self)


class ConvBNAct(FoldableOp):
    """conv-BN-ReLU (deploy: conv with bias, ReLU); used for the dilated 3×3 op."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, *, dilation: int = 1,
                 groups: int = 1, deploy: bool = False):
        super().__init__()
        self.conv = ConvBN(c_in, c_out, kernel_size, stride, dilation=dilation, groups=groups, deploy=deploy)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class SeparableConvBN(FoldableOp):
    """A spatially separable k×k conv: k×1 conv (c_in → c_out, stride along H) then 1×k conv-BN (c_out → c_out,
    stride along W). Only the second conv carries the BN, so the deploy form is k×1 conv → 1×k conv with bias."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, *, deploy: bool = False):
        super().__init__()
        k = kernel_size
        self.vertical = nn.Conv2d(c_in, c_out, (k, 1), (stride, 1), (k // 2, 0), bias=False)
        self.horizontal = ConvBN(c_out, c_out, (1, k), (1, stride), deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.horizontal(self.vertical(x))


class ResidualOp(FoldableOp):
    """``act(main(x) + shortcut(x))``: ``shortcut`` is ``nn.Identity``, a 1×1 ConvBN (with the op's stride), or
    None (no residual); ``act`` is ReLU or None (linear output, as MBConv)."""

    def __init__(self, main: nn.Module, shortcut: nn.Module | None, act: nn.Module | None):
        super().__init__()
        self.main = main
        self.shortcut = shortcut
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.main(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return y if self.act is None else self.act(y)


class IdentityOp(FoldableOp):
    """The identity op (``same_shape_only``): returns its input; nothing to fold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def residual_shortcut(c_in: int, c_out: int, stride: int, *, deploy: bool) -> nn.Module:
    """Identity when the shapes allow it (c_in == c_out, stride 1), else a 1×1 ConvBN with the stride."""
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return ConvBN(c_in, c_out, 1, stride, deploy=deploy)
