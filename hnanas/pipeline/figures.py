"""``predictions.png``: a few test images with their ground truth and the network's prediction.

Compute, then draw: :func:`prediction_rows` gathers plain arrays (and each row's IoU); :func:`draw_predictions`
only draws them. matplotlib is imported lazily and used through its object API with the Agg canvas, so no
global backend or pyplot state is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from hnanas.fileio import atomic_path
from hnanas.metrics import binarize_prediction


@dataclass(frozen=True)
class PredictionRow:
    """One figure row: the raw image (0..255), the bool mask, the probability map, and the image's IoU."""

    id: str
    image: np.ndarray
    mask: np.ndarray
    prob: np.ndarray
    iou: float


def prediction_rows(samples: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]], threshold: float = 0.5
                    ) -> list[PredictionRow]:
    """Rows from ``(id, image, mask, prob)`` tuples (all HxW of one size)."""
    rows = []
    for image_id, image, mask, prob in samples:
        pred = binarize_prediction(prob, threshold)
        union = np.count_nonzero(pred | mask)
        iou = np.count_nonzero(pred & mask) / union if union else 1.0
        rows.append(PredictionRow(image_id, np.asarray(image, np.float32), np.asarray(mask, bool),
                                  np.asarray(prob, np.float32), float(iou)))
    return rows


def draw_predictions(rows: list[PredictionRow], path: str | Path, *, threshold: float = 0.5,
                     title: str = "") -> Path:
    """Draw ``rows`` (input | ground truth | probability | prediction > threshold) into a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("draw_predictions needs at least one row")
    columns = ("input", "ground truth", "probability", f"prediction (> {threshold:g})")
    fig = Figure(figsize=(3.0 * len(columns), 3.0 * len(rows) + (0.4 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        panels = (row.image, row.mask, row.prob, row.prob > threshold)
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            if c == 0:
                ax.imshow(panel, cmap="gray", interpolation="nearest")
            elif c == 2:
                ax.imshow(panel, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
        axes[r][0].set_ylabel(f"{row.id}\nIoU {row.iou:.2f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
