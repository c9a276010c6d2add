"""bench/ledger_signals.py: a search-vs-random ledger's learning curves scored as ranking signals against the
other seeds' mean test IoU (no training)."""

from __future__ import annotations

import pytest

from _helpers import load_bench
from hnanas.fileio import read_json, write_json, write_text, write_yaml

# per network: test IoU of seeds 0, 1 (its rank), and the validation IoU curve of both seeds over 3 epochs
NETS = {"a": ([0.50, 0.52], [0.10, 0.30, 0.40]), "b": ([0.40, 0.41], [0.05, 0.35, 0.30]),
        "c": ([0.30, 0.29], [0.02, 0.10, 0.20]), "d": ([0.10, 0.12], [0.00, 0.00, 0.05])}


def make_ledger(root):
    write_json(root / "networks.json", {"networks": [*({"name": n, "role": "random"} for n in NETS),
                                                     {"name": "dnanet", "role": "baseline"}]})
    for name, (tests, curve) in NETS.items():
        for seed, test in enumerate(tests):
            run = root / "nets" / name / f"seed{seed}"
            write_json(run / "metrics.json", {"iou": test})
            # validation loss falls as IoU rises, except at epoch 1 where it ranks the networks backwards
            rows = [f"{e + 1},{2 - v if e else 1 + v},{1 - v},{v}" for e, v in enumerate(curve)]
            write_text(run / "retrain_log.csv", "epoch,loss,val_loss,val_iou\n" + "\n".join(rows) + "\n")
    write_json(root / "nets" / "dnanet" / "seed0" / "metrics.json", {"iou": 0.9})  # a baseline: left out


def test_signals_are_scored_against_the_other_seeds_mean_test_iou(tmp_path, capsys):
    bench = load_bench("ledger_signals")
    make_ledger(tmp_path / "ledger")
    assert bench.main([str(tmp_path / "ledger"), "--json", str(tmp_path / "out.json")]) == 0
    result = read_json(tmp_path / "out.json")
    assert result["networks"] == ["a", "b", "c", "d"] and result["seeds"] == [0, 1] and result["epochs"] == 3
    rows = {(r["signal"], r["epoch"]): r for r in result["rows"]}
    assert rows["val_iou", 1]["tau"] == pytest.approx(1.0)  # 0.10 > 0.05 > 0.02 > 0: the truth's order
    assert rows["val_iou", 3]["tau"] == pytest.approx(1.0)
    assert rows["val_iou", 2]["tau"] == pytest.approx(2 / 3)  # b (0.35) above a (0.30): one pair of 6 swapped
    assert rows["best_val_iou", 2]["tau"] == pytest.approx(2 / 3)  # the best so far: 0.30 vs 0.35 as above
    assert rows["best_val_iou", 3]["tau"] == pytest.approx(1.0)  # a's 0.40 passes b's best, 0.35
    assert rows["val_loss", 3]["tau"] == pytest.approx(1.0)  # negated: lower loss ranks higher
    assert rows["train_loss", 1]["tau"] == pytest.approx(-1.0)  # backwards at epoch 1
    assert result["ceiling_tau"] == {"0": pytest.approx(1.0), "1": pytest.approx(1.0)}
    assert "| val_iou | 1 | +1.00 | +1.00 | +1.00 |" in capsys.readouterr().out


def test_a_folder_that_is_not_a_ledger_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="has no networks.json"):
        load_bench("ledger_signals").main([str(tmp_path)])


def test_a_ledger_with_one_shared_seed_is_refused_in_one_line(tmp_path):
    make_ledger(tmp_path / "ledger")
    for name in NETS:  # as if only the first seeds had finished
        for f in (tmp_path / "ledger" / "nets" / name / "seed1").iterdir():
            f.unlink()
    with pytest.raises(SystemExit, match="share 1 finished seed"):
        load_bench("ledger_signals").main([str(tmp_path / "ledger")])


def add_config(root, epochs=3, genotypes=None):
    """Give every retrain of the ledger at ``root`` a config.yaml naming its genotype file and budget."""
    for name in NETS:
        for run in (root / "nets" / name).glob("seed*"):
            write_yaml(run / "config.yaml", {
                "model": {"genotype": (genotypes or {}).get(name, f"{root.name}/genotypes/{name}.json")},
                "data": {"dataset": "../shared/datasets/NUAA-SIRST", "split": "idx_427", "crop_size": 128},
                "train": {"epochs": epochs, "batch_size": 8}})


def test_ledgers_of_one_budget_are_pooled_and_a_reused_network_counts_once(tmp_path):
    bench = load_bench("ledger_signals")
    for name in ("one", "two"):
        make_ledger(tmp_path / name)
    add_config(tmp_path / "one")
    add_config(tmp_path / "two", genotypes={"a": "one/genotypes/a.json"})  # "two" reused network a of "one"
    assert bench.main([str(tmp_path / "one"), str(tmp_path / "two"), "--json", str(tmp_path / "out.json")]) == 0
    result = read_json(tmp_path / "out.json")
    assert result["networks"] == sorted([f"one/{n}" for n in NETS] + [f"two/{n}" for n in "bcd"])
    assert [s["genotype"] for s in result["sources"]][:1] == ["one/genotypes/a.json"]
    add_config(tmp_path / "two", epochs=15)
    with pytest.raises(SystemExit, match="pool only ledgers of one dataset and budget"):
        bench.main([str(tmp_path / "one"), str(tmp_path / "two")])


def test_the_signal_of_two_runs_is_their_mean_against_the_third_seed(tmp_path):
    bench = load_bench("ledger_signals")
    make_ledger(tmp_path / "ledger")
    for name, (tests, curve) in NETS.items():  # a third seed whose test IoU ranks c above b
        run = tmp_path / "ledger" / "nets" / name / "seed2"
        write_json(run / "metrics.json", {"iou": {"b": 0.30, "c": 0.35}.get(name, tests[0])})
        write_text(run / "retrain_log.csv", "epoch,loss,val_loss,val_iou\n" + "\n".join(
            f"{e + 1},1,1,{v}" for e, v in enumerate(curve)) + "\n")
    assert bench.main([str(tmp_path / "ledger"), "--runs", "2", "--json", str(tmp_path / "out.json")]) == 0
    result = read_json(tmp_path / "out.json")
    assert result["runs"] == 2 and result["truth_runs"] == 1
    rows = {(r["signal"], r["epoch"]): r for r in result["rows"]}
    taus = rows["val_iou", 3]["tau_per_seed"]  # the curves rank a > b > c > d
    assert taus["0+1"] == pytest.approx(2 / 3)  # truth seed 2: b, c swapped -> one pair of six
    assert taus["0+2"] == pytest.approx(1.0) and taus["1+2"] == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="so 4 are needed"):
        bench.main([str(tmp_path / "ledger"), "--runs", "3"])
