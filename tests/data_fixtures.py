"""Helpers that write tiny datasets (a few small PNGs) in each supported layout into a tmp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IDS = ["a1", "a2", "b1", "b2", "c1"]


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def image_for(k: int, shape=(12, 16)) -> np.ndarray:
    """A distinct 8-bit image per sample index ``k``."""
    return ((np.arange(shape[0] * shape[1]).reshape(shape) * (k + 3)) % 251).astype(np.uint8)


def mask_for(k: int, shape=(12, 16)) -> np.ndarray:
    """A 0/255 mask with one 2x2 target whose position depends on ``k``."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[2 + k:4 + k, 3:5] = 255
    return mask


def write_list(path: Path, ids: list[str], *, crlf: bool = False, trailing_newline: bool = True,
               blank_lines: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = "\r\n" if crlf else "\n"
    lines = []
    for item in ids:
        lines.append(item)
        if blank_lines:
            lines.append("")
    text = sep.join(lines) + (sep if trailing_newline else "")
    path.write_bytes(text.encode())
    return path


def write_samples(image_dir: Path, mask_dir: Path, ids: list[str], mask_suffix: str = "") -> None:
    for k, sample_id in enumerate(ids):
        write_png(image_dir / f"{sample_id}.png", image_for(k))
        write_png(mask_dir / f"{sample_id}{mask_suffix}.png", mask_for(k))


def make_layout(root: Path, layout: str) -> Path:
    """Write the tiny dataset in ``layout``: 3 train ids (a1, a2, b1) and 2 test ids (b2, c1)."""
    train, test = IDS[:3], IDS[3:]
    if layout == "uniform":
        write_samples(root / "images", root / "masks", IDS)
        write_list(root / "train.txt", train, crlf=True, trailing_newline=False, blank_lines=True)
        write_list(root / "test.txt", test)
        write_list(root / "splits" / "alt" / "train.txt", IDS[:2])
        write_list(root / "splits" / "alt" / "test.txt", IDS[2:])
    elif layout == "sirst":
        write_samples(root / "images", root / "masks", IDS, mask_suffix="_pixels0")
        write_list(root / "idx_427" / "trainval.txt", train)
        write_list(root / "idx_427" / "train.txt", train[:2])  # train-minus-val: must not be used
        write_list(root / "idx_427" / "val.txt", train[2:])
        write_list(root / "idx_427" / "test.txt", test)
    elif layout == "dnanet":
        write_samples(root / "images", root / "masks", IDS)
        write_list(root / "50_50" / "train.txt", train)
        write_list(root / "50_50" / "test.txt", test, trailing_newline=False)
    elif layout == "irstd1k":
        write_samples(root / "IRSTD1k_Img", root / "IRSTD1k_Label", IDS)
        write_list(root / "trainval.txt", train)
        write_list(root / "test.txt", test)
    elif layout == "basicirstd":
        write_samples(root / "images", root / "masks", IDS)
        write_list(root / "img_idx" / "train_TINY.txt", train)
        write_list(root / "img_idx" / "test_TINY.txt", test)
    elif layout == "sirst-v2":
        targets = ["a1", "a2", "b2"]
        write_samples(root / "images" / "targets", root / "annotations" / "masks", targets, "_pixels0")
        for k, sample_id in enumerate(["b1", "c1"]):  # target-free backgrounds: no mask file
            write_png(root / "images" / "backgrounds" / f"{sample_id}.png", image_for(10 + k))
        write_list(root / "splits" / "trainval_full.txt", train)
        write_list(root / "splits" / "test_full.txt", test)
        write_list(root / "splits" / "mini_trainval.txt", ["a1", "b1"])
        write_list(root / "splits" / "mini_test.txt", ["c1"])
        write_list(root / "splits" / "v2background.txt", ["b1", "c1"])
    else:
        raise ValueError(layout)
    return root
