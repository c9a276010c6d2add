"""Does the stage-2 supernet learn within a budget? Train it on a fixed topology and log every epoch.

Stage 2 of ``hnanas search`` trains one op supernet per node of the stage-1 topology. Until that supernet
segments, the architecture gradient carries no accuracy signal and the latency term alone picks the ops. This
bench runs stage 2 alone (``TwoStage.run_stage(2, topology)``, the search's own code) on a given topology, once
per ``--modes`` entry MODE:EPOCHS[:WARMUP] (``proxyless``: one sampled path per weight step; ``mixture``: every
op, softmax-weighted; WARMUP epochs train weights only, default all but the last), and writes each run's
``search_log.csv`` (training loss, validation IoU of the derived network, seconds) and derived ``genotype.json``
to OUT/<mode>_e<epochs>_w<warm-up>, plus a summary table (printed and OUT/stage2_warmup.json).

    python bench/stage2_warmup.py --space hna_nested \\
        --topology runs/bench/compare/search_hna_nested/stage1_genotype.json \\
        --dataset ../shared/datasets/NUAA-SIRST --modes proxyless:100 mixture:15 mixture:14:8 --out runs/bench/stage2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from hnanas.fileio import write_json
from hnanas.nas.genotype import load_genotype
from hnanas.runs import RunDir
from hnanas.search import distributed as dd
from hnanas.search.config import resolve_config
from hnanas.search.context import SearchContext
from hnanas.search.outputs import finish_search
from hnanas.search.two_stage import TwoStage


def run_mode(mode: str, epochs: int, warmup: int | None, args: argparse.Namespace) -> dict:
    warm = epochs - 1 if warmup is None else min(warmup, epochs - 1)
    cfg = resolve_config(args.preset, {"space": args.space, "data.dataset": args.dataset, "data.split": args.split,
                                       "stage2.epochs": epochs, "stage2.warmup_epochs": warm, "stage2.mode": mode,
                                       "latency_weight": args.latency_weight, "seed": args.seed,
                                       "table": args.table, "data.crop_size": args.crop,
                                       "batch_size": args.batch_size})
    out = args.out / f"{mode}_e{epochs}_w{warm}"
    run = RunDir.create(out)
    run.write_config(cfg)
    ctx = SearchContext(cfg, run, dd.setup(torch.device("cpu")))
    strategy = TwoStage(ctx)
    topology = load_genotype(args.topology, ctx.space)
    t0 = time.time()
    genotype, _ = strategy.run_stage(2, topology)
    seconds = time.time() - t0
    summary = finish_search(ctx, genotype, strategy)
    rows = strategy.log.rows()
    losses = [float(r["train_loss"]) for r in rows]
    ious = [float(r["val_iou"]) for r in rows if r["val_iou"] not in ("", None)]
    return {"mode": mode, "epochs": epochs, "warmup_epochs": warm, "seconds": round(seconds, 1),
            "first_loss": losses[0], "last_loss": losses[-1], "max_val_iou": max(ious, default=None),
            "final_entropy": float(rows[-1]["entropy"]), "genotype": genotype.describe(),
            "predicted_ms": summary["predicted_latency_ms"], "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", required=True, help="search space of the topology")
    p.add_argument("--topology", required=True,
                   help="stage-1 genotype: a file (e.g. a search's stage1_genotype.json) or a name (dense_res3, ...)")
    p.add_argument("--table", default=None, help="latency table (default: the space's shipped cpu table)")
    p.add_argument("--crop", type=int, default=None, help="training crop side (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None, help="crops per step (default: the preset's)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--split", default=None)
    p.add_argument("--modes", nargs="+", default=["proxyless:30", "mixture:10"],
                   help="MODE:EPOCHS[:WARMUP] (default warm-up: all but the last epoch)")
    p.add_argument("--preset", choices=["quick", "paper"], default="quick")
    p.add_argument("--latency-weight", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("runs/bench/stage2"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for spec in args.modes:
        parts = spec.split(":")
        numbers = all(x.isdigit() for x in parts[1:])
        if len(parts) not in (2, 3) or parts[0] not in ("proxyless", "mixture") or not numbers:
            raise SystemExit(f"stage2_warmup: bad --modes entry {spec!r}; use MODE:EPOCHS[:WARMUP] with MODE "
                             f"proxyless or mixture")
        results.append(run_mode(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else None, args))
    print(f"{'mode':<10}{'epochs':>7}{'warm-up':>8}{'minutes':>8}{'loss first':>11}{'last':>7}{'max val IoU':>12}"
          f"{'entropy':>8}{'pred ms':>8}")
    for r in results:
        print(f"{r['mode']:<10}{r['epochs']:>7}{r['warmup_epochs']:>8}{r['seconds'] / 60:>8.1f}{r['first_loss']:>11.3f}"
              f"{r['last_loss']:>7.3f}{100 * (r['max_val_iou'] or 0):>11.1f}%{r['final_entropy']:>8.3f}"
              f"{r['predicted_ms']:>8.2f}")
    write_json(args.out / "stage2_warmup.json", {"results": results, "space": args.space,
                                                 "topology": str(args.topology), "dataset": args.dataset,
                                                 "preset": args.preset, "seed": args.seed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
