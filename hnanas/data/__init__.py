"""The dataset layer: layouts and index, pixel loading, normalisation, augmentation, torch datasets,
the synthetic generator and ``data check``. See docs/design.md (Data) for the contracts.

Typical use::

    from hnanas.data import DataConfig, build_data
    data = build_data(DataConfig(dataset="NUAA-SIRST", split="idx_427", crop_size=256))
    loader = torch.utils.data.DataLoader(data.train, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    val = torch.utils.data.DataLoader(data.val, batch_size=1, collate_fn=collate_eval)
"""

from hnanas.data.augment import crop_to_size, pad_to_multiple, padded_size, random_crop, random_flip_transpose
from hnanas.data.bundle import DataBundle, DataConfig, build_data
from hnanas.data.check import CheckReport, check_dataset, format_report
from hnanas.data.index import KNOWN_DATASETS, DatasetIndex, SamplePaths, Split, known_dataset
from hnanas.data.layouts import index_folder, open_dataset, resolve_data_root
from hnanas.data.loading import (MISMATCH_POLICIES, MismatchPolicy, SizeMismatch, load_image, load_mask,
                                 mask_to_bool, usable_ids)
from hnanas.data.normalization import NormStats, compute_norm_stats, norm_stats
from hnanas.data.splits import read_id_list, split_train_val
from hnanas.data.synthetic import SynthParams, ensure_synthetic, write_synthetic

_TORCH_NAMES = ("EvalDataset", "SampleStore", "TrainDataset", "collate_eval")


def __getattr__(name: str):
    """The torch datasets are imported on first use, so commands that need no torch start fast."""
    if name in _TORCH_NAMES:
        from hnanas.data import torch_data

        return getattr(torch_data, name)
    raise AttributeError(f"module 'hnanas.data' has no attribute {name!r}")


__all__ = [
    "DataBundle", "DataConfig", "build_data", "CheckReport", "check_dataset", "format_report", "KNOWN_DATASETS",
    "DatasetIndex", "SamplePaths", "Split", "known_dataset", "open_dataset", "resolve_data_root", "index_folder",
    "MISMATCH_POLICIES", "MismatchPolicy", "SizeMismatch", "load_image", "load_mask", "mask_to_bool",
    "usable_ids", "NormStats", "compute_norm_stats", "norm_stats", "read_id_list", "split_train_val",
    "SynthParams", "ensure_synthetic", "write_synthetic", "EvalDataset", "SampleStore", "TrainDataset",
    "collate_eval", "crop_to_size", "pad_to_multiple", "padded_size", "random_crop", "random_flip_transpose",
]
