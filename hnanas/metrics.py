"""IRST segmentation metrics: IoU, nIoU, Pd and Fa, accumulated in one pass over (prediction, mask) pairs.

Definitions (fractions, not percentages; see ``/work/shared/reference/irst.md``, "Metrics"):

- **IoU** -- dataset level: sum of per-image intersections / sum of per-image unions.
- **nIoU** -- mean over images of ``TP_k / (T_k + P_k - TP_k)``. An image with an empty union (no target and
  no predicted pixel, e.g. a target-free background predicted empty) is a perfect prediction and contributes
  1; a target-free image with any predicted pixel contributes 0.
- **Pd** -- connected components (8-connectivity, ``scipy.ndimage.label``) of prediction and ground truth. A
  predicted component and a target are a candidate pair when their centroids are closer than
  ``max_centroid_distance`` (strictly, 3 px by default). Pairs are matched one-to-one, nearest first (ties:
  lower target index, then lower component index in raster order), so each predicted component detects at
  most one target and the result does not depend on the order of the targets. Pd = detected / targets.
- **Fa** -- pixels of predicted components that matched no target / total pixels of the images at their true
  sizes. Components are matched by identity: an unmatched blob counts in full even when its area equals the
  area of a matched one (the DNANet bug), and the denominator is never 256**2 * N.

One threshold (``> 0.5`` by default, strictly greater) turns probabilities into the binary prediction used by
all four metrics. The counts behind every fraction are returned too, so results can be checked and merged.

:func:`pixel_average_precision` needs no threshold: the average precision of target pixels ranked by probability
over all pixels of the images. It tells networks apart before any pixel passes 0.5 (early in training, where the
IoU of every candidate is still 0).

:func:`iou_by_threshold` and :func:`choose_threshold` pick a decision threshold on validation images (the retrain's
``train.select_threshold``): a network can separate targets well yet never pass 0.5 -- e.g. when every weight of
its 1x1 head turned negative on ReLU features, its probabilities are capped at sigmoid(bias) < 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ImageScore:
    """The counts of one image; ``IRSTMetrics.update`` returns it so callers can report per-image results."""

    pixels: int  # H * W of the image
    intersection: int  # predicted target pixels that are target in the mask (TP)
    union: int  # pixels that are target in the prediction or the mask
    n_targets: int  # connected components of the mask
    n_detected: int  # targets matched by a predicted component
    n_pred_components: int  # connected components of the prediction
    fa_pixels: int  # pixels of predicted components that matched no target

    @property
    def iou(self) -> float:
        """This image's IoU; 1.0 when the union is empty (no target and nothing predicted)."""
        return self.intersection / self.union if self.union else 1.0


def _as_2d(array: Any, what: str) -> np.ndarray:
    """An HxW numpy view of ``array`` (numpy or torch; leading singleton axes such as 1xHxW are dropped)."""
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{what} must be an HxW array (or 1xHxW), got shape {array.shape}")
    return array


def binarize_prediction(prediction: Any, threshold: float = 0.5) -> np.ndarray:
    """The bool HxW target map of a prediction: bool masks as they are, probabilities ``> threshold``.

    Probabilities must lie in [0, 1] (sigmoid outputs): logits or 0..255 integers would be silently
    mis-thresholded, so they are rejected, as are NaNs.
    """
    pred = _as_2d(prediction, "prediction")
    if pred.dtype == bool:
        return pred
    if not np.issubdtype(pred.dtype, np.floating):
        raise ValueError(f"prediction has dtype {pred.dtype}; pass probabilities (float in [0, 1]) or a bool mask")
    if pred.size:
        lo, hi = float(pred.min()), float(pred.max())
        if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
            raise ValueError(f"prediction values span [{lo}, {hi}]; pass sigmoid probabilities in [0, 1], not logits")
    return pred > threshold


def _as_bool_mask(mask: Any) -> np.ndarray:
    """A bool HxW ground-truth mask; non-bool masks count every non-zero pixel as target (0/1 or 0/255)."""
    gt = _as_2d(mask, "mask")
    return gt if gt.dtype == bool else gt != 0


