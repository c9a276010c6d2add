"""bench/rank_quality.py: the architectures it plans, the signals it computes, and how it scores them."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import pytest
import torch

from _helpers import load_bench, synthetic_table
from hnanas.data import build_data
from hnanas.data.synthetic import SynthParams, write_synthetic
from hnanas.fileio import write_json
from hnanas.nas.genotype import make_genotype, named_genotypes
from hnanas.nas.space import load_space
from hnanas.pipeline.budget import Budget, budget_config
from hnanas.train.optim import build_train_loss

bench = load_bench("rank_quality")


def _row(arch, seed, test_iou, losses, **extra):
    return {"arch": arch, "seed": seed, "test_iou": test_iou, "val_iou": test_iou, "params": extra.get("params", 1),
            "macs": extra.get("macs", 1), "predicted_ms": extra.get("ms", 1.0), "epoch_losses": json.dumps(losses)}


def test_score_ranks_signals_against_the_mean_test_iou_and_gives_the_seed_ceiling():
    iou = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5}
    rows = []
    for k, (arch, v) in enumerate(iou.items()):
        # seed 1 swaps a and b: the ceiling is below 1; losses fall as IoU rises (a perfect loss signal)
        v1 = {"a": 0.2, "b": 0.1}.get(arch, v)
        rows += [_row(arch, 0, v, [1.0 - v, 0.9 - v], params=10 - k, ms=float(k)),
                 _row(arch, 1, v1, [1.0 - v1, 0.9 - v1], params=10 - k, ms=float(k))]
    rows.append(_row("lonely", 0, 0.9, [0.1, 0.1]))  # one seed only: left out
    mean = {a: v for a, v in iou.items()} | {"a": 0.15, "b": 0.15}  # the truth: mean over the two seeds
    signals = {a: {"grad_norm": v, "supernet_val_loss": -v, "synflow": None} for a, v in mean.items()}
    result = bench.score(rows, signals)
    assert result["n_archs"] == 5
    assert result["ceiling_seed0_vs_seed1"]["kendall_tau"] == pytest.approx(0.8)
    s = result["signals"]
    assert s["grad_norm"]["kendall_tau"] == pytest.approx(1.0)
    assert s["supernet_val_loss"]["kendall_tau"] == pytest.approx(1.0)  # lower loss = better, sign applied
    tie = 9 / math.sqrt(10 * 9)  # tau-b: 9 concordant pairs of 10, a and b tie in the truth
    assert s["predicted_ms"]["kendall_tau"] == pytest.approx(tie) and s["params"]["kendall_tau"] == pytest.approx(-tie)
    assert s["synflow"]["kendall_tau"] is None and s["synflow"]["n"] == 0
    # one seed's loss against the other seed's IoU: each pairing has one swapped pair of 10
    assert s["train_loss_epoch1"]["cross_seed"] and s["train_loss_epoch1"]["kendall_tau"] == pytest.approx(0.8)
    assert s["tse_epochs1-2"]["kendall_tau"] == pytest.approx(0.8)
    assert s["train_loss_epoch5"]["kendall_tau"] is None  # two epochs logged: no fifth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("rank")
    write_synthetic(root / "syn", SynthParams(n=24, size=64, seed=0))
    space = load_space("tiny")
    table_path = synthetic_table(space).save(root / "tiny_cpu_t1.csv")
    return root, space, table_path


def _args(root, **changes):
    base = dict(spread=3, min_ms=2.0, max_ms=1e9, sample_seed=0, include=[], out=root / "out", space="tiny", epochs=1,
                crop=32, batch_size=4, dataset=str(root / "syn"), supernet_epochs=1, bn_batches=1)
    base.update(changes)
    return argparse.Namespace(**base)


def test_plan_spreads_random_networks_over_the_latency_range_and_keeps_its_plan(tiny):
    root, space, table_path = tiny
    from hnanas.latency.table import LatencyTable

    table = LatencyTable.load(table_path, space=space)
    svr = root / "svr"
    named_genotypes(space)["chain_res3"].save(svr / "genotypes" / "g.json")
    write_json(svr / "networks.json", {"networks": [
        {"name": "searched", "role": "searched", "genotype": str(svr / "genotypes" / "g.json")},
        {"name": "dnanet", "role": "baseline", "baseline": "dnanet"}]})
    args = _args(root, include=[svr])
    archs = bench.plan(args, space, table)
    roles = [a["role"] for a in archs]
    assert roles == ["named"] * 3 + ["spread"] * 3 + ["included searched"]  # baselines are not of the space
    spread = [a["predicted_ms"] for a in archs if a["role"] == "spread"]
    assert spread == sorted(spread) and spread[-1] > 2 * spread[0]
    assert archs[-1]["folder"] == str(svr / "nets" / "searched") and archs[-1]["name"] == "svr/searched"
    assert bench.plan(args, space, table) == archs  # planned once
    with pytest.raises(SystemExit, match="was planned with"):
        bench.plan(_args(root, include=[svr], spread=4), space, table)


def test_zero_cost_and_inherited_weight_signals_on_a_tiny_space(tiny):
    root, space, _ = tiny
    args = _args(root, out=root / "signals")
    cfg = budget_config(Budget(epochs=1, crop=32, batch_size=4, measure_latency=False),
                        {"genotype": "dense_res3", "space": "tiny"}, {"dataset": str(root / "syn")}, 0)
    data, loss_fn = build_data(cfg.data), build_train_loss(cfg.train.loss)
    folder = root / "g"
    archs = []
    for name, g in named_genotypes(space).items():
        g.save(folder / f"{name}.json")
        archs.append({"name": name, "genotype": str(folder / f"{name}.json")})
    zc = bench.zero_cost(args, space, archs, data, loss_fn)
    assert set(zc) == {a["name"] for a in archs}
    for values in zc.values():
        assert all(math.isfinite(v) and v > 0 for v in values.values())
    assert zc["dense_res3"]["synflow"] > zc["chain_res3"]["synflow"]  # more paths, more synaptic flow

    net = bench.train_supernet(args, space, data, loss_fn)
    state = torch.load(root / "signals" / "supernet" / "supernet.pt", weights_only=True)
    assert state["epoch"] == 1
    again = bench.train_supernet(args, space, data, loss_fn)  # resumed: nothing left to train, same weights
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    scores = bench.inherited(args, space, archs, net, data, loss_fn)
    for s in scores.values():
        assert 0 <= s["supernet_val_iou"] <= 1 and s["supernet_val_loss"] > 0 and s["supernet_bn_val_loss"] > 0
    assert any(s["supernet_bn_val_loss"] != s["supernet_val_loss"] for s in scores.values())


def test_ground_truth_rows_follow_the_schema_with_budget_and_command(tiny, tmp_path):
    root, space, _ = tiny
    g = named_genotypes(space)["chain_res3"]
    g.save(tmp_path / "chain_res3.json")
    arch = {"name": "chain_res3", "role": "named", "genotype": str(tmp_path / "chain_res3.json"), "nodes": 3,
            "predicted_ms": 1.23456, "folder": str(tmp_path / "nets" / "chain_res3")}
    for seed in (0, 1):  # seed 1 unfinished: no metrics.json, no row
        run = tmp_path / "nets" / "chain_res3" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "retrain_log.csv").write_text("epoch,step,loss\n1,4,0.9\n2,8,0.7\n")
        if seed == 0:
            write_json(run / "metrics.json", {"params": 10, "macs": 20, "val_iou": 0.3, "best_epoch": 2, "iou": 0.25,
                                              "niou": 0.3, "pd": 0.5, "fa": 1e-4,
                                              "training": {"train_path": "fp32", "seconds": 5.0}})
    args = _args(root, precision="auto", split=None)
    rows = bench.ground_truth(args, [arch], {"chain_res3": 4.5}, "python bench/rank_quality.py --x")
    assert len(rows) == 1 and tuple(rows[0]) == bench.GT_COLUMNS
    row = rows[0]
    assert json.loads(row["epoch_losses"]) == [0.9, 0.7] and row["measured_ms"] == 4.5
    assert json.loads(row["genotype"])["nodes"] == json.loads((tmp_path / "chain_res3.json").read_text())["nodes"]
    assert json.loads(row["budget"])["epochs"] == 1 and row["command"].endswith("--x")
    assert bench.csv_text(rows).splitlines()[0] == ",".join(bench.GT_COLUMNS)


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "bench" / "data").glob("rank_quality_*.csv"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_ground_truth_table_has_the_schema_two_seeds_and_one_budget(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == bench.GT_COLUMNS
        rows = list(reader)
    space = load_space("rep_nested")
    seeds: dict = {}
    for r in rows:
        seeds.setdefault(r["arch"], set()).add(int(r["seed"]))
        nodes = json.loads(r["genotype"])["nodes"]
        g = make_genotype(space, {n: v["inputs"] for n, v in nodes.items()}, {n: v["op"] for n, v in nodes.items()})
        assert len(g.nodes) == int(r["nodes"]), r["arch"]  # a genotype of the space, already pruned
        for key in ("val_iou", "test_iou", "test_niou", "test_pd"):
            assert 0.0 <= float(r[key]) <= 1.0, (r["arch"], key)
        assert int(r["params"]) > 0 and int(r["macs"]) > 0 and float(r["predicted_ms"]) > 0
        assert len(json.loads(r["epoch_losses"])) == json.loads(r["budget"])["epochs"]
    assert len(seeds) >= 24 and all(s == {0, 1} for s in seeds.values())
    assert len({r["budget"] for r in rows}) == 1 and len({r["command"] for r in rows}) == 1


def test_main_builds_the_ground_truth_and_a_ledger_carries_it_into_a_fresh_session(tiny, tmp_path, capsys):
    import shutil

    root, space, table_path = tiny
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    argv = ["--dataset", str(root / "syn"), "--space", "tiny", "--table", str(table_path), "--spread", "0", "--epochs", "1", "--crop", "32", "--batch-size", "4", "--jobs", "1", "--precision",
            "fp32", "--no-signals", "--out", str(out), "--ledger", str(ledger)]
    assert bench.main(argv) == 0
    with open(out / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    archs = {r["arch"] for r in rows}
    assert archs == set(named_genotypes(space)) and len(rows) == 2 * len(archs)
    assert all(float(r["measured_ms"]) > 0 for r in rows)  # timed before the retrains, from each spec
    assert (ledger / "ground_truth.csv").read_text() == (out / "ground_truth.csv").read_text()
    shutil.rmtree(ledger / "nets" / "chain_res3" / "seed1")  # the last session stopped before this retrain
    shutil.rmtree(out)
    capsys.readouterr()
    assert bench.main([*argv, "--no-train"]) == 0
    with open(out / "ground_truth.csv", newline="") as f:
        partial = list(csv.DictReader(f))
    assert partial == [r for r in rows if (r["arch"], r["seed"]) != ("chain_res3", "1")]
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith(("retrain", "latency"))]
