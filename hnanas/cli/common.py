"""Command-line options shared by every command that reads a dataset (``data check``, search, retrain, ...).

``add_dataset_options(parser)`` adds ``--dataset NAME|PATH`` (or a positional DATASET), ``--data-root``,
``--split`` and ``--on-mismatch``; ``data_config_from_args`` / ``open_dataset_from_args`` turn them into a
:class:`~hnanas.data.DataConfig` or an opened :class:`~hnanas.data.DatasetIndex`.
"""

from __future__ import annotations

import argparse
import sys

from hnanas.config import override
from hnanas.data import KNOWN_DATASETS, MISMATCH_POLICIES, DataConfig, DatasetIndex, open_dataset

DATASET_HELP = (f"dataset name ({', '.join(KNOWN_DATASETS)}; looked up under the data root, synthetic is "
                f"generated there on first use) or a dataset folder in any supported layout")


def add_dataset_options(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    """Add the dataset options to ``parser`` (the dataset as a positional DATASET when ``positional``)."""
    if positional:
        parser.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    else:
        parser.add_argument("--dataset", metavar="NAME|PATH", default=None,
                            help=DATASET_HELP + " (default: synthetic)")
    parser.add_argument("--data-root", metavar="DIR", default=None,
                        help="folder holding named datasets (default: $HNANAS_DATA, else ./data)")
    parser.add_argument("--split", metavar="NAME", default=None,
                        help="train/test split, e.g. idx_427 or 50_50 (default: the dataset's official one: "
                             "NUAA-SIRST idx_427, NUDT-SIRST 50_50, IRSTD-1k its trainval/test, SIRST-v2 full)")
    parser.add_argument("--on-mismatch", choices=MISMATCH_POLICIES, default=None,
                        help="a mask whose size differs from its image: resize it (nearest neighbour, with a "
                             "warning), skip the sample, or stop with an error (default: resize)")


def dataset_changes(args: argparse.Namespace, prefix: str = "data.") -> dict:
    """The dataset options as config changes (``prefix`` + DataConfig key; None where not given): the one mapping
    from the command line to the data section, used by every command."""
    return {f"{prefix}{key}": getattr(args, key) for key in ("dataset", "data_root", "split", "on_mismatch")}


def data_config_from_args(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    """``base`` (default: ``DataConfig()``) with the dataset options given on the command line applied."""
    return override(base or DataConfig(), dataset_changes(args, prefix=""), source="command line")


def open_dataset_from_args(args: argparse.Namespace) -> DatasetIndex:
    """The dataset named by ``--dataset``/DATASET and ``--data-root`` (``synthetic`` when none is given)."""
    return open_dataset(args.dataset or DataConfig().dataset, args.data_root)


# One name per concept across commands: the device whose latency is measured or priced (--latency-device) and the
# torch device that trains or runs a model (--torch-device); training crops are --crop-size. The spellings used
# before (--device in every command, --train-device, search's --crop) still work, with a warning.
class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"hnanas: warning: {option_string} is deprecated here; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser, old: str, new: str) -> None:
    """Accept ``old`` as a hidden, warning spelling of the option ``new`` already added to ``parser`` (a parser or
    an argument group of it): same destination, type, choices and arity."""
    action = parser._option_string_actions[new]
    parser.add_argument(old, dest=action.dest, action=_DeprecatedAlias, new=new, type=action.type,
                        choices=action.choices, nargs=action.nargs, metavar=action.metavar,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
