"""``hnanas search``: the two-stage, latency-aware architecture search."""

from __future__ import annotations

import argparse
from pathlib import Path

from hnanas.cli.common import add_dataset_options, add_deprecated_alias, dataset_changes
from hnanas.config import NULL, override
from hnanas.errors import HnanasError

HELP = """Differentiable two-stage search over a nested supernet, priced by a measured latency table.

Stage 1 prunes the nested topology (independent edge gates), stage 2 picks each node's op (ProxylessNAS paths);
both minimise  segmentation loss + latency term  with the expected latency from the table (add-linear:
lambda * (E - T) / T; mul-log: loss * alpha * (log E / log T)^beta; hinge, a budget of T ms:
lambda * max(0, E - T) / T). Architecture steps use a validation subset carved from the train split, never the
test split. The run folder gets config.yaml, genotype.json, search_log.csv,
arch/ snapshots, search_state.pt (resume with --resume), search_curves.png and arch_probs.png.

--strategy halving instead trains stand-alone candidates (TPE-proposed; under a hinge budget only those the table
prices within T, and above --floor x T) for --rungs epochs, stopping all but the best 1/ETA at each rung by
--signal plus the same latency term; it writes trials.csv, halving.db (the Optuna study) and halving.png,
resumable too. --preset cpu is that search sized for a 2-core CPU on the real datasets (about an hour on
NUDT-SIRST: 16 candidates on 128-px crops with retrain's quick optimiser, rungs 2:8:3 on 530 training images
scaled to the split's size, signal best_val_iou). --grad-norm-weight W adds W x ln(the candidate's gradient
norm at initialisation) to that signal. --final-seeds 2 trains the best two finishers once more from
other seeds and returns the better on average (logged in finalists.csv; 6-18 min more with the cpu preset;
where only one finished, the candidate stopped latest is trained to the end to join it).
--sync-startup halves the random start-up candidates as one batch (synchronous successive halving) instead of
one by one, where the first candidate drawn always trains to the end. --select-threshold ranks candidates by
their validation IoU at the threshold each chooses, for a network that will be retrained with that option.
--time-limit MIN bounds the candidates' training time (the cpu preset: 55, its hour; make demo: 5, so that it
fits on a slow 2-core machine; 0: no limit).

Defaults run out of the box: synthetic data, rep_nested, the shipped cpu table, the quick preset (5-8 min
on 2 CPU cores). Multi-process (two-stage only): torchrun --nproc_per_node N -m hnanas search ..."""


