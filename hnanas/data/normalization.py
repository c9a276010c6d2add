"""Normalisation statistics (pixel mean and std of the train split), computed once and cached.

The cache file is ``<dataset>/.hnanas/norm-<split>.json`` beside the data; when the dataset folder is not
writable (``../shared`` is read-only) it is ``$HNANAS_CACHE/<name>-<hash of the resolved root>/norm-<split>.json``
(``$HNANAS_CACHE`` defaults to ``~/.cache/hnanas``). Each cache file records a hash of the split's train-id
list and is recomputed when the list changes, when the file is damaged or when ``recompute=True``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from hnanas.data.index import DatasetIndex
from hnanas.data.loading import decode_image
from hnanas.fileio import stable_hash, write_json
from hnanas.progress import progress

log = logging.getLogger(__name__)

NORM_VERSION = 1


@dataclass(frozen=True)
class NormStats:
    """Pixel statistics of the 0..255 one-channel images: ``(x - mean) / std`` normalises."""

    mean: float
    std: float
    n_images: int = 0
    n_pixels: int = 0


def compute_norm_stats(index: DatasetIndex, ids: Iterable[str]) -> NormStats:
    """Mean and std over every pixel of the images of ``ids`` (pixel-weighted, float64 sums)."""
    ids = list(ids)
    total = total_sq = 0.0
    count = 0
    for sample_id in progress(ids, desc="normalisation stats", unit="img", leave=False):
        img = decode_image(index.paths(sample_id).image).astype(np.float64)
        total += float(img.sum())
        total_sq += float(np.square(img).sum())
        count += img.size
    if count == 0:
        return NormStats(mean=0.0, std=1.0, n_images=0, n_pixels=0)
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    return NormStats(mean=mean, std=std if std > 1e-6 else 1.0, n_images=len(ids), n_pixels=count)


def cache_home() -> Path:
    """``$HNANAS_CACHE``, else ``~/.cache/hnanas``."""
    return Path(os.environ.get("HNANAS_CACHE") or Path.home() / ".cache" / "hnanas")


def cache_candidates(index: DatasetIndex, split: str) -> list[Path]:
    """Where the stats of ``split`` may be cached: beside the data first, then under the cache home."""
    resolved = index.root.resolve()
    key = f"{index.name}-{stable_hash(str(resolved))}"
    filename = f"norm-{split}.json"
    return [resolved / ".hnanas" / filename, cache_home() / key / filename]


def _ids_hash(ids: Iterable[str]) -> str:
    return stable_hash(sorted(ids), length=16)


def _read_cache(path: Path, ids_hash: str) -> NormStats | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != NORM_VERSION or data.get("train_ids_sha") != ids_hash:
            return None
        return NormStats(float(data["mean"]), float(data["std"]), int(data["n_images"]), int(data["n_pixels"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def writable_folder(folder: Path) -> bool:
    """Whether ``folder`` (or, if absent, its nearest existing ancestor) may be written. The permission bits
    are honoured even for root, who ``os.access`` says may write anywhere: ``r-x`` folders stay untouched."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.access(probe, os.W_OK) and bool(probe.stat().st_mode & 0o222)
    except OSError:
        return False


def _write_cache(candidates: list[Path], payload: dict) -> Path | None:
    for path in candidates:
        try:
            if not writable_folder(path.parent):
                continue
            write_json(path, payload)
            return path
        except OSError as exc:
            log.debug("cannot write normalisation cache %s: %s", path, exc)
    return None


def norm_stats(index: DatasetIndex, split: str | None = None, *, recompute: bool = False) -> NormStats:
    """The normalisation statistics of ``split``'s train list (default split if None), from the cache when it
    is valid for the current list, else computed and cached (beside the data, or under the cache home)."""
    chosen = index.split(split)
    ids_hash = _ids_hash(chosen.train)
    candidates = cache_candidates(index, chosen.name)
    if not recompute:
        for path in candidates:
            cached = _read_cache(path, ids_hash) if path.is_file() else None
            if cached is not None:
                log.debug("normalisation stats of %s/%s from %s", index.name, chosen.name, path)
                return cached
    stats = compute_norm_stats(index, chosen.train)
    payload = {"version": NORM_VERSION, "dataset": index.name, "root": str(index.root.resolve()),
               "split": chosen.name, "train_ids_sha": ids_hash, "mean": stats.mean, "std": stats.std,
               "n_images": stats.n_images, "n_pixels": stats.n_pixels}
    written = _write_cache(candidates, payload)
    if written is None:
        log.warning("warning: could not cache normalisation stats (tried %s)", ", ".join(map(str, candidates)))
    else:
        log.debug("normalisation stats of %s/%s cached at %s", index.name, chosen.name, written)
    return stats
