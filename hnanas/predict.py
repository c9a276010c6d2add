"""A trained network on the user's own images (``hnanas predict``): masks, overlays and a table of detections.

The model is a retrain checkpoint (``best.pt``, or a run folder holding ``best.pt`` / ``retrain/best.pt``) run
with torch, or an exported ``.onnx`` run with ONNX Runtime only (no model code). Images are read, normalised and
padded exactly as ``hnanas evaluate`` does (:func:`hnanas.data.loading.decode_image`: 8/16-bit, gray or colour,
any size), so a mask written here equals ``evaluate --save-pred``'s for the same image and model.

Per image ``OUT/<stem>.png``: the 0/255 mask at the input's size (``evaluate --pred OUT`` scores a folder of
them); with ``overlay``, ``OUT/overlays/<stem>.png``: the image with each detected target outlined. One
``OUT/detections.csv``: a row per 8-connected component of the mask (the components the metrics count as
targets): its centroid, area, bounding box and the maximum and mean probability inside it. Every file is
written atomically; an image that cannot be read is reported by name and skipped (``strict``: an error).
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from hnanas.data.loading import decode_image
from hnanas.errors import DataError, HnanasError
from hnanas.fileio import atomic_path, write_text
from hnanas.metrics import label_components
from hnanas.pipeline.evaluation import onnx_model, write_prediction_png
from hnanas.progress import progress

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
DETECTION_COLUMNS = ("image", "target", "x", "y", "area_px", "x0", "y0", "x1", "y1", "max_score", "mean_score")
OUTLINE_RGB = (255, 40, 40)


def expand_inputs(items: Sequence[str | Path]) -> list[Path]:
    """Image files from files, folders (their image files, sorted) and glob patterns, in order, each once.
    Two inputs with one file name would write one mask: an error, as is an input that matches nothing."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        else:
            raise DataError(f"{item}: no such image file, folder or pattern")
        if not matches:
            raise DataError(f"{item}: no image files ({', '.join(IMAGE_SUFFIXES)}) there")
        found.extend(p for p in matches if p not in found)
    by_stem: dict[str, Path] = {}
    for p in found:
        if p.stem in by_stem:
            raise DataError(f"{p}: its mask would overwrite {by_stem[p.stem]}'s ({p.stem}.png); predict the two "
                            f"folders into separate --out folders")
        by_stem[p.stem] = p
    return found


@dataclass
class Model:
    """A loaded model: ``predict(raws) -> probabilities`` for a list of same-size raw images (float32 HxW)."""

    source: Path
    kind: str  # "torch" or "onnx"
    predict: Callable[[list[np.ndarray]], list[np.ndarray]]
    batch: int = 1  # images per call (torch; ONNX models run one at a time)


def load_model(model: str | Path, *, device: str = "auto", batch: int = 8) -> Model:
    """A checkpoint, a run folder's checkpoint, or an exported ONNX model, ready to predict."""
    path = Path(model)
    if path.is_dir():
        path = next((c for c in (path / "best.pt", path / "retrain" / "best.pt") if c.is_file()), None)
        if path is None:
            raise HnanasError(f"{model}: no best.pt or retrain/best.pt; retrain the run first (hnanas retrain "
                              f"--run {model}) or pass a checkpoint or .onnx file")
    if not path.is_file():
        raise HnanasError(f"{path}: model file not found; pass a run folder, a best.pt or a model.onnx")
    if path.suffix.lower() == ".onnx":
        _, probability = onnx_model(path, "gpu" if device == "cuda" else "cpu")
        return Model(path, "onnx", lambda raws: [probability(r) for r in raws], 1)
    return Model(path, "torch", _torch_predict(path, device), max(1, batch))


def _torch_predict(path: Path, device: str) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    import torch  # torch and what is built on it: imported here, so that ONNX models run without it

    from hnanas.data import NormStats
    from hnanas.data.augment import pad_to_multiple
    from hnanas.data.torch_data import _normalise, collate_eval
    from hnanas.pipeline.sources import model_from_checkpoint
    from hnanas.runs import load_checkpoint
    from hnanas.train.loop import predict
    from hnanas.train.optim import resolve_device

    state = load_checkpoint(path)
    norm = state.get("input_norm")
    if not norm:
        raise HnanasError(f"{path}: the checkpoint has no input normalisation; retrain it with this hnanas")
    stats = NormStats(float(norm[0]), float(norm[1]))
    net = model_from_checkpoint(state, device=resolve_device(device))

    def run(raws: list[np.ndarray]) -> list[np.ndarray]:
        items = [(torch.from_numpy(pad_to_multiple(_normalise(r, stats), 32, 0.0)[None]),
                  torch.zeros(1, 1, 1), r.shape, str(k)) for k, r in enumerate(raws)]
        batch = collate_eval(items)
        return [prob for _, prob in predict(net, [batch], desc="")]

    return run


