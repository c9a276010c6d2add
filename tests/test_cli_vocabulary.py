"""One name per concept across commands: --latency-device (measured or priced latency), --torch-device (where torch
runs), --crop-size (training crops); the old spellings still parse to the same options, with a warning."""

from __future__ import annotations

import pytest

from hnanas.cli import build_parser

# (the command and its other arguments, new option, old spelling, values, destination, parsed value)
CASES = [
    (["search"], "--latency-device", "--device", ["gpu"], "device", "gpu"),
    (["search"], "--torch-device", "--train-device", ["cpu"], "train_device", "cpu"),
    (["search"], "--crop-size", "--crop", ["96"], "crop", 96),
    (["sweep", "--study", "s", "--targets", "20,40"], "--torch-device", "--train-device", ["cpu"], "train_device", "cpu"),
    (["sweep", "--study", "s", "--targets", "20,40"], "--crop-size", "--crop", ["96"], "crop", 96),
    (["profile"], "--latency-device", "--device", ["jetson"], "device", "jetson"),
    (["report", "r"], "--latency-device", "--device", ["cpu", "gpu"], "device", ["cpu", "gpu"]),
    (["retrain"], "--torch-device", "--device", ["cpu"], "device", "cpu"),
    (["evaluate", "--pred", "p"], "--torch-device", "--device", ["cpu"], "device", "cpu"),
    (["predict", "x.png", "--model", "m.onnx"], "--torch-device", "--device", ["cpu"], "device", "cpu"),
]


@pytest.mark.parametrize("command,new,old,values,dest,parsed", CASES, ids=[f"{c[0][0]} {c[2]}" for c in CASES])
def test_old_spellings_parse_to_the_new_option_and_warn(command, new, old, values, dest, parsed, capsys):
    parser = build_parser()
    args = parser.parse_args([*command, new, *values])
    assert getattr(args, dest) == parsed and "deprecated" not in capsys.readouterr().err
    assert vars(parser.parse_args([*command, old, *values])) == vars(args)
    assert f"{old} is deprecated here; use {new}" in capsys.readouterr().err


def test_help_shows_only_the_new_names(capsys):
    parser = build_parser()
    for command in ("search", "retrain", "evaluate", "predict", "profile", "report", "sweep"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "--train-device" not in text and "--crop " not in text and "--crop PX" not in text, command
        assert "--device" not in text.replace("--latency-device", "").replace("--torch-device", ""), command
