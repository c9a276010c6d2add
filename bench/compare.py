"""Searched networks against the baselines, one fixed training budget for all (issue 6's comparison table).

Each network goes through exactly the path a user's does: ``run_search`` (for the searched ones) and the retrain
entry point (train from scratch, choose the checkpoint on the validation subset, test once, re-parameterise,
export, time with ONNX Runtime next to the table's prediction). The networks:

- ``search:SPACE``          searched in SPACE (``--preset``'s search schedule on the comparison's dataset), then
                            retrained
- ``model:NAME``            a named baseline (``dnanet``, ``repisd``, ...)
- ``genotype:NAME@SPACE``   a named genotype of a space (``dense_res3@hna_nested``, ``dnanet_res3@hna_nested``)

HNA-NAS's published stage-1 topology is not available offline, so DNANet's own connectivity with ``res3``
(``dnanet_res3``) stands in as the second fixed topology beside the densest one (``dense_res3``).

All retrains share one budget (``--epochs``, ``--crop``, ``--batch-size``, the ``--preset``'s optimiser and loss,
seed 0) and are timed at the space's deployment size (256x256 for the baselines) on 1 ORT thread. Every step
resumes: rerunning skips finished networks and continues an interrupted one. Ends with ``hnanas report`` over
all runs (OUT/report) and prints the table; the rows go to OUT/compare.json.

    python bench/compare.py --dataset ../shared/datasets/NUAA-SIRST --split idx_427 --out runs/bench/compare
    python bench/compare.py --nets model:repisd genotype:dense_res3@hna_nested --epochs 2   # a quick look
    python bench/compare.py --preset paper --epochs 1500 --crop 256 --batch-size 16        # on a GPU (issue 6)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hnanas.envinfo import environment
from hnanas.fileio import write_json
from hnanas.report.build import write_report
from hnanas.report.data import report_devices, runs_table
from hnanas.report.runs import find_runs
from hnanas.search.config import resolve_config
from hnanas.search.run import run_search
from hnanas.train.presets import build_config
from hnanas.train.retrain import resume_retrain, start_retrain

NETS = ["search:rep_nested", "search:hna_nested", "model:dnanet", "model:repisd", "genotype:dense_res3@hna_nested",
        "genotype:dnanet_res3@hna_nested"]


def folder_name(net: str) -> str:
    return net.replace(":", "_").replace("@", "_")


def model_source(net: str, folder: Path, args: argparse.Namespace) -> dict:
    kind, _, what = net.partition(":")
    if kind == "search":
        if not (folder / "genotype.json").exists():
            cfg = resolve_config(args.preset, {"space": what, "data.dataset": args.dataset, "data.split": args.split,
                                           "data.data_root": args.data_root, "seed": 0,
                                           "latency_weight": args.latency_weight})
            run_search(cfg, folder, resume=(folder / "config.yaml").exists())
        return {"genotype": str(folder / "genotype.json"), "space": what}
    if kind == "model":
        return {"baseline": what}
    if kind == "genotype":
        name, _, space = what.partition("@")
        return {"genotype": name, "space": space}
    raise SystemExit(f"compare: unknown network {net!r}; use search:SPACE, model:NAME or genotype:NAME@SPACE")


def retrain(net: str, args: argparse.Namespace) -> Path:
    folder = args.out / folder_name(net)
    out = folder / "retrain" if net.startswith("search:") else folder
    if (out / "metrics.json").exists():
        return out
    model = model_source(net, folder, args)
    if (out / "model.json").exists():
        resume_retrain(out)
        return out
    changes = {"data.dataset": args.dataset, "data.split": args.split, "data.data_root": args.data_root,
               "data.crop_size": args.crop, "train.epochs": args.epochs, "train.batch_size": args.batch_size,
               "train.val_every": max(1, args.epochs // 4), "train.val_max_images": None, "train.seed": 0,
               "latency.threads": 1, "latency.devices": ["cpu"]}
    start_retrain(build_config(args.preset, model, changes=changes), out)
    return out


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
    p.add_argument("--preset", choices=["quick", "paper"], default="quick",
                   help="search and retrain preset (optimiser, loss; the searches' schedule); paper: for a GPU")
    p.add_argument("--out", type=Path, default=Path("runs/bench/compare"))
    args = p.parse_args(argv)
    seconds = {}
    for net in args.nets:
        t0 = time.time()
        retrain(net, args)
        seconds[net] = round(time.time() - t0, 1)
        print(f"compare: {net} done in {seconds[net] / 60:.1f} min", flush=True)
    runs = find_runs([args.out / folder_name(n) for n in args.nets])
    devices = report_devices(runs)
    rows = runs_table(runs, devices)
    write_report([args.out / folder_name(n) for n in args.nets], out=args.out / "report", devices=devices)
    print(f"{'run':<34}{'IoU':>7}{'nIoU':>7}{'Pd':>7}{'Fa e-6':>10}{'params M':>10}{'GMAC':>7}"
          f"{'cpu ms':>8}{'pred ms':>9}{'train min':>10}")
    for r in rows:
        f = lambda v, s=1.0, d=3: "-" if v is None else f"{v * s:.{d}f}"  # noqa: E731
        print(f"{r['run']:<34}{f(r['iou']):>7}{f(r['niou']):>7}{f(r['pd']):>7}{f(r['fa'], 1e6, 1):>10}"
              f"{f(r['params'], 1e-6, 3):>10}{f(r['macs'], 1e-9, 2):>7}{f(r.get('cpu_measured_ms'), 1, 1):>8}"
              f"{f(r.get('cpu_predicted_ms'), 1, 1):>9}{f(r['train_minutes'], 1, 1):>10}")
    print(f"budget: {args.epochs} epochs, {args.crop}px crops, batch {args.batch_size}, {args.preset} preset; "
          f"dataset {args.dataset} split {args.split}; ORT 1 thread at deployment size")
    write_json(args.out / "compare.json", {"rows": rows, "seconds": seconds, "budget": {
        "epochs": args.epochs, "crop": args.crop, "batch_size": args.batch_size, "preset": args.preset,
        "split": args.split,
        "dataset": args.dataset, "latency_weight": args.latency_weight}, "environment": environment()})
    print(f"report: {args.out / 'report' / 'index.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
