"""Report figures, drawn from the data of :mod:`hnanas.report.data` and :mod:`hnanas.report.architecture`
(matplotlib imported here only, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hnanas.report.architecture import HEAD, ArchLayout
from hnanas.report.data import ParetoPoint, pareto_front

SEARCHED_STYLE = {"marker": "o", "color": "C0", "label": "searched (measured)"}
BASELINE_STYLE = {"marker": "s", "color": "C3", "label": "baseline (measured)"}
BOX_HALF = (0.3, 0.22)  # half width and height of a node box, grid units


def _box_exit(x0: float, y0: float, x1: float, y1: float, hw: float, hh: float) -> tuple[float, float]:
    """Where the line from the centre (x0, y0) of a box of half sizes (hw, hh) towards (x1, y1) leaves it."""
    dx, dy = x1 - x0, y1 - y0
    if dx == 0 and dy == 0:
        return x0, y0
    t = min(hw / abs(dx) if dx else float("inf"), hh / abs(dy) if dy else float("inf"))
    return x0 + dx * t, y0 + dy * t


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scatter_runs(ax, points: Sequence[ParetoPoint], y, with_prediction: bool) -> None:
    """Measured points (filled), the table's prediction beside each (hollow, joined by a dotted line)."""
    for style, group in ((SEARCHED_STYLE, [p for p in points if not p.baseline]),
                         (BASELINE_STYLE, [p for p in points if p.baseline])):
        if not group:
            continue
        ax.scatter([p.measured_ms for p in group], [y(p) for p in group], marker=style["marker"], s=46,
                   color=style["color"], label=style["label"], zorder=3)
        if not with_prediction:
            continue
        pred = [p for p in group if p.predicted_ms is not None]
        for p in pred:
            ax.plot([p.measured_ms, p.predicted_ms], [y(p), y(p)], ls=":", lw=1, color=style["color"], zorder=2)
        if pred:
            ax.scatter([p.predicted_ms for p in pred], [y(p) for p in pred], marker=style["marker"], s=46,
                       facecolors="none", edgecolors=style["color"], zorder=3,
                       label=style["label"].replace("measured", "table prediction"))


def _front_line(ax, front: Sequence[ParetoPoint], y, color: str, label: str) -> None:
    if front:
        xs = [p.measured_ms for p in front]
        ys = [y(p) for p in front]
        ax.step(xs, ys, where="post", color=color, lw=1.2, alpha=0.8, label=label, zorder=1)


