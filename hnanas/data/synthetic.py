"""The synthetic dataset: procedural IR scenes with small targets, written in the uniform layout.

``write_synthetic(out, SynthParams(n, size, seed))`` writes ``images/synth_NNNNN.png`` (8-bit grey),
``masks/synth_NNNNN.png`` (0/255), ``train.txt``/``test.txt``, ``targets.csv`` (one row per target: kind,
centre, area, signal-to-clutter ratio, contrast) and ``synthetic.json`` (generator version, parameters,
summary), the metadata last so that its presence marks a complete dataset. Image ``i`` comes from its own RNG
stream ``SeedSequence(seed, spawn_key=(i,))`` and the train/test partition from ``SeedSequence(seed)``, so the
result depends only on (seed, i), not on batching or the number of workers. ``ensure_synthetic`` generates the
default dataset (400 images of 256x256, seed 0) on first use of ``--dataset synthetic``.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import hnanas
from hnanas.data import synth_scene
from hnanas.errors import DataError
from hnanas.fileio import atomic_path, write_json, write_text
from hnanas.progress import progress

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
METADATA_FILE = "synthetic.json"
_OWN_ENTRIES = {"images", "masks", "train.txt", "test.txt", "targets.csv", METADATA_FILE, ".hnanas"}


@dataclass(frozen=True)
class SynthParams:
    n: int = 400  # number of images
    size: int = 256  # side of the square images, pixels
    seed: int = 0  # root seed; image i uses SeedSequence(seed, spawn_key=(i,))
    test_fraction: float = 0.2  # share of the images in test.txt

    def __post_init__(self) -> None:
        if self.n < 2:
            raise DataError(f"synthetic dataset needs at least 2 images, got n={self.n}")
        if self.size < 2 * synth_scene.PATCH:
            raise DataError(f"synthetic image size must be at least {2 * synth_scene.PATCH}, got {self.size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise DataError(f"test fraction must be in (0, 1), got {self.test_fraction}")


DEFAULT_PARAMS = SynthParams()  # what `--dataset synthetic` generates on first use


def sample_id(i: int) -> str:
    return f"synth_{i:05d}"


def render_sample(params: SynthParams, i: int):
    """Image ``i`` of the dataset ``params``: (uint8 image, bool mask, targets, scene kind)."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(i,)))
    return synth_scene.render_scene(rng, params.size)


def split_ids(params: SynthParams) -> tuple[list[str], list[str]]:
    """(train ids, test ids), each sorted; the test part holds round(test_fraction * n) images."""
    n_test = min(max(int(round(params.test_fraction * params.n)), 1), params.n - 1)
    order = np.random.default_rng(np.random.SeedSequence(params.seed)).permutation(params.n)
    test = set(order[:n_test].tolist())
    return ([sample_id(i) for i in range(params.n) if i not in test],
            [sample_id(i) for i in range(params.n) if i in test])


def _save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def _write_chunk(out: str, params: SynthParams, indices: list[int]) -> list[tuple[int, str, list[dict]]]:
    """Render and write images ``indices``; returns (i, scene kind, target rows) per image."""
    rows = []
    for i in indices:
        image, mask, targets, kind = render_sample(params, i)
        _save_png(Path(out) / "images" / f"{sample_id(i)}.png", image)
        _save_png(Path(out) / "masks" / f"{sample_id(i)}.png", mask.astype(np.uint8) * np.uint8(255))
        rows.append((i, kind, [asdict(t) for t in targets]))
    return rows


def read_metadata(folder: Path) -> dict | None:
    path = folder / METADATA_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _summary(params: SynthParams, rows: list[tuple[int, str, list[dict]]], train: list[str],
             test: list[str]) -> dict:
    targets = [t for _, _, ts in rows for t in ts]
    areas = np.array([t["area"] for t in targets] or [0])
    scr = np.array([t["scr"] for t in targets] or [0.0])
    kinds: dict[str, int] = {}
    for _, kind, _ in rows:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"generator": "hnanas.data.synthetic", "generator_version": GENERATOR_VERSION,
            "hnanas_version": hnanas.__version__, "params": asdict(params),
            "counts": {"images": params.n, "train": len(train), "test": len(test),
                       "target_free": sum(1 for _, _, ts in rows if not ts), "targets": len(targets)},
            "target_area_px": {"min": int(areas.min()), "median": float(np.median(areas)), "max": int(areas.max())},
            "scr": {"min": float(scr.min()), "median": float(np.median(scr)), "max": float(scr.max())},
            "scene_kinds": dict(sorted(kinds.items()))}


