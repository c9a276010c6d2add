"""evaluate (torch checkpoint, ONNX model, prediction folders) and export (static and dynamic shapes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from hnanas.cli import main
from hnanas.data import load_mask, open_dataset, usable_ids
from hnanas.data.loading import read_size
from hnanas.errors import DataError
from hnanas.nas.models import Normalized
from hnanas.ops import reparameterize_model
from hnanas.pipeline.evaluation import evaluate_model_file, evaluate_predictions
from hnanas.pipeline.export import export_run
from hnanas.pipeline.sources import model_from_checkpoint
from hnanas.runs import load_checkpoint
from hnanas.runtime import run_onnx


METRIC_KEYS = ("iou", "niou", "pd", "fa", "n_images", "n_targets", "n_detected", "fa_pixels", "intersection", "union")


def cli_json(args: list[str], out: Path) -> dict:
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_checkpoint_onnx_and_saved_predictions_give_the_same_metrics(retrained, tmp_path, capsys):
    torch_m = cli_json(["evaluate", "--checkpoint", str(retrained / "best.pt"), "--save-pred", str(tmp_path / "p")],
                       tmp_path / "torch.json")
    printed = capsys.readouterr().out
    assert "best.pt on tinydata (default, test)" in printed and "IoU (%)" in printed
    assert torch_m["dataset"] == "tinydata" and torch_m["split"] == "default"  # the checkpoint's own data
    data_dir = str(Path(retrained).parents[2] / "tinydata")
    onnx_m = cli_json(["evaluate", "--checkpoint", str(retrained / "model.onnx"), "--dataset", data_dir],
                      tmp_path / "onnx.json")
    pred_m = cli_json(["evaluate", "--pred", str(tmp_path / "p"), "--dataset", data_dir], tmp_path / "pred.json")
    assert {k: onnx_m[k] for k in METRIC_KEYS} == {k: torch_m[k] for k in METRIC_KEYS}
    assert {k: pred_m[k] for k in METRIC_KEYS} == {k: torch_m[k] for k in METRIC_KEYS}
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(
        f"{i}.png" for i in open_dataset(data_dir).split().test)
    retrain_m = json.loads((retrained / "metrics.json").read_text())
    assert {k: retrain_m[k] for k in ("iou", "niou", "fa")} == {k: torch_m[k] for k in ("iou", "niou", "fa")}


def write_ground_truth(index, ids, folder: Path) -> None:
    """Each id's mask, as the data layer reads it at its image's size, written as a 0/255 prediction PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        paths = index.paths(image_id)
        mask = load_mask(paths.mask, read_size(paths.image), "resize", warn=False)
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{image_id}.png")


def test_ground_truth_predictions_score_perfectly_on_synthetic(retrained, tmp_path):
    index = open_dataset(Path(retrained).parents[2] / "tinydata")
    write_ground_truth(index, index.split().test, tmp_path / "gt")
    m = evaluate_predictions(tmp_path / "gt", index)
    assert (m["iou"], m["pd"], m["fa"], m["n_images"]) == (1.0, 1.0, 0.0, 5)


@pytest.mark.real_data
def test_ground_truth_predictions_score_perfectly_on_nuaa_idx_427(nuaa_root, tmp_path, capsys):
    index = open_dataset(nuaa_root)
    test_ids = index.split("idx_427").test
    write_ground_truth(index, test_ids, tmp_path / "gt")
    m = cli_json(["evaluate", "--pred", str(tmp_path / "gt"), "--dataset", str(nuaa_root), "--split", "idx_427"],
                 tmp_path / "m.json")
    assert (m["iou"], m["niou"], m["pd"], m["fa"]) == (1.0, 1.0, 1.0, 0.0)
    assert m["n_images"] == len(test_ids) == 86 and m["split"] == "idx_427"
    skipped = evaluate_predictions(tmp_path / "gt", index, "idx_427", on_mismatch="skip")
    assert skipped["n_images"] == len(usable_ids(index, test_ids, "skip")) == 85  # Misc_111's mask is 592x400
    assert main(["evaluate", "--pred", str(tmp_path / "gt"), "--dataset", str(nuaa_root), "--split", "idx_427",
                 "--on-mismatch", "error"]) == 2
    assert "Misc_111" in capsys.readouterr().err
    Image.fromarray(np.zeros((400, 592), np.uint8)).save(tmp_path / "gt" / "Misc_111.png")  # the mask's own size
    with pytest.raises(DataError, match=r"Misc_111.png: mask size 592x400 differs from its image 325x220"):
        evaluate_predictions(tmp_path / "gt", index, "idx_427", on_mismatch="error")  # the mask stops it first
    resized = evaluate_predictions(tmp_path / "gt", index, "idx_427")  # default: resized like the mask, warned
    assert resized["n_images"] == 86 and resized["pd"] < 1.0  # Misc_111's (empty) prediction now misses


def test_export_static_matches_torch_and_dynamic_accepts_another_size(retrained, tmp_path, capsys):
    assert main(["export", "--run", str(retrained), "--out", str(tmp_path / "static.onnx")]) == 0
    assert "matches torch in ONNX Runtime" in capsys.readouterr().out
    dynamic = export_run(retrained, out=tmp_path / "dynamic.onnx", dynamic=True)
    assert dynamic.trained and dynamic.size == (32, 32)
    state = load_checkpoint(retrained / "best.pt")
    net = Normalized(reparameterize_model(model_from_checkpoint(state)), *state["input_norm"]).eval()
    rng = np.random.default_rng(0)
    for path, shape in ((tmp_path / "static.onnx", (1, 1, 32, 32)), (tmp_path / "dynamic.onnx", (1, 1, 64, 96))):
        x = rng.uniform(0, 255, shape).astype(np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        assert np.abs(run_onnx(path, x) - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_onnx(tmp_path / "static.onnx", np.zeros((1, 1, 64, 96), np.float32))
    meta = ort.InferenceSession(str(tmp_path / "static.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["hnanas.input_norm"]) == pytest.approx(state["input_norm"])
    assert json.loads(meta["hnanas.model"])["kind"] == "nested"


def test_export_of_a_search_run_without_retrain_uses_untrained_weights(workspace, tmp_path):
    search = tmp_path / "search"
    search.mkdir()
    for name in ("genotype.json", "config.yaml"):
        (search / name).write_bytes((workspace / "runs" / "search" / name).read_bytes())
    result = export_run(search)
    assert result.path == search / "export.onnx" and not result.trained and "UNTRAINED" in result.summary()
    meta = ort.InferenceSession(str(result.path)).get_modelmeta().custom_metadata_map
    assert meta["hnanas.untrained"] == "true" and "hnanas.input_norm" not in meta
    assert main(["export", "--run", str(tmp_path / "empty")]) == 2


def test_evaluate_onnx_with_a_fixed_size_pads_to_it(retrained, tmp_path):
    export_run(retrained, out=tmp_path / "s96.onnx", size=(96, 96))
    index = open_dataset(Path(retrained).parents[2] / "tinydata")
    m = evaluate_model_file(tmp_path / "s96.onnx", index)
    assert m["n_images"] == 5 and 0.0 <= m["iou"] <= 1.0
    export_run(retrained, out=tmp_path / "s32.onnx", size=(32, 32))
    with pytest.raises(Exception, match="fixed input size 32x32 is smaller than image"):
        evaluate_model_file(tmp_path / "s32.onnx", index)
