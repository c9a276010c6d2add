"""Searched networks against the baselines, one fixed training budget for all (issue 6's comparison table).

Each network goes through exactly the path a user's does: ``run_search`` (for the searched ones) and the retrain
entry point (train from scratch, choose the checkpoint on the validation subset after every epoch, test once,
re-parameterise, export, time with ONNX Runtime next to the table's prediction). The networks:

- ``search:SPACE``          searched in SPACE (``--preset``'s search schedule on the comparison's dataset), then
                            retrained
- ``model:NAME``            a named baseline (``dnanet``, ``repisd``, ...)
- ``genotype:NAME@SPACE``   a named genotype of a space (``dense_res3@hna_nested``, ``dnanet_res3@hna_nested``)

HNA-NAS's published stage-1 topology is not available offline, so DNANet's own connectivity with ``res3``
(``dnanet_res3``) stands in as the second fixed topology beside the densest one (``dense_res3``).

All retrains share one budget (``--epochs``, ``--crop``, ``--batch-size``, the ``--preset``'s optimiser and loss)
and are timed at the space's deployment size (256x256 for the baselines) on 1 ORT thread. ``--seeds`` retrains
every network once per seed (a search runs once, seed 0; its network is retrained per seed): at short budgets
the seed moves a network's test IoU by several points (docs/results.md), more than the gaps being compared, so
the summary gives mean and spread over seeds. Every step resumes: rerunning skips finished networks and
continues an interrupted one. Ends with ``hnanas report`` over all runs (OUT/report) and prints the table; the
rows (one per network and seed) and the per-network summary go to OUT/compare.json.

    python bench/compare.py --dataset ../shared/datasets/NUAA-SIRST --split idx_427 --out runs/bench/compare
    python bench/compare.py --epochs 15 --seeds 0 1 --out runs/bench/compare15                # two seeds
    python bench/compare.py --nets model:repisd genotype:dense_res3@hna_nested --epochs 2   # a quick look
    python bench/compare.py --nets search:hna_nested --latency-loss hinge --latency-weight 1 \
        --target-latency 47 --out runs/bench/compare_hinge     # the most accurate net within 47 ms (1/5 DNANet)
    python bench/compare.py --preset paper --epochs 1500 --crop 256 --batch-size 16        # on a GPU (issue 6)

A search folder already in OUT is reused only if it was searched with the same space and latency settings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from hnanas.envinfo import environment
from hnanas.errors import HnanasError
from hnanas.fileio import write_json
from hnanas.pipeline.budget import Budget, budget_config, retrain_once
from hnanas.pipeline.presets import RetrainConfig
from hnanas.pipeline.sources import search_run_source
from hnanas.report.build import write_report
from hnanas.report.data import report_devices, runs_table
from hnanas.report.runs import find_runs
from hnanas.search.config import resolve_config
from hnanas.search.run import search_once

NETS = ["search:rep_nested", "search:hna_nested", "model:dnanet", "model:repisd", "genotype:dense_res3@hna_nested",
        "genotype:dnanet_res3@hna_nested"]


def folder_name(net: str) -> str:
    return net.replace(":", "_").replace("@", "_")


def model_source(net: str, folder: Path, args: argparse.Namespace) -> dict:
    kind, _, what = net.partition(":")
    if kind == "search":
        cfg = resolve_config(args.preset, {"space": what, "data.dataset": args.dataset, "data.split": args.split,
                                           "data.data_root": args.data_root, "seed": 0,
                                           "latency_weight": args.latency_weight, "latency_loss": args.latency_loss,
                                           "target_latency_ms": args.target_latency})
        search_once(cfg, folder)
        return search_run_source(folder)[0]
    if kind == "model":
        return {"baseline": what}
    if kind == "genotype":
        name, _, space = what.partition("@")
        return {"genotype": name, "space": space}
    raise SystemExit(f"compare: unknown network {net!r}; use search:SPACE, model:NAME or genotype:NAME@SPACE")


def retrain_folder(net: str, out: Path, seed: int) -> Path:
    """Where ``net``'s retrain with ``seed`` goes (seed 0: the layout of a single-seed comparison)."""
    folder = out / folder_name(net)
    suffix = "" if seed == 0 else f"_seed{seed}"
    return folder / f"retrain{suffix}" if net.startswith("search:") else folder.with_name(folder.name + suffix)


def retrain(net: str, args: argparse.Namespace, seed: int = 0) -> Path:
    out = retrain_folder(net, args.out, seed)
    if (out / "metrics.json").exists():
        return out
    return retrain_once(retrain_config(model_source(net, args.out / folder_name(net), args), args, seed), out)


def retrain_config(model: dict, args: argparse.Namespace, seed: int) -> RetrainConfig:
    """The one budget every network gets (hnanas.pipeline.budget: the preset's optimiser and loss, the
    comparison's epochs, crops and batch, the checkpoint chosen after every epoch on the whole validation
    subset)."""
    budget = Budget(epochs=args.epochs, crop=args.crop, batch_size=args.batch_size, preset=args.preset,
                    precision=args.precision)
    return budget_config(budget, model, {"dataset": args.dataset, "split": args.split,
                                         "data_root": args.data_root}, seed)


SUMMARY_FIELDS = ["iou", "niou", "pd", "fa"]


