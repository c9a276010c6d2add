"""Augmentation and padding without torchvision, on numpy arrays (HxW or CxHxW, last two axes spatial).

Training: :func:`random_crop` (a crop that contains a target with probability ``target_prob``; images smaller
than the crop are padded first), :func:`random_flip_transpose`. Evaluation: :func:`pad_to_multiple` pads the
bottom and right edges to a multiple of 32 and :func:`crop_to_size` crops a prediction back to the original
size, so ``crop_to_size(pad_to_multiple(x), x.shape[-2:])`` is ``x`` exactly. Both also accept torch tensors.
Every random choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def padded_size(height: int, width: int, multiple: int = 32) -> tuple[int, int]:
    """The smallest (H, W) >= (height, width) that are multiples of ``multiple``."""
    return math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple


def _pad_bottom_right(x: Any, pad_h: int, pad_w: int, value: float) -> Any:
    if pad_h == 0 and pad_w == 0:
        return x
    if isinstance(x, np.ndarray):
        widths = [(0, 0)] * (x.ndim - 2) + [(0, pad_h), (0, pad_w)]
        return np.pad(x, widths, mode="constant", constant_values=value)
    import torch.nn.functional as F

    return F.pad(x, (0, pad_w, 0, pad_h), mode="constant", value=value)


def pad_to_multiple(x: Any, multiple: int = 32, value: float = 0.0) -> Any:
    """Pad the last two axes of ``x`` (numpy array or torch tensor) at the bottom/right to multiples of
    ``multiple`` with ``value``; the original content stays at the top-left."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, multiple)
    return _pad_bottom_right(x, ph - h, pw - w, value)


def crop_to_size(x: Any, size: Sequence[int]) -> Any:
    """The top-left ``size`` = (height, width) of the last two axes: undoes :func:`pad_to_multiple`."""
    h, w = int(size[0]), int(size[1])
    if h > x.shape[-2] or w > x.shape[-1]:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to larger size {(h, w)}")
    return x[..., :h, :w]


def target_components(mask: np.ndarray) -> list[np.ndarray]:
    """Pixel coordinates (k x 2, row/col) of each 8-connected target in a bool mask."""
    labels, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if n == 0:
        return []
    coords = np.argwhere(labels > 0)
    owner = labels[coords[:, 0], coords[:, 1]]
    order = np.argsort(owner, kind="stable")
    coords, owner = coords[order], owner[order]
    splits = np.searchsorted(owner, np.arange(2, n + 1))
    return np.split(coords, splits)


def _crop_start(length: int, crop: int, rng: np.random.Generator, must_contain: int | None) -> int:
    """A start in [0, length - crop], uniform, or uniform among starts whose window holds ``must_contain``."""
    if must_contain is None:
        return int(rng.integers(0, length - crop + 1))
    lo = max(0, must_contain - crop + 1)
    hi = min(must_contain, length - crop)
    return int(rng.integers(lo, hi + 1))


def random_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, *,
                target_prob: float = 0.5, components: list[np.ndarray] | None = None,
                pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop of an HxW ``image`` and ``mask``.

    With probability ``target_prob`` (and when the mask has targets) a target is chosen uniformly among the
    8-connected components (so small targets are as likely as large ones), one of its pixels uniformly, and
    the window uniformly among those containing that pixel; otherwise the window is uniform. An image smaller
    than the crop is first padded at the bottom/right (image with ``pad_value``, mask with False).
    ``components`` may pass precomputed :func:`target_components` of ``mask``.
    """
    h, w = image.shape[-2:]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        image = _pad_bottom_right(image, ph, pw, pad_value)
        mask = _pad_bottom_right(mask, ph, pw, False)
        h, w = image.shape[-2:]
    point: tuple[int, int] | None = None
    if target_prob > 0 and rng.random() < target_prob:
        comps = components if components is not None else target_components(mask)
        if comps:
            comp = comps[int(rng.integers(len(comps)))]
            py, px = comp[int(rng.integers(len(comp)))]
            point = (int(py), int(px))
    y0 = _crop_start(h, size, rng, point[0] if point else None)
    x0 = _crop_start(w, size, rng, point[1] if point else None)
    return image[..., y0:y0 + size, x0:x0 + size], mask[..., y0:y0 + size, x0:x0 + size]


def random_flip_transpose(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *,
                          transpose: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Vertical flip, horizontal flip and (for square arrays, when ``transpose``) a transpose, each with
    probability 1/2, applied identically to image and mask (together the 8 symmetries of the square)."""
    flip_v, flip_h, swap = rng.random(3) < 0.5
    if flip_v:
        image, mask = image[..., ::-1, :], mask[..., ::-1, :]
    if flip_h:
        image, mask = image[..., :, ::-1], mask[..., :, ::-1]
    if swap and transpose and image.shape[-1] == image.shape[-2]:
        image, mask = np.swapaxes(image, -1, -2), np.swapaxes(mask, -1, -2)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
