"""The two-stage search at tiny scale: outputs, the latency term moving the architecture, exact resume after
SIGKILL, torchrun, and clear errors on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import synthetic_table
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.errors import HnanasError
from hnanas.nas.genotype import load_genotype
from hnanas.nas.network import derive
from hnanas.nas.space import load_space
from hnanas.runtime import export_onnx, make_session, time_session
from hnanas.search.config import preset_config, resolve_config
from hnanas.search.objective import search_loss
from hnanas.search.run import run_search

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("search")
    data = root / "syn"
    write_synthetic(data, SynthParams(n=40, size=64, seed=0))
    table = synthetic_table(tiny).save(root / "tiny_cpu_t1.csv")
    return {"root": root, "data": data, "table": table}


def tiny_config(assets, **changes):
    base = {"data.dataset": str(assets["data"]), "data.crop_size": 32, "space": "tiny", "table": str(assets["table"]),
            "batch_size": 8, "stage1.epochs": 4, "stage1.warmup_epochs": 1, "stage1.arch_every": 1,
            "stage1.arch_lr": 0.1, "stage2.epochs": 4, "stage2.warmup_epochs": 1, "stage2.arch_every": 1,
            "stage2.arch_lr": 0.1, "precision": "fp32"}  # fp32: runs compared bit for bit choose no path by timing
    base.update(changes)
    return resolve_config("quick", base)


def test_presets_are_valid_and_overridable():
    quick, paper = preset_config("quick"), preset_config("paper")
    assert quick.data.crop_size == 64 and paper.data.crop_size == 256
    assert paper.stage2.arch_every == 5 and paper.stage2.arch_lr == 5e-3 and paper.stage2.warmup_epochs == 1500
    cfg = resolve_config("quick", {"latency_weight": 1.0, "stage2.mode": "mixture"})
    assert cfg.latency_weight == 1.0 and cfg.stage2.mode == "mixture"
    with pytest.raises(Exception, match="unknown key"):
        resolve_config("quick", {"stage3.epochs": 2})


def test_latency_loss_forms():
    seg, e = torch.tensor(0.5), torch.tensor(20.0, requires_grad=True)
    assert search_loss(seg, e, 10.0, weight=0.0) is seg
    lin = search_loss(seg, e, 10.0, kind="add-linear", weight=0.1)
    assert lin.item() == pytest.approx(0.5 + 0.1 * (20 - 10) / 10)
    mul = search_loss(seg, e, 10.0, kind="mul-log", alpha=0.2, beta=0.3)
    assert mul.item() == pytest.approx(0.5 * 0.2 * (np.log(20) / np.log(10)) ** 0.3)
    mul.backward()
    assert e.grad > 0
    with pytest.raises(HnanasError, match="above 1 ms"):
        search_loss(seg, e, 0.5, kind="mul-log")


def test_hinge_is_a_budget_no_pressure_below_the_target():
    seg = torch.tensor(0.5)
    over, under = torch.tensor(12.0, requires_grad=True), torch.tensor(8.0, requires_grad=True)
    above = search_loss(seg, over, 10.0, kind="hinge", weight=0.5)
    below = search_loss(seg, under, 10.0, kind="hinge", weight=0.5)
    assert above.item() == pytest.approx(0.5 + 0.5 * 0.2) and below.item() == pytest.approx(0.5)
    (above + below).backward()
    assert over.grad.item() == pytest.approx(0.05) and under.grad.item() == 0.0
    with pytest.raises(Exception, match="target_latency_ms"):
        resolve_config("quick", {"latency_loss": "hinge"})
    assert resolve_config("quick", {"latency_loss": "hinge", "target_latency_ms": 40.0}).target_latency_ms == 40.0


def test_search_writes_its_run_folder(assets, tiny, tmp_path):
    out = tmp_path / "run"
    summary = run_search(tiny_config(assets), out)
    for name in ("config.yaml", "env.json", "run.log", "search_log.csv", "genotype.json", "stage1_genotype.json",
                 "search_state.pt", "search_curves.png", "arch_probs.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "arch").iterdir())[0] == "stage1_epoch001.json"
    g = load_genotype(out / "genotype.json", tiny)
    info = json.loads((out / "genotype.json").read_text())["info"]
    assert info["predicted_latency_ms"] == pytest.approx(summary["predicted_latency_ms"])
    assert info["macs"] > 0 and info["params"] > 0 and info["table"]["device"] == "cpu"
    rows = (out / "search_log.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 + 4 and "expected_latency_ms" in rows[0] and "entropy" in rows[0]
    assert derive(tiny, g)(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def _measure(tiny, genotype) -> float:
    net = derive(tiny, genotype, deploy=True).eval()
    data = export_onnx(net, torch.randn(1, 1, 128, 128), dynamo=False)
    return float(np.median([time_session(make_session(data, "cpu", threads=1), min_repeats=30,
                                         min_time_s=0.3).median_ms for _ in range(3)]))


def test_latency_weight_moves_the_architecture(assets, tiny, tmp_path):
    """Same seed, lambda in {0, 0.1, 1}: predicted latency never increases with lambda, and lambda = 1 is faster
    than lambda = 0 by the table and when measured with ONNX Runtime."""
    pred, genotypes = {}, {}
    for lam in (0.0, 0.1, 1.0):
        out = tmp_path / f"lam{lam}"
        pred[lam] = run_search(tiny_config(assets, latency_weight=lam), out)["predicted_latency_ms"]
        genotypes[lam] = load_genotype(out / "genotype.json", tiny)
    assert pred[0.0] >= pred[0.1] >= pred[1.0] and pred[1.0] < pred[0.0]
    assert _measure(tiny, genotypes[1.0]) < _measure(tiny, genotypes[0.0])


def _search_cmd(assets, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hnanas", "search", "--dataset", str(assets["data"]), "--space", "tiny",
            "--table", str(assets["table"]), "--crop", "32", "--batch-size", "8", "--epochs", "4",
            "--precision", "fp32", "--out", str(out), *extra]


def _env():
    return {**os.environ, "HNANAS_NO_TCMALLOC": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_resume_after_sigkill_gives_the_same_genotype(assets, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_search_cmd(assets, ref), check=True, capture_output=True, env=_env(), timeout=300)
    proc = subprocess.Popen(_search_cmd(assets, killed), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while not (killed / "search_state.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "genotype.json").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "hnanas", "search", "--out", str(killed), "--resume"], check=True,
                   capture_output=True, env=_env(), timeout=300)
    assert json.loads((killed / "genotype.json").read_text())["nodes"] == \
        json.loads((ref / "genotype.json").read_text())["nodes"]
    strip = [line.rsplit(",", 1)[0] for line in (ref / "search_log.csv").read_text().splitlines()]
    assert [line.rsplit(",", 1)[0] for line in (killed / "search_log.csv").read_text().splitlines()] == strip


def test_torchrun_two_processes(assets, tmp_path):
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = torchrun + _search_cmd(assets, out, "--epochs", "2")[1:]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "genotype.json").is_file()
    assert (out / "run.log").read_text().count("search ") == 1  # one process speaks for all


def test_missing_or_foreign_table_is_a_clear_error(assets, tmp_path):
    with pytest.raises(HnanasError, match="hnanas profile"):
        run_search(tiny_config(assets, table=str(tmp_path / "none.csv")), tmp_path / "a")
    other = synthetic_table(load_space("hna_nested")).save(tmp_path / "hna.csv")
    with pytest.raises(HnanasError, match="measured for space"):
        run_search(tiny_config(assets, table=str(other)), tmp_path / "b")


def test_empty_dataset_is_a_clear_error(assets, tmp_path):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    (empty / "train.txt").write_text("")
    (empty / "test.txt").write_text("")
    with pytest.raises(HnanasError):
        run_search(tiny_config(assets, **{"data.dataset": str(empty)}), tmp_path / "c")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(assets, tmp_path, monkeypatch):
    from hnanas.losses import build_loss
    import hnanas.search.context as search_context

    calls = {"n": 0}
    real = build_loss("softiou")

    def poisoned(name):
        def loss(logits, target):
            calls["n"] += 1
            value = real(logits, target)
            return value * float("nan") if calls["n"] > 6 else value
        return loss

    monkeypatch.setattr(search_context, "build_train_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(HnanasError, match="nan"):
        run_search(tiny_config(assets), out)
    state = torch.load(out / "search_state.pt", weights_only=True)
    assert state["stage"] == 1 and state["epoch"] == 0  # the epoch before the NaN


def test_entropy_follows_the_searchers_kind_not_whether_probabilities_sum_to_one():
    import math

    import torch

    from hnanas.search.searchers import EdgeSearcher, OpSearcher, _entropy

    p = torch.tensor([0.2, 0.3, 0.5])  # three edge gates that happen to sum to 1
    binary = sum(-(x * math.log(x) + (1 - x) * math.log(1 - x)) for x in (0.2, 0.3, 0.5)) / 3
    assert _entropy(p, EdgeSearcher.distribution) == pytest.approx(binary)  # 0.601: mean binary entropy
    assert _entropy(p, OpSearcher.distribution) == pytest.approx(-sum(x * math.log(x) for x in (0.2, 0.3, 0.5)))
    assert _entropy(torch.tensor([float("nan"), 0.5]), "bernoulli") == 0.0
    assert _entropy(torch.tensor([0.7]), "categorical") == 0.0
