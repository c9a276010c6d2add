"""How far a table's predictions are from measured latencies, and the linear correction that closes the gap.

Used by ``profile validate`` (:mod:`hnanas.latency.validate`), by the profiler's calibration against reference
networks (:mod:`hnanas.latency.profiler`) and by bundles re-fitted on another machine
(:mod:`hnanas.latency.bundle`). Pure NumPy/SciPy: no network is built or measured here.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def fit_correction(pred: np.ndarray, meas: np.ndarray) -> tuple[float, float]:
    """Least squares on relative error: minimise sum(((a p + b) / m - 1)^2)."""
    A = np.stack([pred / meas, 1.0 / meas], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(meas), rcond=None)
    return float(a), float(b)


def error_stats(pred: np.ndarray, meas: np.ndarray) -> dict:
    """Errors of predictions ``pred`` against measurements ``meas``; MAPE, max and bias in percent."""
    rel = pred / meas - 1.0
    return {"mape": float(np.mean(np.abs(rel)) * 100), "max_abs_pct_err": float(np.max(np.abs(rel)) * 100),
            "bias": float(np.mean(rel) * 100), "spearman": float(spearmanr(pred, meas)[0])}


def loo_corrected(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Each network's prediction corrected by a fit on all the other networks."""
    out = np.empty_like(pred)
    for i in range(len(pred)):
        mask = np.arange(len(pred)) != i
        a, b = fit_correction(pred[mask], meas[mask])
        out[i] = a * pred[i] + b
    return out
