"""`hnanas ops list` / `hnanas ops verify` and the verification library behind them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from hnanas.cli import main
from hnanas.ops import list_ops, register_op, unregister_op
from hnanas.ops.blocks import ConvBN
from hnanas.ops.equivalence import RELATIVE_ERROR_DEFINITION
from hnanas.ops.repblock import RepBlock
from hnanas.ops.verify import interleaved_round_medians, paired_ratio, verify_ops



class _OffByOnePercent(ConvBN):
    """A branch whose fused kernel is 1 % off: a broken fusion the verification must catch."""

    def get_equivalent_kernel_bias(self):
        kernel, bias = super().get_equivalent_kernel_bias()
        return kernel * 1.01, bias


@pytest.fixture
def broken_op():
    @register_op("x_broken", family="rep3x3", reparameterizable=True, description="broken fusion (test)")
    def build(c_in, c_out, stride, *, deploy=False):
        branches = None if deploy else {"conv": _OffByOnePercent(c_in, c_out, 3, stride)}
        return RepBlock(c_in, c_out, 3, stride, branches, deploy=deploy)

    yield "x_broken"
    unregister_op("x_broken")


def test_ops_list_prints_every_op(capsys):
    assert main(["ops", "list", "--shape", "8,16,16"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.split() and line.split()[0] in list_ops()}
    assert set(rows) == set(list_ops())
    assert "rep3x3" in rows["ecb"] and "yes" in rows["ecb"] and "->" in rows["ecb"]  # train -> deploy differ
    assert "8x16x16" in out


def test_ops_verify_writes_json_and_passes(tmp_path, capsys):
    out = tmp_path / "verify.json"
    rc = main(["ops", "verify", "--shape", "8,16,16", "--ops", "cdc", "--rounds", "2", "--min-time", "0.01",
               "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    entry = data["ops"]["cdc"]
    for key in ("max_rel_err", "max_rel_err_f64", "train_ms", "deploy_ms", "plain_conv_ms", "deploy_over_plain",
                "train_over_deploy"):
        assert isinstance(entry[key], float), key
    assert entry["max_rel_err"] <= 1e-5 and entry["max_rel_err_f64"] <= 1e-10
    assert entry["deploy_onnx_ops"] == ["Conv", "Relu"] and entry["deploy_graph_equals_plain"] is True
    ratios = [d / p for d, p in zip(entry["round_ms"]["deploy"], entry["round_ms"]["plain_conv"])]
    assert len(ratios) == 2 and entry["deploy_over_plain"] == pytest.approx(sum(ratios) / 2)
    settings = data["settings"]
    assert settings["shape"] == [8, 16, 16] and settings["threads"] == 1 and settings["rounds"] == 2
    assert "max|deploy - train| / max|train|" in settings["max_rel_err_definition"]
    assert settings["session"]["onnxruntime"] and settings["environment"]["packages"]["torch"]
    assert "cdc" in capsys.readouterr().out


def test_ops_verify_exits_1_on_a_broken_fusion(broken_op, capsys):
    rc = main(["ops", "verify", "--shape", "4,8,8", "--ops", broken_op, "--rounds", "1", "--min-time", "0.005"])
    assert rc == 1
    captured = capsys.readouterr()
    assert "x_broken" in captured.out and "NO" in captured.out


def test_verify_ops_library_reports_every_op():
    report = verify_ops(["ecb", "repdw"], (8, 16, 16), rounds=2, min_time_s=0.005, dynamo=False)
    assert list(report.ops) == ["ecb", "repdw"] and report.passed
    assert report.ops["repdw"].deploy_onnx_ops == ["Conv", "Relu", "Conv", "Relu"]
    assert report.ops["ecb"].deploy_graph_equals_plain and not report.ops["repdw"].deploy_graph_equals_plain
    assert report.ops["ecb"].macs["train"] > report.ops["ecb"].macs["deploy"]
    assert all(t.n == 2 for t in report.ops["ecb"].timings.values())
    assert "ecb" in report.format_table()


@pytest.mark.parametrize("argv, words", [
    (["ops", "list", "--shape", "8,16"], "expected C,H,W"),
    (["ops", "verify", "--threads", "0"], "expected a positive integer"),
    (["ops", "verify", "--min-time", "-1"], "expected a positive number"),
])
def test_bad_arguments_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_verify_help_defines_the_error_measure(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ops", "verify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exc.value.code == 0
    assert RELATIVE_ERROR_DEFINITION.split(" over")[0] in out and "1e-5 (float32)" in out and "1e-10 (float64)" in out


def test_unknown_op_is_a_clean_error(capsys):
    assert main(["ops", "verify", "--ops", "nope", "--shape", "4,8,8"]) == 2
    assert "hnanas: error: unknown op 'nope'; known ops: res3" in capsys.readouterr().err


class _FakeSession:
    """Records the order in which sessions run (for the interleaving schedule)."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def get_outputs(self):
        return [SimpleNamespace(name="output")]

    def run(self, outputs, feeds):
        self.log.append(self.name)
        return [torch.zeros(1).numpy()]


def test_interleaved_rounds_rotate_the_start_each_round():
    log: list[str] = []
    sessions = {n: _FakeSession(n, log) for n in "ABC"}
    medians = interleaved_round_medians(sessions, {}, rounds=3, min_time_s=0.0, warmup=1)
    visits = [log[i] for i in range(0, len(log), 11)]  # each visit: 1 warm-up + 10 timed runs
    assert len(log) == 9 * 11 and visits == list("ABCBCACAB")
    assert set(medians) == set("ABC") and all(len(v) == 3 for v in medians.values())


def test_paired_ratio_cancels_load_changes_between_rounds():
    # the machine gets 2x and 3x slower in later rounds; the within-round ratio stays 1.01
    plain = [1.0, 2.0, 3.0]
    deploy = [1.01, 2.02, 3.03]
    assert paired_ratio(deploy, plain).median_ms == pytest.approx(1.01)
    assert paired_ratio(deploy, plain).spread == pytest.approx(0.0, abs=1e-9)
