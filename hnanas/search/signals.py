"""The halving strategy's accuracy signals: what a candidate is ranked by after each epoch (``halving.metric``).

Lower is better. ``val_loss`` and ``train_loss``: the losses; ``val_iou``: 1 - the validation IoU;
``best_val_iou``: 1 - the best validation IoU so far, the validation loss as a tie-break between candidates of
equal IoU (those still at 0); ``val_ap``: 1 - the validation pixels' average precision (threshold-free: it ranks
candidates whose IoU is still 0); ``best_val_iou_ap``: ``best_val_iou`` with that as the tie-break;
``best_val_iou_niou``: 1 - the best so far of the epoch's mean of validation IoU and nIoU (the field's two
segmentation metrics: pixels pooled over the images, and the per-image mean), the validation loss as the tie-break.
``bench/rank_quality.py`` and ``bench/ledger_signals.py`` measure how well each ranks networks.
"""

from __future__ import annotations

import math

# best_val_iou: weight of the validation loss that orders candidates of equal IoU (those still at 0). It can also
# reorder candidates whose IoU differs by less than about a thousandth (0.1 points): far below seed noise
TIE_BREAK = 1e-3
AP_SIGNALS = ("val_ap", "best_val_iou_ap")  # the signals that need the validation pixels' average precision


def iou_niou(iou: float, niou: float) -> float:
    """One validation's figure for ``best_val_iou_niou`` (its running best is the signal): the mean of IoU and nIoU."""
    return (iou + niou) / 2


def accuracy_signal(metric: str, val_loss: float, train_loss: float, val_iou: float, best_iou: float,
                    val_ap: float = math.nan, best_iou_niou: float = math.nan) -> float:
    """A candidate's accuracy signal after an epoch (lower is better), as ``halving.metric`` names it
    (``val_ap``: 1 - the validation pixels' average precision, 1 when the images hold no target pixel;
    ``best_val_iou_ap``: as ``best_val_iou`` with that in place of the validation loss as the tie-break;
    ``best_val_iou_niou``: from ``best_iou_niou``, the best so far of the epochs' (IoU + nIoU) / 2)."""
    if metric == "best_val_iou_niou" and math.isnan(best_iou_niou):
        raise ValueError("best_val_iou_niou needs best_iou_niou, the best (IoU + nIoU) / 2 so far")
    ap_signal = 1.0 if math.isnan(val_ap) else 1.0 - val_ap
    return {"val_loss": val_loss, "train_loss": train_loss, "val_iou": 1.0 - val_iou,
            "best_val_iou": 1.0 - best_iou + TIE_BREAK * val_loss, "val_ap": ap_signal,
            "best_val_iou_ap": 1.0 - best_iou + TIE_BREAK * ap_signal,
            "best_val_iou_niou": 1.0 - best_iou_niou + TIE_BREAK * val_loss}[metric]
