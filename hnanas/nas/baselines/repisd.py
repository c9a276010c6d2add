"""A RepISD-Net-style network (Wu et al., "Learning an Efficient Infrared Small Target Detection Network via
Structural Re-parameterization", TGRS 2023): a small U-Net of ECB blocks, a pyramid-pooling neck and a conv
head; registered as model kind ``repisd``.

Layout (widths w0 = 32, w1 = 64; ``ecb`` is the op registry's Edge Compensation Block, which fuses into one 3×3
conv + ReLU; shapes at input H×W):

- stem: conv3×3-BN-ReLU, conv3×3-BN-ReLU (plain convs), 1 → w0 → w0 channels, at H×W;
- down1: maxpool 2, ecb, ecb, w0 → w1 → w1, at H/2;
- down2: maxpool 2, ecb, ecb, w1 → w1 → w1, at H/4;
- up1: bilinear ×2 of down2, concat [down1, it], ecb, ecb, 2·w1 → w1 → w0, at H/2;
- up2: bilinear ×2 of up1, concat [stem, it], ecb, ecb, 2·w0 → w0 → w0, at H;
- neck: PPM with bins 1, 2, 3, 6, each a 1×1 conv-BN-ReLU to w0/4 channels, w0 → 2·w0, at H;
- head: conv3×3-BN-ReLU (2·w0 → w0), Dropout2d 0.1, conv1×1 (w0 → 1 logit), at H.

Why this layout: it is the one in the authors' released code (``model/Unet.py``, ``model/RepISD.py``), read,
not copied: a 3-level bilinear U-Net whose down/up stages are ECB pairs, the plain double conv as stem, and the
PPM on the decoder's full-resolution output (not at the U-Net's bottom), followed by a 3×3 conv and a 1×1
classifier. With one input channel it has 0.278 M parameters in deploy form (the paper's 0.28 M is the
deployed count; the train form's ECB branches hold 0.558 M) and, in deploy form, 6.39 GMAC at 256² and
25.55 GMAC at 512² by ``hnanas.ops.count_macs`` (25.45 G of convolutions + 0.10 G of PPM pooling products).
The paper's "25.76 GFLOPs" at 512² are therefore multiply-accumulates (thop's convention, not 2·MACs): with
its 3-channel input the convolutions come to 25.60 G, and the remaining 0.6 % is presumably what its counter
adds for pooling, resizes and activations.

Differences from the released code: one input channel; one logit without the sigmoid (hnanas models return
logits; the released head has two sigmoid outputs); the ECB's 1×1 conv keeps its own bias in the fusion; and
adaptive pooling is exact and exportable (see :mod:`hnanas.nas.baselines.pyramid_pooling`). Input height and width
must be multiples of 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hnanas.nas.baselines.layers import ConvBNReLU, check_input_size, resize_bilinear
from hnanas.nas.baselines.pyramid_pooling import PyramidPooling
from hnanas.nas.baselines.spec_options import fraction, positive_ints, spec_options
from hnanas.nas.model_kinds import register_model
from hnanas.ops import build_op

KIND = "repisd"
IN_CHANNELS = 1
DOWNSAMPLING = 4  # two 2x2 max-pools
BLOCK_OP = "ecb"


@dataclass(frozen=True)
class RepISDConfig:
    """The options of a ``repisd`` spec."""

    widths: tuple[int, ...] = (32, 64)  # (w0, w1): channels at full resolution and at 1/2 and 1/4 resolution
    bins: tuple[int, ...] = (1, 2, 3, 6)  # PPM bin counts per side
    dropout: float = 0.1  # Dropout2d before the 1x1 classifier (training only)

    @classmethod
    def from_spec(cls, spec: dict) -> "RepISDConfig":
        """Read and check the spec's options (unknown keys and malformed values raise ``ConfigError``)."""
        defaults = cls()
        opts = spec_options(spec, {"widths": list(defaults.widths), "bins": list(defaults.bins),
                                   "dropout": defaults.dropout})
        return cls(positive_ints(KIND, "widths", opts["widths"], 2), positive_ints(KIND, "bins", opts["bins"]),
                   fraction(KIND, "dropout", opts["dropout"]))

    def to_spec(self) -> dict:
        return {"kind": KIND, "widths": list(self.widths), "bins": list(self.bins), "dropout": self.dropout}


def ecb_pair(c_in: int, mid: int, c_out: int, *, deploy: bool) -> nn.Sequential:
    """Two ECB blocks: ``c_in → mid → c_out`` (stride 1)."""
    return nn.Sequential(build_op(BLOCK_OP, c_in, mid, 1, deploy=deploy),
                         build_op(BLOCK_OP, mid, c_out, 1, deploy=deploy))


class RepISDNet(nn.Module):
    """The network of a :class:`RepISDConfig`; ``deploy=True`` builds it with every ECB fused into one 3×3 conv and
    every Conv-BN folded (what ``reparameterize_model`` turns a trained one into)."""

    def __init__(self, config: RepISDConfig = RepISDConfig(), *, deploy: bool = False):
        super().__init__()
        self.config = config
        w0, w1 = config.widths
        self.stem = nn.Sequential(ConvBNReLU(IN_CHANNELS, w0, 3, deploy=deploy), ConvBNReLU(w0, w0, 3, deploy=deploy))
        self.down1 = ecb_pair(w0, w1, w1, deploy=deploy)
        self.down2 = ecb_pair(w1, w1, w1, deploy=deploy)
        self.up1 = ecb_pair(2 * w1, w1, w0, deploy=deploy)
        self.up2 = ecb_pair(2 * w0, w0, w0, deploy=deploy)
        self.neck = PyramidPooling(w0, config.bins, deploy=deploy)
        self.head = nn.Sequential(ConvBNReLU(self.neck.out_channels, w0, 3, deploy=deploy),
                                  nn.Dropout2d(config.dropout), nn.Conv2d(w0, 1, 1))

    def output_convs(self) -> list[nn.Conv2d]:
        """The layer whose output is the logits (the head's last 1x1 conv)."""
        return [self.head[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, DOWNSAMPLING, KIND)
        full = self.stem(x)
        half = self.down1(F.max_pool2d(full, 2, 2))
        quarter = self.down2(F.max_pool2d(half, 2, 2))
        half = self.up1(torch.cat([half, resize_bilinear(quarter, half.shape[-2:])], dim=1))
        full = self.up2(torch.cat([full, resize_bilinear(half, full.shape[-2:])], dim=1))
        return self.head(self.neck(full))


@register_model(KIND, named={"repisd": RepISDConfig().to_spec()})
def build_repisd(spec: dict, deploy: bool) -> RepISDNet:
    """Build a ``repisd`` spec (options: ``widths`` [w0, w1], ``bins`` [ints], ``dropout`` in [0, 1))."""
    return RepISDNet(RepISDConfig.from_spec(spec), deploy=deploy)
