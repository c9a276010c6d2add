"""IRST metrics on hand-made masks with numbers worked out by hand, plus a cross-check on random blobs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from hnanas.metrics import IRSTMetrics, compute_metrics, format_metrics, match_components, pixel_average_precision


def blank(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def test_two_targets_one_detected_exact_values():
    gt, pred = blank(20, 30), blank(20, 30)
    gt[2:4, 2:4] = True  # target A: 4 px, centroid (2.5, 2.5)
    gt[10:13, 20:23] = True  # target B: 9 px, missed
    pred[2:4, 2:5] = True  # 6 px over A, centroid (2.5, 3.0): 0.5 px away -> detects A
    pred[15, 5:7] = True  # 2 px false alarm far from both
    m = compute_metrics([pred], [gt])
    assert m["pd"] == 0.5 and m["n_targets"] == 2 and m["n_detected"] == 1
    assert m["fa_pixels"] == 2 and m["total_pixels"] == 600 and m["fa"] == pytest.approx(2 / 600)
    # intersection 4, union = 13 target + 8 predicted - 4 shared = 17
    assert m["intersection"] == 4 and m["union"] == 17
    assert m["iou"] == pytest.approx(4 / 17) and m["niou"] == pytest.approx(4 / 17)
    assert m["n_images"] == 1 and m["n_pred_components"] == 2


def test_unmatched_blob_with_same_area_as_matched_one_is_false_alarm():
    gt, pred = blank(30, 30), blank(30, 30)
    gt[5:7, 5:7] = True
    pred[5:7, 5:7] = True  # matched, area 4
    pred[20:22, 20:22] = True  # unmatched, same area 4: DNANet drops it by area value
    m = compute_metrics([pred], [gt])
    assert m["pd"] == 1.0 and m["fa_pixels"] == 4 and m["fa"] == pytest.approx(4 / 900)


def _target_and_offset_blob(row_of_extra_pixel: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1-px target at (20, 20); a 10-px blob: row 23 cols 16..24 plus one pixel at (row, 20)."""
    gt, pred = blank(40, 40), blank(40, 40)
    gt[20, 20] = True
    pred[23, 16:25] = True
    pred[row_of_extra_pixel, 20] = True
    return pred, gt


def test_centroid_distance_2_9_detected_3_1_not():
    near = _target_and_offset_blob(22)  # centroid row (9*23 + 22) / 10 = 22.9 -> 2.9 px
    far = _target_and_offset_blob(24)  # centroid row 23.1 -> 3.1 px
    m_near, m_far = compute_metrics(*zip(near)), compute_metrics(*zip(far))
    assert m_near["pd"] == 1.0 and m_near["fa_pixels"] == 0
    assert m_far["pd"] == 0.0 and m_far["fa_pixels"] == 10
    # exactly 3 px is not "< 3"; a larger radius is honoured
    gt, pred = blank(10, 10), blank(10, 10)
    gt[2, 2], pred[5, 2] = True, True
    assert compute_metrics([pred], [gt])["pd"] == 0.0
    assert compute_metrics([pred], [gt], max_centroid_distance=3.5)["pd"] == 1.0


def test_images_of_different_sizes_fa_uses_true_sizes():
    small_gt, small_pred = blank(10, 10), blank(10, 10)
    small_pred[1, 1:4] = True  # 3 px false alarm, no target
    big_gt = blank(20, 30)
    big_gt[5:7, 5:8] = True  # 6 px, predicted perfectly
    m = compute_metrics([small_pred, big_gt.copy()], [small_gt, big_gt])
    assert m["total_pixels"] == 700 and m["fa_pixels"] == 3 and m["fa"] == pytest.approx(3 / 700)
    assert m["pd"] == 1.0 and m["n_images"] == 2
    assert m["iou"] == pytest.approx(6 / 9)  # dataset level: (0 + 6) / (3 + 6)
    assert m["niou"] == pytest.approx(0.5)  # (0 + 1) / 2: a false alarm on a target-free image scores 0


def test_perfect_and_empty_predictions():
    gt = blank(16, 16)
    gt[2:4, 2:4] = True
    gt[10, 12] = True
    perfect = compute_metrics([gt.copy()], [gt])
    assert (perfect["iou"], perfect["niou"], perfect["pd"], perfect["fa"]) == (1.0, 1.0, 1.0, 0.0)
    empty = compute_metrics([blank(16, 16)], [gt])
    assert (empty["iou"], empty["niou"], empty["pd"], empty["fa"]) == (0.0, 0.0, 0.0, 0.0)
    assert empty["n_targets"] == 2 and empty["n_detected"] == 0


