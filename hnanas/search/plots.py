"""Search figures, computed then drawn: the data behind each figure is a plain function (tested without a
display); matplotlib is imported only to draw (Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def search_curves_data(rows: list[dict]) -> dict:
    """Series per stage: x = epoch index over both stages, losses, val IoU, expected/derived latency, entropy."""
    keys = ["train_loss", "arch_loss", "val_iou", "expected_latency_ms", "derived_latency_ms", "entropy"]
    out = {"x": [], "stage": [], **{k: [] for k in keys}}
    for i, r in enumerate(rows):
        out["x"].append(i + 1)
        out["stage"].append(int(float(r["stage"])))
        for k in keys:
            out[k].append(_num(r.get(k)))
    return out


def arch_probs_data(run_path: Path) -> dict:
    """The last snapshot of each stage: node -> probabilities (stage 2 also gives the op names per node)."""
    out = {}
    for stage in (1, 2):
        snaps = sorted(Path(run_path, "arch").glob(f"stage{stage}_epoch*.json"))
        if snaps:
            out[stage] = json.loads(snaps[-1].read_text())
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_search_curves(rows: list[dict], path: Path) -> None:
    d = search_curves_data(rows)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for key, ax in (("train_loss", axes[0]), ("arch_loss", axes[0])):
        ax.plot(d["x"], [v if v is not None else float("nan") for v in d[key]], label=key.replace("_", " "))
    axes[0].set_title("losses")
    axes[1].plot(d["x"], [100 * v if v is not None else float("nan") for v in d["val_iou"]], color="C2")
    axes[1].set_title("validation IoU of the derived architecture (%)")
    for key in ("expected_latency_ms", "derived_latency_ms"):
        axes[2].plot(d["x"], [v if v is not None else float("nan") for v in d[key]], label=key[:-3].replace("_", " "))
    axes[2].set_title("latency (ms)")
    for ax in axes:
        boundary = next((x for x, s in zip(d["x"], d["stage"]) if s == 2), None)
        if boundary is not None:
            ax.axvline(boundary - 0.5, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("epoch (stage 1, then stage 2)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_arch_probs(run_path: Path, space, path: Path) -> None:
    """Stage 2: per-node op probabilities as a heat map (stage 1 edge probabilities beside it)."""
    data = arch_probs_data(run_path)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [1, 2]})
    if 1 in data:
        nodes = list(data[1])
        width = max(len(v) for v in data[1].values())
        grid = [list(v.values()) + [float("nan")] * (width - len(v)) for v in data[1].values()]
        axes[0].imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        axes[0].set_yticks(range(len(nodes)), nodes)
        axes[0].set_xlabel("candidate input (space order)")
        axes[0].set_title("stage 1: edge keep-probability")
    if 2 in data:
        nodes = list(data[2])
        ops = list(space.ops)
        grid = [[v.get(op, float("nan")) for op in ops] for v in data[2].values()]
        im = axes[1].imshow(grid, aspect="auto", vmin=0, cmap="magma")
        axes[1].set_yticks(range(len(nodes)), nodes)
        axes[1].set_xticks(range(len(ops)), ops, rotation=60, fontsize=8)
        axes[1].set_title("stage 2: op probability per node")
        fig.colorbar(im, ax=axes[1])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def halving_data(rows: list[dict]) -> list[dict]:
    """One point per trained candidate of the halving strategy: its predicted latency, its last score and how
    many epochs it trained (candidates over the latency budget have no epoch and are left out)."""
    last: dict[int, dict] = {}
    for r in rows:
        if _num(r.get("score")) is not None:
            last[int(r["trial"])] = r
    return [{"trial": t, "predicted_ms": float(r["predicted_ms"]), "score": float(r["score"]),
             "epochs": int(r["epoch"])} for t, r in sorted(last.items())]


def draw_halving(rows: list[dict], best: int, path: Path) -> Path:
    """Each candidate's last score against its predicted latency, marker size = epochs trained; the chosen one
    starred."""
    points = halving_data(rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if points:
        sizes = [12 * p["epochs"] for p in points]
        sc = ax.scatter([p["predicted_ms"] for p in points], [p["score"] for p in points], s=sizes,
                        c=[p["epochs"] for p in points], cmap="viridis", alpha=0.8)
        fig.colorbar(sc, ax=ax, label="epochs trained")
        for p in points:
            if p["trial"] == best:
                ax.scatter([p["predicted_ms"]], [p["score"]], marker="*", s=260, color="C3", label="chosen")
        ax.legend(fontsize=8)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("score at the last epoch trained (lower is better)")
    ax.set_title("halving: candidates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