def draw_pareto(points: Sequence[ParetoPoint], device: str, path: str | Path, *, title: str = "") -> Path:
    """Two panels against measured latency on ``device``: test IoU (with the table's prediction beside each
    point and the Pareto front), and Pd (left axis) / Fa (right axis) with the Pd front."""
    plt = _plt()
    fig, (ax_iou, ax_pd) = plt.subplots(1, 2, figsize=(13, 5))
    iou = lambda p: 100 * p.iou  # noqa: E731
    _front_line(ax_iou, pareto_front(points), iou, "grey", "Pareto front (IoU vs measured)")
    _scatter_runs(ax_iou, points, iou, with_prediction=True)
    for p in points:
        ax_iou.annotate(p.name, (p.measured_ms, iou(p)), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax_iou.set_xlabel(f"latency on {device} (ms)")
    ax_iou.set_ylabel("test IoU (%)")
    ax_iou.set_title("IoU vs latency (filled: measured, hollow: predicted)")
    ax_iou.legend(fontsize=7, loc="lower right")

    with_pd = [p for p in points if p.pd is not None]
    pd = lambda p: 100 * p.pd  # noqa: E731
    _front_line(ax_pd, pareto_front(with_pd, gain=lambda p: p.pd), pd, "grey", "Pareto front (Pd)")
    _scatter_runs(ax_pd, with_pd, pd, with_prediction=False)
    ax_pd.set_xlabel(f"measured latency on {device} (ms)")
    ax_pd.set_ylabel("Pd (%)")
    ax_fa = ax_pd.twinx()
    with_fa = [p for p in points if p.fa is not None]
    for baseline, color in ((False, SEARCHED_STYLE["color"]), (True, BASELINE_STYLE["color"])):
        group = [p for p in with_fa if p.baseline == baseline]
        if group:
            ax_fa.scatter([p.measured_ms for p in group], [1e6 * p.fa for p in group], marker="x", color=color,
                          label=f"Fa, {'baseline' if baseline else 'searched'}", zorder=3)
    ax_fa.set_ylabel("Fa (x1e-6, crosses)")
    handles = ax_pd.get_legend_handles_labels()
    more = ax_fa.get_legend_handles_labels()
    if handles[0] or more[0]:
        ax_pd.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="lower right")
    ax_pd.set_title("Pd (dots, left) and Fa (crosses, right)")
    if not points:
        for ax in (ax_iou, ax_pd):
            ax.text(0.5, 0.5, f"no retrained run measured on {device}", ha="center", va="center",
                    transform=ax.transAxes)
    fig.suptitle(title or f"Accuracy vs latency on {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


VERSUS_STYLE = {"random": ("o", "0.55", "random at the searched latency"), "searched": ("*", "C0", "searched"),
                "ablation": ("D", "C1", "latency-only ablation"), "baseline": ("s", "C3", "baseline")}


def draw_versus(networks: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Test IoU (mean over seeds, bars: seed std) against measured latency (the table's prediction where none
    was measured; log axis) for the random cloud, the searched network, the ablation and the baselines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for role, (marker, color, label) in VERSUS_STYLE.items():
        group = [n for n in networks if n["role"] == role and n.get("iou_mean") is not None]
        if not group:
            continue
        xs = [n.get("measured_ms") or n.get("predicted_ms") for n in group]
        ys = [100 * n["iou_mean"] for n in group]
        errs = [100 * (n.get("iou_std") or 0.0) for n in group]
        ax.errorbar(xs, ys, yerr=errs, fmt=marker, color=color, ms=13 if marker == "*" else 7, capsize=3,
                    label=label, zorder=3 if role != "random" else 2)
        if role == "random":
            mean = sum(ys) / len(ys)
            ax.axhline(mean, color=color, lw=1, ls="--", label=f"random mean ({mean:.1f} %)", zorder=1)
        else:
            for n, x, y in zip(group, xs, ys):
                ax.annotate(n["name"], (x, y), textcoords="offset points", xytext=(6, 5), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, measured; log scale)")
    ax.set_ylabel("test IoU (%), mean ± seed std")
    if ax.get_legend_handles_labels()[0]:  # a comparison with no finished network has nothing to label
        ax.legend(fontsize=7, loc="best")
    ax.set_title(title or "Searched vs random networks at the same predicted latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def draw_architecture(layout: ArchLayout, path: str | Path) -> Path:
    """The nested grid: kept nodes coloured by their share of the predicted latency, op name and ms in each,
    pruned nodes dashed, kept edges as arrows (blue: from a coarser level, green: from a finer one)."""
    plt = _plt()
    from matplotlib import cm, colors
    from matplotlib.patches import FancyBboxPatch

    columns = max(n.column for n in layout.nodes) + 1
    levels = max(n.level for n in layout.nodes) + 1
    fig, ax = plt.subplots(figsize=(2.0 * (columns + 2) + 1.5, 1.5 * levels + 1.6))
    shares = [n.share for n in layout.nodes if n.share is not None]
    norm = colors.Normalize(vmin=0.0, vmax=max(shares) if shares else 1.0)
    cmap = plt.get_cmap("YlOrRd")
    edge_colors = {"same": "0.35", "up": "tab:blue", "down": "tab:green"}
    half = {"input": (0.17, 0.08), HEAD: (0.2, 0.12)}
    for e in layout.edges:
        skips = abs(e.x1 - e.x0) > 1 and e.y0 == e.y1  # a long edge along a row would cross the boxes between
        if skips:  # leave and enter through the top edges, bowed over the boxes in between
            a, b = (e.x0 + 0.12, e.y0 + BOX_HALF[1]), (e.x1 - 0.12, e.y1 + BOX_HALF[1])
        else:
            a = _box_exit(e.x0, e.y0, e.x1, e.y1, *half.get(e.src, BOX_HALF))
            b = _box_exit(e.x1, e.y1, e.x0, e.y0, *half.get(e.dst, BOX_HALF))
        ax.annotate("", xy=b, xytext=a, zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": edge_colors[e.resample], "lw": 1.1, "alpha": 0.8,
                                "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12,
                                "connectionstyle": f"arc3,rad={-0.3 if skips else 0.0}"})
    for n in layout.nodes:
        if n.kept:
            face = cmap(norm(n.share)) if n.share is not None else "0.85"
            box = FancyBboxPatch((n.x - BOX_HALF[0], n.y - BOX_HALF[1]), 2 * BOX_HALF[0], 2 * BOX_HALF[1],
                                 boxstyle="round,pad=0.02", fc=face,
                                 ec="black", lw=1.0, zorder=2)
            text = f"{n.id}\n{n.op}"
            if n.ms is not None:
                text += f"\n{n.ms:.2f} ms" + (f" ({100 * n.share:.0f} %)" if n.share is not None else "")
        else:
            box = FancyBboxPatch((n.x - BOX_HALF[0], n.y - BOX_HALF[1]), 2 * BOX_HALF[0], 2 * BOX_HALF[1],
                                 boxstyle="round,pad=0.02", fc="white",
                                 ec="0.7", lw=0.8, ls="--", zorder=2)
            text = f"{n.id}\n(pruned)"
        ax.add_patch(box)
        dark = n.share is not None and norm(n.share) > 0.65
        ax.text(n.x, n.y, text, ha="center", va="center", fontsize=8, zorder=3,
                color=("white" if dark else "black") if n.kept else "0.6")
    for (x, y), label in ((layout.input_xy, "input"), (layout.head_xy, "head\n1x1 conv")):
        ax.text(x, y, label, ha="center", va="center", fontsize=8, zorder=3,
                bbox={"boxstyle": "round", "fc": "0.93", "ec": "0.5"})
    ax.set_xlim(layout.input_xy[0] - 0.6, layout.head_xy[0] + 0.6)
    longest = max((abs(e.x1 - e.x0) for e in layout.edges if e.y0 == e.y1), default=1.0)
    ax.set_ylim(-levels + 0.4, BOX_HALF[1] + 0.15 * longest + 0.25)
    ax.text(0.0, -0.02, "arrows: grey = same level, blue = upsampled from a coarser level, green = downsampled "
            "from a finer level", transform=ax.transAxes, fontsize=7, color="0.4", va="top")
    ax.set_yticks([-lv for lv in range(levels)], [f"level {lv}\n(1/{1 << lv})" for lv in range(levels)])
    ax.set_xticks(range(columns), [f"column {c}" for c in range(columns)])
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    subtitle = (f"predicted {layout.total_ms:.2f} ms in total; " if layout.total_ms is not None else "") + \
        (layout.source or "no latency prediction")
    ax.set_title(f"{layout.title}\n{subtitle}", fontsize=9)
    if shares:
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.02,
                     label="share of the predicted latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def draw_optuna_pareto(study, path: str | Path, target_names: Sequence[str]) -> Path | None:
    """Optuna's own ``plot_pareto_front`` (matplotlib backend) of a study, saved as PNG; None without a
    complete trial."""
    import warnings

    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    plt = _plt()
    from optuna.visualization.matplotlib import plot_pareto_front

    import matplotlib

    with warnings.catch_warnings(), matplotlib.rc_context():  # Optuna switches the global style to ggplot
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = plot_pareto_front(study, target_names=list(target_names))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
    return Path(path)
