"""Scoring a folder of prediction PNGs against ground-truth masks (``hnanas evaluate --pred``).

Contract of the folder: one file ``<id>.png`` per scored id, the size of that id's original image (the size of
its mask), 8-bit gray values 0..255 where ``> 127`` is target (0/255 binary masks, or probabilities x 255).
Files for ids that are not listed are ignored (and counted in the log). A listed id without its file, a file
Pillow cannot decode, or a prediction whose size differs from its mask is a one-line ``DataError`` naming the
file, so a half-written or mis-sized submission is never scored silently.

Ground truth comes from the dataset layer: :func:`score_split_predictions` scores a split's test ids of a
:class:`~hnanas.data.DatasetIndex`, reading masks with :func:`hnanas.data.load_mask` (the project's mask
convention) at their *image's* size under the ``on_mismatch`` policy (``resize``: a mask whose size differs
from its image is resized to it, so the prediction must have the image's size; ``skip``: that id is not
scored; ``error``: a ``DataError`` naming the mask). :func:`score_prediction_folder` also takes plain mask
paths (the mask's own size is the expected prediction size) or ``None`` (a target-free image).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from hnanas.data.index import DatasetIndex, SamplePaths
from hnanas.data.loading import (MismatchPolicy, SizeMismatch, apply_mismatch_policy, load_mask, read_binary_mask,
                                 read_size, resize_nearest, usable_ids)
from hnanas.errors import DataError
from hnanas.metrics import IRSTMetrics
from hnanas.progress import progress

log = logging.getLogger(__name__)

PREDICTION_THRESHOLD = 127  # a prediction pixel is target when its 8-bit value is > 127
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
_MAX_NAMED = 5  # missing ids named in one error message


def read_gray_png(path: Path, what: str) -> np.ndarray:
    """An 8-bit PNG as a uint8 HxW array (colour and palette images converted to gray); ``DataError`` otherwise.

    ``what`` says what the file is ("prediction", "mask") in the message.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode not in _EIGHT_BIT_MODES:
                raise DataError(f"{path}: {what} is a {mode} image; expected an 8-bit gray PNG (values 0..255)")
            if mode == "1":
                return np.asarray(image, dtype=np.uint8) * np.uint8(255)
            return np.asarray(image if mode == "L" else image.convert("L"))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: {what} is not an image file Pillow can read; "
                        f"rewrite it as an 8-bit gray PNG") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable {what} PNG ({type(exc).__name__}: {exc}); "
                        f"rewrite it as an 8-bit gray PNG") from None


def read_prediction(path: Path) -> np.ndarray:
    """A prediction PNG as a bool HxW target map (``value > 127``)."""
    return read_gray_png(path, "prediction") > PREDICTION_THRESHOLD


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A ground-truth mask file as bool HxW at its own size, by the dataset layer's mask convention."""
    return read_binary_mask(path)


def _ground_truth(entry: SamplePaths | str | os.PathLike | None, on_mismatch: MismatchPolicy,
                  prediction_shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The bool mask an id's prediction is scored against, and what defines its size (for messages)."""
    if entry is None:
        return np.zeros(prediction_shape, dtype=bool), ""
    if isinstance(entry, SamplePaths):
        shape = read_size(entry.image, "image")
        return load_mask(entry.mask, shape, on_mismatch, warn=False), f"its image {entry.image}"
    mask = read_mask(entry)
    return mask, f"its mask {entry}"


def _check_all_present(pred_dir: Path, ids: list[str]) -> None:
    """Raise one ``DataError`` naming the first missing prediction (and how many others) before any scoring."""
    missing = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if not missing:
        return
    first = pred_dir / f"{missing[0]}.png"
    more = ""
    if len(missing) > 1:
        named = ", ".join(missing[1:_MAX_NAMED + 1]) + (", ..." if len(missing) > _MAX_NAMED + 1 else "")
        more = f" (and {len(missing) - 1} more of {len(ids)} ids: {named})"
    raise DataError(f"{first}: prediction missing{more}; write one <id>.png per listed image into {pred_dir}")


def score_prediction_folder(pred_dir: str | os.PathLike,
                            masks: Mapping[str, SamplePaths | str | os.PathLike | None], *,
                            on_mismatch: MismatchPolicy = "resize",
                            max_centroid_distance: float = 3.0) -> dict[str, float | int]:
    """Score ``pred_dir/<id>.png`` against ``masks[id]`` for every listed id; returns the metrics dict.

    ``masks[id]`` is a sample's paths (the mask is read at its image's size, applying ``on_mismatch``), a mask
    path (read at its own size) or ``None`` (no target). The dict is
    :meth:`hnanas.metrics.IRSTMetrics.compute`'s (``iou``, ``niou``, ``pd``, ``fa``, counts). Raises
    ``DataError`` for a missing folder, an empty id list, a missing or unreadable prediction or mask; a
    prediction whose size differs from the expected one follows ``on_mismatch`` (resize with a warning, skip, or
    error).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"{pred_dir}: prediction folder not found; pass the folder holding the <id>.png files")
    ids = sorted(masks)
    if not ids:
        raise DataError(f"{pred_dir}: no image ids to score (the test split is empty)")
    _check_all_present(pred_dir, ids)
    extra = {p.stem for p in pred_dir.glob("*.png")} - set(ids)
    if extra:
        log.info("%s: ignoring %d prediction(s) not in the list, e.g. %s", pred_dir, len(extra), min(extra))

    metrics = IRSTMetrics(max_centroid_distance=max_centroid_distance)
    for image_id in progress(ids, desc="scoring", unit="img"):
        pred_path = pred_dir / f"{image_id}.png"
        prediction = read_prediction(pred_path)
        mask, reference = _ground_truth(masks[image_id], on_mismatch, prediction.shape)
        if mask.shape != prediction.shape:  # the dataset's --on-mismatch policy applies to predictions too
            try:
                apply_mismatch_policy(pred_path, prediction.shape, mask.shape, on_mismatch,
                                      message=f"{pred_path}: prediction is {_wxh(prediction)} but {reference} is "
                                              f"{_wxh(mask)}", fix="predictions must have the original image size")
            except SizeMismatch as skipped:
                if on_mismatch != "skip":
                    raise
                log.warning("%s", skipped)
                continue
            prediction = resize_nearest(prediction, mask.shape)
        metrics.update(prediction, mask)
    return metrics.compute()


def score_split_predictions(pred_dir: str | os.PathLike, index: DatasetIndex, split: str | None = None, *,
                            on_mismatch: MismatchPolicy = "resize") -> dict:
    """Score ``pred_dir`` against the test ids of ``index``'s split (default: the dataset's own) under the
    ``on_mismatch`` policy; the metrics dict gains ``dataset`` and ``split``."""
    chosen = index.split(split)
    ids = usable_ids(index, chosen.test, on_mismatch)
    metrics = score_prediction_folder(pred_dir, {i: index.paths(i) for i in ids}, on_mismatch=on_mismatch)
    return {**metrics, "dataset": index.name, "split": chosen.name}


def _wxh(array: np.ndarray) -> str:
    """An image size as width x height, the way image viewers and PIL report it."""
    return f"{array.shape[1]}x{array.shape[0]}"
