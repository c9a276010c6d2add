"""Split lists: reading id-list files, finding the splits a dataset folder has, carving a validation subset.

Where splits are found (all are collected; the first source of a name wins):

- ``train.txt`` / ``trainval.txt`` + ``test.txt`` at the dataset root: split ``default``;
- ``splits/<name>/`` and ``<name>/`` folders holding list files (uniform layout, original SIRST ``idx_427/``,
  DNANet ``50_50/``);
- ``<part>_<name>.txt`` or ``<name>_<part>.txt`` files in ``splits/``, ``img_idx/`` or the root (SIRST v2
  ``splits/trainval_full.txt``, BasicIRSTD ``img_idx/train_SIRST3.txt``).

In every source the train list is ``trainval`` when there is one, not ``train`` (in idx_427 / idx_320
``train.txt`` is the smaller train-minus-val list). ``val`` lists are ignored: validation is carved from the
train list by :func:`split_train_val`, so the test split is only used for final evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hnanas.data.index import Split
from hnanas.errors import DataError

LIST_PARTS = ("trainvaltest", "trainval", "train", "val", "test")
_IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def read_id_list(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ids in a list file, in order, without duplicates, and the duplicated ids.

    Tolerates a missing trailing newline, blank lines, CRLF, a UTF-8 BOM, ``#`` comments and ids written with
    an image extension (``Misc_1.png``).
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read split list ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: split list is not UTF-8 text; it should hold one sample id per line") from None
    ids: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for line in text.splitlines():
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.lower().endswith(_IMAGE_SUFFIXES):
            item = item.rsplit(".", 1)[0]
        item = item.replace("\\", "/").rsplit("/", 1)[-1]
        if item in seen:
            duplicates.append(item)
            continue
        seen.add(item)
        ids.append(item)
    return tuple(ids), tuple(duplicates)


def _parse_list_name(stem: str) -> tuple[str, str] | None:
    """``trainval_full`` -> (trainval, full); ``mini_test`` -> (test, mini); ``v2background`` -> None."""
    for part in LIST_PARTS:
        if stem.startswith(part + "_") and len(stem) > len(part) + 1:
            return part, stem[len(part) + 1:]
    for part in LIST_PARTS:
        if stem.endswith("_" + part) and len(stem) > len(part) + 1:
            return part, stem[: -len(part) - 1]
    return None


class SplitCollector:
    """Accumulates splits from list files; records duplicate ids as issues for ``data check``."""

    def __init__(self) -> None:
        self.splits: dict[str, Split] = {}
        self.issues: list[str] = []

    def _read(self, path: Path) -> tuple[str, ...]:
        ids, dups = read_id_list(path)
        if dups:
            shown = ", ".join(sorted(set(dups))[:5])
            self.issues.append(f"{path}: {len(dups)} duplicated id(s) ({shown}); each is used once")
        return ids

    def add(self, name: str, parts: dict[str, Path]) -> None:
        """Add split ``name`` from ``parts`` (part -> list file) if it has a train list and a test list."""
        train_file = parts.get("trainval") or parts.get("train")
        test_file = parts.get("test")
        if name in self.splits or train_file is None or test_file is None:
            return
        self.splits[name] = Split(name, self._read(train_file), self._read(test_file), train_file, test_file)

    def add_folder(self, name: str, folder: Path) -> None:
        """A split folder holding ``train.txt`` / ``trainval.txt`` / ``test.txt``."""
        self.add(name, {p: folder / f"{p}.txt" for p in LIST_PARTS if (folder / f"{p}.txt").is_file()})

    def add_named_lists(self, folder: Path) -> None:
        """Files named ``<part>_<name>.txt`` or ``<name>_<part>.txt`` in ``folder``, grouped by name."""
        groups: dict[str, dict[str, Path]] = {}
        for path in sorted(folder.glob("*.txt")):
            parsed = _parse_list_name(path.stem)
            if parsed is not None:
                part, name = parsed
                groups.setdefault(name, {})[part] = path
        for name, parts in sorted(groups.items()):
            self.add(name, parts)


def collect_splits(root: Path, data_dirs: set[str]) -> SplitCollector:
    """All splits under ``root`` (see the module docstring); ``data_dirs`` are folder names never read as
    split folders (``images``, ``masks``, ...)."""
    collector = SplitCollector()
    collector.add_folder("default", root)
    splits_dir = root / "splits"
    if splits_dir.is_dir():
        for folder in sorted(p for p in splits_dir.iterdir() if p.is_dir()):
            collector.add_folder(folder.name, folder)
        collector.add_named_lists(splits_dir)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name not in data_dirs and not folder.name.startswith(".") and folder.name not in (
                "splits", "img_idx"):
            collector.add_folder(folder.name, folder)
    if (root / "img_idx").is_dir():
        collector.add_named_lists(root / "img_idx")
    collector.add_named_lists(root)
    return collector


def split_train_val(train_ids: list[str] | tuple[str, ...], val_fraction: float = 0.2,
                    seed: int = 0) -> tuple[list[str], list[str]]:
    """Carve a validation subset from ``train_ids``: ``round(val_fraction * n)`` ids (at least one when the
    fraction is positive and n >= 2), chosen by ``seed`` independently of the list's order. Both parts keep
    the list's order and are disjoint; the validation subset is for architecture steps and checkpoint choice.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {val_fraction}")
    ids = list(train_ids)
    n_val = int(round(val_fraction * len(ids)))
    if val_fraction > 0 and n_val == 0 and len(ids) >= 2:
        n_val = 1
    n_val = min(n_val, max(len(ids) - 1, 0))  # never leave the training part empty
    order = sorted(ids)
    chosen = set(np.asarray(order, dtype=object)[np.random.default_rng(seed).permutation(len(order))[:n_val]])
    return [i for i in ids if i not in chosen], [i for i in ids if i in chosen]