def register(sub) -> None:
    p = sub.add_parser("search", help="latency-aware architecture search (two-stage or halving)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_options(p)
    p.add_argument("--out", type=Path, help="run folder (default runs/search_<space>_<device>_l<lambda>_s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(func=run)


def add_search_options(p, helps: dict[str, str] | None = None) -> None:
    """The options ``config_from_args`` reads, on parser or group ``p`` (``hnanas search`` and ``hnanas sweep``);
    ``helps`` replaces the help text of some (by option name) where a command gives them another meaning."""
    helps = {
        "--threads": "the table's ONNX Runtime thread count (default 1)",
        "--latency-weight": "lambda, weight of the latency term (default 0.1)",
        "--target-latency": "target latency T in ms (default: the expected latency when architecture steps "
                            "start); the command says by how much the result misses it",
        "--latency-loss": "latency term form (default add-linear); hinge: lambda*max(0, E-T)/T, a budget of "
                          "--target-latency ms (no pressure below it)",
        "--preset": "quick: 5-8 min on 2 CPU cores on synthetic data; cpu: the halving strategy, about an hour "
                    "on 2 CPU cores on a real dataset; paper: HNA-NAS's schedule (GPU)",
        "--epochs": "epochs of each stage (warm-up epochs scale with it)",
        "--batch-size": "crops per step (split over processes under torchrun)",
        "--torch-device": "torch device for training (default auto: cuda if available)",
        "--seed": "seed (the same seed gives the same search)",
        **(helps or {})}
    add_dataset_options(p)
    p.add_argument("--strategy", metavar="NAME",
                   help="search strategy: two-stage (default: the differentiable topology-then-ops search) or "
                        "halving (stand-alone candidates trained briefly, the better ones longer; Optuna TPE + "
                        "successive halving)")
    p.add_argument("--candidates", type=int, metavar="N", help="halving: candidates to train (default 27; cpu "
                                                                "preset 16)")
    p.add_argument("--rungs", metavar="MIN:MAX:ETA",
                   help="halving: epochs of the first rung, epochs of a candidate never stopped, reduction factor "
                        "(default 1:9:3; cpu preset 2:8:3 on a training split of 530 images, NUDT-SIRST 50_50's, "
                        "scaled to the split's size: 3:15:3 on NUAA-SIRST idx_427's 273; given here, epochs as "
                        "given on any split)")
    p.add_argument("--signal", choices=["val_loss", "train_loss", "val_iou", "best_val_iou", "val_ap",
                                        "best_val_iou_ap", "best_val_iou_niou"],
                   help="halving: the accuracy signal ranked at each rung (default val_loss; cpu preset "
                        "best_val_iou: the best validation IoU so far, ties broken by validation loss; val_ap: "
                        "the validation pixels' average precision, threshold-free, which tells apart candidates "
                        "whose IoU is still 0; best_val_iou_ap: best_val_iou with ties broken by that; "
                        "best_val_iou_niou: the best mean of validation IoU and nIoU so far)")
    p.add_argument("--grad-norm-weight", type=float, metavar="W",
                   help="halving: add W x ln(the candidate's gradient norm at initialisation, on fixed training "
                        "batches) to its signal at every epoch, a second opinion that costs no training: on the "
                        "comparisons' networks a lower initial gradient norm goes with a higher test IoU (default 0: "
                        "not computed; measured at 0.1, docs/results.md)")
    p.add_argument("--final-seeds", type=int, metavar="K",
                   help="halving: train the best two candidates that finish (halving.finalists) K - 1 more times "
                        "from other initial weights and crops and return the one with the best mean final score; "
                        "where fewer finished, those stopped latest are trained to the end and fill in "
                        "(default 1: the search's own run decides)")
    p.add_argument("--sync-startup", action=argparse.BooleanOptionalAction, default=None,
                   help="halving: halve the start-up candidates as one batch: each trains to the first rung before "
                        "any trains further, then the best 1/ETA go on (default off: each candidate as it comes, "
                        "so the first one drawn passes every rung unopposed)")
    p.add_argument("--select-threshold", action=argparse.BooleanOptionalAction, default=None,
                   help="halving: score each candidate's validation IoU at the threshold (0.01..0.99) with the "
                        "best IoU there, as `retrain --select-threshold` will score the found network (default "
                        "off: at 0.5, the field's protocol)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="halving: start no candidate once the candidates' training has taken MIN minutes (summed "
                        "epoch seconds, a resumed search's earlier ones included) and stop the one in training "
                        "after its epoch unless none has finished yet; fewer candidates on a slower machine, so "
                        "the result depends on the machine (default: the cpu preset's 55, so that its search "
                        "keeps to the hour; 0: no limit). With --resume, the one setting a resumed search takes: "
                        "a search the limit ended trains on to its number of candidates")
    p.add_argument("--val-images", type=int, metavar="N",
                   help="validation images scored after each candidate epoch (halving) or architecture step "
                        "(two-stage): the first N of the validation subset (default: all for halving, 16 for the quick "
                        "preset's two-stage)")
    p.add_argument("--floor", type=float, metavar="F",
                   help="halving under a hinge budget T: train only candidates priced within [F x T, T] "
                        "(default 0: any below T)")
    p.add_argument("--space", help="search-space name or YAML file (default rep_nested)")
    p.add_argument("--latency-device", dest="device", metavar="DEVICE",
                   help="device whose latency table prices the search (default cpu)")
    add_deprecated_alias(p, "--device", "--latency-device")
    p.add_argument("--threads", type=int, help=helps["--threads"])
    p.add_argument("--table", help="latency table CSV (default latency_tables/<space>_<device>_t<threads>.csv)")
    p.add_argument("--latency-weight", type=float, help=helps["--latency-weight"])
    p.add_argument("--target-latency", type=float, metavar="MS", help=helps["--target-latency"])
    p.add_argument("--target-scale", type=float, metavar="F",
                   help="T = F x the mean predicted latency of random networks of the space on the table (a target "
                        "relative to this machine's prices; e.g. --latency-loss hinge --target-scale 0.4); the "
                        "search records it in ms as target_latency_ms")
    p.add_argument("--latency-loss", choices=["add-linear", "mul-log", "hinge"], help=helps["--latency-loss"])
    p.add_argument("--preset", choices=["quick", "cpu", "paper"], default="quick", help=helps["--preset"])
    p.add_argument("--epochs", type=int, help=helps["--epochs"])
    p.add_argument("--batch-size", type=int, help=helps["--batch-size"])
    p.add_argument("--crop-size", dest="crop", type=int, metavar="PX",
                   help="side of the square training crops, pixels (default: the preset's)")
    add_deprecated_alias(p, "--crop", "--crop-size")
    p.add_argument("--stage2-mode", choices=["proxyless", "mixture"], help="stage 2: sampled paths or DARTS mixture")
    p.add_argument("--torch-device", dest="train_device", choices=["auto", "cpu", "cuda"],
                   help=helps["--torch-device"])
    add_deprecated_alias(p, "--train-device", "--torch-device")
    p.add_argument("--seed", type=int, help=helps["--seed"])
    p.add_argument("--precision", choices=["auto", "fp32", "fp32-cl", "bf16"],
                   help="train path of the supernets: fp32 (bit-for-bit reruns), fp32-cl (channels_last), bf16 "
                        "(autocast; CPUs with AMX/AVX512-BF16, GPUs), auto (default: the faster of fp32 and "
                        "fp32-cl, timed at the start of each stage)")


def _scaled(stage, epochs: int | None) -> dict:
    if epochs is None:
        return {}
    warm = min(round(stage.warmup_epochs * epochs / stage.epochs), epochs - 1)
    return {"epochs": epochs, "warmup_epochs": max(warm, 0)}


def _rungs(text: str | None) -> dict:
    if text is None:
        return {}
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise HnanasError(f"--rungs {text!r}: expected MIN:MAX:ETA, e.g. 1:9:3")
    return {"halving.min_epochs": int(parts[0]), "halving.max_epochs": int(parts[1]), "halving.eta": int(parts[2]),
            "halving.rung_images": NULL}  # epochs as given, not scaled to the split's size


def _time_limit(args):
    """``--time-limit`` as a config change: None (not given), NULL (0: no limit) or the minutes."""
    if args.time_limit is not None and args.time_limit < 0:
        raise HnanasError(f"--time-limit {args.time_limit:g}: give minutes > 0, or 0 for no limit")
    return NULL if args.time_limit == 0 else args.time_limit


def config_from_args(args):
    from hnanas.search.config import preset_config, resolve_config

    time_limit = _time_limit(args)
    base = preset_config(args.preset)
    changes = {
        **dataset_changes(args), "data.crop_size": args.crop, "space": args.space,
        "device": args.device, "threads": args.threads, "table": args.table,
        "latency_weight": args.latency_weight, "target_latency_ms": args.target_latency,
        "target_latency_scale": args.target_scale,
        "latency_loss": args.latency_loss, "batch_size": args.batch_size, "seed": args.seed,
        "train_device": args.train_device, "stage2.mode": args.stage2_mode, "precision": args.precision,
        "strategy": args.strategy, "halving.trials": args.candidates, "halving.metric": args.signal,
        "halving.floor": args.floor, "halving.final_seeds": args.final_seeds,
        "halving.grad_norm_weight": args.grad_norm_weight,
        "halving.time_limit_min": time_limit,
        "halving.sync_startup": args.sync_startup,
        "halving.select_threshold": args.select_threshold,
        "val_images": args.val_images, "halving.val_images": args.val_images,
        **_rungs(args.rungs),
        **{f"stage1.{k}": v for k, v in _scaled(base.stage1, args.epochs).items()},
        **{f"stage2.{k}": v for k, v in _scaled(base.stage2, args.epochs).items()},
    }
    if args.seed is not None:
        changes["data.seed"] = args.seed
    return resolve_config(args.preset, changes)


def run(args) -> int:
    from hnanas.runs import RunDir
    from hnanas.search.config import SearchConfig
    from hnanas.search.run import run_search

    if args.resume:
        if args.out is None:
            raise HnanasError("--resume needs --out RUN_FOLDER (the run to continue)")
        cfg = RunDir(args.out).read_config(SearchConfig)  # a resumed run keeps its own configuration,
        if args.time_limit is not None:  # except how long it may train (a search the limit ended goes on)
            cfg = override(cfg, {"halving.time_limit_min": _time_limit(args)}, source="--time-limit")
    else:
        cfg = config_from_args(args)
    out = args.out or Path("runs") / f"search_{Path(cfg.space).stem}_{cfg.device}_l{cfg.latency_weight:g}_s{cfg.seed}"
    summary = run_search(cfg, out, resume=args.resume)
    if summary:
        print(f"genotype: {Path(summary['run']) / 'genotype.json'}  predicted {summary['predicted_latency_ms']:.2f} ms"
              f"  {summary['macs'] / 1e9:.2f} GMAC  {summary['params'] / 1e6:.3f} M params")
    return 0
