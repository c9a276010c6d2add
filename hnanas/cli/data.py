"""``hnanas data check DATASET`` and ``hnanas data synth --out DIR``: parse arguments, call hnanas.data."""

from __future__ import annotations

import argparse
import time

from hnanas.cli.common import add_dataset_options, open_dataset_from_args
from hnanas.data import SynthParams, check_dataset, format_report, write_synthetic
from hnanas.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check datasets, generate the synthetic dataset",
                                   description="Dataset tools.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="report counts, sizes, mask values, target statistics and problems",
                           description="Read every file of a dataset once and report counts, image sizes, mask "
                                       "value sets, empty masks, target statistics (8-connected components) "
                                       "and every problem found. Exit code 2 when there are errors.")
    add_dataset_options(check, positional=True)
    check.set_defaults(func=run_check)

    synth = sub.add_parser("synth", help="write the synthetic IR small-target dataset",
                           description="Write procedural IR-like scenes with 0-3 small targets each (about 10 %% "
                                       "target-free) in the uniform layout (images/, masks/, train.txt, "
                                       "test.txt, synthetic.json). Deterministic per seed.")
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    synth.add_argument("--n", type=int, default=SynthParams.n, help="number of images (default: %(default)s)")
    synth.add_argument("--size", type=int, default=SynthParams.size,
                       help="side of the square images in pixels (default: %(default)s)")
    synth.add_argument("--seed", type=int, default=SynthParams.seed, help="root seed (default: %(default)s)")
    synth.add_argument("--test-fraction", type=float, default=SynthParams.test_fraction,
                       help="share of images in test.txt (default: %(default)s)")
    synth.add_argument("--workers", type=int, default=1,
                       help="processes writing images; the result does not depend on it (default: 1)")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace a different synthetic dataset already in --out")
    synth.set_defaults(func=run_synth)


def run_check(args: argparse.Namespace) -> int:
    index = open_dataset_from_args(args)
    report = check_dataset(index, args.split, args.on_mismatch or "resize")
    print(format_report(report))
    if report.errors:
        first = report.errors[0].message
        raise DataError(f"data check found {len(report.errors)} error(s) in {index.root}; first: {first}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise DataError(f"--workers must be at least 1, got {args.workers}")
    params = SynthParams(n=args.n, size=args.size, seed=args.seed, test_fraction=args.test_fraction)
    start = time.perf_counter()
    meta = write_synthetic(args.out, params, workers=args.workers, overwrite=args.overwrite)
    elapsed = time.perf_counter() - start
    counts, area = meta["counts"], meta["target_area_px"]
    print(f"synthetic dataset in {args.out}: {counts['images']} images of {params.size}x{params.size} "
          f"(train {counts['train']}, test {counts['test']}), {counts['targets']} targets, "
          f"{counts['target_free']} target-free; target area {area['min']}..{area['max']} px "
          f"(median {area['median']:g}); {elapsed:.1f} s")
    return 0