def test_target_free_image_predicted_empty_counts_as_perfect_in_niou():
    with_target, pred = blank(8, 8), blank(8, 8)
    with_target[2:4, 2:4] = True  # 4 px target
    pred[2:4, 2:3] = True  # 2 px inside it: IoU 0.5, centroid (2.5, 2) -> 0.5 px away
    m = compute_metrics([blank(8, 8), pred], [blank(8, 8), with_target])
    assert m["niou"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["iou"] == pytest.approx(0.5) and m["pd"] == 1.0
    only_background = compute_metrics([blank(5, 5)], [blank(5, 5)])
    assert only_background["iou"] == 1.0 and only_background["niou"] == 1.0
    assert math.isnan(only_background["pd"]) and only_background["fa"] == 0.0


def test_components_are_eight_connected():
    gt, pred = blank(8, 8), blank(8, 8)
    gt[2, 2] = gt[3, 3] = True  # diagonal neighbours: one target, centroid (2.5, 2.5)
    pred[3, 2] = pred[2, 3] = True  # the other diagonal: one component, same centroid
    m = compute_metrics([pred], [gt])
    assert (m["n_targets"], m["n_pred_components"], m["n_detected"], m["fa_pixels"]) == (1, 1, 1, 0)


def test_one_component_touching_two_targets_matches_one():
    gt, pred = blank(12, 12), blank(12, 12)
    gt[5, 4] = True  # two 1-px targets, two columns apart (separate components)
    gt[5, 6] = True
    pred[5, 4:7] = True  # one 3-px component over both, centroid 1 px from each
    m = compute_metrics([pred], [gt])
    assert m["n_targets"] == 2 and m["n_detected"] == 1 and m["pd"] == 0.5
    assert m["fa_pixels"] == 0  # it matched a target, so it is not a false alarm


def test_matching_prefers_nearest_and_is_one_to_one():
    targets = np.array([[0.0, 0.0], [0.0, 2.0]])
    preds = np.array([[0.0, 2.2], [0.0, 0.9]])  # pred 0 is nearest target 1; pred 1 then takes target 0
    assert match_components(targets, preds).tolist() == [1, 0]
    assert match_components(targets[::-1], preds).tolist() == [0, 1]  # independent of target order
    assert match_components(targets, preds[:1]).tolist() == [-1, 0]
    assert match_components(targets[:0], preds).tolist() == []


def test_threshold_is_strictly_greater_and_configurable():
    gt = blank(6, 6)
    gt[2:4, 2:4] = True
    prob = np.where(gt, 0.5, 0.0).astype(np.float32)
    assert compute_metrics([prob], [gt])["iou"] == 0.0  # 0.5 is not > 0.5
    assert compute_metrics([np.nextafter(prob, 1, dtype=np.float32) * gt], [gt])["iou"] == 1.0
    assert compute_metrics([prob * 0.8], [gt], threshold=0.3)["iou"] == 1.0  # 0.4 > 0.3


def test_accepts_torch_tensors_and_leading_singleton_axes():
    torch = pytest.importorskip("torch")
    gt = blank(9, 9)
    gt[3:5, 3:5] = True
    prob = torch.tensor(gt, dtype=torch.float32, requires_grad=True)[None]  # 1xHxW, needs detach
    metrics = IRSTMetrics()
    score = metrics.update(prob * 0.9, torch.tensor(gt)[None, None])
    assert score.iou == 1.0 and metrics.compute()["pd"] == 1.0


@pytest.mark.parametrize("pred, words", [
    (np.full((4, 4), 255, dtype=np.uint8), "dtype uint8"),
    (np.full((4, 4), 3.0), "not logits"),
    (np.full((4, 4), np.nan), "not logits"),
    (np.zeros((2, 4, 4)), "HxW"),
    (np.zeros((4, 5)), "differs from mask shape"),
])
def test_rejects_ambiguous_or_mismatched_input(pred, words):
    with pytest.raises(ValueError, match=words):
        IRSTMetrics().update(pred, blank(4, 4))


def test_accumulator_reset_and_guards():
    metrics = IRSTMetrics()
    with pytest.raises(ValueError, match="before any update"):
        metrics.compute()
    metrics.update(blank(3, 3), blank(3, 3))
    metrics.reset()
    assert metrics.n_images == 0
    with pytest.raises(ValueError, match="threshold"):
        IRSTMetrics(threshold=1.0)
    with pytest.raises(ValueError, match="2 predictions but 1 masks"):
        compute_metrics([blank(2, 2)] * 2, [blank(2, 2)])


def _reference_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(detected, fa_pixels) by a plain loop over scipy's center_of_mass and every (target, component) pair."""
    eight = np.ones((3, 3))
    pred_lab, n_pred = ndimage.label(pred, structure=eight)
    gt_lab, n_gt = ndimage.label(gt, structure=eight)
    pc = ndimage.center_of_mass(pred, pred_lab, range(1, n_pred + 1))
    gc = ndimage.center_of_mass(gt, gt_lab, range(1, n_gt + 1))
    pairs = sorted((math.dist(gc[t], pc[p]), t, p) for t in range(n_gt) for p in range(n_pred))
    used_t, used_p = set(), set()
    for d, t, p in pairs:
        if d < 3 and t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
    fa = sum(int((pred_lab == p + 1).sum()) for p in range(n_pred) if p not in used_p)
    return len(used_t), fa


def test_matches_a_plain_reference_on_random_blobs():
    rng = np.random.default_rng(7)
    metrics, detected, fa = IRSTMetrics(), 0, 0
    for _ in range(12):
        h, w = rng.integers(20, 48, size=2)
        gt = ndimage.binary_dilation(rng.random((h, w)) < 0.01, iterations=1)
        noise = rng.random((h, w)) < 0.02
        pred = ndimage.shift(gt.astype(float), rng.normal(0, 2.5, 2), order=0) > 0.5
        pred = pred | noise
        d, f = _reference_counts(pred, gt)
        detected, fa = detected + d, fa + f
        metrics.update(pred, gt)
    m = metrics.compute()
    assert m["n_targets"] > 5 and 0 < m["n_detected"] < m["n_targets"]  # the draw exercises both outcomes
    assert m["n_detected"] == detected and m["fa_pixels"] == fa


def test_format_metrics_table():
    text = format_metrics({"iou": 0.7585, "niou": 0.74, "pd": 0.9695, "fa": 36.86e-6, "n_images": 86,
                           "n_detected": 127, "n_targets": 131, "fa_pixels": 12, "total_pixels": 325563},
                          title="NUAA-SIRST test")
    lines = text.splitlines()
    assert lines[0] == "NUAA-SIRST test"
    assert "75.85" in lines[1] and "74.00" in lines[2] and "96.95" in lines[3] and "127 / 131" in lines[3]
    assert "36.86" in lines[4] and "x1e-6" in lines[4] and lines[5].split() == ["images", "86"]
    assert "n/a" in format_metrics({"iou": 1.0, "niou": 1.0, "pd": math.nan, "fa": 0.0, "n_images": 1})


def test_pixel_average_precision_ranks_target_pixels_without_a_threshold():
    # scikit-learn's average_precision_score example: labels 0 0 1 1, scores .1 .4 .35 .8 -> 0.8333
    assert pixel_average_precision([np.array([[0.1, 0.4], [0.35, 0.8]])], [np.array([[0, 0], [1, 1]])]) == \
        pytest.approx(5 / 6)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 5] = True
    faint = np.where(mask, 0.02, 0.01)  # nothing passes 0.5 (IoU 0), but the targets outrank the background
    assert compute_metrics([faint], [mask])["iou"] == 0.0
    assert pixel_average_precision([faint], [mask]) == 1.0
    # a constant map (a network that predicts background everywhere): the fraction of target pixels
    assert pixel_average_precision([np.full((8, 8), 1e-4)], [mask]) == pytest.approx(2 / 64)
    # pooled over images: the second image's brighter background outranks the first image's targets
    other = np.zeros((8, 8), bool)
    assert pixel_average_precision([faint, np.full((8, 8), 0.5)], [mask, other]) == pytest.approx(2 / 66)
    assert math.isnan(pixel_average_precision([faint], [other]))
    with pytest.raises(ValueError, match="probabilities but"):
        pixel_average_precision([faint], [np.zeros((4, 4), bool)])