def label_components(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label`` of ``binary`` with 8-connectivity: the targets the metrics count (labels, n)."""
    return ndimage.label(binary, structure=_EIGHT_CONNECTED)


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (n x 2, row/col, float) and areas (n,) of the 8-connected components of ``binary``.

    Component k (0-based) is label k + 1 of ``scipy.ndimage.label``, i.e. components in raster order of their
    first pixel. Centroids are pixel-coordinate means, computed with bincount over foreground pixels only.
    """
    labels, n = label_components(binary)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    flat_index = np.flatnonzero(binary)
    label_of = labels.ravel()[flat_index]
    rows, cols = np.divmod(flat_index, binary.shape[1])
    areas = np.bincount(label_of, minlength=n + 1)[1:]
    centroids = np.stack([np.bincount(label_of, weights=rows, minlength=n + 1)[1:] / areas,
                          np.bincount(label_of, weights=cols, minlength=n + 1)[1:] / areas], axis=1)
    return centroids, areas


def match_components(target_centroids: np.ndarray, pred_centroids: np.ndarray,
                     max_distance: float = 3.0) -> np.ndarray:
    """For each target, the index of the predicted component matched to it, or -1 when it is missed.

    Candidate pairs have centroid distance ``< max_distance``; they are taken nearest first (ties by target
    index, then component index), skipping targets and components already used, so the matching is one-to-one.
    """
    matched = np.full(len(target_centroids), -1, dtype=np.int64)
    if len(target_centroids) == 0 or len(pred_centroids) == 0:
        return matched
    diff = target_centroids[:, None, :] - pred_centroids[None, :, :]
    distance = np.hypot(diff[..., 0], diff[..., 1])
    t_idx, p_idx = np.nonzero(distance < max_distance)
    used_pred = np.zeros(len(pred_centroids), dtype=bool)
    for k in np.lexsort((p_idx, t_idx, distance[t_idx, p_idx])):
        t, p = t_idx[k], p_idx[k]
        if matched[t] < 0 and not used_pred[p]:
            matched[t] = p
            used_pred[p] = True
    return matched


def score_image(pred: np.ndarray, gt: np.ndarray, max_centroid_distance: float = 3.0) -> ImageScore:
    """The counts of one image from a bool prediction and a bool mask of the same shape."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from mask shape {gt.shape}")
    intersection = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    pred_centroids, pred_areas = _components(pred)
    target_centroids, _ = _components(gt)
    matched = match_components(target_centroids, pred_centroids, max_centroid_distance)
    hit = matched[matched >= 0]
    fa_pixels = int(pred_areas.sum() - pred_areas[hit].sum())
    return ImageScore(pixels=int(pred.size), intersection=intersection, union=union,
                      n_targets=len(target_centroids), n_detected=len(hit),
                      n_pred_components=len(pred_centroids), fa_pixels=fa_pixels)


class IRSTMetrics:
    """Accumulates IoU, nIoU, Pd and Fa over images of any (and differing) sizes in one pass.

    ``update(prediction, mask)`` per image: ``prediction`` is a float probability map (thresholded ``>
    threshold``) or a bool mask; ``mask`` is bool (or numeric, non-zero = target); both HxW of the same shape,
    numpy arrays or torch tensors. ``compute()`` returns the metrics dict (see :meth:`compute`).
    """

    def __init__(self, threshold: float = 0.5, max_centroid_distance: float = 3.0):
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        if not max_centroid_distance > 0:
            raise ValueError(f"max_centroid_distance must be positive, got {max_centroid_distance}")
        self.threshold = float(threshold)
        self.max_centroid_distance = float(max_centroid_distance)
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._totals = dict.fromkeys(("pixels", "intersection", "union", "n_targets", "n_detected",
                                      "n_pred_components", "fa_pixels"), 0)
        self._iou_sum = 0.0
        self._n_images = 0

    def update(self, prediction: Any, mask: Any) -> ImageScore:
        """Add one image; returns its counts (its own IoU is ``score.iou``)."""
        score = score_image(binarize_prediction(prediction, self.threshold), _as_bool_mask(mask),
                            self.max_centroid_distance)
        for key in self._totals:
            self._totals[key] += getattr(score, key)
        self._iou_sum += score.iou
        self._n_images += 1
        return score

    @property
    def n_images(self) -> int:
        return self._n_images

    def compute(self) -> dict[str, float | int]:
        """The metrics so far: ``iou``, ``niou``, ``pd``, ``fa`` (fractions; ``fa`` per pixel) and counts.

        Counts: ``n_images``, ``n_targets``, ``n_detected``, ``n_pred_components``, ``fa_pixels``,
        ``total_pixels``, ``intersection``, ``union``. ``iou`` is 1.0 when nothing was predicted on images
        without targets (empty union); ``pd`` is NaN when the images have no target at all.
        """
        if self._n_images == 0:
            raise ValueError("IRSTMetrics.compute() called before any update()")
        t = self._totals
        return {
            "iou": t["intersection"] / t["union"] if t["union"] else 1.0,
            "niou": self._iou_sum / self._n_images,
            "pd": t["n_detected"] / t["n_targets"] if t["n_targets"] else math.nan,
            "fa": t["fa_pixels"] / t["pixels"],
            "n_images": self._n_images,
            "n_targets": t["n_targets"],
            "n_detected": t["n_detected"],
            "n_pred_components": t["n_pred_components"],
            "fa_pixels": t["fa_pixels"],
            "total_pixels": t["pixels"],
            "intersection": t["intersection"],
            "union": t["union"],
        }


def pixel_average_precision(probabilities: Iterable[Any], masks: Iterable[Any]) -> float:
    """Average precision of the target pixels ranked by probability, over all pixels of the paired images:
    ``sum_k (R_k - R_(k-1)) P_k`` over the distinct probabilities from high to low (as scikit-learn's
    ``average_precision_score``); 1.0 when every target pixel outranks every background one, about the
    target fraction for a constant map. NaN when the masks hold no target pixel."""
    scores = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in probabilities])
    labels = np.concatenate([_as_bool_mask(m).ravel() for m in masks])
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} probabilities but {labels.size} mask pixels")
    positives = int(labels.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # last index of each distinct score
    tp = np.cumsum(labels)[last]
    precision, recall = tp / (last + 1), tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# the decision thresholds a validation may choose among (train.threshold_grid's default, with
# train.select_threshold): 0.01, 0.02, 0.03, then 0.05, 0.10, ..., 0.95, then 0.97, 0.98, 0.99 -- finer at the ends,
# where over-confident and capped networks choose (with the 0.05-step grid alone, 16 of 27 NUAA-SIRST retrains chose
# its top, 0.95; docs/results.md)
THRESHOLD_GRID_V1 = tuple(round(0.05 * k, 2) for k in range(1, 20))  # the grid of retrains written without the key
THRESHOLD_GRID = (0.01, 0.02, 0.03) + THRESHOLD_GRID_V1 + (0.97, 0.98, 0.99)


def iou_by_threshold(probabilities: Iterable[Any], masks: Iterable[Any],
                     thresholds: Iterable[float] = THRESHOLD_GRID) -> dict[float, float]:
    """The dataset-level IoU (as :class:`IRSTMetrics`: summed intersections / summed unions, ``> t``) of the
    paired images at every threshold ``t``; 1.0 where nothing is predicted on images without targets."""
    scores = np.concatenate([np.asarray(p).ravel() for p in probabilities])
    labels = np.concatenate([_as_bool_mask(m).ravel() for m in masks])
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} probabilities but {labels.size} mask pixels")
    on_target, n_target = np.sort(scores[labels]), int(labels.sum())
    on_background = np.sort(scores[~labels])
    result = {}
    for t in thresholds:
        # t in the maps' dtype, as `prob > t` compares (NumPy 2: a Python float takes a float32 array's type)
        cut = scores.dtype.type(t)
        tp = on_target.size - int(np.searchsorted(on_target, cut, side="right"))
        fp = on_background.size - int(np.searchsorted(on_background, cut, side="right"))
        union = n_target + fp
        result[float(t)] = tp / union if union else 1.0
    return result


def choose_threshold(ious: Mapping[float, float], default: float = 0.5) -> float:
    """The threshold with the best IoU (ties: the one nearest ``default``); ``default`` when no IoU is above 0."""
    best = max(ious.values(), default=0.0)
    if not best > 0:
        return default
    return min((t for t, v in ious.items() if v == best), key=lambda t: (abs(t - default), t))


def compute_metrics(predictions: Iterable[Any], masks: Iterable[Any], *, threshold: float = 0.5,
                    max_centroid_distance: float = 3.0) -> dict[str, float | int]:
    """IoU, nIoU, Pd, Fa (and counts) of paired lists of predictions and masks; see :class:`IRSTMetrics`."""
    predictions, masks = list(predictions), list(masks)
    if len(predictions) != len(masks):
        raise ValueError(f"{len(predictions)} predictions but {len(masks)} masks")
    metrics = IRSTMetrics(threshold, max_centroid_distance)
    for prediction, mask in zip(predictions, masks):
        metrics.update(prediction, mask)
    return metrics.compute()


def format_metrics(metrics: Mapping[str, Any], title: str | None = None) -> str:
    """A small text table of a metrics dict: IoU, nIoU, Pd in %, Fa x1e-6, number of images (with counts)."""

    def pct(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{100 * value:.2f}"

    rows = [
        ("IoU (%)", pct(metrics["iou"]), ""),
        ("nIoU (%)", pct(metrics["niou"]), ""),
        ("Pd (%)", pct(metrics["pd"]), f"{metrics.get('n_detected', '?')} / {metrics.get('n_targets', '?')} targets"),
        ("Fa (x1e-6)", f"{1e6 * metrics['fa']:.2f}",
         f"{metrics.get('fa_pixels', '?')} / {metrics.get('total_pixels', '?')} pixels"),
        ("images", str(metrics["n_images"]), ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [title] if title else []
    for name, value, note in rows:
        lines.append(f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip())
    return "\n".join(lines)