def write_synthetic(out: str | os.PathLike, params: SynthParams = SynthParams(), *, workers: int = 1,
                    overwrite: bool = False) -> dict:
    """Write the synthetic dataset ``params`` into ``out`` and return its metadata.

    A folder already holding this exact dataset (same parameters and generator version) is left as is. A
    folder holding anything else is an error unless ``overwrite`` (which replaces the dataset files only, and
    refuses a folder with files hnanas did not write).
    """
    out = Path(out)
    try:
        return _write(out, params, workers, overwrite)
    except PermissionError as exc:
        raise DataError(f"{exc.filename or out}: permission denied; choose a writable --out / --data-root") from None
    except OSError as exc:
        raise DataError(f"{exc.filename or out}: cannot write ({exc.strerror or exc})") from None


def _write(out: Path, params: SynthParams, workers: int, overwrite: bool) -> dict:
    meta = read_metadata(out)
    if meta is not None and meta.get("params") == asdict(params) and \
            meta.get("generator_version") == GENERATOR_VERSION and not overwrite:
        log.info("%s already holds this synthetic dataset (%d images); nothing to do", out, params.n)
        return meta
    if out.exists() and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
        if foreign:
            raise DataError(f"{out}: folder holds other files ({', '.join(foreign[:3])}); choose an empty --out")
        if meta is not None and not overwrite:
            raise DataError(f"{out}: holds a different synthetic dataset ({meta.get('params')}); pass "
                            f"--overwrite to replace it, or choose another --out")
        for folder in ("images", "masks"):
            for stale in (out / folder).glob("synth_*.png") if (out / folder).is_dir() else ():
                stale.unlink()
        (out / METADATA_FILE).unlink(missing_ok=True)
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    chunks = [list(range(k, min(k + 16, params.n))) for k in range(0, params.n, 16)]
    rows: list[tuple[int, str, list[dict]]] = []
    bar = progress(total=params.n, desc="synthesising", unit="img")
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk_rows in pool.map(_write_chunk, [str(out)] * len(chunks), [params] * len(chunks), chunks):
                rows.extend(chunk_rows)
                bar.update(len(chunk_rows))
    else:
        for chunk in chunks:
            rows.extend(_write_chunk(str(out), params, chunk))
            bar.update(len(chunk))
    bar.close()

    train, test = split_ids(params)
    write_text(out / "train.txt", "\n".join(train) + "\n")
    write_text(out / "test.txt", "\n".join(test) + "\n")
    lines = ["id,kind,cy,cx,area,scr,contrast"]
    for i, _, targets in sorted(rows):
        lines += [f"{sample_id(i)},{t['kind']},{t['cy']},{t['cx']},{t['area']},{t['scr']},{t['contrast']}"
                  for t in targets]
    write_text(out / "targets.csv", "\n".join(lines) + "\n")
    meta = _summary(params, sorted(rows), train, test)
    write_json(out / METADATA_FILE, meta)
    return meta


def ensure_synthetic(folder: Path, params: SynthParams | None = None) -> Path:
    """``folder`` holding a synthetic dataset: generated with ``params`` (default :data:`DEFAULT_PARAMS`) on
    first use, else left as is."""
    params = params or DEFAULT_PARAMS
    meta = read_metadata(folder)
    if meta is None:
        log.info("generating the synthetic dataset (%d images of %dx%d, seed %d) in %s (first use)",
                 params.n, params.size, params.size, params.seed, folder)
        write_synthetic(folder, params)
    elif meta.get("generator_version") != GENERATOR_VERSION:
        log.warning("warning: %s was made by synthetic generator version %s (current %s); regenerate it with "
                    "`hnanas data synth --out %s --overwrite`", folder, meta.get("generator_version"),
                    GENERATOR_VERSION, folder)
    return folder
