"""Scoring a folder of prediction PNGs: exact scores, and one-line errors naming the bad file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hnanas.errors import DataError
from hnanas.pipeline.scoring import read_mask, read_prediction, score_prediction_folder


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


@pytest.fixture
def gt_folder(tmp_path) -> dict[str, Path | None]:
    """Three 0/255 masks of different sizes, one 0/1 mask, and one target-free background (no mask)."""
    masks = {}
    for i, (h, w) in enumerate([(20, 30), (24, 24), (17, 41)]):
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[3 + i:6 + i, 4:7] = 255
        mask[12, 20] = 255
        masks[f"img{i}"] = write_png(tmp_path / "masks" / f"img{i}.png", mask)
    zero_one = np.zeros((10, 12), dtype=np.uint8)
    zero_one[4:6, 4:6] = 1
    masks["ones"] = write_png(tmp_path / "masks" / "ones.png", zero_one)
    masks["background"] = None
    return masks


def write_gt_as_predictions(masks: dict[str, Path | None], pred_dir: Path) -> None:
    for image_id, path in masks.items():
        values = np.zeros((9, 9), np.uint8) if path is None else read_mask(path).astype(np.uint8) * 255
        write_png(pred_dir / f"{image_id}.png", values)


def test_ground_truth_written_as_predictions_scores_perfectly(gt_folder, tmp_path):
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    write_png(pred_dir / "not_listed.png", np.full((5, 5), 255, np.uint8))  # ignored
    m = score_prediction_folder(pred_dir, gt_folder)
    assert (m["iou"], m["niou"], m["pd"], m["fa"]) == (1.0, 1.0, 1.0, 0.0)
    assert m["n_images"] == 5 and m["n_targets"] == 7
    assert m["total_pixels"] == 20 * 30 + 24 * 24 + 17 * 41 + 10 * 12 + 9 * 9


def test_prediction_threshold_and_image_modes(tmp_path):
    gray = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert read_prediction(write_png(tmp_path / "l.png", gray)).tolist() == [[False, False, True, True]]
    assert read_prediction(write_png(tmp_path / "rgb.png", gray, "RGB")).tolist() == [[False, False, True, True]]
    assert read_prediction(write_png(tmp_path / "bit.png", gray, "1")).tolist() == [[False, False, True, True]]
    with pytest.raises(DataError, match="16.png: prediction is a I;16 image"):
        read_prediction(write_png(tmp_path / "16.png", gray.astype(np.uint16) * 257, "I;16"))


def test_false_alarm_and_missed_target_are_scored(gt_folder, tmp_path):
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    pred = np.zeros((20, 30), np.uint8)
    pred[3:6, 4:7] = 200  # keeps the 3x3 target of img0, misses its 1-px target at (12, 20)
    pred[18, 0:2] = 255  # and adds a 2-px false alarm
    write_png(pred_dir / "img0.png", pred)
    m = score_prediction_folder(pred_dir, gt_folder)
    assert m["n_detected"] == m["n_targets"] - 1 and m["fa_pixels"] == 2
    assert m["union"] - m["intersection"] == 3  # one missed pixel, two false ones


def test_missing_prediction_names_the_file_and_counts_the_others(gt_folder, tmp_path):
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    (pred_dir / "img1.png").unlink()
    (pred_dir / "ones.png").unlink()
    with pytest.raises(DataError) as exc:
        score_prediction_folder(pred_dir, gt_folder)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(pred_dir / "img1.png"))
    assert "prediction missing (and 1 more of 5 ids: ones)" in message


@pytest.mark.parametrize("content", [b"", b"not a png at all", None], ids=["empty", "garbage", "truncated"])
def test_corrupt_prediction_is_a_data_error_naming_it(gt_folder, tmp_path, content):
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    bad = pred_dir / "img2.png"
    data = bad.read_bytes()
    bad.write_bytes(content if content is not None else data[: len(data) // 2])  # None: truncated PNG
    expected = f"^{re.escape(str(bad))}: (unreadable prediction PNG|prediction is not an image file)"
    with pytest.raises(DataError, match=expected) as exc:
        score_prediction_folder(pred_dir, gt_folder)
    assert "\n" not in str(exc.value)


def test_size_mismatch_names_prediction_and_mask(gt_folder, tmp_path):
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    write_png(pred_dir / "img1.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(DataError, match=r"img1.png: prediction is 32x32 but its mask .*img1.png is 24x24"):
        score_prediction_folder(pred_dir, gt_folder, on_mismatch="error")
    skipped = score_prediction_folder(pred_dir, gt_folder, on_mismatch="skip")
    resized = score_prediction_folder(pred_dir, gt_folder)  # default: resize, as the dataset's masks
    assert skipped["n_images"] == len(gt_folder) - 1 and resized["n_images"] == len(gt_folder)
    assert skipped["iou"] == 1.0 and resized["iou"] < 1.0  # img1's (empty) prediction now counts


def test_bad_folder_empty_list_and_missing_mask(gt_folder, tmp_path):
    with pytest.raises(DataError, match="prediction folder not found"):
        score_prediction_folder(tmp_path / "nowhere", gt_folder)
    pred_dir = tmp_path / "pred"
    write_gt_as_predictions(gt_folder, pred_dir)
    with pytest.raises(DataError, match="no image ids"):
        score_prediction_folder(pred_dir, {})
    gt_folder["img0"].unlink()
    with pytest.raises(DataError, match=r"img0.png: mask file not found"):
        score_prediction_folder(pred_dir, gt_folder)


@pytest.mark.real_data
def test_real_nuaa_masks_scored_against_themselves(nuaa_root, tmp_path):
    ids = [f"Misc_{n}" for n in range(1, 13)]
    masks = {i: nuaa_root / "masks" / f"{i}.png" for i in ids}
    pred_dir = tmp_path / "pred"
    for image_id, path in masks.items():
        (pred_dir / f"{image_id}.png").parent.mkdir(exist_ok=True)
        (pred_dir / f"{image_id}.png").write_bytes(path.read_bytes())
    m = score_prediction_folder(pred_dir, masks)
    assert (m["iou"], m["pd"], m["fa"]) == (1.0, 1.0, 0.0) and m["n_images"] == 12
    assert m["n_targets"] >= 12  # every NUAA-SIRST mask has at least one target

