"""``hnanas evaluate``: the IRST metrics of a torch checkpoint, an ONNX model, or a folder of prediction PNGs.

Both model paths score every test image of the split at its true size: the image is normalised (torch: with
the checkpoint's training statistics; ONNX: the model normalises itself) and padded at the bottom/right to a
multiple of 32 with the training mean, the logits are cropped back, and ``sigmoid > threshold`` is the
prediction. The ONNX path runs ONNX Runtime on raw pixels and needs no torch model code; it reads the padding
value from the model's ``hnanas.input_norm`` metadata (:mod:`hnanas.pipeline.deploy`). ``save_pred`` writes one
``<id>.png`` (0/255) per image, which ``--pred`` scores back to the same metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from scipy.special import expit

from hnanas.data import open_dataset
from hnanas.data.augment import crop_to_size, pad_to_multiple
from hnanas.data.index import DatasetIndex
from hnanas.data.loading import MismatchPolicy, decode_image, load_mask, usable_ids
from hnanas.errors import HnanasError
from hnanas.fileio import atomic_path
from hnanas.metrics import IRSTMetrics
from hnanas.pipeline.scoring import score_split_predictions
from hnanas.progress import progress
from hnanas.runtime import make_session

log = logging.getLogger(__name__)


def write_prediction_png(path: Path, prob: np.ndarray, threshold: float = 0.5) -> None:
    """``prob > threshold`` as an 8-bit 0/255 PNG (the ``--pred`` folder format)."""
    with atomic_path(path) as tmp:
        Image.fromarray(((prob > threshold) * 255).astype(np.uint8)).save(tmp, format="PNG")


def _score(predictions: Iterator[tuple[str, np.ndarray, np.ndarray]], threshold: float,
           save_pred: str | Path | None) -> dict:
    metrics = IRSTMetrics(threshold)
    out = Path(save_pred) if save_pred else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for image_id, prob, mask in predictions:
        metrics.update(prob, mask)
        if out is not None:
            write_prediction_png(out / f"{image_id}.png", prob, threshold)
    if metrics.n_images == 0:
        raise HnanasError("no test image to evaluate (the split's test list is empty after the mismatch policy)")
    return metrics.compute()


def evaluate_model_file(model_path: str | Path, index: DatasetIndex, split: str | None = None, *,
                        on_mismatch: MismatchPolicy = "resize", threshold: float = 0.5,
                        save_pred: str | Path | None = None, device: str = "auto") -> dict:
    """Metrics of a checkpoint (``.pt``) or ONNX model (``.onnx``) on ``index``'s split (test ids)."""
    path = Path(model_path)
    if not path.is_file():
        raise HnanasError(f"{path}: model file not found")
    chosen = index.split(split)
    ids = usable_ids(index, chosen.test, on_mismatch)
    if path.suffix.lower() == ".onnx":
        predictions = _onnx_predictions(path, index, ids, on_mismatch)
    else:
        predictions = _torch_predictions(path, index, ids, on_mismatch, device)
    metrics = _score(predictions, threshold, save_pred)
    return {**metrics, "dataset": index.name, "split": chosen.name, "model": str(path)}


def checkpoint_dataset(model_path: str | Path) -> tuple[str | None, str | None, str | None]:
    """(dataset, data root, split) a retrain checkpoint was trained on, for defaults; Nones when unknown."""
    path = Path(model_path)
    if path.suffix.lower() == ".onnx" or not path.is_file():
        return None, None, None
    from hnanas.runs import load_checkpoint  # torch: here, so that scoring ONNX models or PNGs starts without it

    data = (load_checkpoint(path).get("config") or {}).get("data") or {}
    return data.get("dataset"), data.get("data_root"), data.get("split")


