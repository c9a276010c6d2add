"""The re-parameterisable candidate ops: multi-branch in training, plain convs + ReLU after ``reparameterize()``.

- ``ecb`` — RepISD-Net's Edge Compensation Block: ReLU(BN(3×3) + BN(CDC 3×3) + BN(1×1 with bias) + BN(x)), the
  identity BN only where c_in == c_out and stride 1. The 1×1 conv's own bias is kept in the fusion (RepISD's
  converter drops it).
- ``ecbsr`` — ECBSR's block: ReLU(3×3 + (1×1 → 3×3) + (1×1 → s·Sobel-x) + (1×1 → s·Sobel-y) +
  (1×1 → s·Laplacian) + x), all convs with bias and no BN, the skip only where shapes allow. The 1×1 → 3×3
  branch has ECBSR's depth multiplier 2 (mid = 2·c_out). 1×1 outputs are padded with their bias, so the merge
  is exact at the border too. ReLU instead of ECBSR's PReLU, like every op here.
- ``repconv`` — RepVGG: ReLU(BN(3×3) + BN(1×1) + BN(x)), the identity BN only where shapes allow.
- ``cdc`` — central-difference conv (θ = 1), BN, ReLU.
- ``repdw`` — MobileOne-style depthwise separable: ReLU(BN(dw 3×3) + BN(dw 1×1) + BN(x)) then
  ReLU(BN(1×1) + BN(x)); identity branches only where shapes allow (stride 1 for the depthwise stage,
  c_in == c_out for the pointwise one). Deploy form: dw 3×3 conv + ReLU + 1×1 conv + ReLU.

The first four fuse into one 3×3 conv (family ``rep3x3``); their deploy latency should equal a plain 3×3 conv's.
"""

from __future__ import annotations

import torch
from torch import nn

from hnanas.ops.blocks import ConvBN
from hnanas.ops.fusion import reparameterize_children
from hnanas.ops.registry import register_op
from hnanas.ops.repblock import BNIdentity, CDCConvBN, Conv1x1Conv, Conv1x1Mask, IdentityBranch, PlainConv, RepBlock

ECBSR_DEPTH_MULTIPLIER = 2


def _same_shape(c_in: int, c_out: int, stride: int) -> bool:
    return c_in == c_out and stride == 1


@register_op("ecb", family="rep3x3", reparameterizable=True,
             description="RepISD edge compensation: BN(3x3)+BN(CDC)+BN(1x1+b)+BN(x), ReLU -> one 3x3")
def build_ecb(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    branches = None
    if not deploy:
        branches = {
            "conv3x3": ConvBN(c_in, c_out, 3, stride),
            "cdc": CDCConvBN(c_in, c_out, 3, stride),
            "conv1x1": ConvBN(c_in, c_out, 1, stride, conv_bias=True),
        }
        if _same_shape(c_in, c_out, stride):
            branches["identity"] = BNIdentity(c_out)
    return RepBlock(c_in, c_out, 3, stride, branches, deploy=deploy)


@register_op("ecbsr", family="rep3x3", reparameterizable=True,
             description="ECBSR: 3x3 + 1x1>3x3 + 1x1>Sobel-x/y, Laplacian + x, ReLU -> one 3x3")
def build_ecbsr(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    branches = None
    if not deploy:
        branches = {
            "conv3x3": PlainConv(c_in, c_out, 3, stride),
            "conv1x1_3x3": Conv1x1Conv(c_in, c_out, ECBSR_DEPTH_MULTIPLIER * c_out, 3, stride),
            "sobel_x": Conv1x1Mask(c_in, c_out, "sobel_x", stride),
            "sobel_y": Conv1x1Mask(c_in, c_out, "sobel_y", stride),
            "laplacian": Conv1x1Mask(c_in, c_out, "laplacian", stride),
        }
        if _same_shape(c_in, c_out, stride):
            branches["identity"] = IdentityBranch(c_out)
    return RepBlock(c_in, c_out, 3, stride, branches, deploy=deploy)


@register_op("repconv", family="rep3x3", reparameterizable=True,
             description="RepVGG: BN(3x3)+BN(1x1)+BN(x), ReLU -> one 3x3")
def build_repconv(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    branches = None
    if not deploy:
        branches = {"conv3x3": ConvBN(c_in, c_out, 3, stride), "conv1x1": ConvBN(c_in, c_out, 1, stride)}
        if _same_shape(c_in, c_out, stride):
            branches["identity"] = BNIdentity(c_out)
    return RepBlock(c_in, c_out, 3, stride, branches, deploy=deploy)


@register_op("cdc", family="rep3x3", reparameterizable=True,
             description="central-difference 3x3 conv (theta=1), BN, ReLU -> one 3x3")
def build_cdc(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    branches = None if deploy else {"cdc": CDCConvBN(c_in, c_out, 3, stride)}
    return RepBlock(c_in, c_out, 3, stride, branches, deploy=deploy)


class RepDepthwiseSeparable(nn.Module):
    """MobileOne-style block: a re-parameterisable depthwise 3×3 stage then a re-parameterisable 1×1 stage."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, deploy: bool = False):
        super().__init__()
        dw_branches = pw_branches = None
        if not deploy:
            dw_branches = {"conv3x3": ConvBN(c_in, c_in, 3, stride, groups=c_in),
                           "conv1x1": ConvBN(c_in, c_in, 1, stride, groups=c_in)}
            if stride == 1:
                dw_branches["identity"] = BNIdentity(c_in, groups=c_in)
            pw_branches = {"conv1x1": ConvBN(c_in, c_out, 1)}
            if c_in == c_out:
                pw_branches["identity"] = BNIdentity(c_out)
        self.depthwise = RepBlock(c_in, c_in, 3, stride, dw_branches, groups=c_in, deploy=deploy)
        self.pointwise = RepBlock(c_in, c_out, 1, 1, pw_branches, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

    def get_equivalent_kernel_bias(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Two fused convs, so two pairs: ((dw kernel, dw bias), (pw kernel, pw bias)), in execution order."""
        return self.depthwise.get_equivalent_kernel_bias(), self.pointwise.get_equivalent_kernel_bias()

    def reparameterize(self) -> None:
        """Fuse both stages (idempotent)."""
        with torch.no_grad():
            reparameterize_children(self)


@register_op("repdw", family="rep-dw", reparameterizable=True,
             description="MobileOne-style: rep dw3x3 (3x3/1x1/BN x), ReLU, rep 1x1 (1x1/BN x), ReLU")
def build_repdw(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    return RepDepthwiseSeparable(c_in, c_out, stride, deploy=deploy)
