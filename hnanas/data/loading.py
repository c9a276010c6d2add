"""Reading pixels: images to one-channel float, masks to bool, and the mask-size mismatch policy.

**Images** become one channel, values 0..255: ``L`` as is; ``RGB``/``RGBA``/``P``/``LA``/... by luma
(0.299 R + 0.587 G + 0.114 B, exact for the grey content of IR images; alpha is dropped); 16-bit (``I;16*``,
``I``) scaled by 255/65535 keeping their precision in float; ``1`` to 0/255.

**Mask convention.** A mask is read as one channel of integers (colour masks: the maximum over R, G, B, so a
red annotation counts; palette masks: their palette colours). A pixel is target when its value is

- ``> 0`` if the mask's maximum is 1 (0/1 masks),
- ``> 127`` if the maximum is at most 255 (0/255 masks, 8 or 16 bit),
- ``> 32767`` otherwise (0/65535 masks).

A mask with values other than those two levels (0/1, 0/255, 0/65535) is refused with a DataError naming the
file: anything else is a wrong file or a soft annotation that would be cut silently at 127 (``data check``
lists every such mask).

**Mismatch policy** (``on_mismatch``) for a mask whose size differs from its image (NUAA-SIRST ``Misc_111``):
``resize`` (default) resizes the mask to the image size by nearest neighbour with a warning naming the file;
``skip`` drops the sample (:class:`SizeMismatch` from :func:`load_mask`; :func:`usable_ids` filters ahead);
``error`` raises a :class:`~hnanas.errors.DataError` naming the file.

Every missing, unreadable or non-image file is a one-line DataError naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from PIL import Image

from hnanas.data.index import DatasetIndex
from hnanas.errors import DataError

log = logging.getLogger(__name__)

MismatchPolicy = Literal["resize", "skip", "error"]
MISMATCH_POLICIES: tuple[str, ...] = ("resize", "skip", "error")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class SizeMismatch(DataError):
    """A mask whose size differs from its image, under ``on_mismatch='skip'`` or ``'error'``."""


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode ``path``; any failure is a DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found; restore it or remove its id from the split lists")
    try:
        with Image.open(path) as im:
            im.load()  # decodes now, so a truncated file fails here, naming the file
            return im.convert("RGB") if im.mode in ("P", "PA") else im
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read {what} ({str(exc) or type(exc).__name__}); replace the file or "
                        f"remove its id from the split lists") from None


def read_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """(height, width) from the file header, without decoding pixels."""
    height, width, _ = read_header(path, what)
    return height, width


def read_header(path: str | Path, what: str = "image") -> tuple[int, int, str]:
    """(height, width, PIL mode) from the file header, without decoding pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found; restore it or remove its id from the split lists")
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0], im.mode
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read {what} ({str(exc) or type(exc).__name__}); replace the file or "
                        f"remove its id from the split lists") from None


def decode_image(path: str | Path) -> np.ndarray:
    """The image as one channel: uint8 for 8-bit grey content, else float32 (0..255). Compact for caching."""
    im = _open(Path(path), "image")
    if im.mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if im.mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255)
    if im.mode in _SIXTEEN_BIT:
        return np.asarray(im, dtype=np.float32) * np.float32(255.0 / 65535.0)
    if im.mode == "F":
        return np.asarray(im, dtype=np.float32)
    if im.mode in ("LA", "La"):
        return np.asarray(im, dtype=np.uint8)[..., 0].copy()
    rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb.astype(np.float32) @ _LUMA


def load_image(path: str | Path) -> np.ndarray:
    """float32 HxW, one channel, values 0..255 (see the module docstring for each PNG mode)."""
    return decode_image(path).astype(np.float32, copy=False)


def mask_values(path: str | Path) -> np.ndarray:
    """The mask's raw values as one integer channel (max over colour channels)."""
    im = _open(Path(path), "mask")
    arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


BINARY_TOPS = (1, 255, 65535)


def non_binary(values: np.ndarray) -> np.ndarray | None:
    """The distinct values of a mask that is not binary (0 plus one of 1, 255, 65535), else None."""
    top = int(values.max()) if values.size else 0
    if top == 0 or (top in BINARY_TOPS and not np.any((values != 0) & (values != top))):
        return None
    return np.unique(values)


