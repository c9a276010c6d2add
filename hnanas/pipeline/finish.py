"""The final phase of a retrain: test the chosen checkpoint once, re-parameterise, export, measure, draw.

Runs again from scratch when a finished run is resumed (it reads only ``best.pt`` and the data), so a kill during
export or timing loses nothing. Writes ``metrics.json``, ``model.onnx`` (deploy form, dynamic H/W, input
normalisation inside), ``latency.json`` and ``predictions.png``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from hnanas.data import DataBundle
from hnanas.fileio import json_safe, write_json
from hnanas.ops import count_macs, count_params
from hnanas.pipeline.deploy import (deploy_network, export_checked, measure_latency, onnx_metadata,
                                 reparameterize_checked)
from hnanas.pipeline.figures import draw_predictions, prediction_rows
from hnanas.pipeline.presets import RetrainConfig
from hnanas.pipeline.sources import deploy_size, spec_name
from hnanas.runs import RunDir, read_csv_rows
from hnanas.train.loaders import eval_loader
from hnanas.train.loop import evaluate, predict

log = logging.getLogger(__name__)


@dataclass
class RetrainResult:
    """What a retrain produced: its folder, the test metrics, the latency per device and a one-line summary."""

    out: Path
    metrics: dict
    latency: dict
    summary: str


def _training_budget(run: RunDir, cfg: RetrainConfig, steps_per_epoch: int, train_path: str) -> dict:
    seconds = sum(float(r.get("seconds") or 0.0) for r in read_csv_rows(run.file("retrain_log.csv")))
    return {"epochs": cfg.train.epochs, "steps": cfg.train.epochs * steps_per_epoch,
            "batch_size": cfg.train.batch_size, "crop_size": cfg.data.crop_size,
            "optimizer": cfg.optim.name, "lr": cfg.optim.lr, "scheduler": cfg.optim.scheduler,
            "loss": cfg.train.loss, "train_path": train_path, "seconds": round(seconds, 1)}


def finish_retrain(run: RunDir, cfg: RetrainConfig, spec: dict, model: torch.nn.Module, data: DataBundle,
                   best: dict) -> RetrainResult:
    """Test ``best.pt``'s weights, then deploy them; writes every output file of the run."""
    chosen = run.load_checkpoint("best.pt")
    model.load_state_dict(chosen["model_state"])
    input_norm = chosen["input_norm"]
    t = cfg.train
    test_loader = eval_loader(data.test, t.num_workers)
    # the threshold chosen on the validation subset with the checkpoint (train.select_threshold), else the config's
    # (also when there was no validation subset to choose on)
    chosen_on_val = t.select_threshold and "threshold" in best
    threshold = float(best["threshold"]) if chosen_on_val else t.threshold
    log.info("testing the checkpoint of epoch %s on %d test images (threshold %g%s)", best.get("epoch"),
             len(data.test), threshold, ", chosen on the validation subset" if chosen_on_val else "")
    test = evaluate(model, test_loader, threshold=threshold, desc="test",
                    also_at=t.threshold if threshold != t.threshold else None)  # one pass for both
    fixed = test.get("also_at", test)

    images = next(iter(eval_loader(Subset(data.test, [0]))))[0]
    deploy = reparameterize_checked(model, images)
    net = deploy_network(deploy, input_norm)
    raw = images * input_norm[1] + input_norm[0]
    h, w = deploy_size(spec)
    meta = onnx_metadata(spec, input_norm, {"hnanas.trained_on": f"{data.index.name}:{data.split.name}",
                                            **({"hnanas.threshold": repr(threshold)} if chosen_on_val else {})})
    export_checked(net, raw, meta, dynamic=True, path=run.file("model.onnx"))
    size = cfg.latency.size or [h, w]
    static = export_checked(net, torch.rand(1, 1, size[0], size[1], generator=torch.Generator().manual_seed(0)) * 255,
                            meta)
    latency = measure_latency(static, spec, devices=cfg.latency.devices, threads=cfg.latency.threads, size=size,
                              sessions=cfg.latency.sessions)
    write_json(run.file("latency.json"), json_safe(latency))

    steps_per_epoch = int(chosen["step"]) // max(int(chosen["epoch"]), 1)
    metrics = {k: test[k] for k in ("iou", "niou", "pd", "fa")}
    metrics.update({
        "split": data.split.name, "dataset": data.index.name, "epochs": t.epochs, "n_images": test["n_images"],
        "val_iou": best.get("val_iou"), "best_epoch": best.get("epoch"), "val_images": best.get("val_images"),
        "threshold": threshold, "threshold_from": "validation" if chosen_on_val else "config",
        # the field's fixed-threshold protocol (train.threshold), whatever threshold was chosen
        "at_config_threshold": {"threshold": t.threshold, **{k: fixed[k] for k in ("iou", "niou", "pd", "fa")}},
        "model": spec_name(spec), "params": count_params(deploy),
        "macs": count_macs(deploy, (1, 1, h, w)), "macs_size": [h, w],
        "training": _training_budget(run, cfg, steps_per_epoch, chosen.get("train_path", "fp32")),
        "counts": {k: test[k] for k in ("n_targets", "n_detected", "n_pred_components", "fa_pixels",
                                        "total_pixels", "intersection", "union")},
    })
    write_json(run.file("metrics.json"), json_safe(metrics))

    if t.figure_images:
        _draw(run, model, data, t.figure_images, threshold, spec)
    summary = _summary(run, spec, metrics, latency)
    run.note(summary)
    return RetrainResult(run.path, metrics, latency, summary)


def _draw(run: RunDir, model: torch.nn.Module, data: DataBundle, n: int, threshold: float, spec: dict) -> None:
    has_target = [bool(data.store.get(i).mask.any()) for i in data.test.ids]
    order = [k for k, t in enumerate(has_target) if t] + [k for k, t in enumerate(has_target) if not t]
    subset = Subset(data.test, sorted(order[:n]))  # images with targets first
    samples = []
    for image_id, prob in predict(model, eval_loader(subset), desc="figure"):
        sample = data.store.get(image_id)
        samples.append((image_id, sample.image, sample.mask, prob))
    draw_predictions(prediction_rows(samples, threshold), run.file("predictions.png"), threshold=threshold,
                     title=f"{spec_name(spec)} on {data.index.name} ({data.split.name}, test)")


def _summary(run: RunDir, spec: dict, m: dict, latency: dict) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"

    lat = "; ".join(f"{d} {v['measured_ms']:.1f} ms" + (f" (table {v['predicted_ms']:.1f} ms)"
                                                         if v.get("predicted_ms") is not None else "")
                    for d, v in latency.items())
    return (f"retrain {spec_name(spec)}: test IoU {pct(m['iou'])} nIoU {pct(m['niou'])} Pd {pct(m['pd'])} "
            f"Fa {1e6 * m['fa']:.2f}e-6 on {m['dataset']} {m['split']} ({m['n_images']} images)"
            + (f" at threshold {m['threshold']:g} chosen on validation (IoU {pct(m['at_config_threshold']['iou'])} "
               f"at {m['at_config_threshold']['threshold']:g})" if m.get("threshold_from") == "validation" else "")
            + f"; val IoU "
            f"{pct(m['val_iou'])} at epoch {m['best_epoch']}/{m['epochs']}; {lat or 'no latency measured'}; "
            f"{np.round(m['training']['seconds'] / 60, 1)} min training -> {run.path}")
