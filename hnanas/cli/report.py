"""``hnanas report``: parse arguments, call :func:`hnanas.report.build.write_report`, print where it went."""

from __future__ import annotations

import argparse

from hnanas.cli.common import add_deprecated_alias

DESCRIPTION = """\
A report over search and retrain runs: accuracy vs measured latency per device (the latency table's prediction
beside each measured point, baselines marked apart, the Pareto front drawn), a table of all runs (Markdown and
CSV: network, lambda/target, IoU, nIoU, Pd, Fa, params, MACs, predicted and measured latency per device, dataset,
split, training budget), each run's search curves and a drawing of its derived network (nodes coloured by their
share of the predicted latency), and an index.md linking everything.

RUN is a search run folder (with or without retrain/), a retrain folder (e.g. a baseline retrained with --out),
a folder of such runs (e.g. runs/STUDY of a sweep), or a glob (quote it: hnanas expands it). Runs without a
retrain appear with their search columns only. A run is a baseline when it was retrained from --model or a
named genotype rather than from a search.

Examples:
  hnanas report runs/demo                               # -> runs/demo/index.md
  hnanas report 'runs/sweep1/trial_*' runs/baselines/dnanet --out runs/report_sweep1
  hnanas report 'runs/*' --latency-device cpu gpu"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="Pareto plots, run table and architecture drawings of runs",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_OR_GLOB", help="run folders, folders of runs, or quoted globs")
    p.add_argument("--latency-device", dest="device", nargs="+", metavar="NAME",
                   help="latency devices to show, in this order (default: every device a run was measured on)")
    add_deprecated_alias(p, "--device", "--latency-device")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default runs/report, or the run's own folder when one run is given)")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from hnanas.report.build import write_report

    result = write_report(args.runs, out=args.out, devices=args.device)
    print(result.summary())
    return 0
