"""`hnanas data check` and `hnanas data synth` through the CLI entry point."""

from __future__ import annotations

import pytest
from data_fixtures import make_layout

from hnanas.cli import main


@pytest.mark.real_data
def test_check_real_nuaa_reports_misc111_mismatch(nuaa_root, data_root, capsys):
    assert main(["data", "check", str(nuaa_root)]) == 0
    out = capsys.readouterr().out
    assert "split     idx_427: train 341, test 86 [default]" in out
    assert "split     50_50: train 213, test 214" in out
    assert "Misc_111.png: mask size 592x400 differs from its image 325x220" in out
    assert "value sets {0,255} x427" in out and "0 error(s), 1 warning(s)" in out
    assert not (nuaa_root / ".hnanas").exists()  # check writes nothing beside the read-only data


@pytest.mark.real_data
def test_check_real_nuaa_mismatch_error_policy_exits_2(nuaa_root, capsys):
    assert main(["data", "check", str(nuaa_root), "--split", "50_50", "--on-mismatch", "error"]) == 2
    captured = capsys.readouterr()
    assert "selected  50_50: train 213" in captured.out
    assert captured.err.startswith("hnanas: error: data check found 1 error(s)") and "Misc_111" in captured.err


def test_synth_then_check(tmp_path, data_root, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(out), "--n", "8", "--size", "48", "--seed", "3"]) == 0
    assert "8 images of 48x48 (train 6, test 2)" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0
    report = capsys.readouterr().out
    assert "layout uniform" in report and "0 error(s), 0 warning(s)" in report


def test_check_reports_overlap_and_unknown_split(tmp_path, capsys):
    root = make_layout(tmp_path / "ds", "dnanet")
    (root / "50_50" / "test.txt").write_text("b2\nc1\na1\n")
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert "train/test overlap: a1" in captured.out
    assert main(["data", "check", str(root), "--split", "nope"]) == 2
    assert "no split 'nope'; available: 50_50" in capsys.readouterr().err


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--size", "16"]) == 2
    assert "at least 34" in capsys.readouterr().err


def test_shared_dataset_options_build_a_data_config():
    import argparse

    from hnanas.cli.common import add_dataset_options, data_config_from_args
    from hnanas.data import DataConfig

    parser = argparse.ArgumentParser()
    add_dataset_options(parser)
    cfg = data_config_from_args(parser.parse_args(["--dataset", "NUAA-SIRST", "--split", "50_50",
                                                   "--on-mismatch", "skip"]), DataConfig(crop_size=128))
    assert (cfg.dataset, cfg.split, cfg.on_mismatch, cfg.crop_size) == ("NUAA-SIRST", "50_50", "skip", 128)
    assert data_config_from_args(parser.parse_args([])) == DataConfig()  # nothing given: the defaults
