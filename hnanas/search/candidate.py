"""One candidate of the ``halving`` strategy: the stand-alone network of a genotype, trained from scratch with the
search's data, optimiser and loss (the one training loop), validated and scored after every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from hnanas.nas.genotype import Genotype
from hnanas.nas.models import build_model, nested_spec, set_output_prior
from hnanas.search.context import SearchContext
from hnanas.search.objective import search_loss
from hnanas.search.proxies import init_grad_norm
from hnanas.search.signals import AP_SIGNALS, accuracy_signal, iou_niou
from hnanas.train.fastpath import path_named
from hnanas.train.loop import evaluate, train_epoch
from hnanas.train.optim import build_optimizer, build_scheduler, warmup_steps

RUN_SEED_STRIDE = 7919  # the torch seed of a finalist's run k is the search's seed + k x this: not another search's


def train_candidate(ctx: SearchContext, g: Genotype, ms: float, *, epochs: int, val_loader, target_ms: float,
                    desc: str, run: int = 0) -> Iterator[dict]:
    """Train the network of ``g`` (``ms`` its predicted latency) from scratch for ``epochs``, yielding each epoch's
    log row (``epoch``, ``predicted_ms``, losses, ``val_iou``, ``score``, ``seconds``); ``score`` is the search
    objective with the accuracy signal of ``halving.metric``; ``val_iou`` at 0.5, or with
    ``halving.select_threshold`` at the threshold with the best IoU at that validation. Run 0 is the search's (its
    seed, the crops of epochs 0, 1, ...: every candidate sees the same); run k > 0 starts from other weights (seed + k x
    :data:`RUN_SEED_STRIDE`) and sees other crops (those of epochs k x ``epochs``, ...). With
    ``halving.grad_norm_weight`` w the signal gains w x ``init_log_grad_norm`` (logged in each row; empty at w 0)."""
    cfg, h = ctx.cfg, ctx.cfg.halving
    prior = 0.0  # the signal's architecture term: halving.grad_norm_weight x ln(grad norm at initialisation)
    log_grad_norm: float | str = ""
    if h.grad_norm_weight:
        log_grad_norm = init_grad_norm(lambda: build_model(nested_spec(ctx.space, g)).to(ctx.device),
                                       [(x.to(ctx.device), y.to(ctx.device)) for x, y in
                                        ctx.proxy_batches(h.grad_norm_batches)], ctx.loss_fn)
        prior = h.grad_norm_weight * log_grad_norm
    torch.manual_seed(cfg.seed + RUN_SEED_STRIDE * run)
    model = build_model(nested_spec(ctx.space, g)).to(ctx.device)
    set_output_prior(model, cfg.output_prior)
    path = path_named("fp32" if cfg.precision == "auto" else cfg.precision)
    path.prepare(model)  # auto's timing trial would cost more than it saves on one-epoch candidates
    opt = build_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    steps = len(ctx.train_loader)
    sched = build_scheduler(opt, "cosine", epochs * steps, min(h.min_lr, cfg.lr),
                            warmup=warmup_steps(cfg.lr_warmup_epochs, steps))
    best_iou = best_iou_niou = 0.0
    for epoch in range(1, epochs + 1):
        ctx.set_train_epoch(run * epochs + epoch - 1)
        start = time.perf_counter()
        stats = train_epoch(model, ctx.train_loader, ctx.loss_fn, opt, scheduler=sched, path=path,
                            desc=f"{desc} epoch {epoch}")
        val = evaluate(model, val_loader, loss_fn=ctx.loss_fn, desc="validate",
                       average_precision=h.metric in AP_SIGNALS, select_threshold=h.select_threshold)
        best_iou = max(best_iou, val["iou"])
        best_iou_niou = max(best_iou_niou, iou_niou(val["iou"], val["niou"]))
        signal = accuracy_signal(h.metric, val["loss"], stats["loss"], val["iou"], best_iou, val.get("ap", math.nan),
                                 best_iou_niou) + prior
        score = float(search_loss(torch.tensor(signal), torch.tensor(ms), target_ms, kind=cfg.latency_loss,
                                  weight=cfg.latency_weight, alpha=cfg.mul_log_alpha, beta=cfg.mul_log_beta))
        yield {"epoch": epoch, "predicted_ms": round(ms, 4), "train_loss": stats["loss"], "val_loss": val["loss"],
               "val_iou": val["iou"], "val_niou": val["niou"], "init_log_grad_norm": log_grad_norm, "score": score,
               "seconds": round(time.perf_counter() - start, 1)}  # + validation
