"""``hnanas retrain``: parse arguments, resolve the model source and config, call hnanas.pipeline.retrain."""

from __future__ import annotations

import argparse
from pathlib import Path

from hnanas.cli.common import add_dataset_options, add_deprecated_alias, dataset_changes
from hnanas.errors import HnanasError

DESCRIPTION = """\
Train a network from scratch, choose the checkpoint on the validation subset carved from the train list (never
the test split), evaluate it once on the test split (IoU, nIoU, Pd, Fa), re-parameterise it, export the deploy
form to ONNX (input normalisation inside), check the export against torch, and time it with ONNX Runtime next to
the latency table's prediction.

The network: the genotype.json of a search run (--run runs/NAME; its config.yaml gives the space and data
defaults), or --genotype NAME|FILE with --space, or --model NAME for a baseline. Output: runs/NAME/retrain/
(or --out DIR) with metrics.json, latency.json, model.onnx, best.pt, retrain_log.csv, predictions.png,
config.yaml, env.json, run.log. A killed run continues where its last epoch ended with --resume."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from hnanas.pipeline.presets import preset_names

    p = subparsers.add_parser("retrain", help="train a found or baseline network, test, export and time it",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", metavar="DIR", help="run folder: a search run (its genotype.json is trained) and where "
                                                "the output goes (DIR/retrain)")
    p.add_argument("--genotype", metavar="NAME|FILE", help="genotype file, or a name (dnanet_res3, dense_res3, "
                                                           "chain_res3, random:K); needs --space")
    p.add_argument("--space", metavar="NAME|FILE", help="search space of --genotype (name in search_spaces/ or file)")
    p.add_argument("--model", metavar="NAME|FILE", help="a baseline network by name, or a model-spec JSON file")
    add_dataset_options(p)
    p.add_argument("--preset", choices=preset_names(), default=None,
                   help="quick: minutes on a CPU (synthetic demo); paper: the 1500-epoch GPU schedule "
                        "(default: quick)")
    p.add_argument("--config", metavar="FILE", help="YAML file overriding preset values (sections data, optim, "
                                                    "train, latency; unknown keys are errors)")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs (overrides the preset)")
    p.add_argument("--seed", type=int, metavar="K",
                   help="seed of initialisation, data order and augmentation (default 0)")
    p.add_argument("--batch-size", type=int, metavar="N", help="training crops per step")
    p.add_argument("--crop-size", type=int, metavar="PX", help="side of the square training crops, pixels")
    p.add_argument("--lr", type=float, metavar="LR", help="initial learning rate")
    p.add_argument("--optimizer", choices=("adagrad", "adamw", "sgd"), help="optimizer")
    p.add_argument("--torch-device", dest="device", choices=("auto", "cpu", "cuda"),
                   help="torch device (default auto: cuda if present)")
    add_deprecated_alias(p, "--device", "--torch-device")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads for training (default: one per core)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp32-cl", "bf16"),
                   help="train path: fp32 (NCHW float32, bit-for-bit reruns), fp32-cl (channels_last), bf16 "
                        "(autocast; for CPUs with AMX/AVX512-BF16 and GPUs), auto (default: the faster of fp32 and "
                        "fp32-cl on this machine, timed on the first batch)")
    p.add_argument("--select-threshold", action="store_true", default=None,
                   help="choose the decision threshold (one of train.threshold_grid, 0.01..0.99) with the best IoU "
                        "on the validation subset at every validation, instead of 0.5; it picks the checkpoint, "
                        "scores the test set and is stored with the model for predict/evaluate (metrics.json keeps "
                        "the 0.5 figures too)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/retrain)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    p.set_defaults(func=run_retrain)


def _changes(args: argparse.Namespace) -> dict:
    return {**dataset_changes(args), "data.crop_size": args.crop_size, "train.epochs": args.epochs,
            "train.seed": args.seed, "train.batch_size": args.batch_size, "train.device": args.device,
            "train.threads": args.threads, "train.precision": args.precision, "optim.lr": args.lr,
            "optim.name": args.optimizer, "train.select_threshold": args.select_threshold}


def run_retrain(args: argparse.Namespace) -> int:
    from hnanas.pipeline.presets import build_config
    from hnanas.pipeline.retrain import resume_retrain, start_retrain
    from hnanas.pipeline.sources import search_run_source
    from hnanas.runs import check_run_path

    if not args.run and not args.out:
        raise HnanasError("retrain: pass --run runs/NAME (a search run, or the name of a new run) or --out DIR")
    out = Path(args.out) if args.out else Path(args.run) / "retrain"
    if args.resume:
        if args.genotype or args.model or args.space or args.config or args.preset:
            raise HnanasError("retrain --resume: the model and config of a resumed run are fixed; pass only --run/"
                              "--out (and flags equal to the run's)")
        result = resume_retrain(out, _changes(args))
    else:
        check_run_path(out)  # before resolving anything: re-running a finished command says so first
        if args.model and args.genotype:
            raise HnanasError("retrain: pass either --model (a baseline) or --genotype (with --space), not both")
        base: dict = {}
        if args.model:
            model = {"baseline": args.model}
        elif args.genotype:
            if not args.space:
                raise HnanasError("retrain: --genotype needs --space (the search space it was found in)")
            model = {"genotype": args.genotype, "space": args.space}
        else:
            if not args.run:
                raise HnanasError("retrain: name the network: --run SEARCH_RUN, --genotype with --space, or --model")
            model, base = search_run_source(args.run, space=args.space, dataset=args.dataset)
        cfg = build_config(args.preset or "quick", model, base=base, file=args.config, changes=_changes(args))
        result = start_retrain(cfg, out)
    print(result.summary)
    return 0
