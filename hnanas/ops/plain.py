"""The plain candidate ops: HNA-NAS's twelve (ResConv, GroupConv, spatially separable, MBConv), the dilated 3×3
and the identity. Their deploy form only folds each Conv-BN pair (no multi-branch fusion).

Choices where the HNA-NAS description is silent:

- **Residual form** (res, group, spa): ``ReLU(main(x) + shortcut(x))`` with ``main`` = conv-BN-ReLU-conv-BN; the
  first conv maps c_in → c_out with the op's stride, the second c_out → c_out. The shortcut is the identity when
  c_in == c_out and stride 1, else a 1×1 conv-BN with the stride.
- **Groups** (group2/4/8): a grouped conv needs groups dividing both its channel counts, so the first conv uses
  ``gcd(g, c_in, c_out)`` groups and the second ``gcd(g, c_out)``. With the supernet's power-of-two widths and
  concats of them this is g itself; odd channel counts fall back towards a dense conv (1 group), never an error.
- **Spatially separable** (spa k): each conv of the residual form is a k×1 conv (stride along H) followed by a
  1×k conv-BN (stride along W).
- **MBConv** (mb k e): 1×1 expand-BN-ReLU, k×k depthwise-BN-ReLU (with the stride), 1×1 project-BN (linear),
  plus the identity when c_in == c_out and stride 1; no activation after the add (MobileNetV2). The hidden width
  is ``e·c_out``, not ``e·c_in``: a node's first op often reads a concat of many inputs (e.g. 248 channels at
  256²), where ``e·c_in`` would be far wider than the op's own output and dominate the network's cost.
  ReLU rather than ReLU6, like every other op here.
- **dil3**: one 3×3 conv with dilation 2 (5×5 receptive field), BN, ReLU.
"""

from __future__ import annotations

import math

from torch import nn

from hnanas.ops.blocks import ConvBN, ConvBNAct, IdentityOp, ResidualOp, SeparableConvBN, residual_shortcut
from hnanas.ops.registry import register_op


def group_count(groups: int, *channels: int) -> int:
    """Groups actually used for a grouped conv between ``channels``: ``gcd(groups, *channels)``."""
    return math.gcd(groups, *channels)


def residual_conv(c_in: int, c_out: int, stride: int, kernel_size: int, groups: int = 1, *,
                  deploy: bool = False) -> ResidualOp:
    """conv-BN-ReLU-conv-BN + shortcut, ReLU after the add (ResConv k / GroupConv g)."""
    main = nn.Sequential(
        ConvBN(c_in, c_out, kernel_size, stride, groups=group_count(groups, c_in, c_out), deploy=deploy),
        nn.ReLU(),
        ConvBN(c_out, c_out, kernel_size, 1, groups=group_count(groups, c_out), deploy=deploy),
    )
    return ResidualOp(main, residual_shortcut(c_in, c_out, stride, deploy=deploy), nn.ReLU())


def residual_separable(c_in: int, c_out: int, stride: int, kernel_size: int, *, deploy: bool = False) -> ResidualOp:
    """The residual form with each k×k conv replaced by k×1 then 1×k (spatially separable k)."""
    main = nn.Sequential(
        SeparableConvBN(c_in, c_out, kernel_size, stride, deploy=deploy),
        nn.ReLU(),
        SeparableConvBN(c_out, c_out, kernel_size, 1, deploy=deploy),
    )
    return ResidualOp(main, residual_shortcut(c_in, c_out, stride, deploy=deploy), nn.ReLU())


def mbconv(c_in: int, c_out: int, stride: int, kernel_size: int, expansion: int, *,
           deploy: bool = False) -> ResidualOp:
    """MBConv: expand (hidden = expansion·c_out) → depthwise k×k → linear project, identity residual if allowed."""
    hidden = expansion * c_out
    main = nn.Sequential(
        ConvBN(c_in, hidden, 1, deploy=deploy),
        nn.ReLU(),
        ConvBN(hidden, hidden, kernel_size, stride, groups=hidden, deploy=deploy),
        nn.ReLU(),
        ConvBN(hidden, c_out, 1, deploy=deploy),
    )
    shortcut = nn.Identity() if c_in == c_out and stride == 1 else None
    return ResidualOp(main, shortcut, None)


def _register_residual(k: int) -> None:
    @register_op(f"res{k}", family="residual", description=f"ResConv {k}x{k}: conv-BN-ReLU-conv-BN + shortcut, ReLU")
    def build(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
        return residual_conv(c_in, c_out, stride, k, deploy=deploy)


def _register_grouped(g: int) -> None:
    @register_op(f"group{g}", family="grouped",
                 description=f"GroupConv 3x3, {g} groups (gcd with channels), residual form")
    def build(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
        return residual_conv(c_in, c_out, stride, 3, g, deploy=deploy)


def _register_separable(k: int) -> None:
    @register_op(f"spa{k}", family="separable", description=f"spatially separable {k}x1 then 1x{k}, residual form")
    def build(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
        return residual_separable(c_in, c_out, stride, k, deploy=deploy)


def _register_mbconv(k: int, e: int) -> None:
    @register_op(f"mb{k}e{e}", family="mbconv", activation="none",
                 description=f"MBConv {k}x{k} depthwise, hidden {e}*c_out, linear out, residual if same shape")
    def build(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
        return mbconv(c_in, c_out, stride, k, e, deploy=deploy)


for _k in (3, 5, 7):
    _register_residual(_k)
for _g in (2, 4, 8):
    _register_grouped(_g)
for _k in (3, 5, 7):
    _register_separable(_k)
for _k, _e in ((3, 2), (3, 4), (5, 6)):
    _register_mbconv(_k, _e)


@register_op("dil3", family="dilated", description="dilated 3x3 conv (dilation 2), BN, ReLU")
def build_dilated3(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    return ConvBNAct(c_in, c_out, 3, stride, dilation=2, deploy=deploy)


@register_op("identity", family="identity", same_shape_only=True, activation="none",
             description="identity (only where c_in == c_out and stride 1)")
def build_identity(c_in: int, c_out: int, stride: int, *, deploy: bool = False) -> nn.Module:
    return IdentityOp()
