"""``hnanas ops list`` and ``hnanas ops verify``: the candidate-op catalogue and the re-param check."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``C,H,W`` → (C, H, W) of positive integers (argparse type)."""
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W as three positive integers (e.g. 16,256,256), got {text!r}")
    return shape  # type: ignore[return-value]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def run_list(args: argparse.Namespace) -> int:
    from hnanas.ops.catalog import format_op_table, summarize_ops

    print(format_op_table(summarize_ops(args.shape), args.shape))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from hnanas.fileio import write_json
    from hnanas.ops.verify import verify_ops

    report = verify_ops(args.ops, args.shape, threads=args.threads, rounds=args.rounds,
                        min_time_s=args.min_time, seed=args.seed)
    print(report.format_table())
    if args.json:
        write_json(args.json, report.to_dict())
        log.info("wrote %s", args.json)
    failed = [n for n, v in report.ops.items() if not v.passed]
    if failed:
        log.error("equivalence check failed for: %s", ", ".join(failed))
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("ops", help="list candidate ops; verify re-parameterisation",
                                   description="The candidate-op registry: list ops, verify re-parameterisation.")
    sub = parser.add_subparsers(dest="ops_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="table of every op: family, re-param, params and MACs",
                       description="Table of every registered op: family, re-parameterisable or not, parameters and "
                                   "MACs at C,H,W (c_in = c_out = C, stride 1), as 'train -> deploy' where the "
                                   "forms differ.")
    p.add_argument("--shape", type=parse_shape, default=(16, 256, 256), metavar="C,H,W",
                   help="input shape (default 16,256,256)")
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "verify", help="train vs deploy equivalence and ONNX Runtime latency of re-param ops",
        description=(
            "For each re-parameterisable op (c_in = c_out = C, stride 1) with randomised BN statistics in eval "
            "mode: the max relative error between train and deploy form in float32 and float64, where "
            "max_rel_err = max|deploy - train| / max|train| over all output elements (same random input); "
            "tolerances 1e-5 (float32) and 1e-10 (float64). Then the ONNX Runtime latency of the exported train "
            "form, deploy form "
            "and a plain Conv2d(C, C, 3, padding=1) + the op's activation, measured interleaved over several "
            "rounds (median of per-round medians; deploy/3x3 and train/deploy are medians of within-round ratios; "
            "spreads = (p90-p10)/median over rounds). Exit status 1 if any equivalence check fails: train vs "
            "deploy beyond the tolerances, the exported deploy model vs torch beyond 1e-4, or a "
            "BatchNormalization left in the deploy graph."))
    p.add_argument("--shape", type=parse_shape, default=(16, 256, 256), metavar="C,H,W",
                   help="input shape (default 16,256,256)")
    p.add_argument("--threads", type=_positive, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--rounds", type=_positive, default=7,
                   help="interleaved timing rounds of (train, deploy, plain conv) (default 7)")
    p.add_argument("--min-time", type=_positive_float, default=0.25, metavar="SECONDS",
                   help="timed seconds per model per round, after warm-up (default 0.25)")
    p.add_argument("--ops", type=_names, default=None, metavar="NAME,...",
                   help="ops to verify (default: every re-parameterisable op; plain ops fold BN and work too)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters and inputs (default 0)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    p.set_defaults(func=run_verify)
