"""The one batch loop: training epochs, evaluation and prediction, shared by search, retrain and evaluate.

- :func:`train_epoch` runs one pass over a training loader (batches ``(images, masks, ...)``), one optimizer
  step per batch. ``forward(model, images)`` may return one logit map or a list of them (deep supervision: the
  loss is the mean over the list); ``after_step(step_index)`` runs after every optimizer step, with the index of
  that step within the epoch, from 0 (the search puts its architecture steps there); ``scheduler.step()``
  follows every optimizer step. A non-finite loss stops the epoch with an :class:`~hnanas.errors.HnanasError`
  before the optimizer applies it, so the caller's last good checkpoint stays the state to go back to.
- :func:`evaluate` runs in eval mode without gradients over an eval loader (``(images, masks, sizes, ids)`` as
  :func:`hnanas.data.collate_eval` makes them: images padded to multiples of 32, ``sizes`` their true (h, w)).
  Each image's main logits are cropped back to its true size before the sigmoid and
  :class:`~hnanas.metrics.IRSTMetrics`, so padding never counts as pixels.
- :func:`predict` yields ``(id, probability map HxW numpy float32)`` at each image's true size.

Batches go to the device of the model's first parameter. ``train_epoch`` leaves the model in train mode;
``evaluate`` and ``predict`` restore the mode it had.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from hnanas.errors import HnanasError
from hnanas.metrics import (THRESHOLD_GRID, IRSTMetrics, choose_threshold, compute_metrics, iou_by_threshold,
                            pixel_average_precision)
from hnanas.nas.models import main_output
from hnanas.progress import progress
from hnanas.train.fastpath import FP32, TrainPath, forward_loss
from hnanas.train.optim import build_optimizer, build_scheduler, current_lr, set_seed  # noqa: F401 (re-exported)

Forward = Callable[[torch.nn.Module, torch.Tensor], "torch.Tensor | list[torch.Tensor]"]


def _default_forward(model: torch.nn.Module, images: torch.Tensor):
    return model(images)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model without tensors."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def train_epoch(model: torch.nn.Module, loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
                forward: Forward | None = None, after_step: Callable[[int], Any] | None = None,
                scheduler: Any = None, grad_clip: float | None = None, desc: str = "",
                path: TrainPath = FP32) -> dict:
    """One pass over ``loader`` in train mode, each step on ``path`` (:mod:`hnanas.train.fastpath`; the model
    must already be in the path's memory format: ``path.prepare(model)``).
    Returns ``{"loss": mean loss, "steps": n, "images": n,
    "seconds": wall time, "lr": lr after the last step}``."""
    forward = forward or _default_forward
    device = model_device(model)
    model.train()
    total_loss, steps, images_seen = 0.0, 0, 0
    start = time.perf_counter()
    total = len(loader) if hasattr(loader, "__len__") else None
    with progress(total=total, desc=desc or "train", unit="step", leave=False) as bar:
        for batch in loader:
            images, masks = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = forward_loss(model, images, masks, loss_fn, forward, path, device)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise HnanasError(f"{desc or 'training'}: the loss became {value} at step {steps + 1} of this epoch "
                                  f"(learning rate {current_lr(optimizer):.3g}); lower the learning rate or set "
                                  f"a gradient clip — the last good checkpoint is unchanged")
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step(steps)
            total_loss += value
            steps += 1
            images_seen += int(images.shape[0])
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
    if steps == 0:
        raise HnanasError(f"{desc or 'training'}: the training loader yielded no batch (fewer training images "
                          f"than one batch?); lower the batch size or add images")
    return {"loss": total_loss / steps, "steps": steps, "images": images_seen,
            "seconds": time.perf_counter() - start, "lr": current_lr(optimizer)}


def _cropped_outputs(model: torch.nn.Module, loader: Iterable, forward: Forward, max_batches: int | None,
                     desc: str, unit_total: int | None) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Eval mode, no grad: ``(id, logits 1xhxw, mask 1xhxw)`` per image, cropped to its true size."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), progress(total=unit_total, desc=desc or "evaluate", unit="batch", leave=False) as bar:
            for b, (images, masks, sizes, ids) in enumerate(loader):
                if max_batches is not None and b >= max_batches:
                    break
                logits = main_output(forward(model, images.to(device, non_blocking=True))).float().cpu()
                for k, image_id in enumerate(ids):
                    h, w = int(sizes[k][0]), int(sizes[k][1])
                    yield image_id, logits[k, :, :h, :w], masks[k, :, :h, :w]
                bar.update()
    finally:
        model.train(was_training)


def _total_batches(loader: Iterable, max_batches: int | None) -> int | None:
    n = len(loader) if hasattr(loader, "__len__") else None
    return min(n, max_batches) if n is not None and max_batches is not None else n


def evaluate(model: torch.nn.Module, loader: Iterable, *, forward: Forward | None = None, threshold: float = 0.5,
             loss_fn: Callable | None = None, max_batches: int | None = None, desc: str = "",
             average_precision: bool = False, select_threshold: bool = False,
             thresholds: Sequence[float] = THRESHOLD_GRID, also_at: float | None = None) -> dict:
    """IoU, nIoU, Pd, Fa over the images of ``loader`` (at most ``max_batches`` batches).

    Returns :meth:`hnanas.metrics.IRSTMetrics.compute`'s dict (``iou``, ``niou``, ``pd``, ``fa``, ``n_images``
    and counts), plus ``loss`` (mean over images, each on its true size) when ``loss_fn`` is given and ``ap``
    (:func:`hnanas.metrics.pixel_average_precision`, threshold-free) when ``average_precision`` is true. With
    ``select_threshold`` the metrics are those at the threshold of ``thresholds`` (default
    :data:`hnanas.metrics.THRESHOLD_GRID`) with the best IoU on these images
    (:func:`hnanas.metrics.choose_threshold`; ``threshold`` when none is above 0), returned as ``threshold``.
    ``also_at``: the metrics at that threshold too, from the same pass, as ``also_at``.
    """
    metrics = IRSTMetrics(threshold)
    # at ``threshold`` itself (a retrain's validation with a chosen threshold) ``metrics`` already counts them
    extra = IRSTMetrics(also_at) if also_at is not None and also_at != threshold else None
    losses: list[float] = []
    kept: tuple[list, list] = ([], [])
    outputs = _cropped_outputs(model, loader, forward or _default_forward, max_batches, desc,
                               _total_batches(loader, max_batches))
    for _, logits, mask in outputs:
        if loss_fn is not None:
            losses.append(float(loss_fn(logits[None], mask[None])))
        prob, gt = torch.sigmoid(logits)[0].numpy(), mask[0].numpy() > 0.5
        metrics.update(prob, gt)
        if extra is not None:
            extra.update(prob, gt)
        if average_precision or select_threshold:
            kept[0].append(prob)
            kept[1].append(gt)
    if metrics.n_images == 0:
        raise HnanasError(f"{desc or 'evaluation'}: no images to evaluate (empty split or validation subset)")
    at_threshold = metrics.compute()
    result = dict(at_threshold)
    if select_threshold:
        chosen = choose_threshold(iou_by_threshold(*kept, thresholds), default=threshold)
        if chosen != threshold:
            result = compute_metrics(*kept, threshold=chosen)
        result["threshold"] = chosen
    if also_at is not None:
        result["also_at"] = extra.compute() if extra is not None else at_threshold
    if loss_fn is not None:
        result["loss"] = float(np.mean(losses))
    if average_precision:
        result["ap"] = pixel_average_precision(*kept)
    return result


def predict(model: torch.nn.Module, loader: Iterable, *, forward: Forward | None = None, desc: str = "predict"
            ) -> Iterator[tuple[str, np.ndarray]]:
    """``(id, sigmoid probabilities HxW float32)`` for every image of an eval loader, at its true size."""
    for image_id, logits, _ in _cropped_outputs(model, loader, forward or _default_forward, None, desc,
                                                _total_batches(loader, None)):
        yield image_id, torch.sigmoid(logits)[0].numpy().astype(np.float32, copy=False)
