"""``hnanas report``: read runs, compute the report's data, draw its figures, write ``index.md``.

Output folder (default ``runs/report/``, or the run's own folder when one run is given): ``index.md`` (readable on
its own: a summary line per run, the Pareto figures and fronts, the runs table, per-run figures), ``runs.md`` and
``runs.csv`` (the table), ``figures/pareto_<device>.png`` and ``figures/arch_<run>.png``. Links are relative, so
the folder can be moved together with the runs it points to.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import hnanas
from hnanas.fileio import read_json, write_text
from hnanas.progress import progress
from hnanas.report.architecture import architecture_of_run
from hnanas.report.data import pareto_front, pareto_points, report_devices, run_latencies, runs_table
from hnanas.report.markdown import csv_table, markdown_table, ms, pct, summary_line
from hnanas.report.runs import STATUS_RETRAINED, RunRecord, find_runs
from hnanas.report.versus import FILE as VERSUS_FILE, versus_markdown

log = logging.getLogger(__name__)
DEFAULT_OUT = Path("runs") / "report"


@dataclass
class ReportResult:
    """What a report wrote."""

    out: Path
    index: Path
    runs: int
    figures: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return f"report of {self.runs} run(s): {self.index} ({len(self.figures)} figures in {self.out / 'figures'})"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def default_out(runs: Sequence[RunRecord]) -> Path:
    return runs[0].path if len(runs) == 1 else DEFAULT_OUT


def _rel(target: Path, out: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), out.resolve())).as_posix()


def _pareto_section(runs: Sequence[RunRecord], device: str, figure: Path, out: Path) -> list[str]:
    points = pareto_points(runs, device)
    lines = [f"### {device}", "", f"![accuracy vs latency on {device}]({_rel(figure, out)})", ""]
    front = pareto_front(points)
    if front:
        lines.append("Pareto front (test IoU vs measured latency): " + " → ".join(
            f"{p.name} ({ms(p.measured_ms)} ms, {pct(p.iou)} %)" for p in front) + ".")
    missing = [r.name for r in runs if r.name not in {p.name for p in points}]
    if missing:
        lines.append(f"Not plotted (no retrain, or not measured on {device}): {', '.join(missing)}.")
    return lines + [""]


def _run_section(run: RunRecord, line: str, arch: Path | None, out: Path) -> list[str]:
    lines = [f"### {run.name}", "", line, "", f"Folder: [{run.path}]({_rel(run.path, out)})"]
    figures = [("search curves", run.file("search", "search_curves.png")),
               ("architecture", arch),
               ("search: op and edge probabilities", run.file("search", "arch_probs.png")),
               ("test predictions", run.file("retrain", "predictions.png"))]
    for title, path in figures:
        if path is not None:
            lines += ["", f"{title}:", "", f"![{run.name}: {title}]({_rel(path, out)})"]
    return lines + [""]


def write_report(patterns: Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                 devices: Sequence[str] | None = None,
                 extra_figures: Sequence[tuple[str, Path]] = ()) -> ReportResult:
    """Report over the runs named by ``patterns`` (folders or globs) into ``out``; ``devices`` limits (and
    orders) the latency devices; ``extra_figures`` ((title, PNG path), ...) get their own section."""
    runs = find_runs(patterns)
    out = Path(out) if out is not None else default_out(runs)
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    devices = report_devices(runs, devices)
    rows = runs_table(runs, devices)

    from hnanas.report.figures import draw_architecture, draw_pareto  # drawing only: the data needs no figures

    written: list[Path] = []
    pareto_pngs = {}
    for device in devices:
        png = figures_dir / f"pareto_{slug(device)}.png"
        pareto_pngs[device] = draw_pareto(pareto_points(runs, device), device, png)
        written.append(pareto_pngs[device])
    arch_pngs: dict[str, Path | None] = {}
    for run in progress(runs, desc="report figures", unit="run"):
        layout = architecture_of_run(run, devices)
        arch_pngs[run.name] = draw_architecture(layout, figures_dir / f"arch_{slug(run.name)}.png") if layout else None
        if arch_pngs[run.name]:
            written.append(arch_pngs[run.name])

    links = {r.name: _rel(r.path, out) for r in runs}
    table = markdown_table(rows, devices, links)
    write_text(out / "runs.md", "# Runs\n\n" + table)
    write_text(out / "runs.csv", csv_table(rows))
    lines = _index(runs, rows, devices, table, pareto_pngs, arch_pngs, extra_figures, out)
    for folder in (Path(p) for p in patterns if (Path(p) / VERSUS_FILE).is_file()):
        section, png = _versus_section(folder, figures_dir, out)
        at = lines.index("## All runs")
        lines[at:at] = section
        written.append(png)
    index = write_text(out / "index.md", "\n".join(lines) + "\n")
    log.info("report of %d run(s) written to %s", len(runs), index)
    return ReportResult(out, index, len(runs), written)


def _versus_section(folder: Path, figures_dir: Path, out: Path) -> tuple[list[str], Path]:
    """The search-vs-random comparison ``bench/search_vs_random.py`` left in ``folder``: its figure and table."""
    from hnanas.report.figures import draw_versus

    result = read_json(folder / VERSUS_FILE)
    png = draw_versus(result["networks"], figures_dir / f"search_vs_random_{slug(folder.name)}.png")
    b = result.get("budget", {})
    lines = [f"## Search vs random at the same latency ({folder.name})", "",
             f"The searched network against {result.get('k')} random networks of its space predicted within "
             f"±{100 * result.get('tol', 0):g} % of its {ms(result.get('target_ms'))} ms, each retrained with seeds "
             f"{b.get('seeds')} for {b.get('epochs')} epochs ({b.get('crop')}-px crops, batch {b.get('batch_size')}) "
             f"on {Path(str(result.get('dataset'))).name} {result.get('split') or ''}; test metrics, mean ± seed std.",
             "", f"![search vs random]({_rel(png, out)})", "", versus_markdown(result), ""]
    return lines, png


def _index(runs, rows, devices, table, pareto_pngs, arch_pngs, extra_figures, out: Path) -> list[str]:
    retrained = sum(r.status == STATUS_RETRAINED for r in runs)
    baselines = sum(r.baseline for r in runs)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# hnanas report", "",
             f"{len(runs)} run(s): {len(runs) - baselines} searched, {baselines} baseline(s); {retrained} retrained, "
             f"{len(runs) - retrained} without a finished retrain (search columns only). Devices: "
             f"{', '.join(devices) or 'none'}. Written {date} by hnanas {hnanas.__version__}.", "",
             "Metrics are on the test split (IoU, nIoU, Pd in %, Fa in 1e-6 per pixel, threshold 0.5); latency in ms: "
             "*measured* with ONNX Runtime on the exported, re-parameterised network, *predicted* by the latency "
             "table. The table as [Markdown](runs.md) and [CSV](runs.csv).", "", "## Runs", ""]
    by_name = {row["run"]: row for row in rows}
    lines_of = {r.name: summary_line(by_name[r.name], run_latencies(r).values()) for r in runs}
    lines += [f"- {lines_of[r.name]}" for r in runs] + [""]
    if devices:
        lines += ["## Accuracy vs latency", ""]
        for device in devices:
            lines += _pareto_section(runs, device, pareto_pngs[device], out)
    for title, path in extra_figures:
        lines += [f"## {title}", "", f"![{title}]({_rel(path, out)})", ""]
    lines += ["## All runs", "", table, "## Per run", ""]
    for run in runs:
        lines += _run_section(run, lines_of[run.name], arch_pngs.get(run.name), out)
    return lines
