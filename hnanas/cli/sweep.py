"""``hnanas sweep``: parse arguments into a :class:`hnanas.sweep.run.SweepConfig`, call ``run_sweep``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hnanas.cli.search import add_search_options
from hnanas.config import given
from hnanas.errors import HnanasError

DESCRIPTION = """\
Search + retrain once per value of lambda (--latency-weights) or of the target latency (--targets), recorded in
an Optuna multi-objective study: maximise the retrain's validation IoU (of its chosen checkpoint; never the test
split), minimise the latency measured on the search device. Test metrics, objective values and run folders are
the trials' user attrs. Ends with `hnanas report` over the study's runs (runs/STUDY/report/index.md) and Optuna's
own Pareto-front plot.

Run folders: runs/STUDY/trial_<k>_l<lambda>/ (the search) with retrain/ inside. Default storage:
sqlite:///runs/STUDY.db. Rerunning the same command continues the study: finished points are kept, points whose
worker was killed are run again (resuming their folders), points that failed are skipped unless --retry-failed.
Several workers share a study: run the same command in several processes (one SQLite file on one machine) or on
several machines with --storage postgresql://USER:PASSWORD@HOST/DB (or mysql://...); no point runs twice. With
--wait, a worker stays while others run points and takes over those whose worker dies (silent for --stale-after).

Examples:
  hnanas sweep --study lam --latency-weights 0.01,0.03,0.1,0.3,1
  hnanas sweep --study tgt --targets 20,40,80 --preset paper --dataset NUDT-SIRST --latency-device gpu
  hnanas sweep --study lam --latency-weights 0.01,0.1,1 --storage postgresql://u:pw@db-host/hnanas --trials 1"""


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    from hnanas.pipeline.presets import preset_names

    p = subparsers.add_parser("sweep", help="search + retrain over lambdas or targets, as an Optuna study",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--latency-weights", type=_floats, metavar="L,L,...", help="lambda values, one point each")
    what.add_argument("--targets", type=_floats, metavar="MS,MS,...", help="target latencies (ms), one point each")
    p.add_argument("--study", required=True, metavar="NAME", help="Optuna study name (and folder runs/NAME)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default sqlite:///RUNS_DIR/NAME.db)")
    p.add_argument("--trials", type=int, metavar="N", help="run at most N points in this invocation (default: all)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR",
                   help="where run folders (DIR/NAME/...) and the default SQLite storage go (default runs)")
    p.add_argument("--objective-latency", choices=["measured", "predicted"], default="measured",
                   help="latency objective: measured on the search device after retrain (default), or the "
                        "table's prediction (for a device that does not run here)")
    p.add_argument("--retry-failed", action="store_true", help="run points whose last trial failed again")
    p.add_argument("--stale-after", type=float, default=600.0, metavar="S",
                   help="a running trial with no heartbeat for S seconds counts as interrupted (default 600; a "
                        "trial of a dead process on this machine is detected at once)")
    p.add_argument("--wait", action="store_true",
                   help="when nothing is left to claim, wait for the points other workers are running and take "
                        "over any whose worker dies (after --stale-after), instead of exiting")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    search = p.add_argument_group("search options (as hnanas search)")
    add_search_options(search, {
        "--threads": "the table's ONNX Runtime threads; the retrain measures with them too (default 1)",
        "--latency-weight": "lambda of a --targets sweep (default 0.1)",
        "--target-latency": "target T of a --latency-weights sweep",
        "--preset": "search preset, and the retrain preset unless --retrain-preset (default quick)",
        "--torch-device": "torch device (search and retrain)",
        "--seed": "seed of search and retrain (default 0)"})
    retrain = p.add_argument_group("retrain options (as hnanas retrain)")
    retrain.add_argument("--retrain-preset", choices=preset_names(), help="retrain preset (default: --preset)")
    retrain.add_argument("--retrain-config", metavar="FILE", help="retrain YAML config overriding the preset")
    retrain.add_argument("--retrain-epochs", type=int, metavar="N", help="retrain epochs")
    retrain.add_argument("--retrain-batch-size", type=int, metavar="N", help="retrain crops per step")
    retrain.add_argument("--retrain-crop-size", type=int, metavar="PX", help="retrain crop size")
    retrain.add_argument("--retrain-threads", type=int, metavar="N", help="torch CPU threads of the retrain")
    retrain.add_argument("--retrain-precision", choices=("auto", "fp32", "fp32-cl", "bf16"),
                         help="train path of the retrain (default auto: chosen by timing on each machine; fp32 "
                              "gives the same results on every worker)")
    p.set_defaults(func=run_sweep_command)


def config_from_args(args: argparse.Namespace):
    from hnanas.cli.search import config_from_args as search_config
    from hnanas.sweep.run import SweepConfig

    if args.latency_weights is not None and args.latency_weight is not None:
        raise HnanasError("sweep: --latency-weights sweeps lambda; drop --latency-weight")
    if args.targets is not None and args.target_latency is not None:
        raise HnanasError("sweep: --targets sweeps the target; drop --target-latency")
    if args.trials is not None and args.trials < 1:
        raise HnanasError(f"sweep: --trials must be at least 1, got {args.trials}")
    search = search_config(args)
    changes = {"train.epochs": args.retrain_epochs, "train.batch_size": args.retrain_batch_size,
               "data.crop_size": args.retrain_crop_size, "train.threads": args.retrain_threads,
               "train.precision": args.retrain_precision,
               "train.seed": args.seed, "train.device": args.train_device, "latency.threads": search.threads}
    param, values = (("latency_weight", args.latency_weights) if args.latency_weights is not None
                     else ("target_latency_ms", args.targets))
    return SweepConfig(study=args.study, param=param, values=values, search=search,
                       retrain_preset=args.retrain_preset or args.preset,
                       retrain_changes=given(changes),
                       retrain_config=args.retrain_config, storage=args.storage, runs_dir=args.runs_dir,
                       objective_latency=args.objective_latency, retry_failed=args.retry_failed,
                       stale_after=args.stale_after, wait=args.wait)


def run_sweep_command(args: argparse.Namespace) -> int:
    from hnanas.sweep.run import run_sweep

    result = run_sweep(config_from_args(args), args.trials, report=not args.no_report)
    print(result.summary())
    return 0