def detections(name: str, prob: np.ndarray, binary: np.ndarray) -> list[dict]:
    """One row (DETECTION_COLUMNS) per 8-connected component of ``binary``, in raster order of its first pixel."""
    labels, n = label_components(binary)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    rows, cols = np.indices(binary.shape)
    ys, xs = ndimage.mean(rows, labels, index), ndimage.mean(cols, labels, index)
    areas = ndimage.sum(binary, labels, index)
    peaks, means = ndimage.maximum(prob, labels, index), ndimage.mean(prob, labels, index)
    out = []
    for k, box in enumerate(ndimage.find_objects(labels)):
        out.append({"image": name, "target": k + 1, "x": round(float(xs[k]), 2), "y": round(float(ys[k]), 2),
                    "area_px": int(areas[k]), "x0": box[1].start, "y0": box[0].start, "x1": box[1].stop - 1,
                    "y1": box[0].stop - 1, "max_score": round(float(peaks[k]), 4),
                    "mean_score": round(float(means[k]), 4)})
    return out


def overlay(raw: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """The image (contrast-stretched gray) as RGB with a ring two pixels outside every detected target."""
    lo, hi = np.percentile(raw, (0.5, 99.5)) if raw.size else (0.0, 1.0)
    gray = np.clip((raw - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    region = ndimage.binary_dilation(binary, structure=np.ones((3, 3), bool), iterations=2)
    ring = ndimage.binary_dilation(region, structure=np.ones((3, 3), bool)) & ~region
    rgb[ring] = OUTLINE_RGB
    return rgb


@dataclass
class PredictResult:
    images: int = 0  # images predicted
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable images
    targets: int = 0  # rows of detections.csv
    seconds: float = 0.0  # wall time of reading, predicting and writing


def _batches(paths: Sequence[Path], size: int, strict: bool, skipped: list[str]
             ) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """Readable images in batches of up to ``size`` consecutive images of one size."""
    batch: list[tuple[Path, np.ndarray]] = []
    for path in paths:
        try:
            raw = decode_image(path).astype(np.float32)
        except (DataError, OSError, ValueError) as exc:
            if strict:
                raise DataError(f"{path}: unreadable image ({exc}); fix or remove it, or drop --strict to skip "
                                f"it") from None
            skipped.append(f"{path}: {exc}")
            log.warning("skipped %s: %s", path, exc)
            continue
        if batch and (len(batch) >= size or batch[0][1].shape != raw.shape):
            yield batch
            batch = []
        batch.append((path, raw))
    if batch:
        yield batch


def predict_images(model: Model, inputs: Sequence[Path], out: str | Path, *, threshold: float = 0.5,
                   with_overlay: bool = False, strict: bool = False) -> PredictResult:
    """Masks (and overlays) of every input into ``out`` and ``out/detections.csv``; see the module docstring."""
    if not 0.0 <= threshold < 1.0:
        raise HnanasError(f"predict: --threshold must be in [0, 1), got {threshold}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result, rows, t0 = PredictResult(), [], time.perf_counter()
    with progress(total=len(inputs), desc="predict", unit="img") as bar:
        for batch in _batches(inputs, model.batch, strict, result.skipped):
            for (path, raw), prob in zip(batch, model.predict([raw for _, raw in batch])):
                binary = prob > threshold
                write_prediction_png(out / f"{path.stem}.png", prob, threshold)
                if with_overlay:
                    with atomic_path(out / "overlays" / f"{path.stem}.png") as tmp:
                        Image.fromarray(overlay(raw, binary)).save(tmp, format="PNG")
                rows.extend(detections(path.name, prob, binary))
                result.images += 1
            bar.update(len(batch))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=DETECTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "detections.csv", table.getvalue())
    result.targets, result.seconds = len(rows), time.perf_counter() - t0
    if result.images == 0:
        raise DataError(f"predict: none of the {len(inputs)} inputs could be read (first: {result.skipped[0]})")
    return result