def non_binary_message(path: Path, distinct: np.ndarray) -> str:
    shown = "{" + ", ".join(str(int(v)) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "") + "}"
    return (f"{path}: mask values {shown} are not a binary mask (0/255 or 0/1); re-save it with target pixels 255 "
            f"(or 1) and the rest 0 (`hnanas data check` lists every such mask)")


def read_binary_mask(path: str | Path) -> np.ndarray:
    """A mask file as bool HxW at its own size; a non-binary mask is a DataError naming the file."""
    values = mask_values(path)
    distinct = non_binary(values)
    if distinct is not None:
        raise DataError(non_binary_message(Path(path), distinct))
    return mask_to_bool(values)


def mask_to_bool(values: np.ndarray) -> np.ndarray:
    """Apply the mask convention (module docstring) to raw mask values."""
    top = int(values.max()) if values.size else 0
    if top <= 1:
        return values > 0
    if top <= 255:
        return values > 127
    return values > 32767


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to ``shape`` (H, W) by nearest neighbour."""
    im = Image.fromarray(mask.astype(np.uint8) * np.uint8(255))
    return np.asarray(im.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 127


def load_mask(path: str | Path | None, image_shape: tuple[int, int], on_mismatch: MismatchPolicy = "resize",
              *, warn: bool = True) -> np.ndarray:
    """bool HxW of ``image_shape``; ``path`` None means a target-free sample (all False)."""
    if path is None:
        return np.zeros(image_shape, dtype=bool)
    mask = read_binary_mask(path)
    if mask.shape != tuple(image_shape):
        apply_mismatch_policy(Path(path), mask.shape, tuple(image_shape), on_mismatch, warn=warn)  # may raise
        mask = resize_nearest(mask, image_shape)
    return mask


def mismatch_message(path: Path, mask_shape: tuple[int, int], image_shape: tuple[int, int]) -> str:
    return (f"{path}: mask size {mask_shape[1]}x{mask_shape[0]} differs from its image "
            f"{image_shape[1]}x{image_shape[0]}")


def apply_mismatch_policy(path: Path, mask_shape: tuple[int, int], image_shape: tuple[int, int],
                          on_mismatch: MismatchPolicy, *, warn: bool = True, message: str | None = None,
                          fix: str = "fix the mask") -> None:
    """Raise for ``skip``/``error``; for ``resize`` log the warning (when ``warn``) and return None.
    ``message`` (default: a mask's) says what differs; ``fix`` is the error's advice besides the other policies."""
    message = message or mismatch_message(path, mask_shape, image_shape)
    if on_mismatch == "error":
        raise SizeMismatch(f"{message}; {fix}, or pass --on-mismatch resize|skip")
    if on_mismatch == "skip":
        raise SizeMismatch(f"{message}; sample skipped")
    if on_mismatch != "resize":
        raise DataError(f"unknown mismatch policy {on_mismatch!r} (choose from {', '.join(MISMATCH_POLICIES)})")
    if warn:
        log.warning("warning: %s; resized to the image size (nearest neighbour)", message)


def usable_ids(index: DatasetIndex, ids: Iterable[str], on_mismatch: MismatchPolicy = "resize") -> list[str]:
    """``ids`` whose image and mask files exist and are images (headers only), after the mismatch policy:
    ``resize`` keeps and warns once per file, ``skip`` drops with a warning, ``error`` raises. Missing or
    non-image files raise a DataError naming the file, so a training run fails before its first step."""
    kept: list[str] = []
    for sample_id in ids:
        paths = index.paths(sample_id)
        image_shape = read_size(paths.image, "image")
        if paths.mask is not None:
            mask_shape = read_size(paths.mask, "mask")
            if mask_shape != image_shape:
                try:
                    apply_mismatch_policy(paths.mask, mask_shape, image_shape, on_mismatch)
                except SizeMismatch:
                    if on_mismatch == "error":
                        raise
                    log.warning("warning: %s; skipped (--on-mismatch skip)",
                                mismatch_message(paths.mask, mask_shape, image_shape))
                    continue
        kept.append(sample_id)
    return kept