def _torch_predictions(path: Path, index: DatasetIndex, ids: list[str], on_mismatch: MismatchPolicy, device: str
                       ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    # torch and everything built on it: imported here, so that scoring ONNX models or PNG folders starts without it
    from hnanas.data import NormStats, norm_stats
    from hnanas.data.torch_data import EvalDataset, SampleStore
    from hnanas.pipeline.sources import model_from_checkpoint
    from hnanas.runs import load_checkpoint
    from hnanas.train.loaders import eval_loader
    from hnanas.train.loop import predict
    from hnanas.train.optim import resolve_device

    state = load_checkpoint(path)
    model = model_from_checkpoint(state, device=resolve_device(device))
    norm = state.get("input_norm")
    if norm:
        stats = NormStats(float(norm[0]), float(norm[1]))
    else:
        stats = norm_stats(index, None)
        log.warning("warning: %s has no input normalisation; using %s's own statistics", path, index.name)
    store = SampleStore(index, on_mismatch)
    dataset = EvalDataset(store, ids, stats)
    for image_id, prob in predict(model, eval_loader(dataset), desc="evaluate"):
        yield image_id, prob, store.get(image_id).mask


def onnx_input_norm(session) -> tuple[float, float] | None:
    """The ``hnanas.input_norm`` metadata of an ONNX session, if the model has it."""
    meta = session.get_modelmeta().custom_metadata_map
    if "hnanas.input_norm" not in meta:
        return None
    mean, std = json.loads(meta["hnanas.input_norm"])
    return float(mean), float(std)


def model_threshold(path: str | Path) -> float | None:
    """The decision threshold a retrain chose on its validation subset and stored with the model
    (``train.select_threshold``: ``best.pt``'s ``best.threshold``, ``model.onnx``'s ``hnanas.threshold``);
    None for a model without one (use 0.5, the field's protocol)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx  # imported here: scoring PNG folders starts without it

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return float(meta["hnanas.threshold"]) if "hnanas.threshold" in meta else None
    from hnanas.runs import load_checkpoint  # torch: imported here, as for _torch_predictions

    state = load_checkpoint(path)
    chosen = state.get("config", {}).get("train", {}).get("select_threshold")
    return float(state["best"]["threshold"]) if chosen and "threshold" in state.get("best", {}) else None


def resolve_threshold(given: float | None, model_path: str | Path, command: str) -> float:
    """``--threshold`` when given, else the model's own (:func:`model_threshold`, said in the log), else 0.5."""
    if given is not None:
        if not 0.0 <= given < 1.0:
            raise HnanasError(f"{command}: --threshold must be in [0, 1), got {given}")
        return given
    own = model_threshold(model_path)
    if own is not None:
        log.info("threshold %g: chosen on the validation subset by %s's retrain (--threshold overrides it)", own,
                 model_path)
    return 0.5 if own is None else own


def onnx_model(path: str | Path, device: str = "cpu"):
    """``(session, probability)``: an ONNX Runtime session of an exported model and the function that runs it on
    one raw image (float32 HxW, 0..255; padded at the bottom/right to a multiple of 32, or to the model's fixed
    size, with the training mean from the model's ``hnanas.input_norm``), returning sigmoid probabilities at the
    image's size."""
    session = make_session(Path(path), device, threads=0)
    norm = onnx_input_norm(session)
    pad_value = norm[0] if norm else 0.0
    if norm is None:
        log.warning("warning: %s has no hnanas.input_norm metadata; padding images with 0", path)
    inp = session.get_inputs()[0]
    fixed = [d if isinstance(d, int) else None for d in inp.shape[-2:]]

    def probability(raw: np.ndarray, name: str = "image") -> np.ndarray:
        x = pad_to_multiple(raw.astype(np.float32, copy=False), 32, pad_value)
        if fixed[0] is not None and fixed[1] is not None and x.shape != tuple(fixed):
            if x.shape[0] > fixed[0] or x.shape[1] > fixed[1]:
                raise HnanasError(f"{path}: fixed input size {fixed[1]}x{fixed[0]} is smaller than {name} "
                                  f"({raw.shape[1]}x{raw.shape[0]}); export with --dynamic-shapes")
            x = np.pad(x, ((0, fixed[0] - x.shape[0]), (0, fixed[1] - x.shape[1])), constant_values=pad_value)
        logits = session.run(None, {inp.name: x[None, None]})[0][0, 0]
        return expit(crop_to_size(logits, raw.shape)).astype(np.float32)

    return session, probability


def _onnx_predictions(path: Path, index: DatasetIndex, ids: list[str], on_mismatch: MismatchPolicy
                      ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    _, probability = onnx_model(path)
    for image_id in progress(ids, desc="evaluate (onnx)", unit="img"):
        paths = index.paths(image_id)
        raw = decode_image(paths.image).astype(np.float32)
        mask = load_mask(paths.mask, raw.shape, on_mismatch, warn=False)
        yield image_id, probability(raw, f"image {paths.image}"), mask


def evaluate_predictions(pred_dir: str | Path, index: DatasetIndex, split: str | None = None, *,
                         on_mismatch: MismatchPolicy = "resize") -> dict:
    """Metrics of a folder of ``<id>.png`` predictions (see :mod:`hnanas.pipeline.scoring`)."""
    return {**score_split_predictions(pred_dir, index, split, on_mismatch=on_mismatch), "model": None,
            "predictions": str(pred_dir)}


def open_eval_dataset(dataset: str | None, data_root: str | None, model_path: str | Path | None
                      ) -> tuple[DatasetIndex, str | None]:
    """The dataset to evaluate on: ``dataset`` when given, else the checkpoint's training dataset, else the
    synthetic one; plus the default split (the checkpoint's, when the dataset is the checkpoint's)."""
    trained, trained_root, trained_split = checkpoint_dataset(model_path) if model_path else (None, None, None)
    if dataset is None and trained is not None:
        log.info("evaluating on %s (the checkpoint's training dataset; pass --dataset for another)", trained)
        return open_dataset(trained, data_root or trained_root), trained_split
    return open_dataset(dataset or "synthetic", data_root), None
