"""Data loaders of a training run: a seeded per-epoch training order and size-grouped evaluation batches.

- :class:`EpochSampler`: epoch ``e`` visits the training images in a permutation that depends only on
  ``(seed, e)``, never on how many epochs ran in this process, so a resumed run sees the same order.
- :func:`eval_loader`: whole images batched only with images of the same size (at most :data:`EVAL_BATCH`), so
  no image is padded beyond its own multiple of 32 and results never depend on the batch composition.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import DataLoader, Sampler, Subset

from hnanas.data.augment import padded_size
from hnanas.data.torch_data import EvalDataset, collate_eval

EVAL_BATCH = 8  # whole images per evaluation batch (only images of the same size are batched together)


class EpochSampler(Sampler[int]):
    """Visits ``range(n)`` in a permutation that depends only on ``(seed, epoch)``: call :meth:`set_epoch`."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def same_size_batches(dataset: EvalDataset | Subset, max_batch: int = EVAL_BATCH) -> list[list[int]]:
    """Consecutive indices of ``dataset`` grouped into batches of at most ``max_batch`` images of one padded size,
    so a batch never pads an image beyond its own multiple of 32 (decodes the images, which the store caches)."""
    base, indices = (dataset.dataset, list(dataset.indices)) if isinstance(dataset, Subset) else (dataset, None)
    batches: list[list[int]] = []
    last_size = None
    for k in range(len(dataset)):
        size = padded_size(*base.store.get(base.ids[indices[k] if indices is not None else k]).image.shape,
                           base.multiple)
        if batches and size == last_size and len(batches[-1]) < max_batch:
            batches[-1].append(k)
        else:
            batches.append([k])
        last_size = size
    return batches


def eval_loader(dataset: EvalDataset | Subset, num_workers: int = 0) -> DataLoader:
    """Batches ``(images, masks, sizes, ids)`` of :func:`same_size_batches` for :func:`hnanas.train.loop.evaluate`."""
    return DataLoader(dataset, batch_sampler=same_size_batches(dataset), collate_fn=collate_eval,
                      num_workers=num_workers)
