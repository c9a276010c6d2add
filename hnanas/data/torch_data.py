"""The torch side: training crops and whole-image evaluation samples, with an in-memory sample cache.

- :class:`TrainDataset` item: ``(image 1xSxS float32 normalised, mask 1xSxS float32 {0,1}, id)``; a random
  crop (target-containing with probability ``target_prob``), flips and transpose. Item ``i`` of epoch ``e``
  depends only on ``(seed, e, i)``, never on worker order: call :meth:`TrainDataset.set_epoch` each epoch.
- :class:`EvalDataset` item: ``(image 1xH'xW', mask 1xH'xW', (h, w), id)``, the whole image normalised and
  padded at the bottom/right to multiples of 32 (image pad 0 = the train mean, mask pad 0); ``(h, w)`` is the
  original size for :func:`hnanas.data.augment.crop_to_size`. Batch with :func:`collate_eval`, which pads a
  batch of different sizes to its largest and returns the sizes as a Bx2 tensor.

Decoded samples are kept in memory by a :class:`SampleStore` (``cache=True``; a few hundred images take tens
of MB). With DataLoader workers, call :meth:`SampleStore.preload` first so that forked workers share it.
Files are checked (headers) and the mismatch policy applied when a dataset is built, so a missing file fails
before the first step, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from hnanas.data.augment import padded_size, pad_to_multiple, random_crop, random_flip_transpose, target_components
from hnanas.data.index import DatasetIndex
from hnanas.data.loading import MismatchPolicy, decode_image, load_mask, usable_ids
from hnanas.data.normalization import NormStats
from hnanas.progress import progress


@dataclass(frozen=True)
class DecodedSample:
    """One decoded sample: raw image (uint8 or float32, 0..255), bool mask, its 8-connected targets."""

    id: str
    image: np.ndarray
    mask: np.ndarray
    components: list[np.ndarray]


class SampleStore:
    """Decodes samples of ``index`` on demand, keeping them in memory when ``cache`` is set."""

    def __init__(self, index: DatasetIndex, on_mismatch: MismatchPolicy = "resize", cache: bool = True):
        self.index, self.on_mismatch, self.cache = index, on_mismatch, cache
        self._samples: dict[str, DecodedSample] = {}

    def get(self, sample_id: str) -> DecodedSample:
        sample = self._samples.get(sample_id)
        if sample is None:
            paths = self.index.paths(sample_id)
            image = decode_image(paths.image)
            # datasets pass ids through usable_ids, which warned about (or dropped) mismatched masks
            mask = load_mask(paths.mask, image.shape, self.on_mismatch, warn=False)
            sample = DecodedSample(sample_id, image, mask, target_components(mask))
            if self.cache:
                self._samples[sample_id] = sample
        return sample

    def preload(self, ids: Sequence[str]) -> None:
        """Decode ``ids`` now (with a progress bar); no-op without ``cache``."""
        if self.cache:
            for sample_id in progress(ids, desc="decoding images", unit="img", leave=False):
                self.get(sample_id)

    def __len__(self) -> int:
        return len(self._samples)


def _normalise(raw: np.ndarray, stats: NormStats) -> np.ndarray:
    return (raw.astype(np.float32) - np.float32(stats.mean)) / np.float32(stats.std)


class TrainDataset(Dataset):
    """Random training crops of ``crop_size`` from the samples ``ids`` (see the module docstring)."""

    def __init__(self, store: SampleStore, ids: Sequence[str], stats: NormStats, *, crop_size: int = 256,
                 target_prob: float = 0.5, augment: bool = True, seed: int = 0):
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.store, self.stats = store, stats
        self.ids = usable_ids(store.index, ids, store.on_mismatch)
        self.crop_size, self.target_prob, self.augment, self.seed = crop_size, target_prob, augment, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (items are deterministic per (seed, epoch, index))."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        sample = self.store.get(self.ids[i])
        raw = sample.image
        if min(raw.shape) < self.crop_size:
            raw = raw.astype(np.float32)  # padded with the mean, which normalises to 0
        image, mask = random_crop(raw, sample.mask, self.crop_size, rng, target_prob=self.target_prob,
                                  components=sample.components, pad_value=self.stats.mean)
        image = _normalise(image, self.stats)
        if self.augment:
            image, mask = random_flip_transpose(image, mask, rng)
        return (torch.from_numpy(np.ascontiguousarray(image)[None]),
                torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None]), sample.id)


class EvalDataset(Dataset):
    """Whole images of ``ids``, normalised and padded to multiples of ``multiple`` (module docstring)."""

    def __init__(self, store: SampleStore, ids: Sequence[str], stats: NormStats, *, multiple: int = 32):
        self.store, self.stats, self.multiple = store, stats, multiple
        self.ids = usable_ids(store.index, ids, store.on_mismatch)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], str]:
        sample = self.store.get(self.ids[i])
        h, w = sample.image.shape
        image = pad_to_multiple(_normalise(sample.image, self.stats), self.multiple, 0.0)
        mask = pad_to_multiple(sample.mask.astype(np.float32), self.multiple, 0.0)
        return torch.from_numpy(image[None]), torch.from_numpy(mask[None]), (h, w), sample.id


def collate_eval(batch: Sequence[tuple[torch.Tensor, torch.Tensor, tuple[int, int], str]], multiple: int = 32
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Stack eval items of different sizes: each is padded (bottom/right, zeros) to the batch's largest
    padded size. Returns ``(images Bx1xHxW, masks Bx1xHxW, sizes Bx2 long (h, w), ids)``."""
    height = max(padded_size(item[0].shape[-2], 1, multiple)[0] for item in batch)
    width = max(padded_size(1, item[0].shape[-1], multiple)[1] for item in batch)
    images = torch.zeros(len(batch), 1, height, width, dtype=torch.float32)
    masks = torch.zeros(len(batch), 1, height, width, dtype=torch.float32)
    for k, (image, mask, _, _) in enumerate(batch):
        images[k, :, : image.shape[-2], : image.shape[-1]] = image
        masks[k, :, : mask.shape[-2], : mask.shape[-1]] = mask
    sizes = torch.tensor([list(item[2]) for item in batch], dtype=torch.long)
    return images, masks, sizes, [item[3] for item in batch]
