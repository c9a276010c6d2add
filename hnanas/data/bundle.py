"""One call from a data configuration to ready datasets: train crops, validation and test whole images.

``build_data(DataConfig(...))`` opens the dataset, picks the split, carves the validation subset from its
train list (deterministic by ``seed``), gets the normalisation statistics of the train list (cached) and
returns a :class:`DataBundle`. Search and retrain use ``train`` and ``val`` only; ``test`` is for the final
evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hnanas.data.index import DatasetIndex, Split
from hnanas.data.layouts import open_dataset
from hnanas.data.normalization import NormStats, norm_stats
from hnanas.data.splits import split_train_val
from hnanas.errors import DataError

if TYPE_CHECKING:  # torch is imported only when datasets are built, so `data synth`/`check` start fast
    from hnanas.data.torch_data import EvalDataset, SampleStore, TrainDataset


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # NUAA-SIRST | NUDT-SIRST | IRSTD-1k | SIRST-v2 | synthetic, or a folder path
    data_root: str | None = None  # folder holding named datasets; None: $HNANAS_DATA, else ./data
    split: str | None = None  # split name (idx_427, 50_50, ...); None: the dataset's official default
    crop_size: int = 256  # side of the square training crops, pixels
    target_prob: float = 0.5  # probability that a training crop is centred to contain a target
    augment: bool = True  # random vertical/horizontal flips and transpose of training crops
    val_fraction: float = 0.2  # share of the train list held out for validation (architecture steps, checkpoints)
    seed: int = 0  # seed of the validation carve and of the augmentation streams
    on_mismatch: Literal["resize", "skip", "error"] = "resize"  # a mask whose size differs from its image
    cache_images: bool = True  # keep decoded images in memory (a few hundred images: tens of MB)

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise ValueError(f"crop_size must be at least 8, got {self.crop_size}")
        if not 0.0 <= self.target_prob <= 1.0:
            raise ValueError(f"target_prob must be in [0, 1], got {self.target_prob}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class DataBundle:
    """Everything a training run needs from the data layer."""

    index: DatasetIndex
    split: Split
    stats: NormStats
    store: SampleStore
    train: TrainDataset
    val: EvalDataset
    test: EvalDataset

    def describe(self) -> str:
        """One line for logs: dataset, split and sizes."""
        return (f"{self.index.name} ({self.index.root}), split {self.split.name}: train {len(self.train)}, "
                f"val {len(self.val)}, test {len(self.test)}; normalisation mean {self.stats.mean:.2f} "
                f"std {self.stats.std:.2f}")


def build_data(cfg: DataConfig, *, index: DatasetIndex | None = None) -> DataBundle:
    """Datasets for ``cfg`` (``index`` may pass an already opened dataset)."""
    from hnanas.data.torch_data import EvalDataset, SampleStore, TrainDataset

    index = index or open_dataset(cfg.dataset, cfg.data_root)
    split = index.split(cfg.split)
    if not split.train:
        raise DataError(f"{split.train_file or index.root}: the train list of split {split.name} is empty; it "
                        f"should hold one sample id per line (or pass another --split)")
    train_ids, val_ids = split_train_val(split.train, cfg.val_fraction, cfg.seed)
    stats = norm_stats(index, split.name)
    store = SampleStore(index, cfg.on_mismatch, cfg.cache_images)
    train = TrainDataset(store, train_ids, stats, crop_size=cfg.crop_size, target_prob=cfg.target_prob,
                         augment=cfg.augment, seed=cfg.seed)
    val = EvalDataset(store, val_ids, stats)
    test = EvalDataset(store, split.test, stats)
    return DataBundle(index, split, stats, store, train, val, test)
