"""Dataset layouts found in the wild, detected from a folder's contents and read without renaming anything.

| layout | images | masks | splits |
|---|---|---|---|
| ``uniform`` | ``images/<id>.png`` | ``masks/<id>.png`` | ``train.txt``/``test.txt``, ``splits/<name>/`` |
| ``sirst`` (original SIRST) | ``images/<id>.png`` | ``masks/<id>_pixels0.png`` | ``idx_427/trainval.txt`` ... |
| ``dnanet`` | ``images/<id>.png`` | ``masks/<id>.png`` | ``50_50/train.txt`` ... |
| ``basicirstd`` | ``images/<id>.png`` | ``masks/<id>.png`` | ``img_idx/train_<NAME>.txt`` ... |
| ``irstd1k`` | ``IRSTD1k_Img/<id>.png`` | ``IRSTD1k_Label/<id>.png`` | ``trainval.txt``/``test.txt`` |
| ``sirst-v2`` | ``images/targets/``, ``images/backgrounds/`` | ``annotations/masks/<id>_pixels0.png`` | ``splits/trainval_full.txt`` ... |

:func:`open_dataset` resolves ``--dataset NAME|PATH`` (a known name under the data root, or a folder) and
indexes it with :func:`index_folder`.

Images may be PNG, BMP, JPEG or TIFF; masks may carry the ``_pixels0`` suffix in any layout. A SIRST v2
background image without a mask file is a target-free sample (mask ``None``). Split lists are found by
:func:`hnanas.data.splits.collect_splits`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hnanas.data.index import (DEFAULT_DATA_ROOT, KNOWN_DATASETS, DatasetIndex, SamplePaths, choose_default_split,
                               known_dataset)
from hnanas.data.splits import collect_splits
from hnanas.data.synthetic import ensure_synthetic
from hnanas.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_ID_SUFFIX = "_pixels0"
_SUFFIX_PREFERENCE = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}


@dataclass(frozen=True)
class LayoutSpec:
    """Where a layout keeps its files. Images in ``background_dir`` without a mask file are target-free."""

    name: str
    image_dirs: tuple[Path, ...]
    mask_dir: Path
    background_dir: Path | None = None


def detect_layout(root: Path) -> LayoutSpec:
    """The layout of ``root`` (see the module table); an unrecognised folder is a DataError saying what is
    expected."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (root / "IRSTD1k_Img").is_dir():
        return LayoutSpec("irstd1k", (root / "IRSTD1k_Img",), _need_dir(root / "IRSTD1k_Label"))
    images = root / "images"
    if (images / "targets").is_dir() or (images / "backgrounds").is_dir():
        dirs = tuple(d for d in (images / "targets", images / "backgrounds") if d.is_dir())
        return LayoutSpec("sirst-v2", dirs, _need_dir(root / "annotations" / "masks"), images / "backgrounds")
    if images.is_dir():
        name = "basicirstd" if (root / "img_idx").is_dir() else "uniform"
        return LayoutSpec(name, (images,), _need_dir(root / "masks"))
    raise DataError(f"{root}: unrecognised dataset layout; expected images/ + masks/ (uniform, SIRST, DNANet, "
                    f"BasicIRSTD), IRSTD1k_Img/ + IRSTD1k_Label/ (IRSTD-1k) or images/targets|backgrounds/ + "
                    f"annotations/masks/ (SIRST v2)")


def _need_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: mask folder not found; the dataset layout needs it")
    return path


def _scan(folder: Path, strip_suffix: str = "") -> dict[str, Path]:
    """id -> file for the image files in ``folder`` (hidden files skipped). When one id has several files
    (``a.png`` and ``a.bmp``), PNG wins; an exact ``<id>.png`` wins over ``<id>_pixels0.png``."""
    found: dict[str, tuple[tuple[int, int], Path]] = {}
    for path in folder.iterdir():
        suffix = path.suffix.lower()
        if path.name.startswith(".") or suffix not in _SUFFIX_PREFERENCE or not path.is_file():
            continue
        stem, stripped = path.stem, 0
        if strip_suffix and stem.endswith(strip_suffix):
            stem, stripped = stem[: -len(strip_suffix)], 1
        rank = (stripped, _SUFFIX_PREFERENCE[suffix])
        if stem not in found or rank < found[stem][0]:
            found[stem] = (rank, path)
    return {k: v for k, (_, v) in sorted(found.items())}


