"""A decision threshold chosen on validation (train.select_threshold): the metrics that choose it, evaluate's choice
on a network whose probabilities never pass 0.5, and a retrain that stores it for predict and evaluate."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from hnanas.metrics import THRESHOLD_GRID, choose_threshold, compute_metrics, iou_by_threshold
from hnanas.pipeline.evaluation import model_threshold, resolve_threshold
from hnanas.runs import load_checkpoint
from hnanas.train.loop import evaluate
from retrain_fixtures import TRAIN_ARGS, run_hnanas


def test_iou_by_threshold_equals_the_metrics_at_each_threshold():
    rng = np.random.default_rng(0)
    probs = [rng.random((20, 30)).astype(np.float32) ** 3, rng.random((16, 16)).astype(np.float32)]
    masks = [rng.random((20, 30)) > 0.9, np.zeros((16, 16), bool)]
    ious = iou_by_threshold(probs, masks)
    assert list(ious) == list(THRESHOLD_GRID) and THRESHOLD_GRID[0] == 0.01 and THRESHOLD_GRID[-1] == 0.99
    assert {0.05, 0.5, 0.95} <= set(THRESHOLD_GRID) and list(THRESHOLD_GRID) == sorted(set(THRESHOLD_GRID))
    for t, iou in ious.items():
        assert iou == pytest.approx(compute_metrics(probs, masks, threshold=t)["iou"], abs=1e-12)
    # a value exactly at the threshold is not target (strictly greater, as the metrics)
    assert iou_by_threshold([np.array([[0.5, 0.6]], np.float32)], [np.array([[1, 1]])], [0.5]) == {0.5: 0.5}
    # float32 values next to a threshold fall on the side the metrics put them
    near = [np.array([[0.05, 0.3, 0.7]], np.float32)]
    gt = [np.array([[1, 0, 1]])]
    for t in (0.05, 0.3, 0.7):
        assert iou_by_threshold(near, gt, [t])[t] == compute_metrics(near, gt, threshold=t)["iou"]


def test_choose_threshold_takes_the_best_iou_ties_nearest_the_default_and_the_default_when_all_are_zero():
    assert choose_threshold({0.3: 0.2, 0.4: 0.6, 0.5: 0.1}) == 0.4
    assert choose_threshold({0.2: 0.6, 0.4: 0.6, 0.7: 0.6}) == 0.4
    assert choose_threshold({0.4: 0.6, 0.6: 0.6}) == 0.4  # equally near: the lower
    assert choose_threshold({0.3: 0.0, 0.4: 0.0}, default=0.5) == 0.5


class Capped(torch.nn.Module):
    """Logits = the image: -0.25 on targets (p = 0.438), -5 elsewhere: a perfect detector below 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_evaluate_chooses_the_threshold_where_a_capped_network_segments():
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, 0, 3:5, 3:5] = 1
    mask[1, 0, 10, 12] = 1
    images = torch.where(mask > 0, torch.tensor(-0.25), torch.tensor(-5.0))
    loader = [(images, mask, [(16, 16), (16, 16)], ["a", "b"])]
    fixed = evaluate(Capped(), loader, threshold=0.5)
    assert fixed["iou"] == 0.0 and fixed["pd"] == 0.0 and "threshold" not in fixed
    chosen = evaluate(Capped(), loader, threshold=0.5, select_threshold=True)
    assert chosen["threshold"] == 0.4  # every threshold in [0.05, 0.4] segments perfectly: the one nearest 0.5
    assert chosen["iou"] == 1.0 and chosen["pd"] == 1.0 and chosen["fa"] == 0.0
    # another grid (train.threshold_grid) is the one chosen among; none of it segmenting keeps the threshold
    assert evaluate(Capped(), loader, select_threshold=True, thresholds=(0.1, 0.3))["threshold"] == 0.3
    assert evaluate(Capped(), loader, select_threshold=True, thresholds=(0.6, 0.9))["threshold"] == 0.5
    # the test set scored at the chosen threshold and at 0.5 in one pass (finish_retrain's at_config_threshold)
    both = evaluate(Capped(), loader, threshold=0.4, also_at=0.5)
    assert both["iou"] == 1.0 and both["also_at"] == fixed
    same = evaluate(Capped(), loader, threshold=0.5, select_threshold=True, also_at=0.5)  # counted once, kept
    assert same["threshold"] == 0.4 and same["iou"] == 1.0 and same["also_at"] == fixed


def test_a_retrain_with_select_threshold_stores_its_threshold_for_evaluate_and_predict(retrained, workspace):
    out = workspace / "runs" / "threshold"
    result = run_hnanas(["retrain", "--run", "runs/search", "--out", "runs/threshold", "--select-threshold",
                         *TRAIN_ARGS], workspace)
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["threshold_from"] == "validation" and m["threshold"] in THRESHOLD_GRID + (0.5,)
    assert m["at_config_threshold"]["threshold"] == 0.5 and set(m["at_config_threshold"]) >= {"iou", "pd", "fa"}
    with open(out / "retrain_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    validated = [r for r in rows if r["val_iou"]]
    assert validated and all(float(r["val_threshold"]) in THRESHOLD_GRID + (0.5,) for r in validated)
    best = next(r for r in validated if int(r["epoch"]) == m["best_epoch"])
    assert float(best["val_threshold"]) == m["threshold"]
    # the validation IoU at the config's 0.5 is logged beside it; at the chosen threshold it is at least that
    assert all(float(r["val_iou"]) >= float(r["val_iou_at_config"]) - 1e-12 for r in validated)
    assert all(r["val_iou"] == r["val_iou_at_config"] for r in validated if float(r["val_threshold"]) == 0.5)
    assert model_threshold(out / "best.pt") == m["threshold"] == model_threshold(out / "model.onnx")
    assert resolve_threshold(None, out / "best.pt", "evaluate") == m["threshold"]
    assert resolve_threshold(0.7, out / "best.pt", "evaluate") == 0.7
    # a retrain without the option keeps 0.5 and stores nothing
    plain = json.loads((retrained / "metrics.json").read_text())
    assert plain["threshold"] == 0.5 and plain["threshold_from"] == "config"
    assert model_threshold(retrained / "best.pt") is None and model_threshold(retrained / "model.onnx") is None
    assert "threshold" not in load_checkpoint(retrained / "best.pt")["best"]
    assert resolve_threshold(None, retrained / "model.onnx", "predict") == 0.5
    # evaluate's default is the stored threshold: it scores the test set as the retrain did
    scored = workspace / "scored.json"
    result = run_hnanas(["evaluate", "--checkpoint", "runs/threshold/best.pt", "--json", str(scored)], workspace)
    assert result.returncode == 0, result.stderr
    assert json.loads(scored.read_text())["iou"] == pytest.approx(m["iou"], abs=1e-12)
    with pytest.raises(Exception, match="--threshold must be in"):
        resolve_threshold(1.5, out / "best.pt", "evaluate")


@pytest.mark.parametrize("grid", [(), (0.0, 0.5), (0.5, 1.0), (0.5, 0.3), (0.3, 0.3)])
def test_a_threshold_grid_must_be_increasing_thresholds_between_0_and_1(grid):
    from hnanas.pipeline.presets import TrainConfig

    with pytest.raises(ValueError, match="threshold_grid must be increasing"):
        TrainConfig(threshold_grid=grid)
