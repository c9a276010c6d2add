"""Report text: number formats, the Markdown and CSV forms of the runs table, one summary line per run.

Functions here return strings; :mod:`hnanas.report.build` writes them. Missing values print as an em dash,
never as a made-up number.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from hnanas.report.data import DeviceLatency

DASH = "—"


def pct(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{100 * value:.{digits}f}"


def fa_e6(value: float | None) -> str:
    return DASH if value is None else f"{1e6 * value:.2f}"


def ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def millions(value) -> str:
    return DASH if value is None else f"{float(value) / 1e6:.3f}"


def billions(value) -> str:
    return DASH if value is None else f"{float(value) / 1e9:.3f}"


def plain(value) -> str:
    return DASH if value is None or value == "" else f"{value:g}" if isinstance(value, float) else str(value)


def training(row: dict) -> str:
    if row.get("train_epochs") is None:
        return DASH
    parts = [f"{row['train_epochs']} ep"]
    if row.get("train_batch_size") is not None:
        parts.append(f"batch {row['train_batch_size']}")
    if row.get("train_crop_size") is not None:
        parts.append(f"crop {row['train_crop_size']}")
    if row.get("train_optimizer"):
        parts.append(str(row["train_optimizer"]))
    if row.get("train_minutes") is not None:
        parts.append(f"{row['train_minutes']:.1f} min")
    return ", ".join(parts)


def table_columns(devices: Sequence[str]) -> list[tuple[str, str, object]]:
    """(header, row key, formatter) of the Markdown table; a formatter taking the whole row has key None."""
    cols: list[tuple[str, str, object]] = [
        ("run", "run", plain), ("kind", "kind", plain), ("status", "status", plain), ("network", "genotype", plain),
        ("λ", "latency_weight", plain), ("target ms", "target_latency_ms", ms), ("IoU %", "iou", pct),
        ("nIoU %", "niou", pct), ("Pd %", "pd", pct), ("Fa 1e-6", "fa", fa_e6), ("params M", "params", millions),
        ("GMAC", "macs", billions)]
    for device in devices:
        cols += [(f"{device} predicted ms", f"{device}_predicted_ms", ms),
                 (f"{device} measured ms", f"{device}_measured_ms", ms)]
    cols += [("search val IoU %", "search_val_iou", pct), ("retrain val IoU %", "retrain_val_iou", pct),
             ("dataset", "dataset", plain), ("split", "split", plain), ("training", "", training)]
    return cols


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict], devices: Sequence[str], links: dict[str, str] | None = None) -> str:
    """The runs table in Markdown; ``links`` maps a run name to a relative link for its name cell."""
    cols = table_columns(devices)
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        cells = []
        for header, key, fmt in cols:
            text = fmt(row) if not key else fmt(row.get(key))
            if header == "run" and links and row["run"] in links:
                text = f"[{text}]({links[row['run']]})"
            cells.append(_cell(text))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[dict]) -> str:
    """The runs table as CSV: raw values (fractions, ms, counts), empty where a run has no value."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
    return buffer.getvalue()


def _latency_text(latencies: Iterable[DeviceLatency]) -> str:
    parts = []
    for d in latencies:
        bits = []
        if d.measured_ms is not None:
            bits.append(f"{ms(d.measured_ms)} ms measured")
        if d.predicted_ms is not None:
            bits.append(f"{ms(d.predicted_ms)} ms predicted")
        if bits:
            parts.append(f"{d.device} " + " / ".join(bits))
    return "; ".join(parts) or "no latency"


def summary_line(row: dict, latencies: Iterable[DeviceLatency]) -> str:
    """One line: kind and λ/target, test metrics (or the search's validation IoU), latency, size."""
    what = [row["kind"]]
    if row.get("latency_weight") is not None:
        what.append(f"λ={row['latency_weight']:g}")
    if row.get("target_latency_ms") is not None:
        what.append(f"target {ms(row['target_latency_ms'])} ms")
    head = f"**{row['run']}** ({', '.join(what)}; {row['genotype']})"
    if row["status"] == "retrained":
        scores = (f"test IoU {pct(row['iou'])} %, nIoU {pct(row['niou'])} %, Pd {pct(row['pd'])} %, "
                  f"Fa {fa_e6(row['fa'])}e-6 on {row.get('dataset') or DASH} {row.get('split') or ''}".rstrip())
    else:
        scores = f"*{row['status']}*" + (f": search val IoU {pct(row['search_val_iou'])} %"
                                          if row.get("search_val_iou") is not None else "")
    size = f"{millions(row['params'])} M params, {billions(row['macs'])} GMAC" if row.get("params") is not None else ""
    return f"{head}: {scores}; {_latency_text(latencies)}" + (f"; {size}" if size else "")
