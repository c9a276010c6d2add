"""The numbers behind a report, computed without drawing anything: latency per device, Pareto points and
fronts, and the table of all runs.

Measured latencies come from a retrain's ``latency.json``. The prediction beside a measurement is the one
``latency.json`` holds; when it holds none (no table under ``latency_tables/`` for that space), the search's
own prediction (``genotype.json`` info) is used if the search's table was measured on the same device with the
same thread count. Nothing else is filled in: a missing value stays ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, TypeVar

from hnanas.report.runs import RunRecord

T = TypeVar("T")


@dataclass(frozen=True)
class DeviceLatency:
    """One run's latency on one device."""

    device: str
    measured_ms: float | None  # ONNX Runtime, the exported deploy form (retrain's latency.json)
    predicted_ms: float | None  # the latency table's prediction for the same network
    predicted_from: str  # "retrain" (latency.json), "search" (genotype.json info) or "" (none)
    threads: int | None  # ORT threads of the measurement (or of the search's table)


def _num(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN -> None


def run_latencies(run: RunRecord) -> dict[str, DeviceLatency]:
    """``{device: DeviceLatency}`` of ``run``: every device its retrain measured, plus the search's table device."""
    info = run.info
    table = info.get("table") or {}
    search_device, search_threads = table.get("device"), table.get("threads")
    search_pred = _num(info.get("predicted_latency_ms")) if not run.baseline else None
    out: dict[str, DeviceLatency] = {}
    for device, entry in (run.latency or {}).items():
        if not isinstance(entry, dict):
            continue
        measured, predicted = _num(entry.get("measured_ms")), _num(entry.get("predicted_ms"))
        threads = entry.get("threads")
        source = "retrain" if predicted is not None else ""
        if predicted is None and search_pred is not None and device == search_device and threads == search_threads:
            predicted, source = search_pred, "search"
        out[device] = DeviceLatency(device, measured, predicted, source, threads)
    if search_device and search_device not in out and search_pred is not None:
        out[search_device] = DeviceLatency(search_device, None, search_pred, "search", search_threads)
    return out


def report_devices(runs: Iterable[RunRecord], wanted: Sequence[str] | None = None) -> list[str]:
    """Devices with a latency in any run, in order of first appearance (only ``wanted`` ones when given, in
    that order, even those no run has)."""
    seen: list[str] = []
    for run in runs:
        for device in run_latencies(run):
            if device not in seen:
                seen.append(device)
    return list(wanted) if wanted else seen


# ------------------------------------------------------------------------------------------------ Pareto
@dataclass(frozen=True)
class ParetoPoint:
    """A retrained run on one device: measured (and predicted) latency and test metrics (fractions)."""

    name: str
    baseline: bool
    measured_ms: float
    predicted_ms: float | None
    iou: float
    niou: float | None
    pd: float | None
    fa: float | None


def pareto_points(runs: Iterable[RunRecord], device: str) -> list[ParetoPoint]:
    """Runs with a measured latency on ``device`` and a test IoU; runs without a retrain have neither."""
    points = []
    for run in runs:
        lat = run_latencies(run).get(device)
        m = run.metrics or {}
        iou = _num(m.get("iou"))
        if lat is None or lat.measured_ms is None or iou is None:
            continue
        points.append(ParetoPoint(run.name, run.baseline, lat.measured_ms, lat.predicted_ms, iou, _num(m.get("niou")),
                                  _num(m.get("pd")), _num(m.get("fa"))))
    return points


def pareto_front(points: Sequence[T], cost: Callable[[T], float | None] = lambda p: p.measured_ms,
                 gain: Callable[[T], float | None] = lambda p: p.iou) -> list[T]:
    """The points no other point dominates (lower-or-equal cost and higher-or-equal gain, one of them strictly),
    sorted by cost; points whose cost or gain is None take no part."""
    valid = [p for p in points if cost(p) is not None and gain(p) is not None]
    front = []
    for p in valid:
        c, g = cost(p), gain(p)
        dominated = any(cost(q) <= c and gain(q) >= g and (cost(q) < c or gain(q) > g) for q in valid)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (cost(p), -gain(p)))


# ------------------------------------------------------------------------------------------------- table
def _budget(metrics: dict) -> dict:
    t = metrics.get("training") or {}
    seconds = _num(t.get("seconds"))
    return {"train_epochs": t.get("epochs"), "train_steps": t.get("steps"), "train_batch_size": t.get("batch_size"),
            "train_crop_size": t.get("crop_size"), "train_optimizer": t.get("optimizer"),
            "train_minutes": round(seconds / 60, 2) if seconds is not None else None}


def runs_table(runs: Iterable[RunRecord], devices: Sequence[str]) -> list[dict]:
    """One row per run, raw values (fractions, ms, counts; ``None`` where the run's files hold no value).
    Search-only runs carry the search's columns (λ, target, prediction, params and MACs of the derived
    network, search validation IoU) and empty test metrics."""
    rows = []
    for run in runs:
        info = run.info if not run.baseline else {}
        m = run.metrics or {}
        lat = run_latencies(run)
        data = (run.retrain_config or {}).get("data") or (run.search_config or {}).get("data") or {}
        row = {
            "run": run.name, "kind": run.kind, "status": run.status, "genotype": run.genotype_name,
            "latency_weight": _num(info.get("latency_weight")),
            "target_latency_ms": _num(info.get("target_latency_ms")),
            "iou": _num(m.get("iou")), "niou": _num(m.get("niou")), "pd": _num(m.get("pd")), "fa": _num(m.get("fa")),
            "params": m.get("params", info.get("params")), "macs": m.get("macs", info.get("macs")),
            "search_val_iou": _num(info.get("final_val_iou")), "retrain_val_iou": _num(m.get("val_iou")),
        }
        for device in devices:
            d = lat.get(device)
            row[f"{device}_predicted_ms"] = d.predicted_ms if d else None
            row[f"{device}_measured_ms"] = d.measured_ms if d else None
        row["dataset"] = m.get("dataset") or info.get("dataset") or (str(data["dataset"]) if data.get("dataset")
                                                                      else None)
        row["split"] = m.get("split") or info.get("split") or data.get("split")
        row.update(_budget(m))
        row["path"] = str(run.path)
        rows.append(row)
    return rows
