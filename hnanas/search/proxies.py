"""Cheap accuracy signals a search could rank architectures by, short of training each one.

- Zero-cost proxies of a network at initialisation, from one batch (Abdelfattah et al., ICLR 2021):
  :func:`grad_norm` (the norm of the loss gradient), :func:`snip` (sum of |gradient x weight|) and
  :func:`synflow` (sum of weight x d(sum of outputs)/d(weight) with every weight made positive and an all-ones
  input, float64, no data). On dense prediction tasks they are unreliable (White et al.; ``search-eval.md``):
  measure them on this space before trusting them (``bench/rank_quality.py``, ``bench/ledger_proxies.py``).
  :func:`init_grad_norm` is the one the ``halving`` strategy can weigh into its signal.
- Inherited weights of a one-shot supernet (:class:`hnanas.search.supernet.OneShotSupernet`): :func:`one_shot_forward`
  trains it on one randomly drawn sub-network per step; :func:`recalibrate_bn` re-estimates the batch-norm
  statistics of one sub-network on training batches before it is scored (shared statistics belong to no
  sub-network).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Callable, Iterable

import torch
import torch.nn as nn

from hnanas.latency.matched import draw_genotype
from hnanas.losses import output_loss
from hnanas.nas.space import SearchSpace


def _loss_and_grads(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable) -> list:
    model.train()
    model.zero_grad(set_to_none=True)
    output_loss(loss_fn, model(images), masks).backward()
    return [(p, p.grad) for p in model.parameters() if p.grad is not None]


def grad_norm(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable) -> float:
    """Euclidean norm of the loss gradient over all weights (a copy of ``model`` is used)."""
    pairs = _loss_and_grads(copy.deepcopy(model), images, masks, loss_fn)
    return float(torch.sqrt(sum((g.double() ** 2).sum() for _, g in pairs)))


INIT_SEED = 1000  # torch seed of the first initialisation init_grad_norm scores (not a retrain's or candidate's seed)


def init_grad_norm(build: Callable[[], nn.Module], batches: list, loss_fn: Callable) -> float:
    """The mean over ``batches`` ((images, masks) pairs) of ln :func:`grad_norm` of a fresh network from ``build``,
    one initialisation per batch (torch seeds INIT_SEED, INIT_SEED + 1, ...; the caller's random state is kept).
    One batch and one initialisation vary it by about 0.25 on this space, the networks differ by about 0.5 (sd).
    On the search-vs-random ledgers a *lower* value goes with a higher test IoU on both datasets (Kendall tau
    -0.33 and -0.29 pooled, -0.28 and -0.35 over the random networks alone; ``bench/ledger_proxies.py``), which is
    how ``halving.grad_norm_weight`` uses it."""
    if not batches:
        raise ValueError("init_grad_norm needs at least one (images, masks) batch")
    logs = []
    with torch.random.fork_rng():
        for i, (images, masks) in enumerate(batches):
            torch.manual_seed(INIT_SEED + i)
            logs.append(math.log(grad_norm(build(), images, masks, loss_fn)))
    return sum(logs) / len(logs)


def snip(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable) -> float:
    """SNIP saliency: sum over weights of |d loss / d w * w| (a copy of ``model`` is used)."""
    pairs = _loss_and_grads(copy.deepcopy(model), images, masks, loss_fn)
    with torch.no_grad():
        return float(sum((g.double() * p.double()).abs().sum() for p, g in pairs))


def synflow(model: nn.Module, shape: tuple[int, ...]) -> float:
    """SynFlow: sum over weights of w * d R / d w, R the sum of the outputs of the network with |w| for every
    weight and an all-ones input of ``shape`` (eval mode, float64; a copy of ``model`` is used)."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    m.zero_grad(set_to_none=True)
    out = m(torch.ones(shape, dtype=torch.float64))
    out = out[-1] if isinstance(out, (list, tuple)) else out
    out.sum().backward()
    with torch.no_grad():
        return float(sum((p * p.grad).sum() for p in m.parameters() if p.grad is not None))


def one_shot_forward(space: SearchSpace, rng: random.Random) -> Callable:
    """A ``forward(model, images)`` for the training loop that runs a :class:`OneShotSupernet` as a new
    sub-network at every call, drawn from the broad prior of :func:`hnanas.latency.matched.draw_genotype` (every
    density and op palette), so every edge and op trains."""
    def forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return model(images, draw_genotype(space, rng))

    return forward


def recalibrate_bn(model: nn.Module, forward: Callable[[torch.Tensor], object], batches: Iterable) -> int:
    """Reset every batch-norm layer's running statistics and re-estimate them (cumulative average) from the
    images of ``batches`` run through ``forward`` in train mode without gradients; returns the batches used.
    Layers the forward never reaches keep reset statistics (harmless: they are not used either)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    n = 0
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch[0])
                n += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return n