def summarise(rows: list[dict], nets: list[str], seeds: list[int]) -> list[dict]:
    """One row per network: mean and population spread (std) of the metrics over its seeds, and the median of
    its measured latencies (every retrain times its own export)."""
    out = []
    for net in nets:
        mine = [r for r in rows if r.get("net") == net]
        if not mine:
            continue
        first = mine[0]
        row = {"net": net, "run": folder_name(net), "seeds": [r["seed"] for r in mine], "genotype": first["genotype"],
               "params": first["params"], "macs": first["macs"], "cpu_predicted_ms": first.get("cpu_predicted_ms")}
        for key in SUMMARY_FIELDS:
            values = [r[key] for r in mine if r.get(key) is not None]
            row[f"{key}_mean"] = statistics.fmean(values) if values else None
            row[f"{key}_std"] = statistics.pstdev(values) if len(values) > 1 else None
            row[f"{key}_values"] = values
        measured = [r["cpu_measured_ms"] for r in mine if r.get("cpu_measured_ms") is not None]
        row["cpu_measured_ms"] = statistics.median(measured) if measured else None
        out.append(row)
    return out


def print_summary(summary: list[dict]) -> None:
    f = lambda v, s=100.0, d=2: "-" if v is None else f"{v * s:.{d}f}"  # noqa: E731
    print(f"{'network (mean ± std over seeds)':<34}{'IoU':>15}{'nIoU':>15}{'Pd':>15}{'cpu ms':>8}{'pred ms':>9}")
    for r in summary:
        cells = [f"{f(r[k + '_mean'])} ± {f(r[k + '_std'])}" for k in ("iou", "niou", "pd")]
        print(f"{r['run']:<34}{cells[0]:>15}{cells[1]:>15}{cells[2]:>15}{f(r['cpu_measured_ms'], 1, 1):>8}"
              f"{f(r['cpu_predicted_ms'], 1, 1):>9}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=NETS, help=f"networks (default: {' '.join(NETS)})")
    p.add_argument("--dataset", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/NUAA-SIRST"))
    p.add_argument("--split", default="idx_427")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=30, help="retrain epochs, the same for every network")
    p.add_argument("--crop", type=int, default=128, help="training crop side, px")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--latency-weight", type=float, default=0.01,
                   help="lambda of the searches (default 0.01: with the quick preset's short CPU search, 0.1 prunes "
                        "to 2 nodes; docs/results.md)")
    p.add_argument("--latency-loss", choices=["add-linear", "mul-log", "hinge"], default="add-linear",
                   help="the searches' latency term (hinge: a budget of --target-latency ms)")
    p.add_argument("--target-latency", type=float, default=None, metavar="MS",
                   help="the searches' target latency T (needed by hinge; e.g. 1/5 of DNANet's measured time)")
    p.add_argument("--preset", choices=["quick", "paper"], default="quick",
                   help="search and retrain preset (optimiser, loss; the searches' schedule); paper: for a GPU")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="retrain seeds (default 0); each network is retrained once per seed, searches run once")
    p.add_argument("--precision", choices=["auto", "fp32", "fp32-cl", "bf16"], default="auto",
                   help="retrains' train path (hnanas.train.fastpath; fp32: as every table before 2026-12-02)")
    p.add_argument("--out", type=Path, default=Path("runs/bench/compare"))
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise SystemExit("compare: --seeds must be distinct non-negative integers")
    seconds = {}
    folders, owners = [], []
    for seed in args.seeds:
        for net in args.nets:
            t0 = time.time()
            folder = retrain(net, args, seed)
            key = net if seed == 0 else f"{net} seed {seed}"
            seconds[key] = round(time.time() - t0, 1)
            folders.append(folder.parent if folder.name == "retrain" else folder)
            owners.append((net, seed))
            print(f"compare: {key} done in {seconds[key] / 60:.1f} min", flush=True)
    runs = find_runs(folders)
    devices = report_devices(runs)
    rows = runs_table(runs, devices)
    for row, (net, seed) in zip(rows, owners):
        row["net"], row["seed"] = net, seed
        row["run"] = folder_name(net) + ("" if seed == 0 else f" seed {seed}")
    write_report(folders, out=args.out / "report", devices=devices)
    print(f"{'run':<34}{'IoU':>7}{'nIoU':>7}{'Pd':>7}{'Fa e-6':>10}{'params M':>10}{'GMAC':>7}"
          f"{'cpu ms':>8}{'pred ms':>9}{'train min':>10}")
    for r in rows:
        f = lambda v, s=1.0, d=3: "-" if v is None else f"{v * s:.{d}f}"  # noqa: E731
        print(f"{r['run']:<34}{f(r['iou']):>7}{f(r['niou']):>7}{f(r['pd']):>7}{f(r['fa'], 1e6, 1):>10}"
              f"{f(r['params'], 1e-6, 3):>10}{f(r['macs'], 1e-9, 2):>7}{f(r.get('cpu_measured_ms'), 1, 1):>8}"
              f"{f(r.get('cpu_predicted_ms'), 1, 1):>9}{f(r['train_minutes'], 1, 1):>10}")
    summary = summarise(rows, args.nets, args.seeds)
    if len(args.seeds) > 1:
        print_summary(summary)
    print(f"budget: {args.epochs} epochs, {args.crop}px crops, batch {args.batch_size}, {args.preset} preset; "
          f"dataset {args.dataset} split {args.split}; ORT 1 thread at deployment size")
    write_json(args.out / "compare.json", {"rows": rows, "summary": summary, "seconds": seconds, "budget": {
        "epochs": args.epochs, "crop": args.crop, "batch_size": args.batch_size, "preset": args.preset,
        "split": args.split,
        "dataset": args.dataset, "latency_weight": args.latency_weight, "latency_loss": args.latency_loss,
        "target_latency_ms": args.target_latency, "seeds": args.seeds},
        "environment": environment()})
    print(f"report: {args.out / 'report' / 'index.md'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HnanasError as exc:
        sys.exit(f"compare: {exc}")
