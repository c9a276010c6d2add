"""Small layers the baselines share: bilinear resizing with their published convention, the input-size check,
and conv-BN-ReLU built from :class:`hnanas.ops.ConvBN` (so ``reparameterize_model`` folds it).

Both DNANet and RepISD-Net resize with ``mode="bilinear", align_corners=True`` (upsampling and DNANet's ×0.5
downsampling alike), unlike :func:`hnanas.nas.network.resample` (``align_corners=False``) used by the searched
networks; the baselines keep their authors' convention so that they are the published networks.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hnanas.errors import HnanasError
from hnanas.ops import ConvBN


def resize_bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``x`` (N×C×H×W) to ``size`` = (H', W') with ``align_corners=True``."""
    return F.interpolate(x, size=(size[0], size[1]), mode="bilinear", align_corners=True)  # SymInts stay symbolic


def check_input_size(x: torch.Tensor, multiple: int, kind: str) -> None:
    """Raise ``HnanasError`` unless ``x``'s height and width are multiples of ``multiple`` (the network's total
    downsampling factor, so every skip connection meets a feature of its own size).

    Symbolic sizes (an export with dynamic height/width) are not checked here; the exporter's shape guards
    apply instead."""
    h, w = x.shape[-2:]
    if isinstance(h, int) and isinstance(w, int) and (h % multiple or w % multiple):
        raise HnanasError(f"{kind}: input height and width must be multiples of {multiple}, got {h}x{w}; pad the "
                          f"image (evaluation pads to multiples of 32) or crop to a multiple of {multiple}")


class ConvBNReLU(nn.Sequential):
    """``ReLU(BN(conv k×k))`` with "same" padding; deploy form: the conv with the BN folded in, then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, *, conv_bias: bool = False,
                 deploy: bool = False):
        super().__init__(ConvBN(c_in, c_out, kernel_size, conv_bias=conv_bias, deploy=deploy), nn.ReLU())
