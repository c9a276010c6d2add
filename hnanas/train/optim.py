"""Optimizers, learning-rate schedules, seeding and the torch device: the small pieces every training run shares.

- :func:`build_optimizer` (``adagrad`` as DNANet trains, ``adamw``, ``sgd`` with momentum 0.9),
- :func:`build_scheduler` (``cosine`` from the optimizer's lr to ``min_lr`` over ``total`` scheduler steps, or
  ``constant``, either after an optional linear warm-up); the caller decides whether a scheduler step is an
  optimizer step or an epoch,
- :func:`build_train_loss`: a loss name or a ``+``-joined sum of them (``softiou+bce``),
- :func:`set_seed` seeds torch, numpy and ``random`` once at the start of a run (model initialisation draws from
  torch's global generator); every later random choice takes its own generator,
- :func:`resolve_device` turns ``auto`` into ``cuda`` when a GPU is usable, else ``cpu``.
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

import numpy as np
import torch

from hnanas.errors import ConfigError
from hnanas.losses import build_loss

OPTIMIZERS: tuple[str, ...] = ("adagrad", "adamw", "sgd")
SCHEDULERS: tuple[str, ...] = ("cosine", "constant")
SGD_MOMENTUM = 0.9


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict], name: str = "adagrad", lr: float = 0.05,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer called ``name`` (case-insensitive) over ``params``; an unknown name or a non-positive lr is
    a ``ConfigError``."""
    key = str(name).strip().lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    if key == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str = "cosine", total_steps_or_epochs: int = 1,
                    min_lr: float = 1e-5, warmup: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule over ``total_steps_or_epochs`` calls of ``scheduler.step()``.

    ``cosine``: from each group's initial lr down to ``min_lr`` (reached after the last step; further steps stay
    there, they never climb back). ``constant``: the initial lr throughout. ``warmup`` > 0 scales the first
    ``warmup`` steps' lr by (step + 1) / warmup (a linear warm-up; the schedule after it is unchanged, its lr at a
    step is the same as without warm-up): Adam's first steps, taken before its second-moment estimate settles,
    can push a network into predicting background everywhere, from which SoftIoU does not bring it back
    (docs/results.md, "Retrains that never segment"). Both have a state_dict, so a resumed run continues the
    schedule exactly.
    """
    key = str(name).strip().lower()
    if key not in SCHEDULERS:
        raise ConfigError(f"unknown lr schedule {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    total = int(total_steps_or_epochs)
    if total < 1:
        raise ConfigError(f"a schedule needs at least one step, got {total_steps_or_epochs}")
    if int(warmup) < 0:
        raise ConfigError(f"the lr warm-up must be >= 0 steps, got {warmup}")
    if key == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _Constant(warmup))
    base = [group["lr"] for group in optimizer.param_groups]
    if any(min_lr > lr for lr in base):
        raise ConfigError(f"min_lr {min_lr} is above the initial learning rate {min(base)}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [_Cosine(total, min_lr / lr, warmup) for lr in base])


class _Constant:
    """Factor 1 at every step after the warm-up (a class, not a lambda, so the scheduler's state_dict holds it)."""

    def __init__(self, warmup: int = 0):
        self.warmup = int(warmup)

    def __call__(self, step: int) -> float:
        return _warm(step, self.warmup)


class _Cosine:
    """Factor ``floor + (1 - floor) * (1 + cos(pi * t / total)) / 2`` with ``t`` clamped to ``total``, times the
    warm-up's."""

    def __init__(self, total: int, floor: float, warmup: int = 0):
        self.total, self.floor, self.warmup = int(total), float(floor), int(warmup)

    def __call__(self, step: int) -> float:
        t = min(step, self.total) / self.total
        return _warm(step, self.warmup) * (self.floor + (1.0 - self.floor) * 0.5 * (1.0 + float(np.cos(np.pi * t))))


def warmup_steps(epochs: float, steps_per_epoch: int) -> int:
    """The scheduler steps of a warm-up over ``epochs`` (fractions allowed) at ``steps_per_epoch`` batches an
    epoch (at least one, so an empty loader counts as one step an epoch)."""
    return round(epochs * max(int(steps_per_epoch), 1))


def _warm(step: int, warmup: int) -> float:
    """The linear warm-up's factor at ``step``: (step + 1) / warmup during it, 1 after it (and without one)."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def build_train_loss(name: str = "softiou") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A training loss: one of :func:`hnanas.losses.list_losses`, or several joined by ``+`` (their sum, e.g.
    ``softiou+bce``: SoftIoU for the region, BCE to push the many background pixels down early)."""
    parts = [p.strip() for p in str(name).split("+")]
    if not all(parts):
        raise ConfigError(f"malformed loss {name!r}; use a loss name or names joined by '+', e.g. softiou+bce")
    losses = [build_loss(p) for p in parts]
    if len(losses) == 1:
        return losses[0]

    def summed(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.stack([fn(logits, target) for fn in losses]).sum()

    return summed


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimizer's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def set_seed(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's legacy global generator and ``random`` — once, at the start of a run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    key = str(name).strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but torch sees no GPU here; use --torch-device cpu (or auto)")
    if key not in ("cpu", "cuda"):
        raise ConfigError(f"unknown torch device {name!r}; choose auto, cpu or cuda")
    return torch.device(key)