def index_folder(root: str | Path, name: str | None = None) -> DatasetIndex:
    """Index the dataset folder ``root`` (any supported layout) without reading pixels."""
    root = Path(root)
    spec = detect_layout(root)
    images: dict[str, Path] = {}
    for folder in spec.image_dirs:
        for sample_id, path in _scan(folder).items():
            images.setdefault(sample_id, path)
    masks = _scan(spec.mask_dir, strip_suffix=MASK_ID_SUFFIX)
    pixels0 = sum(p.stem.endswith(MASK_ID_SUFFIX) for p in masks.values())
    mask_suffix = MASK_ID_SUFFIX if masks and pixels0 * 2 > len(masks) else ""

    data_dirs = {p.name for p in spec.image_dirs} | {spec.mask_dir.name, "images", "annotations"}
    collector = collect_splits(root, data_dirs)
    if not collector.splits:
        raise DataError(f"{root}: no train/test split lists found; expected train.txt (or trainval.txt) + "
                        f"test.txt at the root, splits/<name>/, <name>/ (e.g. 50_50/, idx_427/), "
                        f"img_idx/train_<NAME>.txt + test_<NAME>.txt, or splits/trainval_<name>.txt")
    layout = spec.name
    if layout == "uniform":
        if mask_suffix:
            layout = "sirst"
        elif "default" not in collector.splits:
            layout = "dnanet"

    items: dict[str, SamplePaths] = {}
    listed = [i for s in collector.splits.values() for i in (*s.train, *s.test)]
    for sample_id in [*images, *[i for i in listed if i not in images]]:
        if sample_id in items:
            continue
        image = images.get(sample_id, spec.image_dirs[0] / f"{sample_id}.png")
        mask: Path | None = masks.get(sample_id)
        if mask is None:
            in_background = spec.background_dir is not None and image.parent == spec.background_dir
            mask = None if in_background and image.exists() else spec.mask_dir / f"{sample_id}{mask_suffix}.png"
        items[sample_id] = SamplePaths(sample_id, image, mask)
    unmatched = tuple(p for i, p in masks.items() if i not in images)

    folder_name = name or root.resolve().name
    known = known_dataset(folder_name)
    default = choose_default_split(collector.splits, known)
    log.debug("%s: layout %s, %d samples, splits %s (default %s)", root, layout, len(items),
              ", ".join(sorted(collector.splits)), default)
    return DatasetIndex(name=known.name if known else folder_name, root=root, layout=layout, items=items,
                        splits=dict(collector.splits), default_split=default, unmatched_masks=unmatched,
                        list_issues=tuple(collector.issues))


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``--data-root``, else ``$HNANAS_DATA``, else ``./data``."""
    return Path(data_root or os.environ.get("HNANAS_DATA") or DEFAULT_DATA_ROOT)


def open_dataset(name_or_path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> DatasetIndex:
    """Resolve ``--dataset NAME|PATH`` and index it.

    A known NAME (NUAA-SIRST, NUDT-SIRST, IRSTD-1k, SIRST-v2, synthetic) is looked up under the data root by
    any of its usual folder names; ``synthetic`` is generated there on first use. Anything else must be a
    folder in one of the supported layouts (see :mod:`hnanas.data.layouts`).
    """
    text = os.fspath(name_or_path)
    known = known_dataset(text)
    looks_like_path = os.sep in text or "/" in text or text.startswith(".")
    if known is not None and not looks_like_path:
        root_dir = resolve_data_root(data_root)
        for folder in known.folders:
            candidate = root_dir / folder
            if candidate.is_dir():
                return index_folder(candidate, name=known.name)
        if known.name == "synthetic":
            return index_folder(ensure_synthetic(root_dir / "synthetic"), name="synthetic")
        raise DataError(f"dataset {known.name} not found under data root {root_dir.resolve()} (looked for "
                        f"{', '.join(known.folders)}); download it from {known.source} and unpack it there, "
                        f"or pass --data-root DIR or --dataset PATH")
    path = Path(text).expanduser()
    if path.is_dir():
        folder_known = known_dataset(path.resolve().name)
        return index_folder(path, name=folder_known.name if folder_known else path.resolve().name)
    if path.exists():
        raise DataError(f"{path}: --dataset must be a folder (or a name: {', '.join(KNOWN_DATASETS)})")
    raise DataError(f"dataset {text!r} not found: not a known name ({', '.join(KNOWN_DATASETS)}) "
                    f"and no folder at {path}")
