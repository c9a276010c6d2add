"""Segmentation losses on logits: SoftIoU (the default, as DNANet trains), BCE and Dice.

Every loss has the signature ``loss(logits, target) -> scalar tensor``: ``logits`` is the network's raw output
(N x ... , any trailing shape, usually N x 1 x H x W), ``target`` has the same shape with values in {0, 1}
(float, int or bool). Region losses (SoftIoU, Dice) are computed per sample over all its pixels and then
averaged over the batch, so one large target does not drown the small ones of other samples. All are
computed in float32 from ``torch.sigmoid`` and are finite, with finite gradients, for all-zero targets
(target-free crops): the +1 smoothing makes an empty target with an empty prediction a loss of 0.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from hnanas.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SMOOTH = 1.0  # added to numerator and denominator of the region losses (DNANet's SoftIoU uses 1)


def _prepare(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and target as float32 N x P (one row per sample), after checking their shapes agree."""
    if logits.shape != target.shape:
        raise ValueError(f"logits shape {tuple(logits.shape)} differs from target shape {tuple(target.shape)}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have a batch axis and at least one more (N x ...), got {tuple(logits.shape)}")
    return logits.float().flatten(1), target.to(torch.float32).flatten(1)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SoftIoU: mean over samples of ``1 - (sum(s*y) + 1) / (sum(s) + sum(y) - sum(s*y) + 1)``, ``s = sigmoid``."""
    logits, target = _prepare(logits, target)
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum(1)
    union = prob.sum(1) + target.sum(1) - intersection
    return (1.0 - (intersection + SMOOTH) / (union + SMOOTH)).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice: mean over samples of ``1 - (2 sum(s*y) + 1) / (sum(s) + sum(y) + 1)``, ``s = sigmoid(logits)``."""
    logits, target = _prepare(logits, target)
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum(1)
    return (1.0 - (2.0 * intersection + SMOOTH) / (prob.sum(1) + target.sum(1) + SMOOTH)).mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits (the numerically stable form), averaged over all pixels."""
    logits, target = _prepare(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


_LOSSES: dict[str, LossFn] = {"softiou": soft_iou_loss, "bce": bce_loss, "dice": dice_loss}

DEFAULT_LOSS = "softiou"


def list_losses() -> list[str]:
    """The loss names :func:`build_loss` accepts, the default first."""
    return list(_LOSSES)


def build_loss(name: str = DEFAULT_LOSS) -> LossFn:
    """The loss function called ``name`` (case-insensitive); an unknown name is a ``ConfigError``."""
    key = str(name).strip().lower()
    if key not in _LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of: {', '.join(_LOSSES)}")
    return _LOSSES[key]


def output_loss(loss_fn: Callable, out: "torch.Tensor | list[torch.Tensor] | tuple", target: torch.Tensor
                ) -> torch.Tensor:
    """``loss_fn`` of one logit map, or the mean of ``loss_fn`` over a deep-supervision list."""
    if isinstance(out, (list, tuple)):
        if not out:
            raise ValueError("the model returned an empty list of outputs")
        return torch.stack([loss_fn(o, target) for o in out]).mean()
    return loss_fn(out, target)
