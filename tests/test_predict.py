"""hnanas predict: a trained network (checkpoint, run folder or ONNX export) on the user's own images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hnanas.cli import main
from hnanas.data import open_dataset
from hnanas.data.loading import decode_image
from hnanas.errors import DataError
from hnanas.metrics import label_components
from hnanas.pipeline.evaluation import _onnx_predictions, _torch_predictions
from hnanas.predict import expand_inputs, load_model, predict_images


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 127


def _rows(out: Path) -> list[dict]:
    with open(out / "detections.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.real_data
@pytest.mark.parametrize("dataset", ["nuaa_root", "nudt_root"])
def test_masks_equal_evaluates_on_real_images_for_the_checkpoint_and_its_onnx(retrained, dataset, request, tmp_path):
    root = request.getfixturevalue(dataset)
    index = open_dataset(root)
    ids = index.split().test[:3]
    images = [index.paths(i).image for i in ids]
    for model, reference in ((retrained / "best.pt", _torch_predictions), (retrained / "model.onnx",
                                                                           _onnx_predictions)):
        out = tmp_path / model.suffix[1:]
        assert main(["predict", "--model", str(model), *map(str, images), "--out", str(out), "--overlay"]) == 0
        rows = _rows(out)
        for (image_id, prob, _), image in zip(reference(model, index, ids, "resize", "cpu")
                                              if model.suffix == ".pt" else reference(model, index, ids, "resize"),
                                              images):
            got = _mask(out / f"{image.stem}.png")
            assert np.array_equal(got, prob > 0.5), (model.name, image_id)  # what evaluate --save-pred writes
            assert got.shape == decode_image(image).shape
            mine = [r for r in rows if r["image"] == image.name]
            assert len(mine) == label_components(got)[1]  # one row per target the metrics would count
            assert sum(int(r["area_px"]) for r in mine) == int(got.sum())
            for r in mine:
                assert int(r["x0"]) <= float(r["x"]) <= int(r["x1"]) and int(r["y0"]) <= float(r["y"]) <= int(r["y1"])
                assert 0.5 < float(r["mean_score"]) <= float(r["max_score"]) <= 1.0
            overlay = np.asarray(Image.open(out / "overlays" / f"{image.stem}.png"))
            assert overlay.shape == (*got.shape, 3)


def test_a_run_folder_predicts_16_bit_odd_sized_images_and_skips_corrupt_ones(retrained, workspace, tmp_path, capsys):
    source = sorted((workspace / "tinydata" / "images").iterdir())[0]
    raw = decode_image(source)[:37, :53]  # odd size: padded to 64x64 and cropped back
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(raw.astype(np.uint8)).save(folder / "eight.png")
    Image.fromarray(raw.astype(np.uint16) * 257).save(folder / "sixteen.tif")  # 16-bit: the same pixel values
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "notes.txt").write_text("not an image: ignored")
    out = tmp_path / "out"
    assert main(["predict", "--model", str(retrained.parent), str(folder), "--out", str(out)]) == 0  # RUN/retrain
    printed = capsys.readouterr().out
    assert "predicted 2 image(s)" in printed and "skipped 1 unreadable image(s)" in printed and "corrupt.png" in printed
    assert _mask(out / "eight.png").shape == (37, 53)
    assert np.array_equal(_mask(out / "eight.png"), _mask(out / "sixteen.png"))
    assert not (out / "corrupt.png").exists() and (out / "detections.csv").is_file()
    strict = tmp_path / "strict"
    assert main(["predict", "--model", str(retrained / "best.pt"), str(folder / "corrupt.png"), "--out", str(strict),
                 "--strict"]) == 2
    assert "corrupt.png" in capsys.readouterr().err and not (strict / "detections.csv").exists()


def test_inputs_expand_from_globs_and_clashing_names_or_empty_matches_are_errors(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / sub / "x.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "y.bmp")
    assert expand_inputs([str(tmp_path / "a" / "*")]) == [tmp_path / "a" / "x.png", tmp_path / "a" / "y.bmp"]
    assert expand_inputs([tmp_path / "a", tmp_path / "a" / "x.png"]) == [tmp_path / "a" / "x.png",
                                                                         tmp_path / "a" / "y.bmp"]
    with pytest.raises(DataError, match="would overwrite"):
        expand_inputs([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DataError, match="no such image file"):
        expand_inputs([tmp_path / "missing.png"])
    with pytest.raises(DataError, match="no image files"):
        expand_inputs([str(tmp_path / "*.jpg")])


def test_batches_give_the_masks_of_single_images(retrained, workspace, tmp_path):
    images = sorted((workspace / "tinydata" / "images").iterdir())[:5]
    one = predict_images(load_model(retrained / "best.pt", device="cpu", batch=1), images, tmp_path / "one")
    many = predict_images(load_model(retrained / "best.pt", device="cpu", batch=4), images, tmp_path / "many")
    assert one.images == many.images == 5
    for image in images:
        assert np.array_equal(_mask(tmp_path / "one" / f"{image.stem}.png"), _mask(tmp_path / "many" / f"{image.stem}.png"))
    assert _rows(tmp_path / "one") == _rows(tmp_path / "many")
